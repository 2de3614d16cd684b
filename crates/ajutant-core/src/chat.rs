//! Conversations and messages: who wrote a message, and how an answer ended.

crate::text_enum! {
    /// Who wrote a message.
    pub enum MessageRole("message role") {
        User => "user",
        Assistant => "assistant",
    }
}

crate::text_enum! {
    /// How a message ended. Questions are always complete.
    pub enum MessageStatus("message status") {
        /// The whole answer.
        Complete => "complete",
        /// Cut short (the client went away, a kill switch, the time limit, a broken stream)
        /// after some text: kept, and marked incomplete.
        Partial => "partial",
        /// No answer at all.
        Failed => "failed",
    }
}

impl MessageStatus {
    /// How an answer that stopped for a reason ends: partial when it had any text.
    pub fn cut_short(text_so_far: &str) -> Self {
        if text_so_far.is_empty() {
            Self::Failed
        } else {
            Self::Partial
        }
    }

    /// Whether a user may judge an answer in this status (there is something to judge).
    pub fn rateable(self) -> bool {
        matches!(self, Self::Complete | Self::Partial)
    }
}

#[cfg(test)]
mod tests {
    use super::MessageStatus;

    #[test]
    fn an_answer_cut_short_keeps_its_text_as_partial() {
        assert_eq!(MessageStatus::cut_short(""), MessageStatus::Failed);
        assert_eq!(MessageStatus::cut_short("Half"), MessageStatus::Partial);
        assert!(MessageStatus::Partial.rateable());
        assert!(!MessageStatus::Failed.rateable());
    }
}
