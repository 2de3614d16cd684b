//! Signing the audit chain's head with a key held outside the database, once a minute and at
//! shutdown, and publishing it in the log (`audit checkpoint`, with position, hash and
//! signature), so a copy lives where the database's writers cannot reach it. Verification
//! with the key (`ajutant audit verify`, `GET /api/v1/audit/verify`) then catches a chain that
//! was rewritten and sealed again, and a cut tail.
//!
//! The key: `audit.checkpoint_key_file` (hex, at least 32 bytes; in production a mounted secret).
//! Without it, the embedded default (a SQLite file) makes one beside the database file
//! (`<file>.audit-key`, mode 0600) on first start; with PostgreSQL and no key, nothing is
//! signed (several replicas must share one key) and start-up says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ajutant_core::audit_checkpoint::CheckpointKey;
use ajutant_core::config::{Config, DatabaseKind};
use ajutant_store::Store;
use time::OffsetDateTime;
use tokio::sync::watch;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointKeyError {
    #[error("cannot read the audit checkpoint key {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the audit checkpoint key {path}: {source}")]
    Create {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the audit checkpoint key {path} is not usable: {why}")]
    Invalid { path: String, why: String },
    #[error("the system random number generator failed")]
    Random,
}

/// Where the key is read from: the configured file, else the embedded default's file beside
/// the SQLite database. `None`: no key (PostgreSQL without `audit.checkpoint_key_file`).
pub fn key_path(config: &Config) -> Option<PathBuf> {
    if let Some(path) = &config.audit.checkpoint_key_file {
        return Some(path.clone());
    }
    if config.database.url.kind() != DatabaseKind::Sqlite {
        return None;
    }
    let url = config.database.url.expose();
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?
        .split('?')
        .next()?;
    if file.is_empty() || file == ":memory:" {
        return None;
    }
    Some(PathBuf::from(format!("{file}.audit-key")))
}

/// The checkpoint key, creating the embedded default's when `create` and it is missing.
pub fn key(config: &Config, create: bool) -> Result<Option<CheckpointKey>, CheckpointKeyError> {
    let Some(path) = key_path(config) else {
        return Ok(None);
    };
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => CheckpointKey::from_hex(&text)
            .map(Some)
            .map_err(|why| CheckpointKeyError::Invalid { path: shown, why }),
        Err(error)
            if error.kind() == std::io::ErrorKind::NotFound
                && create
                && config.audit.checkpoint_key_file.is_none() =>
        {
            create_key(&path).map(Some)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CheckpointKeyError::Read {
            path: shown,
            source,
        }),
    }
}

fn create_key(path: &Path) -> Result<CheckpointKey, CheckpointKeyError> {
    use std::io::Write;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CheckpointKeyError::Random)?;
    let text = hex::encode(bytes);
    let shown = path.display().to_string();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|source| CheckpointKeyError::Create {
            path: shown.clone(),
            source,
        })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CheckpointKeyError::Create {
            path: shown.clone(),
            source,
        })?;
    tracing::info!(path = %shown, "created the audit checkpoint key; keep a copy apart from the database");
    CheckpointKey::from_hex(&text).map_err(|why| CheckpointKeyError::Invalid { path: shown, why })
}

/// Signs the head if it moved since the last checkpoint (any instance's), and logs it.
pub async fn sign_head(store: &Store, key: &CheckpointKey) {
    let head = match store.audit_head().await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(error) => {
            tracing::warn!(%error, "cannot read the audit head to sign it");
            return;
        }
    };
    match store.latest_audit_checkpoint_seq().await {
        Ok(Some(signed)) if signed >= head.0 => return,
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(%error, "cannot read the audit checkpoints");
            return;
        }
    }
    let Some(checkpoint) = key.sign(head.0, head.1, OffsetDateTime::now_utc().unix_timestamp())
    else {
        tracing::error!("cannot sign the audit head");
        return;
    };
    match store.put_audit_checkpoint(&checkpoint).await {
        Ok(_) => tracing::info!(
            seq = checkpoint.seq,
            hash = %checkpoint.hash.to_hex(),
            signature = %checkpoint.signature,
            "audit checkpoint"
        ),
        Err(error) => tracing::warn!(%error, "cannot store an audit checkpoint"),
    }
}

/// Signs the head every `every` until `stop`.
pub(crate) async fn sign_periodically(
    store: Store,
    key: CheckpointKey,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => sign_head(&store, &key).await,
        }
    }
}
