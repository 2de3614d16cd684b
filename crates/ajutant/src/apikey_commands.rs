//! `ajutant apikey create | list | revoke`: platform API keys from the command line, for the
//! first key of a new instance and for scripts. `create` prints the key alone on standard output
//! (details on standard error) so `KEY=$(ajutant apikey create ...)` captures exactly the key.

use std::io::Write;
use std::time::Duration;

use ajutant_core::audit::{Actor, ActorKind, AuditAction, AuditEvent, Outcome};
use ajutant_server::identity::api_keys::{self, ApiKeyError, NewApiKey};
use ajutant_store::{AuditLog, Store};
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The service identity the key acts as (letters, digits, '-', '_', '.').
    #[arg(long)]
    name: String,
    /// A directory group id the key acts with; repeat for several.
    #[arg(long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Days until the key stops working; without it the key does not expire.
    #[arg(long, value_name = "DAYS")]
    expires_in_days: Option<u32>,
    /// Directory object id of the person responsible; deprovisioning them revokes the key.
    #[arg(long, value_name = "OBJECT_ID")]
    owner: Option<String>,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's public id (`ajk_` and 10 hex digits), as `apikey list` shows it.
    id: String,
    /// Why, for the audit trail.
    #[arg(long, default_value = "revoked from the command line")]
    reason: String,
}

/// Whether `create` failed on its arguments (exit 2) rather than on the system (exit 3).
pub fn is_invalid_request(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<ApiKeyError>(),
        Some(ApiKeyError::Invalid(_))
    )
}

fn cli_actor() -> Actor {
    Actor {
        id: "cli".to_owned(),
        display_name: "ajutant command line".to_owned(),
        kind: ActorKind::System,
    }
}

/// Writes one audit record and waits until it is durable.
async fn audit(store: &Store, event: AuditEvent) -> anyhow::Result<()> {
    let (log, writer) = AuditLog::start(store.clone(), 1);
    let result = log.append(event).await;
    writer.finish(Duration::from_secs(10)).await;
    result?;
    Ok(())
}

pub async fn create(store: Store, args: CreateArgs) -> anyhow::Result<()> {
    store.migrate().await?;
    let expires_at = args
        .expires_in_days
        .map(|days| OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)));
    let (key, secret) = api_keys::issue(
        &store,
        NewApiKey {
            name: args.name,
            groups: args.groups,
            expires_at,
            owner_subject: args.owner,
            created_by: "cli".to_owned(),
        },
    )
    .await?;
    audit(
        &store,
        AuditEvent::new(
            cli_actor(),
            AuditAction::ApiKeyCreated,
            format!("api_key/{}", key.id),
            Outcome::Allowed,
        )
        .with_details(serde_json::json!({ "name": key.name, "groups": key.groups })),
    )
    .await?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "created API key {} for service identity {:?} with groups [{}]{}; it is shown once, store it now",
        key.id,
        key.name,
        key.groups.join(", "),
        expires_at
            .and_then(|at| at.format(&Rfc3339).ok())
            .map(|at| format!(", expiring {at}"))
            .unwrap_or_default(),
    )?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{secret}")?;
    out.flush()?;
    Ok(())
}

pub async fn list(store: Store) -> anyhow::Result<()> {
    store.migrate().await?;
    let keys = store.api_keys().await?;
    let now = OffsetDateTime::now_utc();
    let mut out = std::io::stdout().lock();
    writeln!(out, "ID\tNAME\tSTATUS\tGROUPS\tCREATED\tLAST USED")?;
    for key in keys {
        let status = if key.revoked_at.is_some() {
            "revoked"
        } else if key.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        let time = |at: Option<OffsetDateTime>| {
            at.and_then(|at| at.format(&Rfc3339).ok())
                .unwrap_or_else(|| "-".to_owned())
        };
        writeln!(
            out,
            "{}\t{}\t{status}\t{}\t{}\t{}",
            key.id,
            key.name,
            key.groups.join(","),
            time(Some(key.created_at)),
            time(key.last_used_at),
        )?;
    }
    Ok(())
}

pub async fn revoke(store: Store, args: RevokeArgs) -> anyhow::Result<()> {
    store.migrate().await?;
    let revoked = store
        .revoke_api_key(&args.id, &args.reason, OffsetDateTime::now_utc())
        .await?;
    if !revoked {
        anyhow::bail!("no live API key {}", args.id);
    }
    audit(
        &store,
        AuditEvent::new(
            cli_actor(),
            AuditAction::ApiKeyRevoked,
            format!("api_key/{}", args.id),
            Outcome::Allowed,
        )
        .with_details(serde_json::json!({ "reason": args.reason })),
    )
    .await?;
    let mut err = std::io::stderr().lock();
    writeln!(err, "revoked API key {}", args.id)?;
    Ok(())
}
