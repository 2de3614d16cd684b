//! The console's assistants, collections and deployments pages: who sees them (404 for
//! everyone else), that an edit's versions compare line by line, that what people typed shows
//! up escaped, and that a failed document shows why it failed.

use std::time::{Duration, Instant};

use ajutant_core::config::{DEMO_EMPLOYEES, DEMO_HR_OWNERS, DEMO_IT_OPS};
use ajutant_testkit::identity::{access_token, client, demo_user};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::support::{browser, page};

const ASSISTANTS: &str = "/console/assistants";
const COLLECTIONS: &str = "/console/collections";
const DEPLOYMENTS: &str = "/console/deployments";

async fn token(app: &TestApp, email: &str) -> String {
    access_token(app, &demo_user(email)).await.unwrap()
}

/// An API call with a bearer token: (status, JSON answer).
async fn call(app: &TestApp, token: &str, method: Method, path: &str, body: Value) -> (u16, Value) {
    let response = client()
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An assistant for the employees, owned by `owner_group`, made by the admin.
async fn create_assistant(app: &TestApp, admin: &str, id: &str, name: &str, owner_group: &str) {
    let (status, body) = call(
        app,
        admin,
        Method::POST,
        "/api/v1/assistants",
        json!({
            "id": id,
            "name": name,
            "instructions": "Answer in plain words.",
            "deployment": "offline",
            "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
            "owner_group": owner_group,
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Whether `text` is in `html` with its angle brackets escaped (askama writes `&#60;`, some
/// escapers `&lt;`).
fn escaped(html: &str, text: &str) -> bool {
    let numeric = text.replace('<', "&#60;").replace('>', "&#62;");
    let named = text.replace('<', "&lt;").replace('>', "&gt;");
    html.contains(&numeric) || html.contains(&named)
}

/// The HTML of the list items of the version comparison whose class is `change`.
fn diff_lines(html: &str, change: &str) -> Vec<String> {
    html.split("<li class=\"diff-line ")
        .skip(1)
        .filter(|item| item.starts_with(&format!("{change}\"")))
        .map(|item| item.split("</li>").next().unwrap().to_owned())
        .collect()
}

async fn each_section_is_for_those_who_manage_it(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "HR helper", DEMO_HR_OWNERS).await;
    create_assistant(&app, &admin, "it-bot", "IT helper", DEMO_IT_OPS).await;

    // An employee with no roles and nothing to own has no console at all.
    let alice = browser(&app, "alice@example.org").await;
    for path in [
        "/console",
        ASSISTANTS,
        COLLECTIONS,
        DEPLOYMENTS,
        "/console/assistants/hr-bot",
    ] {
        let (status, html) = page(&app, &alice, path).await;
        assert_eq!(status, 404, "alice {path}");
        assert!(!html.contains("HR helper"), "alice {path}");
    }

    // An owner sees the assistants their group owns, and only those.
    let harriet = browser(&app, "harriet@example.org").await;
    let (status, html) = page(&app, &harriet, ASSISTANTS).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("data-assistant-id=\"hr-bot\""), "{html}");
    assert!(html.contains("HR helper"), "{html}");
    assert!(!html.contains("IT helper"), "{html}");
    assert!(!html.contains("New assistant"), "{html}");
    let (status, html) = page(&app, &harriet, "/console/assistants/hr-bot").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Save as a new version"), "{html}");
    assert!(html.contains("Answer in plain words."), "{html}");
    assert!(html.contains("Switch off"), "{html}");
    assert!(html.contains("/console/feedback/hr-bot"), "{html}");
    for path in [
        "/console/assistants/it-bot",
        "/console/assistants/it-bot/diff",
        "/console/assistants/no-such-bot",
        DEPLOYMENTS,
        COLLECTIONS,
    ] {
        let (status, html) = page(&app, &harriet, path).await;
        assert_eq!(status, 404, "harriet {path}");
        assert!(!html.contains("IT helper"), "harriet {path}");
    }

    // A platform admin sees everything, with the forms to create.
    let ada = browser(&app, "ada@example.org").await;
    let (status, html) = page(&app, &ada, ASSISTANTS).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("HR helper") && html.contains("IT helper"),
        "{html}"
    );
    assert!(html.contains("New assistant"), "{html}");
    assert!(html.contains("data-path=\"/api/v1/assistants\""), "{html}");
    assert!(html.contains("<option value=\"offline\""), "{html}");
    let (status, html) = page(&app, &ada, "/console/assistants/it-bot").await;
    assert_eq!(status, 200, "{html}");
    let (status, html) = page(&app, &ada, COLLECTIONS).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("New collection"), "{html}");
    let (status, html) = page(&app, &ada, DEPLOYMENTS).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("data-deployment=\"offline\""), "{html}");
    assert!(html.contains("Test call: offline"), "{html}");
    assert!(html.contains("/static/deployments.js"), "{html}");
    let (status, _) = page(&app, &ada, "/console").await;
    assert_eq!(status, 200);

    // A deployment switched off shows as killed, with the reason.
    let (status, body) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/kill-switches",
        json!({ "target": "deployment", "id": "offline", "state": "killed",
                "reason": "Testing the switch" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, html) = page(&app, &ada, DEPLOYMENTS).await;
    assert!(html.contains("badge killed"), "{html}");
    assert!(html.contains("Testing the switch"), "{html}");
    app.stop().await.unwrap();
}

async fn the_comparison_shows_a_changed_instruction(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "HR helper", DEMO_HR_OWNERS).await;
    let owner = token(&app, "harriet@example.org").await;
    let edit = |base: i64, instructions: &str| {
        json!({
            "base_version": base,
            "name": "HR helper",
            "instructions": instructions,
            "deployment": "offline",
            "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
            "owner_group": DEMO_HR_OWNERS,
        })
    };
    let (status, body) = call(
        &app,
        &owner,
        Method::PUT,
        "/api/v1/assistants/hr-bot",
        edit(1, "Answer briefly and cite the handbook."),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // An edit from a stale version is refused with a reason, not silently applied.
    let (status, body) = call(
        &app,
        &owner,
        Method::PUT,
        "/api/v1/assistants/hr-bot",
        edit(1, "Something else."),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("reload"),
        "{body}"
    );

    let harriet = browser(&app, "harriet@example.org").await;
    let (status, html) = page(
        &app,
        &harriet,
        "/console/assistants/hr-bot/diff?from=1&to=2",
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let removed = diff_lines(&html, "removed");
    let added = diff_lines(&html, "added");
    assert_eq!(removed.len(), 1, "{html}");
    assert_eq!(added.len(), 1, "{html}");
    assert!(removed[0].contains("Answer in plain words."), "{removed:?}");
    assert!(removed[0].contains("−"), "{removed:?}");
    assert!(
        added[0].contains("Answer briefly and cite the handbook."),
        "{added:?}"
    );
    assert!(added[0].contains('+'), "{added:?}");
    // Unchanged fields are shown as such.
    assert!(
        diff_lines(&html, "same")
            .iter()
            .any(|line| line.contains("HR helper")),
        "{html}"
    );
    // Without a pair, the current version is compared with the one before.
    let (status, default) = page(&app, &harriet, "/console/assistants/hr-bot/diff").await;
    assert_eq!(status, 200);
    assert_eq!(diff_lines(&default, "removed"), removed);

    // The edit page lists both versions and links their comparison.
    let (_, html) = page(&app, &harriet, "/console/assistants/hr-bot").await;
    assert!(html.contains("diff?from=1&amp;to=2"), "{html}");
    assert!(html.contains("name=\"base_version\""), "{html}");
    assert!(html.contains("value=\"2\""), "{html}");
    for path in [
        "/console/assistants/hr-bot/diff?from=1&to=9",
        "/console/assistants/hr-bot/diff?from=x",
    ] {
        let (status, _) = page(&app, &harriet, path).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
    }
    app.stop().await.unwrap();
}

async fn what_people_typed_is_escaped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    create_assistant(
        &app,
        &admin,
        "hr-bot",
        "<script>alert('x')</script> helper",
        DEMO_HR_OWNERS,
    )
    .await;
    let harriet = browser(&app, "harriet@example.org").await;
    for path in [ASSISTANTS, "/console/assistants/hr-bot"] {
        let response = client()
            .get(app.url(path))
            .header("cookie", &harriet.cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        let html = response.text().await.unwrap();
        assert!(escaped(&html, "<script>"), "{path}: {html}");
        assert!(!html.contains("<script>alert"), "{path}: {html}");
    }
    app.stop().await.unwrap();
}

async fn wait_for_job(app: &TestApp, token: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, job) = call(
            app,
            token,
            Method::GET,
            &format!("/api/v1/ingestion-jobs/{id}"),
            Value::Null,
        )
        .await;
        assert_eq!(status, 200, "{job}");
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_failed_document_shows_its_error_code(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    let (status, collection) = call(
        &app,
        &admin,
        Method::POST,
        "/api/v1/collections",
        json!({ "name": "HR <b>handbook</b>", "access": { "scope": "organisation" },
                "owner_group": DEMO_HR_OWNERS }),
    )
    .await;
    assert_eq!(status, 201, "{collection}");
    let id = collection["id"].as_str().unwrap().to_owned();
    let owner = token(&app, "harriet@example.org").await;
    let form = Form::new()
        .part("file", Part::bytes(Vec::new()).file_name("empty.txt"))
        .part(
            "file",
            Part::bytes(b"# Leave\n\nTwenty-five days a year.".to_vec()).file_name("leave.md"),
        );
    let response = client()
        .post(app.url(&format!("/api/v1/collections/{id}/documents")))
        .bearer_auth(&owner)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap().to_owned();
    let done = wait_for_job(&app, &owner, &job_id).await;
    assert_eq!(done["failed"], 1, "{done}");

    // The owner group manages it: the list, then the documents with the failure's reason.
    let harriet = browser(&app, "harriet@example.org").await;
    let (status, html) = page(&app, &harriet, COLLECTIONS).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("data-collection-id=\"{id}\"")),
        "{html}"
    );
    assert!(escaped(&html, "HR <b>handbook</b>"), "{html}");
    assert!(!html.contains("New collection"), "{html}");
    let (status, html) = page(&app, &harriet, &format!("{COLLECTIONS}/{id}")).await;
    assert_eq!(status, 200, "{html}");
    assert!(!html.contains("<b>handbook"), "{html}");
    assert!(
        html.contains("<code class=\"error-code\">empty</code>"),
        "{html}"
    );
    assert!(
        html.contains("leave.md") && html.contains("empty.txt"),
        "{html}"
    );
    assert!(html.contains("badge failed"), "{html}");
    // The upload's job is among the recent ones, with its failed item.
    assert!(
        html.contains(&format!("data-job-id=\"{job_id}\"")),
        "{html}"
    );
    assert!(html.contains("2 of 2 processed"), "{html}");
    assert!(html.contains("/static/upload.js"), "{html}");
    assert!(html.contains("data-upload-path="), "{html}");
    // A job id in the address that is not this collection's is left out, not an error.
    let (status, _) = page(&app, &harriet, &format!("{COLLECTIONS}/{id}?job=nope")).await;
    assert_eq!(status, 200);

    // Someone who may read it but not manage it gets no console page for it.
    let alice = browser(&app, "alice@example.org").await;
    let (status, _) = page(&app, &alice, &format!("{COLLECTIONS}/{id}")).await;
    assert_eq!(status, 404);
    let (status, html) = page(
        &app,
        &browser(&app, "ada@example.org").await,
        &format!("{COLLECTIONS}/{id}"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("Delete collection"), "{html}");
    app.stop().await.unwrap();
}

both_databases!(
    each_section_is_for_those_who_manage_it,
    the_comparison_shows_a_changed_instruction,
    what_people_typed_is_escaped,
    a_failed_document_shows_its_error_code,
);
