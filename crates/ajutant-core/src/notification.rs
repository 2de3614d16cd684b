//! Notifications to IT operations' channels: where a delivery of the outbox is.

crate::text_enum! {
    /// Where one outbox row is.
    pub enum DeliveryStatus("delivery status") {
        /// Waiting for its first or next attempt.
        Pending => "pending",
        Delivered => "delivered",
        /// Given up (out of attempts, or refused for good); listed and can be requeued.
        Dead => "dead",
    }
}

crate::text_enum! {
    /// What an operations event announces to every instance's live feed.
    pub enum OpsEventKind("operations event kind") {
        /// An incident was opened.
        Escalation => "escalation",
        /// An incident changed.
        Incident => "incident",
        /// A kill switch moved.
        Switch => "switch",
    }
}
