//! Ingestion jobs over HTTP on SQLite and PostgreSQL: a server folder synced incrementally
//! (unchanged skipped by hash, changed replaced, deleted removed), a job that outlives the
//! instance that accepted it, and the embedded default's demo assistant answering a newcomer.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use ajutant_testkit::identity::{access_token, client, demo_user};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> (u16, Value) {
    let response = client()
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, token: &str, path: &str) -> Value {
    let response = client()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn finished(app: &TestApp, token: &str, job: &str) -> Value {
    let started = Instant::now();
    loop {
        let job = get(app, token, &format!("/api/v1/ingestion-jobs/{job}")).await;
        if job["status"] == "succeeded" || job["status"] == "failed" {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sync(app: &TestApp, token: &str, collection: &str) -> Value {
    let (status, job) = post(
        app,
        token,
        &format!("/api/v1/collections/{collection}/sync"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202, "{job}");
    finished(app, token, job["id"].as_str().unwrap()).await
}

async fn a_folder_syncs_incrementally(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("handbook");
    std::fs::create_dir_all(folder.join("hr")).unwrap();
    std::fs::write(folder.join("a.md"), "# A\n\nAlpha policy text.").unwrap();
    std::fs::write(folder.join("hr/b.txt"), "Bravo leave rules.").unwrap();
    std::fs::write(folder.join("c.txt"), "Charlie expenses.").unwrap();
    let allowed = root.path().to_path_buf();
    let app = TestApp::spawn_with(backend, move |config| {
        config.grounding.allowed_folders = vec![allowed];
    })
    .await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();

    // A folder outside the allowed ones is refused.
    let (status, problem) = post(
        &app,
        &admin,
        "/api/v1/collections",
        json!({ "name": "Etc", "access": { "scope": "organisation" },
                "source": { "kind": "folder", "path": "/etc" } }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("allowed_folders"),
        "{problem}"
    );

    let (status, collection) = post(
        &app,
        &admin,
        "/api/v1/collections",
        json!({ "name": "Handbook", "access": { "scope": "organisation" },
                "source": { "kind": "folder", "path": folder } }),
    )
    .await;
    assert_eq!(status, 201, "{collection}");
    let id = collection["id"].as_str().unwrap().to_owned();
    let first = sync(&app, &admin, &id).await;
    assert_eq!(first["status"], "succeeded", "{first}");
    assert_eq!(
        (first["added"].as_i64(), first["total"].as_i64()),
        (Some(3), Some(3)),
        "{first}"
    );

    std::fs::write(folder.join("a.md"), "# A\n\nAlpha policy, second edition.").unwrap();
    std::fs::remove_file(folder.join("c.txt")).unwrap();
    let second = sync(&app, &admin, &id).await;
    assert_eq!(second["updated"], 1, "{second}");
    assert_eq!(second["unchanged"], 1, "{second}");
    assert_eq!(second["removed"], 1, "{second}");
    let documents = get(&app, &admin, &format!("/api/v1/collections/{id}/documents")).await;
    let keys: Vec<&str> = documents
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a.md", "hr/b.txt"]);
    // The list pages by source key.
    let first_page = get(
        &app,
        &admin,
        &format!("/api/v1/collections/{id}/documents?limit=1"),
    )
    .await;
    assert_eq!(first_page[0]["source_key"], "a.md");
    assert_eq!(first_page.as_array().unwrap().len(), 1);
    let next_page = get(
        &app,
        &admin,
        &format!("/api/v1/collections/{id}/documents?limit=1&after=a.md"),
    )
    .await;
    assert_eq!(next_page[0]["source_key"], "hr/b.txt");
    assert_eq!(next_page.as_array().unwrap().len(), 1);
    let (_, found) = post(
        &app,
        &admin,
        &format!("/api/v1/collections/{id}/search"),
        json!({ "query": "second edition charlie" }),
    )
    .await;
    let text = found.to_string();
    assert!(
        text.contains("second edition") && !text.contains("Charlie"),
        "{found}"
    );

    // Readers search the collection; where it syncs from is for its managers.
    let alice = access_token(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let path = format!("/api/v1/collections/{id}");
    let seen_by_reader = get(&app, &alice, &path).await;
    assert!(seen_by_reader["source"].is_null(), "{seen_by_reader}");
    assert!(
        !seen_by_reader.to_string().contains("handbook"),
        "{seen_by_reader}"
    );
    let listed = get(&app, &alice, "/api/v1/collections").await;
    assert!(!listed.to_string().contains("handbook"), "{listed}");
    let seen_by_manager = get(&app, &admin, &path).await;
    assert_eq!(seen_by_manager["source"]["kind"], "folder");

    // Changes are on the record with what they changed.
    let renamed = client()
        .put(app.url(&path))
        .bearer_auth(&admin)
        .json(
            &json!({ "name": "Handbook 2", "access": { "scope": "organisation" },
                       "source": { "kind": "folder", "path": folder } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(renamed.status(), 200);
    let (_, updated) = last_record(&app, "collection.updated").await;
    assert_eq!(updated["before"]["name"], "Handbook", "{updated}");
    assert_eq!(updated["after"]["name"], "Handbook 2", "{updated}");
    let third = sync(&app, &admin, &id).await;
    let (_, synced) = last_record(&app, "collection.synced").await;
    assert_eq!(synced["job"], third["id"], "{synced}");
    let deleted = client()
        .delete(app.url(&path))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let (resource, gone) = last_record(&app, "collection.deleted").await;
    assert_eq!(resource, format!("collection/{id}"));
    assert_eq!(gone["before"]["name"], "Handbook 2", "{gone}");
    assert_eq!(gone["before"]["documents"], 2, "{gone}");
    app.stop().await.unwrap();
}

/// The newest audit record of `action`: its resource and details.
async fn last_record(app: &TestApp, action: &str) -> (String, Value) {
    let records = app
        .store()
        .await
        .audit_search(&ajutant_store::AuditQuery {
            action: Some(action.to_owned()),
            limit: 1,
            ..ajutant_store::AuditQuery::default()
        })
        .await
        .unwrap();
    let record = records
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no {action} record"));
    (
        record.resource,
        serde_json::from_str(&record.details).unwrap(),
    )
}

async fn a_queued_job_survives_a_restart(backend: Backend) {
    // No worker on the first instance: the job can only be finished by the next one.
    let app = TestApp::spawn_with(backend, |config| config.grounding.workers = 0).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let (_, collection) = post(
        &app,
        &admin,
        "/api/v1/collections",
        json!({ "name": "Durable", "access": { "scope": "organisation" } }),
    )
    .await;
    let id = collection["id"].as_str().unwrap().to_owned();
    let form = Form::new().part(
        "file",
        Part::bytes(b"# Durable\n\nQueued before the restart.".to_vec()).file_name("d.md"),
    );
    let response = client()
        .post(app.url(&format!("/api/v1/collections/{id}/documents")))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let job: Value = response.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let queued = get(&app, &admin, &format!("/api/v1/ingestion-jobs/{job_id}")).await;
    assert_eq!(queued["status"], "queued");
    let database = app.stop().await.unwrap();

    let app = TestApp::spawn_on(database, |_| {}).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let done = finished(&app, &admin, &job_id).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["added"], 1, "{done}");
    app.stop().await.unwrap();
}

async fn a_newcomer_gets_a_cited_answer_from_the_demo(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.grounding.demo = true).await;
    let alice = access_token(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let assistants = get(&app, &alice, "/api/v1/assistants").await;
    assert_eq!(assistants[0]["id"], "helpdesk", "{assistants}");
    let (status, conversation) = post(
        &app,
        &alice,
        "/api/v1/conversations",
        json!({ "assistant_id": "helpdesk" }),
    )
    .await;
    assert_eq!(status, 201);
    let conversation = conversation["id"].as_str().unwrap().to_owned();
    // The handbook is ingested in the background; ask until it has been.
    let started = Instant::now();
    let answer = loop {
        let (status, turn) = post(
            &app,
            &alice,
            &format!("/api/v1/conversations/{conversation}/messages"),
            json!({ "content": "How do I request a new laptop?" }),
        )
        .await;
        assert_eq!(status, 200, "{turn}");
        if !turn["message"]["citations"].as_array().unwrap().is_empty() {
            break turn["message"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{turn}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let content = answer["content"].as_str().unwrap();
    assert!(content.contains("self-service portal"), "{content}");
    assert_eq!(
        answer["citations"][0]["title"],
        "Laptops, phones and other equipment"
    );
    // Seeded once: a restart does not seed again.
    let database = app.stop().await.unwrap();
    let app = TestApp::spawn_on(database, |config| config.grounding.demo = true).await;
    let alice = access_token(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let collections = get(&app, &alice, "/api/v1/collections").await;
    assert_eq!(collections.as_array().unwrap().len(), 1, "{collections}");
    app.stop().await.unwrap();
}

both_databases!(
    a_folder_syncs_incrementally,
    a_queued_job_survives_a_restart,
    a_newcomer_gets_a_cited_answer_from_the_demo,
);
