//! What users can say about an answer, and the rule that decides which feedback reaches IT
//! operations at once. All feedback goes to the owners' improvement inbox; feedback flagged
//! serious, or naming a category the organisation treats as serious, also escalates.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Inaccurate,
    Incomplete,
    OutdatedSource,
    Unhelpful,
    /// A factual error that matters (a wrong policy, a wrong figure someone could act on).
    FactualError,
    EthicalConcern,
    HarmfulContent,
    /// The answer cannot be traced to its sources or its reasoning cannot be followed.
    Explainability,
    /// Privacy or data exposure: the answer showed something the user should not see.
    Privacy,
}

impl Category {
    pub const ALL: [Category; 9] = [
        Category::Inaccurate,
        Category::Incomplete,
        Category::OutdatedSource,
        Category::Unhelpful,
        Category::FactualError,
        Category::EthicalConcern,
        Category::HarmfulContent,
        Category::Explainability,
        Category::Privacy,
    ];

    /// The categories that escalate unless the configuration says otherwise.
    pub const SERIOUS: [Category; 5] = [
        Category::FactualError,
        Category::EthicalConcern,
        Category::HarmfulContent,
        Category::Explainability,
        Category::Privacy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inaccurate => "inaccurate",
            Self::Incomplete => "incomplete",
            Self::OutdatedSource => "outdated_source",
            Self::Unhelpful => "unhelpful",
            Self::FactualError => "factual_error",
            Self::EthicalConcern => "ethical_concern",
            Self::HarmfulContent => "harmful_content",
            Self::Explainability => "explainability",
            Self::Privacy => "privacy",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == text)
    }

    /// Every code, for error messages.
    pub fn codes() -> String {
        Self::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[feedback]`: which feedback escalates to IT operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedbackConfig {
    /// Feedback naming any of these categories escalates.
    pub escalate_categories: Vec<Category>,
    /// Whether the user's "serious" flag escalates on its own.
    pub escalate_when_flagged_serious: bool,
}

impl Default for FeedbackConfig {
    fn default() -> Self {
        Self {
            escalate_categories: Category::SERIOUS.to_vec(),
            escalate_when_flagged_serious: true,
        }
    }
}

impl FeedbackConfig {
    /// Whether feedback with this flag and these categories escalates, and why (for the
    /// incident and the audit record).
    pub fn escalation_reasons(&self, serious: bool, categories: &[Category]) -> Vec<String> {
        let mut reasons = Vec::new();
        if serious && self.escalate_when_flagged_serious {
            reasons.push("flagged serious".to_owned());
        }
        reasons.extend(
            categories
                .iter()
                .filter(|c| self.escalate_categories.contains(c))
                .map(|c| format!("category {c}")),
        );
        reasons
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_escalate_the_serious_flag_and_serious_categories_only() {
        let config = FeedbackConfig::default();
        assert!(config.escalation_reasons(false, &[]).is_empty());
        assert!(
            config
                .escalation_reasons(false, &[Category::Inaccurate, Category::Unhelpful])
                .is_empty()
        );
        assert_eq!(
            config.escalation_reasons(true, &[]),
            vec!["flagged serious".to_owned()]
        );
        for category in Category::SERIOUS {
            assert_eq!(
                config.escalation_reasons(false, &[category]),
                vec![format!("category {category}")]
            );
        }
    }

    #[test]
    fn routing_follows_the_configuration() {
        let config = FeedbackConfig {
            escalate_categories: vec![Category::Inaccurate],
            escalate_when_flagged_serious: false,
        };
        assert!(
            config
                .escalation_reasons(true, &[Category::Privacy])
                .is_empty()
        );
        assert_eq!(
            config
                .escalation_reasons(true, &[Category::Inaccurate])
                .len(),
            1
        );
    }

    #[test]
    fn codes_round_trip() {
        for category in Category::ALL {
            assert_eq!(Category::parse(category.as_str()), Some(category));
            let json = serde_json::to_string(&category).unwrap_or_default();
            assert_eq!(json, format!("\"{category}\""));
        }
        assert_eq!(Category::parse("other"), None);
    }
}
