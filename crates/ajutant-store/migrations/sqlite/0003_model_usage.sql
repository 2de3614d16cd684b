-- One row per model call through the gateway (and, later, the chat runtime): who, which
-- deployment, what it cost, how long it took. Written off the request path in batches; the
-- audit trail holds the tamper-evident record of the call itself, joined by request_id.
CREATE TABLE model_usage (
    id             TEXT PRIMARY KEY,   -- UUIDv7
    occurred_at    TEXT NOT NULL,
    day            TEXT NOT NULL,      -- UTC date, YYYY-MM-DD, for daily reports
    month          TEXT NOT NULL,      -- UTC month, YYYY-MM, for budgets
    principal_id   TEXT NOT NULL,
    principal_name TEXT NOT NULL,
    deployment     TEXT NOT NULL,      -- what the caller asked for
    served_by      TEXT NOT NULL,      -- what answered (differs after a fallback)
    operation      TEXT NOT NULL CHECK (operation IN ('chat', 'embeddings')),
    outcome        TEXT NOT NULL CHECK (outcome IN ('ok', 'failed', 'cancelled')),
    input_tokens   BIGINT NOT NULL,
    output_tokens  BIGINT NOT NULL,
    cost           DOUBLE PRECISION NOT NULL,
    latency_ms     BIGINT NOT NULL,
    request_id     TEXT,
    trace_id       TEXT
);
CREATE INDEX model_usage_day ON model_usage (day);
CREATE INDEX model_usage_principal_month ON model_usage (principal_id, month);

-- The caller's directory groups at the time of the call, for per-group reports and budgets.
CREATE TABLE model_usage_groups (
    usage_id       TEXT NOT NULL REFERENCES model_usage (id),
    group_id       TEXT NOT NULL,
    PRIMARY KEY (usage_id, group_id)
);
CREATE INDEX model_usage_groups_group ON model_usage_groups (group_id);
