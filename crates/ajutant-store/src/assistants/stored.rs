//! How an assistant version's definition is kept: JSON in `assistant_versions.definition`,
//! versioned by `format` and read tolerantly (missing fields take their defaults, unknown ones
//! are ignored), because versions are immutable and must stay readable by every later release.
//! Format 1 is the shape the API body had when versions were first written, so rows written
//! before this form existed (without `format`) read as format 1.

use ajutant_core::assistant::{Definition, Generation};
use ajutant_core::policy::AccessScope;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The newest format this release writes and reads.
const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize)]
struct StoredDefinition {
    #[serde(default = "first_format")]
    format: u32,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    instructions: String,
    deployment: String,
    #[serde(default)]
    generation: StoredGeneration,
    #[serde(default)]
    collections: Vec<String>,
    #[serde(default)]
    top_k: Option<usize>,
    access: AccessScope,
    #[serde(default)]
    owner_group: Option<String>,
    #[serde(default)]
    starters: Vec<String>,
}

#[derive(Default, Serialize, Deserialize)]
struct StoredGeneration {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    max_tokens: Option<u32>,
}

fn first_format() -> u32 {
    1
}

pub(super) fn write(definition: &Definition) -> Result<String, StoreError> {
    let stored = StoredDefinition {
        format: FORMAT,
        name: definition.name.clone(),
        description: definition.description.clone(),
        instructions: definition.instructions.clone(),
        deployment: definition.deployment.clone(),
        generation: StoredGeneration {
            temperature: definition.generation.temperature,
            top_p: definition.generation.top_p,
            max_tokens: definition.generation.max_tokens,
        },
        collections: definition.collections.clone(),
        top_k: definition.top_k,
        access: definition.access.clone(),
        owner_group: definition.owner_group.clone(),
        starters: definition.starters.clone(),
    };
    serde_json::to_string(&stored).map_err(|e| StoreError::Invalid {
        what: format!("an assistant definition cannot be written: {e}"),
    })
}

pub(super) fn read(assistant: &str, version: i64, text: &str) -> Result<Definition, StoreError> {
    let invalid = |what: String| StoreError::Invalid {
        what: format!("assistant {assistant} version {version}: {what}"),
    };
    let stored: StoredDefinition =
        serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
    if stored.format > FORMAT {
        return Err(invalid(format!(
            "written in format {} by a newer release (this one reads up to {FORMAT})",
            stored.format
        )));
    }
    Ok(Definition {
        name: stored.name,
        description: stored.description,
        instructions: stored.instructions,
        deployment: stored.deployment,
        generation: Generation {
            temperature: stored.generation.temperature,
            top_p: stored.generation.top_p,
            max_tokens: stored.generation.max_tokens,
        },
        collections: stored.collections,
        top_k: stored.top_k,
        access: stored.access,
        owner_group: stored.owner_group,
        starters: stored.starters,
    })
}

#[cfg(test)]
mod tests {
    use super::{read, write};

    /// A version as the first releases wrote it: the API body itself, without `format`.
    const WRITTEN_BEFORE_FORMATS: &str = r#"{"name":"Fjordlight helpdesk","description":"d","instructions":"i","deployment":"offline","generation":{"temperature":null,"top_p":null,"max_tokens":null},"collections":["c1"],"top_k":4,"access":{"scope":"groups","groups":["g1"]},"owner_group":"g2","starters":["s"]}"#;

    #[test]
    fn versions_written_before_formats_read_as_format_one() {
        let definition = read("helpdesk", 1, WRITTEN_BEFORE_FORMATS).unwrap();
        assert_eq!(definition.name, "Fjordlight helpdesk");
        assert_eq!(definition.top_k, Some(4));
        assert_eq!(definition.owner_group.as_deref(), Some("g2"));
        assert_eq!(
            read("helpdesk", 1, &write(&definition).unwrap()).unwrap(),
            definition
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_tolerated_but_a_newer_format_is_refused() {
        let sparse = r#"{"name":"n","deployment":"offline","access":{"scope":"organisation"},"tools":["later"]}"#;
        let definition = read("a", 2, sparse).unwrap();
        assert!(definition.collections.is_empty() && definition.starters.is_empty());
        let newer =
            r#"{"format":2,"name":"n","deployment":"offline","access":{"scope":"organisation"}}"#;
        let error = read("a", 3, newer).unwrap_err().to_string();
        assert!(
            error.contains("assistant a version 3") && error.contains("newer release"),
            "{error}"
        );
    }
}
