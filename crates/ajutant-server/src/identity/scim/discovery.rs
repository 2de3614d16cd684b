//! The documents a directory reads to learn what this SCIM endpoint supports.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{ListResponse, MAX_RESULTS, USER_SCHEMA, scim_response};

pub(super) async fn service_provider_config() -> Response {
    let config = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": { "supported": true },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": false },
        "etag": { "supported": false },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "The shared secret configured as identity.scim.bearer_secret",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": "/scim/v2/ServiceProviderConfig",
        },
    });
    scim_response(StatusCode::OK, &config)
}

pub(super) async fn resource_types() -> Response {
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A person the directory provisions",
        "schema": USER_SCHEMA,
        "meta": { "resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User" },
    });
    scim_response(StatusCode::OK, &ListResponse::all(vec![user]))
}

pub(super) async fn schemas() -> Response {
    let attribute = |name: &str, kind: &str, required: bool, uniqueness: &str| {
        json!({
            "name": name,
            "type": kind,
            "multiValued": false,
            "required": required,
            "caseExact": false,
            "mutability": "readWrite",
            "returned": "default",
            "uniqueness": uniqueness,
        })
    };
    let name = json!({
        "name": "name",
        "type": "complex",
        "multiValued": false,
        "required": false,
        "mutability": "readWrite",
        "returned": "default",
        "subAttributes": [attribute("formatted", "string", false, "none")],
    });
    let user = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User account",
        "attributes": [
            attribute("userName", "string", true, "server"),
            name,
            attribute("displayName", "string", false, "none"),
            attribute("active", "boolean", false, "none"),
        ],
        "meta": {
            "resourceType": "Schema",
            "location": format!("/scim/v2/Schemas/{USER_SCHEMA}"),
        },
    });
    scim_response(StatusCode::OK, &ListResponse::all(vec![user]))
}
