//! Ids as types. Every id arrives as text (a path segment, a JSON field, a column) and is parsed
//! once, where it arrives: a text that is not an id of that kind names nothing, so the edge
//! answers "not found" without asking the database, and no function can be handed a collection's
//! id where a conversation's was meant.

use std::fmt;

/// A text that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {kind} id")]
pub struct InvalidId {
    pub kind: &'static str,
    pub value: String,
}

/// Declares a UUID-shaped id (new ones are UUIDv7, time-ordered), held in its canonical
/// lower-case hyphenated spelling.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// A fresh id.
            pub fn new() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                uuid::Uuid::parse_str(text)
                    .map(|uuid| Self(uuid.hyphenated().to_string()))
                    .map_err(|_| InvalidId { kind: $kind, value: text.to_owned() })
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

uuid_id!(
    /// A conversation (one principal's chat with one assistant).
    ConversationId,
    "conversation"
);
uuid_id!(
    /// A message in a conversation: a question or an answer.
    MessageId,
    "message"
);
uuid_id!(
    /// A collection of documents.
    CollectionId,
    "collection"
);
uuid_id!(
    /// A document in a collection.
    DocumentId,
    "document"
);
uuid_id!(
    /// An ingestion job (an upload or a sync).
    JobId,
    "ingestion job"
);
uuid_id!(
    /// An incident opened by escalated feedback.
    IncidentId,
    "incident"
);

/// An assistant's id: a slug chosen by the admin who creates it (`hr-helpdesk`), 2 to 64
/// lower-case letters, digits and dashes, not starting or ending with a dash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssistantId(String);

impl AssistantId {
    pub const RULE: &'static str = "id must be 2 to 64 lower-case letters, digits and dashes";

    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let ok = (2..=64).contains(&text.len())
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !text.starts_with('-')
            && !text.ends_with('-');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidId {
                kind: "assistant",
                value: text.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AssistantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AssistantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::{AssistantId, ConversationId};

    #[test]
    fn uuid_ids_are_canonical_and_refuse_other_text() {
        let id = ConversationId::parse("0193A2B4-1C2D-7E3F-8A9B-0C1D2E3F4A5B").unwrap();
        assert_eq!(id.as_str(), "0193a2b4-1c2d-7e3f-8a9b-0c1d2e3f4a5b");
        for bad in [
            "",
            "x",
            "../etc/passwd",
            "0193a2b4-1c2d-7e3f-8a9b-0c1d2e3f4a5\0",
            "1 OR 1=1",
        ] {
            assert!(ConversationId::parse(bad).is_err(), "{bad:?}");
        }
        assert_ne!(ConversationId::new(), ConversationId::new());
    }

    #[test]
    fn assistant_ids_are_slugs() {
        for good in ["hr", "hr-helpdesk", "a1-b2"] {
            assert!(AssistantId::parse(good).is_ok(), "{good}");
        }
        let too_long = "a".repeat(65);
        for bad in [
            "h",
            "-hr",
            "hr-",
            "HR",
            "hr_desk",
            "hr desk",
            "hr\0",
            too_long.as_str(),
        ] {
            assert!(AssistantId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
