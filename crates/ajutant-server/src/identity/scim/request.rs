//! Reading what a directory sends: the stored attributes a request names, values as Entra
//! spells them, and the filters it matches users with.

use serde_json::{Map, Value};

use super::{INVALID_FILTER, INVALID_SYNTAX, INVALID_VALUE, ScimError, USER_SCHEMA_PREFIX};

/// The stored attributes a request names; `None` for those it leaves out. Attribute names are
/// case-insensitive (RFC 7643 section 2.1) and may carry the core schema's URN.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Attributes {
    pub(super) user_name: Option<String>,
    pub(super) external_id: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) formatted_name: Option<String>,
    pub(super) active: Option<bool>,
}

impl Attributes {
    pub(super) fn from_object(object: &Map<String, Value>) -> Result<Self, ScimError> {
        let mut attributes = Self::default();
        for (name, value) in object {
            attributes.set(name, value)?;
        }
        Ok(attributes)
    }

    /// Sets one attribute by name or path; attributes not stored here are ignored, and `null`
    /// means unassigned.
    pub(super) fn set(&mut self, path: &str, value: &Value) -> Result<(), ScimError> {
        if value.is_null() {
            return Ok(());
        }
        match attribute_path(path).as_str() {
            "active" => self.active = Some(boolean("active", value)?),
            "username" => self.user_name = Some(required_text("userName", value)?),
            "externalid" => self.external_id = Some(required_text("externalId", value)?),
            "displayname" => self.display_name = optional_text("displayName", value)?,
            "name.formatted" => self.formatted_name = optional_text("name.formatted", value)?,
            "name" => {
                if let Value::Object(name) = value {
                    for (part, inner) in name {
                        if part.eq_ignore_ascii_case("formatted") {
                            self.set("name.formatted", inner)?;
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// What the user is shown as when a request replaces the whole resource.
    pub(super) fn display_name_or(&self, user_name: &str) -> String {
        self.display_name
            .clone()
            .or_else(|| self.formatted_name.clone())
            .unwrap_or_else(|| user_name.to_owned())
    }
}

pub(super) fn attribute_path(path: &str) -> String {
    let lower = path.trim().to_ascii_lowercase();
    match lower.strip_prefix(USER_SCHEMA_PREFIX) {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// Entra sends some booleans as the strings "True" and "False".
pub(super) fn boolean(name: &str, value: &Value) -> Result<bool, ScimError> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::bad(
            INVALID_VALUE,
            format!("{name} must be true or false"),
        )),
    }
}

pub(super) fn required_text(name: &str, value: &Value) -> Result<String, ScimError> {
    match value {
        Value::String(text) if !text.trim().is_empty() => Ok(text.clone()),
        _ => Err(ScimError::bad(
            INVALID_VALUE,
            format!("{name} must be a non-empty string"),
        )),
    }
}

pub(super) fn optional_text(name: &str, value: &Value) -> Result<Option<String>, ScimError> {
    match value {
        Value::String(text) => Ok((!text.trim().is_empty()).then(|| text.clone())),
        _ => Err(ScimError::bad(
            INVALID_VALUE,
            format!("{name} must be a string"),
        )),
    }
}

/// Reads a JSON object from the body whatever its declared content type: directories send
/// `application/scim+json` and `application/json` alike.
pub(super) fn json_object(body: &[u8]) -> Result<Map<String, Value>, ScimError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ScimError::bad(
            INVALID_SYNTAX,
            "the body must be a JSON object",
        )),
        Err(error) => Err(ScimError::bad(
            INVALID_SYNTAX,
            format!("the body is not valid JSON: {error}"),
        )),
    }
}

/// A member of a JSON object by case-insensitive name (`Operations`, `op`, `path`, `value`).
pub(super) fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value)
}

#[derive(Debug, PartialEq)]
pub(super) enum UserFilter {
    UserName(String),
    ExternalId(String),
}

/// The filters directories send to match a user before creating one. Anything else is refused
/// rather than ignored: answering an unsupported filter with every user would invite a
/// directory to update the wrong one.
pub(super) fn parse_filter(text: &str) -> Result<UserFilter, ScimError> {
    let invalid = || {
        ScimError::bad(
            INVALID_FILTER,
            "supported filters are userName eq \"…\" and externalId eq \"…\"",
        )
    };
    let (attribute, rest) = text
        .trim()
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    let (operator, literal) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(invalid)?;
    if !operator.eq_ignore_ascii_case("eq") {
        return Err(invalid());
    }
    // A JSON string literal, escapes included; trailing `and …` makes it fail to parse.
    let value: String = serde_json::from_str(literal.trim()).map_err(|_| invalid())?;
    match attribute_path(attribute).as_str() {
        "username" => Ok(UserFilter::UserName(value)),
        "externalid" => Ok(UserFilter::ExternalId(value)),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn filters_are_read_case_insensitively_and_anything_else_is_refused() {
        let accepted = [
            (
                "userName eq \"ada@example.com\"",
                UserFilter::UserName("ada@example.com".into()),
            ),
            (
                "USERNAME EQ \"a\\\"b\"",
                UserFilter::UserName("a\"b".into()),
            ),
            (
                "externalId eq \"oid-1\"",
                UserFilter::ExternalId("oid-1".into()),
            ),
            (
                "urn:ietf:params:scim:schemas:core:2.0:User:userName eq \"x\"",
                UserFilter::UserName("x".into()),
            ),
        ];
        for (text, expected) in accepted {
            assert_eq!(parse_filter(text).unwrap(), expected, "{text}");
        }
        let refused = [
            "userName co \"a\"",
            "userName eq a",
            "displayName eq \"a\"",
            "userName eq \"a\" and externalId eq \"b\"",
            "userName pr",
            "",
        ];
        for text in refused {
            assert!(
                matches!(
                    parse_filter(text),
                    Err(ScimError::BadRequest {
                        scim_type: INVALID_FILTER,
                        ..
                    })
                ),
                "{text}"
            );
        }
    }

    #[test]
    fn booleans_may_arrive_as_text() {
        assert!(!boolean("active", &json!("False")).unwrap());
        assert!(boolean("active", &json!("TRUE")).unwrap());
        assert!(boolean("active", &json!(true)).unwrap());
        assert!(boolean("active", &json!("no")).is_err());
        assert!(boolean("active", &json!(0)).is_err());
    }
}
