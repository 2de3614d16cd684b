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
