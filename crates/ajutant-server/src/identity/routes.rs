//! The identity API: who am I, and the admin API for role bindings and platform API keys. The
//! audit trail's routes are in the `audit` module (`crate::audit`).

use ajutant_core::policy::{Grantee, roles_of};
use ajutant_store::{ApiKey, StoredRoleBinding};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin;
use super::{AuthMethod, Caller};
use crate::AppState;
use crate::access::{Guard, bindings};
use crate::problem::{ApiError, Problem};
use crate::request::RequestContext;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .merge(crate::audit::router())
        .routes(routes!(role_bindings_list, role_binding_create))
        .routes(routes!(role_binding_delete))
        .routes(routes!(api_keys_list, api_key_create))
        .routes(routes!(api_key_revoke))
}

pub(crate) fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

pub(crate) fn parse_time(
    name: &str,
    value: Option<String>,
) -> Result<Option<OffsetDateTime>, ApiError> {
    value
        .map(|text| {
            OffsetDateTime::parse(&text, &Rfc3339)
                .map_err(|_| ApiError::BadRequest(format!("{name} must be an RFC 3339 time")))
        })
        .transpose()
}

// ---- me -------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleGrant {
    pub role: String,
    /// The one assistant the role is limited to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// The stable identity: issuer and directory object id, or the API key's service identity.
    pub id: String,
    pub subject: String,
    pub display_name: String,
    /// `user` or `service`.
    pub kind: String,
    pub authenticated_by: AuthMethod,
    pub groups: Vec<String>,
    pub app_roles: Vec<String>,
    /// Roles held through role bindings.
    pub roles: Vec<RoleGrant>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// For browser sessions: send it as `x-csrf-token` on state-changing requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// Who am I: identity, groups and roles of the caller.
#[utoipa::path(get, path = "/api/v1/me", tag = "identity",
    responses((status = 200, description = "Who the caller is", body = Me), (status = 401, description = "No valid credential", body = Problem)))]
async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Me>, ApiError> {
    let bindings = bindings(&state).await?;
    let principal = &caller.principal;
    Ok(Json(Me {
        id: principal.id.clone(),
        subject: principal.subject.clone(),
        display_name: principal.display_name.clone(),
        kind: serde_json::to_value(principal.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        authenticated_by: caller.via,
        groups: principal.groups.iter().cloned().collect(),
        app_roles: principal.app_roles.iter().cloned().collect(),
        roles: roles_of(principal, &bindings)
            .into_iter()
            .map(|(role, assistant)| RoleGrant {
                role: role.as_str().to_owned(),
                assistant,
            })
            .collect(),
        tenant: principal.tenant.clone(),
        csrf_token: caller.csrf_token,
    }))
}

// ---- role bindings --------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleBindingBody {
    /// `assistant_owner`, `it_ops`, `auditor` or `platform_admin`.
    pub role: String,
    /// A directory group object id (exactly one of `group` and `app_role`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// An app role from the token's `roles` claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<String>,
    /// For `assistant_owner`: the one assistant it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleBindingView {
    pub id: String,
    #[serde(flatten)]
    pub binding: RoleBindingBody,
    /// `config` (seeded at start-up) or `api`.
    pub source: String,
    pub created_by: String,
    pub created_at: String,
}

impl From<StoredRoleBinding> for RoleBindingView {
    fn from(stored: StoredRoleBinding) -> Self {
        let (group, app_role) = match stored.binding.grantee {
            Grantee::Group(id) => (Some(id), None),
            Grantee::AppRole(name) => (None, Some(name)),
        };
        Self {
            id: stored.id,
            binding: RoleBindingBody {
                role: stored.binding.role.as_str().to_owned(),
                group,
                app_role,
                assistant: stored.binding.assistant,
            },
            source: stored.source,
            created_by: stored.created_by,
            created_at: rfc3339(stored.created_at),
        }
    }
}

/// Every role binding.
#[utoipa::path(get, path = "/api/v1/admin/role-bindings", tag = "admin",
    responses((status = 200, description = "Every role binding", body = [RoleBindingView]), (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn role_bindings_list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<Vec<RoleBindingView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let all = admin::role_bindings(&guard).await?;
    Ok(Json(all.into_iter().map(RoleBindingView::from).collect()))
}

/// Grant a role to a group or app role.
#[utoipa::path(post, path = "/api/v1/admin/role-bindings", tag = "admin",
    request_body = RoleBindingBody,
    responses((status = 201, description = "The new binding", body = RoleBindingView), (status = 400, description = "The request is invalid", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem), (status = 409, description = "It already exists", body = Problem)))]
async fn role_binding_create(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Json(body): Json<RoleBindingBody>,
) -> Result<(StatusCode, Json<RoleBindingView>), ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let grant = admin::Grant {
        role: body.role,
        group: body.group,
        app_role: body.app_role,
        assistant: body.assistant,
    };
    let stored = admin::grant(&guard, grant).await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// Remove a role binding.
#[utoipa::path(delete, path = "/api/v1/admin/role-bindings/{id}", tag = "admin",
    params(("id" = String, Path, description = "The binding's id")),
    responses((status = 204, description = "Done"), (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn role_binding_delete(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    admin::revoke_binding(&guard, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- API keys -------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// The key's public id (its first part); safe to show.
    pub id: String,
    /// The service identity the key acts as.
    pub name: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_subject: Option<String>,
    pub created_by: String,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            name: key.name,
            groups: key.groups,
            owner_subject: key.owner_subject,
            created_by: key.created_by,
            created_at: rfc3339(key.created_at),
            expires_at: key.expires_at.map(rfc3339),
            revoked_at: key.revoked_at.map(rfc3339),
            last_used_at: key.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ApiKeyRequest {
    /// The service identity's name: letters, digits, `-`, `_`, `.`.
    pub name: String,
    /// Directory group ids the key acts with.
    #[serde(default)]
    pub groups: Vec<String>,
    /// RFC 3339; unset: no expiry.
    #[serde(default)]
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The whole key. Shown this once; only its digest is stored.
    pub key: String,
    #[serde(flatten)]
    pub details: ApiKeyView,
}

/// Every API key (without secrets).
#[utoipa::path(get, path = "/api/v1/admin/api-keys", tag = "admin",
    responses((status = 200, description = "Every key, without secrets", body = [ApiKeyView]), (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
pub(crate) async fn api_keys_list(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
) -> Result<Json<Vec<ApiKeyView>>, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let keys = admin::api_keys(&guard).await?;
    Ok(Json(keys.into_iter().map(ApiKeyView::from).collect()))
}

/// Create an API key for a service identity. The creating person owns it: if the directory
/// deprovisions them, the key is revoked.
#[utoipa::path(post, path = "/api/v1/admin/api-keys", tag = "admin",
    request_body = ApiKeyRequest,
    responses((status = 201, description = "The new key, shown once", body = CreatedApiKey), (status = 400, description = "The request is invalid", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn api_key_create(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Json(body): Json<ApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    let request = admin::KeyRequest {
        name: body.name,
        groups: body.groups,
        expires_at: parse_time("expires_at", body.expires_at)?,
    };
    let (key, secret) = admin::issue_key(&guard, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            key: secret,
            details: key.into(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RevokeParams {
    /// Why, in at most 500 characters; kept with the key and in the audit trail.
    reason: Option<String>,
}

/// Revoke an API key; it is refused from the next request on.
#[utoipa::path(delete, path = "/api/v1/admin/api-keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "The key's public id"), RevokeParams),
    responses((status = 204, description = "Done"), (status = 400, description = "The request is invalid", body = Problem),
        (status = 404, description = "Not found, or not visible to the caller", body = Problem)))]
async fn api_key_revoke(
    State(state): State<AppState>,
    context: RequestContext,
    caller: Caller,
    Path(id): Path<String>,
    Query(params): Query<RevokeParams>,
) -> Result<StatusCode, ApiError> {
    let guard = Guard::new(&state, &context, &caller);
    admin::revoke_key(&guard, &id, params.reason.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}
