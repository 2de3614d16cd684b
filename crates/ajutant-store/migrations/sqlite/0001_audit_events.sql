-- The audit trail: one row per security-relevant event, append-only and hash-chained.
-- hash = SHA-256(prev_hash || canonical form of the row); see ajutant_core::audit.
CREATE TABLE audit_events (
    seq          INTEGER PRIMARY KEY,  -- position in the chain: 1, 2, 3, ... without gaps
    id           BLOB    NOT NULL UNIQUE,  -- UUIDv7
    occurred_at  TEXT    NOT NULL,     -- UTC, fixed width: 2026-01-02T03:04:05.000000Z
    actor_id     TEXT    NOT NULL,     -- stable id: directory object id, service id, "system"
    actor_name   TEXT    NOT NULL,
    actor_kind   TEXT    NOT NULL CHECK (actor_kind IN ('user', 'service', 'system')),
    action       TEXT    NOT NULL,     -- dotted verb, e.g. server.started
    resource     TEXT    NOT NULL,
    outcome      TEXT    NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    request_id   TEXT,
    trace_id     TEXT,
    client_addr  TEXT,
    details      TEXT    NOT NULL,     -- JSON exactly as hashed; never secrets
    prev_hash    TEXT    NOT NULL,     -- hex; 64 zeros for the first record
    hash         TEXT    NOT NULL      -- hex
);

CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);

-- The database itself refuses changes; SQLite has no TRUNCATE (a bare DELETE fires the trigger).
CREATE TRIGGER audit_events_refuse_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_events_refuse_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;
