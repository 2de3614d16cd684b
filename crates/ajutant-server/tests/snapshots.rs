//! What the server answers, pinned: the JSON, SSE and HTML of a representative set of routes,
//! walked through once as the demo's people (an employee, the helpdesk's owner, IT operations,
//! an auditor and the platform admin), snapshotted per database with ids, times and other
//! per-run values redacted. A refactoring that changes any of these answers fails here; a
//! deliberate change is reviewed as a snapshot diff (`cargo insta review`, or delete the
//! `.snap` file and run the test again).

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::time::{Duration, Instant};

use ajutant_testkit::identity::{BrowserSession, access_token, client, demo_user, sign_in};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

both_databases!(the_demo_walkthrough_answers_as_before);

/// One request's answer, as it is pinned: status, content type and the redacted body.
fn pinned(status: u16, content_type: &str, body: &str) -> String {
    let body = match serde_json::from_str::<Value>(body) {
        Ok(mut value) if content_type.contains("json") => {
            redact_json(&mut value);
            serde_json::to_string_pretty(&value).unwrap()
        }
        // An event stream: each `data:` line is JSON of its own.
        _ if content_type.starts_with("text/event-stream") => body
            .lines()
            .map(|line| {
                match line
                    .strip_prefix("data: ")
                    .map(serde_json::from_str::<Value>)
                {
                    Some(Ok(mut value)) => {
                        redact_json(&mut value);
                        format!("data: {value}")
                    }
                    _ => line.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => body.to_owned(),
    };
    format!("status: {status}\ncontent-type: {content_type}\n\n{body}\n")
}

/// Values that differ from run to run by their key rather than by their shape.
fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                let volatile = key.ends_with("latency_ms")
                    || key.ends_with("_ms") && field.is_number()
                    || key == "csrf_token"
                    || key == "next_cursor" && field.is_string()
                    || key == "hash"
                    || key == "prev_hash"
                    || key == "head"
                    // Records written beside the request (a key's use) may land before or
                    // after the count is taken.
                    || key == "records" && field.is_number();
                if volatile && !field.is_null() {
                    *field = Value::String(format!("[{key}]"));
                } else {
                    redact_json(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

/// Text filters for both JSON and HTML: ids, times and trace ids.
fn settings(backend: Backend) -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_suffix(match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    });
    settings.set_prepend_module_to_snapshot(false);
    settings.add_filter(r"127\.0\.0\.1:\d+", "[address]");
    settings.add_filter(
        r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
        "[uuid]",
    );
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})",
        "[time]",
    );
    settings.add_filter(r"\b[0-9a-f]{32}\b", "[trace]");
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[sha256]");
    // The CSRF token in pages, and cursors (base64url of a time and an id).
    settings.add_filter(r#"(name="csrf-token" content=")[^"]+"#, "$1[csrf]");
    settings.add_filter(r#"(data-csrf=")[^"]+"#, "$1[csrf]");
    settings.add_filter(r#"(name="csrf_token" value=")[^"]+"#, "$1[csrf]");
    settings.add_filter(r#"(cursor=)[A-Za-z0-9_~.%-]+"#, "$1[cursor]");
    settings
}

/// A request of the walk: method, path and JSON body.
struct Call {
    method: Method,
    path: String,
    body: Option<Value>,
}

impl Call {
    fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    fn delete(path: impl Into<String>) -> Self {
        Self {
            method: Method::DELETE,
            path: path.into(),
            body: None,
        }
    }

    fn with(method: Method, path: impl Into<String>, body: Value) -> Self {
        Self {
            method,
            path: path.into(),
            body: Some(body),
        }
    }
}

struct Walk<'a> {
    app: &'a TestApp,
    settings: insta::Settings,
}

impl Walk<'_> {
    async fn json(&self, name: &str, token: &str, call: Call) -> Value {
        let mut request = client()
            .request(call.method, self.app.url(&call.path))
            .bearer_auth(token);
        if let Some(body) = call.body {
            request = request.json(&body);
        }
        self.pin(name, request).await
    }

    async fn page(&self, name: &str, session: &BrowserSession, path: &str) {
        let request = client()
            .get(self.app.url(path))
            .header("cookie", &session.cookie);
        self.pin(name, request).await;
    }

    async fn pin(&self, name: &str, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap();
        self.settings.bind(|| {
            insta::assert_snapshot!(name, pinned(status, &content_type, &text));
        });
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }
}

async fn the_demo_walkthrough_answers_as_before(backend: Backend) {
    // Tests run in the crate's folder, where the local embedding model is not found, so the
    // demo's retrieval is lexical whether or not the model has been fetched.
    let app = TestApp::spawn_with(backend, |config| config.grounding.demo = true).await;
    let walk = Walk {
        app: &app,
        settings: settings(backend),
    };
    let alice = access_token(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let harriet = access_token(&app, &demo_user("harriet@example.org"))
        .await
        .unwrap();
    let oscar = access_token(&app, &demo_user("oscar@example.org"))
        .await
        .unwrap();
    let audrey = access_token(&app, &demo_user("audrey@example.org"))
        .await
        .unwrap();
    let ada = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let collection = wait_for_demo(&app, &ada).await;

    // Who the caller is; a route that does not exist.
    walk.json("me", &alice, Call::get("/api/v1/me")).await;
    walk.json("no_route", &alice, Call::get("/api/v1/nothing-here"))
        .await;

    // Assistants as a user, as the owner and as the admin; a bad edit; versions.
    walk.json(
        "assistants_as_user",
        &alice,
        Call::get("/api/v1/assistants"),
    )
    .await;
    walk.json(
        "assistant_as_owner",
        &harriet,
        Call::get("/api/v1/assistants/helpdesk"),
    )
    .await;
    walk.json(
        "assistant_versions",
        &ada,
        Call::get("/api/v1/assistants/helpdesk/versions"),
    )
    .await;
    walk.json(
        "assistant_create_invalid",
        &ada,
        Call::with(
            Method::POST,
            "/api/v1/assistants",
            json!({ "id": "Bad Id", "name": "", "deployment": "nope",
            "access": { "scope": "organisation" } }),
        ),
    )
    .await;
    walk.json(
        "assistant_edit_as_user",
        &alice,
        Call::with(
            Method::PUT,
            "/api/v1/assistants/helpdesk",
            json!({ "base_version": 1, "name": "Mine now", "deployment": "offline",
            "access": { "scope": "organisation" } }),
        ),
    )
    .await;

    // Collections, their documents and a security-trimmed search.
    walk.json(
        "collections_as_admin",
        &ada,
        Call::get("/api/v1/collections"),
    )
    .await;
    walk.json(
        "collections_as_user",
        &alice,
        Call::get("/api/v1/collections"),
    )
    .await;
    walk.json(
        "documents",
        &ada,
        Call::get(format!("/api/v1/collections/{collection}/documents")),
    )
    .await;
    walk.json(
        "search",
        &alice,
        Call::with(
            Method::POST,
            format!("/api/v1/collections/{collection}/search"),
            json!({ "query": "How do I request a new laptop?", "limit": 3 }),
        ),
    )
    .await;
    walk.json(
        "search_unknown_field",
        &alice,
        Call::with(
            Method::POST,
            format!("/api/v1/collections/{collection}/search"),
            json!({ "query": "laptop", "top_k": 3 }),
        ),
    )
    .await;
    walk.json(
        "collection_delete_as_user",
        &alice,
        Call::delete(format!("/api/v1/collections/{collection}")),
    )
    .await;

    // A chat turn as JSON and as an event stream; the conversation after them.
    let conversation = walk
        .json(
            "conversation_created",
            &alice,
            Call::with(
                Method::POST,
                "/api/v1/conversations",
                json!({ "assistant_id": "helpdesk" }),
            ),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let turn = walk
        .json(
            "turn_json",
            &alice,
            Call::with(
                Method::POST,
                format!("/api/v1/conversations/{conversation}/messages"),
                json!({ "content": "How do I request a new laptop?" }),
            ),
        )
        .await;
    let answer = turn["message"]["id"].as_str().unwrap().to_owned();
    let stream = client()
        .post(app.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(&alice)
        .header("accept", "text/event-stream")
        .json(&json!({ "content": "And a phone?" }));
    walk.pin("turn_sse", stream).await;
    walk.json(
        "turn_empty",
        &alice,
        Call::with(
            Method::POST,
            format!("/api/v1/conversations/{conversation}/messages"),
            json!({ "content": "" }),
        ),
    )
    .await;
    walk.json(
        "conversation",
        &alice,
        Call::get(format!("/api/v1/conversations/{conversation}")),
    )
    .await;
    walk.json(
        "conversation_as_other",
        &harriet,
        Call::get(format!("/api/v1/conversations/{conversation}")),
    )
    .await;
    walk.json("conversations", &alice, Call::get("/api/v1/conversations"))
        .await;
    // Ids that are not ids (a NUL, a path, an injection) name nothing: the same 404.
    for (name, id) in [
        ("conversation_nul", "%00"),
        ("conversation_traversal", "..%2F..%2Fetc%2Fpasswd"),
        ("conversation_injection", "1%27%20OR%20%271%27%3D%271"),
    ] {
        walk.json(
            name,
            &alice,
            Call::get(format!("/api/v1/conversations/{id}")),
        )
        .await;
    }
    walk.json(
        "collection_nul",
        &alice,
        Call::get("/api/v1/collections/%00"),
    )
    .await;
    walk.json(
        "incident_nul",
        &oscar,
        Call::get("/api/v1/ops/incidents/%00"),
    )
    .await;

    // Feedback that escalates; the owner's inbox; IT operations' incidents.
    walk.json(
        "feedback_serious",
        &alice,
        Call::with(
            Method::POST,
            format!("/api/v1/messages/{answer}/feedback"),
            json!({ "helpful": false, "categories": ["factual_error"],
            "comment": "The portal link is wrong", "time_saved_minutes": 0 }),
        ),
    )
    .await;
    walk.json(
        "feedback_unknown_category",
        &alice,
        Call::with(
            Method::POST,
            format!("/api/v1/messages/{answer}/feedback"),
            json!({ "categories": ["nonsense"] }),
        ),
    )
    .await;
    walk.json(
        "feedback_inbox",
        &harriet,
        Call::get("/api/v1/assistants/helpdesk/feedback"),
    )
    .await;
    walk.json(
        "feedback_inbox_as_user",
        &alice,
        Call::get("/api/v1/assistants/helpdesk/feedback"),
    )
    .await;
    let incidents = walk
        .json("incidents", &oscar, Call::get("/api/v1/ops/incidents"))
        .await;
    let incident = incidents["incidents"][0]["id"].as_str().unwrap().to_owned();
    walk.json(
        "incident_acknowledged",
        &oscar,
        Call::with(
            Method::PATCH,
            format!("/api/v1/ops/incidents/{incident}"),
            json!({ "status": "acknowledged", "note": "Looking" }),
        ),
    )
    .await;
    walk.json(
        "incident_bad_transition",
        &oscar,
        Call::with(
            Method::PATCH,
            format!("/api/v1/ops/incidents/{incident}"),
            json!({ "status": "acknowledged" }),
        ),
    )
    .await;
    walk.json(
        "incidents_as_user",
        &alice,
        Call::get("/api/v1/ops/incidents"),
    )
    .await;

    // Kill switches: IT operations pulls the helpdesk; a turn is refused; it comes back.
    walk.json(
        "switch_killed",
        &oscar,
        Call::with(
            Method::POST,
            "/api/v1/kill-switches",
            json!({ "target": "assistant", "id": "helpdesk", "state": "killed",
            "reason": "snapshot walk" }),
        ),
    )
    .await;
    walk.json("switches", &oscar, Call::get("/api/v1/kill-switches"))
        .await;
    walk.json(
        "turn_while_killed",
        &alice,
        Call::with(
            Method::POST,
            format!("/api/v1/conversations/{conversation}/messages"),
            json!({ "content": "Still there?" }),
        ),
    )
    .await;
    walk.json(
        "switch_revived",
        &oscar,
        Call::with(
            Method::POST,
            "/api/v1/kill-switches",
            json!({ "target": "assistant", "id": "helpdesk", "state": "active",
            "reason": "snapshot walk over" }),
        ),
    )
    .await;

    // The auditor's view; administration.
    walk.json("audit_verify", &audrey, Call::get("/api/v1/audit/verify"))
        .await;
    walk.json("audit_as_user", &alice, Call::get("/api/v1/audit"))
        .await;
    walk.json(
        "role_bindings",
        &ada,
        Call::get("/api/v1/admin/role-bindings"),
    )
    .await;
    walk.json("deployments", &ada, Call::get("/api/v1/admin/deployments"))
        .await;

    // Pages, rendered for a signed-in browser.
    let alice_browser = sign_in(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let ada_browser = sign_in(&app, &demo_user("ada@example.org")).await.unwrap();
    walk.page("page_chat", &alice_browser, "/chat").await;
    walk.page(
        "page_conversation",
        &alice_browser,
        &format!("/chat/{conversation}"),
    )
    .await;
    walk.page(
        "page_console_as_user",
        &alice_browser,
        "/console/assistants",
    )
    .await;
    walk.page(
        "page_console_assistants",
        &ada_browser,
        "/console/assistants",
    )
    .await;
    walk.page(
        "page_console_assistant",
        &ada_browser,
        "/console/assistants/helpdesk",
    )
    .await;
    walk.page(
        "page_console_collections",
        &ada_browser,
        "/console/collections",
    )
    .await;
    app.stop().await.unwrap();
}

/// Waits until the demo handbook is ingested; its collection's id.
async fn wait_for_demo(app: &TestApp, admin: &str) -> String {
    let started = Instant::now();
    loop {
        let collections: Value = client()
            .get(app.url("/api/v1/collections"))
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let handbook = &collections[0];
        let id = handbook["id"].as_str().unwrap_or_default().to_owned();
        if !id.is_empty() {
            let jobs: Value = client()
                .get(app.url(&format!("/api/v1/collections/{id}/jobs")))
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let done = jobs.as_array().is_some_and(|jobs| {
                !jobs.is_empty() && jobs.iter().all(|j| j["status"] == "succeeded")
            });
            if done {
                return id;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo was not ingested: {collections}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
