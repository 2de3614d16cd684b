//! The catalogue of what the audit trail records: every action the product writes is one of
//! these, so a search for an action finds every place that records it, and a new record cannot
//! be written under a misspelt name. Records read back from the database keep their action as
//! text (an older release may have written names this one no longer writes).

crate::text_enum! {
    /// An audited action's name, as stored in `audit_events.action`.
    pub enum AuditAction("audit action") {
        // The service itself.
        ServerStarted => "server.started",
        ServerStopped => "server.stopped",

        // Identity.
        SignIn => "auth.sign_in",
        SignOut => "auth.sign_out",
        AuthRejected => "auth.rejected",
        GroupsUnresolved => "identity.groups_unresolved",
        ApiKeyCreated => "api_key.created",
        ApiKeyRevoked => "api_key.revoked",
        ApiKeyUsed => "api_key.used",
        RoleBindingCreated => "role_binding.created",
        RoleBindingDeleted => "role_binding.deleted",
        ScimUserCreated => "scim.user.created",
        ScimUserUpdated => "scim.user.updated",
        ScimUserDeprovisioned => "scim.user.deprovisioned",
        ScimUserDeleted => "scim.user.deleted",
        ScimRejected => "scim.rejected",

        // A resource the caller may not see was asked for (answered as missing).
        AccessHidden => "access.hidden",

        // Access decisions on protected actions (`policy::Action::audit_action`).
        ReadAudit => "audit.read",
        VerifyAudit => "audit.verify",
        ManageRoleBindings => "role_bindings.manage",
        ManageApiKeys => "api_keys.manage",
        ManagePlatform => "platform.manage",
        CreateAssistant => "assistant.create",
        EditAssistant => "assistant.edit",
        KillAssistant => "assistant.kill",
        ReviveAssistant => "assistant.revive",
        KillDeployment => "deployment.kill",
        KillPlatform => "platform.kill",
        RevivePlatform => "platform.revive",
        HandleIncidents => "incidents.handle",
        ReadUsage => "usage.read",
        CreateCollection => "collection.create",
        ManageCollection => "collection.manage",

        // The model gateway.
        DeploymentPut => "deployment.put",
        DeploymentDeleted => "deployment.deleted",
        ModelChat => "model.chat",
        ModelChatAnswer => "model.chat.answer",
        ModelEmbeddings => "model.embeddings",

        // Assistants and grounding.
        AssistantCreated => "assistant.created",
        AssistantVersioned => "assistant.versioned",
        CollectionCreated => "collection.created",
        CollectionUpdated => "collection.updated",
        CollectionSynced => "collection.synced",
        CollectionDeleted => "collection.deleted",
        CollectionSearched => "collection.searched",
        DocumentsUploaded => "documents.uploaded",
        DocumentDeleted => "document.deleted",

        // Chat.
        ConversationAccess => "conversation.access",
        ConversationDeleted => "conversation.deleted",
        ChatTurn => "chat.turn",

        // Feedback and operations.
        FeedbackGiven => "feedback.give",
        IncidentChanged => "incident.change",
        KillSwitchSet => "kill_switch.set",
        NotificationRetried => "notification.retry",
        NotificationDeadLettered => "notification.dead_lettered",
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::AuditAction;

    #[test]
    fn every_action_has_its_own_dotted_name() {
        let mut seen = HashSet::new();
        for action in AuditAction::ALL {
            let name = action.as_str();
            assert!(seen.insert(name), "{name} is named twice");
            assert!(
                name.split('.').count() >= 2
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{name} is not a dotted lower-case name"
            );
            assert_eq!(AuditAction::parse(name), Some(*action));
        }
    }
}
