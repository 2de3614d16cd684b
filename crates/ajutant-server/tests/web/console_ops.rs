//! IT operations' and owners' console pages: kill switches, escalations, feedback and usage are
//! 404 for people without the role, show what the API holds to those with it, and show what
//! users typed escaped (askama writes `<` as `&#60;`).

use std::time::Duration;

use ajutant_core::config::{DEMO_ADMINS, DEMO_EMPLOYEES, DEMO_HR_OWNERS};
use ajutant_testkit::identity::{BrowserSession, access_token, client, demo_user};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{browser, page};

async fn token(app: &TestApp, email: &str) -> String {
    access_token(app, &demo_user(email)).await.unwrap()
}

/// Calls the JSON API with a bearer token; (status, JSON body).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client().request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// An assistant for the employees owned by `owner_group`, made by the platform admin.
async fn create_assistant(app: &TestApp, id: &str, owner_group: &str) {
    let admin = token(app, "ada@example.org").await;
    let (status, body) = call(
        app,
        Method::POST,
        "/api/v1/assistants",
        &admin,
        Some(json!({
            "id": id,
            "name": format!("Assistant {id}"),
            "deployment": "offline",
            "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
            "owner_group": owner_group,
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Alice asks `assistant` a question and gives `feedback` on the answer; returns what the
/// feedback API answered.
async fn alice_feedback(app: &TestApp, assistant: &str, feedback: Value) -> Value {
    let alice = token(app, "alice@example.org").await;
    let (status, conversation) = call(
        app,
        Method::POST,
        "/api/v1/conversations",
        &alice,
        Some(json!({ "assistant_id": assistant })),
    )
    .await;
    assert_eq!(status, 201, "{conversation}");
    let conversation = conversation["id"].as_str().unwrap();
    let (status, turn) = call(
        app,
        Method::POST,
        &format!("/api/v1/conversations/{conversation}/messages"),
        &alice,
        Some(json!({ "content": "How many days of leave do I have?" })),
    )
    .await;
    assert_eq!(status, 200, "{turn}");
    let answer = turn["message"]["id"].as_str().unwrap();
    let (status, given) = call(
        app,
        Method::POST,
        &format!("/api/v1/messages/{answer}/feedback"),
        &alice,
        Some(feedback),
    )
    .await;
    assert_eq!(status, 201, "{given}");
    given
}

/// A change through the JSON API as a browser makes it: the session cookie and its CSRF token.
async fn browser_call(
    app: &TestApp,
    session: &BrowserSession,
    method: Method,
    path: &str,
    body: Value,
) -> u16 {
    client()
        .request(method, app.url(path))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn sections_are_for_their_roles(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_assistant(&app, "hr-bot", DEMO_HR_OWNERS).await;

    let alice = browser(&app, "alice@example.org").await;
    for path in [
        "/console/switches",
        "/console/incidents",
        "/console/feedback",
        "/console/feedback/hr-bot",
        "/console/usage",
    ] {
        let (status, _) = page(&app, &alice, path).await;
        assert_eq!(status, 404, "alice on {path}");
    }

    let oscar = browser(&app, "oscar@example.org").await;
    let (status, html) = page(&app, &oscar, "/console/switches").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>Kill switches</h1>"));
    assert!(html.contains("<label for=\"switch-target\">What</label>"));
    assert!(html.contains("<option value=\"platform\">The whole platform</option>"));
    assert!(html.contains("Assistant id or deployment name"));
    assert!(html.contains(">Switch off</button>"));
    assert!(html.contains("No dead letters."));

    let response = client()
        .get(app.url("/console/incidents"))
        .header("cookie", &oscar.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    assert!(html.contains("<h1>Escalations</h1>"));
    assert!(html.contains("<ul id=\"live-feed\" class=\"live-feed\" aria-live=\"polite\">"));
    assert!(html.contains("id=\"feed-status\""));
    assert!(html.contains("/static/feed.js?v="));
    assert!(html.contains("No incidents."));

    let (status, html) = page(&app, &oscar, "/console/usage").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<h1>Usage</h1>"));
    assert!(html.contains("Calls by deployment"));
    assert!(html.contains("Cost by day"));
    assert!(html.contains("role=\"img\""));

    // IT operations do not read an assistant's feedback unless they own it.
    let (status, _) = page(&app, &oscar, "/console/feedback/hr-bot").await;
    assert_eq!(status, 404);

    // A bad filter is the API's 400, as a page.
    let (status, html) = page(&app, &oscar, "/console/incidents?status=lost").await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("<!doctype html>") || html.contains("<!DOCTYPE html>"));
}

async fn owners_read_their_assistants_feedback(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_assistant(&app, "hr-bot", DEMO_HR_OWNERS).await;
    create_assistant(&app, "admins-bot", DEMO_ADMINS).await;
    alice_feedback(
        &app,
        "hr-bot",
        json!({
            "helpful": true,
            "time_saved_minutes": 12,
            "categories": ["incomplete"],
            "comment": "Could say more <b>about</b> carry-over",
        }),
    )
    .await;

    let harriet = browser(&app, "harriet@example.org").await;
    let (status, html) = page(&app, &harriet, "/console/feedback").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("href=\"/console/feedback/hr-bot\""), "{html}");
    assert!(html.contains("Assistant hr-bot"));
    assert!(!html.contains("admins-bot"));

    let (status, html) = page(&app, &harriet, "/console/feedback/hr-bot").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Feedback on Assistant hr-bot"));
    let figure = |value: &str, label: &str| {
        format!("<div class=\"value\">{value}</div><div class=\"label\">{label}</div>")
    };
    assert!(html.contains(&figure("1", "Pieces of feedback")), "{html}");
    assert!(html.contains(&figure("100%", "Helpful rate")));
    assert!(html.contains(&figure("12", "Minutes saved in total")));
    assert!(html.contains(&figure("12", "Median minutes saved")));
    assert!(html.contains(&figure("0", "Escalated to IT operations")));
    // The charts, drawn on the server.
    assert!(html.contains("Helpful rate over time"));
    assert!(html.contains("Feedback by category"));
    assert!(html.contains("<rect class=\"bar\""));
    // The inbox: what was asked, answered and said, escaped.
    assert!(html.contains("How many days of leave do I have?"));
    assert!(html.contains("Could say more &#60;b&#62;about&#60;/b&#62; carry-over"));
    assert!(!html.contains("<b>about</b>"));
    assert!(html.contains("<td>Incomplete</td>"));
    assert!(
        !html.contains("Alice"),
        "owners do not see who gave the feedback"
    );

    let (status, html) = page(&app, &harriet, "/console/feedback/hr-bot?helpful=false").await;
    assert_eq!(status, 200);
    assert!(html.contains("No feedback matches these filters."));
    assert!(html.contains("<option value=\"false\" selected>Not helpful</option>"));
    let (status, _) = page(&app, &harriet, "/console/feedback/hr-bot?helpful=perhaps").await;
    assert_eq!(status, 400);

    let (status, _) = page(&app, &harriet, "/console/feedback/admins-bot").await;
    assert_eq!(status, 404);
    let (status, _) = page(&app, &harriet, "/console/feedback/no-such-bot").await;
    assert_eq!(status, 404);

    // The answer was a model call: it shows in the usage report for IT operations (the row
    // is written with the next audit batch, so allow it a moment).
    let oscar = browser(&app, "oscar@example.org").await;
    let mut html = String::new();
    for _ in 0..20 {
        let (status, body) = page(&app, &oscar, "/console/usage").await;
        assert_eq!(status, 200);
        html = body;
        if html.contains("<td><code>offline</code></td>") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(html.contains("<td><code>offline</code></td>"), "{html}");
}

async fn an_incident_shows_the_report_escaped_and_can_be_handled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_assistant(&app, "hr-bot", DEMO_HR_OWNERS).await;
    let given = alice_feedback(
        &app,
        "hr-bot",
        json!({
            "helpful": false,
            "categories": ["privacy"],
            "comment": "<script>alert(1)</script> it showed a salary",
            "serious": true,
        }),
    )
    .await;
    let incident = given["incident_id"].as_str().unwrap().to_owned();

    let oscar = browser(&app, "oscar@example.org").await;
    let (status, html) = page(&app, &oscar, "/console/incidents").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("<tr data-incident-id=\"{incident}\">")),
        "{html}"
    );
    assert!(html.contains(&format!(
        "href=\"/console/incidents/{incident}\">Open incident</a>"
    )));
    assert!(html.contains("Privacy or data exposure"));

    let path = format!("/console/incidents/{incident}");
    let (status, html) = page(&app, &oscar, &path).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62; it showed a salary"));
    assert!(!html.contains("<script>alert(1)"));
    assert!(html.contains("How many days of leave do I have?"));
    for label in [
        ">Acknowledge</button>",
        ">Resolve</button>",
        ">Assign</button>",
        ">Add note</button>",
        ">Record action</button>",
    ] {
        assert!(html.contains(label), "{label} missing");
    }
    assert!(
        !html.contains(">Reopen</button>"),
        "an open incident is not reopened"
    );
    assert!(html.contains("href=\"/console/switches?target=assistant&amp;id=hr-bot\""));
    assert!(html.contains("<strong>Opened</strong>"));

    // Acknowledged through the API as the page's form does it: the page follows.
    let status = browser_call(
        &app,
        &oscar,
        Method::PATCH,
        &format!("/api/v1/ops/incidents/{incident}"),
        json!({ "status": "acknowledged" }),
    )
    .await;
    assert_eq!(status, 200);
    let status = browser_call(
        &app,
        &oscar,
        Method::PATCH,
        &format!("/api/v1/ops/incidents/{incident}"),
        json!({ "note": "Looking <i>into</i> it" }),
    )
    .await;
    assert_eq!(status, 200);
    let (_, html) = page(&app, &oscar, &path).await;
    assert!(html.contains("<span class=\"badge acknowledged\">acknowledged</span>"));
    assert!(html.contains(">Reopen</button>"));
    assert!(!html.contains(">Acknowledge</button>"));
    assert!(html.contains("Looking &#60;i&#62;into&#60;/i&#62; it"));

    // The prefilled switch form the incident links to.
    let (status, html) = page(&app, &oscar, "/console/switches?target=assistant&id=hr-bot").await;
    assert_eq!(status, 200);
    assert!(html.contains("<option value=\"assistant\" selected>An assistant</option>"));
    assert!(html.contains("value=\"hr-bot\""));

    let alice = browser(&app, "alice@example.org").await;
    let (status, _) = page(&app, &alice, &path).await;
    assert_eq!(status, 404);
    let (status, _) = page(&app, &oscar, "/console/incidents/no-such-incident").await;
    assert_eq!(status, 404);
}

async fn the_switches_page_lists_a_kill_with_its_reason(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_assistant(&app, "hr-bot", DEMO_HR_OWNERS).await;
    let ops = token(&app, "oscar@example.org").await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/kill-switches",
        &ops,
        Some(json!({
            "target": "assistant",
            "id": "hr-bot",
            "state": "killed",
            "reason": "Leaking <b>salaries</b>",
        })),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let oscar = browser(&app, "oscar@example.org").await;
    let (status, html) = page(&app, &oscar, "/console/switches").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("<tr data-target=\"assistant\" data-id=\"hr-bot\">"),
        "{html}"
    );
    assert!(html.contains("Leaking &#60;b&#62;salaries&#60;/b&#62;"));
    assert!(!html.contains("<b>salaries</b>"));
    assert!(html.contains("<span class=\"badge killed\">killed</span>"));
    assert!(html.contains(">Switch back on</button>"));
    assert!(html.contains("/static/switches.js?v="));
    for column in ["Target", "Id", "State", "Reason", "By", "When"] {
        assert!(html.contains(&format!("<th scope=\"col\">{column}</th>")));
    }

    // Back on through the API, as the button does it: no button any more.
    let status = browser_call(
        &app,
        &oscar,
        Method::POST,
        "/api/v1/kill-switches",
        json!({ "target": "assistant", "id": "hr-bot", "state": "active", "reason": "fixed" }),
    )
    .await;
    assert_eq!(status, 200);
    let (_, html) = page(&app, &oscar, "/console/switches").await;
    assert!(html.contains("<span class=\"badge active\">active</span>"));
    assert!(!html.contains(">Switch back on</button>"));
}

both_databases!(
    sections_are_for_their_roles,
    owners_read_their_assistants_feedback,
    an_incident_shows_the_report_escaped_and_can_be_handled,
    the_switches_page_lists_a_kill_with_its_reason,
);
