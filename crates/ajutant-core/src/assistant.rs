//! Assistants: what a version fixes (instructions, the deployment that answers, grounding,
//! scope, owners) and the rules a definition must meet whoever writes it. The wire form is the
//! server's (`assistants::views`), the stored form the store's; both convert to this.

use crate::policy::AccessScope;

/// Sampling settings passed to the deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Generation {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// Most tokens in one answer (the gateway's cap still applies).
    pub max_tokens: Option<u32>,
}

/// Everything one version of an assistant fixes.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    pub name: String,
    pub description: String,
    /// The system instructions.
    pub instructions: String,
    /// The chat deployment that answers.
    pub deployment: String,
    pub generation: Generation,
    /// Collection ids the answers are grounded in.
    pub collections: Vec<String>,
    /// Passages retrieved per turn (default `chat.default_top_k`).
    pub top_k: Option<usize>,
    /// Who may use it.
    pub access: AccessScope,
    /// Members may edit it and read its feedback.
    pub owner_group: Option<String>,
    /// Suggested first questions.
    pub starters: Vec<String>,
}

/// Most collections one assistant is grounded in.
pub const MAX_COLLECTIONS: usize = 20;

impl Definition {
    /// What is wrong with it on its own, each problem a sentence; empty when nothing is. Whether
    /// its deployment and collections exist (and may be used) is the service's question.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            problems.push("name must be 1 to 200 characters".to_owned());
        }
        if self.instructions.chars().count() > 20_000 {
            problems.push("instructions must be at most 20,000 characters".to_owned());
        }
        if let Some(t) = self.generation.temperature
            && !(0.0..=2.0).contains(&t)
        {
            problems.push("generation.temperature must be between 0 and 2".to_owned());
        }
        if let Some(p) = self.generation.top_p
            && !(0.0..=1.0).contains(&p)
        {
            problems.push("generation.top_p must be between 0 and 1".to_owned());
        }
        if let Some(k) = self.top_k
            && !(1..=50).contains(&k)
        {
            problems.push("top_k must be between 1 and 50".to_owned());
        }
        if let Some(problem) = self.access.problem() {
            problems.push(format!("access: {problem}"));
        }
        if self.starters.len() > 10 || self.starters.iter().any(|s| s.chars().count() > 300) {
            problems.push("at most 10 starters of at most 300 characters".to_owned());
        }
        if self.collections.len() > MAX_COLLECTIONS {
            problems.push(format!("at most {MAX_COLLECTIONS} collections"));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::{Definition, Generation};
    use crate::policy::AccessScope;

    fn definition() -> Definition {
        Definition {
            name: "Helpdesk".to_owned(),
            description: String::new(),
            instructions: String::new(),
            deployment: "offline".to_owned(),
            generation: Generation::default(),
            collections: Vec::new(),
            top_k: None,
            access: AccessScope::Organisation,
            owner_group: None,
            starters: Vec::new(),
        }
    }

    #[test]
    fn a_plain_definition_has_no_problems() {
        assert!(definition().problems().is_empty());
    }

    #[test]
    fn every_problem_is_named_at_once() {
        let mut bad = definition();
        bad.name = " ".to_owned();
        bad.generation.temperature = Some(2.5);
        bad.generation.top_p = Some(-0.1);
        bad.top_k = Some(0);
        bad.access = AccessScope::Groups { groups: vec![] };
        bad.starters = vec!["?".to_owned(); 11];
        bad.collections = vec!["c".to_owned(); 21];
        assert_eq!(
            bad.problems(),
            [
                "name must be 1 to 200 characters",
                "generation.temperature must be between 0 and 2",
                "generation.top_p must be between 0 and 1",
                "top_k must be between 1 and 50",
                "access: a group scope needs at least one group",
                "at most 10 starters of at most 300 characters",
                "at most 20 collections",
            ]
        );
    }
}
