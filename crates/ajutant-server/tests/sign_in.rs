//! Browser sign-in end to end against the built-in development identity provider: the
//! authorization code flow with PKCE, state and nonce; the session cookie's attributes; CSRF;
//! logout; re-check with the provider; on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use ajutant_store::AuditQuery;
use ajutant_testkit::identity::{
    client, demo_user, finish_sign_in, pick_user, sign_in, start_sign_in,
};
use ajutant_testkit::{Backend, TestApp, both_databases};
use serde_json::Value;

async fn me(app: &TestApp, cookie: &str) -> reqwest::Response {
    client()
        .get(app.url("/api/v1/me"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// The newest audit records with `action`, newest first.
async fn audited(app: &TestApp, action: &str) -> Vec<ajutant_core::audit::AuditRecord> {
    app.store()
        .await
        .audit_search(&AuditQuery {
            action: Some(action.to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

async fn a_browser_signs_in_and_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = demo_user("alice@example.org");
    let session = sign_in(&app, &alice).await.unwrap();

    let attributes: Vec<&str> = session.set_cookie.split(';').map(str::trim).collect();
    assert!(
        session.cookie.starts_with("__Host-ajutant_session="),
        "{}",
        session.set_cookie
    );
    for wanted in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(
            attributes.contains(&wanted),
            "{wanted} missing: {}",
            session.set_cookie
        );
    }
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "a __Host- cookie has no Domain: {}",
        session.set_cookie
    );

    let response = me(&app, &session.cookie).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["authenticated_by"], "session");
    assert_eq!(body["display_name"], "Alice Employee");
    assert!(
        body["id"].as_str().unwrap().ends_with(&format!("#{alice}")),
        "{body}"
    );
    assert_eq!(body["groups"].as_array().unwrap().len(), 1);
    assert_eq!(body["roles"], serde_json::json!([]));

    // Logout is a form post that must carry the session's CSRF token.
    let forged = client()
        .post(app.url("/auth/logout"))
        .header("cookie", &session.cookie)
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    assert_eq!(
        me(&app, &session.cookie).await.status(),
        200,
        "a forged logout ends nothing"
    );

    let logout = client()
        .post(app.url("/auth/logout"))
        .header("cookie", &session.cookie)
        .form(&[("csrf_token", session.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 303);
    let cleared = logout
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    let after = me(&app, &session.cookie).await;
    assert_eq!(after.status(), 401);
    assert_eq!(after.headers()["content-type"], "application/problem+json");
    let problem: Value = after.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("ended"),
        "{problem}"
    );

    let sign_ins = audited(&app, "auth.sign_in").await;
    assert_eq!(sign_ins.len(), 1);
    assert!(sign_ins[0].actor.id.ends_with(&alice));
    assert_eq!(audited(&app, "auth.sign_out").await.len(), 1);
    app.stop().await.unwrap();
}

async fn a_bad_or_replayed_state_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = start_sign_in(&app).await.unwrap();
    let callback = pick_user(&started, &demo_user("alice@example.org"))
        .await
        .unwrap();

    let mut tampered = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                format!("{v}x")
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    tampered.query_pairs_mut().clear().extend_pairs(pairs);
    let refused = finish_sign_in(&tampered, &started.sign_in_cookie)
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    assert!(refused.headers().get("set-cookie").is_none());

    let accepted = finish_sign_in(&callback, &started.sign_in_cookie)
        .await
        .unwrap();
    assert_eq!(accepted.status(), 303);
    let replayed = finish_sign_in(&callback, &started.sign_in_cookie)
        .await
        .unwrap();
    assert_eq!(replayed.status(), 400, "a state is good for one callback");

    let denials: Vec<String> = audited(&app, "auth.sign_in")
        .await
        .into_iter()
        .filter(|r| r.outcome == ajutant_core::audit::Outcome::Denied)
        .map(|r| r.details)
        .collect();
    assert_eq!(denials.len(), 2, "{denials:?}");
    assert!(
        denials.iter().all(|d| d.contains("unknown_state")),
        "{denials:?}"
    );
    app.stop().await.unwrap();
}

async fn a_reused_code_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let alice = demo_user("alice@example.org");
    let first = start_sign_in(&app).await.unwrap();
    let second = start_sign_in(&app).await.unwrap();
    let callback = pick_user(&first, &alice).await.unwrap();
    assert_eq!(
        finish_sign_in(&callback, &first.sign_in_cookie)
            .await
            .unwrap()
            .status(),
        303
    );

    // The second sign-in is genuine (its state and browser cookie match) but brings the code
    // the first one already spent.
    let code = callback
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let mut reused = callback.clone();
    reused
        .query_pairs_mut()
        .clear()
        .append_pair("code", &code)
        .append_pair("state", &second.param("state").unwrap());
    let refused = finish_sign_in(&reused, &second.sign_in_cookie)
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("code"),
        "{problem}"
    );
    let denied = audited(&app, "auth.sign_in").await;
    assert!(denied.iter().any(|r| r.details.contains("code_rejected")));
    app.stop().await.unwrap();
}

async fn a_sign_in_finished_in_another_browser_is_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let started = start_sign_in(&app).await.unwrap();
    let other = start_sign_in(&app).await.unwrap();
    let callback = pick_user(&started, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let refused = finish_sign_in(&callback, &other.sign_in_cookie)
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("another browser")
    );
    app.stop().await.unwrap();
}

async fn session_writes_need_the_csrf_header(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = sign_in(&app, &demo_user("ada@example.org")).await.unwrap();
    let body = serde_json::json!({ "name": "reporting", "groups": ["g-1"] });
    let without = client()
        .post(app.url("/api/v1/admin/api-keys"))
        .header("cookie", &ada.cookie)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), 401);
    let with = client()
        .post(app.url("/api/v1/admin/api-keys"))
        .header("cookie", &ada.cookie)
        .header("x-csrf-token", &ada.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 201);
    app.stop().await.unwrap();
}

async fn sign_in_returns_only_to_local_paths(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for (asked, expected) in [
        ("/console/audit", "/console/audit"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
    ] {
        let response = client()
            .get(app.url("/auth/login"))
            .query(&[("return_to", asked)])
            .send()
            .await
            .unwrap();
        let authorize =
            reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let started = ajutant_testkit::identity::StartedSignIn {
            authorize,
            sign_in_cookie: cookie,
        };
        let callback = pick_user(&started, &demo_user("alice@example.org"))
            .await
            .unwrap();
        let done = finish_sign_in(&callback, &started.sign_in_cookie)
            .await
            .unwrap();
        assert_eq!(done.headers()["location"], expected, "return_to {asked}");
    }
    app.stop().await.unwrap();
}

/// A session re-checks with the provider on schedule: it survives while the provider confirms
/// it, and ends when the provider no longer knows the refresh token (here: the development
/// provider restarted and forgot it).
async fn a_session_ends_when_the_re_check_fails(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.identity.sessions.recheck_secs = 1;
    })
    .await;
    let session = sign_in(&app, &demo_user("oscar@example.org"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        me(&app, &session.cookie).await.status(),
        200,
        "a successful re-check"
    );

    let database = app.stop().await.unwrap();
    let app = TestApp::spawn_on(database, |config| {
        config.identity.sessions.recheck_secs = 1;
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let response = me(&app, &session.cookie).await;
    assert_eq!(response.status(), 401);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no longer confirms"),
        "{problem}"
    );
    assert_eq!(
        me(&app, &session.cookie).await.status(),
        401,
        "ended for good"
    );
    app.stop().await.unwrap();
}

/// Sessions end after their idle period and at their absolute lifetime, whatever the cookie
/// says. The clock is moved by rewriting the session's times in the database.
async fn idle_and_absolute_lifetimes_end_a_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let idle = sign_in(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    let old = sign_in(&app, &demo_user("oscar@example.org"))
        .await
        .unwrap();
    assert_eq!(me(&app, &idle.cookie).await.status(), 200);
    let long_ago = "2020-01-01T00:00:00.000000Z";
    let database = app.database();
    database
        .execute(&format!(
            "UPDATE sessions SET last_seen_at = '{long_ago}' WHERE subject = '{}'",
            demo_user("alice@example.org")
        ))
        .await
        .unwrap();
    database
        .execute(&format!(
            "UPDATE sessions SET expires_at = '{long_ago}' WHERE subject = '{}'",
            demo_user("oscar@example.org")
        ))
        .await
        .unwrap();
    for (session, why) in [(&idle, "idle"), (&old, "absolute lifetime")] {
        let response = me(&app, &session.cookie).await;
        assert_eq!(response.status(), 401);
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["detail"].as_str().unwrap().contains(why),
            "{problem}"
        );
    }
    let reasons: Vec<String> = audited(&app, "auth.rejected")
        .await
        .into_iter()
        .map(|r| r.details)
        .collect();
    assert!(
        reasons.iter().any(|d| d.contains("session_idle")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|d| d.contains("session_expired")),
        "{reasons:?}"
    );
    app.stop().await.unwrap();
}

both_databases!(
    a_browser_signs_in_and_out,
    a_bad_or_replayed_state_is_refused,
    a_reused_code_is_refused,
    a_sign_in_finished_in_another_browser_is_refused,
    session_writes_need_the_csrf_header,
    sign_in_returns_only_to_local_paths,
    a_session_ends_when_the_re_check_fails,
    idle_and_absolute_lifetimes_end_a_session,
);
