//! Identity and access: who is calling, proven by the organisation's OpenID Connect provider (a
//! browser session or a bearer token) or by a platform API key; and, through `access`, what they
//! may do. There is no local user list and no local password.
//!
//! A request is authenticated by exactly one of, in order: the `Authorization: Bearer` header
//! (a platform API key, recognised by its `ajk_` prefix, or a JWT access token from the
//! provider), or the session cookie. Credentials in query strings are never read.

pub(crate) mod admin;
pub mod api_keys;
mod cache;
pub(crate) mod dev_idp;
mod graph;
mod provider;
mod recheck;
pub(crate) use recheck::still_allowed;
pub(crate) mod refusals;
pub(crate) mod routes;
pub(crate) mod scim;
pub(crate) mod secrets;
pub(crate) mod sessions;
mod tokens;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ajutant_core::audit::{Actor, ActorKind, AuditAction, AuditEvent, Outcome};
use ajutant_core::config::{Config, IdentityProviderKind, SessionConfig};
use ajutant_core::policy::{Principal, PrincipalKind};
use ajutant_core::secret::SecretString;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::Serialize;
use time::OffsetDateTime;
use url::Url;

use crate::AppState;
use crate::problem::ApiError;
use crate::request::RequestContext;
use dev_idp::DevIdp;
use graph::Graph;
use provider::{Provider, ProviderSettings};
use tokens::{Claims, TokenPolicy, TokenRejection, TokenUse, TokenValidator};

/// Outbound calls to the identity provider and Graph give up after this long.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("invalid identity configuration: {0}")]
    Config(String),
}

/// Put in a route's request extensions when the handler writes its own audit record of the
/// call (naming the caller): an API key's use is then not recorded a second time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordsKeyUse;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    Session,
    Token,
    ApiKey,
}

/// An authenticated caller. Handlers take it as an extractor; a request without valid
/// credentials never reaches them (401 problem details, audited).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub via: AuthMethod,
    /// For session callers: the session's CSRF token, which `/api/v1/me` hands to pages.
    pub csrf_token: Option<String>,
}

struct Inner {
    validator: TokenValidator,
    graph: Graph,
    sessions: SessionConfig,
    public_url: Url,
    redirect_uri: Url,
    scopes: Vec<String>,
    secure_cookies: bool,
    dev_idp: Option<DevIdp>,
    scim_secret: Option<SecretString>,
    cache: cache::CredentialCache,
}

/// Everything identity needs at request time. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("issuer", &self.inner.validator.issuer_template())
            .field("public_url", &self.inner.public_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// `public_url` is where browsers reach this instance (redirects and cookies derive from it).
    pub fn new(config: &Config, public_url: Url) -> Result<Self, IdentityError> {
        let identity = &config.identity;
        let redirect_uri = join(&public_url, "auth/callback")?;
        let http = reqwest::Client::builder()
            .timeout(PROVIDER_TIMEOUT)
            .connect_timeout(PROVIDER_TIMEOUT)
            // Tokens travel in these responses; a redirect could hand them to someone else.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| IdentityError::Config(format!("HTTP client: {e}")))?;

        let (policy, discovery_url, client_secret, dev_idp) = match identity.provider {
            IdentityProviderKind::Development => {
                let issuer = join(&public_url, "dev-idp")?;
                let idp = DevIdp::new(&identity.development, issuer.clone(), redirect_uri.clone())
                    .map_err(|e| IdentityError::Config(e.to_string()))?;
                let policy = TokenPolicy {
                    issuer: idp.issuer().to_owned(),
                    client_id: dev_idp::CLIENT_ID.to_owned(),
                    api_audiences: vec![dev_idp::CLIENT_ID.to_owned()],
                    // Its issuer does not name the tenant, so only the exact issuer is checked.
                    allowed_tenants: Vec::new(),
                    clock_skew_secs: identity.oidc.clock_skew_secs,
                };
                let discovery = join(&public_url, "dev-idp/.well-known/openid-configuration")?;
                (policy, discovery, None, Some(idp))
            }
            IdentityProviderKind::Oidc => {
                let oidc = &identity.oidc;
                let discovery = match &oidc.discovery_url {
                    Some(url) => url.clone(),
                    None => Url::parse(&format!(
                        "{}/.well-known/openid-configuration",
                        oidc.issuer.trim_end_matches('/')
                    ))
                    .map_err(|e| IdentityError::Config(format!("identity.oidc.issuer: {e}")))?,
                };
                let audiences = if oidc.audiences.is_empty() {
                    vec![oidc.client_id.clone()]
                } else {
                    oidc.audiences.clone()
                };
                let policy = TokenPolicy {
                    issuer: oidc.issuer.clone(),
                    client_id: oidc.client_id.clone(),
                    api_audiences: audiences,
                    allowed_tenants: oidc.allowed_tenants.clone(),
                    clock_skew_secs: oidc.clock_skew_secs,
                };
                (policy, discovery, oidc.client_secret.clone(), None)
            }
        };
        let provider = Provider::new(
            ProviderSettings {
                discovery_url,
                expected_issuer: policy.issuer.clone(),
                client_id: policy.client_id.clone(),
                client_secret,
                refresh_every: Duration::from_secs(identity.oidc.jwks_refresh_secs),
                forced_refresh_min: Duration::from_secs(identity.oidc.jwks_forced_refresh_min_secs),
            },
            http.clone(),
        );
        let graph = Graph::new(identity.graph.clone(), provider.clone(), http);
        let secure_cookies = public_url.scheme() == "https"
            || public_url
                .host_str()
                .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]");
        Ok(Self {
            inner: Arc::new(Inner {
                validator: TokenValidator::new(policy, provider),
                graph,
                sessions: identity.sessions.clone(),
                public_url,
                redirect_uri,
                scopes: identity.oidc.scopes.clone(),
                secure_cookies,
                dev_idp,
                scim_secret: identity.scim.bearer_secret.clone(),
                cache: cache::CredentialCache::default(),
            }),
        })
    }

    /// Where browsers reach this instance.
    pub(crate) fn public_url(&self) -> &Url {
        &self.inner.public_url
    }

    pub(crate) fn dev_idp(&self) -> Option<&DevIdp> {
        self.inner.dev_idp.as_ref()
    }

    pub(crate) fn scim_secret(&self) -> Option<&SecretString> {
        self.inner.scim_secret.as_ref()
    }

    /// What revocations and deprovisionings on this instance clear.
    pub(crate) fn cache(&self) -> &cache::CredentialCache {
        &self.inner.cache
    }

    /// Who the claims describe, with groups resolved through Graph on overage. The second value
    /// is the Graph failure, if any, for the caller to audit: the principal then has no groups.
    async fn principal_from(&self, claims: &Claims) -> (Principal, Option<String>) {
        let subject = claims.subject().unwrap_or_default().to_owned();
        let application = claims.is_application();
        let mut groups: BTreeSet<String> = claims.groups.iter().flatten().cloned().collect();
        let mut graph_failure = None;
        if claims.groups_overage() && !application {
            match self.inner.graph.groups_of(&subject).await {
                Ok(resolved) => groups = resolved,
                Err(error) => {
                    tracing::warn!(%error, "groups overage could not be resolved; no group access");
                    groups.clear();
                    graph_failure = Some(error.to_string());
                }
            }
        }
        let display_name = claims
            .name
            .clone()
            .or_else(|| claims.preferred_username.clone())
            .or_else(|| claims.azp.clone().or_else(|| claims.appid.clone()))
            .unwrap_or_else(|| subject.clone());
        let principal = Principal {
            id: format!("{}#{subject}", claims.iss),
            subject,
            display_name,
            kind: if application {
                PrincipalKind::Service
            } else {
                PrincipalKind::User
            },
            groups,
            app_roles: claims.app_roles(),
            tenant: claims.tid.clone(),
        };
        (principal, graph_failure)
    }
}

fn join(base: &Url, path: &str) -> Result<Url, IdentityError> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        let with_slash = format!("{}/", base.path());
        base.set_path(&with_slash);
    }
    base.join(path)
        .map_err(|e| IdentityError::Config(format!("server.public_url: {e}")))
}

/// A refused credential: how it was presented (`token`, `api_key`, `session`, `header`), the
/// message for the caller, and the reason code for the audit trail.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal<'a> {
    pub method: &'a str,
    pub message: &'a str,
    pub code: &'a str,
}

/// Someone not (yet) known, for audit records of refused credentials.
pub(crate) fn anonymous() -> Actor {
    Actor {
        id: "anonymous".to_owned(),
        display_name: "unauthenticated caller".to_owned(),
        kind: ActorKind::User,
    }
}

impl Caller {
    /// An audit record of `action` on `resource` by this caller, in `context`'s request.
    pub(crate) fn event(
        &self,
        context: &RequestContext,
        action: AuditAction,
        resource: impl Into<String>,
        outcome: Outcome,
    ) -> AuditEvent {
        AuditEvent::new(self.principal.actor(), action, resource, outcome)
            .with_origin(context.origin())
    }
}

impl AppState {
    /// Appends to the audit trail; a failure fails the request, since an action that cannot be
    /// recorded must not look successful.
    pub(crate) async fn record(&self, event: AuditEvent) -> Result<(), ApiError> {
        self.audit
            .append(event)
            .await
            .map(|_| ())
            .map_err(ApiError::from)
    }

    /// Records a refused credential (the first few per address and reason in a window in full,
    /// the rest as a count: `refusals.rs`) and returns the 401 to send.
    async fn refuse(
        &self,
        context: &RequestContext,
        actor: Actor,
        refusal: Refusal<'_>,
    ) -> ApiError {
        metrics::counter!(
            "ajutant_auth_rejections_total",
            "method" => refusal.method.to_owned(),
            "reason" => refusal.code.to_owned(),
        )
        .increment(1);
        let origin = context.origin();
        let note = self
            .refusals
            .note(origin.client_addr.as_deref(), refusal.method, refusal.code);
        if note == refusals::Note::InFull {
            let event = AuditEvent::new(actor, AuditAction::AuthRejected, "", Outcome::Denied)
                .with_origin(origin)
                .with_details(
                    serde_json::json!({ "method": refusal.method, "reason": refusal.code }),
                );
            if let Err(error) = self.record(event).await {
                return error;
            }
        }
        ApiError::Unauthorized(refusal.message.to_owned())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let context = RequestContext::from_request_parts(parts, state).await?;
        let caller = authenticate(state, &context, parts).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

async fn authenticate(
    state: &AppState,
    context: &RequestContext,
    parts: &Parts,
) -> Result<Caller, ApiError> {
    let now = OffsetDateTime::now_utc();
    if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
        let credential = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
            .filter(|c| !c.is_empty());
        let Some(credential) = credential else {
            return Err(state
                .refuse(
                    context,
                    anonymous(),
                    Refusal {
                        method: "header",
                        message: "the Authorization header must be `Bearer <token or API key>`",
                        code: "bad_scheme",
                    },
                )
                .await);
        };
        return if api_keys::looks_like_key(credential) {
            authenticate_key(state, context, credential, parts, now).await
        } else {
            authenticate_token(state, context, credential).await
        };
    }
    if let Some(cookie) = sessions::session_cookie(&parts.headers, state.identity.cookie_name()) {
        return sessions::authenticate_session(state, context, &cookie, parts, now).await;
    }
    Err(ApiError::Unauthorized(
        "sign in, or send an access token or API key in the Authorization: Bearer header"
            .to_owned(),
    ))
}

async fn authenticate_key(
    state: &AppState,
    context: &RequestContext,
    credential: &str,
    parts: &Parts,
    now: OffsetDateTime,
) -> Result<Caller, ApiError> {
    let verdict = api_keys::verify(
        &state.store,
        state.identity.cache(),
        &state.tasks,
        credential,
        now,
    )
    .await
    .map_err(ApiError::from)?;
    let key = match verdict {
        Ok(key) => key,
        Err((rejection, key_id)) => {
            let actor = match key_id {
                Some(id) => Actor {
                    id: format!("apikey:{id}"),
                    display_name: id,
                    kind: ActorKind::Service,
                },
                None => anonymous(),
            };
            return Err(state
                .refuse(
                    context,
                    actor,
                    Refusal {
                        method: "api_key",
                        message: rejection.reason(),
                        code: rejection.reason(),
                    },
                )
                .await);
        }
    };
    let principal = Principal {
        // The key's id, never its name: names are labels and may repeat.
        id: format!("apikey:{}", key.id),
        subject: key.id.clone(),
        display_name: key.name.clone(),
        kind: PrincipalKind::Service,
        groups: key.groups.iter().cloned().collect(),
        app_roles: BTreeSet::new(),
        tenant: None,
    };
    // Every use of a key is on the record: here, unless the route writes its own record of
    // the call (the model gateway), which names the key's identity as its actor.
    if parts.extensions.get::<RecordsKeyUse>().is_none() {
        let event = AuditEvent::new(
            principal.actor(),
            AuditAction::ApiKeyUsed,
            format!("api_key/{}", key.id),
            Outcome::Allowed,
        )
        .with_origin(context.origin());
        state.record(event).await?;
    }
    if state.identity.cache().due_for_mark(&key.id)
        && let Err(error) = state.store.mark_api_key_used(&key.id, now).await
    {
        tracing::warn!(%error, "cannot record when an API key was last used");
    }
    Ok(Caller {
        principal,
        via: AuthMethod::ApiKey,
        csrf_token: None,
    })
}

async fn authenticate_token(
    state: &AppState,
    context: &RequestContext,
    token: &str,
) -> Result<Caller, ApiError> {
    let identity = &state.identity;
    let claims = match identity
        .inner
        .validator
        .validate(token, TokenUse::Access)
        .await
    {
        Ok(claims) => claims,
        Err(rejection) => {
            let error = state
                .refuse(
                    context,
                    anonymous(),
                    Refusal {
                        method: "token",
                        message: &rejection.to_string(),
                        code: rejection.code(),
                    },
                )
                .await;
            if rejection == TokenRejection::KeysUnavailable
                && matches!(error, ApiError::Unauthorized(_))
            {
                return Err(ApiError::Unavailable(rejection.to_string()));
            }
            return Err(error);
        }
    };
    let (principal, graph_failure) = identity.principal_from(&claims).await;
    if let Some(failure) = graph_failure {
        audit_graph_failure(state, context, &principal, &failure).await?;
    }
    ensure_provisioned(state, context, &principal, "token").await?;
    Ok(Caller {
        principal,
        via: AuthMethod::Token,
        csrf_token: None,
    })
}

/// Re-reads whether `subject` is deprovisioned while callers go on with the cached answer.
fn reread_status_in_background(state: &AppState, subject: &str) {
    let (store, cache) = (state.store.clone(), state.identity.cache().clone());
    let subject = subject.to_owned();
    let generation = cache.generation();
    state.tasks.spawn(async move {
        match store.is_deprovisioned(&subject).await {
            Ok(gone) => cache.remember_deprovisioned(&subject, gone, generation),
            // The entry expires at FRESH_FOR, and the next caller reads it again.
            Err(error) => tracing::warn!(%error, "cannot re-read a user's status"),
        }
    });
}

/// Refuses a principal the directory has deprovisioned over SCIM, whatever their token says.
async fn ensure_provisioned(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    method: &str,
) -> Result<(), ApiError> {
    let cache = state.identity.cache();
    let deprovisioned = match cache.deprovisioned(&principal.subject) {
        Some(cached) => {
            if cached.refresh {
                reread_status_in_background(state, &principal.subject);
            }
            cached.value
        }
        None => {
            let generation = cache.generation();
            let gone = state
                .store
                .is_deprovisioned(&principal.subject)
                .await
                .map_err(ApiError::from)?;
            cache.remember_deprovisioned(&principal.subject, gone, generation);
            gone
        }
    };
    if deprovisioned {
        return Err(state
            .refuse(
                context,
                principal.actor(),
                Refusal {
                    method,
                    message: "this account has been deprovisioned by the directory",
                    code: "deprovisioned",
                },
            )
            .await);
    }
    Ok(())
}

async fn audit_graph_failure(
    state: &AppState,
    context: &RequestContext,
    principal: &Principal,
    failure: &str,
) -> Result<(), ApiError> {
    let event = AuditEvent::new(
        principal.actor(),
        AuditAction::GroupsUnresolved,
        "",
        Outcome::Failed,
    )
    .with_origin(context.origin())
    .with_details(serde_json::json!({ "error": failure }));
    state.record(event).await
}

/// Reads one cookie from the request's `Cookie` headers.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}
