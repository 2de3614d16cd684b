-- Feedback on answers, incidents opened by escalations, the durable notification outbox, the
-- operations event log every instance follows (escalations, incident changes, kill switches),
-- and kill switches with who, why and when.

-- One row per user per answer, edited in place. What was judged (question, answer, citations,
-- assistant version, deployment, trace) is copied in, so the owner sees it even after the user
-- deletes the conversation: no foreign key to `messages`.
CREATE TABLE feedback (
    id                  TEXT PRIMARY KEY,     -- UUIDv7
    message_id          TEXT NOT NULL,
    conversation_id     TEXT NOT NULL,
    assistant_id        TEXT NOT NULL REFERENCES assistants (id),
    assistant_version   INTEGER NOT NULL,
    deployment          TEXT,
    trace_id            TEXT,
    citations           TEXT NOT NULL,        -- JSON, as the answer cited them
    question            TEXT NOT NULL,
    answer              TEXT NOT NULL,
    principal_id        TEXT NOT NULL,
    principal_name      TEXT NOT NULL,
    helpful             INTEGER CHECK (helpful IN (0, 1)),   -- NULL: not said
    time_saved_minutes  INTEGER CHECK (time_saved_minutes >= 0),
    categories          TEXT NOT NULL DEFAULT '[]',          -- JSON array of codes
    comment             TEXT,
    serious             INTEGER NOT NULL CHECK (serious IN (0, 1)),
    escalated           INTEGER NOT NULL DEFAULT 0 CHECK (escalated IN (0, 1)),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    UNIQUE (message_id, principal_id)
);
CREATE INDEX feedback_assistant ON feedback (assistant_id, created_at, id);

-- The categories again, one row each, so filters and counts are the same SQL on both databases.
CREATE TABLE feedback_categories (
    feedback_id  TEXT NOT NULL REFERENCES feedback (id) ON DELETE CASCADE,
    category     TEXT NOT NULL,
    PRIMARY KEY (feedback_id, category)
);
CREATE INDEX feedback_categories_category ON feedback_categories (category, feedback_id);

CREATE TABLE incidents (
    id                  TEXT PRIMARY KEY,     -- UUIDv7
    feedback_id         TEXT NOT NULL UNIQUE REFERENCES feedback (id),
    message_id          TEXT NOT NULL,
    conversation_id     TEXT NOT NULL,
    assistant_id        TEXT NOT NULL REFERENCES assistants (id),
    assistant_version   INTEGER NOT NULL,
    deployment          TEXT,
    trace_id            TEXT,
    categories          TEXT NOT NULL,        -- JSON, at the time of the escalation
    serious             INTEGER NOT NULL CHECK (serious IN (0, 1)),
    reported_by         TEXT NOT NULL,
    reported_by_name    TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    assignee            TEXT,
    opened_at           TEXT NOT NULL,
    acknowledged_at     TEXT,
    resolved_at         TEXT,
    updated_at          TEXT NOT NULL
);
CREATE INDEX incidents_status ON incidents (status, opened_at, id);
CREATE INDEX incidents_opened ON incidents (opened_at, id);

-- An incident's timeline: status changes, assignments, notes and actions taken.
CREATE TABLE incident_events (
    id           TEXT PRIMARY KEY,            -- UUIDv7
    incident_id  TEXT NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('opened', 'acknowledged', 'resolved', 'reopened', 'assigned', 'note', 'action', 'feedback_changed')),
    text         TEXT,
    actor_id     TEXT NOT NULL,
    actor_name   TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE INDEX incident_events_incident ON incident_events (incident_id, created_at, id);

-- Notifications to send, written in the same transaction as what they announce, so a crash
-- between commit and send still delivers after a restart. The id is the `webhook-id`: the same
-- on every attempt, so receivers can drop duplicates.
CREATE TABLE outbox (
    id               TEXT PRIMARY KEY,        -- msg_<UUIDv7>
    target           TEXT NOT NULL,           -- a [[notifications.webhooks]] name
    event            TEXT NOT NULL,           -- incident.opened
    subject          TEXT NOT NULL,           -- the incident's id
    payload          TEXT NOT NULL,           -- JSON; rendered for the target's format at send time
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    leased_by        TEXT,
    leased_until     TEXT,
    last_error       TEXT,
    created_at       TEXT NOT NULL,
    finished_at      TEXT
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);

-- What IT operations' live feed shows, in the order it happened. Every instance follows it
-- (PostgreSQL: LISTEN/NOTIFY, with polling as the fallback), so an escalation received by one
-- instance reaches feeds open on all of them. Short-lived: purged after a day.
CREATE TABLE ops_events (
    id          TEXT PRIMARY KEY,             -- UUIDv7
    kind        TEXT NOT NULL,                -- escalation, incident, switch
    subject     TEXT NOT NULL,                -- the incident's id; a switch's target/id
    created_at  TEXT NOT NULL
);
CREATE INDEX ops_events_created ON ops_events (created_at, id);

-- Kill switches: one row per target ever switched, holding its current state; the history is in
-- the audit trail. No row means active.
CREATE TABLE kill_switches (
    target           TEXT NOT NULL CHECK (target IN ('platform', 'assistant', 'deployment')),
    target_id        TEXT NOT NULL,           -- '' for the platform
    state            TEXT NOT NULL CHECK (state IN ('killed', 'active')),
    reason           TEXT NOT NULL,
    changed_by       TEXT NOT NULL,
    changed_by_name  TEXT NOT NULL,
    changed_by_role  TEXT NOT NULL,           -- what allowed it: it_ops, platform_admin, owner
    changed_at       TEXT NOT NULL,
    PRIMARY KEY (target, target_id)
);

-- Bumped in the same transaction as every switch, so instances notice a change with one read.
CREATE TABLE switch_revision (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    revision  INTEGER NOT NULL
);
INSERT INTO switch_revision (id, revision) VALUES (1, 0);

-- A collection's recent ingestion jobs, for its page.
CREATE INDEX ingestion_jobs_collection ON ingestion_jobs (collection_id, created_at, id);
