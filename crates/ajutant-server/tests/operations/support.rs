//! What the operations tests share: callers, requests, and an assistant to talk to.

use ajutant_core::config::{DEMO_EMPLOYEES, DEMO_HR_OWNERS, DEMO_IT_OPS};
use ajutant_testkit::TestApp;
use ajutant_testkit::identity::{access_token, client, demo_user};
use reqwest::Method;
use serde_json::{Value, json};

pub async fn token(app: &TestApp, email: &str) -> String {
    access_token(app, &demo_user(email)).await.unwrap()
}

pub async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = client().request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

/// The response's JSON, after checking its status.
pub async fn expect(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status, body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// An assistant for the employees, owned by HR owners unless `owner_group` says otherwise.
pub async fn create_assistant(
    app: &TestApp,
    admin: &str,
    id: &str,
    deployment: &str,
    owner_group: &str,
) {
    expect(
        call(
            app,
            Method::POST,
            "/api/v1/assistants",
            admin,
            Some(json!({
                "id": id,
                "name": format!("Assistant {id}"),
                "deployment": deployment,
                "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
                "owner_group": owner_group,
            })),
        )
        .await,
        201,
    )
    .await;
}

pub const HR_OWNERS: &str = DEMO_HR_OWNERS;

pub async fn start_conversation(app: &TestApp, token: &str, assistant: &str) -> String {
    let created = expect(
        call(
            app,
            Method::POST,
            "/api/v1/conversations",
            token,
            Some(json!({ "assistant_id": assistant })),
        )
        .await,
        201,
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

/// Asks without streaming; returns (question's id, answer's id).
pub async fn ask(
    app: &TestApp,
    token: &str,
    conversation: &str,
    question: &str,
) -> (String, String) {
    let turn = expect(
        call(
            app,
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            token,
            Some(json!({ "content": question })),
        )
        .await,
        200,
    )
    .await;
    (
        turn["user_message"]["id"].as_str().unwrap().to_owned(),
        turn["message"]["id"].as_str().unwrap().to_owned(),
    )
}

/// A platform API key acting with `groups`, made by `admin`: credentials every instance
/// accepts (the development provider's tokens are signed per instance).
pub async fn api_key(app: &TestApp, admin: &str, name: &str, groups: &[&str]) -> String {
    let created = expect(
        call(
            app,
            Method::POST,
            "/api/v1/admin/api-keys",
            admin,
            Some(json!({ "name": name, "groups": groups })),
        )
        .await,
        201,
    )
    .await;
    created["key"].as_str().unwrap().to_owned()
}

pub const EMPLOYEES: &str = DEMO_EMPLOYEES;
pub const IT_OPS: &str = DEMO_IT_OPS;

/// How many audit records of `action` with `outcome` there are.
pub async fn audit_count(
    app: &TestApp,
    action: &str,
    outcome: ajutant_core::audit::Outcome,
) -> usize {
    app.store()
        .await
        .audit_search(&ajutant_store::AuditQuery {
            action: Some(action.to_owned()),
            outcome: Some(outcome),
            limit: 1000,
            ..ajutant_store::AuditQuery::default()
        })
        .await
        .unwrap()
        .len()
}
