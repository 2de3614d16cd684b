//! The `ajutant` binary as an operator runs it.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ajutant_core::audit::{Actor, AuditEvent, Outcome};
use ajutant_store::AuditLog;
use ajutant_testkit::{Backend, TestDatabase, both_databases};

fn ajutant(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ajutant"));
    command.args(args);
    // The tests decide every setting; nothing leaks in from the developer's shell.
    for (key, _) in std::env::vars() {
        if key.starts_with("AJUTANT_") {
            command.env_remove(key);
        }
    }
    command
}

fn run(command: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

fn config_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(contents.as_bytes()).unwrap();
    file
}

#[test]
fn config_check_names_an_unknown_key() {
    let file = config_file("[server]\nlisten = \"127.0.0.1:8080\"\nbody_limit = 5\n");
    let (code, _, stderr) = run(ajutant(&["config", "check", "--config"]).arg(file.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("`body_limit`"), "{stderr}");
}

#[test]
fn a_bad_database_url_or_log_filter_is_refused_without_echoing_secrets() {
    let (code, _, stderr) = run(&mut ajutant(&[
        "config",
        "check",
        "--database-url",
        "mysql://app:pa55word@db/ajutant",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("\"mysql\""), "{stderr}");
    assert!(!stderr.contains("pa55word"), "{stderr}");

    let (code, _, stderr) =
        run(ajutant(&["config", "check"]).env("AJUTANT_LOG__FILTER", "info,[[["));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("log.filter"), "{stderr}");
}

#[test]
fn config_check_refuses_insecure_production_settings() {
    let file = config_file(
        "mode = \"production\"\n[database]\nurl = \"postgres://app:hunter2@db.example.internal/ajutant\"\n",
    );
    let (code, _, stderr) = run(ajutant(&["config", "check", "--config"]).arg(file.path()));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("production"), "{stderr}");
    assert!(stderr.contains("sslmode=require"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn production_refuses_the_development_identity_provider() {
    let (code, _, stderr) = run(ajutant(&["serve"])
        .env("AJUTANT_MODE", "production")
        .env("AJUTANT_SERVER__PUBLIC_URL", "https://ajutant.example.org")
        .env("AJUTANT_LISTEN", "127.0.0.1:0"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("development identity provider"), "{stderr}");
}

#[test]
fn the_example_passes_config_check() {
    let (code, example, _) = run(&mut ajutant(&["config", "example"]));
    assert_eq!(code, 0);
    assert!(example.contains("[database]"));
    let file = config_file(&example);
    let (code, stdout, stderr) = run(ajutant(&["config", "check", "--config"]).arg(file.path()));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.starts_with("# configuration OK"), "{stdout}");
}

#[test]
fn environment_and_flags_layer_over_the_file_and_secrets_stay_hidden() {
    let file = config_file("[server]\nlisten = \"127.0.0.1:1111\"\nrequest_timeout_secs = 7\n");
    let (code, stdout, stderr) = run(ajutant(&["config", "check", "--config"])
        .arg(file.path())
        .env("AJUTANT_SERVER__LISTEN", "127.0.0.1:2222")
        .env("AJUTANT_LOG__FORMAT", "json")
        .env(
            "AJUTANT_DATABASE_URL",
            "postgres://app:s3cr3t@127.0.0.1/ajutant",
        ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:2222\""), "{stdout}");
    assert!(stdout.contains("request_timeout_secs = 7"), "{stdout}");
    assert!(stdout.contains("format = \"json\""), "{stdout}");
    assert!(
        stdout.contains("postgres://app:***@127.0.0.1/ajutant"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cr3t"), "{stdout}");
}

async fn trail_of(backend: Backend, count: usize) -> TestDatabase {
    let database = TestDatabase::create(backend).await.unwrap();
    let store = database.store().await.unwrap();
    let (log, writer) = AuditLog::start(store.clone(), 64);
    for n in 0..count {
        let event = AuditEvent::new(
            Actor::system(),
            ajutant_core::audit::AuditAction::ServerStarted,
            format!("thing/{n}"),
            Outcome::Allowed,
        )
        .with_details(serde_json::json!({ "n": n }));
        log.append(event).await.unwrap();
    }
    drop(log);
    writer.finish(Duration::from_secs(10)).await;
    store.close().await;
    database
}

/// With the triggers out of the way, record 21 is rewritten and every later hash recomputed:
/// the chain alone verifies again (as it did on main), the signed checkpoint does not; nor does
/// a checkpoint rewritten to match, nor a tail cut off behind a checkpoint.
async fn a_resealed_chain_fails_against_the_signed_checkpoint(backend: Backend) {
    use ajutant_core::audit_checkpoint::CheckpointKey;
    let folder = tempfile::tempdir().unwrap();
    let key_file = folder.path().join("audit.key");
    std::fs::write(&key_file, "5e".repeat(32)).unwrap();
    let key = CheckpointKey::from_hex(&"5e".repeat(32)).unwrap();
    let database = trail_of(backend, 30).await;
    let store = database.store().await.unwrap();
    let (seq, hash) = store.audit_head().await.unwrap().unwrap();
    assert_eq!(seq, 30);
    let signed = key.sign(seq, hash, 1_800_000_000).unwrap();
    assert!(store.put_audit_checkpoint(&signed).await.unwrap());
    let verify = |with_key: bool| {
        let mut command = ajutant(&["audit", "verify", "--database-url", database.url()]);
        if with_key {
            command.env("AJUTANT_AUDIT__CHECKPOINT_KEY_FILE", &key_file);
        }
        command
    };
    let (code, stdout, stderr) = run(&mut verify(true));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("1 signed checkpoints in place"), "{stdout}");
    // Checkpoints are append-only like the trail (until the guards are dropped below).
    let refused = database
        .execute("DELETE FROM audit_checkpoints")
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");

    // Re-seal: record 21 says something else, and every hash from it on is recomputed.
    let mut records = store.audit_page(20, None, 100).await.unwrap();
    let mut prev = records[0].prev_hash;
    for (n, record) in records.iter_mut().enumerate() {
        if n == 0 {
            record.details = r#"{"n":"forged"}"#.to_owned();
        }
        record.prev_hash = prev;
        record.hash = record.expected_hash();
        prev = record.hash;
        database
            .execute_bypassing_guards(&format!(
                "UPDATE audit_events SET details = '{}', prev_hash = '{}', hash = '{}' \
                 WHERE seq = {}",
                record.details,
                record.prev_hash.to_hex(),
                record.hash.to_hex(),
                record.seq
            ))
            .await
            .unwrap();
    }
    let (code, stdout, stderr) = run(&mut verify(false));
    assert_eq!(
        code, 0,
        "without the key a re-sealed chain still verifies: {stderr}"
    );
    assert!(stdout.contains("no checkpoint key"), "{stdout}");
    let (code, _, stderr) = run(&mut verify(true));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("broken at record 30"), "{stderr}");
    assert!(stderr.contains("sealed again"), "{stderr}");

    // Rewriting the checkpoint to match needs the key.
    database
        .execute_bypassing_guards(&format!(
            "UPDATE audit_checkpoints SET hash = '{}' WHERE seq = 30",
            prev.to_hex()
        ))
        .await
        .unwrap();
    let (code, _, stderr) = run(&mut verify(true));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("forged"), "{stderr}");

    // A tail cut behind a checkpoint.
    database
        .execute_bypassing_guards(&format!(
            "DELETE FROM audit_checkpoints; INSERT INTO audit_checkpoints \
             (seq, hash, signed_at, signature) VALUES (30, '{}', {}, '{}')",
            prev.to_hex(),
            1_800_000_000,
            key.sign(30, prev, 1_800_000_000).unwrap().signature
        ))
        .await
        .unwrap();
    let (code, _, stderr) = run(&mut verify(true));
    assert_eq!(code, 0, "{stderr}");
    database
        .execute_bypassing_guards("DELETE FROM audit_events WHERE seq > 25")
        .await
        .unwrap();
    let (code, _, stderr) = run(&mut verify(true));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no longer exists"), "{stderr}");
    store.close().await;
}

both_databases!(
    a_resealed_chain_fails_against_the_signed_checkpoint,
    audit_verify_names_the_first_altered_record,
    audit_export_writes_jsonl_and_csv_from_a_time,
    serve_answers_then_stops_cleanly_on_sigterm,
    an_idle_server_leaves_the_cpu_alone,
    apikey_create_prints_only_the_key_which_works_until_revoked,
);

async fn audit_verify_names_the_first_altered_record(backend: Backend) {
    let database = trail_of(backend, 30).await;
    let verify = || ajutant(&["audit", "verify", "--database-url", database.url()]);
    let (code, stdout, stderr) = run(&mut verify());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("intact: 30 records"), "{stdout}");

    let anchor_at_20 = hash_of_record(&database, 20).await;

    // Cut the last ten records off: the chain still verifies, the anchor does not.
    database
        .execute_bypassing_guards("DELETE FROM audit_events WHERE seq > 20")
        .await
        .unwrap();
    let (code, _, stderr) = run(&mut verify());
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(verify().args(["--anchor", &anchor_at_20]));
    assert_eq!(code, 0, "{stderr}");
    let head_of_30 = stdout.split("head hash ").nth(1).unwrap()[..64].to_owned();
    let (code, _, stderr) = run(verify().args(["--anchor", &head_of_30]));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("anchor") && stderr.contains("missing"),
        "{stderr}"
    );

    database
        .execute_bypassing_guards(
            "UPDATE audit_events SET resource = 'thing/forged' WHERE seq = 12",
        )
        .await
        .unwrap();
    let (code, _, stderr) = run(&mut verify());
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("broken at record 12"), "{stderr}");
    assert!(stderr.contains("altered"), "{stderr}");
}

/// The hash of record `seq`, as an operator would have noted it.
async fn hash_of_record(database: &TestDatabase, seq: i64) -> String {
    let store = database.store().await.unwrap();
    let record = store.audit_page(seq - 1, None, 1).await.unwrap().remove(0);
    store.close().await;
    record.hash.to_hex()
}

async fn audit_export_writes_jsonl_and_csv_from_a_time(backend: Backend) {
    let database = trail_of(backend, 25).await;
    let (code, jsonl, stderr) = run(&mut ajutant(&[
        "audit",
        "export",
        "--format",
        "jsonl",
        "--database-url",
        database.url(),
    ]));
    assert_eq!(code, 0, "{stderr}");
    let records: Vec<serde_json::Value> = jsonl
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 25);
    assert_eq!(records[0]["seq"], 1);
    assert_eq!(records[24]["resource"], "thing/24");
    assert_eq!(records[1]["prev_hash"], records[0]["hash"]);

    let since = records[10]["occurred_at"].as_str().unwrap().to_owned();
    let folder = tempfile::tempdir().unwrap();
    let path = folder.path().join("audit.csv");
    let (code, _, stderr) = run(ajutant(&[
        "audit",
        "export",
        "--format",
        "csv",
        "--since",
        &since,
        "--database-url",
        database.url(),
        "--output",
    ])
    .arg(&path));
    assert_eq!(code, 0, "{stderr}");
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let headers = reader.headers().unwrap().clone();
    let seq_column = headers.iter().position(|h| h == "seq").unwrap();
    let resource_column = headers.iter().position(|h| h == "resource").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 15, "records 11..=25");
    assert_eq!(&rows[0][seq_column], "11");
    assert_eq!(&rows[0][resource_column], "thing/10");

    let (code, _, stderr) = run(&mut ajutant(&[
        "audit",
        "export",
        "--since",
        "last tuesday",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("RFC 3339"), "{stderr}");
}

async fn apikey_create_prints_only_the_key_which_works_until_revoked(backend: Backend) {
    let app = ajutant_testkit::TestApp::spawn(backend).await;
    let url = app.database().url().to_owned();
    let (code, stdout, stderr) = run(&mut ajutant(&[
        "apikey",
        "create",
        "--name",
        "nightly-export",
        "--group",
        "g-reports",
        "--group",
        "g-finance",
        "--database-url",
        &url,
    ]));
    assert_eq!(code, 0, "{stderr}");
    let key = stdout.trim_end_matches('\n');
    assert!(
        !key.contains('\n') && key.starts_with("ajk_"),
        "only the key on stdout: {stdout:?}"
    );
    assert!(
        stderr.contains("created API key") && !stderr.contains(key),
        "{stderr}"
    );
    let id = &key[..14];

    let me = |key: String| {
        let client = app.client.clone();
        let url = app.url("/api/v1/me");
        async move { client.get(url).bearer_auth(key).send().await.unwrap() }
    };
    let response = me(key.to_owned()).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["id"], format!("apikey:{id}"));
    assert_eq!(body["display_name"], "nightly-export");
    assert_eq!(
        body["groups"],
        serde_json::json!(["g-finance", "g-reports"])
    );

    let (code, listed, _) = run(&mut ajutant(&["apikey", "list", "--database-url", &url]));
    assert_eq!(code, 0);
    assert!(
        listed.contains(id) && listed.contains("active") && !listed.contains(key),
        "{listed}"
    );

    let (code, _, stderr) = run(&mut ajutant(&[
        "apikey",
        "revoke",
        id,
        "--database-url",
        &url,
    ]));
    assert_eq!(code, 0, "{stderr}");
    // Another process revoked it: the server notices within its half-second credential cache.
    let revoked_at = std::time::Instant::now();
    while me(key.to_owned()).await.status() != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(1),
            "still accepted after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, listed, _) = run(&mut ajutant(&["apikey", "list", "--database-url", &url]));
    assert!(listed.contains("revoked"), "{listed}");
    let (code, _, stderr) = run(&mut ajutant(&[
        "apikey",
        "revoke",
        id,
        "--database-url",
        &url,
    ]));
    assert_eq!(code, 3, "revoking twice is an error: {stderr}");

    let (code, stdout, stderr) = run(&mut ajutant(&[
        "apikey",
        "create",
        "--name",
        "bad name!",
        "--database-url",
        &url,
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());

    let store = app.store().await;
    let created = store
        .audit_search(&ajutant_store::AuditQuery {
            action: Some("api_key.".to_owned()),
            actor_id: Some("cli".to_owned()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let actions: Vec<&str> = created.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["api_key.revoked", "api_key.created"]);
    app.stop().await.unwrap();
}

async fn serve_answers_then_stops_cleanly_on_sigterm(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let (server, _) = serve(&database, &[]).await;

    let status = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = tokio::task::spawn_blocking(move || server.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("shutting down"), "{stderr}");
    // JSON logs: every line parses.
    for line in stderr.lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{line}"
        );
    }

    let store = database.store().await.unwrap();
    let records = store.audit_page(0, None, 10).await.unwrap();
    let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, ["server.started", "server.stopped"]);
}

/// Starts `ajutant serve` on a free port against `database`; returns the child and its address
/// once `/readyz` answers.
async fn serve(database: &TestDatabase, extra: &[(&str, &str)]) -> (std::process::Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut command = ajutant(&["serve"]);
    command
        .env("AJUTANT_LISTEN", &listen)
        .env("AJUTANT_DATABASE_URL", database.url())
        .env("AJUTANT_LOG__FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in extra {
        command.env(key, value);
    }
    #[allow(
        clippy::zombie_processes,
        reason = "the caller is handed the child and waits for it"
    )]
    let mut server = command.spawn().unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..100 {
        if let Ok(response) = client.get(format!("http://{listen}/readyz")).send().await
            && response.status().is_success()
        {
            return (server, listen);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = server.kill();
    let _ = server.wait();
    panic!("serve did not become ready on {listen}");
}

/// The CPU time a process has used so far (user and system), from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name is in parentheses and may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, in clock ticks.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = match std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(100),
        Err(_) => 100,
    };
    Duration::from_millis(ticks * 1000 / per_second)
}

/// With nobody connected, a server only waits: its background loops (operations bus,
/// switchboard, outbox, ingestion, session sweeps) sleep between turns instead of spinning.
/// On SQLite the bus once re-polled the database in a tight loop, burning ~70% of two cores.
async fn an_idle_server_leaves_the_cpu_alone(backend: Backend) {
    let database = TestDatabase::create(backend).await.unwrap();
    let (mut server, _) = serve(&database, &[("AJUTANT_GROUNDING__DEMO", "false")]).await;
    // Let start-up work (migrations, first polls) finish before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = cpu_time(server.id());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let used = cpu_time(server.id()) - before;
    let _ = server.kill();
    let _ = server.wait();
    // Idle, it takes a few milliseconds a second; the spinning loop took seconds.
    assert!(
        used < Duration::from_millis(400),
        "an idle server used {used:?} of CPU in 4 s"
    );
}

/// `ajutant ingest` uploads a folder to a running server and follows the job: the good files
/// go in, the bad one is listed with its reason, and the exit code says some failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_uploads_a_folder_and_reports_each_failure() {
    use ajutant_testkit::TestApp;
    use ajutant_testkit::identity::{access_token, client, demo_user};
    use serde_json::{Value, json};

    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let response = client()
        .post(app.url("/api/v1/collections"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "Policies", "access": { "scope": "organisation" } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = client()
        .post(app.url("/api/v1/admin/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({ "name": "loader", "groups": [ajutant_core::config::DEMO_ADMINS] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let folder = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(folder.path().join("it")).unwrap();
    std::fs::write(folder.path().join("leave.md"), "# Leave\n\n27 days a year.").unwrap();
    std::fs::write(folder.path().join("it/vpn.txt"), "Install the VPN client.").unwrap();
    std::fs::write(folder.path().join("it/broken.pdf"), b"%PDF-1.4 garbage").unwrap();
    std::fs::write(folder.path().join(".hidden.txt"), "skipped").unwrap();
    let server = app.url("");
    let path = folder.path().to_str().unwrap().to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let mut command = ajutant(&[
            "ingest",
            &path,
            "--collection",
            "Policies",
            "--server",
            &server,
        ]);
        command.env("AJUTANT_API_KEY", &key);
        run(&mut command)
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("3/3 documents, 1 failed"), "{stderr}");
    assert!(stderr.contains("failed: broken.pdf (corrupt)"), "{stderr}");
    assert!(stderr.contains("2 added"), "{stderr}");
    // An unknown collection is a clear error, exit 3.
    let (code, _, stderr) = run(&mut ajutant(&[
        "ingest",
        folder.path().to_str().unwrap(),
        "--collection",
        "Nope",
        "--server",
        &app.url(""),
        "--api-key",
        "ajk_0000000000_x",
    ]));
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("401") || stderr.contains("Nope"),
        "{stderr}"
    );
    app.stop().await.unwrap();
}

/// A platform API key acting with `group`, created through the admin API by a platform admin.
async fn api_key_with_group(app: &ajutant_testkit::TestApp, name: &str, group: &str) -> String {
    use ajutant_testkit::identity::{access_token, client, demo_user};
    let admin = access_token(app, &demo_user("ada@example.org"))
        .await
        .unwrap_or_else(|e| panic!("cannot sign in as the admin: {e:#}"));
    let created: serde_json::Value = client()
        .post(app.url("/api/v1/admin/api-keys"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({ "name": name, "groups": [group] }))
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create the API key: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("the created API key is not JSON: {e}"));
    created["key"]
        .as_str()
        .unwrap_or_else(|| panic!("no key in {created}"))
        .to_owned()
}

/// Runs the binary off the async workers, which serve the test app meanwhile.
async fn run_against(server: &str, key: &str, args: &[&str]) -> (i32, String, String) {
    let mut command = ajutant(args);
    command
        .args(["--server", server])
        .env("AJUTANT_API_KEY", key);
    tokio::task::spawn_blocking(move || run(&mut command))
        .await
        .unwrap_or_else(|e| panic!("the command's thread failed: {e}"))
}

/// IT operations switch the platform off from the command line, and the gateway refuses; only
/// a platform admin may switch it back on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_revive_through_the_cli() {
    use ajutant_core::config::{DEMO_ADMINS, DEMO_IT_OPS};
    use ajutant_testkit::TestApp;
    use serde_json::{Value, json};

    let app = TestApp::spawn(Backend::Sqlite).await;
    let operations = api_key_with_group(&app, "ops-oncall", DEMO_IT_OPS).await;
    let admin = api_key_with_group(&app, "platform-admin", DEMO_ADMINS).await;
    let server = app.url("");
    let chat = || {
        let request = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&operations)
            .json(&json!({ "model": "offline",
                           "messages": [{ "role": "user", "content": "Say hello." }] }));
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(chat().await, 200, "the gateway works before the drill");

    let (code, stdout, stderr) = run_against(
        &server,
        &operations,
        &["kill", "platform", "--reason", "drill"],
    )
    .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("platform: killed by "), "{stdout}");
    assert!(stdout.contains("(reason: drill)"), "{stdout}");

    let (code, stdout, stderr) = run_against(&server, &operations, &["switches", "--json"]).await;
    assert_eq!(code, 0, "{stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let platform = listed["switches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["target"] == "platform")
        .unwrap_or_else(|| panic!("no platform switch in {listed}"));
    assert_eq!(platform["state"], "killed", "{platform}");
    assert_eq!(platform["reason"], "drill", "{platform}");
    assert!(platform["id"].is_null(), "{platform}");
    let (code, table, stderr) = run_against(&server, &operations, &["switches"]).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(table.starts_with("TARGET"), "{table}");
    assert!(
        table
            .lines()
            .any(|line| line.starts_with("platform ") && line.contains(" killed ")),
        "{table}"
    );

    assert_eq!(chat().await, 503, "the platform is off");

    let (code, stdout, stderr) = run_against(
        &server,
        &operations,
        &["revive", "platform", "--reason", "drill over"],
    )
    .await;
    assert_eq!(
        code, 3,
        "only platform admins revive the platform: {stdout}"
    );
    assert!(
        stderr.contains("404") && stderr.contains("may not switch the platform"),
        "{stderr}"
    );
    assert_eq!(chat().await, 503, "still off");

    let (code, stdout, stderr) = run_against(
        &server,
        &admin,
        &["revive", "platform", "--reason", "drill over"],
    )
    .await;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("platform: revived by "), "{stdout}");
    assert!(stdout.contains("(reason: drill over)"), "{stdout}");

    assert_eq!(chat().await, 200, "the platform is back");
    app.stop().await.unwrap();
}

#[test]
fn kill_without_a_target_id_is_a_usage_error() {
    let (code, stdout, stderr) = run(&mut ajutant(&[
        "kill",
        "assistant",
        "--reason",
        "leaks salaries",
        "--server",
        "http://127.0.0.1:9",
        "--api-key",
        "ajk_0000000000_x",
    ]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("<ID>"), "{stderr}");

    let (code, _, stderr) = run(&mut ajutant(&[
        "revive",
        "platform",
        "--server",
        "http://127.0.0.1:9",
        "--api-key",
        "ajk_0000000000_x",
    ]));
    assert_eq!(code, 2, "a reason is required: {stderr}");
    assert!(stderr.contains("--reason"), "{stderr}");
}
