//! The console's audit trail, API keys and role bindings pages: who sees them (404 for
//! everyone else), that the audit search, export and check show the API's answers, and that
//! what people typed shows up escaped.

use ajutant_core::config::DEMO_AUDITORS;
use ajutant_testkit::identity::{BrowserSession, access_token, client, demo_user};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{browser, page};

const AUDIT: &str = "/console/audit";
const API_KEYS: &str = "/console/api-keys";
const ROLE_BINDINGS: &str = "/console/role-bindings";

/// A request with the session's cookie (and CSRF token, for changes).
async fn send(
    app: &TestApp,
    session: &BrowserSession,
    method: Method,
    path: &str,
) -> reqwest::Response {
    client()
        .request(method, app.url(path))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap()
}

/// An admin API call with a bearer token; the answer's JSON after checking the status.
async fn admin_call(app: &TestApp, token: &str, method: Method, path: &str, body: Value) -> Value {
    let response = client()
        .request(method, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert!((200..300).contains(&status), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The action of each row of the audit table (the only cell that starts with `<td><code>`).
fn actions(html: &str) -> Vec<String> {
    html.split("<tr data-seq=\"")
        .skip(1)
        .map(|row| {
            let cell = row.split("<td><code>").nth(1).unwrap();
            cell.split("</code>").next().unwrap().to_owned()
        })
        .collect()
}

/// `text` as the templates write it: askama escapes with numeric character references.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// The `href` of the link whose text is `text`, unescaped.
fn link(html: &str, text: &str) -> String {
    let end = html
        .find(&format!(">{text}</a>"))
        .unwrap_or_else(|| panic!("no link {text:?} in {html}"));
    let start = html[..end].rfind("href=\"").unwrap() + "href=\"".len();
    let href = &html[start..end];
    href[..href.find('"').unwrap()].replace("&#38;", "&")
}

async fn only_auditors_ops_and_admins_see_their_sections(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for email in ["alice@example.org", "harriet@example.org"] {
        let session = browser(&app, email).await;
        for path in [AUDIT, API_KEYS, ROLE_BINDINGS] {
            let (status, html) = page(&app, &session, path).await;
            assert_eq!(status, 404, "{email} {path}");
            assert!(!html.contains("Verify integrity"), "{email} {path}");
        }
    }
    for (email, sees_admin) in [
        ("audrey@example.org", false),
        ("oscar@example.org", false),
        ("ada@example.org", true),
    ] {
        let session = browser(&app, email).await;
        let (status, html) = page(&app, &session, AUDIT).await;
        assert_eq!(status, 200, "{email}: {html}");
        assert!(html.contains("<h1>Audit trail</h1>"), "{email}");
        let admin = if sees_admin { 200 } else { 404 };
        for path in [API_KEYS, ROLE_BINDINGS] {
            assert_eq!(page(&app, &session, path).await.0, admin, "{email} {path}");
        }
        // The navigation offers what the viewer may open, and nothing more.
        assert_eq!(
            html.contains("href=\"/console/api-keys\""),
            sees_admin,
            "{email}"
        );
    }
    let session = browser(&app, "audrey@example.org").await;
    let response = send(&app, &session, Method::GET, AUDIT).await;
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    app.stop().await.unwrap();
}

async fn an_auditor_searches_pages_exports_and_verifies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = browser(&app, "alice@example.org").await;
    let audrey = browser(&app, "audrey@example.org").await;

    // Unfiltered, the trail holds more than sign-ins (this very read, for one).
    let (status, html) = page(&app, &audrey, AUDIT).await;
    assert_eq!(status, 200);
    let all = actions(&html);
    assert!(all.iter().any(|a| a == "audit.read"), "{all:?}");
    assert!(all.iter().any(|a| a == "auth.sign_in"), "{all:?}");
    for form_field in [
        "Action</label>",
        "Actor</label>",
        "Outcome</label>",
        "Since</label>",
    ] {
        assert!(html.contains(form_field), "{form_field}");
    }
    assert!(html.contains(">Verify integrity</button>"));
    assert!(html.contains("<p id=\"verify-result\" role=\"status\""));

    // As the form sends it: every field, empty ones included.
    let search = "/console/audit?action=auth.&actor=&outcome=&since=";
    let (status, html) = page(&app, &audrey, search).await;
    assert_eq!(status, 200, "{html}");
    let found = actions(&html);
    assert!(found.len() >= 2, "both sign-ins: {found:?}");
    assert!(found.iter().all(|a| a.starts_with("auth.")), "{found:?}");
    assert!(
        html.contains("value=\"auth.\""),
        "the form keeps the filter"
    );

    // The exports carry the filters and come as downloads.
    let csv_link = link(&html, "Export CSV");
    assert!(
        csv_link.starts_with("/api/v1/audit/export?format=csv"),
        "{csv_link}"
    );
    assert!(csv_link.contains("action=auth."), "{csv_link}");
    let response = send(&app, &audrey, Method::GET, &csv_link).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = response.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains(".csv\""), "{disposition}");
    let csv = response.text().await.unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "seq,id,occurred_at,actor_id,actor_name,actor_kind,action,resource,outcome,\
         request_id,trace_id,client_addr,details,prev_hash,hash"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), found.len(), "{csv}");
    for row in rows {
        // The cells before `details` hold no commas in these records.
        let action = row.split(',').nth(6).unwrap();
        assert!(action.starts_with("auth."), "{row}");
    }

    let jsonl_link = link(&html, "Export JSON Lines");
    let response = send(&app, &audrey, Method::GET, &jsonl_link).await;
    assert_eq!(response.status().as_u16(), 200);
    let jsonl = response.text().await.unwrap();
    let records: Vec<Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), found.len(), "{jsonl}");
    assert!(
        records
            .iter()
            .all(|r| r["action"].as_str().unwrap().starts_with("auth."))
    );
    assert!(
        records[0]["seq"].as_i64() > records[1]["seq"].as_i64(),
        "newest first"
    );

    // Someone who may not read the trail cannot export it either; a bad format is refused.
    let response = send(&app, &alice, Method::GET, &csv_link).await;
    assert_eq!(response.status().as_u16(), 404);
    let response = send(
        &app,
        &audrey,
        Method::GET,
        "/api/v1/audit/export?format=xml",
    )
    .await;
    assert_eq!(response.status().as_u16(), 400);

    // A filter the API refuses is said beside the form.
    let (status, html) = page(&app, &audrey, "/console/audit?since=yesterday").await;
    assert_eq!(status, 400);
    assert!(
        html.contains("class=\"form-error\" role=\"alert\""),
        "{html}"
    );
    assert!(html.contains("since must be an RFC 3339 time"), "{html}");

    // More records than a page: the next page keeps the filter.
    for _ in 0..55 {
        let response = send(&app, &audrey, Method::GET, "/api/v1/audit?limit=1").await;
        assert_eq!(response.status().as_u16(), 200);
    }
    let (_, html) = page(&app, &audrey, "/console/audit?action=audit.read").await;
    assert_eq!(actions(&html).len(), 50);
    let next = link(&html, "Next page");
    assert!(next.contains("cursor="), "{next}");
    assert!(next.contains("action=audit.read"), "{next}");
    let (status, html) = page(&app, &audrey, &next).await;
    assert_eq!(status, 200);
    let rest = actions(&html);
    assert!(!rest.is_empty());
    assert!(rest.iter().all(|a| a == "audit.read"), "{rest:?}");
    assert!(html.contains(">Newest records</a>"));

    let response = send(&app, &audrey, Method::GET, "/api/v1/audit/verify").await;
    let verified: Value = response.json().await.unwrap();
    assert_eq!(verified["status"], "intact", "{verified}");
    app.stop().await.unwrap();
}

async fn an_admin_sees_keys_and_bindings_escaped(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let session = browser(&app, "ada@example.org").await;

    // The API refuses such a name; one written straight to the database is still shown as text.
    let refused = client()
        .post(app.url("/api/v1/admin/api-keys"))
        .bearer_auth(&ada)
        .json(&json!({ "name": "<b>x</b>" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let now = time::OffsetDateTime::now_utc();
    app.store()
        .await
        .insert_api_key(&ajutant_store::ApiKey {
            id: "ajk_0123456789".to_owned(),
            name: "<b>x</b>".to_owned(),
            groups: vec![],
            secret_hash: "0".repeat(64),
            owner_subject: None,
            created_by: "test".to_owned(),
            created_at: now,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        })
        .await
        .unwrap();
    let created = admin_call(
        &app,
        &ada,
        Method::POST,
        "/api/v1/admin/api-keys",
        json!({ "name": "build-bot", "groups": ["<i>group</i>"], "expires_at": "2999-01-01T00:00:00Z" }),
    )
    .await;
    let key_id = created["id"].as_str().unwrap().to_owned();
    let secret = created["key"].as_str().unwrap().to_owned();

    let (status, html) = page(&app, &session, API_KEYS).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("<td>{}</td>", escaped("<b>x</b>"))),
        "{html}"
    );
    assert!(!html.contains("<b>x</b>"));
    assert!(html.contains(&escaped("<i>group</i>")));
    assert!(!html.contains("<i>group</i>"));
    assert!(html.contains(&format!("<code>{key_id}</code>")));
    assert!(html.contains("datetime=\"2999-01-01T00:00:00Z\""));
    assert!(
        !html.contains(&secret),
        "the key is shown only when it is made"
    );
    assert!(html.contains("data-after=\"event:api-key-created\""));
    assert!(html.contains("<pre id=\"new-key\" role=\"status\""));
    assert!(html.contains(&format!("data-revoke-key=\"{key_id}\"")));

    // Revoked, with a reason: the button goes, the state and the trail say so.
    let response = client()
        .delete(app.url(&format!(
            "/api/v1/admin/api-keys/{key_id}?reason=left%20in%20a%20log"
        )))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
    let (_, html) = page(&app, &session, API_KEYS).await;
    assert!(!html.contains(&format!("data-revoke-key=\"{key_id}\"")));
    assert!(html.contains(">revoked</span>"));
    let (_, html) = page(&app, &session, "/console/audit?action=api_key.revoked").await;
    assert_eq!(actions(&html), ["api_key.revoked"]);
    assert!(
        html.contains(&escaped(r#""reason": "left in a log""#)),
        "{html}"
    );

    // Role bindings: the seeded ones, and a new one whose group id is markup.
    let (status, html) = page(&app, &session, ROLE_BINDINGS).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains(&format!("<code>{DEMO_AUDITORS}</code>")),
        "{html}"
    );
    for role in ["assistant_owner", "it_ops", "auditor", "platform_admin"] {
        assert!(
            html.contains(&format!("<option value=\"{role}\">")),
            "{role}"
        );
    }
    let binding = admin_call(
        &app,
        &ada,
        Method::POST,
        "/api/v1/admin/role-bindings",
        json!({ "role": "auditor", "group": "<script>alert(1)</script>" }),
    )
    .await;
    let binding_id = binding["id"].as_str().unwrap().to_owned();
    let (_, html) = page(&app, &session, ROLE_BINDINGS).await;
    assert!(
        html.contains(&escaped("<script>alert(1)</script>")),
        "{html}"
    );
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains(&format!(
        "data-path=\"/api/v1/admin/role-bindings/{binding_id}\""
    )));
    // The audit trail shows the binding's details escaped too.
    let (_, html) = page(&app, &session, "/console/audit?action=role_binding.").await;
    assert_eq!(actions(&html), ["role_binding.created"]);
    assert!(html.contains(&escaped("<script>alert(1)</script>")));
    assert!(!html.contains("<script>alert(1)"));

    let response = send(
        &app,
        &session,
        Method::DELETE,
        &format!("/api/v1/admin/role-bindings/{binding_id}"),
    )
    .await;
    assert_eq!(response.status().as_u16(), 204);
    let (_, html) = page(&app, &session, ROLE_BINDINGS).await;
    assert!(!html.contains(&binding_id));
    app.stop().await.unwrap();
}

both_databases!(
    only_auditors_ops_and_admins_see_their_sections,
    an_auditor_searches_pages_exports_and_verifies,
    an_admin_sees_keys_and_bindings_escaped,
);
