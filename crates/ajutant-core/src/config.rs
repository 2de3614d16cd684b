//! The one typed configuration tree. Sources, later ones winning: built-in defaults, a TOML file,
//! `AJUTANT_*` environment variables (nested with `__`, e.g. `AJUTANT_SERVER__LISTEN`), then
//! command-line flags. Every struct denies unknown fields so a typo is an error naming the key.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize, Serializer};
use url::Url;

use crate::secret::SecretString;

mod database;
mod deployments;
mod egress;
mod grounding;
mod identity;
mod notifications;
pub use database::*;
pub use deployments::*;
pub use egress::*;
pub use grounding::*;
pub use identity::*;
pub use notifications::*;

/// The commented example printed by `ajutant config example`; a unit test keeps it in step with
/// the tree below.
pub const EXAMPLE: &str = include_str!("../config.example.toml");

/// Environment variables that are flags' plain aliases (read by the CLI, not by the nested
/// `AJUTANT_*` layer), so that layer must not mistake them for keys.
/// `SERVER` and `API_KEY` are the client commands' (`kill`, `switches`, `revive`, `ingest`): set
/// for them, they must not stop `serve` from starting.
const FLAG_VARIABLES: &[&str] = &["CONFIG", "LISTEN", "DATABASE_URL", "SERVER", "API_KEY"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub mode: Mode,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub log: LogConfig,
    pub telemetry: TelemetryConfig,
    pub audit: AuditConfig,
    pub identity: IdentityConfig,
    /// The logical models workloads call; by default one `offline` deployment.
    pub deployments: Vec<DeploymentConfig>,
    pub gateway: GatewayConfig,
    pub grounding: GroundingConfig,
    pub chat: ChatConfig,
    /// Which feedback escalates to IT operations.
    pub feedback: crate::feedback::FeedbackConfig,
    /// Escalations to IT operations: webhook targets and their retry policy.
    pub notifications: NotificationsConfig,
    /// Which non-public hosts outbound calls may reach.
    pub egress: EgressConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            log: LogConfig::default(),
            telemetry: TelemetryConfig::default(),
            audit: AuditConfig::default(),
            identity: IdentityConfig::default(),
            deployments: vec![DeploymentConfig::offline()],
            gateway: GatewayConfig::default(),
            grounding: GroundingConfig::default(),
            chat: ChatConfig::default(),
            feedback: crate::feedback::FeedbackConfig::default(),
            notifications: NotificationsConfig::default(),
            egress: EgressConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// A request whose response has not started after this long gets 503.
    pub request_timeout_secs: u64,
    /// Request bodies above this size are refused with 413 before they are read.
    pub body_limit_bytes: usize,
    /// On SIGTERM/Ctrl-C, in-flight requests get this long to finish.
    pub shutdown_grace_secs: u64,
    /// The address browsers and the identity provider use to reach this instance (redirect URIs
    /// and cookies derive from it). Unset: `http://` + the listening address.
    pub public_url: Option<Url>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            request_timeout_secs: 30,
            body_limit_bytes: 2 * 1024 * 1024,
            shutdown_grace_secs: 30,
            public_url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info` or `info,ajutant_store=debug`.
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Human,
            filter: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/HTTP endpoint of the operator's collector (e.g. `http://otel-collector:4318`).
    /// Unset means no export at all: nothing leaves the process.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub otlp_endpoint: Option<Url>,
    /// Extra headers for the collector (e.g. an API key); values are secrets.
    pub otlp_headers: BTreeMap<String, SecretString>,
    pub service_name: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            otlp_headers: BTreeMap::new(),
            service_name: "ajutant".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Most records written in one transaction by the group-commit writer.
    pub max_batch: usize,
    /// The key (hex, at least 32 bytes) that signs checkpoints of the chain's head, held
    /// outside the database: a mounted secret in production, shared by every replica. Unset:
    /// with SQLite a key is made beside the database file (`<file>.audit-key`); with
    /// PostgreSQL nothing is signed, and a rewritten, re-sealed chain cannot be told apart.
    pub checkpoint_key_file: Option<std::path::PathBuf>,
    /// How often the head is signed (and at shutdown).
    pub checkpoint_every_secs: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            checkpoint_key_file: None,
            checkpoint_every_secs: 60,
        }
    }
}

/// Settings given on the command line (or their plain variables); they win over every other
/// source.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<DatabaseUrl>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    #[error("invalid configuration: {0}")]
    Invalid(Box<figment::Error>),
    #[error("configuration refused:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<String>),
}

impl Config {
    /// Builds the configuration from every source and checks it. `env` is the process environment
    /// in production and a fixed list in tests.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile(path.display().to_string()));
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        for (key, value) in env {
            let Some(rest) = key.strip_prefix("AJUTANT_") else {
                continue;
            };
            if FLAG_VARIABLES.contains(&rest) {
                continue;
            }
            let path = rest.to_lowercase().replace("__", ".");
            // Parsed as figment's own environment provider would: numbers, booleans, else text.
            let Ok(value) = value.parse::<figment::value::Value>();
            figment = figment.merge(Serialized::default(&path, value));
        }
        let mut config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        if let Some(listen) = overrides.listen {
            config.server.listen = listen;
        }
        if let Some(url) = &overrides.database_url {
            config.database.url = url.clone();
        }
        config.check()?;
        Ok(config)
    }

    /// Every problem at once, so an operator fixes them in one pass.
    pub fn check(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        if self.server.body_limit_bytes == 0 {
            problems.push("server.body_limit_bytes must be greater than 0".to_owned());
        }
        if self.server.request_timeout_secs == 0 {
            problems.push("server.request_timeout_secs must be greater than 0".to_owned());
        }
        if self.database.max_connections == 0 {
            problems.push("database.max_connections must be at least 1".to_owned());
        }
        if !(1..=4096).contains(&self.audit.max_batch) {
            problems.push("audit.max_batch must be between 1 and 4096".to_owned());
        }
        if self.audit.checkpoint_every_secs == 0 {
            problems.push("audit.checkpoint_every_secs must be greater than 0".to_owned());
        }
        problems.extend(self.identity_problems());
        problems.extend(self.deployment_problems());
        problems.extend(self.grounding.problems());
        problems.extend(self.notifications.problems());
        problems.extend(self.egress.problems());
        if self.chat.default_top_k == 0 || self.chat.default_top_k > 50 {
            problems.push("chat.default_top_k must be between 1 and 50".to_owned());
        }
        if self.mode == Mode::Production {
            problems.extend(self.insecure_for_production());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Refused(problems))
        }
    }

    fn deployment_problems(&self) -> Vec<String> {
        let mut problems: Vec<String> = self
            .deployments
            .iter()
            .flat_map(DeploymentConfig::problems)
            .collect();
        let names: Vec<&str> = self.deployments.iter().map(|d| d.name.as_str()).collect();
        for (index, name) in names.iter().enumerate() {
            if names[..index].contains(name) {
                problems.push(format!("deployments: the name {name:?} is used twice"));
            }
        }
        for deployment in &self.deployments {
            for fallback in &deployment.fallbacks {
                if !names.contains(&fallback.as_str()) {
                    problems.push(format!(
                        "deployments.{}: fallback {fallback:?} is not a deployment",
                        deployment.name
                    ));
                }
            }
        }
        problems
    }

    fn identity_problems(&self) -> Vec<String> {
        let identity = &self.identity;
        let mut problems: Vec<String> = identity
            .role_bindings
            .iter()
            .filter_map(|seed| seed.binding().err())
            .collect();
        if identity.provider == IdentityProviderKind::Development
            && !self.server.listen.ip().is_loopback()
            && !identity.development.allow_network
        {
            problems.push(format!(
                "the development identity provider lets anyone who reaches it sign in as any demo \
                 user, Ada Admin included, and server.listen is {}, not loopback: listen on \
                 127.0.0.1, configure provider = \"oidc\", or set \
                 identity.development.allow_network = true for a demo on a trusted network",
                self.server.listen
            ));
        }
        if identity.provider == IdentityProviderKind::Oidc {
            let oidc = &identity.oidc;
            if oidc.issuer.trim().is_empty() {
                problems.push("identity.oidc.issuer is required with provider = \"oidc\"".into());
            } else if oidc.issuer.contains("{tenantid}") {
                if oidc.allowed_tenants.is_empty() {
                    problems.push(
                        "identity.oidc.issuer contains {tenantid}: list the accepted tenants in \
                         identity.oidc.allowed_tenants"
                            .into(),
                    );
                }
                if oidc.discovery_url.is_none() {
                    problems.push(
                        "identity.oidc.issuer contains {tenantid}: set identity.oidc.discovery_url \
                         (e.g. https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration)"
                            .into(),
                    );
                }
            }
            if oidc.client_id.trim().is_empty() {
                problems
                    .push("identity.oidc.client_id is required with provider = \"oidc\"".into());
            }
        }
        if let Some(secret) = &identity.scim.bearer_secret
            && secret.expose().len() < 32
        {
            problems.push("identity.scim.bearer_secret must be at least 32 characters".into());
        }
        let sessions = &identity.sessions;
        if sessions.idle_minutes == 0 || sessions.absolute_hours == 0 || sessions.recheck_secs == 0
        {
            problems.push(
                "identity.sessions lifetimes and recheck interval must be greater than 0".into(),
            );
        }
        problems
    }

    /// The address browsers reach this instance at; `listen` (the bound address) stands in
    /// when `public_url` is unset.
    #[allow(
        clippy::expect_used,
        reason = "http:// and a socket address always form a URL"
    )]
    pub fn public_url(&self, listen: SocketAddr) -> Url {
        match &self.server.public_url {
            Some(url) => url.clone(),
            None => Url::parse(&format!("http://{listen}")).expect("a socket address URL"),
        }
    }

    fn insecure_for_production(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.identity.provider == IdentityProviderKind::Development {
            problems.push(
                "mode = \"production\" refuses the built-in development identity provider: set \
                 identity.provider = \"oidc\" and [identity.oidc]"
                    .to_owned(),
            );
        }
        match &self.server.public_url {
            Some(url) if url.scheme() == "https" => {}
            _ => problems.push(
                "mode = \"production\" needs server.public_url with https://, so session cookies \
                 are Secure"
                    .to_owned(),
            ),
        }
        if self.identity.provider == IdentityProviderKind::Oidc
            && !self.identity.oidc.issuer.starts_with("https://")
        {
            problems
                .push("mode = \"production\" needs an https:// identity.oidc.issuer".to_owned());
        }
        if let Some((host, false)) = self.database.url.postgres_transport()
            && !is_loopback_host(&host)
        {
            problems.push(format!(
                "mode = \"production\" refuses an unencrypted PostgreSQL connection to {host}: \
                 add ?sslmode=require (or verify-full) to database.url"
            ));
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            let host = endpoint.host_str().unwrap_or_default();
            if endpoint.scheme() != "https" && !is_loopback_host(host) {
                problems.push(format!(
                    "mode = \"production\" refuses to send traces in plain HTTP to {host}: \
                     use an https:// telemetry.otlp_endpoint or a collector on this host"
                ));
            }
        }
        problems.extend(self.notifications.insecure_for_production());
        problems
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut out = String::new();
        write_toml_table(&mut out, "", &value);
        out
    }
}

/// A URL safe to print: the password, and any query parameter that looks like one, replaced
/// (`***`, because brackets would be percent-encoded in a URL).
fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Only fails for URLs that cannot have a password, which this one has.
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let secret = matches!(&*key, "password" | "sslpassword" | "token" | "key");
                let value = if secret {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

fn serialize_redacted_url<S: Serializer>(
    url: &Option<Url>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_str(&redact_url(url)),
        None => serializer.serialize_none(),
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// A small TOML writer for the printed configuration: scalars first, then sub-tables, which is
/// all this tree needs.
fn write_toml_table(out: &mut String, prefix: &str, value: &serde_json::Value) {
    let Some(map) = value.as_object() else {
        return;
    };
    let is_table_array = |v: &serde_json::Value| {
        v.as_array()
            .is_some_and(|items| !items.is_empty() && items.iter().all(|i| i.is_object()))
    };
    for (key, value) in map
        .iter()
        .filter(|(_, v)| !v.is_object() && !is_table_array(v))
    {
        if !value.is_null() {
            out.push_str(&format!("{key} = {value}\n"));
        }
    }
    for (key, value) in map.iter() {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if value.is_object() {
            out.push_str(&format!("\n[{path}]\n"));
            write_toml_table(out, &path, value);
        } else if is_table_array(value) {
            for item in value.as_array().into_iter().flatten() {
                out.push_str(&format!("\n[[{path}]]\n"));
                write_toml_table(out, &path, item);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write_file(contents: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        file
    }

    fn load(contents: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file = write_file(contents);
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load(Some(file.path()), env, &Overrides::default())
    }

    #[test]
    fn the_example_is_accepted_and_documents_every_key() {
        let config = load(EXAMPLE, &[]).unwrap();
        assert_eq!(config.mode, Mode::Development);
        let example: serde_json::Value = Figment::from(Toml::string(EXAMPLE)).extract().unwrap();
        let defaults = serde_json::to_value(Config::default()).unwrap();
        let mut missing = Vec::new();
        missing_keys(&defaults, &example, "", &mut missing);
        assert!(missing.is_empty(), "config.example.toml lacks {missing:?}");
    }

    fn missing_keys(
        want: &serde_json::Value,
        have: &serde_json::Value,
        at: &str,
        out: &mut Vec<String>,
    ) {
        for (key, value) in want.as_object().into_iter().flatten() {
            let path = format!("{at}{key}");
            match have.get(key) {
                None if !value.is_null() => out.push(path),
                Some(inner) if value.is_object() => {
                    missing_keys(value, inner, &format!("{path}."), out)
                }
                _ => {}
            }
        }
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_it() {
        let err = load("[server]\nlisten = \"127.0.0.1:9\"\nlisen_port = 3\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("`lisen_port`"), "{message}");
    }

    #[test]
    fn an_unknown_environment_key_is_an_error_that_names_it() {
        let err = load("", &[("AJUTANT_SERVER__TIMEOUT", "3")]).unwrap_err();
        assert!(err.to_string().contains("`timeout`"), "{err}");
    }

    #[test]
    fn the_development_provider_stays_on_loopback_unless_allowed() {
        let err = load("[server]\nlisten = \"0.0.0.0:8080\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("allow_network"), "{err}");
        let config = load(
            "[server]\nlisten = \"0.0.0.0:8080\"\n[identity.development]\nallow_network = true\n",
            &[],
        )
        .unwrap();
        assert!(config.identity.development.allow_network);
        assert!(load("[server]\nlisten = \"[::1]:8080\"\n", &[]).is_ok());
    }

    #[test]
    fn the_client_commands_variables_are_not_configuration() {
        // Set for `ajutant kill` or `ajutant ingest`, these made `serve` refuse to start.
        let config = load(
            "",
            &[
                ("AJUTANT_SERVER", "http://127.0.0.1:8080"),
                ("AJUTANT_API_KEY", "ajk_0123456789_x"),
            ],
        )
        .unwrap();
        assert_eq!(config.server.listen.port(), 8080);
    }

    #[test]
    fn environment_overrides_file_and_flags_override_environment() {
        let file = write_file("[server]\nlisten = \"127.0.0.1:1000\"\nrequest_timeout_secs = 5\n");
        let env = [
            ("AJUTANT_SERVER__LISTEN", "127.0.0.1:2000"),
            ("AJUTANT_SERVER__BODY_LIMIT_BYTES", "1024"),
            // A flag's plain alias is the CLI's business, not a nested key.
            ("AJUTANT_DATABASE_URL", "sqlite://ignored.db"),
            ("UNRELATED", "x"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = Config::load(Some(file.path()), env.clone(), &Overrides::default()).unwrap();
        assert_eq!(config.server.listen.port(), 2000);
        assert_eq!(config.server.request_timeout_secs, 5);
        assert_eq!(config.server.body_limit_bytes, 1024);
        assert_eq!(config.database.url.expose(), "sqlite://data/ajutant.db");

        let overrides = Overrides {
            listen: Some("127.0.0.1:3000".parse().unwrap()),
            database_url: Some("postgres://db/ajutant".parse().unwrap()),
        };
        let config = Config::load(Some(file.path()), env, &overrides).unwrap();
        assert_eq!(config.server.listen.port(), 3000);
        assert_eq!(config.database.url.kind(), DatabaseKind::Postgres);
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Config::load(
            Some(Path::new("/nonexistent/ajutant.toml")),
            [],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }

    #[test]
    fn an_unsupported_database_scheme_is_named() {
        let err = load("[database]\nurl = \"mysql://db/x\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("\"mysql\""), "{err}");
    }

    /// What production needs besides the database: a real identity provider and https.
    const PRODUCTION: &str = "mode = \"production\"\n[server]\npublic_url = \"https://ajutant.example\"\n\
        [identity]\nprovider = \"oidc\"\n[identity.oidc]\nissuer = \"https://idp.example/t\"\n\
        client_id = \"c\"\n";

    #[test]
    fn production_refuses_the_development_identity_provider_and_plain_http() {
        let err = load("mode = \"production\"\n", &[]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("development identity provider"),
            "{message}"
        );
        assert!(message.contains("server.public_url"), "{message}");
        load(PRODUCTION, &[]).unwrap();
    }

    #[test]
    fn a_multi_tenant_issuer_needs_tenants_and_a_discovery_url() {
        let template = "[identity]\nprovider = \"oidc\"\n[identity.oidc]\nclient_id = \"c\"\n\
            issuer = \"https://login.microsoftonline.com/{tenantid}/v2.0\"\n";
        let message = load(template, &[]).unwrap_err().to_string();
        assert!(message.contains("allowed_tenants"), "{message}");
        assert!(message.contains("discovery_url"), "{message}");
        let complete = format!(
            "{template}allowed_tenants = [\"t1\"]\n\
             discovery_url = \"https://login.microsoftonline.com/organizations/v2.0/.well-known/openid-configuration\"\n"
        );
        load(&complete, &[]).unwrap();
    }

    #[test]
    fn a_role_binding_needs_exactly_one_grantee_and_scope_only_for_owners() {
        let both =
            "[[identity.role_bindings]]\nrole = \"auditor\"\ngroup = \"g\"\napp_role = \"r\"\n";
        assert!(
            load(both, &[])
                .unwrap_err()
                .to_string()
                .contains("exactly one")
        );
        let scoped =
            "[[identity.role_bindings]]\nrole = \"it_ops\"\ngroup = \"g\"\nassistant = \"a\"\n";
        assert!(
            load(scoped, &[])
                .unwrap_err()
                .to_string()
                .contains("only assistant_owner")
        );
        let unknown = "[[identity.role_bindings]]\nrole = \"root\"\ngroup = \"g\"\n";
        assert!(load(unknown, &[]).is_err());
        let fine = "[[identity.role_bindings]]\nrole = \"assistant_owner\"\ngroup = \"g\"\nassistant = \"a\"\n";
        assert_eq!(load(fine, &[]).unwrap().identity.role_bindings.len(), 1);
    }

    #[test]
    fn production_refuses_insecure_settings_with_every_reason() {
        let err = load(
            &format!(
                "{PRODUCTION}[database]\nurl = \"postgres://app:pw@db.internal/ajutant\"\n\
                 [telemetry]\notlp_endpoint = \"http://collector.internal:4318\"\n"
            ),
            &[],
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("sslmode=require"), "{message}");
        assert!(message.contains("collector.internal"), "{message}");
        assert!(!message.contains("pw@"), "{message}");
    }

    #[test]
    fn production_sees_the_host_and_tls_mode_given_as_parameters() {
        let hidden_host = load(
            &format!("{PRODUCTION}[database]\nurl = \"postgres://localhost/a?host=db.internal\"\n"),
            &[],
        );
        assert!(hidden_host.is_err());
        let dashed = load(
            &format!(
                "{PRODUCTION}[database]\nurl = \"postgres://db.internal/a?ssl-mode=require\"\n"
            ),
            &[],
        );
        assert!(dashed.is_ok());
    }

    #[test]
    fn production_accepts_tls_and_loopback() {
        let config = load(
            &format!(
                "{PRODUCTION}[database]\nurl = \"postgres://app:pw@db.internal/a?sslmode=verify-full\"\n\
                 [telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(config.mode, Mode::Production);
        let local = load(
            &format!("{PRODUCTION}[database]\nurl = \"postgres://app@localhost/a\"\n"),
            &[],
        );
        assert!(local.is_ok());
    }

    #[test]
    fn printed_configuration_redacts_secrets() {
        let config = load(
            "[database]\nurl = \"postgres://app:s3cret@db/a\"\n\
             [telemetry.otlp_headers]\napi-key = \"k3y\"\n",
            &[],
        )
        .unwrap();
        let printed = config.to_redacted_toml();
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(!printed.contains("k3y"), "{printed}");
        assert!(printed.contains("[redacted]"), "{printed}");
        assert!(printed.contains("postgres://app:***@db/a"), "{printed}");
        let query: DatabaseUrl = "postgres://db/a?user=app&password=pw9".parse().unwrap();
        assert!(!query.redacted().contains("pw9"), "{}", query.redacted());
        assert!(!format!("{config:?}").contains("s3cret"));
        // What is printed is itself a valid configuration.
        let reparsed: Result<Config, _> = Figment::from(Toml::string(&printed)).extract();
        assert!(reparsed.is_ok(), "{printed}");
    }
}
