//! Bearer token validation against an Entra-shaped provider whose keys the test holds. Every
//! hostile token is a 401 with problem details and an `auth.rejected` audit record naming why;
//! a rotated key is picked up without a restart; the key set survives a provider outage; no key
//! ever loaded means nothing is accepted; groups overage is resolved through a fake Graph.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

use std::time::Duration;

use ajutant_store::AuditQuery;
use ajutant_testkit::fake_idp::{self, CLIENT_ID, FakeIdp, OTHER_TENANT, TENANT, TestKey};
use ajutant_testkit::{Backend, TestApp, both_databases};
use serde_json::{Value, json};

const OID: &str = "5f0c2b7e-aaaa-4bbb-8ccc-0123456789ab";
const ADMIN_GROUP: &str = "admins-0000-4000-8000-000000000001";

struct Setup {
    idp: FakeIdp,
    key: TestKey,
    app: TestApp,
}

async fn setup(backend: Backend) -> Setup {
    let idp = FakeIdp::start().await;
    let key = TestKey::generate("key-1");
    idp.publish(&key);
    let app = TestApp::spawn_with(backend, |config| {
        idp.configure(config);
        config.identity.role_bindings = vec![ajutant_core::config::RoleBindingSeed {
            role: ajutant_core::policy::Role::PlatformAdmin,
            group: Some(ADMIN_GROUP.to_owned()),
            app_role: None,
            assistant: None,
        }];
    })
    .await;
    Setup { idp, key, app }
}

async fn call(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Asserts a 401 problem and returns the rejection reason the audit trail recorded for it.
async fn rejected(app: &TestApp, token: &str) -> String {
    let response = call(app, "/api/v1/me", token).await;
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    assert!(response.headers().contains_key("www-authenticate"));
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["status"], 401);
    let records = app
        .store()
        .await
        .audit_search(&AuditQuery {
            action: Some("auth.rejected".to_owned()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let record = records
        .iter()
        .find(|r| r.origin.request_id.as_deref() == Some(request_id.as_str()))
        .unwrap_or_else(|| panic!("no audit record for request {request_id}"));
    assert_eq!(record.outcome, ajutant_core::audit::Outcome::Denied);
    let details: Value = serde_json::from_str(&record.details).unwrap();
    details["reason"].as_str().unwrap().to_owned()
}

async fn every_hostile_token_is_refused_and_audited(backend: Backend) {
    let Setup { idp, key, app } = setup(backend).await;
    let claims = idp.access_claims(OID, &[]);
    let good = key.sign(&key.header(), &claims);
    assert_eq!(call(&app, "/api/v1/me", &good).await.status(), 200);

    // Tampered: the payload changed after signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut forged_claims = claims.clone();
    forged_claims["groups"] = json!([ADMIN_GROUP]);
    parts[1] = base64_json(&forged_claims);
    assert_eq!(rejected(&app, &parts.join(".")).await, "bad_signature");

    let none = fake_idp::unsigned(&json!({ "alg": "none", "kid": "key-1" }), &claims);
    assert_eq!(rejected(&app, &none).await, "algorithm_not_allowed");

    // The classic confusion: HS256 keyed with the provider's public key.
    let confused = fake_idp::hs256(
        &key.public_der(),
        &json!({ "alg": "HS256", "kid": "key-1" }),
        &claims,
    );
    assert_eq!(rejected(&app, &confused).await, "algorithm_not_allowed");

    // Injected key ids never reach a lookup; jku/x5u/jwk headers are never followed.
    for kid in [
        "../../../../dev/null",
        "key-1' OR '1'='1",
        "key\u{0}1",
        &"k".repeat(300),
    ] {
        let header = json!({ "alg": "RS256", "kid": kid });
        let reason = rejected(&app, &key.sign(&header, &claims)).await;
        assert!(
            reason == "bad_kid" || reason == "unknown_kid",
            "{kid:?}: {reason}"
        );
    }
    let attacker = TestKey::generate("attacker-key");
    let smuggled = attacker.sign(
        &json!({
            "alg": "RS256",
            "kid": "attacker-key",
            "jku": idp.attacker_url(),
            "x5u": idp.attacker_url(),
            "jwk": attacker.jwk(),
        }),
        &claims,
    );
    assert_eq!(rejected(&app, &smuggled).await, "unknown_kid");
    assert_eq!(idp.attacker_hits(), 0, "a jku/x5u URL was fetched");

    let mut wrong_iss = claims.clone();
    wrong_iss["iss"] = json!(format!("{}/{TENANT}/v2.0", "https://login.example"));
    assert_eq!(
        rejected(&app, &key.sign(&key.header(), &wrong_iss)).await,
        "wrong_issuer"
    );

    let mut wrong_aud = claims.clone();
    wrong_aud["aud"] = json!("api://someone-else");
    assert_eq!(
        rejected(&app, &key.sign(&key.header(), &wrong_aud)).await,
        "wrong_audience"
    );

    let mut wrong_tid = claims.clone();
    wrong_tid["tid"] = json!(OTHER_TENANT);
    assert_eq!(
        rejected(&app, &key.sign(&key.header(), &wrong_tid)).await,
        "wrong_tenant"
    );

    let mut expired = claims.clone();
    expired["exp"] = json!(fake_idp::now() - 120);
    assert_eq!(
        rejected(&app, &key.sign(&key.header(), &expired)).await,
        "expired"
    );

    let mut early = claims.clone();
    early["nbf"] = json!(fake_idp::now() + 600);
    assert_eq!(
        rejected(&app, &key.sign(&key.header(), &early)).await,
        "not_yet_valid"
    );

    // An ID token (nonce, no scp) for this client is not an access token.
    let mut id_token = claims.clone();
    id_token["aud"] = json!(CLIENT_ID);
    id_token["nonce"] = json!("n-0S6_WzA2Mj");
    id_token.as_object_mut().unwrap().remove("scp");
    assert_eq!(
        rejected(&app, &key.sign(&key.header(), &id_token)).await,
        "id_token_as_access_token"
    );

    // A skew within the allowance is tolerated.
    let mut slightly_early = claims.clone();
    slightly_early["nbf"] = json!(fake_idp::now() + 10);
    assert_eq!(
        call(
            &app,
            "/api/v1/me",
            &key.sign(&key.header(), &slightly_early)
        )
        .await
        .status(),
        200
    );
    app.stop().await.unwrap();
}

fn base64_json(value: &Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

async fn an_unknown_kid_refreshes_the_keys_once_then_is_refused(backend: Backend) {
    let Setup { idp, key, app } = setup(backend).await;
    let claims = idp.access_claims(OID, &[]);
    assert_eq!(
        call(&app, "/api/v1/me", &key.sign(&key.header(), &claims))
            .await
            .status(),
        200
    );
    let loaded = idp.jwks_hits();

    let stranger = TestKey::generate("not-published");
    let token = stranger.sign(&stranger.header(), &claims);
    assert_eq!(rejected(&app, &token).await, "unknown_kid");
    assert_eq!(idp.jwks_hits(), loaded + 1, "one forced refresh");
    assert_eq!(rejected(&app, &token).await, "unknown_kid");
    let other = TestKey::generate("also-not-published");
    assert_eq!(
        rejected(&app, &other.sign(&other.header(), &claims)).await,
        "unknown_kid"
    );
    assert_eq!(
        idp.jwks_hits(),
        loaded + 1,
        "forced refreshes are rate-limited"
    );
    app.stop().await.unwrap();
}

async fn a_rotated_key_is_accepted_without_restart(backend: Backend) {
    let Setup { idp, key, app } = setup(backend).await;
    let claims = idp.access_claims(OID, &[]);
    assert_eq!(
        call(&app, "/api/v1/me", &key.sign(&key.header(), &claims))
            .await
            .status(),
        200
    );

    let rotated = TestKey::generate("key-2");
    idp.publish(&rotated);
    let response = call(
        &app,
        "/api/v1/me",
        &rotated.sign(&rotated.header(), &claims),
    )
    .await;
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(
        me["id"],
        format!("{}#{OID}", idp.issuer()),
        "issuer + oid, never a name"
    );
    assert_eq!(me["authenticated_by"], "token");
    app.stop().await.unwrap();
}

async fn keys_survive_a_provider_outage_and_none_means_nothing_is_accepted(backend: Backend) {
    let idp = FakeIdp::start().await;
    let key = TestKey::generate("key-1");
    idp.publish(&key);
    idp.set_jwks_down(true);
    let app = TestApp::spawn_with(backend, |config| {
        idp.configure(config);
        config.identity.oidc.jwks_refresh_secs = 1;
    })
    .await;
    let token = key.sign(&key.header(), &idp.access_claims(OID, &[]));
    let response = call(&app, "/api/v1/me", &token).await;
    assert_eq!(response.status(), 503, "fail closed without keys");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    idp.set_jwks_down(false);
    // The failure back-off (10 s) is not waited out: a fresh instance loads the keys.
    let database = app.stop().await.unwrap();
    let app = TestApp::spawn_on(database, |config| {
        idp.configure(config);
        config.identity.oidc.jwks_refresh_secs = 1;
    })
    .await;
    assert_eq!(call(&app, "/api/v1/me", &token).await.status(), 200);
    idp.set_jwks_down(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hits = idp.jwks_hits();
    assert_eq!(
        call(&app, "/api/v1/me", &token).await.status(),
        200,
        "the keys held are kept while the provider is down"
    );
    assert!(idp.jwks_hits() > hits, "a scheduled refresh was attempted");
    app.stop().await.unwrap();
}

async fn groups_overage_is_resolved_through_graph(backend: Backend) {
    let Setup { idp, key, app } = setup(backend).await;
    idp.set_graph_groups(OID, &["g-1", "g-2", "g-3", ADMIN_GROUP, "g-5"]);
    let mut claims = idp.access_claims(OID, &[]);
    let object = claims.as_object_mut().unwrap();
    object.remove("groups");
    object.insert("_claim_names".to_owned(), json!({ "groups": "src1" }));
    object.insert(
        "_claim_sources".to_owned(),
        json!({ "src1": { "endpoint": "https://graph.windows.net/t/users/u/getMemberObjects" } }),
    );
    let token = key.sign(&key.header(), &claims);

    let me: Value = call(&app, "/api/v1/me", &token).await.json().await.unwrap();
    let groups: Vec<&str> = me["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap())
        .collect();
    assert_eq!(groups.len(), 5, "every page: {me}");
    assert!(groups.contains(&ADMIN_GROUP));
    assert_eq!(me["roles"][0]["role"], "platform_admin");
    assert_eq!(
        call(&app, "/api/v1/admin/role-bindings", &token)
            .await
            .status(),
        200,
        "the overage groups grant access"
    );
    let hits = idp.graph_hits();
    assert_eq!(hits, 3, "five groups in pages of two");
    call(&app, "/api/v1/me", &token).await;
    assert_eq!(idp.graph_hits(), hits, "resolved groups are cached");
    app.stop().await.unwrap();
}

async fn a_graph_failure_gives_no_group_access(backend: Backend) {
    let Setup { idp, key, app } = setup(backend).await;
    idp.set_graph_groups(OID, &[ADMIN_GROUP]);
    idp.set_graph_failing(true);
    let mut claims = idp.access_claims(OID, &[]);
    let object = claims.as_object_mut().unwrap();
    object.remove("groups");
    object.insert("hasgroups".to_owned(), json!(true));
    let token = key.sign(&key.header(), &claims);

    let me: Value = call(&app, "/api/v1/me", &token).await.json().await.unwrap();
    assert_eq!(me["groups"], json!([]));
    assert_eq!(me["roles"], json!([]));
    let denied = call(&app, "/api/v1/admin/role-bindings", &token).await;
    assert_eq!(denied.status(), 404, "no group access, and nothing leaks");
    let failures = app
        .store()
        .await
        .audit_search(&AuditQuery {
            action: Some("identity.groups_unresolved".to_owned()),
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(!failures.is_empty());
    app.stop().await.unwrap();
}

async fn an_application_token_acts_through_its_app_roles(backend: Backend) {
    let idp = FakeIdp::start().await;
    let key = TestKey::generate("key-1");
    idp.publish(&key);
    let app = TestApp::spawn_with(backend, |config| {
        idp.configure(config);
        config.identity.role_bindings = vec![ajutant_core::config::RoleBindingSeed {
            role: ajutant_core::policy::Role::Auditor,
            group: None,
            app_role: Some("Audit.Read".to_owned()),
            assistant: None,
        }];
    })
    .await;
    let now = fake_idp::now();
    let service = "9a8b7c6d-0000-4000-8000-00000000a11c";
    let claims = json!({
        "iss": idp.issuer(), "aud": fake_idp::API_AUDIENCE, "tid": TENANT,
        "oid": service, "sub": service, "azp": "reporting-job", "idtyp": "app",
        "roles": ["Audit.Read"], "iat": now, "nbf": now, "exp": now + 600,
    });
    let token = key.sign(&key.header(), &claims);
    let me: Value = call(&app, "/api/v1/me", &token).await.json().await.unwrap();
    assert_eq!(me["kind"], "service");
    assert_eq!(me["display_name"], "reporting-job");
    assert_eq!(call(&app, "/api/v1/audit", &token).await.status(), 200);
    assert_eq!(
        call(&app, "/api/v1/admin/api-keys", &token).await.status(),
        404
    );
    app.stop().await.unwrap();
}

/// Junk tokens from one address cost a handful of audit records, not one each (a disk and
/// fsync denial of service): the first few in full, then a count once the window is over (or
/// the server stops). Every one is still refused and counted in the metrics.
async fn a_flood_of_junk_tokens_is_recorded_in_aggregate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for n in 0..40 {
        let response = call(&app, "/api/v1/me", &format!("junk-{n}")).await;
        assert_eq!(response.status(), 401);
    }
    let rejected = |store: ajutant_store::Store| async move {
        store
            .audit_search(&AuditQuery {
                action: Some("auth.rejected".to_owned()),
                limit: 1000,
                ..AuditQuery::default()
            })
            .await
            .unwrap()
    };
    let records = rejected(app.store().await).await;
    assert_eq!(records.len(), 5, "{records:?}");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let counted: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("ajutant_auth_rejections_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(counted >= 40, "{counted}");
    let database = app.stop().await.unwrap();
    let records = rejected(database.store().await.unwrap()).await;
    assert_eq!(records.len(), 6, "{records:?}");
    let summaries: Vec<(Value, Option<String>)> = records
        .iter()
        .map(|r| {
            (
                serde_json::from_str::<Value>(&r.details).unwrap(),
                r.origin.client_addr.clone(),
            )
        })
        .filter(|(details, _)| details.get("repeated").is_some())
        .collect();
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0].0["repeated"], 35, "{summaries:?}");
    assert_eq!(summaries[0].1.as_deref(), Some("127.0.0.1"));
}

both_databases!(
    a_flood_of_junk_tokens_is_recorded_in_aggregate,
    every_hostile_token_is_refused_and_audited,
    an_unknown_kid_refreshes_the_keys_once_then_is_refused,
    a_rotated_key_is_accepted_without_restart,
    keys_survive_a_provider_outage_and_none_means_nothing_is_accepted,
    groups_overage_is_resolved_through_graph,
    a_graph_failure_gives_no_group_access,
    an_application_token_acts_through_its_app_roles,
);
