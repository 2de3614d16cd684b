//! Incidents: what IT operations works on when feedback escalates. An incident moves open →
//! acknowledged → resolved and can be reopened from either later state; every change is an
//! entry on its timeline. The rule lives here so the store, the API and the console cannot
//! disagree about it.

crate::text_enum! {
    /// Where an incident is in its handling.
    pub enum IncidentStatus("incident status") {
        Open => "open",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
    }
}

crate::text_enum! {
    /// What a timeline entry records.
    pub enum TimelineKind("timeline entry kind") {
        Opened => "opened",
        Acknowledged => "acknowledged",
        Resolved => "resolved",
        Reopened => "reopened",
        Assigned => "assigned",
        Note => "note",
        Action => "action",
        FeedbackChanged => "feedback_changed",
    }
}

crate::text_enum! {
    /// What IT operations may write on a timeline as free text.
    pub enum NoteKind("note kind") {
        Note => "note",
        Action => "action",
    }
}

impl NoteKind {
    pub fn timeline_kind(self) -> TimelineKind {
        match self {
            Self::Note => TimelineKind::Note,
            Self::Action => TimelineKind::Action,
        }
    }
}

impl IncidentStatus {
    /// Whether an incident in this status may become `to`, and the timeline entry recording it.
    /// Staying in the same status is not a change.
    pub fn transition(self, to: IncidentStatus) -> Option<TimelineKind> {
        use IncidentStatus::{Acknowledged, Open, Resolved};
        match (self, to) {
            (Open, Acknowledged) => Some(TimelineKind::Acknowledged),
            (Open | Acknowledged, Resolved) => Some(TimelineKind::Resolved),
            (Acknowledged | Resolved, Open) => Some(TimelineKind::Reopened),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::IncidentStatus::{self, Acknowledged, Open, Resolved};
    use super::TimelineKind;

    #[test]
    fn incidents_move_forward_or_reopen_and_nothing_else() {
        let allowed = [
            (Open, Acknowledged, TimelineKind::Acknowledged),
            (Open, Resolved, TimelineKind::Resolved),
            (Acknowledged, Resolved, TimelineKind::Resolved),
            (Acknowledged, Open, TimelineKind::Reopened),
            (Resolved, Open, TimelineKind::Reopened),
        ];
        for &from in IncidentStatus::ALL {
            for &to in IncidentStatus::ALL {
                let expected = allowed
                    .iter()
                    .find(|(f, t, _)| *f == from && *t == to)
                    .map(|(_, _, kind)| *kind);
                assert_eq!(from.transition(to), expected, "{from} → {to}");
            }
        }
    }

    #[test]
    fn statuses_read_back_as_written_and_refuse_anything_else() {
        for &status in IncidentStatus::ALL {
            assert_eq!(status.as_str().parse::<IncidentStatus>(), Ok(status));
        }
        let error = "closed".parse::<IncidentStatus>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "`closed` is not a known incident status (expected one of open, acknowledged, resolved)"
        );
    }
}
