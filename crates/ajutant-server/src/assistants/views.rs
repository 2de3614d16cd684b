//! The assistants API's wire shapes. The request body (`Definition`) refuses unknown fields, so
//! a misspelt setting is an error rather than silently ignored; it converts to and from
//! `ajutant_core::assistant::Definition`, which is what the service and the store work with.

use ajutant_core::assistant;
use ajutant_core::policy::AccessScope;
use ajutant_store::{Assistant, AssistantVersion};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Sampling settings passed to the deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Generation {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Most tokens in one answer (the gateway's cap still applies).
    pub max_tokens: Option<u32>,
}

/// Everything a version fixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The system instructions.
    #[serde(default)]
    pub instructions: String,
    /// The chat deployment that answers.
    pub deployment: String,
    #[serde(default)]
    pub generation: Generation,
    /// Collection ids the answers are grounded in.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Passages retrieved per turn (default `chat.default_top_k`).
    #[serde(default)]
    pub top_k: Option<usize>,
    /// Who may use it.
    #[schema(value_type = Object)]
    pub access: AccessScope,
    /// Members may edit it and read its feedback.
    #[serde(default)]
    pub owner_group: Option<String>,
    /// Suggested first questions.
    #[serde(default)]
    pub starters: Vec<String>,
}

impl From<Definition> for assistant::Definition {
    fn from(body: Definition) -> Self {
        Self {
            name: body.name,
            description: body.description,
            instructions: body.instructions,
            deployment: body.deployment,
            generation: assistant::Generation {
                temperature: body.generation.temperature,
                top_p: body.generation.top_p,
                max_tokens: body.generation.max_tokens,
            },
            collections: body.collections,
            top_k: body.top_k,
            access: body.access,
            owner_group: body.owner_group,
            starters: body.starters,
        }
    }
}

impl From<assistant::Definition> for Definition {
    fn from(definition: assistant::Definition) -> Self {
        Self {
            name: definition.name,
            description: definition.description,
            instructions: definition.instructions,
            deployment: definition.deployment,
            generation: Generation {
                temperature: definition.generation.temperature,
                top_p: definition.generation.top_p,
                max_tokens: definition.generation.max_tokens,
            },
            collections: definition.collections,
            top_k: definition.top_k,
            access: definition.access,
            owner_group: definition.owner_group,
            starters: definition.starters,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssistantView {
    pub id: String,
    pub version: i64,
    /// `active`, or `killed` (switched off by its kill switch).
    pub status: String,
    #[serde(flatten)]
    pub definition: Definition,
    /// Whether the caller may edit it.
    pub can_edit: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub updated_at: OffsetDateTime,
    pub updated_by: String,
}

impl AssistantView {
    pub(crate) fn new(assistant: Assistant, killed: bool, can_edit: bool) -> Self {
        Self {
            id: assistant.id,
            version: assistant.current_version,
            status: if killed { "killed" } else { "active" }.to_owned(),
            definition: assistant.definition.into(),
            can_edit,
            updated_at: assistant.updated_at,
            updated_by: assistant.updated_by,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CreateBody {
    /// A slug: lower-case letters, digits and dashes, e.g. `hr-helpdesk`.
    pub id: String,
    #[serde(flatten)]
    pub definition: Definition,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct EditBody {
    /// The version the edit starts from; when given and no longer current, 409.
    pub base_version: Option<i64>,
    #[serde(flatten)]
    pub definition: Definition,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub version: i64,
    pub definition: Definition,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub created_at: OffsetDateTime,
}

impl From<AssistantVersion> for VersionView {
    fn from(version: AssistantVersion) -> Self {
        Self {
            version: version.version,
            definition: version.definition.into(),
            created_by: version.created_by,
            created_at: version.created_at,
        }
    }
}
