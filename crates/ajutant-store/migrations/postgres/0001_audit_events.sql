-- The audit trail: one row per security-relevant event, append-only and hash-chained.
-- hash = SHA-256(prev_hash || canonical form of the row); see ajutant_core::audit.
CREATE TABLE audit_events (
    seq          BIGINT      PRIMARY KEY,  -- position in the chain: 1, 2, 3, ... without gaps
    id           UUID        NOT NULL UNIQUE,  -- UUIDv7
    occurred_at  TIMESTAMPTZ NOT NULL,
    actor_id     TEXT        NOT NULL,     -- stable id: directory object id, service id, "system"
    actor_name   TEXT        NOT NULL,
    actor_kind   TEXT        NOT NULL CHECK (actor_kind IN ('user', 'service', 'system')),
    action       TEXT        NOT NULL,     -- dotted verb, e.g. server.started
    resource     TEXT        NOT NULL,
    outcome      TEXT        NOT NULL CHECK (outcome IN ('allowed', 'denied', 'failed')),
    request_id   TEXT,
    trace_id     TEXT,
    client_addr  TEXT,
    details      TEXT        NOT NULL,     -- JSON text exactly as hashed (jsonb would reorder it)
    prev_hash    TEXT        NOT NULL,     -- hex; 64 zeros for the first record
    hash         TEXT        NOT NULL      -- hex
);

CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);

COMMENT ON TABLE audit_events IS
    'Append-only, hash-chained audit trail. UPDATE, DELETE and TRUNCATE are refused by triggers.';

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_events_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_events_refuse_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
