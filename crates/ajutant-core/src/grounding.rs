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

crate::text_enum! {
    /// What became of one item of a job. Each spelling is also the name of the job's counter
    /// column (`ingestion_jobs.added`, ...).
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
