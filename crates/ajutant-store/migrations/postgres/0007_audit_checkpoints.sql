-- Signed positions of the audit chain (ajutant_core::audit_checkpoint): the HMAC key is held
-- outside the database, so a rewritten and re-sealed chain no longer matches them.
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,  -- the chain position signed
    hash       TEXT   NOT NULL,     -- hex: that record's hash
    signed_at  BIGINT NOT NULL,     -- Unix seconds
    signature  TEXT   NOT NULL      -- hex HMAC-SHA256
);

-- Append-only like the trail they sign: deleting them would hide a re-sealed chain.
CREATE FUNCTION audit_checkpoints_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER audit_checkpoints_refuse_update_delete
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_refuse_change();

CREATE TRIGGER audit_checkpoints_refuse_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_checkpoints_refuse_change();
