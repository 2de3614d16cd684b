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
