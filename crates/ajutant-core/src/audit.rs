//! Audit records and the hash chain that makes the trail tamper-evident.
//!
//! Each stored record carries `hash = SHA-256(prev_hash || canonical form)`, where the canonical
//! form is a JSON array of every field in a fixed order (see [`canonical_form`]). The first
//! record's `prev_hash` is [`GENESIS_HASH`]. Changing, removing or reordering any record breaks
//! every hash after it, which [`ChainVerifier`] reports at the first bad record.

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

pub use crate::audit_action::AuditAction;

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: ChainHash = ChainHash([0; 32]);

/// Marks the canonical form's layout, so a future layout can be told apart.
const CANONICAL_VERSION: &str = "ajutant.audit.v1";

/// Words that mark a detail key as secret; its value is replaced before the record is stored,
/// whatever a caller passes. Keys are split into words (`client_secret`, `clientSecret` and
/// `client-secret` all contain `secret`), so usage counts such as `max_tokens` or
/// `prompt_tokens` stay readable while `access_token` does not (nor, erring on the safe side,
/// `token_count`).
const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "credentials",
];

/// Word pairs that mark a key as secret (`api_key`, `privateKey`).
const SECRET_PAIRS: &[(&str, &str)] = &[("api", "key"), ("private", "key"), ("session", "id")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorKind {
    User,
    Service,
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::System => "system",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "user" => Some(Self::User),
            "service" => Some(Self::Service),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

/// Who did it: a stable id (the directory's object id, a service identity, or `system`), a
/// display name for people reading the trail, and the kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub display_name: String,
    pub kind: ActorKind,
}

impl Actor {
    /// The platform itself (start-up, shutdown, jobs).
    pub fn system() -> Self {
        Self {
            id: "system".to_owned(),
            display_name: "Ajutant".to_owned(),
            kind: ActorKind::System,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "allowed" => Some(Self::Allowed),
            "denied" => Some(Self::Denied),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Where a request came from, copied onto the records it causes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOrigin {
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub client_addr: Option<String>,
}

/// An event to append. The writer gives it its id, time, position and hashes.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: Actor,
    /// Dotted verb, e.g. `server.started`, `assistant.kill`.
    pub action: String,
    /// What it acted on, e.g. `assistant/0193…`; empty when nothing in particular.
    pub resource: String,
    pub outcome: Outcome,
    pub origin: RequestOrigin,
    details: Value,
}

impl AuditEvent {
    /// An event under `action`, one of the catalogue's ([`AuditAction`]): nothing is recorded
    /// under a name the catalogue does not hold.
    pub fn new(
        actor: Actor,
        action: AuditAction,
        resource: impl Into<String>,
        outcome: Outcome,
    ) -> Self {
        Self {
            actor: Actor {
                id: without_nul(actor.id),
                display_name: without_nul(actor.display_name),
                kind: actor.kind,
            },
            action: action.as_str().to_owned(),
            resource: without_nul(resource.into()),
            outcome,
            origin: RequestOrigin::default(),
            details: Value::Object(serde_json::Map::new()),
        }
    }

    pub fn with_origin(mut self, origin: RequestOrigin) -> Self {
        self.origin = RequestOrigin {
            request_id: origin.request_id.map(without_nul),
            trace_id: origin.trace_id.map(without_nul),
            client_addr: origin.client_addr.map(without_nul),
        };
        self
    }

    /// Attaches details; values under secret-looking keys are redacted on the way in.
    pub fn with_details(mut self, mut details: Value) -> Self {
        redact_secrets(&mut details);
        self.details = details;
        self
    }

    pub fn details(&self) -> &Value {
        &self.details
    }
}

fn redact_secrets(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_key(key) {
                    *inner = Value::String(crate::secret::REDACTED.to_owned());
                } else {
                    redact_secrets(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secrets),
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    let words = key_words(key);
    words.iter().any(|w| SECRET_WORDS.contains(&w.as_str()))
        || words
            .windows(2)
            .any(|pair| SECRET_PAIRS.contains(&(pair[0].as_str(), pair[1].as_str())))
}

/// `clientSecret`, `client_secret`, `client-secret` and `client.secret` all give
/// `["client", "secret"]`.
fn key_words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in key.chars() {
        let boundary = !c.is_alphanumeric() || (c.is_uppercase() && previous_lower);
        if boundary && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        if c.is_alphanumeric() {
            word.extend(c.to_lowercase());
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// NUL cannot be stored in a PostgreSQL text column; one caller's NUL must not fail the batch
/// it shares with others, so it is replaced on the way in.
fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// A SHA-256 chain hash, stored and printed as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Option<Self> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }
}

impl fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Display for ChainHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A record as stored: the event plus its identity, time, chain position and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, 1-based and without gaps.
    pub seq: i64,
    pub id: Uuid,
    pub occurred_at: OffsetDateTime,
    pub actor: Actor,
    pub action: String,
    pub resource: String,
    pub outcome: Outcome,
    pub origin: RequestOrigin,
    /// Details as the exact JSON text that was hashed.
    pub details: String,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

impl AuditRecord {
    /// Seals `event` as the record after `prev` (`None` for the first record).
    pub fn seal(
        event: &AuditEvent,
        id: Uuid,
        occurred_at: OffsetDateTime,
        prev: Option<(i64, ChainHash)>,
    ) -> Self {
        let (prev_seq, prev_hash) = prev.unwrap_or((0, GENESIS_HASH));
        let mut record = Self {
            seq: prev_seq + 1,
            id,
            occurred_at: normalise_time(occurred_at),
            actor: event.actor.clone(),
            action: event.action.clone(),
            resource: event.resource.clone(),
            outcome: event.outcome,
            origin: event.origin.clone(),
            details: event.details.to_string(),
            prev_hash,
            hash: GENESIS_HASH,
        };
        record.hash = record.expected_hash();
        record
    }

    /// What `hash` must be, given `prev_hash` and the other fields.
    pub fn expected_hash(&self) -> ChainHash {
        let mut hasher = Sha256::new();
        hasher.update(self.prev_hash.0);
        hasher.update(canonical_form(self).as_bytes());
        ChainHash(hasher.finalize().into())
    }
}

/// Timestamps are kept to the microsecond in UTC, the precision both databases store, so the
/// time read back is the time that was hashed.
pub fn normalise_time(time: OffsetDateTime) -> OffsetDateTime {
    let time = time.to_offset(time::UtcOffset::UTC);
    let micros = time.microsecond();
    time.replace_microsecond(micros).unwrap_or(time)
}

/// The exact bytes hashed for a record (besides `prev_hash`).
pub fn canonical_form(record: &AuditRecord) -> String {
    let time = record
        .occurred_at
        .format(&Rfc3339)
        .unwrap_or_else(|_| record.occurred_at.unix_timestamp_nanos().to_string());
    serde_json::json!([
        CANONICAL_VERSION,
        record.seq,
        record.id.to_string(),
        time,
        record.actor.id,
        record.actor.display_name,
        record.actor.kind.as_str(),
        record.action,
        record.resource,
        record.outcome.as_str(),
        record.origin.request_id,
        record.origin.trace_id,
        record.origin.client_addr,
        record.details,
    ])
    .to_string()
}

/// Why the chain is broken at a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreakReason {
    #[error("expected record number {expected}, found {found}: records are missing or reordered")]
    Gap { expected: i64, found: i64 },
    #[error("prev_hash does not match the previous record's hash")]
    Unlinked,
    #[error("hash does not match the record's contents: the record was altered")]
    Altered,
    #[error("the record cannot be read: {0}")]
    Unreadable(String),
    #[error(
        "its hash differs from the signed checkpoint of this position: a record up to here was \
         rewritten and the chain sealed again"
    )]
    Resealed,
    #[error("a checkpoint of this position is not signed with the checkpoint key: it was forged")]
    ForgedCheckpoint,
    #[error("the record is signed in a checkpoint but no longer exists: the chain was cut")]
    Cut,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at record {seq} (id {id}): {reason}")]
pub struct ChainBreak {
    pub seq: i64,
    pub id: Uuid,
    pub reason: ChainBreakReason,
}

/// Walks records in chain order and stops at the first that does not fit.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    last_seq: i64,
    last_hash: ChainHash,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            last_seq: 0,
            last_hash: GENESIS_HASH,
        }
    }
}

impl ChainVerifier {
    pub fn check(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        let fail = |reason| ChainBreak {
            seq: record.seq,
            id: record.id,
            reason,
        };
        if record.seq != self.last_seq + 1 {
            return Err(fail(ChainBreakReason::Gap {
                expected: self.last_seq + 1,
                found: record.seq,
            }));
        }
        if record.prev_hash != self.last_hash {
            return Err(fail(ChainBreakReason::Unlinked));
        }
        if record.expected_hash() != record.hash {
            return Err(fail(ChainBreakReason::Altered));
        }
        self.last_seq = record.seq;
        self.last_hash = record.hash;
        Ok(())
    }

    /// Records checked so far, and the hash at the head of what was checked.
    pub fn head(&self) -> (i64, ChainHash) {
        (self.last_seq, self.last_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(n: usize) -> AuditEvent {
        AuditEvent::new(
            Actor::system(),
            AuditAction::ServerStarted,
            format!("thing/{n}"),
            Outcome::Allowed,
        )
        .with_details(json!({ "n": n }))
    }

    fn chain(len: usize) -> Vec<AuditRecord> {
        let mut records: Vec<AuditRecord> = Vec::new();
        for n in 0..len {
            let prev = records.last().map(|r| (r.seq, r.hash));
            records.push(AuditRecord::seal(
                &event(n),
                Uuid::now_v7(),
                OffsetDateTime::now_utc(),
                prev,
            ));
        }
        records
    }

    fn verify(records: &[AuditRecord]) -> Result<(), ChainBreak> {
        let mut verifier = ChainVerifier::default();
        records.iter().try_for_each(|r| verifier.check(r))
    }

    #[test]
    fn an_untouched_chain_verifies() {
        assert_eq!(verify(&chain(5)), Ok(()));
    }

    #[test]
    fn an_altered_field_is_named_at_its_record() {
        let mut records = chain(5);
        records[2].resource = "thing/other".to_owned();
        let err = verify(&records).unwrap_err();
        assert_eq!((err.seq, err.reason), (3, ChainBreakReason::Altered));
    }

    #[test]
    fn a_rehashed_alteration_breaks_the_next_link() {
        let mut records = chain(5);
        records[1].outcome = Outcome::Denied;
        records[1].hash = records[1].expected_hash();
        let err = verify(&records).unwrap_err();
        assert_eq!((err.seq, err.reason), (3, ChainBreakReason::Unlinked));
    }

    #[test]
    fn a_removed_record_is_a_gap() {
        let mut records = chain(5);
        records.remove(1);
        let err = verify(&records).unwrap_err();
        assert_eq!(
            (err.seq, err.reason),
            (
                3,
                ChainBreakReason::Gap {
                    expected: 2,
                    found: 3
                }
            )
        );
    }

    #[test]
    fn secrets_in_details_are_redacted_at_any_depth() {
        let event = event(0).with_details(json!({
            "user": "ada",
            "Authorization": "Bearer abc",
            "nested": [{ "client_secret": "xyz", "api-key": "k", "clientSecret": "cs" }],
            "refreshToken": "rt",
            "max_tokens": 512,
            "token_count": 7,
            "keyboard": "qwerty",
        }));
        let text = event.details().to_string();
        for secret in ["Bearer abc", "xyz", "\"k\"", "\"cs\"", "\"rt\""] {
            assert!(!text.contains(secret), "{text}");
        }
        for kept in ["ada", "512", "qwerty"] {
            assert!(text.contains(kept), "{text}");
        }
        assert_eq!(event.details()["token_count"], json!("[redacted]"));
    }

    #[test]
    fn nul_characters_are_replaced_in_every_text_field() {
        let event = AuditEvent::new(
            Actor {
                id: "a\0b".to_owned(),
                display_name: "n\0".to_owned(),
                kind: ActorKind::User,
            },
            AuditAction::SignIn,
            "res\0",
            Outcome::Allowed,
        )
        .with_origin(RequestOrigin {
            request_id: Some("r\0".to_owned()),
            ..RequestOrigin::default()
        });
        // The action comes from the catalogue, so it cannot carry one.
        let texts = [&event.actor.id, &event.actor.display_name, &event.resource];
        assert!(
            texts
                .iter()
                .all(|t| !t.contains('\0') && t.contains('\u{FFFD}'))
        );
        assert_eq!(event.origin.request_id.as_deref(), Some("r\u{FFFD}"));
    }

    #[test]
    fn time_is_kept_to_the_microsecond_in_utc() {
        let time = time::macros::datetime!(2026-01-02 03:04:05.123456789 +02:00);
        let normalised = normalise_time(time);
        assert_eq!(normalised.offset(), time::UtcOffset::UTC);
        assert_eq!(normalised.nanosecond(), 123_456_000);
        assert_eq!(normalised, time - time::Duration::nanoseconds(789));
    }
}
