//! Entra access tokens for Azure OpenAI: the instance metadata service (managed identity) and
//! the token endpoint that takes a federated assertion (workload identity).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::json;

use crate::{
    FEDERATED_ASSERTION, FakeState, MANAGED_IDENTITY_TOKEN, WORKLOAD_CLIENT_ID,
    WORKLOAD_IDENTITY_TOKEN,
};

const COGNITIVE_SERVICES: &str = "https://cognitiveservices.azure.com";

/// The instance metadata service: a token for Azure OpenAI, asked for with `Metadata: true`.
pub(crate) async fn managed_identity_token(
    State(state): State<FakeState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if headers.get("metadata").map(|v| v.as_bytes()) != Some(b"true")
        || query.get("resource").map(String::as_str) != Some(COGNITIVE_SERVICES)
    {
        return StatusCode::BAD_REQUEST.into_response();
    }
    state.log().tokens_issued += 1;
    let expires = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
        + 3600;
    Json(json!({ "access_token": MANAGED_IDENTITY_TOKEN, "expires_on": expires.to_string() }))
        .into_response()
}

/// Entra's token endpoint for workload identity: the federated token must come as the assertion.
pub(crate) async fn workload_identity_token(
    State(state): State<FakeState>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str);
    let ok = field("client_assertion") == Some(FEDERATED_ASSERTION)
        && field("scope") == Some(format!("{COGNITIVE_SERVICES}/.default").as_str())
        && field("client_id") == Some(WORKLOAD_CLIENT_ID);
    if !ok {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    state.log().tokens_issued += 1;
    Json(json!({ "access_token": WORKLOAD_IDENTITY_TOKEN, "expires_in": 3600, "token_type": "Bearer" }))
        .into_response()
}
