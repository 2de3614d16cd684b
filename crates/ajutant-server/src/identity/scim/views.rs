//! A directory user as SCIM shows it: the User resource with its meta block and location.

use ajutant_store::DirectoryUser;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use super::{ScimError, USER_SCHEMA, USERS_PATH, scim_response};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UserResource<'a> {
    schemas: [&'static str; 1],
    id: &'a str,
    external_id: &'a str,
    user_name: &'a str,
    display_name: &'a str,
    active: bool,
    meta: Meta,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    resource_type: &'static str,
    created: String,
    last_modified: String,
    location: String,
}

impl<'a> UserResource<'a> {
    pub(super) fn of(user: &'a DirectoryUser) -> Result<Self, ScimError> {
        Ok(Self {
            schemas: [USER_SCHEMA],
            id: &user.id,
            external_id: &user.external_id,
            user_name: &user.user_name,
            display_name: &user.display_name,
            active: user.active,
            meta: Meta {
                resource_type: "User",
                created: user.created_at.format(&Rfc3339)?,
                last_modified: user.updated_at.format(&Rfc3339)?,
                location: user_location(&user.id),
            },
        })
    }
}

pub(super) fn user_location(id: &str) -> String {
    format!("{USERS_PATH}/{id}")
}

pub(super) fn user_response(
    status: StatusCode,
    user: &DirectoryUser,
) -> Result<Response, ScimError> {
    Ok(scim_response(status, &UserResource::of(user)?))
}
