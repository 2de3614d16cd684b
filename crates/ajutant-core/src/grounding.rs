//! Grounding's states: how documents arrive (ingestion jobs and what became of each item) and
//! whether a stored document can be cited.

crate::text_enum! {
    /// What started an ingestion job.
    pub enum JobKind("ingestion job kind") {
        /// Documents uploaded through the API.
        Upload => "upload",
        /// The collection's source listed and read.
        Sync => "sync",
    }
}

crate::text_enum! {
    /// Where an ingestion job is. A job is claimed from `queued`; a worker that dies leaves it
    /// `running` under a lease that another worker takes over when it lapses.
    pub enum JobStatus("ingestion job status") {
        Queued => "queued",
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
    }
}

impl JobStatus {
    /// Whether the job has ended (and will not change again).
    pub fn finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

crate::text_enum! {
    /// What became of one item of a job.
    pub enum ItemOutcome("ingestion item outcome") {
        Added => "added",
        Updated => "updated",
        /// The same bytes (SHA-256) as the stored version.
        Unchanged => "unchanged",
        /// Its source no longer lists it.
        Removed => "removed",
        Failed => "failed",
    }
}

crate::text_enum! {
    /// Whether a document's passages can be retrieved.
    pub enum DocumentStatus("document status") {
        Ready => "ready",
        /// Its first version could not be read; a later good version replaces it.
        Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::JobStatus;

    #[test]
    fn only_succeeded_and_failed_jobs_are_finished() {
        let finished: Vec<_> = JobStatus::ALL.iter().filter(|s| s.finished()).collect();
        assert_eq!(finished, [&JobStatus::Succeeded, &JobStatus::Failed]);
    }
}
