//! Kill switches: who may pull what; a pulled assistant's running answers end on every
//! instance within two seconds while other assistants go on; the platform switch refuses chat
//! and the gateway on every instance and survives a restart.

use std::time::{Duration, Instant};

use ajutant_core::audit::Outcome;
use ajutant_core::config::{Capability, Config, DeploymentConfig, ProviderKind};
use ajutant_testkit::fake_upstream::FakeUpstream;
use ajutant_testkit::identity::client;
use ajutant_testkit::sse::EventStream;
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    EMPLOYEES, HR_OWNERS, IT_OPS, api_key, audit_count, call, create_assistant, expect,
    start_conversation, token,
};

fn switch(target: &str, id: Option<&str>, state: &str, reason: &str) -> Value {
    json!({ "target": target, "id": id, "state": state, "reason": reason })
}

async fn flip(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    call(
        app,
        Method::POST,
        "/api/v1/kill-switches",
        token,
        Some(body),
    )
    .await
}

/// Flips a switch and checks the answer's status; returns its body.
async fn flipped(app: &TestApp, token: &str, body: Value, status: u16) -> Value {
    expect(flip(app, token, body).await, status).await
}

async fn who_may_pull_what(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    let harriet = token(&app, "harriet@example.org").await;
    let oscar = token(&app, "oscar@example.org").await;
    let alice = token(&app, "alice@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "offline", HR_OWNERS).await;
    create_assistant(&app, &admin, "it-bot", "offline", IT_OPS).await;

    // Clear errors for bad requests.
    let no_reason = flipped(
        &app,
        &oscar,
        switch("assistant", Some("hr-bot"), "killed", " "),
        400,
    )
    .await;
    assert!(no_reason["detail"].as_str().unwrap().contains("reason"));
    flipped(&app, &oscar, switch("assistant", None, "killed", "x"), 400).await;
    flipped(
        &app,
        &oscar,
        switch("platform", Some("x"), "killed", "x"),
        400,
    )
    .await;
    flipped(
        &app,
        &oscar,
        switch("assistant", Some("no-such-bot"), "killed", "x"),
        404,
    )
    .await;

    // Owners pull their own assistant, not another's, and bring back what they pulled.
    let pulled = flipped(
        &app,
        &harriet,
        switch("assistant", Some("hr-bot"), "killed", "wrong leave policy"),
        200,
    )
    .await;
    assert_eq!(pulled["state"], "killed");
    assert_eq!(pulled["changed_by_role"], "owner_group");
    assert_eq!(pulled["reason"], "wrong leave policy");
    flipped(
        &app,
        &harriet,
        switch("assistant", Some("it-bot"), "killed", "x"),
        404,
    )
    .await;
    let view = expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot",
            &harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(view["status"], "killed");
    flipped(
        &app,
        &harriet,
        switch("assistant", Some("hr-bot"), "active", "fixed"),
        200,
    )
    .await;

    // What IT operations pull, owners cannot bring back; IT operations can.
    flipped(
        &app,
        &oscar,
        switch("assistant", Some("hr-bot"), "killed", "data exposure"),
        200,
    )
    .await;
    flipped(
        &app,
        &harriet,
        switch("assistant", Some("hr-bot"), "active", "looks fine"),
        404,
    )
    .await;
    // While pulled, new turns get a clear refusal.
    let conversation = start_conversation(&app, &alice, "it-bot").await;
    let blocked = start_conversation(&app, &alice, "hr-bot").await;
    let refused = expect(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/conversations/{blocked}/messages"),
            &alice,
            Some(json!({ "content": "hello" })),
        )
        .await,
        503,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("disabled"),
        "{refused}"
    );
    assert!(
        !refused["detail"]
            .as_str()
            .unwrap()
            .contains("data exposure"),
        "the internal reason is not shown to users"
    );
    expect(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            &alice,
            Some(json!({ "content": "hello" })),
        )
        .await,
        200,
    )
    .await;
    flipped(
        &app,
        &oscar,
        switch("assistant", Some("hr-bot"), "active", "reviewed"),
        200,
    )
    .await;

    // Deployments and the platform: IT operations; reviving the platform: admins only.
    flipped(&app, &harriet, switch("platform", None, "killed", "x"), 404).await;
    flipped(
        &app,
        &harriet,
        switch("deployment", Some("offline"), "killed", "x"),
        404,
    )
    .await;
    flipped(
        &app,
        &oscar,
        switch("deployment", Some("no-such-model"), "killed", "x"),
        404,
    )
    .await;
    flipped(
        &app,
        &oscar,
        switch("deployment", Some("offline"), "killed", "vendor incident"),
        200,
    )
    .await;
    let refused = expect(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            &alice,
            Some(json!({ "content": "hello" })),
        )
        .await,
        503,
    )
    .await;
    assert!(
        refused["detail"].as_str().unwrap().contains("offline"),
        "{refused}"
    );
    flipped(
        &app,
        &oscar,
        switch("deployment", Some("offline"), "active", "vendor fixed"),
        200,
    )
    .await;

    // The list is IT operations'; every change is audited with who and why.
    assert_eq!(
        call(&app, Method::GET, "/api/v1/kill-switches", &alice, None)
            .await
            .status(),
        404
    );
    let list = expect(
        call(&app, Method::GET, "/api/v1/kill-switches", &oscar, None).await,
        200,
    )
    .await;
    let switches = list["switches"].as_array().unwrap();
    assert_eq!(switches.len(), 2, "{list}");
    assert!(switches.iter().all(|s| s["state"] == "active"));
    assert_eq!(
        audit_count(&app, "kill_switch.set", Outcome::Allowed).await,
        6
    );
    app.stop().await.unwrap();
}

both_databases!(who_may_pull_what);

/// A kill never weakens a stricter one: once IT operations hold an assistant off, its owners can
/// neither take the switch over by pulling it again nor, through that, bring it back. Who may
/// bring it back follows the strictest holder.
async fn an_owner_cannot_take_over_what_it_operations_pulled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    let harriet = token(&app, "harriet@example.org").await;
    let oscar = token(&app, "oscar@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "offline", HR_OWNERS).await;
    let hr_bot = |state, reason| switch("assistant", Some("hr-bot"), state, reason);

    flipped(&app, &oscar, hr_bot("killed", "data exposure"), 200).await;
    let refused = flipped(&app, &harriet, hr_bot("killed", "mine now"), 409).await;
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("IT operations"),
        "{refused}"
    );
    flipped(&app, &harriet, hr_bot("active", "looks fine"), 404).await;
    let list = expect(
        call(&app, Method::GET, "/api/v1/kill-switches", &oscar, None).await,
        200,
    )
    .await;
    let held = &list["switches"][0];
    assert_eq!(
        (&held["state"], &held["changed_by_role"], &held["reason"]),
        (&json!("killed"), &json!("it_ops"), &json!("data exposure")),
        "{list}"
    );
    let view = expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot",
            &harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(view["status"], "killed");

    // IT operations may restate their own kill, and take over one the owners pulled.
    flipped(&app, &oscar, hr_bot("killed", "still under review"), 200).await;
    flipped(&app, &oscar, hr_bot("active", "reviewed"), 200).await;
    flipped(&app, &harriet, hr_bot("killed", "wrong policy"), 200).await;
    let taken = flipped(&app, &oscar, hr_bot("killed", "escalated"), 200).await;
    assert_eq!(taken["changed_by_role"], "it_ops");
    flipped(&app, &harriet, hr_bot("active", "fixed"), 404).await;
    app.stop().await.unwrap();
}

both_databases!(an_owner_cannot_take_over_what_it_operations_pulled);

fn slow_deployment(upstream: &FakeUpstream) -> DeploymentConfig {
    DeploymentConfig {
        name: "fake-slow".to_owned(),
        provider: ProviderKind::OpenAiCompatible,
        endpoint: Some(upstream.endpoint().parse().unwrap()),
        model: "slow".to_owned(),
        capabilities: vec![Capability::Chat],
        retries: 0,
        ..DeploymentConfig::offline()
    }
}

/// Starts a streamed turn and waits for its first text.
async fn streaming(app: &TestApp, key: &str, assistant: &str) -> EventStream {
    let conversation = start_conversation(app, key, assistant).await;
    let response = client()
        .post(app.url(&format!("/api/v1/conversations/{conversation}/messages")))
        .bearer_auth(key)
        .header("accept", "text/event-stream")
        .json(&json!({ "content": "tell me a long story" }))
        .send()
        .await
        .unwrap();
    let mut stream = EventStream::new(response);
    stream
        .until("delta", Duration::from_secs(10))
        .await
        .unwrap();
    stream
}

#[tokio::test]
#[allow(clippy::print_stderr, reason = "the measured times go to the test log")]
async fn a_pulled_assistant_stops_answering_on_every_instance_within_two_seconds() {
    let upstream = FakeUpstream::start().await;
    let deployment = slow_deployment(&upstream);
    let first = TestApp::spawn_with(Backend::Postgres, move |config: &mut Config| {
        config.deployments.push(deployment);
    })
    .await;
    let second = first.spawn_beside(|_| {}).await;
    let admin = token(&first, "ada@example.org").await;
    create_assistant(&first, &admin, "story-bot", "fake-slow", HR_OWNERS).await;
    create_assistant(&first, &admin, "other-bot", "fake-slow", HR_OWNERS).await;
    let employee = api_key(&first, &admin, "employee", &[EMPLOYEES]).await;
    let ops = api_key(&first, &admin, "ops", &[IT_OPS]).await;

    let mut pulled = Vec::new();
    for n in 0..10 {
        let app = if n % 2 == 0 { &first } else { &second };
        pulled.push(streaming(app, &employee, "story-bot").await);
    }
    let mut other = streaming(&second, &employee, "other-bot").await;

    let killed_at = Instant::now();
    flipped(
        &first,
        &ops,
        switch("assistant", Some("story-bot"), "killed", "drill"),
        200,
    )
    .await;
    let waiting: Vec<_> = pulled
        .into_iter()
        .map(|mut stream| {
            #[allow(clippy::disallowed_methods, reason = "streams the test joins")]
            tokio::spawn(async move {
                let ended = stream.until("error", Duration::from_secs(5)).await;
                (ended, killed_at.elapsed())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for (n, task) in waiting.into_iter().enumerate() {
        let (ended, after) = task.await.unwrap();
        slowest = slowest.max(after);
        let ended = ended.unwrap_or_else(|| panic!("stream {n} did not end"));
        assert_eq!(
            ended.data["code"], "assistant_disabled",
            "stream {n}: {:?}",
            ended.data
        );
        assert!(
            after < Duration::from_secs(2),
            "stream {n} ended after {after:?}"
        );
    }
    eprintln!("10 streams on 2 instances ended; the last {slowest:?} after the kill");
    // The other assistant goes on answering.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let more = other.next(Duration::from_secs(2)).await.unwrap();
    assert_eq!(more.name, "delta", "{more:?}");

    // New turns of the pulled assistant are refused on both instances.
    for app in [&first, &second] {
        let conversation = start_conversation(app, &employee, "story-bot").await;
        let refused = expect(
            call(
                app,
                Method::POST,
                &format!("/api/v1/conversations/{conversation}/messages"),
                &employee,
                Some(json!({ "content": "hello" })),
            )
            .await,
            503,
        )
        .await;
        assert!(refused["detail"].as_str().unwrap().contains("disabled"));
    }
    drop(other);
    second.shutdown().await.unwrap();
    first.stop().await.unwrap();
}

/// Polls until `app` refuses a gateway call; returns how long that took.
async fn until_refused(app: &TestApp, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let response = client()
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({ "model": "offline", "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .unwrap();
        if response.status() == 503 {
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "platform_disabled", "{body}");
            return started.elapsed();
        }
        assert_eq!(response.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(5), "never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_platform_switch_holds_on_every_instance_and_across_a_restart() {
    let first = TestApp::spawn(Backend::Postgres).await;
    let second = first.spawn_beside(|_| {}).await;
    let admin = token(&first, "ada@example.org").await;
    create_assistant(&first, &admin, "hr-bot", "offline", HR_OWNERS).await;
    let employee = api_key(&first, &admin, "employee", &[EMPLOYEES]).await;
    let ops = api_key(&first, &admin, "ops", &[IT_OPS]).await;
    let admin_key = api_key(
        &first,
        &admin,
        "admin",
        &[ajutant_core::config::DEMO_ADMINS],
    )
    .await;
    let conversation = start_conversation(&second, &employee, "hr-bot").await;

    flipped(
        &first,
        &ops,
        switch("platform", None, "killed", "incident 42"),
        200,
    )
    .await;
    let on_second = until_refused(&second, &employee).await;
    assert!(
        on_second < Duration::from_secs(2),
        "the second instance took {on_second:?}"
    );
    let on_first = until_refused(&first, &employee).await;
    assert!(
        on_first < Duration::from_millis(200),
        "the instance that took the switch obeys at once: {on_first:?}"
    );
    for app in [&first, &second] {
        expect(
            call(
                app,
                Method::POST,
                &format!("/api/v1/conversations/{conversation}/messages"),
                &employee,
                Some(json!({ "content": "hello" })),
            )
            .await,
            503,
        )
        .await;
    }
    // IT operations cannot bring the platform back.
    flipped(
        &second,
        &ops,
        switch("platform", None, "active", "over"),
        404,
    )
    .await;

    // Both instances restart: the switch holds from the first request.
    second.shutdown().await.unwrap();
    let database = first.stop().await.unwrap();
    let restarted = TestApp::spawn_on(database, |_| {}).await;
    let refused = client()
        .post(restarted.url("/v1/chat/completions"))
        .bearer_auth(&employee)
        .json(&json!({ "model": "offline", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);

    // An admin brings it back.
    flipped(
        &restarted,
        &admin_key,
        switch("platform", None, "active", "incident 42 closed"),
        200,
    )
    .await;
    expect(
        call(
            &restarted,
            Method::POST,
            &format!("/api/v1/conversations/{conversation}/messages"),
            &employee,
            Some(json!({ "content": "hello" })),
        )
        .await,
        200,
    )
    .await;
    restarted.stop().await.unwrap();
}
