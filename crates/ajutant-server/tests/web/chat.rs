//! The chat pages: `/chat` offers the assistants the viewer may use (switched-off ones
//! disabled) and lists their conversations; `/chat/{id}` shows one conversation to its owner
//! only, with answers placed as escaped text for the browser's Markdown renderer, their sources
//! and the feedback already given. What users, owners, documents and models wrote appears
//! escaped (askama writes `<` as `&#60;`).

use ajutant_core::config::{DEMO_EMPLOYEES, DEMO_HR_OWNERS};
use ajutant_store::NewMessage;
use ajutant_testkit::identity::{BrowserSession, access_token, client, demo_user};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::support::{browser, page};

const SCRIPT: &str = "<script>alert(1)</script>";
const IMAGE: &str = "<img src=x onerror=alert(1)>";

/// How askama escapes HTML text: `&`, `<`, `>`, `"` and `'` as numeric references.
fn escaped(text: &str) -> String {
    text.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Calls the JSON API as the browser does: the session cookie, and the CSRF token on changes.
async fn call(
    app: &TestApp,
    session: &BrowserSession,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = client()
        .request(method, app.url(path))
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Creates an assistant as the platform admin (with a bearer token, as an API client would).
async fn create_assistant(app: &TestApp, definition: Value) {
    let admin = access_token(app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let response = client()
        .post(app.url("/api/v1/assistants"))
        .bearer_auth(&admin)
        .json(&definition)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(status, 201, "{}", response.text().await.unwrap());
}

/// The text inside every `<div class="content" data-markdown>` of a page.
fn markdown_sources(html: &str) -> Vec<&str> {
    let opening = "<div class=\"content\" data-markdown>";
    html.split(opening)
        .skip(1)
        .map(|rest| rest.split("</div>").next().unwrap())
        .collect()
}

/// The markup of the message `id`, from its article's opening to its end.
fn message<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("data-message-id=\"{id}\""))
        .unwrap_or_else(|| panic!("no message {id} in {html}"));
    let rest = &html[start..];
    &rest[..rest.find("</article>").unwrap()]
}

async fn the_chat_offers_the_assistants_each_viewer_may_use(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| config.grounding.demo = true).await;
    create_assistant(
        &app,
        json!({
            "id": "hostile",
            "name": format!("Hostile {SCRIPT}"),
            "description": format!("Describes {SCRIPT} and {IMAGE} & more"),
            "deployment": "offline",
            "access": { "scope": "organisation" },
            "starters": [format!("Ask {IMAGE}")],
        }),
    )
    .await;
    create_assistant(
        &app,
        json!({
            "id": "hr-only",
            "name": "HR only",
            "deployment": "offline",
            "access": { "scope": "groups", "groups": [DEMO_HR_OWNERS] },
        }),
    )
    .await;
    create_assistant(
        &app,
        json!({
            "id": "paused",
            "name": "Paused bot",
            "deployment": "offline",
            "access": { "scope": "groups", "groups": [DEMO_EMPLOYEES] },
            "starters": ["Still there?"],
        }),
    )
    .await;
    let oscar = browser(&app, "oscar@example.org").await;
    let (status, body) = call(
        &app,
        &oscar,
        Method::POST,
        "/api/v1/kill-switches",
        Some(
            json!({ "target": "assistant", "id": "paused", "state": "killed", "reason": "drill" }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let alice = browser(&app, "alice@example.org").await;
    let response = client()
        .get(app.url("/chat"))
        .header("cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let html = response.text().await.unwrap();
    assert!(html.contains(">Assistants</h2>"), "{html}");
    assert!(html.contains(">Conversations</h2>"), "{html}");

    // The demo helpdesk, with its description and starters.
    assert!(
        html.contains("<article class=\"assistant-card\" data-assistant-id=\"helpdesk\">"),
        "{html}"
    );
    assert!(
        html.contains("<h3 id=\"assistant-helpdesk\">Fjordlight helpdesk</h3>"),
        "{html}"
    );
    assert!(html.contains("from the company handbook."), "{html}");
    for starter in [
        "How do I request a new laptop?",
        "How many days of annual leave do I have?",
        "What can I claim for my home office?",
    ] {
        assert!(
            html.contains(&format!(
                "<button type=\"button\" class=\"starter\">{}</button>",
                escaped(starter)
            )),
            "{starter} in {html}"
        );
    }
    assert!(html.contains(">Start a conversation</button>"), "{html}");

    // What an assistant's definition says is shown as text, never as markup.
    assert!(!html.contains(SCRIPT), "{html}");
    assert!(!html.contains(IMAGE), "{html}");
    assert!(
        html.contains(&escaped(&format!("Hostile {SCRIPT}"))),
        "{html}"
    );
    assert!(
        html.contains(&escaped(&format!("Describes {SCRIPT} and {IMAGE} & more"))),
        "{html}"
    );
    assert!(html.contains(&escaped(&format!("Ask {IMAGE}"))), "{html}");

    // Outside the viewer's scope: not offered. Switched off: shown, but disabled.
    assert!(!html.contains("data-assistant-id=\"hr-only\""), "{html}");
    let paused = html
        .split("data-assistant-id=\"paused\"")
        .nth(1)
        .and_then(|rest| rest.split("</article>").next())
        .unwrap_or_else(|| panic!("no paused card in {html}"));
    assert!(paused.contains("Switched off"), "{paused}");
    assert!(
        paused.contains("aria-describedby=\"assistant-paused\" disabled>Start a conversation"),
        "{paused}"
    );
    assert!(
        paused.contains("class=\"starter\" disabled>Still there?"),
        "{paused}"
    );
    assert!(html.contains("class=\"assistant-card killed\" data-assistant-id=\"paused\""));

    // HR owners see their assistant.
    let harriet = browser(&app, "harriet@example.org").await;
    let (status, html) = page(&app, &harriet, "/chat").await;
    assert_eq!(status, 200);
    assert!(html.contains("data-assistant-id=\"hr-only\""), "{html}");

    // Someone not signed in is sent to sign in, and back here afterwards.
    let anonymous = client().get(app.url("/chat")).send().await.unwrap();
    assert_eq!(anonymous.status(), 303);
    assert_eq!(
        anonymous.headers()["location"],
        "/auth/login?return_to=%2Fchat"
    );
    app.stop().await.unwrap();
}

async fn a_conversation_is_shown_to_its_owner_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_assistant(
        &app,
        json!({
            "id": "helper",
            "name": "Helper",
            "deployment": "offline",
            "access": { "scope": "organisation" },
        }),
    )
    .await;
    let alice = browser(&app, "alice@example.org").await;
    let (status, conversation) = call(
        &app,
        &alice,
        Method::POST,
        "/api/v1/conversations",
        Some(json!({ "assistant_id": "helper", "title": format!("About {SCRIPT}") })),
    )
    .await;
    assert_eq!(status, 201, "{conversation}");
    let id = conversation["id"].as_str().unwrap().to_owned();
    let question = format!("Is {SCRIPT} *safe*?");
    let (status, turn) = call(
        &app,
        &alice,
        Method::POST,
        &format!("/api/v1/conversations/{id}/messages"),
        Some(json!({ "content": question })),
    )
    .await;
    assert_eq!(status, 200, "{turn}");
    let answer_id = turn["message"]["id"].as_str().unwrap().to_owned();
    let answer = turn["message"]["content"].as_str().unwrap().to_owned();
    let (status, given) = call(
        &app,
        &alice,
        Method::POST,
        &format!("/api/v1/messages/{answer_id}/feedback"),
        Some(json!({
            "helpful": true,
            "time_saved_minutes": 7,
            "categories": ["incomplete"],
            "comment": format!("Could be better {IMAGE}"),
        })),
    )
    .await;
    assert_eq!(status, 201, "{given}");

    // A model answer made to attack the page, cut short, citing a hostile source.
    let hostile = format!(
        "Here: {SCRIPT} **bold** {IMAGE} [x](javascript:alert(1)) [1]\n\n```\n</div>{SCRIPT}\n```"
    );
    let citations = json!([
        {
            "index": 1, "chunk_id": 1, "document_id": "d1", "collection_id": "c1",
            "title": format!("Policy {SCRIPT}"), "source_key": "k", "url": "javascript:alert(1)",
            "location": "page 2", "quote": format!("Quoted {IMAGE}"),
        },
        {
            "index": 2, "chunk_id": 2, "document_id": "d2", "collection_id": "c1",
            "title": "Handbook", "source_key": "k2", "url": "https://intranet.example.org/handbook",
            "location": null, "quote": "Fine",
        },
    ]);
    let stored = app
        .store()
        .await
        .append_message(
            &id,
            &NewMessage {
                role: ajutant_core::chat::MessageRole::Assistant,
                content: hostile.clone(),
                status: ajutant_core::chat::MessageStatus::Partial,
                error: Some("the client went away".to_owned()),
                citations: citations.to_string(),
                assistant_version: Some(1),
                ..NewMessage::default()
            },
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap();

    let response = client()
        .get(app.url(&format!("/chat/{id}")))
        .header("cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("content-security-policy"));
    let html = response.text().await.unwrap();

    // The thread: the question as text, the answers as escaped text for markdown.js.
    assert!(
        html.contains("<section class=\"thread\" aria-live=\"polite\""),
        "{html}"
    );
    assert!(!html.contains(SCRIPT), "{html}");
    assert!(!html.contains(IMAGE), "{html}");
    assert!(
        html.contains(&escaped(&format!("About {SCRIPT}"))),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "<div class=\"content\">{}</div>",
            escaped(&question)
        )),
        "{html}"
    );
    assert_eq!(
        markdown_sources(&html),
        vec![escaped(&answer), escaped(&hostile)],
        "{html}"
    );
    // The hostile answer's text appears nowhere but in its data-markdown element.
    assert_eq!(html.matches(&escaped(&hostile)).count(), 1, "{html}");
    assert!(html.contains(&format!(
        "<article class=\"message assistant\" data-message-id=\"{}\" data-status=\"partial\">",
        stored.id
    )));
    assert!(
        html.contains("This answer is incomplete: the client went away"),
        "{html}"
    );

    // Sources: escaped, numbered, and a link only where the address is http(s).
    assert!(html.contains(&format!(
        "data-index=\"1\" data-title=\"{}\" data-location=\"page 2\" data-quote=\"{}\" data-url=\"\">[1] {}</button>",
        escaped(&format!("Policy {SCRIPT}")),
        escaped(&format!("Quoted {IMAGE}")),
        escaped(&format!("Policy {SCRIPT}")),
    )), "{html}");
    assert!(!html.contains("javascript:alert(1)\""), "{html}");
    assert!(
        html.contains("data-url=\"https://intranet.example.org/handbook\">[2] Handbook</button>"),
        "{html}"
    );
    assert!(html.contains("<dialog class=\"citation-dialog\""), "{html}");

    // The feedback given on the first answer is shown; the second answer takes feedback too.
    let first = message(&html, &answer_id);
    assert!(
        first.contains("data-helpful=\"true\" aria-pressed=\"true\">Helpful</button>"),
        "{first}"
    );
    assert!(
        first.contains("data-helpful=\"false\" aria-pressed=\"false\">Not helpful</button>"),
        "{first}"
    );
    assert!(first.contains("value=\"7\""), "{first}");
    assert!(
        first.contains("value=\"incomplete\" checked> Incomplete</label>"),
        "{first}"
    );
    assert!(
        first.contains("value=\"inaccurate\"> Inaccurate</label>"),
        "{first}"
    );
    assert!(
        first.contains(&escaped(&format!("Could be better {IMAGE}"))),
        "{first}"
    );
    assert!(
        first.contains("<summary>More feedback</summary>"),
        "{first}"
    );
    for label in [
        "Minutes saved",
        "Outdated source",
        "Factual error that matters",
        "Explainability problem",
        "Privacy or data exposure",
        "Comment",
        "Report a serious issue",
        "Send feedback",
    ] {
        assert!(first.contains(label), "{label} in {first}");
    }
    let second = message(&html, &stored.id);
    assert!(second.contains("<div class=\"feedback\""), "{second}");

    // The composer and the conversation's actions.
    assert!(html.contains("<form class=\"composer\">"), "{html}");
    assert!(
        html.contains("<textarea name=\"content\" aria-label=\"Message\""),
        "{html}"
    );
    assert!(html.contains(">Send</button>"), "{html}");
    assert!(
        html.contains("class=\"stop\" disabled>Stop</button>"),
        "{html}"
    );
    assert!(html.contains(">Rename</button>") && html.contains(">Delete</button>"));
    assert!(html.contains(&format!(
        "href=\"/api/v1/conversations/{id}/export?format=markdown\" download>Export Markdown</a>"
    )));
    assert!(html.contains(&format!(
        "href=\"/api/v1/conversations/{id}/export?format=json\" download>Export JSON</a>"
    )));
    assert!(
        html.contains("<script src=\"/static/markdown.js?v="),
        "{html}"
    );
    assert!(html.contains("<script src=\"/static/chat.js?v="), "{html}");
    // The conversation is in the sidebar, marked as the current one.
    assert!(html.contains(&format!(
        "<a href=\"/chat/{id}\" aria-current=\"page\">{}</a>",
        escaped(&format!("About {SCRIPT}"))
    )));

    // Anyone else: the same 404 as a conversation that does not exist.
    let harriet = browser(&app, "harriet@example.org").await;
    let (status, html) = page(&app, &harriet, &format!("/chat/{id}")).await;
    assert_eq!(status, 404);
    assert!(!html.contains("About"), "{html}");
    let (status, _) = page(&app, &alice, "/chat/no-such-conversation").await;
    assert_eq!(status, 404);
    let (status, html) = page(&app, &harriet, "/chat").await;
    assert_eq!(status, 200);
    assert!(!html.contains(&id), "{html}");
    app.stop().await.unwrap();
}

async fn many_conversations_page_with_a_more_link(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    create_assistant(
        &app,
        json!({
            "id": "helper",
            "name": "Helper",
            "deployment": "offline",
            "access": { "scope": "organisation" },
        }),
    )
    .await;
    let alice = browser(&app, "alice@example.org").await;
    for n in 0..51 {
        let (status, body) = call(
            &app,
            &alice,
            Method::POST,
            "/api/v1/conversations",
            Some(json!({ "assistant_id": "helper", "title": format!("Talk {n:02}") })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, html) = page(&app, &alice, "/chat").await;
    assert_eq!(status, 200);
    assert_eq!(html.matches("<li><a href=\"/chat/").count(), 50, "{html}");
    let titles = |html: &str| -> Vec<String> {
        (0..51)
            .map(|n| format!("Talk {n:02}"))
            .filter(|t| html.contains(&format!(">{t}</a>")))
            .collect()
    };
    let first = titles(&html);
    assert_eq!(first.len(), 50, "{html}");
    let more = html
        .split("<a href=\"?cursor=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no More conversations link in {html}"));
    assert!(html.contains(">More conversations</a>"), "{html}");
    let (status, html) = page(&app, &alice, &format!("/chat?cursor={more}")).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(html.matches("<li><a href=\"/chat/").count(), 1, "{html}");
    let rest = titles(&html);
    assert_eq!(rest.len(), 1, "{html}");
    assert!(
        !first.contains(&rest[0]),
        "{rest:?} was on the first page too"
    );
    assert!(!html.contains("More conversations"), "{html}");
    app.stop().await.unwrap();
}

both_databases!(
    the_chat_offers_the_assistants_each_viewer_may_use,
    a_conversation_is_shown_to_its_owner_only,
    many_conversations_page_with_a_more_link,
);
