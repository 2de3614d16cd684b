//! PATCH of a user: SCIM PatchOp operations applied in order, with Entra's pathless form, and
//! the rule that `externalId` never changes.

use ajutant_store::DirectoryUser;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::Value;

use super::request::{Attributes, attribute_path, json_object, member};
use super::users::{existing_user, update};
use super::{INVALID_SYNTAX, INVALID_VALUE, MUTABILITY, NO_TARGET, ScimError, ScimState};
use crate::request::RequestContext;

pub(super) async fn patch_user(
    State(state): State<ScimState>,
    context: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let patch = json_object(&body)?;
    let before = existing_user(&state.store, &id).await?;
    let Some(Value::Array(operations)) = member(&patch, "Operations") else {
        return Err(ScimError::bad(
            INVALID_SYNTAX,
            "a PatchOp needs an Operations array",
        ));
    };
    let mut after = before.clone();
    let mut set_inactive = false;
    for operation in operations {
        set_inactive |= apply_operation(&mut after, operation)?;
    }
    update(&state, &context, &before, after, set_inactive).await
}

/// Applies one PatchOp operation in order; true when it set `active` to false.
fn apply_operation(user: &mut DirectoryUser, operation: &Value) -> Result<bool, ScimError> {
    let Value::Object(operation) = operation else {
        return Err(ScimError::bad(
            INVALID_SYNTAX,
            "an operation must be an object",
        ));
    };
    let op = member(operation, "op")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    let path = member(operation, "path").and_then(Value::as_str);
    let value = member(operation, "value");
    let attributes = match (op.as_str(), path, value) {
        ("add" | "replace", Some(path), Some(value)) => {
            let mut attributes = Attributes::default();
            attributes.set(path, value)?;
            attributes
        }
        ("add" | "replace", None, Some(Value::Object(object))) => Attributes::from_object(object)?,
        ("add" | "replace", _, _) => {
            return Err(ScimError::bad(
                INVALID_VALUE,
                "add and replace need a value (an object when there is no path)",
            ));
        }
        ("remove", Some(path), _) => return remove_attribute(user, path).map(|()| false),
        ("remove", None, _) => {
            return Err(ScimError::bad(NO_TARGET, "remove needs a path"));
        }
        _ => {
            return Err(ScimError::bad(
                INVALID_SYNTAX,
                "op must be add, replace or remove",
            ));
        }
    };
    if let Some(external_id) = &attributes.external_id {
        keep_external_id(user, external_id)?;
    }
    if let Some(user_name) = attributes.user_name {
        user.user_name = user_name;
    }
    // Within one operation displayName wins; name.formatted stands in when it alone is sent.
    if let Some(display_name) = attributes.display_name.or(attributes.formatted_name) {
        user.display_name = display_name;
    }
    if let Some(active) = attributes.active {
        user.active = active;
    }
    Ok(attributes.active == Some(false))
}

fn remove_attribute(user: &mut DirectoryUser, path: &str) -> Result<(), ScimError> {
    match attribute_path(path).as_str() {
        "displayname" | "name.formatted" | "name" => {
            user.display_name = user.user_name.clone();
            Ok(())
        }
        "active" | "username" | "externalid" => Err(ScimError::bad(
            INVALID_VALUE,
            format!("{path} cannot be removed"),
        )),
        _ => Ok(()),
    }
}

pub(super) fn keep_external_id(user: &DirectoryUser, external_id: &str) -> Result<(), ScimError> {
    if external_id == user.external_id {
        return Ok(());
    }
    Err(ScimError::bad(
        MUTABILITY,
        "externalId is the directory object id and cannot change; delete and create the user",
    ))
}
