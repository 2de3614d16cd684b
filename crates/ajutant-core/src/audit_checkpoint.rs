//! Signed checkpoints of the audit chain. The hash chain alone shows that records fit together,
//! not that they are the records that were written: someone able to write the database can
//! rewrite a record and recompute every later hash, and the chain verifies again. A checkpoint
//! is a chain position and its hash, signed (HMAC-SHA256) with a key the database does not hold;
//! without the key a rewritten chain cannot be signed again, so verification with the key finds
//! the first signed position whose record no longer has the signed hash, and a signed position
//! that no longer exists (a cut tail). Retention will purge behind a checkpoint and keep it.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::audit::ChainHash;

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// What the signature covers, so a MAC made for something else never passes for a checkpoint.
const DOMAIN: &str = "ajutant-audit-checkpoint/v1";

/// The key checkpoints are signed with; never printed.
#[derive(Clone)]
pub struct CheckpointKey(Vec<u8>);

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckpointKey(<redacted>)")
    }
}

impl CheckpointKey {
    /// A key written as hex (what `ajutant` writes into a key file), at least
    /// [`MIN_KEY_BYTES`] long.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes =
            hex::decode(text.trim()).map_err(|e| format!("the checkpoint key is not hex: {e}"))?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the checkpoint key must be at least {MIN_KEY_BYTES} bytes ({} hex characters)",
                MIN_KEY_BYTES * 2
            ));
        }
        Ok(Self(bytes))
    }

    /// The MAC over one checkpoint's fields. HMAC takes keys of any length, so `None` (a key
    /// it refused) cannot happen; callers treat it as "cannot sign" / "does not verify".
    fn mac(&self, seq: i64, hash: &ChainHash, signed_at: i64) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).ok()?;
        mac.update(format!("{DOMAIN}\n{seq}\n{}\n{signed_at}", hash.to_hex()).as_bytes());
        Some(mac)
    }

    /// Signs chain position `seq` with hash `hash`, at `signed_at` (Unix seconds).
    pub fn sign(&self, seq: i64, hash: ChainHash, signed_at: i64) -> Option<Checkpoint> {
        let signature = hex::encode(self.mac(seq, &hash, signed_at)?.finalize().into_bytes());
        Some(Checkpoint {
            seq,
            hash,
            signed_at,
            signature,
        })
    }

    /// Whether `checkpoint` was signed with this key (compared in constant time).
    pub fn verifies(&self, checkpoint: &Checkpoint) -> bool {
        let Ok(signature) = hex::decode(&checkpoint.signature) else {
            return false;
        };
        self.mac(checkpoint.seq, &checkpoint.hash, checkpoint.signed_at)
            .is_some_and(|mac| mac.verify_slice(&signature).is_ok())
    }
}

/// A signed chain position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: ChainHash,
    /// Unix seconds.
    pub signed_at: i64,
    /// HMAC-SHA256, hex.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn a_checkpoint_verifies_only_with_its_key_and_its_contents() {
        let key = CheckpointKey::from_hex(&"ab".repeat(32)).unwrap();
        let other = CheckpointKey::from_hex(&"cd".repeat(32)).unwrap();
        let checkpoint = key.sign(21, ChainHash([7; 32]), 1_700_000_000).unwrap();
        assert!(key.verifies(&checkpoint));
        assert!(!other.verifies(&checkpoint));
        for forged in [
            Checkpoint {
                seq: 22,
                ..checkpoint.clone()
            },
            Checkpoint {
                hash: ChainHash([8; 32]),
                ..checkpoint.clone()
            },
            Checkpoint {
                signed_at: 1,
                ..checkpoint.clone()
            },
            Checkpoint {
                signature: "00".repeat(32),
                ..checkpoint.clone()
            },
            Checkpoint {
                signature: "not hex".to_owned(),
                ..checkpoint.clone()
            },
        ] {
            assert!(!key.verifies(&forged), "{forged:?}");
        }
    }

    #[test]
    fn short_or_malformed_keys_are_refused() {
        assert!(CheckpointKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(CheckpointKey::from_hex("zz").is_err());
        assert!(
            format!("{:?}", CheckpointKey::from_hex(&"ab".repeat(32)).unwrap())
                .contains("redacted")
        );
    }
}
