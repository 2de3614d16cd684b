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

/// A folder connection as an operator declares one, usable by `groups`' collection owners.
fn folder_connection(
    name: &str,
    path: &std::path::Path,
    groups: &[&str],
) -> ajutant_core::config::ConnectionConfig {
    ajutant_core::config::ConnectionConfig {
        name: name.to_owned(),
        description: format!("The {name} share"),
        kind: ajutant_core::config::ConnectionKind::Folder,
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        path: Some(path.to_path_buf()),
        account_url: None,
        container: None,
        prefix: None,
        account_name: None,
        account_key_env: None,
        sas_token_env: None,
    }
}

async fn a_folder_syncs_incrementally(backend: Backend) {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("handbook");
    std::fs::create_dir_all(folder.join("hr")).unwrap();
    std::fs::write(folder.join("a.md"), "# A\n\nAlpha policy text.").unwrap();
    std::fs::write(folder.join("hr/b.txt"), "Bravo leave rules.").unwrap();
    std::fs::write(folder.join("c.txt"), "Charlie expenses.").unwrap();
    let connection = folder_connection("handbook", &folder, &[]);
    let app = TestApp::spawn_with(backend, move |config| {
        config.grounding.connections = vec![connection];
    })
    .await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();

    // Nothing outside the connection's folder.
    let (status, problem) = post(
        &app,
        &admin,
        "/api/v1/collections",
        json!({ "name": "Etc", "access": { "scope": "organisation" },
                "source": { "connection": "handbook", "path": "../../etc" } }),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("inside the connection"),
        "{problem}"
    );

    let (status, collection) = post(
        &app,
        &admin,
        "/api/v1/collections",
        json!({ "name": "Handbook", "access": { "scope": "organisation" },
                "source": { "connection": "handbook" } }),
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
    assert_eq!(seen_by_manager["source"]["connection"], "handbook");

    // Changes are on the record with what they changed.
    let renamed = client()
        .put(app.url(&path))
        .bearer_auth(&admin)
        .json(
            &json!({ "name": "Handbook 2", "access": { "scope": "organisation" },
                       "source": { "connection": "handbook" } }),
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

/// A listener that counts the connections it is offered and keeps what they sent: where a
/// server-side request would land if the server could be pointed anywhere.
struct Sink {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Sink {
    async fn start() -> Self {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = seen.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "the sink lives as long as the test's runtime"
        )]
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = vec![0; 8192];
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&buffer[..read]).into_owned());
            }
        });
        Self { port, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// An owner may not point a collection at an address and name a server variable as its
/// credential: that sent the variable's value to the owner's listener, and reached internal
/// hosts. Sources name a connection an admin declared.
async fn an_owner_cannot_point_a_source_at_any_host(backend: Backend) {
    use ajutant_core::config::DEMO_HR_OWNERS;
    let sink = Sink::start().await;
    let app = TestApp::spawn(backend).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let harriet = access_token(&app, &demo_user("harriet@example.org"))
        .await
        .unwrap();
    let (status, collection) = post(
        &app,
        &admin,
        "/api/v1/collections",
        json!({ "name": "HR", "access": { "scope": "organisation" },
                "owner_group": DEMO_HR_OWNERS }),
    )
    .await;
    assert_eq!(status, 201, "{collection}");
    let path = format!("/api/v1/collections/{}", collection["id"].as_str().unwrap());
    let hostile = json!({ "name": "HR", "access": { "scope": "organisation" },
        "owner_group": DEMO_HR_OWNERS,
        "source": { "kind": "azure_blob",
                    "account_url": format!("http://127.0.0.1:{}/acct", sink.port),
                    "container": "c", "sas_token_env": "PATH" } });
    for token in [&harriet, &admin] {
        let response = client()
            .put(app.url(&path))
            .bearer_auth(token)
            .json(&hostile)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("connection"),
            "{problem}"
        );
    }
    let (status, _) = post(&app, &harriet, &format!("{path}/sync"), json!({})).await;
    assert_eq!(
        status, 400,
        "a collection without a source has nothing to sync"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());
    app.stop().await.unwrap();
}

/// Sources name a connection an admin declared and a path inside it. Owners use only the
/// connections granted to their groups and never leave them by path or link. (That a declared
/// connection into the server's own network is refused at connect time is shown with Azurite
/// in `ajutant-ingest`'s tests.)
async fn sources_are_connections_their_owners_may_use(backend: Backend) {
    use ajutant_core::config::{ConnectionConfig, ConnectionKind, DEMO_HR_OWNERS, DEMO_IT_OPS};
    let sink = Sink::start().await;
    let root = tempfile::tempdir().unwrap();
    let handbook = root.path().join("handbook");
    let it = root.path().join("it");
    for dir in [handbook.join("hr"), handbook.join("finance"), it.clone()] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(handbook.join("hr/a.md"), "# Leave\n\nAlpha leave rules.").unwrap();
    std::fs::write(handbook.join("hr/b.txt"), "Bravo parental leave.").unwrap();
    std::fs::write(handbook.join("finance/c.txt"), "Charlie expenses.").unwrap();
    std::fs::write(it.join("runbook.txt"), "Break-glass procedure.").unwrap();
    std::os::unix::fs::symlink(&it, handbook.join("escape")).unwrap();
    let connections = vec![
        folder_connection("handbook", &handbook, &[DEMO_HR_OWNERS]),
        folder_connection("it-share", &it, &[DEMO_IT_OPS]),
        ConnectionConfig {
            kind: ConnectionKind::AzureBlob,
            path: None,
            account_url: Some(
                format!("http://127.0.0.1:{}/acct", sink.port)
                    .parse()
                    .unwrap(),
            ),
            container: Some("docs".to_owned()),
            sas_token_env: Some("PATH".to_owned()),
            ..folder_connection("internal-blob", &it, &[DEMO_HR_OWNERS])
        },
    ];
    let app = TestApp::spawn_with(backend, move |config| {
        config.grounding.connections = connections;
    })
    .await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let harriet = access_token(&app, &demo_user("harriet@example.org"))
        .await
        .unwrap();

    // Harriet is offered her groups' connections, by name and kind only.
    let offered = get(&app, &harriet, "/api/v1/connections").await;
    let names: Vec<&str> = offered
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["handbook", "internal-blob"], "{offered}");
    assert_eq!(offered[0]["kind"], "folder", "{offered}");
    let text = offered.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("PATH") && !text.contains("tmp"),
        "{offered}"
    );
    let every = get(&app, &admin, "/api/v1/connections").await;
    assert_eq!(every.as_array().unwrap().len(), 3, "{every}");

    let (status, collection) = post(
        &app,
        &admin,
        "/api/v1/collections",
        json!({ "name": "HR", "access": { "scope": "organisation" },
                "owner_group": DEMO_HR_OWNERS }),
    )
    .await;
    assert_eq!(status, 201, "{collection}");
    let id = collection["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/collections/{id}");
    let put = |token: &str, source: Value| {
        let request = client().put(app.url(&path)).bearer_auth(token).json(
            &json!({ "name": "HR", "access": { "scope": "organisation" },
                           "owner_group": DEMO_HR_OWNERS, "source": source }),
        );
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // Not a connection of her groups; not outside hers by path or by link.
    for (source, says) in [
        (json!({ "connection": "it-share" }), "that you may use"),
        (json!({ "connection": "nope" }), "no connection named"),
        (
            json!({ "connection": "handbook", "path": "../it" }),
            "inside the connection",
        ),
        (
            json!({ "connection": "handbook", "path": "/etc" }),
            "relative",
        ),
        (
            json!({ "connection": "handbook", "path": "escape" }),
            "outside",
        ),
        (
            json!({ "connection": "handbook", "path": "missing" }),
            "cannot be opened",
        ),
        (
            json!({ "connection": "handbook", "url": "http://x" }),
            "unknown field",
        ),
    ] {
        let (status, problem) = put(&harriet, source.clone()).await;
        assert_eq!(status, 400, "{source}: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{source}: {detail}");
        assert!(!detail.contains(root.path().to_str().unwrap()), "{detail}");
    }

    // Her own connection, narrowed to a folder inside it.
    let (status, updated) = put(&harriet, json!({ "connection": "handbook", "path": "hr" })).await;
    assert_eq!(status, 200, "{updated}");
    let job = sync(&app, &harriet, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let documents = get(&app, &harriet, &format!("{path}/documents")).await;
    let keys: Vec<&str> = documents
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["source_key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["a.md", "b.txt"], "{documents}");

    // An admin may point it anywhere declared; Harriet keeps what the admin chose when she
    // renames it.
    let (status, _) = put(&admin, json!({ "connection": "it-share" })).await;
    assert_eq!(status, 200);
    let (status, kept) = put(&harriet, json!({ "connection": "it-share" })).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["source"]["connection"], "it-share", "{kept}");
    app.stop().await.unwrap();
}

both_databases!(
    an_owner_cannot_point_a_source_at_any_host,
    sources_are_connections_their_owners_may_use,
    a_folder_syncs_incrementally,
    a_queued_job_survives_a_restart,
    a_newcomer_gets_a_cited_answer_from_the_demo,
);
