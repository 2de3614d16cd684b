//! `[notifications]`: where escalations to IT operations are sent. When a user flags an answer as
//! serious an incident is opened and a notification goes to every webhook listed here, retried
//! with exponential backoff until `max_attempts`, then dead-lettered.

use std::collections::HashSet;
use std::ops::RangeInclusive;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::secret::SecretString;

/// Decoded key sizes a Standard Webhooks secret may have (the specification's 192 to 512 bits).
pub const WEBHOOK_KEY_BYTES: RangeInclusive<usize> = 24..=64;

/// What a Standard Webhooks secret starts with.
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";

/// `[notifications]`: where escalations to IT operations are sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// `[[notifications.webhooks]]`: every target is sent every notification. Empty: none are
    /// sent (incidents are still opened).
    pub webhooks: Vec<WebhookConfig>,
    /// Attempts per target before a notification is dead-lettered.
    pub max_attempts: u32,
    /// The first retry waits this many milliseconds; each later one twice as long as the last.
    pub retry_base_ms: u64,
    /// The longest a retry waits, however many attempts came before.
    pub retry_max_ms: u64,
    /// One attempt (connect, send, answer) may take this long before it counts as failed.
    pub timeout_secs: u64,
    /// Senders on this instance (each sends one notification at a time). 0: this instance
    /// only writes notifications and leaves sending to the others.
    pub senders: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            webhooks: Vec::new(),
            max_attempts: 8,
            retry_base_ms: 5_000,
            retry_max_ms: 900_000,
            timeout_secs: 10,
            senders: 1,
        }
    }
}

/// The shapes a notification can be sent in. A closed set: each has its own wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookKind {
    /// A JSON event signed as Standard Webhooks, for ticketing systems and own receivers.
    Generic,
    /// A Microsoft Teams incoming webhook or Workflows trigger: an Adaptive Card.
    Teams,
    /// A Slack incoming webhook: Block Kit.
    Slack,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Names the target in logs, metrics and the outbox; unique, 1 to 64 of `A-Z a-z 0-9 _ . -`.
    pub name: String,
    pub kind: WebhookKind,
    /// Where notifications are POSTed. A secret: Slack and Teams URLs carry their credential.
    pub url: SecretString,
    /// `generic` only, and required there: the signing secret, `whsec_` and the base64 of 24 to
    /// 64 random bytes.
    #[serde(default)]
    pub secret: Option<SecretString>,
    /// Include the reporter's free-text comment. Off by default because the message may leave
    /// the tenant (a Slack workspace, say) and the comment may quote what was flagged.
    #[serde(default)]
    pub include_comment: bool,
}

impl NotificationsConfig {
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.senders > 8 {
            problems.push("notifications.senders must be 0 to 8".to_owned());
        }
        if !(1..=50).contains(&self.max_attempts) {
            problems.push("notifications.max_attempts must be between 1 and 50".to_owned());
        }
        if self.retry_base_ms == 0 {
            problems.push("notifications.retry_base_ms must be at least 1".to_owned());
        }
        if self.retry_max_ms < self.retry_base_ms {
            problems.push(
                "notifications.retry_max_ms must be at least notifications.retry_base_ms"
                    .to_owned(),
            );
        }
        if !(1..=120).contains(&self.timeout_secs) {
            problems.push("notifications.timeout_secs must be between 1 and 120".to_owned());
        }
        let mut seen = HashSet::new();
        for webhook in &self.webhooks {
            if !seen.insert(webhook.name.as_str()) {
                problems.push(format!(
                    "notifications.webhooks: the name {:?} is used twice",
                    webhook.name
                ));
            }
            problems.extend(webhook.problems());
        }
        problems
    }

    /// Production sends only over TLS: a generic target's body names people and incidents, and
    /// a Slack or Teams URL is itself the credential.
    pub(crate) fn insecure_for_production(&self) -> Vec<String> {
        self.webhooks
            .iter()
            .filter(|webhook| {
                Url::parse(webhook.url.expose()).is_ok_and(|url| url.scheme() != "https")
            })
            .map(|webhook| {
                format!(
                    "mode = \"production\" needs an https:// url for notifications.webhooks {:?}",
                    webhook.name
                )
            })
            .collect()
    }
}

impl WebhookConfig {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let valid_name = (1..=64).contains(&self.name.len())
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid_name {
            problems.push(format!(
                "notifications.webhooks: the name {:?} must be 1 to 64 letters, digits, `_`, `.` or `-`",
                self.name
            ));
        }
        let at = format!("notifications.webhooks {:?}", self.name);
        // The URL itself is never quoted: for Slack and Teams it is the secret.
        match Url::parse(self.url.expose()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => {}
            _ => problems.push(format!("{at}: url must be an http:// or https:// URL")),
        }
        match (self.kind, &self.secret) {
            (WebhookKind::Generic, None) => problems.push(format!(
                "{at}: a generic webhook needs a signing secret (whsec_ and base64)"
            )),
            (WebhookKind::Generic, Some(secret))
                if !is_standard_webhook_secret(secret.expose()) =>
            {
                problems.push(format!(
                    "{at}: secret must be whsec_ followed by the base64 of 24 to 64 bytes"
                ));
            }
            (WebhookKind::Teams | WebhookKind::Slack, Some(_)) => problems.push(format!(
                "{at}: secret is only for generic webhooks (Slack and Teams cannot check it)"
            )),
            _ => {}
        }
        problems
    }
}

/// Whether `secret` is `whsec_` and canonical standard base64 (padded, as base64's `STANDARD`
/// engine decodes it) of a key within [`WEBHOOK_KEY_BYTES`]. Core has no base64 crate, so this
/// only measures; the server's signer decodes, and a test there keeps the two in agreement.
pub fn is_standard_webhook_secret(secret: &str) -> bool {
    secret
        .strip_prefix(WEBHOOK_SECRET_PREFIX)
        .and_then(decoded_len)
        .is_some_and(|len| WEBHOOK_KEY_BYTES.contains(&len))
}

/// The length `text` decodes to, if it is canonical padded standard base64.
fn decoded_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|&&b| b == b'=').count();
    if padding > 2 {
        return None;
    }
    let data = &bytes[..bytes.len() - padding];
    let mut last = 0;
    for &byte in data {
        last = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
    }
    // Canonical means the bits past the last whole byte are zero; the decoder refuses others.
    let spare_bits = match padding {
        0 => 0,
        1 => 0b11,
        _ => 0b1111,
    };
    if last & spare_bits != 0 {
        return None;
    }
    Some(data.len() * 3 / 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's example secret (24 bytes).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn webhook(name: &str, kind: WebhookKind, url: &str, secret: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            name: name.to_owned(),
            kind,
            url: SecretString::new(url),
            secret: secret.map(SecretString::new),
            include_comment: false,
        }
    }

    fn with(webhooks: Vec<WebhookConfig>) -> NotificationsConfig {
        NotificationsConfig {
            webhooks,
            ..NotificationsConfig::default()
        }
    }

    fn joined(problems: &[String]) -> String {
        problems.join("\n")
    }

    #[test]
    fn the_defaults_send_nothing_and_are_accepted() {
        let config = NotificationsConfig::default();
        assert!(config.webhooks.is_empty());
        assert_eq!(config.max_attempts, 8);
        assert_eq!(config.retry_base_ms, 5_000);
        assert_eq!(config.retry_max_ms, 900_000);
        assert_eq!(config.timeout_secs, 10);
        assert!(config.problems().is_empty());
        assert!(config.insecure_for_production().is_empty());
    }

    #[test]
    fn one_webhook_of_each_kind_is_accepted() {
        let config = with(vec![
            webhook(
                "itsm",
                WebhookKind::Generic,
                "https://itsm.example/h",
                Some(SPEC_SECRET),
            ),
            webhook(
                "ops-teams",
                WebhookKind::Teams,
                "https://x.logic.azure.com/w",
                None,
            ),
            webhook(
                "ops.slack_1",
                WebhookKind::Slack,
                "https://hooks.slack.com/services/T/B/X",
                None,
            ),
        ]);
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        assert!(config.insecure_for_production().is_empty());
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        let config = NotificationsConfig {
            max_attempts: 0,
            retry_base_ms: 0,
            timeout_secs: 121,
            ..NotificationsConfig::default()
        };
        let message = joined(&config.problems());
        assert!(message.contains("max_attempts"), "{message}");
        assert!(
            message.contains("retry_base_ms must be at least 1"),
            "{message}"
        );
        assert!(message.contains("timeout_secs"), "{message}");
        let inverted = NotificationsConfig {
            retry_base_ms: 10_000,
            retry_max_ms: 1_000,
            ..NotificationsConfig::default()
        };
        assert!(joined(&inverted.problems()).contains("retry_max_ms"));
    }

    #[test]
    fn a_name_used_twice_or_badly_formed_is_refused() {
        let url = "https://hooks.slack.com/services/T/B/X";
        let config = with(vec![
            webhook("ops", WebhookKind::Slack, url, None),
            webhook("ops", WebhookKind::Slack, url, None),
            webhook("", WebhookKind::Slack, url, None),
            webhook("has space", WebhookKind::Slack, url, None),
            webhook(&"n".repeat(65), WebhookKind::Slack, url, None),
        ]);
        let problems = config.problems();
        let message = joined(&problems);
        assert!(message.contains("\"ops\" is used twice"), "{message}");
        assert_eq!(
            problems.iter().filter(|p| p.contains("1 to 64")).count(),
            3,
            "{message}"
        );
    }

    #[test]
    fn a_generic_webhook_needs_a_well_formed_secret() {
        let url = "https://itsm.example/h";
        let missing = with(vec![webhook("a", WebhookKind::Generic, url, None)]);
        assert!(joined(&missing.problems()).contains("needs a signing secret"));
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",        // no prefix
            "whsec_",                                  // empty
            "whsec_c2hvcnQ=",                          // 5 bytes
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",   // not a multiple of 4
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa-w",  // URL-safe alphabet
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=", // stray padding
        ] {
            let config = with(vec![webhook("a", WebhookKind::Generic, url, Some(bad))]);
            let message = joined(&config.problems());
            assert!(
                message.contains("secret must be whsec_"),
                "{bad}: {message}"
            );
            let key = bad.trim_start_matches(WEBHOOK_SECRET_PREFIX);
            assert!(
                key.is_empty() || !message.contains(key),
                "the secret is never quoted"
            );
        }
    }

    #[test]
    fn the_secret_check_measures_the_decoded_key() {
        assert!(is_standard_webhook_secret(SPEC_SECRET));
        // 32 bytes: one padding character.
        let thirty_two = format!("whsec_{}=", "A".repeat(43));
        assert!(is_standard_webhook_secret(&thirty_two));
        // 23 bytes (too short), 64 (the most), 65 (too long).
        assert!(!is_standard_webhook_secret(&format!(
            "whsec_{}",
            "A".repeat(31)
        )));
        assert!(is_standard_webhook_secret(&format!(
            "whsec_{}==",
            "A".repeat(86)
        )));
        assert!(!is_standard_webhook_secret(&format!(
            "whsec_{}=",
            "A".repeat(87)
        )));
        // Non-zero bits after the last byte are not canonical base64.
        assert!(!is_standard_webhook_secret(&format!(
            "whsec_{}B=",
            "A".repeat(42)
        )));
    }

    #[test]
    fn slack_and_teams_refuse_a_secret() {
        let config = with(vec![webhook(
            "s",
            WebhookKind::Slack,
            "https://hooks.slack.com/services/T/B/X",
            Some(SPEC_SECRET),
        )]);
        assert!(joined(&config.problems()).contains("only for generic"));
    }

    #[test]
    fn the_url_must_be_http_and_is_never_quoted() {
        for bad in [
            "not a url",
            "ftp://files.example/x",
            "mailto:ops@example.org",
        ] {
            let config = with(vec![webhook("t", WebhookKind::Teams, bad, None)]);
            let message = joined(&config.problems());
            assert!(message.contains("url must be"), "{bad}: {message}");
            assert!(!message.contains(bad), "{message}");
        }
    }

    #[test]
    fn webhooks_are_read_from_toml_and_checked_with_the_rest() {
        use crate::config::{Config, ConfigError, Mode};
        use figment::Figment;
        use figment::providers::{Format, Toml};

        let toml = "[notifications]\nmax_attempts = 3\n\
            [[notifications.webhooks]]\nname = \"ops\"\nkind = \"teams\"\n\
            url = \"http://teams.internal/hook\"\ninclude_comment = true\n";
        let mut config: Config = Figment::from(Toml::string(toml)).extract().unwrap();
        let webhook = &config.notifications.webhooks[0];
        assert_eq!(webhook.kind, WebhookKind::Teams);
        assert!(webhook.include_comment);
        assert!(webhook.secret.is_none());
        assert_eq!(config.notifications.max_attempts, 3);
        config.check().unwrap();
        config.mode = Mode::Production;
        let Err(ConfigError::Refused(problems)) = config.check() else {
            panic!("production accepted a plain http webhook");
        };
        assert!(
            problems
                .iter()
                .any(|p| p.contains("notifications.webhooks \"ops\"")),
            "{problems:?}"
        );
    }

    #[test]
    fn production_refuses_a_plain_http_url() {
        let config = with(vec![
            webhook(
                "plain",
                WebhookKind::Slack,
                "http://hooks.internal/services/T/B/X",
                None,
            ),
            webhook(
                "tls",
                WebhookKind::Slack,
                "https://hooks.slack.com/services/T/B/X",
                None,
            ),
        ]);
        assert!(config.problems().is_empty());
        let problems = config.insecure_for_production();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("\"plain\""), "{problems:?}");
        assert!(!problems[0].contains("hooks.internal"), "{problems:?}");
    }
}
