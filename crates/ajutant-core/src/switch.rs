//! Kill switches: what IT operations (and an assistant's owners, for their own) can switch off
//! at once, everywhere.

crate::text_enum! {
    /// What a switch turns off.
    pub enum SwitchTarget("switch target") {
        /// Every model call and every answer.
        Platform => "platform",
        /// One assistant's answers.
        Assistant => "assistant",
        /// One deployment, for the gateway and for every assistant that uses it.
        Deployment => "deployment",
    }
}

crate::text_enum! {
    /// A switch's position.
    pub enum SwitchState("switch state") {
        Killed => "killed",
        Active => "active",
    }
}

/// Who holds a switch off, weakest first. An assistant's owners may pull their own assistant;
/// IT operations (and platform admins, acting as them) may pull anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Holder {
    Owners,
    Operations,
}

impl Holder {
    /// The holder a switch's recorded role names (`owner_group`, `assistant_owner`, or a role
    /// of IT operations'). A role this build does not know counts as the strictest.
    pub fn of_role(role: &str) -> Self {
        match role {
            "owner_group" | "assistant_owner" => Self::Owners,
            _ => Self::Operations,
        }
    }

    /// What a person should be told when their change would loosen this holder's switch.
    pub fn name(self) -> &'static str {
        match self {
            Self::Owners => "the assistant's owners",
            Self::Operations => "IT operations",
        }
    }
}

/// Whether someone acting as `changer` may overwrite a switch stored as `stored` (its state and
/// recorded role). A kill never weakens a stricter one: what IT operations hold off, owners can
/// neither take over by pulling it again nor bring back.
pub fn may_overwrite(stored: Option<(SwitchState, &str)>, changer: Holder) -> bool {
    match stored {
        Some((SwitchState::Killed, role)) => Holder::of_role(role) <= changer,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kill_is_overwritten_only_by_an_equal_or_stricter_holder() {
        let it_ops = Some((SwitchState::Killed, "it_ops"));
        let owners = Some((SwitchState::Killed, "owner_group"));
        assert!(!may_overwrite(it_ops, Holder::Owners));
        assert!(may_overwrite(it_ops, Holder::Operations));
        assert!(may_overwrite(owners, Holder::Owners));
        assert!(may_overwrite(owners, Holder::Operations));
        assert!(may_overwrite(
            Some((SwitchState::Active, "it_ops")),
            Holder::Owners
        ));
        assert!(may_overwrite(None, Holder::Owners));
        assert!(!may_overwrite(
            Some((SwitchState::Killed, "a-future-role")),
            Holder::Owners
        ));
    }
}
