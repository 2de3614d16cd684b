//! The database setting: its URL, which names the backend and may carry a password, so it is
//! kept secret and printed redacted.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

use super::redact_url;
use crate::secret::{REDACTED, SecretString};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB?sslmode=require`.
    pub url: DatabaseUrl,
    pub max_connections: u32,
    /// How long a request waits for a connection from the pool. Short: while the database is
    /// down, requests are answered 503 at once rather than hanging for the outage.
    pub acquire_timeout_secs: u64,
    /// SQLite: how long a write waits for another connection's write lock.
    pub busy_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::default(),
            max_connections: 10,
            acquire_timeout_secs: 2,
            busy_timeout_secs: 10,
        }
    }
}

/// Which database a URL names; the only place the scheme is interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

/// A database URL. It may carry a password, so it prints with the password redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: SecretString,
    kind: DatabaseKind,
}

impl DatabaseUrl {
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The full URL, password included: only for handing to the database driver.
    pub fn expose(&self) -> &str {
        self.raw.expose()
    }

    /// The URL with any password replaced, safe for logs and output.
    pub fn redacted(&self) -> String {
        match Url::parse(self.raw.expose()) {
            Ok(url) => redact_url(&url),
            // Unparseable: it cannot be shown without risking what it holds.
            Err(_) => format!("{}:{REDACTED}", self.kind_name()),
        }
    }

    fn kind_name(&self) -> &'static str {
        match self.kind {
            DatabaseKind::Sqlite => "sqlite",
            DatabaseKind::Postgres => "postgres",
        }
    }

    /// For PostgreSQL: the host the driver will connect to, and whether the URL insists on TLS.
    /// The driver also reads `host`, `sslmode` and `ssl-mode` from the query string.
    pub(super) fn postgres_transport(&self) -> Option<(String, bool)> {
        if self.kind != DatabaseKind::Postgres {
            return None;
        }
        let url = Url::parse(self.raw.expose()).ok()?;
        let mut host = url.host_str().unwrap_or("localhost").to_owned();
        let mut tls = false;
        for (key, value) in url.query_pairs() {
            match &*key {
                "host" => host = value.into_owned(),
                "sslmode" | "ssl-mode" => {
                    tls = matches!(&*value, "require" | "verify-ca" | "verify-full");
                }
                _ => {}
            }
        }
        Some((host, tls))
    }
}

impl Default for DatabaseUrl {
    fn default() -> Self {
        Self {
            raw: SecretString::new("sqlite://data/ajutant.db"),
            kind: DatabaseKind::Sqlite,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("database URL must start with sqlite:, postgres: or postgresql: (got {scheme:?})")]
pub struct UnsupportedDatabaseUrl {
    scheme: String,
}

impl FromStr for DatabaseUrl {
    type Err = UnsupportedDatabaseUrl;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let scheme = raw.split(':').next().unwrap_or_default();
        let kind = match scheme {
            "sqlite" => DatabaseKind::Sqlite,
            "postgres" | "postgresql" => DatabaseKind::Postgres,
            _ => {
                return Err(UnsupportedDatabaseUrl {
                    scheme: scheme.to_owned(),
                });
            }
        };
        Ok(Self {
            raw: SecretString::new(raw),
            kind,
        })
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}
