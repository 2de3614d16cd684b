-- Deployments added or changed through the admin API. They override configured deployments of
-- the same name; every instance reloads when `deployment_revision` moves, so a change takes
-- effect everywhere without a restart.
CREATE TABLE deployments (
    name        TEXT PRIMARY KEY,
    config      TEXT NOT NULL,      -- JSON: ajutant_core::config::DeploymentConfig (no secrets)
    updated_by  TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- One row, bumped in the same transaction as every change, so instances notice with one read.
CREATE TABLE deployment_revision (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    revision    BIGINT NOT NULL
);
INSERT INTO deployment_revision (id, revision) VALUES (1, 0);
