//! Grounded answers end to end, over HTTP, on SQLite and PostgreSQL (pgvector): upload to a
//! collection scoped to one group, ask its assistant, get a cited answer; someone outside the
//! group gets neither the passage nor the conversation, even quoting the passage's exact text;
//! a deleted document leaves retrieval at once; hostile files fail alone.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::io::Write;
use std::time::{Duration, Instant};

use ajutant_core::audit::Outcome;
use ajutant_core::config::{
    DEMO_ADMINS, DEMO_EMPLOYEES, DEMO_HR_OWNERS, DEMO_IT_OPS, DeploymentConfig,
};
use ajutant_store::AuditQuery;
use ajutant_testkit::identity::{access_token, client, demo_user};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

const CANARY: &str = "zebra-quartz-4471";

struct People {
    admin: String,
    /// In the HR owners group (group A) and employees.
    harriet: String,
    /// In IT operations (group B) and employees, not in HR owners.
    oscar: String,
}

async fn people(app: &TestApp) -> People {
    People {
        admin: access_token(app, &demo_user("ada@example.org"))
            .await
            .unwrap(),
        harriet: access_token(app, &demo_user("harriet@example.org"))
            .await
            .unwrap(),
        oscar: access_token(app, &demo_user("oscar@example.org"))
            .await
            .unwrap(),
    }
}

async fn call(
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

async fn json_ok(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status, body: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn create_collection(app: &TestApp, admin: &str, body: Value) -> String {
    let created = json_ok(
        call(app, Method::POST, "/api/v1/collections", admin, Some(body)).await,
        201,
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

/// Uploads `files` (name, bytes) and waits for the job to end; returns the finished job.
async fn upload(
    app: &TestApp,
    token: &str,
    collection: &str,
    files: Vec<(&str, Vec<u8>)>,
    acl: Option<&[&str]>,
) -> Value {
    let mut form = Form::new();
    for (name, bytes) in files {
        form = form.part("file", Part::bytes(bytes).file_name(name.to_owned()));
    }
    if let Some(acl) = acl {
        form = form.text("acl", serde_json::to_string(acl).unwrap());
    }
    let response = client()
        .post(app.url(&format!("/api/v1/collections/{collection}/documents")))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let job = json_ok(response, 202).await;
    wait_for_job(app, token, job["id"].as_str().unwrap()).await
}

async fn wait_for_job(app: &TestApp, token: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let job = json_ok(
            call(
                app,
                Method::GET,
                &format!("/api/v1/ingestion-jobs/{id}"),
                token,
                None,
            )
            .await,
            200,
        )
        .await;
        let status = job["status"].as_str().unwrap();
        if status == "succeeded" || status == "failed" {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "job still {status}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn start_conversation(app: &TestApp, token: &str, assistant: &str) -> String {
    let created = json_ok(
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

async fn search(app: &TestApp, token: &str, collection: &str, query: &str, mode: &str) -> Value {
    json_ok(
        call(
            app,
            Method::POST,
            &format!("/api/v1/collections/{collection}/search"),
            token,
            Some(json!({ "query": query, "mode": mode, "limit": 20 })),
        )
        .await,
        200,
    )
    .await
}

/// The events of a streamed turn: (event, data).
async fn ask(
    app: &TestApp,
    token: &str,
    conversation: &str,
    question: &str,
) -> Vec<(String, Value)> {
    let response = client()
        .post(app.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(token)
        .header("accept", "text/event-stream")
        .json(&json!({ "content": question }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let text = response.text().await.unwrap();
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut event = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(e) = line.strip_prefix("event: ") {
                    event = e.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (event, serde_json::from_str(&data).unwrap())
        })
        .collect()
}

fn event<'a>(events: &'a [(String, Value)], name: &str) -> &'a Value {
    &events
        .iter()
        .find(|(e, _)| e == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
        .1
}

async fn audit_count(app: &TestApp, action: &str, outcome: Outcome) -> usize {
    app.store()
        .await
        .audit_search(&AuditQuery {
            action: Some(action.to_owned()),
            outcome: Some(outcome),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .len()
}

async fn only_group_a_is_grounded_on_group_a_documents(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = people(&app).await;
    let collection = create_collection(
        &app,
        &p.admin,
        json!({
            "name": "HR confidential",
            "access": { "scope": "groups", "groups": [DEMO_HR_OWNERS] },
            "owner_group": DEMO_HR_OWNERS,
            "embedding_deployment": "offline",
        }),
    )
    .await;
    let document = format!(
        "# Bonus policy\n\nAnnual bonuses are paid in March. The internal code for this \
         policy is {CANARY}.\n\n# Company cars\n\nCompany cars are leased for three years.\n"
    );
    let job = upload(
        &app,
        &p.harriet,
        &collection,
        vec![("bonus.md", document.into_bytes())],
        None,
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["added"], 1, "{job}");
    assert!(job["chunks"].as_i64().unwrap() >= 2, "{job}");

    let assistant = json_ok(
        call(
            &app,
            Method::POST,
            "/api/v1/assistants",
            &p.admin,
            Some(json!({
                "id": "hr-bot",
                "name": "HR bot",
                "deployment": "offline",
                "collections": [collection],
                "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
                "owner_group": DEMO_HR_OWNERS,
            })),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(assistant["version"], 1);

    // Harriet, in group A, gets a cited answer.
    let harriets = start_conversation(&app, &p.harriet, "hr-bot").await;
    let events = ask(&app, &p.harriet, &harriets, "When are annual bonuses paid?").await;
    assert_eq!(event(&events, "start")["assistant_version"], 1);
    let sources = event(&events, "citations")["citations"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!sources.is_empty(), "{events:?}");
    assert_eq!(sources[0]["title"], "Bonus policy", "{sources:?}");
    let deltas: String = events
        .iter()
        .filter(|(e, _)| e == "delta")
        .map(|(_, d)| d["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(deltas.contains("March"), "{deltas}");
    let done = &event(&events, "done")["message"];
    assert_eq!(done["status"], "complete");
    assert_eq!(done["content"].as_str().unwrap(), deltas);
    let cited = done["citations"].as_array().unwrap();
    assert!(!cited.is_empty(), "the answer cites nothing: {done}");
    assert_eq!(cited[0]["title"], "Bonus policy");
    assert_eq!(done["assistant_version"], 1);
    assert_eq!(done["trace_id"].as_str().unwrap().len(), 32);

    // Oscar, only in group B, quotes the passage's exact text: nothing of it reaches him.
    let oscars = start_conversation(&app, &p.oscar, "hr-bot").await;
    let question = format!("The internal code for this policy is {CANARY}. When are bonuses paid?");
    let events = ask(&app, &p.oscar, &oscars, &question).await;
    let sources = event(&events, "citations")["citations"]
        .as_array()
        .unwrap()
        .clone();
    assert!(sources.is_empty(), "{sources:?}");
    let done = &event(&events, "done")["message"];
    assert!(done["citations"].as_array().unwrap().is_empty());
    assert!(
        !done["content"].as_str().unwrap().contains("March"),
        "{done}"
    );
    assert!(!done.to_string().contains("Bonus policy"));

    // Nor does he see the collection in search, in any mode, or in the list.
    for mode in ["hybrid", "lexical", "vector"] {
        let response = call(
            &app,
            Method::POST,
            &format!("/api/v1/collections/{collection}/search"),
            &p.oscar,
            Some(json!({ "query": CANARY, "mode": mode })),
        )
        .await;
        assert_eq!(response.status(), 404);
    }
    let listed = json_ok(
        call(&app, Method::GET, "/api/v1/collections", &p.oscar, None).await,
        200,
    )
    .await;
    assert!(!listed.to_string().contains(&collection));
    // Harriet does find it, by its exact text, lexically and by vector.
    for mode in ["hybrid", "lexical", "vector"] {
        let found = search(&app, &p.harriet, &collection, CANARY, mode).await;
        assert_eq!(found["mode"], mode);
        assert!(found.to_string().contains(CANARY), "{mode}: {found}");
    }

    // Oscar cannot read, export, rename, continue or delete Harriet's conversation.
    let denied_before = audit_count(&app, "conversation.access", Outcome::Denied).await;
    for (method, path, body) in [
        (
            Method::GET,
            format!("/api/v1/conversations/{harriets}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/conversations/{harriets}/export?format=markdown"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/conversations/{harriets}"),
            Some(json!({ "title": "mine" })),
        ),
        (
            Method::POST,
            format!("/api/v1/conversations/{harriets}/messages"),
            Some(json!({ "content": "hello" })),
        ),
        (
            Method::DELETE,
            format!("/api/v1/conversations/{harriets}"),
            None,
        ),
    ] {
        let response = call(&app, method.clone(), &path, &p.oscar, body).await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    assert_eq!(
        audit_count(&app, "conversation.access", Outcome::Denied).await,
        denied_before + 5
    );
    let listed = json_ok(
        call(&app, Method::GET, "/api/v1/conversations", &p.oscar, None).await,
        200,
    )
    .await;
    assert_eq!(listed["conversations"].as_array().unwrap().len(), 1);

    // Harriet's conversation is intact, exportable, and the turn was audited.
    let export = call(
        &app,
        Method::GET,
        &format!("/api/v1/conversations/{harriets}/export?format=markdown"),
        &p.harriet,
        None,
    )
    .await;
    assert_eq!(export.status(), 200);
    let markdown = export.text().await.unwrap();
    assert!(markdown.contains("When are annual bonuses paid?"));
    assert!(markdown.contains("[1] Bonus policy"), "{markdown}");
    assert!(audit_count(&app, "chat.turn", Outcome::Allowed).await >= 2);

    // Deleting the document takes its passages out of retrieval at once.
    let documents = json_ok(
        call(
            &app,
            Method::GET,
            &format!("/api/v1/collections/{collection}/documents"),
            &p.harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    let id = documents[0]["id"].as_str().unwrap();
    let response = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/collections/{collection}/documents/{id}"),
        &p.harriet,
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    for mode in ["hybrid", "lexical", "vector"] {
        let found = search(&app, &p.harriet, &collection, CANARY, mode).await;
        assert!(
            found["hits"].as_array().unwrap().is_empty(),
            "{mode}: {found}"
        );
    }
    let events = ask(&app, &p.harriet, &harriets, "When are annual bonuses paid?").await;
    assert!(
        event(&events, "citations")["citations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.stop().await.unwrap();
}

async fn a_documents_own_acl_narrows_an_organisation_wide_collection(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = people(&app).await;
    let collection = create_collection(
        &app,
        &p.admin,
        json!({
            "name": "Everyone's handbook",
            "access": { "scope": "organisation" },
            "embedding_deployment": "offline",
        }),
    )
    .await;
    let public = upload(
        &app,
        &p.admin,
        &collection,
        vec![(
            "canteen.md",
            b"# Canteen\n\nThe canteen opens at noon.".to_vec(),
        )],
        None,
    )
    .await;
    assert_eq!(public["added"], 1, "{public}");
    let restricted = upload(
        &app,
        &p.admin,
        &collection,
        vec![(
            "salaries.md",
            format!("# Salary bands\n\nThe canteen budget code is {CANARY}.").into_bytes(),
        )],
        Some(&[DEMO_HR_OWNERS]),
    )
    .await;
    assert_eq!(restricted["added"], 1, "{restricted}");
    for mode in ["hybrid", "lexical", "vector"] {
        let seen = search(
            &app,
            &p.oscar,
            &collection,
            &format!("canteen {CANARY}"),
            mode,
        )
        .await;
        assert!(!seen.to_string().contains(CANARY), "{mode}: {seen}");
        assert!(seen.to_string().contains("noon"), "{mode}: {seen}");
        let seen = search(
            &app,
            &p.harriet,
            &collection,
            &format!("canteen {CANARY}"),
            mode,
        )
        .await;
        assert!(seen.to_string().contains(CANARY), "{mode}: {seen}");
    }
    // Uploading the same bytes again is skipped by content hash.
    let again = upload(
        &app,
        &p.admin,
        &collection,
        vec![(
            "canteen.md",
            b"# Canteen\n\nThe canteen opens at noon.".to_vec(),
        )],
        None,
    )
    .await;
    assert_eq!(again["unchanged"], 1, "{again}");
    app.stop().await.unwrap();
}

/// A DOCX whose document.xml inflates to 1 GiB of zeros.
fn zip_bomb() -> Vec<u8> {
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("[Content_Types].xml", options).unwrap();
        zip.write_all(b"<Types/>").unwrap();
        zip.start_file("word/document.xml", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
    }
    buffer.into_inner()
}

async fn hostile_files_fail_alone_with_clear_reasons(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.grounding.max_document_bytes = 2 * 1024 * 1024;
    })
    .await;
    let p = people(&app).await;
    let collection = create_collection(
        &app,
        &p.admin,
        json!({ "name": "Inbox", "access": { "scope": "organisation" } }),
    )
    .await;
    let broken_pdf = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\nxref\n0 2\nthis is not an xref table\ntrailer\n<< /Root 1 0 R /Size 9 >>\nstartxref\n999999\n%%EOF\n".to_vec();
    let job = upload(
        &app,
        &p.admin,
        &collection,
        vec![
            ("empty.txt", Vec::new()),
            ("empty.pdf", Vec::new()),
            ("broken.pdf", broken_pdf),
            ("bomb.docx", zip_bomb()),
            ("huge.txt", vec![b'a'; 2 * 1024 * 1024 + 1]),
            ("latin1.txt", b"caf\xe9 cr\xe8me".to_vec()),
            ("fine.md", b"# Fine\n\nThis one is fine.".to_vec()),
        ],
        None,
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["failed"], 6, "{job}");
    assert_eq!(job["added"], 1, "{job}");
    let items = job["items"].as_array().unwrap();
    let code = |name: &str| {
        let item = items.iter().find(|i| i["name"] == name).unwrap();
        assert!(
            item["error"].as_str().is_some_and(|e| !e.is_empty()) || item["status"] == "added",
            "{item}"
        );
        item["error_code"].as_str().unwrap_or("").to_owned()
    };
    assert_eq!(code("empty.txt"), "empty");
    assert_eq!(code("empty.pdf"), "empty");
    assert_eq!(code("broken.pdf"), "corrupt");
    assert_eq!(code("bomb.docx"), "zip_bomb");
    assert_eq!(code("huge.txt"), "too_large");
    assert_eq!(code("latin1.txt"), "invalid_utf8");
    assert_eq!(code("fine.md"), "");
    // Failed documents show in the collection with their reasons; the good one is searchable.
    let documents = json_ok(
        call(
            &app,
            Method::GET,
            &format!("/api/v1/collections/{collection}/documents"),
            &p.admin,
            None,
        )
        .await,
        200,
    )
    .await;
    let failed = documents
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["status"] == "failed")
        .count();
    assert_eq!(failed, 5, "{documents}");
    let found = search(&app, &p.admin, &collection, "fine", "lexical").await;
    assert_eq!(found["hits"].as_array().unwrap().len(), 1, "{found}");
    let health = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await.unwrap();
}

async fn assistants_are_versioned_and_turns_record_their_version(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let p = people(&app).await;
    let definition = |instructions: &str| {
        json!({
            "name": "Helper",
            "instructions": instructions,
            "deployment": "offline",
            "access": { "scope": "organisation" },
            "owner_group": DEMO_HR_OWNERS,
            "starters": ["Hi?"],
        })
    };
    let mut body = definition("v1");
    body["id"] = json!("helper");
    json_ok(
        call(
            &app,
            Method::POST,
            "/api/v1/assistants",
            &p.admin,
            Some(body),
        )
        .await,
        201,
    )
    .await;
    // Not an owner: 404. The owner group: a new version. A stale base: 409.
    let response = call(
        &app,
        Method::PUT,
        "/api/v1/assistants/helper",
        &p.oscar,
        Some(definition("oscar's")),
    )
    .await;
    assert_eq!(response.status(), 404);
    let mut edit = definition("v2");
    edit["base_version"] = json!(1);
    let edited = json_ok(
        call(
            &app,
            Method::PUT,
            "/api/v1/assistants/helper",
            &p.harriet,
            Some(edit.clone()),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(edited["version"], 2);
    let stale = call(
        &app,
        Method::PUT,
        "/api/v1/assistants/helper",
        &p.harriet,
        Some(edit),
    )
    .await;
    assert_eq!(stale.status(), 409);
    let versions = json_ok(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/helper/versions",
            &p.harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(versions[0]["definition"]["instructions"], "v1");
    // A bad definition is refused with the reasons.
    let mut bad = definition("x");
    bad["deployment"] = json!("nope");
    bad["generation"] = json!({ "temperature": 9 });
    let refused = call(
        &app,
        Method::PUT,
        "/api/v1/assistants/helper",
        &p.harriet,
        Some(bad),
    )
    .await;
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("nope") && detail.contains("temperature"),
        "{detail}"
    );

    // Non-streaming turn: JSON, with the version it ran on.
    let conversation = json_ok(
        call(
            &app,
            Method::POST,
            "/api/v1/conversations",
            &p.oscar,
            Some(json!({ "assistant_id": "helper", "title": "first" })),
        )
        .await,
        201,
    )
    .await;
    let id = conversation["id"].as_str().unwrap();
    let turn = json_ok(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/conversations/{id}/messages"),
            &p.oscar,
            Some(json!({ "content": "hello" })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(turn["message"]["assistant_version"], 2);
    assert_eq!(turn["message"]["status"], "complete");
    assert_eq!(turn["message"]["deployment"], "offline");
    // Rename, export as JSON, delete.
    let renamed = json_ok(
        call(
            &app,
            Method::PATCH,
            &format!("/api/v1/conversations/{id}"),
            &p.oscar,
            Some(json!({ "title": "renamed" })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(renamed["title"], "renamed");
    let export = json_ok(
        call(
            &app,
            Method::GET,
            &format!("/api/v1/conversations/{id}/export"),
            &p.oscar,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(export["messages"].as_array().unwrap().len(), 2);
    let deleted = call(
        &app,
        Method::DELETE,
        &format!("/api/v1/conversations/{id}"),
        &p.oscar,
        None,
    )
    .await;
    assert_eq!(deleted.status(), 204);
    let gone = call(
        &app,
        Method::GET,
        &format!("/api/v1/conversations/{id}"),
        &p.oscar,
        None,
    )
    .await;
    assert_eq!(gone.status(), 404);
    app.stop().await.unwrap();
}

async fn edit_helpdesk(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    call(
        app,
        Method::PUT,
        "/api/v1/assistants/helpdesk",
        token,
        Some(body),
    )
    .await
}

/// What an owner puts behind an assistant must be theirs to use and its users' to use: a
/// deployment granted to the editor and to everyone the assistant serves, collections the editor
/// may read.
async fn owners_hand_out_only_what_they_and_their_users_may_use(backend: Backend) {
    let restricted = |name: &str, group: &str| DeploymentConfig {
        name: name.to_owned(),
        groups: vec![group.to_owned()],
        ..DeploymentConfig::offline()
    };
    let app = TestApp::spawn_with(backend, |config| {
        config
            .deployments
            .push(restricted("admins-only", DEMO_ADMINS));
        config
            .deployments
            .push(restricted("hr-only", DEMO_HR_OWNERS));
        config.deployments.push(restricted("staff", DEMO_EMPLOYEES));
    })
    .await;
    let p = people(&app).await;
    let helpdesk = |deployment: &str, collections: &[&str]| {
        json!({
            "name": "Helpdesk",
            "deployment": deployment,
            "collections": collections,
            "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
            "owner_group": DEMO_HR_OWNERS,
        })
    };
    let mut created = helpdesk("offline", &[]);
    created["id"] = json!("helpdesk");
    json_ok(
        call(
            &app,
            Method::POST,
            "/api/v1/assistants",
            &p.admin,
            Some(created),
        )
        .await,
        201,
    )
    .await;

    // Harriet (HR owners, employees) may not hand out what she is not granted, nor what only
    // some of the assistant's users are granted.
    let refused = json_ok(
        edit_helpdesk(&app, &p.harriet, helpdesk("admins-only", &[])).await,
        400,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("admins-only"),
        "{refused}"
    );
    let refused = json_ok(
        edit_helpdesk(&app, &p.harriet, helpdesk("hr-only", &[])).await,
        400,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("hr-only"),
        "{refused}"
    );
    json_ok(
        edit_helpdesk(&app, &p.harriet, helpdesk("staff", &[])).await,
        200,
    )
    .await;
    // Not even a platform admin serves employees from a deployment they may not call.
    json_ok(
        edit_helpdesk(&app, &p.admin, helpdesk("admins-only", &[])).await,
        400,
    )
    .await;

    // The same for the deployment that embeds a collection's passages and its readers'
    // questions: granted to the editor and to everyone who reads the collection.
    let handbook = create_collection(
        &app,
        &p.admin,
        json!({
            "name": "HR handbook",
            "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
            "owner_group": DEMO_HR_OWNERS,
        }),
    )
    .await;
    let embed_with = |deployment: &str| {
        json!({
            "name": "HR handbook",
            "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
            "owner_group": DEMO_HR_OWNERS,
            "embedding_deployment": deployment,
        })
    };
    for deployment in ["admins-only", "hr-only"] {
        let refused = json_ok(
            call(
                &app,
                Method::PUT,
                &format!("/api/v1/collections/{handbook}"),
                &p.harriet,
                Some(embed_with(deployment)),
            )
            .await,
            400,
        )
        .await;
        assert!(
            refused["detail"].as_str().unwrap().contains(deployment),
            "{refused}"
        );
    }
    json_ok(
        call(
            &app,
            Method::PUT,
            &format!("/api/v1/collections/{handbook}"),
            &p.harriet,
            Some(embed_with("staff")),
        )
        .await,
        200,
    )
    .await;

    // A collection only IT operations read: Harriet cannot attach it (it is as if it did not
    // exist); an admin can.
    let it_only = create_collection(
        &app,
        &p.admin,
        json!({
            "name": "IT runbooks",
            "access": { "scope": "groups", "groups": [DEMO_IT_OPS] },
            "owner_group": DEMO_IT_OPS,
        }),
    )
    .await;
    let refused = json_ok(
        edit_helpdesk(&app, &p.harriet, helpdesk("staff", &[&it_only])).await,
        400,
    )
    .await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("does not exist"),
        "{refused}"
    );
    json_ok(
        edit_helpdesk(&app, &p.admin, helpdesk("staff", &[&it_only])).await,
        200,
    )
    .await;
    let document = format!("# Break-glass\n\nThe break-glass password rotates weekly: {CANARY}.\n");
    let job = upload(
        &app,
        &p.oscar,
        &it_only,
        vec![("glass.md", document.into_bytes())],
        None,
    )
    .await;
    assert_eq!(job["status"], "succeeded", "{job}");
    // Harriet's own edits keep working around the collection she cannot read.
    json_ok(
        edit_helpdesk(&app, &p.harriet, helpdesk("staff", &[&it_only])).await,
        200,
    )
    .await;

    // Oscar reads the runbooks and uses the helpdesk: he is answered from them and reports the
    // answer. Harriet's inbox shows his verdict, not what he was shown from a collection she
    // cannot read.
    let conversation = start_conversation(&app, &p.oscar, "helpdesk").await;
    let events = ask(
        &app,
        &p.oscar,
        &conversation,
        "How often does the break-glass password rotate?",
    )
    .await;
    let done = &event(&events, "done")["message"];
    assert!(done.to_string().contains(CANARY), "{done}");
    let message = done["id"].as_str().unwrap().to_owned();
    json_ok(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/messages/{message}/feedback"),
            &p.oscar,
            Some(json!({ "helpful": false, "comment": "it rotates daily now" })),
        )
        .await,
        201,
    )
    .await;
    let inbox = json_ok(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/helpdesk/feedback",
            &p.harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(!inbox.to_string().contains(CANARY), "{inbox}");
    let item = &inbox["items"][0];
    assert_eq!(item["comment"], "it rotates daily now", "{inbox}");
    assert_eq!(item["answer_withheld"], true, "{inbox}");
    assert!(item["withheld_citations"].as_u64().unwrap() >= 1, "{inbox}");
    assert!(item["citations"].as_array().unwrap().is_empty(), "{inbox}");
    // An IT operations owner of the assistant would read it: the trimming follows the reader.
    let mut it_owned = helpdesk("staff", &[&it_only]);
    it_owned["owner_group"] = json!(DEMO_IT_OPS);
    json_ok(edit_helpdesk(&app, &p.admin, it_owned).await, 200).await;
    let inbox = json_ok(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/helpdesk/feedback",
            &p.oscar,
            None,
        )
        .await,
        200,
    )
    .await;
    assert!(inbox.to_string().contains(CANARY), "{inbox}");
    assert_eq!(inbox["items"][0]["answer_withheld"], false, "{inbox}");

    app.stop().await.unwrap();
}

both_databases!(
    only_group_a_is_grounded_on_group_a_documents,
    a_documents_own_acl_narrows_an_organisation_wide_collection,
    hostile_files_fail_alone_with_clear_reasons,
    assistants_are_versioned_and_turns_record_their_version,
    owners_hand_out_only_what_they_and_their_users_may_use,
);

/// A client that goes away mid-answer cancels the model call, and what was written so far is
/// stored, marked `partial`.
async fn a_client_leaving_cancels_the_model_and_keeps_the_partial_answer(backend: Backend) {
    use ajutant_core::config::{Capability, DeploymentConfig, ProviderKind};
    use ajutant_testkit::fake_upstream::FakeUpstream;
    use futures::StreamExt;

    let upstream = FakeUpstream::start().await;
    let endpoint = upstream.endpoint();
    let app = TestApp::spawn_with(backend, move |config| {
        config.deployments.push(DeploymentConfig {
            name: "fake-slow".to_owned(),
            provider: ProviderKind::OpenAiCompatible,
            endpoint: Some(endpoint.parse().unwrap()),
            model: "slow".to_owned(),
            capabilities: vec![Capability::Chat],
            retries: 0,
            ..DeploymentConfig::offline()
        });
    })
    .await;
    let p = people(&app).await;
    json_ok(
        call(
            &app,
            Method::POST,
            "/api/v1/assistants",
            &p.admin,
            Some(json!({
                "id": "slowpoke",
                "name": "Slow",
                "deployment": "fake-slow",
                "access": { "scope": "organisation" },
            })),
        )
        .await,
        201,
    )
    .await;
    let id = start_conversation(&app, &p.oscar, "slowpoke").await;
    let response = client()
        .post(app.url(&format!("/api/v1/conversations/{id}/messages")))
        .bearer_auth(&p.oscar)
        .header("accept", "text/event-stream")
        .json(&json!({ "content": "Take your time." }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while seen.matches("event: delta").count() < 2 {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    assert!(upstream.slow_stream_running());
    let left = Instant::now();
    drop(body);
    let mut waited = Duration::ZERO;
    while upstream.hung_up_at().is_none() && waited < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let Some(cancelled) = upstream.hung_up_at() else {
        panic!("the model call was never cancelled");
    };
    assert!(
        cancelled.saturating_duration_since(left) < Duration::from_secs(1),
        "cancelled only after {:?}",
        cancelled.saturating_duration_since(left)
    );
    // The partial answer is stored and marked.
    let started = Instant::now();
    let message = loop {
        let detail = json_ok(
            call(
                &app,
                Method::GET,
                &format!("/api/v1/conversations/{id}"),
                &p.oscar,
                None,
            )
            .await,
            200,
        )
        .await;
        if let Some(answer) = detail["messages"].as_array().unwrap().get(1) {
            break answer.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{detail}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(message["status"], "partial", "{message}");
    assert_eq!(message["error"], "the client went away");
    assert!(
        message["content"].as_str().unwrap().contains("tick"),
        "{message}"
    );
    app.stop().await.unwrap();
}

both_databases!(a_client_leaving_cancels_the_model_and_keeps_the_partial_answer);
