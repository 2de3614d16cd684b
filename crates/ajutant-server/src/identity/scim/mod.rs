//! SCIM 2.0 (RFC 7643, RFC 7644) at `/scim/v2`, through which the organisation's directory
//! provisions users and, above all, deprovisions them: setting a user `active: false` or deleting
//! them ends their browser sessions and revokes the API keys they own before the directory hears
//! back, and leaves a stored record (a tombstone after DELETE) that keeps them locked out.
//!
//! Microsoft Entra ID: in the enterprise application's attribute mappings, map `objectId` to
//! `externalId`. The external id is the directory object id (`oid`) that sessions and API keys
//! record as their subject; without that mapping deprovisioning cannot find what to end. For the
//! same reason `externalId` cannot change once set: a new value would release the old id's
//! lock-out while sessions under the old id live on.
//!
//! Stored: `userName`, `externalId`, `displayName` (else `name.formatted`, else `userName`) and
//! `active`; other attributes are accepted and ignored. Filters: `userName eq "…"` and
//! `externalId eq "…"` only. Not offered: groups, bulk, sorting, ETags, `attributes` projection.

use ajutant_core::audit::{Actor, ActorKind, AuditAction, AuditEvent, Outcome};
use ajutant_core::secret::SecretString;
use ajutant_store::{AuditError, AuditLog, Store, StoreError};
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::json;

mod discovery;
mod patch;
mod request;
mod users;
mod views;

use super::secrets::{constant_time_eq, sha256_hex};
use crate::request::RequestContext;
use discovery::{resource_types, schemas, service_provider_config};
use patch::patch_user;
use users::{create_user, delete_user, get_user, list_users, replace_user};

const SCIM_JSON: &str = "application/scim+json";
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Attribute names may be given fully qualified; compared after lowercasing.
const USER_SCHEMA_PREFIX: &str = "urn:ietf:params:scim:schemas:core:2.0:user:";
const USERS_PATH: &str = "/scim/v2/Users";

/// The most users one list response holds, whatever `count` asks for.
const MAX_RESULTS: i64 = 200;
const DEFAULT_COUNT: i64 = 100;

const SESSIONS_END_REASON: &str = "deprovisioned by the directory";
const KEYS_REVOKE_REASON: &str = "owner deprovisioned by the directory";

// RFC 7644 section 3.12 error types.
const INVALID_VALUE: &str = "invalidValue";
const INVALID_SYNTAX: &str = "invalidSyntax";
const INVALID_FILTER: &str = "invalidFilter";
const MUTABILITY: &str = "mutability";
const NO_TARGET: &str = "noTarget";

#[derive(Clone)]
pub(crate) struct ScimState {
    pub store: Store,
    pub audit: AuditLog,
    pub bearer_secret: SecretString,
    /// Cleared on every lock-out, so this instance stops trusting what it remembered at once.
    pub credentials: super::cache::CredentialCache,
}

/// Routes with absolute paths under `/scim/v2`, every one behind the bearer secret; the caller
/// merges them at the root.
pub(crate) fn router(state: ScimState) -> Router {
    Router::new()
        .route(USERS_PATH, get(list_users).post(create_user))
        .route(
            "/scim/v2/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route(
            "/scim/v2/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/Schemas", get(schemas))
        // Unknown SCIM paths answer in SCIM's error shape, which directories parse.
        .route("/scim/v2/{*rest}", axum::routing::any(unknown_path))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_bearer,
        ))
        .with_state(state)
}

// ---- errors and responses -----------------------------------------------------------------

#[derive(Debug, thiserror::Error)]
enum ScimError {
    #[error("a valid bearer credential is required")]
    Unauthorized,
    #[error("{detail}")]
    BadRequest {
        scim_type: &'static str,
        detail: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("a timestamp cannot be formatted: {0}")]
    Time(#[from] time::error::Format),
}

impl ScimError {
    fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            scim_type,
            detail: detail.into(),
        }
    }

    fn no_user(id: &str) -> Self {
        Self::NotFound(format!("no user with id {id}"))
    }
}

impl From<StoreError> for ScimError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { what } => Self::Conflict(what),
            other => Self::Store(other),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    schemas: [&'static str; 1],
    /// RFC 7644 makes the status a string.
    status: String,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scim_type: Option<&'static str>,
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let (status, scim_type) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, None),
            Self::BadRequest { scim_type, .. } => (StatusCode::BAD_REQUEST, Some(*scim_type)),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, None),
            Self::Conflict(_) => (StatusCode::CONFLICT, Some("uniqueness")),
            Self::Store(_) | Self::Audit(_) | Self::Time(_) => {
                // Logged inside the request span, so with its request id; never sent.
                tracing::error!(error = %self, "SCIM request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        };
        let detail = if status.is_server_error() {
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            schemas: [ERROR_SCHEMA],
            status: status.as_u16().to_string(),
            detail,
            scim_type,
        };
        let mut response = scim_response(status, &body);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

fn scim_response(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(CONTENT_TYPE, SCIM_JSON)], bytes).into_response(),
        Err(error) => {
            tracing::error!(%error, "a SCIM response cannot be serialised");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListResponse<T> {
    schemas: [&'static str; 1],
    total_results: i64,
    start_index: i64,
    items_per_page: usize,
    #[serde(rename = "Resources")]
    resources: Vec<T>,
}

impl<T> ListResponse<T> {
    fn all(resources: Vec<T>) -> Self {
        Self {
            schemas: [LIST_SCHEMA],
            total_results: i64::try_from(resources.len()).unwrap_or(i64::MAX),
            start_index: 1,
            items_per_page: resources.len(),
            resources,
        }
    }
}

// ---- authentication -----------------------------------------------------------------------

fn scim_actor() -> Actor {
    Actor {
        id: "scim".to_owned(),
        display_name: "Directory provisioning".to_owned(),
        kind: ActorKind::Service,
    }
}

async fn require_bearer(State(state): State<ScimState>, request: Request, next: Next) -> Response {
    let secret = state.bearer_secret.expose();
    let refusal = match bearer(request.headers()) {
        None => Some("no bearer credential"),
        // Digests are compared so the time taken does not reveal the secret's length either.
        Some(presented) if constant_time_eq(&sha256_hex(presented), &sha256_hex(secret)) => None,
        Some(_) => Some("wrong bearer credential"),
    };
    let Some(refusal) = refusal else {
        return next.run(request).await;
    };
    let origin = request
        .extensions()
        .get::<RequestContext>()
        .map(RequestContext::origin)
        .unwrap_or_default();
    let event = AuditEvent::new(scim_actor(), AuditAction::ScimRejected, "", Outcome::Denied)
        .with_origin(origin)
        .with_details(json!({
            "reason": refusal,
            "method": request.method().as_str(),
            "path": request.uri().path(),
        }));
    // The caller is refused either way; a trail that cannot be written is logged, not answered.
    if let Err(error) = state.audit.append(event).await {
        tracing::error!(%error, "a refused SCIM request could not be audited");
    }
    ScimError::Unauthorized.into_response()
}

/// The credential of an `Authorization: Bearer` header; an empty one counts as none, so an
/// unset secret can never be matched.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

async fn unknown_path(Path(rest): Path<String>) -> ScimError {
    ScimError::NotFound(format!("no SCIM resource at /scim/v2/{rest}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use ajutant_core::config::DatabaseConfig;
    use ajutant_core::policy::{Principal, PrincipalKind};
    use ajutant_store::{ApiKey, AuditWriter, NewSession};
    use serde_json::Value;
    use time::OffsetDateTime;

    use super::*;

    const SECRET: &str = "scim-test-bearer-secret-0123456789abcdef";

    struct Harness {
        base: String,
        client: reqwest::Client,
        store: Store,
        writer: Option<AuditWriter>,
        _dir: tempfile::TempDir,
    }

    /// Puts a `RequestContext` in the extensions, as the real envelope does.
    async fn with_context(mut request: Request, next: Next) -> Response {
        let path = request.uri().path().to_owned();
        request.extensions_mut().insert(RequestContext {
            request_id: "scim-test".to_owned(),
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".to_owned(),
            client_addr: Some(([127, 0, 0, 1], 40000).into()),
            path,
        });
        next.run(request).await
    }

    async fn spawn() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig {
            url: format!("sqlite://{}/t.db", dir.path().display())
                .parse()
                .unwrap(),
            ..DatabaseConfig::default()
        };
        let store = Store::connect(&config).await.unwrap();
        store.migrate().await.unwrap();
        let (audit, writer) = AuditLog::start(store.clone(), 16);
        let state = ScimState {
            store: store.clone(),
            audit,
            bearer_secret: SecretString::new(SECRET),
            credentials: Default::default(),
        };
        let app = router(state).layer(axum::middleware::from_fn(with_context));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        #[allow(
            clippy::disallowed_methods,
            reason = "a test peer that ends with the test"
        )]
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Harness {
            base,
            client,
            store,
            writer: Some(writer),
            _dir: dir,
        }
    }

    impl Harness {
        async fn send(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<&str>,
        ) -> (StatusCode, Option<String>, Value) {
            let mut request = self
                .client
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(SECRET);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/scim+json")
                    .body(body.to_owned());
            }
            let response = request.send().await.unwrap();
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let text = response.text().await.unwrap();
            let json = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            };
            (status, content_type, json)
        }

        async fn create(&self, user_name: &str, external_id: &str) -> String {
            let body = json!({
                "schemas": [USER_SCHEMA],
                "userName": user_name,
                "externalId": external_id,
                "name": { "formatted": "Ada Lovelace" },
                "emails": [{ "value": user_name, "type": "work", "primary": true }],
                "active": true,
            });
            let (status, _, user) = self
                .send(reqwest::Method::POST, USERS_PATH, Some(&body.to_string()))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{user}");
            user["id"].as_str().unwrap().to_owned()
        }

        async fn seed_session(&self, subject: &str) -> String {
            let principal = Principal {
                id: format!("https://idp.example/t#{subject}"),
                subject: subject.to_owned(),
                display_name: subject.to_owned(),
                kind: PrincipalKind::User,
                groups: BTreeSet::new(),
                app_roles: BTreeSet::new(),
                tenant: None,
            };
            let now = OffsetDateTime::now_utc();
            let hash = format!("session-of-{subject}");
            self.store
                .create_session(NewSession {
                    id_hash: &hash,
                    principal: &principal,
                    csrf_token: "csrf",
                    refresh_token: Some("refresh"),
                    now,
                    expires_at: now + time::Duration::hours(8),
                    recheck_at: now + time::Duration::minutes(5),
                })
                .await
                .unwrap();
            hash
        }

        async fn seed_key(&self, owner: &str) -> String {
            let id = format!("ajk_{owner}");
            self.store
                .insert_api_key(&ApiKey {
                    id: id.clone(),
                    name: format!("script-of-{owner}"),
                    groups: vec!["g".to_owned()],
                    secret_hash: "0".repeat(64),
                    owner_subject: Some(owner.to_owned()),
                    created_by: "test".to_owned(),
                    created_at: OffsetDateTime::now_utc(),
                    expires_at: None,
                    revoked_at: None,
                    last_used_at: None,
                })
                .await
                .unwrap();
            id
        }

        async fn audit_actions(&self) -> Vec<(String, Outcome, String)> {
            self.store
                .audit_page(0, None, 100)
                .await
                .unwrap()
                .into_iter()
                .map(|record| (record.action, record.outcome, record.details))
                .collect()
        }
    }

    fn assert_scim_error(status: StatusCode, content_type: Option<String>, body: &Value) {
        assert_eq!(content_type.as_deref(), Some(SCIM_JSON));
        assert_eq!(body["schemas"], json!([ERROR_SCHEMA]));
        assert_eq!(body["status"], json!(status.as_u16().to_string()));
    }

    #[tokio::test]
    async fn a_request_without_the_right_bearer_is_refused_and_audited() {
        let app = spawn().await;
        let url = format!("{}{USERS_PATH}", app.base);
        let missing = app.client.get(&url).send().await.unwrap();
        let wrong = app
            .client
            .get(&url)
            .bearer_auth("not-the-secret-but-a-guess")
            .send()
            .await
            .unwrap();
        for response in [missing, wrong] {
            assert_eq!(response.status().as_u16(), 401);
            assert!(response.headers().contains_key("www-authenticate"));
            let content_type = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            assert_scim_error(StatusCode::UNAUTHORIZED, content_type, &body);
        }

        let records = app.store.audit_page(0, None, 100).await.unwrap();
        assert_eq!(records.len(), 2);
        for record in &records {
            assert_eq!(record.action, "scim.rejected");
            assert_eq!(record.outcome, Outcome::Denied);
            assert_eq!(record.actor.id, "scim");
            assert_eq!(record.origin.request_id.as_deref(), Some("scim-test"));
            assert!(!record.details.contains("not-the-secret"));
        }
    }

    #[tokio::test]
    async fn a_created_user_can_be_read_and_found_by_user_name() {
        let app = spawn().await;
        let body = json!({
            "schemas": [USER_SCHEMA],
            "userName": "ada@example.com",
            "externalId": "oid-ada",
            "name": { "formatted": "Ada Lovelace" },
        });
        let response = app
            .client
            .post(format!("{}{USERS_PATH}", app.base))
            .bearer_auth(SECRET)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let created: Value = response.json().await.unwrap();
        let id = created["id"].as_str().unwrap();
        assert_eq!(location, format!("/scim/v2/Users/{id}"));
        assert_eq!(created["displayName"], "Ada Lovelace");
        assert_eq!(created["active"], true);
        assert_eq!(created["meta"]["location"], location);

        let (status, content_type, fetched) = app.send(reqwest::Method::GET, &location, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(SCIM_JSON));
        assert_eq!(fetched, created);

        let (status, _, list) = app
            .send(
                reqwest::Method::GET,
                "/scim/v2/Users?filter=USERNAME%20Eq%20%22ada%40example.com%22",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["schemas"], json!([LIST_SCHEMA]));
        assert_eq!(list["totalResults"], 1);
        assert_eq!(list["startIndex"], 1);
        assert_eq!(list["itemsPerPage"], 1);
        assert_eq!(list["Resources"][0], created);

        let (_, _, none) = app
            .send(
                reqwest::Method::GET,
                "/scim/v2/Users?filter=externalId%20eq%20%22oid-nobody%22",
                None,
            )
            .await;
        assert_eq!(none["totalResults"], 0);
        assert_eq!(none["Resources"], json!([]));

        let actions = app.audit_actions().await;
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].0, "scim.user.created");
        assert_eq!(actions[0].1, Outcome::Allowed);
    }

    #[tokio::test]
    async fn a_taken_external_id_is_a_uniqueness_conflict() {
        let app = spawn().await;
        app.create("ada@example.com", "oid-ada").await;
        let body = json!({ "userName": "other@example.com", "externalId": "oid-ada" });
        let (status, content_type, error) = app
            .send(reqwest::Method::POST, USERS_PATH, Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_scim_error(status, content_type, &error);
        assert_eq!(error["scimType"], "uniqueness");
    }

    #[tokio::test]
    async fn a_user_without_an_external_id_is_refused() {
        let app = spawn().await;
        let body = json!({ "userName": "ada@example.com" });
        let (status, _, error) = app
            .send(reqwest::Method::POST, USERS_PATH, Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["scimType"], INVALID_VALUE);
    }

    #[tokio::test]
    async fn an_entra_deactivation_ends_that_users_sessions_and_keys_only() {
        let app = spawn().await;
        let id = app.create("ada@example.com", "oid-ada").await;
        app.create("bob@example.com", "oid-bob").await;
        let ada_session = app.seed_session("oid-ada").await;
        let bob_session = app.seed_session("oid-bob").await;
        let ada_key = app.seed_key("oid-ada").await;
        let bob_key = app.seed_key("oid-bob").await;

        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "Replace", "path": "active", "value": "False" }],
        });
        let (status, content_type, user) = app
            .send(
                reqwest::Method::PATCH,
                &format!("{USERS_PATH}/{id}"),
                Some(&patch.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(content_type.as_deref(), Some(SCIM_JSON));
        assert_eq!(user["active"], false);

        assert!(
            app.store
                .session(&ada_session)
                .await
                .unwrap()
                .unwrap()
                .ended
        );
        assert!(
            app.store
                .api_key(&ada_key)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );
        assert!(app.store.is_deprovisioned("oid-ada").await.unwrap());
        assert!(
            !app.store
                .session(&bob_session)
                .await
                .unwrap()
                .unwrap()
                .ended
        );
        assert!(
            app.store
                .api_key(&bob_key)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_none()
        );
        assert!(!app.store.is_deprovisioned("oid-bob").await.unwrap());

        let actions = app.audit_actions().await;
        let (action, outcome, details) = actions.last().unwrap();
        assert_eq!(action, "scim.user.deprovisioned");
        assert_eq!(*outcome, Outcome::Allowed);
        let details: Value = serde_json::from_str(details).unwrap();
        assert_eq!(details["externalId"], "oid-ada");
        assert_eq!(details["sessions_ended"], 1);
        assert_eq!(details["api_keys_revoked"], 1);
    }

    #[tokio::test]
    async fn a_pathless_patch_updates_attributes_and_can_deactivate() {
        let app = spawn().await;
        let id = app.create("ada@example.com", "oid-ada").await;
        let session = app.seed_session("oid-ada").await;
        let patch = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [
                { "op": "Add", "path": "emails[type eq \"work\"].value", "value": "x@example.com" },
                { "op": "replace", "value": { "displayName": "Ada King", "name.givenName": "Ada" } },
            ],
        });
        let path = format!("{USERS_PATH}/{id}");
        let (status, _, user) = app
            .send(reqwest::Method::PATCH, &path, Some(&patch.to_string()))
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user["displayName"], "Ada King");
        assert_eq!(user["active"], true);
        assert!(!app.store.session(&session).await.unwrap().unwrap().ended);

        let patch = json!({ "Operations": [{ "op": "replace", "value": { "active": false } }] });
        let (_, _, user) = app
            .send(reqwest::Method::PATCH, &path, Some(&patch.to_string()))
            .await;
        assert_eq!(user["active"], false);
        assert!(app.store.session(&session).await.unwrap().unwrap().ended);
        let actions: Vec<String> = app.audit_actions().await.into_iter().map(|a| a.0).collect();
        assert_eq!(
            actions,
            [
                "scim.user.created",
                "scim.user.updated",
                "scim.user.deprovisioned"
            ]
        );
    }

    #[tokio::test]
    async fn a_replacement_that_omits_active_does_not_reactivate() {
        let app = spawn().await;
        let id = app.create("ada@example.com", "oid-ada").await;
        let path = format!("{USERS_PATH}/{id}");
        let deactivate = json!({ "userName": "ada@example.com", "active": false });
        let (status, _, user) = app
            .send(reqwest::Method::PUT, &path, Some(&deactivate.to_string()))
            .await;
        assert_eq!(status, StatusCode::OK, "{user}");
        assert_eq!(user["active"], false);
        assert_eq!(user["displayName"], "ada@example.com");

        let rename = json!({ "userName": "ada.king@example.com", "externalId": "oid-ada" });
        let (_, _, user) = app
            .send(reqwest::Method::PUT, &path, Some(&rename.to_string()))
            .await;
        assert_eq!(user["userName"], "ada.king@example.com");
        assert_eq!(user["active"], false);
        assert!(app.store.is_deprovisioned("oid-ada").await.unwrap());
    }

    #[tokio::test]
    async fn the_external_id_cannot_change() {
        let app = spawn().await;
        let id = app.create("ada@example.com", "oid-ada").await;
        let patch = json!({
            "Operations": [{ "op": "replace", "path": "externalId", "value": "oid-other" }],
        });
        let (status, _, error) = app
            .send(
                reqwest::Method::PATCH,
                &format!("{USERS_PATH}/{id}"),
                Some(&patch.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["scimType"], MUTABILITY);
    }

    #[tokio::test]
    async fn a_deleted_user_is_gone_and_stays_locked_out() {
        let app = spawn().await;
        let id = app.create("ada@example.com", "oid-ada").await;
        let session = app.seed_session("oid-ada").await;
        let key = app.seed_key("oid-ada").await;
        let path = format!("{USERS_PATH}/{id}");

        let (status, _, body) = app.send(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(body, Value::Null);
        assert!(app.store.session(&session).await.unwrap().unwrap().ended);
        assert!(
            app.store
                .api_key(&key)
                .await
                .unwrap()
                .unwrap()
                .revoked_at
                .is_some()
        );

        let (status, content_type, error) = app.send(reqwest::Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_scim_error(status, content_type, &error);
        assert!(app.store.is_deprovisioned("oid-ada").await.unwrap());

        // The tombstone keeps the directory object id: it cannot come back as a new user.
        let body = json!({ "userName": "ada@example.com", "externalId": "oid-ada" });
        let (status, _, _) = app
            .send(reqwest::Method::POST, USERS_PATH, Some(&body.to_string()))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(app.store.is_deprovisioned("oid-ada").await.unwrap());

        let actions: Vec<String> = app.audit_actions().await.into_iter().map(|a| a.0).collect();
        assert_eq!(actions, ["scim.user.created", "scim.user.deprovisioned"]);
    }

    #[tokio::test]
    async fn when_the_audit_fails_the_lock_out_still_happens_and_the_answer_is_500() {
        let mut app = spawn().await;
        let id = app.create("ada@example.com", "oid-ada").await;
        let session = app.seed_session("oid-ada").await;
        app.writer
            .take()
            .unwrap()
            .finish(Duration::from_secs(5))
            .await;

        let patch =
            json!({ "Operations": [{ "op": "replace", "path": "active", "value": false }] });
        let (status, content_type, error) = app
            .send(
                reqwest::Method::PATCH,
                &format!("{USERS_PATH}/{id}"),
                Some(&patch.to_string()),
            )
            .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_scim_error(status, content_type, &error);
        assert_eq!(error["detail"], "internal error");
        assert!(app.store.session(&session).await.unwrap().unwrap().ended);
        assert!(app.store.is_deprovisioned("oid-ada").await.unwrap());
    }

    #[tokio::test]
    async fn malformed_json_is_invalid_syntax() {
        let app = spawn().await;
        let id = app.create("ada@example.com", "oid-ada").await;
        for (method, path) in [
            (reqwest::Method::POST, USERS_PATH.to_owned()),
            (reqwest::Method::PATCH, format!("{USERS_PATH}/{id}")),
        ] {
            let (status, content_type, error) =
                app.send(method, &path, Some("{\"userName\": ")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_scim_error(status, content_type, &error);
            assert_eq!(error["scimType"], INVALID_SYNTAX);
        }
    }

    #[tokio::test]
    async fn an_unsupported_filter_is_invalid_filter() {
        let app = spawn().await;
        let (status, content_type, error) = app
            .send(
                reqwest::Method::GET,
                "/scim/v2/Users?filter=displayName%20co%20%22Ada%22",
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_scim_error(status, content_type, &error);
        assert_eq!(error["scimType"], INVALID_FILTER);
    }

    #[tokio::test]
    async fn pages_start_at_one_and_hold_at_most_the_count() {
        let app = spawn().await;
        for n in 0..3 {
            app.create(&format!("user{n}@example.com"), &format!("oid-{n}"))
                .await;
        }
        let (_, _, page) = app
            .send(
                reqwest::Method::GET,
                "/scim/v2/Users?startIndex=2&count=1",
                None,
            )
            .await;
        assert_eq!(page["totalResults"], 3);
        assert_eq!(page["startIndex"], 2);
        assert_eq!(page["itemsPerPage"], 1);
        assert_eq!(page["Resources"][0]["userName"], "user1@example.com");

        let (status, _, error) = app
            .send(reqwest::Method::GET, "/scim/v2/Users?count=many", None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(error["scimType"], INVALID_VALUE);
    }

    #[tokio::test]
    async fn discovery_documents_describe_what_is_supported() {
        let app = spawn().await;
        let (status, content_type, config) = app
            .send(reqwest::Method::GET, "/scim/v2/ServiceProviderConfig", None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(SCIM_JSON));
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(config["filter"]["maxResults"], 200);
        assert_eq!(config["bulk"]["supported"], false);
        assert_eq!(
            config["authenticationSchemes"][0]["type"],
            "oauthbearertoken"
        );
        let (_, _, types) = app
            .send(reqwest::Method::GET, "/scim/v2/ResourceTypes", None)
            .await;
        assert_eq!(types["Resources"][0]["schema"], USER_SCHEMA);
        let (_, _, schemas) = app
            .send(reqwest::Method::GET, "/scim/v2/Schemas", None)
            .await;
        assert_eq!(schemas["Resources"][0]["id"], USER_SCHEMA);
        let (status, _, _) = app
            .send(reqwest::Method::GET, "/scim/v2/Groups", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}
