//! Escalations: serious feedback opens an incident that reaches IT operations' live feed on
//! another instance within a second, and a correctly signed webhook; a failing receiver gets
//! retries then a dead letter; a receiver that was down gets the delivery when it is back; a
//! notification committed by an instance that stopped before sending is sent after a restart.

use std::time::{Duration, Instant};

use ajutant_core::audit::Outcome;
use ajutant_core::config::{Config, WebhookConfig, WebhookKind};
use ajutant_core::secret::SecretString;
use ajutant_testkit::fake_webhook::{FakeWebhook, test_secret, verify_standard_webhook};
use ajutant_testkit::identity::client;
use ajutant_testkit::sse::EventStream;
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{
    EMPLOYEES, HR_OWNERS, IT_OPS, api_key, ask, audit_count, call, create_assistant, expect,
    start_conversation, token,
};

fn webhook(name: &str, kind: WebhookKind, url: String) -> WebhookConfig {
    WebhookConfig {
        name: name.to_owned(),
        kind,
        url: SecretString::new(url),
        secret: (kind == WebhookKind::Generic).then(|| SecretString::new(test_secret())),
        include_comment: false,
    }
}

/// The receivers listen on loopback, which the egress check refuses unless an admin allows it.
fn loopback() -> Vec<String> {
    vec!["127.0.0.1".to_owned()]
}

/// Alice's serious report on an answer of `hr-bot`; returns the feedback as answered.
async fn report(app: &TestApp, user: &str) -> Value {
    let conversation = start_conversation(app, user, "hr-bot").await;
    let (_, answer) = ask(app, user, &conversation, "What is my manager's salary?").await;
    expect(
        call(
            app,
            Method::POST,
            &format!("/api/v1/messages/{answer}/feedback"),
            user,
            Some(json!({
                "helpful": false,
                "categories": ["privacy"],
                "comment": "it showed someone else's salary <!channel>",
                "serious": true,
            })),
        )
        .await,
        201,
    )
    .await
}

async fn notifications(app: &TestApp, ops: &str, status: &str) -> Vec<Value> {
    expect(
        call(
            app,
            Method::GET,
            &format!("/api/v1/ops/notifications?status={status}"),
            ops,
            None,
        )
        .await,
        200,
    )
    .await["notifications"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
#[allow(
    clippy::print_stderr,
    reason = "the measured latency goes to the test log"
)]
async fn serious_feedback_reaches_the_feed_of_another_instance_and_signed_webhooks() {
    let receiver = FakeWebhook::start().await;
    let targets = vec![
        webhook(
            "ops-generic",
            WebhookKind::Generic,
            receiver.url("/generic"),
        ),
        webhook("ops-teams", WebhookKind::Teams, receiver.url("/teams")),
        webhook("ops-slack", WebhookKind::Slack, receiver.url("/slack")),
    ];
    let configure = move |config: &mut Config| {
        config.notifications.webhooks = targets;
        config.egress.allow_hosts = loopback();
    };
    let first = TestApp::spawn_with(Backend::Postgres, configure).await;
    let second = first.spawn_beside(|_| {}).await;
    let admin = token(&first, "ada@example.org").await;
    create_assistant(&first, &admin, "hr-bot", "offline", HR_OWNERS).await;
    let employee = api_key(&first, &admin, "employee", &[EMPLOYEES]).await;
    let ops = api_key(&first, &admin, "ops", &[IT_OPS]).await;

    // Not for everyone: the feed is IT operations'.
    let refused = client()
        .get(second.url("/api/v1/ops/escalations/stream"))
        .bearer_auth(&employee)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 404);

    // IT operations watch the feed on the second instance; the report goes to the first.
    let response = client()
        .get(second.url("/api/v1/ops/escalations/stream"))
        .bearer_auth(&ops)
        .send()
        .await
        .unwrap();
    let mut feed = EventStream::new(response);
    feed.until("ready", Duration::from_secs(5)).await.unwrap();
    let given = report(&first, &employee).await;
    let reported = Instant::now();
    assert_eq!(given["escalated"], true, "{given}");
    let incident_id = given["incident_id"].as_str().unwrap().to_owned();
    let escalation = feed
        .until("escalation", Duration::from_secs(5))
        .await
        .expect("the escalation reaches the other instance's feed");
    let latency = reported.elapsed();
    eprintln!("escalation on the other instance's feed after {latency:?}");
    assert!(
        latency < Duration::from_secs(1),
        "the feed on the other instance took {latency:?}"
    );
    assert_eq!(escalation.data["id"], incident_id.as_str());
    assert_eq!(escalation.data["status"], "open");
    assert_eq!(escalation.data["categories"], json!(["privacy"]));
    assert_eq!(escalation.data["assistant_id"], "hr-bot");

    // One notification per target, each in its format; the generic one correctly signed.
    let delivered = receiver.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 3, "{delivered:?}");
    let generic = delivered.iter().find(|d| d.path == "/generic").unwrap();
    assert!(
        verify_standard_webhook(&test_secret(), generic),
        "{generic:?}"
    );
    assert!(generic.id.as_deref().unwrap().starts_with("msg_"));
    let timestamp: i64 = generic.timestamp.as_deref().unwrap().parse().unwrap();
    assert!((time::OffsetDateTime::now_utc().unix_timestamp() - timestamp).abs() < 60);
    assert_eq!(generic.body["type"], "incident.opened");
    assert_eq!(generic.body["data"]["incident_id"], incident_id.as_str());
    assert!(
        generic.body["data"]
            .get("comment")
            .is_none_or(Value::is_null),
        "comments stay in the tenant unless configured: {}",
        generic.body
    );
    let teams = delivered.iter().find(|d| d.path == "/teams").unwrap();
    assert_eq!(
        teams.body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let slack = delivered.iter().find(|d| d.path == "/slack").unwrap();
    assert!(
        slack.body["text"].as_str().unwrap().contains("hr-bot") || slack.body["blocks"].is_array()
    );

    // The incident, from the second instance: open, linked to the answer; then handled.
    let path = format!("/api/v1/ops/incidents/{incident_id}");
    let incident = expect(call(&second, Method::GET, &path, &ops, None).await, 200).await;
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["assistant_version"], 1);
    assert_eq!(incident["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(
        incident["feedback"]["comment"],
        "it showed someone else's salary <!channel>"
    );
    assert_eq!(incident["timeline"][0]["kind"], "opened");
    let acknowledged = expect(
        call(
            &second,
            Method::PATCH,
            &path,
            &ops,
            Some(json!({ "status": "acknowledged", "assignee": "Oscar" })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(acknowledged["status"], "acknowledged");
    assert_eq!(acknowledged["assignee"], "Oscar");
    let changed = feed
        .until("incident", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(changed.data["status"], "acknowledged");
    expect(
        call(
            &first,
            Method::PATCH,
            &path,
            &ops,
            Some(json!({ "action": "assistant pulled pending review" })),
        )
        .await,
        200,
    )
    .await;
    let resolved = expect(
        call(
            &first,
            Method::PATCH,
            &path,
            &ops,
            Some(json!({ "status": "resolved" })),
        )
        .await,
        200,
    )
    .await;
    let kinds: Vec<&str> = resolved["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec!["opened", "acknowledged", "assigned", "action", "resolved"]
    );
    // Resolved cannot be acknowledged again (it can be reopened).
    expect(
        call(
            &first,
            Method::PATCH,
            &path,
            &ops,
            Some(json!({ "status": "acknowledged" })),
        )
        .await,
        409,
    )
    .await;
    let listed = expect(
        call(
            &second,
            Method::GET,
            "/api/v1/ops/incidents?status=resolved",
            &ops,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(listed["incidents"][0]["id"], incident_id.as_str());

    drop(feed);
    second.shutdown().await.unwrap();
    first.stop().await.unwrap();
}

async fn failing_and_late_receivers_get_retries_dead_letters_and_late_deliveries(backend: Backend) {
    let broken = FakeWebhook::start().await;
    broken.set_failing(true);
    let late = FakeWebhook::start().await;
    late.set_down(true);
    let targets = vec![
        webhook("broken", WebhookKind::Generic, broken.url("/hook")),
        webhook("late", WebhookKind::Generic, late.url("/hook")),
    ];
    let app = TestApp::spawn_with(backend, move |config| {
        config.notifications.webhooks = targets;
        config.egress.allow_hosts = loopback();
        config.notifications.max_attempts = 4;
        config.notifications.retry_base_ms = 150;
        config.notifications.retry_max_ms = 600;
    })
    .await;
    let admin = token(&app, "ada@example.org").await;
    let ops = token(&app, "oscar@example.org").await;
    let alice = token(&app, "alice@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "offline", HR_OWNERS).await;
    let dead_before = audit_count(&app, "notification.dead_lettered", Outcome::Failed).await;
    let given = report(&app, &alice).await;
    assert_eq!(given["escalated"], true);

    // The late receiver comes back after its first attempts failed, and gets the delivery.
    tokio::time::sleep(Duration::from_millis(400)).await;
    late.set_down(false);
    let arrived = late.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(
        arrived.len(),
        1,
        "the late receiver got it once it was back"
    );
    assert!(verify_standard_webhook(&test_secret(), &arrived[0]));

    // The broken one: every attempt refused, then a dead letter, visible and audited.
    let started = Instant::now();
    let dead = loop {
        let dead = notifications(&app, &ops, "dead").await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no dead letter yet"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["target"], "broken");
    assert_eq!(dead[0]["attempts"], 4);
    assert!(dead[0]["last_error"].as_str().unwrap().contains("500"));
    let tries = broken.deliveries();
    assert_eq!(tries.len(), 4, "one request per attempt");
    let first_id = tries[0].id.clone().unwrap();
    assert!(
        tries
            .iter()
            .all(|t| t.id.as_deref() == Some(first_id.as_str())),
        "every attempt carries the same webhook-id"
    );
    assert_eq!(
        audit_count(&app, "notification.dead_lettered", Outcome::Failed).await,
        dead_before + 1
    );
    let metrics = client()
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("ajutant_notifications_dead_letters_total{target=\"broken\"}")),
        "the dead letter is counted"
    );

    // Fixed and requeued, it is delivered: a duplicate, recognisable by its id.
    broken.set_failing(false);
    let id = dead[0]["id"].as_str().unwrap();
    expect(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/ops/notifications/{id}/retry"),
            &ops,
            None,
        )
        .await,
        200,
    )
    .await;
    let delivered = broken.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(delivered[0].id.as_deref(), Some(first_id.as_str()));
    assert!(verify_standard_webhook(&test_secret(), &delivered[0]));
    // Only dead letters are requeued.
    expect(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/ops/notifications/{id}/retry"),
            &ops,
            None,
        )
        .await,
        409,
    )
    .await;
    app.stop().await.unwrap();
}

both_databases!(failing_and_late_receivers_get_retries_dead_letters_and_late_deliveries);

async fn a_notification_committed_before_a_stop_is_sent_after_the_restart(backend: Backend) {
    let receiver = FakeWebhook::start().await;
    let url = receiver.url("/hook");
    let target = webhook("ops", WebhookKind::Generic, url);
    let targets = vec![target.clone()];
    // An instance that sends nothing: the report is committed, with its outbox row, and the
    // instance goes away before any send.
    let app = TestApp::spawn_with(backend, move |config| {
        config.notifications.webhooks = targets;
        config.egress.allow_hosts = loopback();
        config.notifications.senders = 0;
    })
    .await;
    let admin = token(&app, "ada@example.org").await;
    let alice = token(&app, "alice@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "offline", HR_OWNERS).await;
    let given = report(&app, &alice).await;
    assert_eq!(given["escalated"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.deliveries().is_empty(), "nothing was sent");
    let database = app.stop().await.unwrap();

    let restarted = TestApp::spawn_on(database, move |config| {
        config.notifications.webhooks = vec![target];
        config.egress.allow_hosts = loopback();
    })
    .await;
    let delivered = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].body["data"]["incident_id"],
        given["incident_id"]
    );
    assert!(verify_standard_webhook(&test_secret(), &delivered[0]));
    restarted.stop().await.unwrap();
}

both_databases!(a_notification_committed_before_a_stop_is_sent_after_the_restart);

/// A webhook into the server's own network (here loopback, not allowed) is refused by the
/// egress check before anything is sent: a dead letter that says why, at the first attempt.
async fn a_webhook_into_the_servers_network_is_refused(backend: Backend) {
    let receiver = FakeWebhook::start().await;
    let targets = vec![webhook(
        "internal",
        WebhookKind::Generic,
        receiver.url("/hook"),
    )];
    let app = TestApp::spawn_with(backend, move |config| {
        config.notifications.webhooks = targets;
    })
    .await;
    let admin = token(&app, "ada@example.org").await;
    let ops = token(&app, "oscar@example.org").await;
    let alice = token(&app, "alice@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "offline", HR_OWNERS).await;
    report(&app, &alice).await;
    let started = Instant::now();
    let dead = loop {
        let dead = notifications(&app, &ops, "dead").await;
        if !dead.is_empty() {
            break dead;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no dead letter"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(dead[0]["attempts"], 1, "{dead:?}");
    let error = dead[0]["last_error"].as_str().unwrap();
    assert!(
        error.contains("loopback") && error.contains("egress.allow_hosts"),
        "{error}"
    );
    assert!(receiver.deliveries().is_empty());
    app.stop().await.unwrap();
}

both_databases!(a_webhook_into_the_servers_network_is_refused);

/// An open feed ends as soon as a new request would be refused: a revoked key kept receiving
/// the live escalations. Checked every second; the feed says why it ended, then closes.
async fn a_revoked_keys_feed_ends_within_a_second(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    let created = expect(
        call(
            &app,
            Method::POST,
            "/api/v1/admin/api-keys",
            &admin,
            Some(json!({ "name": "ops-screen", "groups": [IT_OPS] })),
        )
        .await,
        201,
    )
    .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    let response = client()
        .get(app.url("/api/v1/ops/escalations/stream"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut feed = EventStream::new(response);
    assert!(feed.until("ready", Duration::from_secs(5)).await.is_some());
    // Still open a while later: the checks pass while the key is good.
    assert!(feed.next(Duration::from_millis(1500)).await.is_none());

    let revoked = Instant::now();
    expect(
        call(
            &app,
            Method::DELETE,
            &format!("/api/v1/admin/api-keys/{id}"),
            &admin,
            None,
        )
        .await,
        204,
    )
    .await;
    let Some(ended) = feed.until("ended", Duration::from_secs(5)).await else {
        panic!("the feed of a revoked key did not end");
    };
    let took = revoked.elapsed();
    assert!(took < Duration::from_millis(1500), "ended after {took:?}");
    assert_eq!(ended.data["reason"], "signed_out", "{ended:?}");
    assert!(
        feed.next(Duration::from_secs(2)).await.is_none(),
        "still open"
    );
    app.stop().await.unwrap();
}

both_databases!(a_revoked_keys_feed_ends_within_a_second);
