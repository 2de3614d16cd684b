//! `[identity]`: where people and applications prove who they are, and the role bindings the
//! database is seeded with.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::policy::{Grantee, Role, RoleBinding};
use crate::secret::SecretString;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// `development`: the built-in identity provider with demo users (refused in production).
    /// `oidc`: the organisation's OpenID Connect provider (`[identity.oidc]`).
    pub provider: IdentityProviderKind,
    pub oidc: OidcConfig,
    pub sessions: SessionConfig,
    pub graph: GraphConfig,
    pub scim: ScimConfig,
    pub development: DevelopmentIdpConfig,
    /// Seeded into the database at start-up when missing; after that, role bindings are data
    /// managed through the admin API. With the development provider and no bindings here, the
    /// demo groups get their demo roles.
    pub role_bindings: Vec<RoleBindingSeed>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            provider: IdentityProviderKind::Development,
            oidc: OidcConfig::default(),
            sessions: SessionConfig::default(),
            graph: GraphConfig::default(),
            scim: ScimConfig::default(),
            development: DevelopmentIdpConfig::default(),
            role_bindings: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProviderKind {
    #[default]
    Development,
    Oidc,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The exact `iss` tokens must carry, e.g. `https://login.microsoftonline.com/TENANT/v2.0`.
    /// For a multi-tenant application write `{tenantid}` where the tenant goes; the token's
    /// `tid` is substituted and must be in `allowed_tenants`.
    pub issuer: String,
    /// Where the discovery document is; unset: `{issuer}/.well-known/openid-configuration`.
    pub discovery_url: Option<Url>,
    /// This application's client id at the provider.
    pub client_id: String,
    /// Used for the browser sign-in's code exchange and for Microsoft Graph.
    pub client_secret: Option<SecretString>,
    /// Accepted `aud` values for API access tokens; empty: the client id.
    pub audiences: Vec<String>,
    /// Entra tenant ids (`tid`) accepted; empty: any (then `issuer` must be exact).
    pub allowed_tenants: Vec<String>,
    /// Scopes asked for at browser sign-in.
    pub scopes: Vec<String>,
    /// Tolerance for `exp`, `nbf` and `iat` against this machine's clock.
    pub clock_skew_secs: u64,
    /// The signing keys are fetched again on this schedule.
    pub jwks_refresh_secs: u64,
    /// A token naming a key id not in the cache triggers a refresh at most this often.
    pub jwks_forced_refresh_min_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            discovery_url: None,
            client_id: String::new(),
            client_secret: None,
            audiences: Vec::new(),
            allowed_tenants: Vec::new(),
            scopes: vec![
                "openid".to_owned(),
                "profile".to_owned(),
                "offline_access".to_owned(),
            ],
            clock_skew_secs: 60,
            jwks_refresh_secs: 3600,
            jwks_forced_refresh_min_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// A browser session unused for this long ends.
    pub idle_minutes: u64,
    /// A browser session ends this long after sign-in, however busy.
    pub absolute_hours: u64,
    /// How often, in seconds, a session re-checks with the provider (refresh token); a failed
    /// refresh ends it, so someone disabled in the directory loses access within this interval.
    pub recheck_secs: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle_minutes: 60,
            absolute_hours: 12,
            recheck_secs: 15 * 60,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// Microsoft Graph, asked for a user's groups when the token only says there are too many
    /// to carry (groups overage).
    pub base_url: Url,
    /// Where the app's own Graph token comes from (client credentials); unset: the provider's
    /// token endpoint.
    pub token_url: Option<Url>,
    pub scope: String,
    /// How long a user's resolved groups are reused.
    pub cache_secs: u64,
    /// Longest wait for one Graph call.
    pub timeout_secs: u64,
}

impl Default for GraphConfig {
    #[allow(clippy::expect_used, reason = "a URL literal")]
    fn default() -> Self {
        Self {
            base_url: Url::parse("https://graph.microsoft.com").expect("a valid URL literal"),
            token_url: None,
            scope: "https://graph.microsoft.com/.default".to_owned(),
            cache_secs: 300,
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScimConfig {
    /// The bearer secret the directory's provisioning service presents at `/scim/v2`. Unset:
    /// the SCIM endpoint is off.
    pub bearer_secret: Option<SecretString>,
}

/// The built-in identity provider for the embedded default and the tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevelopmentIdpConfig {
    pub groups: Vec<DemoGroup>,
    pub users: Vec<DemoUser>,
    /// Serve it on an address other than loopback. Anyone who reaches it signs in as any demo
    /// user, Ada Admin included, so only for a demo on a network every member of is trusted.
    pub allow_network: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoGroup {
    /// Shaped like an Entra group object id.
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoUser {
    /// Shaped like an Entra user object id (`oid`).
    pub id: String,
    pub name: String,
    pub email: String,
    /// Group ids.
    pub groups: Vec<String>,
}

pub const DEMO_EMPLOYEES: &str = "6b1f5d0e-0001-4000-8000-00000000e001";
pub const DEMO_HR_OWNERS: &str = "6b1f5d0e-0002-4000-8000-00000000e002";
pub const DEMO_IT_OPS: &str = "6b1f5d0e-0003-4000-8000-00000000e003";
pub const DEMO_AUDITORS: &str = "6b1f5d0e-0004-4000-8000-00000000e004";
pub const DEMO_ADMINS: &str = "6b1f5d0e-0005-4000-8000-00000000e005";

impl Default for DevelopmentIdpConfig {
    fn default() -> Self {
        let group = |id: &str, name: &str| DemoGroup {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        let user = |n: u8, name: &str, email: &str, groups: &[&str]| DemoUser {
            id: format!("0c2a7e3d-00{n:02}-4000-8000-0000000000{n:02}"),
            name: name.to_owned(),
            email: email.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        };
        Self {
            groups: vec![
                group(DEMO_EMPLOYEES, "Employees"),
                group(DEMO_HR_OWNERS, "HR assistant owners"),
                group(DEMO_IT_OPS, "IT operations"),
                group(DEMO_AUDITORS, "Internal audit"),
                group(DEMO_ADMINS, "Platform admins"),
            ],
            users: vec![
                user(1, "Alice Employee", "alice@example.org", &[DEMO_EMPLOYEES]),
                user(
                    2,
                    "Harriet HR",
                    "harriet@example.org",
                    &[DEMO_EMPLOYEES, DEMO_HR_OWNERS],
                ),
                user(
                    3,
                    "Oscar Operations",
                    "oscar@example.org",
                    &[DEMO_EMPLOYEES, DEMO_IT_OPS],
                ),
                user(
                    4,
                    "Audrey Auditor",
                    "audrey@example.org",
                    &[DEMO_EMPLOYEES, DEMO_AUDITORS],
                ),
                user(
                    5,
                    "Ada Admin",
                    "ada@example.org",
                    &[DEMO_EMPLOYEES, DEMO_ADMINS],
                ),
            ],
            allow_network: false,
        }
    }
}

impl DevelopmentIdpConfig {
    /// The demo roles: IT operations, auditors and admins get theirs. (Assistant owners are
    /// bound per assistant once assistants exist.)
    pub fn demo_bindings() -> Vec<RoleBindingSeed> {
        [
            (Role::ItOps, DEMO_IT_OPS),
            (Role::Auditor, DEMO_AUDITORS),
            (Role::PlatformAdmin, DEMO_ADMINS),
        ]
        .into_iter()
        .map(|(role, group)| RoleBindingSeed {
            role,
            group: Some(group.to_owned()),
            app_role: None,
            assistant: None,
        })
        .collect()
    }
}

/// One `[[identity.role_bindings]]` entry: `role` granted to a `group` (object id) or an
/// `app_role`, optionally only on one `assistant`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleBindingSeed {
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

impl RoleBindingSeed {
    /// The binding this seeds, or what is wrong with it.
    pub fn binding(&self) -> Result<RoleBinding, String> {
        let grantee = match (&self.group, &self.app_role) {
            (Some(group), None) if !group.trim().is_empty() => Grantee::Group(group.clone()),
            (None, Some(role)) if !role.trim().is_empty() => Grantee::AppRole(role.clone()),
            _ => {
                return Err(format!(
                    "identity.role_bindings: a {} binding needs exactly one of group or app_role",
                    self.role
                ));
            }
        };
        if self.assistant.is_some() && self.role != Role::AssistantOwner {
            return Err(format!(
                "identity.role_bindings: only assistant_owner bindings can name an assistant, \
                 not {}",
                self.role
            ));
        }
        Ok(RoleBinding {
            role: self.role,
            grantee,
            assistant: self.assistant.clone(),
        })
    }
}
