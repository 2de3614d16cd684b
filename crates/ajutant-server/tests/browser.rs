//! The web UI in a real browser: each test starts the server (SQLite, with the demo helpdesk and
//! a fake model deployment that answers with hostile markup), prepares what its scenario needs
//! through the JSON API, then runs one scenario from `tests/browser/*.mjs` with node, where
//! playwright-core drives Debian's headless Chromium through the pages as the demo users would.
//! A scenario fails on any console error, uncaught exception, request to another origin or
//! unexpected dialog besides its own assertions (see `tests/browser/lib.mjs`).
//!
//! Needs `/usr/bin/chromium` (or `CHROMIUM`) and `tests/browser/node_modules`: both come from
//! `scripts/prepare-browser` (called by `scripts/prepare-test-services`). The tests fail rather
//! than skip without them, so a green run means the browser really ran.
//!
//! Screenshots go to `AJUTANT_SCREENSHOTS` when it is set (`docs/screenshots` keeps the
//! documentation's), else under the target folder beside each scenario's output and, when it
//! failed, a screenshot and the HTML of every page it had open.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]
#![allow(
    clippy::print_stderr,
    reason = "each scenario's timing and output are what a passing run reports"
)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ajutant_core::config::{
    Capability, Config, DEMO_EMPLOYEES, DEMO_HR_OWNERS, DeploymentConfig, ProviderKind,
};
use ajutant_testkit::fake_upstream::{FakeUpstream, XSS_CORPUS};
use ajutant_testkit::identity::{access_token, client, demo_user};
use ajutant_testkit::{Backend, TestApp};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// How long one scenario may take, browser start included.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

/// One browser at a time: each scenario starts its own server and Chromium, and two of them
/// side by side on a small machine make timings (the feed's five seconds) flaky. Held for the
/// whole test, whatever `--test-threads` says.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Fails with what to run when the browser or playwright-core is missing.
fn require_browser() {
    let chromium = chromium();
    assert!(
        chromium.is_file(),
        "{} is missing: run scripts/prepare-browser (it installs Debian's chromium and \
         playwright-core for the browser tests)",
        chromium.display()
    );
    let playwright = scenarios_dir().join("node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "{} is missing: run scripts/prepare-browser (npm ci of tests/browser/package.json)",
        playwright.display()
    );
}

fn xss_deployment(upstream: &FakeUpstream) -> DeploymentConfig {
    DeploymentConfig {
        name: "fake-xss".to_owned(),
        provider: ProviderKind::OpenAiCompatible,
        endpoint: Some(upstream.endpoint().parse().unwrap()),
        model: "xss".to_owned(),
        capabilities: vec![Capability::Chat],
        retries: 0,
        ..DeploymentConfig::offline()
    }
}

/// The server with the demo (the `helpdesk` assistant on the offline model, grounded in the
/// Fjordlight handbook) and the `fake-xss` deployment. The demo takes the first chat
/// deployment, which stays `offline`.
async fn start(upstream: &FakeUpstream) -> TestApp {
    TestApp::spawn_with(Backend::Sqlite, |config: &mut Config| {
        config.grounding.demo = true;
        config.deployments.push(xss_deployment(upstream));
    })
    .await
}

async fn admin_token(app: &TestApp) -> String {
    access_token(app, &demo_user("ada@example.org"))
        .await
        .unwrap()
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

async fn expect(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "unexpected status, body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Waits until every document of the demo handbook is ingested, so the helpdesk can cite it.
async fn wait_for_demo(app: &TestApp) {
    let admin = admin_token(app).await;
    let collections = expect(
        call(app, Method::GET, "/api/v1/collections", &admin, None).await,
        200,
    )
    .await;
    let handbook = collections
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "Fjordlight handbook (demo)")
        .unwrap_or_else(|| panic!("no demo handbook among {collections}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    loop {
        let documents = expect(
            call(
                app,
                Method::GET,
                &format!("/api/v1/collections/{handbook}/documents"),
                &admin,
                None,
            )
            .await,
            200,
        )
        .await;
        let documents = documents.as_array().unwrap();
        assert!(
            documents.iter().all(|d| d["status"] != "failed"),
            "a demo document failed: {documents:?}"
        );
        if documents.len() >= 5 && documents.iter().all(|d| d["status"] == "ready") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the demo handbook is still not ingested: {documents:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An assistant `xss-bot` on the `fake-xss` deployment, for the employees, whose description
/// and only document are the hostile corpus. Returns its id.
async fn hostile_assistant(app: &TestApp) -> String {
    let admin = admin_token(app).await;
    let collection = expect(
        call(
            app,
            Method::POST,
            "/api/v1/collections",
            &admin,
            Some(json!({
                "name": "XSS corpus",
                "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
                "owner_group": DEMO_HR_OWNERS,
                "embedding_deployment": "offline",
            })),
        )
        .await,
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A hostile heading too, in case the document's title is taken from it.
    let document = format!("# Parking <img src=x onerror=\"window.__xss=20\">\n\n{XSS_CORPUS}");
    let form = Form::new().part(
        "file",
        Part::bytes(document.into_bytes())
            .file_name("xss-corpus.md")
            .mime_str("text/markdown")
            .unwrap(),
    );
    let response = client()
        .post(app.url(&format!("/api/v1/collections/{collection}/documents")))
        .bearer_auth(&admin)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let job = expect(response, 202).await;
    let job_id = job["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let job = expect(
            call(
                app,
                Method::GET,
                &format!("/api/v1/ingestion-jobs/{job_id}"),
                &admin,
                None,
            )
            .await,
            200,
        )
        .await;
        match job["status"].as_str().unwrap() {
            "succeeded" => {
                assert_eq!(job["added"], 1, "{job}");
                break;
            }
            "failed" => panic!("the corpus did not ingest: {job}"),
            _ => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the corpus is still not ingested: {job}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    expect(
        call(
            app,
            Method::POST,
            "/api/v1/assistants",
            &admin,
            Some(json!({
                "id": "xss-bot",
                "name": "XSS bot",
                "description": XSS_CORPUS,
                "deployment": "fake-xss",
                "collections": [collection],
                "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
                "owner_group": DEMO_HR_OWNERS,
                "starters": ["<img src=x onerror=\"window.__xss=21\"> parking?"],
            })),
        )
        .await,
        201,
    )
    .await;
    "xss-bot".to_owned()
}

/// Runs `tests/browser/{name}.mjs` against `app` with `env` added; fails with its output unless
/// it exits 0 within [`SCENARIO_TIMEOUT`].
async fn run_scenario(app: &TestApp, name: &str, env: &[(&str, &str)]) {
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("browser")
        .join(name);
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let screenshots = std::env::var_os("AJUTANT_SCREENSHOTS")
        .map_or_else(|| work.join("screenshots"), PathBuf::from);
    std::fs::create_dir_all(&screenshots).unwrap();
    // Output to files rather than pipes, so that it survives a scenario killed on timeout.
    let stdout = work.join("stdout.txt");
    let stderr = work.join("stderr.txt");
    let started = Instant::now();
    let mut child = tokio::process::Command::new("node")
        .arg(scenarios_dir().join(format!("{name}.mjs")))
        .current_dir(scenarios_dir())
        .env("BASE_URL", app.url(""))
        .env("CHROMIUM", chromium())
        .env("SCREENSHOTS", &screenshots)
        .env("FAILURES", work.join("failures"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run node ({error}): install Node.js 20 and run scripts/prepare-browser")
        });
    let status = tokio::time::timeout(SCENARIO_TIMEOUT, child.wait()).await;
    let elapsed = started.elapsed();
    let output = format!(
        "--- stdout\n{}\n--- stderr\n{}",
        std::fs::read_to_string(&stdout).unwrap_or_default(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    match status {
        Ok(Ok(status)) if status.success() => {
            eprintln!(
                "{name}: passed in {:.1} s (screenshots in {})\n{output}",
                elapsed.as_secs_f64(),
                screenshots.display()
            );
        }
        Ok(Ok(status)) => panic!(
            "the {name} scenario failed ({status}) after {:.1} s; its files are in {}\n{output}",
            elapsed.as_secs_f64(),
            work.display()
        ),
        Ok(Err(error)) => panic!("cannot wait for node: {error}"),
        Err(_) => {
            let _ = child.kill().await;
            panic!(
                "the {name} scenario did not finish within {SCENARIO_TIMEOUT:?}; its files are \
                 in {}\n{output}",
                work.display()
            );
        }
    }
}

/// Alice asks the helpdesk; the answer streams, cites the handbook, and fits a phone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat() {
    let _turn = ONE_AT_A_TIME.lock().await;
    require_browser();
    let upstream = FakeUpstream::start().await;
    let app = start(&upstream).await;
    wait_for_demo(&app).await;
    run_scenario(&app, "chat", &[]).await;
}

/// Alice reports a serious issue; Oscar's live escalations feed shows it within five seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_feed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    require_browser();
    let upstream = FakeUpstream::start().await;
    let app = start(&upstream).await;
    wait_for_demo(&app).await;
    run_scenario(&app, "feedback_feed", &[]).await;
}

/// Oscar switches the helpdesk off and on; Alice's questions are refused, then answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill() {
    let _turn = ONE_AT_A_TIME.lock().await;
    require_browser();
    let upstream = FakeUpstream::start().await;
    let app = start(&upstream).await;
    wait_for_demo(&app).await;
    run_scenario(&app, "kill", &[]).await;
}

/// Audrey searches the audit trail and verifies its chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit() {
    let _turn = ONE_AT_A_TIME.lock().await;
    require_browser();
    let upstream = FakeUpstream::start().await;
    let app = start(&upstream).await;
    run_scenario(&app, "audit", &[]).await;
}

/// Alice has no way into the console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_console() {
    let _turn = ONE_AT_A_TIME.lock().await;
    require_browser();
    let upstream = FakeUpstream::start().await;
    let app = start(&upstream).await;
    run_scenario(&app, "no_console", &[]).await;
}

/// Hostile markup in a description, a document and a model's answer stays inert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xss() {
    let _turn = ONE_AT_A_TIME.lock().await;
    require_browser();
    let upstream = FakeUpstream::start().await;
    let app = start(&upstream).await;
    let assistant = hostile_assistant(&app).await;
    run_scenario(&app, "xss", &[("XSS_ASSISTANT", assistant.as_str())]).await;
    assert!(
        upstream.calls("xss") >= 1,
        "the xss model was never asked, so its answer was not shown"
    );
}
