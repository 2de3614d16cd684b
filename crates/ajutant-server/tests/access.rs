//! Who may do what, over HTTP: a table of callers in different groups × endpoints where only the
//! allowed cells pass (the others get the same 404 a missing resource gets, and are audited);
//! platform API keys; SCIM deprovisioning; the audit query API. On SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::{Duration, Instant};

use ajutant_core::audit::Outcome;
use ajutant_store::AuditQuery;
use ajutant_testkit::identity::{access_token, client, demo_user, sign_in};
use ajutant_testkit::{Backend, TestApp, both_databases};
use reqwest::Method;
use serde_json::{Value, json};

const SCIM_SECRET: &str = "scim-test-secret-0123456789abcdef-0123";

async fn send(
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

async fn audit_count(app: &TestApp, action: &str, outcome: Outcome) -> usize {
    app.store()
        .await
        .audit_search(&AuditQuery {
            action: Some(action.to_owned()),
            outcome: Some(outcome),
            limit: 1000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .len()
}

async fn only_the_allowed_cells_pass(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    // A binding to delete, made by the admin before the table runs.
    let binding: Value = send(
        &app,
        Method::POST,
        "/api/v1/admin/role-bindings",
        &admin,
        Some(json!({ "role": "auditor", "group": "g-temporary" })),
    )
    .await
    .json()
    .await
    .unwrap();
    let binding_path = format!(
        "/api/v1/admin/role-bindings/{}",
        binding["id"].as_str().unwrap()
    );
    // An API key acting with the IT operations group.
    let ops_key = send(
        &app,
        Method::POST,
        "/api/v1/admin/api-keys",
        &admin,
        Some(json!({ "name": "ops-robot", "groups": [ajutant_core::config::DEMO_IT_OPS] })),
    )
    .await
    .json::<Value>()
    .await
    .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let mut callers = vec![("ops_key", ops_key)];
    for (who, email) in [
        ("employee", "alice@example.org"),
        ("hr_owner", "harriet@example.org"),
        ("it_ops", "oscar@example.org"),
        ("auditor", "audrey@example.org"),
    ] {
        callers.push((who, access_token(&app, &demo_user(email)).await.unwrap()));
    }
    callers.push(("admin", admin.clone()));

    let cells: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/api/v1/me".to_owned(), None),
        (Method::GET, "/api/v1/audit".to_owned(), None),
        (Method::GET, "/api/v1/audit/verify".to_owned(), None),
        (Method::GET, "/api/v1/admin/role-bindings".to_owned(), None),
        (
            Method::POST,
            "/api/v1/admin/role-bindings".to_owned(),
            Some(json!({ "role": "it_ops", "group": "g-new" })),
        ),
        (Method::DELETE, binding_path.clone(), None),
        (Method::GET, "/api/v1/admin/api-keys".to_owned(), None),
        (
            Method::POST,
            "/api/v1/admin/api-keys".to_owned(),
            Some(json!({ "name": "another", "groups": [] })),
        ),
    ];
    // Rows follow `callers`, columns follow `cells`.
    #[rustfmt::skip]
    let expected = [
        //   me    audit  verify bind   +bind  -bind  keys   +key
        [true, true,  true,  false, false, false, false, false], // ops_key (IT ops group)
        [true, false, false, false, false, false, false, false], // employee
        [true, false, false, false, false, false, false, false], // hr_owner
        [true, true,  true,  false, false, false, false, false], // it_ops
        [true, true,  true,  false, false, false, false, false], // auditor
        [true, true,  true,  true,  true,  true,  true,  true ], // admin
    ];
    let denied_before = audit_count(&app, "role_bindings.manage", Outcome::Denied).await
        + audit_count(&app, "api_keys.manage", Outcome::Denied).await
        + audit_count(&app, "audit.read", Outcome::Denied).await
        + audit_count(&app, "audit.verify", Outcome::Denied).await;
    let mut wrong = Vec::new();
    let mut denials = 0;
    for (row, (who, token)) in callers.iter().enumerate() {
        for (column, (method, path, body)) in cells.iter().enumerate() {
            let response = send(&app, method.clone(), path, token, body.clone()).await;
            let status = response.status().as_u16();
            let allowed = expected[row][column];
            let ok = if allowed {
                (200..300).contains(&status)
            } else {
                let problem: Value = response.json().await.unwrap();
                denials += 1;
                status == 404 && problem["detail"] == format!("no resource at {path}")
            };
            if !ok {
                wrong.push(format!("{who} {method} {path}: {status}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let denied_after = audit_count(&app, "role_bindings.manage", Outcome::Denied).await
        + audit_count(&app, "api_keys.manage", Outcome::Denied).await
        + audit_count(&app, "audit.read", Outcome::Denied).await
        + audit_count(&app, "audit.verify", Outcome::Denied).await;
    assert_eq!(
        denied_after - denied_before,
        denials,
        "every denial is audited"
    );
    assert!(audit_count(&app, "role_bindings.manage", Outcome::Allowed).await >= 3);
    app.stop().await.unwrap();
}

async fn api_keys_are_shown_once_used_only_as_bearer_and_audited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let created = send(
        &app,
        Method::POST,
        "/api/v1/admin/api-keys",
        &admin,
        Some(json!({ "name": "report-job", "groups": [ajutant_core::config::DEMO_AUDITORS] })),
    )
    .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with(&format!("{id}_")),
        "prefix-identifiable: {key}"
    );
    assert!(id.starts_with("ajk_"));

    let listed = send(&app, Method::GET, "/api/v1/admin/api-keys", &admin, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        listed.contains(&id) && !listed.contains(&key),
        "never shown again"
    );
    let stored = app.store().await.api_key(&id).await.unwrap().unwrap();
    assert_ne!(stored.secret_hash, key, "stored as a digest");

    let me: Value = send(&app, Method::GET, "/api/v1/me", &key, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], format!("apikey:{id}"));
    assert_eq!(me["display_name"], "report-job");
    assert_eq!(me["kind"], "service");
    assert_eq!(me["roles"][0]["role"], "auditor");
    assert_eq!(
        send(&app, Method::GET, "/api/v1/audit", &key, None)
            .await
            .status(),
        200
    );
    let used = audit_count(&app, "api_key.used", Outcome::Allowed).await;
    assert_eq!(used, 2, "every use is audited");

    // Never from a query string.
    let query = client()
        .get(app.url(&format!("/api/v1/me?api_key={key}&access_token={key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(query.status(), 401);

    let mut tampered = key.clone();
    tampered.pop();
    tampered.push(if key.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(
        send(&app, Method::GET, "/api/v1/me", &tampered, None)
            .await
            .status(),
        401
    );

    let revoke = send(
        &app,
        Method::DELETE,
        &format!("/api/v1/admin/api-keys/{id}"),
        &admin,
        None,
    )
    .await;
    assert_eq!(revoke.status(), 204);
    let refused = send(&app, Method::GET, "/api/v1/me", &key, None).await;
    assert_eq!(refused.status(), 401);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("revoked"),
        "{problem}"
    );

    let past = send(
        &app,
        Method::POST,
        "/api/v1/admin/api-keys",
        &admin,
        Some(json!({ "name": "late", "expires_at": "2020-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(past.status(), 400);
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let short: Value = send(
        &app,
        Method::POST,
        "/api/v1/admin/api-keys",
        &admin,
        Some(json!({ "name": "short-lived", "expires_at": soon })),
    )
    .await
    .json()
    .await
    .unwrap();
    let short = short["key"].as_str().unwrap().to_owned();
    assert_eq!(
        send(&app, Method::GET, "/api/v1/me", &short, None)
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired: Value = send(&app, Method::GET, "/api/v1/me", &short, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        expired["detail"].as_str().unwrap().contains("expired"),
        "{expired}"
    );
    app.stop().await.unwrap();
}

async fn scim_deprovisioning_ends_sessions_and_keys_within_a_second(backend: Backend) {
    let app = TestApp::spawn_with(backend, |config| {
        config.identity.scim.bearer_secret =
            Some(ajutant_core::secret::SecretString::new(SCIM_SECRET));
    })
    .await;
    let ada_id = demo_user("ada@example.org");
    let ada = sign_in(&app, &ada_id).await.unwrap();
    let ada_token = access_token(&app, &ada_id).await.unwrap();
    let harriet = sign_in(&app, &demo_user("harriet@example.org"))
        .await
        .unwrap();
    // A key Ada creates is hers: deprovisioning her revokes it.
    let key: Value = client()
        .post(app.url("/api/v1/admin/api-keys"))
        .header("cookie", &ada.cookie)
        .header("x-csrf-token", &ada.csrf)
        .json(&json!({ "name": "ada-script", "groups": [] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();

    let scim = |method: Method, path: &str| {
        client()
            .request(method, app.url(path))
            .bearer_auth(SCIM_SECRET)
            .header("content-type", "application/scim+json")
    };
    let created: Value = scim(Method::POST, "/scim/v2/Users")
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "ada@example.org",
                "externalId": ada_id,
                "active": true,
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let scim_id = created["id"].as_str().unwrap().to_owned();
    for credential in [&ada.cookie, &harriet.cookie] {
        let response = client()
            .get(app.url("/api/v1/me"))
            .header("cookie", credential)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let started = Instant::now();
    let patched = scim(Method::PATCH, &format!("/scim/v2/Users/{scim_id}"))
        .body(
            json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{ "op": "Replace", "path": "active", "value": "False" }],
            })
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let session = client()
        .get(app.url("/api/v1/me"))
        .header("cookie", &ada.cookie)
        .send()
        .await
        .unwrap()
        .status();
    let key_status = send(&app, Method::GET, "/api/v1/me", &key, None)
        .await
        .status();
    let token_status = send(&app, Method::GET, "/api/v1/me", &ada_token, None)
        .await
        .status();
    let elapsed = started.elapsed();
    assert_eq!(session, 401, "the live session ended");
    assert_eq!(key_status, 401, "her key was disabled");
    assert_eq!(
        token_status, 401,
        "her still-valid access token is refused too"
    );
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    let untouched = client()
        .get(app.url("/api/v1/me"))
        .header("cookie", &harriet.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        untouched.status(),
        200,
        "someone else's session is untouched"
    );
    assert_eq!(
        audit_count(&app, "scim.user.deprovisioned", Outcome::Allowed).await,
        1
    );

    let wrong_secret = client()
        .get(app.url("/scim/v2/Users"))
        .bearer_auth("not-the-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_secret.status(), 401);
    app.stop().await.unwrap();
}

async fn the_audit_api_filters_and_pages(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let auditor = access_token(&app, &demo_user("audrey@example.org"))
        .await
        .unwrap();
    // Five sign-ins to page through, and a denial to filter on.
    for _ in 0..5 {
        sign_in(&app, &demo_user("alice@example.org"))
            .await
            .unwrap();
    }
    let alice = access_token(&app, &demo_user("alice@example.org"))
        .await
        .unwrap();
    assert_eq!(
        send(&app, Method::GET, "/api/v1/audit", &alice, None)
            .await
            .status(),
        404
    );

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/audit?action=auth.sign_in&outcome=allowed&limit=2".to_owned();
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = send(&app, Method::GET, &path, &auditor, None)
            .await
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["seq"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, no repeats: {seen:?}"
    );

    let prefix: Value = send(
        &app,
        Method::GET,
        "/api/v1/audit?action=audit.&outcome=denied",
        &auditor,
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let denied = prefix["items"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{prefix}");
    assert_eq!(denied[0]["action"], "audit.read");
    assert!(
        denied[0]["actor_id"]
            .as_str()
            .unwrap()
            .ends_with(&demo_user("alice@example.org"))
    );
    assert!(denied[0]["request_id"].is_string());

    for bad in [
        "limit=0",
        "limit=501",
        "outcome=maybe",
        "since=yesterday",
        "cursor=abc",
    ] {
        let response = send(
            &app,
            Method::GET,
            &format!("/api/v1/audit?{bad}"),
            &auditor,
            None,
        )
        .await;
        assert_eq!(response.status(), 400, "{bad}");
    }
    let verify: Value = send(&app, Method::GET, "/api/v1/audit/verify", &auditor, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(verify["status"], "intact", "{verify}");
    app.stop().await.unwrap();
}

/// Key names are labels, not identities: a new key given an old key's name is someone else. It
/// reads none of the old key's conversations, and the trail tells the two apart.
async fn a_key_named_like_another_is_not_that_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let create_key = || async {
        let created = send(
            &app,
            Method::POST,
            "/api/v1/admin/api-keys",
            &admin,
            Some(
                json!({ "name": "helpdesk-bot", "groups": [ajutant_core::config::DEMO_EMPLOYEES] }),
            ),
        )
        .await;
        assert_eq!(created.status(), 201);
        let created: Value = created.json().await.unwrap();
        (
            created["key"].as_str().unwrap().to_owned(),
            created["id"].as_str().unwrap().to_owned(),
        )
    };
    let assistant = send(
        &app,
        Method::POST,
        "/api/v1/assistants",
        &admin,
        Some(json!({
            "id": "helpdesk", "name": "Helpdesk", "deployment": "offline",
            "access": { "scope": "groups", "groups": [ajutant_core::config::DEMO_EMPLOYEES] },
            "owner_group": ajutant_core::config::DEMO_HR_OWNERS,
        })),
    )
    .await;
    assert_eq!(assistant.status(), 201);
    let (old_key, old_id) = create_key().await;
    let started = send(
        &app,
        Method::POST,
        "/api/v1/conversations",
        &old_key,
        Some(json!({ "assistant_id": "helpdesk" })),
    )
    .await;
    assert_eq!(started.status(), 201);
    let conversation: Value = started.json().await.unwrap();
    let path = format!(
        "/api/v1/conversations/{}",
        conversation["id"].as_str().unwrap()
    );

    let (new_key, new_id) = create_key().await;
    assert_ne!(old_id, new_id);
    assert_eq!(
        send(&app, Method::GET, &path, &old_key, None)
            .await
            .status(),
        200
    );
    assert_eq!(
        send(&app, Method::GET, &path, &new_key, None)
            .await
            .status(),
        404
    );
    let listed: Value = send(&app, Method::GET, "/api/v1/conversations", &new_key, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !listed
            .to_string()
            .contains(conversation["id"].as_str().unwrap()),
        "{listed}"
    );
    let me: Value = send(&app, Method::GET, "/api/v1/me", &new_key, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], format!("apikey:{new_id}"));
    app.stop().await.unwrap();
}

both_databases!(
    only_the_allowed_cells_pass,
    api_keys_are_shown_once_used_only_as_bearer_and_audited,
    a_key_named_like_another_is_not_that_key,
    scim_deprovisioning_ends_sessions_and_keys_within_a_second,
    the_audit_api_filters_and_pages,
);

/// A request: method, path, and a body with its content type (empty: none sent).
type BadCase<'a> = (Method, String, Option<(&'a str, Vec<u8>)>);

/// Hostile and malformed input, as an admin (so access is not why it is refused): every case is
/// a 4xx in the API's error shape (a problem; OpenAI's on `/v1`), never a 5xx, and the server
/// still answers afterwards. Ids with NUL, traversal, SQL, emoji or 5,000 characters; broken,
/// mistyped, oversized and mislabelled bodies; bad query parameters.
async fn bad_input_gets_a_clear_4xx_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let admin = access_token(&app, &demo_user("ada@example.org"))
        .await
        .unwrap();
    let created = client()
        .post(app.url("/api/v1/assistants"))
        .bearer_auth(&admin)
        .json(
            &json!({ "id": "helpdesk", "name": "Helpdesk", "deployment": "offline",
                       "access": { "scope": "organisation" } }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let conversation: Value = client()
        .post(app.url("/api/v1/conversations"))
        .bearer_auth(&admin)
        .json(&json!({ "assistant_id": "helpdesk" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conversation = conversation["id"].as_str().unwrap().to_owned();
    let long = "a".repeat(5000);
    let ids = [
        "%00",
        "abc%00def",
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "1'%20OR%20'1'%3D'1",
        "%F0%9F%92%A9",
        long.as_str(),
    ];
    let mut cases: Vec<BadCase> = Vec::new();
    for id in ids {
        for path in [
            format!("/api/v1/conversations/{id}"),
            format!("/api/v1/collections/{id}"),
            format!("/api/v1/assistants/{id}"),
            format!("/api/v1/ingestion-jobs/{id}"),
            format!("/api/v1/messages/{id}/feedback"),
            format!("/api/v1/ops/incidents/{id}"),
        ] {
            cases.push((Method::GET, path, None));
        }
    }
    let json_body = |text: &str| Some(("application/json", text.as_bytes().to_vec()));
    let huge = format!("{{\"assistant_id\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    for body in [
        json_body("{"),
        json_body("[]"),
        json_body("null"),
        json_body("{}"),
        json_body(r#"{"assistant_id": 5}"#),
        json_body(r#"{"assistant_id": "helpdesk", "extra": 1}"#),
        json_body("{\"assistant_id\": \"help\\u0000desk\"}"),
        json_body(&huge),
        Some(("text/plain", br#"{"assistant_id": "helpdesk"}"#.to_vec())),
        Some(("", br#"{"assistant_id": "helpdesk"}"#.to_vec())),
        Some(("application/json", vec![0xff, 0xfe, 0x00])),
    ] {
        cases.push((Method::POST, "/api/v1/conversations".to_owned(), body));
    }
    let messages = format!("/api/v1/conversations/{conversation}/messages");
    for body in [
        json_body(r#"{"content": ""}"#),
        json_body(r#"{"content": 42}"#),
        json_body(r#"{"content": ["a"]}"#),
        json_body(r#"{}"#),
        json_body("{\"content\": \"hi\", \"role\": \"system\"}"),
    ] {
        cases.push((Method::POST, messages.clone(), body));
    }
    for body in [
        json_body(r#"{"helpful": "yes"}"#),
        json_body(r#"{"helpful": false, "categories": ["nope"]}"#),
        json_body(r#"{"helpful": false, "time_saved_minutes": -5}"#),
    ] {
        cases.push((
            Method::POST,
            "/api/v1/messages/01a24290-0000-7000-8000-000000000000/feedback".to_owned(),
            body,
        ));
    }
    for body in [
        json_body(r#"{"name": "", "access": {"scope": "organisation"}}"#),
        json_body(r#"{"name": "x", "access": {"scope": "galaxy"}}"#),
        json_body(r#"{"name": "x", "access": {"scope": "groups", "groups": []}}"#),
        json_body(&format!(
            r#"{{"name": "{}", "access": {{"scope": "organisation"}}}}"#,
            "n".repeat(1000)
        )),
        json_body(r#"{"name": "x", "access": {"scope": "organisation"}, "source": "/etc"}"#),
    ] {
        cases.push((Method::POST, "/api/v1/collections".to_owned(), body));
    }
    for query in [
        "/api/v1/audit?limit=-1",
        "/api/v1/audit?limit=abc",
        "/api/v1/audit?cursor=%00garbage",
        "/api/v1/audit?since=yesterday",
        "/api/v1/usage?from=not-a-date",
        "/api/v1/usage?by=planet",
        "/api/v1/conversations?limit=99999",
        "/api/v1/conversations?cursor=170141183460469231731687303715884105727~x",
    ] {
        cases.push((Method::GET, query.to_owned(), None));
    }
    for body in [
        json_body("{"),
        json_body(r#"{"messages": []}"#),
        json_body(r#"{"model": "offline", "messages": "hi"}"#),
        json_body(r#"{"model": "offline", "messages": [{"role": "wizard", "content": "x"}]}"#),
        json_body(
            r#"{"model": "offline", "temperature": "hot", "messages": [{"role": "user", "content": "x"}]}"#,
        ),
        json_body(
            r#"{"model": "offline", "n": 3, "messages": [{"role": "user", "content": "x"}]}"#,
        ),
        json_body(r#"{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}"#),
    ] {
        cases.push((Method::POST, "/v1/chat/completions".to_owned(), body));
    }
    assert!(cases.len() >= 60, "{} cases", cases.len());

    for (method, path, body) in &cases {
        let mut request = client()
            .request(method.clone(), app.url(path))
            .bearer_auth(&admin);
        if let Some((content_type, bytes)) = body {
            if !content_type.is_empty() {
                request = request.header("content-type", *content_type);
            }
            request = request.body(bytes.clone());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap_or_default();
        let shown = &path[..path.len().min(80)];
        assert!(
            (400..500).contains(&status),
            "{method} {shown}: {status} {}",
            &text[..text.len().min(300)]
        );
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if path.starts_with("/v1/") {
            assert!(
                body["error"]["message"].is_string(),
                "{method} {shown}: {text}"
            );
        } else {
            assert_eq!(
                content_type, "application/problem+json",
                "{method} {shown}: {text}"
            );
            assert!(
                body["detail"].is_string() || status == 404,
                "{method} {shown}: {text}"
            );
        }
    }
    // Nothing was created by any of it, and the server still answers.
    let listed: Value = client()
        .get(app.url("/api/v1/conversations"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conversations = listed["conversations"]
        .as_array()
        .or_else(|| listed["items"].as_array())
        .or_else(|| listed.as_array())
        .map(Vec::len);
    assert_eq!(conversations, Some(1), "{listed}");
    app.stop().await.unwrap();
}

both_databases!(bad_input_gets_a_clear_4xx_and_changes_nothing);
