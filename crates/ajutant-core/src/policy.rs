//! Who may do what. Every access question in the product is answered by [`decide`], from the
//! principal's directory groups and app roles and the role bindings (roles granted to groups or
//! app roles, optionally scoped to one assistant). Nothing else grants access, and there are no
//! local accounts: remove someone from a group in the directory and the access goes with it.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::audit::{Actor, ActorKind};
use crate::audit_action::AuditAction;

/// Someone (or something) that has proven who it is: a person signed in through the
/// organisation's identity provider, an application token, or a platform API key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The stable identity: `{issuer}#{oid}` for directory users and applications (the Entra
    /// object id, else `sub`), `apikey:{key id}` for API-key service identities (names are labels and may repeat). Never an e-mail
    /// address or display name, which change and can be reassigned.
    pub id: String,
    /// The directory's object id (`oid`, else `sub`); what SCIM deprovisioning names.
    pub subject: String,
    /// For reading the audit trail; never used to decide anything.
    pub display_name: String,
    pub kind: PrincipalKind,
    /// Directory group object ids, including those resolved through Microsoft Graph on overage.
    pub groups: BTreeSet<String>,
    /// App roles (`roles` claim), e.g. for applications calling with client credentials.
    pub app_roles: BTreeSet<String>,
    /// `tid` when the token carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A person.
    User,
    /// An application (client credentials) or an API-key service identity.
    Service,
}

impl Principal {
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.id.clone(),
            display_name: self.display_name.clone(),
            kind: match self.kind {
                PrincipalKind::User => ActorKind::User,
                PrincipalKind::Service => ActorKind::Service,
            },
        }
    }
}

/// The roles of the product's roles table. Everyone signed in is a user; what they may use is
/// decided by each assistant's access scope, so `user` is not bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Edits, versions and reads the feedback of the assistants the binding covers.
    AssistantOwner,
    /// Kill switches, the escalation feed and incidents, the audit trail, health.
    ItOps,
    /// Reads, exports and verifies the audit trail; changes nothing.
    Auditor,
    /// Everything.
    PlatformAdmin,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::AssistantOwner,
        Role::ItOps,
        Role::Auditor,
        Role::PlatformAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssistantOwner => "assistant_owner",
            Self::ItOps => "it_ops",
            Self::Auditor => "auditor",
            Self::PlatformAdmin => "platform_admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == value)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a binding grants its role to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Grantee {
    /// A directory group, by object id.
    Group(String),
    /// An app role carried in the token's `roles` claim.
    AppRole(String),
}

impl Grantee {
    fn matches(&self, principal: &Principal) -> bool {
        match self {
            Self::Group(id) => principal.groups.contains(id),
            Self::AppRole(name) => principal.app_roles.contains(name),
        }
    }
}

/// `role` granted to `grantee`; for [`Role::AssistantOwner`], optionally only on one assistant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleBinding {
    pub role: Role,
    pub grantee: Grantee,
    /// `None`: every assistant (or a role that is not about assistants).
    pub assistant: Option<String>,
}

/// What a caller wants to do. Assistant-scoped actions carry the assistant's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Read the audit trail or export it.
    ReadAudit,
    /// Check the audit trail's hash chain.
    VerifyAudit,
    /// Create, list and delete role bindings.
    ManageRoleBindings,
    /// Create, list and revoke platform API keys.
    ManageApiKeys,
    /// Manage deployments, connectors and retention.
    ManagePlatform,
    /// Create assistants.
    CreateAssistant,
    /// Edit, version and read the feedback of one assistant.
    EditAssistant(String),
    /// Pull one assistant (kill switch), or bring back one its owners pulled.
    KillAssistant(String),
    /// Bring back an assistant that IT operations or an admin pulled: not for its owners.
    ReviveAssistant(String),
    /// Pull one deployment (kill switch) or bring it back.
    KillDeployment(String),
    /// Stop the whole platform.
    KillPlatform,
    /// Bring the platform back after a platform-wide stop.
    RevivePlatform,
    /// The escalation feed and incidents.
    HandleIncidents,
    /// Model usage and cost, by principal, group, deployment and day.
    ReadUsage,
    /// Create and remove collections.
    CreateCollection,
    /// Change one collection's settings and documents (its owner group may too).
    ManageCollection(String),
}

impl Action {
    /// The audit trail's name for it.
    pub fn name(&self) -> &'static str {
        self.audit_action().as_str()
    }

    /// The catalogue entry its decision records are written under.
    pub fn audit_action(&self) -> AuditAction {
        match self {
            Self::ReadAudit => AuditAction::ReadAudit,
            Self::VerifyAudit => AuditAction::VerifyAudit,
            Self::ManageRoleBindings => AuditAction::ManageRoleBindings,
            Self::ManageApiKeys => AuditAction::ManageApiKeys,
            Self::ManagePlatform => AuditAction::ManagePlatform,
            Self::CreateAssistant => AuditAction::CreateAssistant,
            Self::EditAssistant(_) => AuditAction::EditAssistant,
            Self::KillAssistant(_) => AuditAction::KillAssistant,
            Self::ReviveAssistant(_) => AuditAction::ReviveAssistant,
            Self::KillDeployment(_) => AuditAction::KillDeployment,
            Self::KillPlatform => AuditAction::KillPlatform,
            Self::RevivePlatform => AuditAction::RevivePlatform,
            Self::HandleIncidents => AuditAction::HandleIncidents,
            Self::ReadUsage => AuditAction::ReadUsage,
            Self::CreateCollection => AuditAction::CreateCollection,
            Self::ManageCollection(_) => AuditAction::ManageCollection,
        }
    }

    fn assistant(&self) -> Option<&str> {
        match self {
            Self::EditAssistant(id) | Self::KillAssistant(id) => Some(id),
            _ => None,
        }
    }

    /// Roles that grant this action on their own, whatever the binding's scope.
    fn granted_by(&self) -> &'static [Role] {
        use Role::*;
        match self {
            Self::ReadAudit | Self::VerifyAudit => &[Auditor, ItOps, PlatformAdmin],
            Self::ManageRoleBindings
            | Self::ManageApiKeys
            | Self::ManagePlatform
            | Self::CreateAssistant
            | Self::CreateCollection
            | Self::ManageCollection(_)
            | Self::RevivePlatform => &[PlatformAdmin],
            Self::EditAssistant(_) => &[PlatformAdmin],
            Self::KillAssistant(_)
            | Self::ReviveAssistant(_)
            | Self::KillDeployment(_)
            | Self::KillPlatform
            | Self::HandleIncidents
            | Self::ReadUsage => &[ItOps, PlatformAdmin],
        }
    }
}

/// Who may use an assistant or read a collection: everyone signed in to the organisation, or
/// the members of some directory groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case", deny_unknown_fields)]
pub enum AccessScope {
    Organisation,
    Groups { groups: Vec<String> },
}

/// Whether `principal` is in the owner group of an assistant or collection (whose members
/// manage it, besides the roles that grant that).
pub fn in_owner_group(principal: &Principal, owner_group: Option<&str>) -> bool {
    owner_group.is_some_and(|group| principal.groups.contains(group))
}

/// The stored form of "everyone signed in" in reader lists.
pub const EVERYONE: &str = "*";

impl AccessScope {
    pub fn admits(&self, principal: &Principal) -> bool {
        match self {
            Self::Organisation => true,
            Self::Groups { groups } => groups.iter().any(|g| principal.groups.contains(g)),
        }
    }

    /// Whether everyone this scope admits is also admitted by `groups`, a deployment's grant
    /// (an empty grant admits everyone signed in). A group scope is covered when each of its
    /// groups is granted; the organisation only by an empty grant.
    pub fn covered_by(&self, groups: &[String]) -> bool {
        groups.is_empty()
            || match self {
                Self::Organisation => false,
                Self::Groups { groups: mine } => mine.iter().all(|g| groups.contains(g)),
            }
    }

    /// As a reader list: group ids, or `["*"]`.
    pub fn readers(&self) -> Vec<String> {
        match self {
            Self::Organisation => vec![EVERYONE.to_owned()],
            Self::Groups { groups } => groups.clone(),
        }
    }

    pub fn from_readers(readers: &[String]) -> Self {
        if readers.iter().any(|r| r == EVERYONE) {
            Self::Organisation
        } else {
            Self::Groups {
                groups: readers.to_vec(),
            }
        }
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Organisation => None,
            Self::Groups { groups } if groups.is_empty() => {
                Some("a group scope needs at least one group".to_owned())
            }
            Self::Groups { groups } => groups
                .iter()
                .find(|g| g.trim().is_empty() || g.as_str() == EVERYONE || g.len() > 200)
                .map(|g| format!("{g:?} is not a group id")),
        }
    }
}

/// The answer, with the role that allowed it (for the audit record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed(Role),
    Denied,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        matches!(self, Self::Allowed(_))
    }
}

/// The one access decision. Allowed when a binding that matches one of the principal's groups or
/// app roles grants a role that grants the action; an assistant owner's binding counts only for
/// the assistant it names (or for all, when it names none).
pub fn decide(principal: &Principal, bindings: &[RoleBinding], action: &Action) -> Decision {
    let mut held = bindings.iter().filter(|b| b.grantee.matches(principal));
    let allowed = held.find(|binding| {
        if action.granted_by().contains(&binding.role) {
            return true;
        }
        // Owners act on their own assistants only.
        binding.role == Role::AssistantOwner
            && matches!(action, Action::EditAssistant(_) | Action::KillAssistant(_))
            && match (&binding.assistant, action.assistant()) {
                (None, Some(_)) => true,
                (Some(scope), Some(target)) => scope == target,
                _ => false,
            }
    });
    match allowed {
        Some(binding) => Decision::Allowed(binding.role),
        None => Decision::Denied,
    }
}

/// Something with owners and users: an assistant or a collection. Its owner group's members
/// manage it, as do the roles that grant `manage`; its scope says who else may use (or read) it.
#[derive(Debug, Clone, Copy)]
pub struct Owned<'a> {
    pub owner_group: Option<&'a str>,
    pub scope: &'a AccessScope,
    /// The action that managing it is (`EditAssistant(id)`, `ManageCollection(id)`).
    pub manage: &'a Action,
}

/// What allowed someone to manage an owned resource, for the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A member of its owner group.
    OwnerGroup(String),
    /// A role bound to one of their groups or app roles.
    Role(Role),
}

impl Grant {
    /// How the audit trail and the kill switches name it: the role, or `owner_group`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::OwnerGroup(_) => "owner_group",
            Self::Role(role) => role.as_str(),
        }
    }
}

/// Where someone stands towards an owned resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// May change it (and use it).
    Manages(Grant),
    /// Is in its scope: may use the assistant, read the collection.
    Uses,
    /// Neither: for them it does not exist.
    Outsider,
}

impl Standing {
    pub fn manages(&self) -> bool {
        matches!(self, Self::Manages(_))
    }

    pub fn sees(&self) -> bool {
        !matches!(self, Self::Outsider)
    }
}

/// Whether `principal` may manage `owned`, and what allows it: its owner group first, else the
/// roles for `owned.manage`.
pub fn manage_grant(
    principal: &Principal,
    bindings: &[RoleBinding],
    owned: Owned<'_>,
) -> Option<Grant> {
    if let Some(group) = owned.owner_group
        && in_owner_group(principal, Some(group))
    {
        return Some(Grant::OwnerGroup(group.to_owned()));
    }
    match decide(principal, bindings, owned.manage) {
        Decision::Allowed(role) => Some(Grant::Role(role)),
        Decision::Denied => None,
    }
}

/// The one rule for owned resources: managers see and change it, those in its scope use it,
/// and for everyone else it does not exist.
pub fn standing(principal: &Principal, bindings: &[RoleBinding], owned: Owned<'_>) -> Standing {
    match manage_grant(principal, bindings, owned) {
        Some(grant) => Standing::Manages(grant),
        None if owned.scope.admits(principal) => Standing::Uses,
        None => Standing::Outsider,
    }
}

/// The roles a principal holds through `bindings`, with the assistant each is limited to.
pub fn roles_of(principal: &Principal, bindings: &[RoleBinding]) -> Vec<(Role, Option<String>)> {
    let mut roles: Vec<(Role, Option<String>)> = bindings
        .iter()
        .filter(|b| b.grantee.matches(principal))
        .map(|b| (b.role, b.assistant.clone()))
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(groups: &[&str], app_roles: &[&str]) -> Principal {
        Principal {
            id: "https://idp.example#u1".to_owned(),
            subject: "u1".to_owned(),
            display_name: "U".to_owned(),
            kind: PrincipalKind::User,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            app_roles: app_roles.iter().map(|r| (*r).to_owned()).collect(),
            tenant: None,
        }
    }

    fn binding(role: Role, group: &str, assistant: Option<&str>) -> RoleBinding {
        RoleBinding {
            role,
            grantee: Grantee::Group(group.to_owned()),
            assistant: assistant.map(str::to_owned),
        }
    }

    /// Users in different groups × actions: exactly the marked cells are allowed.
    #[test]
    fn a_deployment_covers_a_scope_only_when_it_grants_every_group_of_it() {
        let groups = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let staff = AccessScope::Groups {
            groups: groups(&["staff"]),
        };
        let two = AccessScope::Groups {
            groups: groups(&["staff", "hr"]),
        };
        assert!(staff.covered_by(&[]));
        assert!(AccessScope::Organisation.covered_by(&[]));
        assert!(staff.covered_by(&groups(&["admins", "staff"])));
        assert!(!two.covered_by(&groups(&["staff"])));
        assert!(two.covered_by(&groups(&["hr", "staff"])));
        assert!(!AccessScope::Organisation.covered_by(&groups(&["staff"])));
    }

    #[test]
    fn only_the_allowed_cells_pass() {
        let bindings = vec![
            binding(Role::ItOps, "g-ops", None),
            binding(Role::Auditor, "g-audit", None),
            binding(Role::PlatformAdmin, "g-admin", None),
            binding(Role::AssistantOwner, "g-hr", Some("hr-bot")),
            RoleBinding {
                role: Role::Auditor,
                grantee: Grantee::AppRole("Audit.Read".to_owned()),
                assistant: None,
            },
        ];
        let people = [
            ("employee", principal(&["g-staff"], &[])),
            ("it_ops", principal(&["g-staff", "g-ops"], &[])),
            ("auditor", principal(&["g-audit"], &[])),
            ("admin", principal(&["g-admin"], &[])),
            ("hr_owner", principal(&["g-staff", "g-hr"], &[])),
            ("audit_app", principal(&[], &["Audit.Read"])),
        ];
        let actions = [
            Action::ReadAudit,
            Action::VerifyAudit,
            Action::ManageRoleBindings,
            Action::ManageApiKeys,
            Action::EditAssistant("hr-bot".to_owned()),
            Action::EditAssistant("it-bot".to_owned()),
            Action::KillAssistant("hr-bot".to_owned()),
            Action::KillAssistant("it-bot".to_owned()),
            Action::KillPlatform,
            Action::RevivePlatform,
            Action::ReviveAssistant("hr-bot".to_owned()),
            Action::KillDeployment("gpt".to_owned()),
            Action::HandleIncidents,
        ];
        // Rows follow `people`, columns follow `actions`.
        #[rustfmt::skip]
        let expected = [
            //  read  verify bind  keys  edHR  edIT  kHR   kIT   kPlat revive rvHR  kDep  incid
            [false, false, false, false, false, false, false, false, false, false, false, false, false], // employee
            [true,  true,  false, false, false, false, true,  true,  true,  false, true,  true,  true ], // it_ops
            [true,  true,  false, false, false, false, false, false, false, false, false, false, false], // auditor
            [true,  true,  true,  true,  true,  true,  true,  true,  true,  true,  true,  true,  true ], // admin
            [false, false, false, false, true,  false, true,  false, false, false, false, false, false], // hr_owner
            [true,  true,  false, false, false, false, false, false, false, false, false, false, false], // audit_app
        ];
        let mut wrong = Vec::new();
        for (row, (who, principal)) in people.iter().enumerate() {
            for (column, action) in actions.iter().enumerate() {
                let allowed = decide(principal, &bindings, action).is_allowed();
                if allowed != expected[row][column] {
                    wrong.push(format!("{who} {action:?}: got {allowed}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// One of every action, on `hr-bot` where it takes an assistant. The match has no `_` arm:
    /// a new action does not compile until it is in the matrix below.
    fn every_action() -> Vec<Action> {
        let hr = || "hr-bot".to_owned();
        let all = vec![
            Action::ReadAudit,
            Action::VerifyAudit,
            Action::ManageRoleBindings,
            Action::ManageApiKeys,
            Action::ManagePlatform,
            Action::CreateAssistant,
            Action::EditAssistant(hr()),
            Action::KillAssistant(hr()),
            Action::ReviveAssistant(hr()),
            Action::KillDeployment("gpt".to_owned()),
            Action::KillPlatform,
            Action::RevivePlatform,
            Action::HandleIncidents,
            Action::ReadUsage,
            Action::CreateCollection,
            Action::ManageCollection("c1".to_owned()),
        ];
        for action in &all {
            match action {
                Action::ReadAudit
                | Action::VerifyAudit
                | Action::ManageRoleBindings
                | Action::ManageApiKeys
                | Action::ManagePlatform
                | Action::CreateAssistant
                | Action::EditAssistant(_)
                | Action::KillAssistant(_)
                | Action::ReviveAssistant(_)
                | Action::KillDeployment(_)
                | Action::KillPlatform
                | Action::RevivePlatform
                | Action::HandleIncidents
                | Action::ReadUsage
                | Action::CreateCollection
                | Action::ManageCollection(_) => {}
            }
        }
        all
    }

    /// Every action × every role held alone (and none): exactly the roles the product's roles
    /// table names pass.
    #[test]
    fn every_action_is_allowed_to_exactly_its_roles() {
        use Role::{AssistantOwner as Own, Auditor as Aud, ItOps as Ops, PlatformAdmin as Adm};
        let expected: &[(&str, &[Role])] = &[
            ("audit.read", &[Ops, Aud, Adm]),
            ("audit.verify", &[Ops, Aud, Adm]),
            ("role_bindings.manage", &[Adm]),
            ("api_keys.manage", &[Adm]),
            ("platform.manage", &[Adm]),
            ("assistant.create", &[Adm]),
            ("assistant.edit", &[Own, Adm]),
            ("assistant.kill", &[Own, Ops, Adm]),
            ("assistant.revive", &[Ops, Adm]),
            ("deployment.kill", &[Ops, Adm]),
            ("platform.kill", &[Ops, Adm]),
            ("platform.revive", &[Adm]),
            ("incidents.handle", &[Ops, Adm]),
            ("usage.read", &[Ops, Adm]),
            ("collection.create", &[Adm]),
            ("collection.manage", &[Adm]),
        ];
        let actions = every_action();
        assert_eq!(actions.len(), expected.len());
        let nobody = principal(&["g-staff"], &[]);
        for (action, (name, roles)) in actions.iter().zip(expected) {
            assert_eq!(action.name(), *name);
            assert!(
                !decide(&nobody, &[], action).is_allowed(),
                "{name} without a role"
            );
            for role in Role::ALL {
                let holder = principal(&["g-role"], &[]);
                let bindings = [binding(role, "g-role", None)];
                assert_eq!(
                    decide(&holder, &bindings, action),
                    if roles.contains(&role) {
                        Decision::Allowed(role)
                    } else {
                        Decision::Denied
                    },
                    "{role} on {name}"
                );
            }
        }
    }

    #[test]
    fn owners_manage_through_their_group_before_any_role() {
        let scope = AccessScope::Groups {
            groups: vec!["g-staff".to_owned()],
        };
        let manage = Action::EditAssistant("hr-bot".to_owned());
        let owned = Owned {
            owner_group: Some("g-hr"),
            scope: &scope,
            manage: &manage,
        };
        let bindings = [
            binding(Role::PlatformAdmin, "g-admin", None),
            binding(Role::AssistantOwner, "g-it", Some("it-bot")),
        ];
        let owner = principal(&["g-hr", "g-admin"], &[]);
        assert_eq!(
            standing(&owner, &bindings, owned),
            Standing::Manages(Grant::OwnerGroup("g-hr".to_owned()))
        );
        let admin = principal(&["g-admin"], &[]);
        assert_eq!(
            standing(&admin, &bindings, owned),
            Standing::Manages(Grant::Role(Role::PlatformAdmin))
        );
        assert_eq!(
            standing(&principal(&["g-staff"], &[]), &bindings, owned),
            Standing::Uses
        );
        // Owning another assistant is not owning this one.
        let other_owner = principal(&["g-it"], &[]);
        assert_eq!(standing(&other_owner, &bindings, owned), Standing::Outsider);
        assert!(!Standing::Outsider.sees());
        // No owner group: only roles manage it.
        let unowned = Owned {
            owner_group: None,
            ..owned
        };
        assert_eq!(
            standing(&principal(&["g-hr"], &[]), &bindings, unowned),
            Standing::Outsider
        );
    }

    #[test]
    fn no_bindings_means_nothing_is_allowed() {
        let admin_looking = principal(&["g-admin"], &["platform_admin"]);
        assert_eq!(
            decide(&admin_looking, &[], &Action::ManageRoleBindings),
            Decision::Denied
        );
    }

    #[test]
    fn the_roles_held_are_listed_once_with_their_scope() {
        let bindings = vec![
            binding(Role::AssistantOwner, "g-hr", Some("hr-bot")),
            binding(Role::AssistantOwner, "g-hr", Some("hr-bot")),
            binding(Role::Auditor, "g-other", None),
        ];
        let roles = roles_of(&principal(&["g-hr"], &[]), &bindings);
        assert_eq!(
            roles,
            vec![(Role::AssistantOwner, Some("hr-bot".to_owned()))]
        );
        assert_eq!(Role::parse("it_ops"), Some(Role::ItOps));
        assert_eq!(Role::parse("root"), None);
    }
}
