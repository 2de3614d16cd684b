-- Signed positions of the audit chain (ajutant_core::audit_checkpoint): the HMAC key is held
-- outside the database, so a rewritten and re-sealed chain no longer matches them.
CREATE TABLE audit_checkpoints (
    seq        BIGINT PRIMARY KEY,  -- the chain position signed
    hash       TEXT   NOT NULL,     -- hex: that record's hash
    signed_at  BIGINT NOT NULL,     -- Unix seconds
    signature  TEXT   NOT NULL      -- hex HMAC-SHA256
);

-- Append-only like the trail they sign: deleting them would hide a re-sealed chain.
CREATE TRIGGER audit_checkpoints_refuse_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only: UPDATE refused');
END;

CREATE TRIGGER audit_checkpoints_refuse_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only: DELETE refused');
END;
