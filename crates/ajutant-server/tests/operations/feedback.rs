//! Feedback: only the conversation's owner gives it, once per answer and editable; the
//! assistant's owners read it with what was judged, and nobody else's inbox; the figures add
//! up.

use ajutant_core::audit::Outcome;
use ajutant_core::config::DEMO_AUDITORS;
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::json;

use crate::support::{
    HR_OWNERS, ask, audit_count, call, create_assistant, expect, start_conversation, token,
};

async fn feedback_stays_with_its_owner_and_reaches_the_right_inbox(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = token(&app, "ada@example.org").await;
    let alice = token(&app, "alice@example.org").await;
    let oscar = token(&app, "oscar@example.org").await;
    let harriet = token(&app, "harriet@example.org").await;
    create_assistant(&app, &admin, "hr-bot", "offline", HR_OWNERS).await;
    // Owned by the auditors' group, which Harriet is not in.
    create_assistant(&app, &admin, "audit-bot", "offline", DEMO_AUDITORS).await;

    let conversation = start_conversation(&app, &alice, "hr-bot").await;
    let (question, answer) = ask(&app, &alice, &conversation, "How do I book leave?").await;
    let path = format!("/api/v1/messages/{answer}/feedback");

    // Someone else cannot give feedback on Alice's answer: 404, audited.
    let denied_before = audit_count(&app, "feedback.give", Outcome::Denied).await;
    let refused = call(
        &app,
        Method::POST,
        &path,
        &oscar,
        Some(json!({ "helpful": false })),
    )
    .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        audit_count(&app, "feedback.give", Outcome::Denied).await,
        denied_before + 1
    );
    // Nor read hers.
    assert_eq!(
        call(&app, Method::GET, &path, &oscar, None).await.status(),
        404
    );

    // Feedback is on answers, with known categories, saying something.
    let on_question = call(
        &app,
        Method::POST,
        &format!("/api/v1/messages/{question}/feedback"),
        &alice,
        Some(json!({ "helpful": true })),
    )
    .await;
    assert_eq!(on_question.status(), 400);
    let unknown = expect(
        call(
            &app,
            Method::POST,
            &path,
            &alice,
            Some(json!({ "categories": ["rude"] })),
        )
        .await,
        400,
    )
    .await;
    assert!(
        unknown["detail"]
            .as_str()
            .unwrap()
            .contains("factual_error"),
        "the error lists the categories: {unknown}"
    );
    expect(
        call(&app, Method::POST, &path, &alice, Some(json!({}))).await,
        400,
    )
    .await;
    expect(
        call(
            &app,
            Method::POST,
            &path,
            &alice,
            Some(json!({ "time_saved_minutes": -5 })),
        )
        .await,
        400,
    )
    .await;

    // Given, then changed: one piece of feedback per user per answer.
    let given = expect(
        call(
            &app,
            Method::POST,
            &path,
            &alice,
            Some(
                json!({ "helpful": false, "categories": ["inaccurate"], "comment": "wrong form" }),
            ),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(
        given["escalated"], false,
        "not serious: the owners' inbox only"
    );
    let changed = expect(
        call(
            &app,
            Method::POST,
            &path,
            &alice,
            Some(
                json!({ "helpful": true, "time_saved_minutes": 12, "categories": ["incomplete"] }),
            ),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["id"], given["id"]);
    assert_eq!(changed["helpful"], true);
    let mine = expect(call(&app, Method::GET, &path, &alice, None).await, 200).await;
    assert_eq!(mine["categories"], json!(["incomplete"]));
    assert_eq!(mine["time_saved_minutes"], 12);

    // The owners see what was judged, not who judged it.
    let inbox = expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot/feedback",
            &harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    let items = inbox["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{inbox}");
    let item = &items[0];
    assert_eq!(item["message_id"], answer.as_str());
    assert_eq!(item["question"], "How do I book leave?");
    assert!(!item["answer"].as_str().unwrap().is_empty());
    assert_eq!(item["assistant_version"], 1);
    assert_eq!(item["deployment"], "offline");
    assert_eq!(item["trace_id"].as_str().unwrap().len(), 32);
    assert!(item.get("principal_id").is_none() && item.get("principal_name").is_none());
    let filtered = expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot/feedback?category=inaccurate",
            &harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        filtered["items"].as_array().unwrap().len(),
        0,
        "the edit replaced the category"
    );
    let helpful = expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot/feedback?helpful=true&category=incomplete&version=1",
            &harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(helpful["items"].as_array().unwrap().len(), 1);

    // An owner of one assistant cannot read another's inbox or figures; admins can.
    for path in [
        "/api/v1/assistants/audit-bot/feedback",
        "/api/v1/assistants/audit-bot/feedback/analytics",
        "/api/v1/assistants/no-such-bot/feedback",
    ] {
        assert_eq!(
            call(&app, Method::GET, path, &harriet, None).await.status(),
            404,
            "{path}"
        );
    }
    assert_eq!(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot/feedback",
            &alice,
            None
        )
        .await
        .status(),
        404,
        "users do not read inboxes"
    );
    expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/audit-bot/feedback",
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;

    // A second answer, judged unhelpful with 4 minutes saved: the figures add up.
    let (_, second) = ask(&app, &alice, &conversation, "And sick leave?").await;
    expect(
        call(
            &app,
            Method::POST,
            &format!("/api/v1/messages/{second}/feedback"),
            &alice,
            Some(json!({ "helpful": false, "time_saved_minutes": 4, "categories": ["incomplete", "outdated_source"] })),
        )
        .await,
        201,
    )
    .await;
    let figures = expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot/feedback/analytics",
            &harriet,
            None,
        )
        .await,
        200,
    )
    .await;
    let totals = &figures["totals"];
    assert_eq!(totals["count"], 2, "{figures}");
    assert_eq!(totals["helpful"], 1);
    assert_eq!(totals["not_helpful"], 1);
    assert_eq!(totals["helpful_rate"], 0.5);
    assert_eq!(totals["time_saved_total"], 16);
    assert_eq!(totals["time_saved_median"], 8.0);
    assert_eq!(
        totals["categories"],
        json!({ "incomplete": 2, "outdated_source": 1 })
    );
    assert_eq!(figures["by_version"][0]["version"], 1);
    assert_eq!(figures["by_version"][0]["count"], 2);
    let series = figures["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "both given today: {figures}");
    assert_eq!(series[0]["count"], 2);
    expect(
        call(
            &app,
            Method::GET,
            "/api/v1/assistants/hr-bot/feedback/analytics?bucket=month",
            &harriet,
            None,
        )
        .await,
        400,
    )
    .await;
    app.stop().await.unwrap();
}

both_databases!(feedback_stays_with_its_owner_and_reaches_the_right_inbox);
