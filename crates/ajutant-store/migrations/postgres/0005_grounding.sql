-- Needs pgvector (Azure Database for PostgreSQL offers it as an allow-listed extension).
CREATE EXTENSION IF NOT EXISTS vector;

-- Grounding and the chat runtime: collections of documents cut into passages (chunks) with
-- their full-text and vector indexes, durable ingestion jobs, assistants with immutable
-- versions, and conversations. Who may read a document is materialised in `document_readers`
-- (the collection's scope intersected with the document's own ACL), so every retrieval query
-- trims by it inside the query.

CREATE TABLE collections (
    id                    TEXT PRIMARY KEY,   -- UUIDv7
    name                  TEXT NOT NULL UNIQUE,
    description           TEXT NOT NULL DEFAULT '',
    readers               TEXT NOT NULL,      -- JSON array of group ids; ["*"] = the whole organisation
    owner_group           TEXT,               -- members manage its documents
    embedding_deployment  TEXT,               -- NULL: lexical retrieval only
    source                TEXT,               -- JSON: ajutant_server's connector settings, NULL for uploads only
    created_by            TEXT NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    updated_at            TIMESTAMPTZ NOT NULL
);

CREATE TABLE documents (
    id             TEXT PRIMARY KEY,          -- UUIDv7
    collection_id  TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    source_key     TEXT NOT NULL,             -- stable within the collection: a path, a blob name
    title          TEXT NOT NULL,
    kind           TEXT,                      -- what the content really is (sniffed)
    size_bytes     BIGINT NOT NULL,
    content_hash   TEXT NOT NULL,             -- SHA-256 of the bytes: unchanged documents are skipped
    url            TEXT,
    acl            TEXT,                      -- JSON array of group ids from the source; NULL = none
    status         TEXT NOT NULL CHECK (status IN ('ready', 'failed')),
    error_code     TEXT,
    error          TEXT,
    chunk_count    BIGINT NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (collection_id, source_key)
);

CREATE TABLE document_readers (
    document_id  TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    reader       TEXT NOT NULL,              -- a group id, or '*' for everyone signed in
    PRIMARY KEY (reader, document_id)
);
CREATE INDEX document_readers_document ON document_readers (document_id);

CREATE TABLE chunks (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id    TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    collection_id  TEXT NOT NULL,
    ordinal        BIGINT NOT NULL,
    heading        TEXT NOT NULL,             -- "Leave > Parental leave"; '' when none
    page           BIGINT,
    text           TEXT NOT NULL,             -- the passage as shown and cited
    indexed_text   TEXT NOT NULL,             -- heading line + passage: what is searched and embedded
    tokens         BIGINT NOT NULL,
    dims           BIGINT,                   -- embedding dimensions; NULL = not embedded
    embedding      vector                     -- unit length; HNSW-indexed per dimension below
);
CREATE INDEX chunks_document ON chunks (document_id, ordinal);
CREATE INDEX chunks_collection ON chunks (collection_id);

-- Full-text search: a generated tsvector with a GIN index. Vectors: pgvector with an HNSW index
-- per dimension (a typmod-less column holds any dimension; the partial expression index serves
-- queries that cast to the same dimension). 384 is all-MiniLM-L6-v2's; other dimensions get
-- their index when a collection first uses them.
ALTER TABLE chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', indexed_text)) STORED;
CREATE INDEX chunks_tsv ON chunks USING GIN (tsv);
CREATE INDEX chunks_embedding_384 ON chunks
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE dims = 384;

-- A job is claimed by one worker at a time through a lease; a worker that dies leaves a lease
-- that runs out, and another worker resumes the items not yet done.
CREATE TABLE ingestion_jobs (
    id             TEXT PRIMARY KEY,          -- UUIDv7
    collection_id  TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('upload', 'sync')),
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    total          BIGINT NOT NULL DEFAULT 0,
    processed      BIGINT NOT NULL DEFAULT 0,
    added          BIGINT NOT NULL DEFAULT 0,
    updated        BIGINT NOT NULL DEFAULT 0,
    unchanged      BIGINT NOT NULL DEFAULT 0,
    removed        BIGINT NOT NULL DEFAULT 0,
    failed         BIGINT NOT NULL DEFAULT 0,
    chunks         BIGINT NOT NULL DEFAULT 0,
    error          TEXT,
    claimed_by     TEXT,
    lease_until    TIMESTAMPTZ,
    attempts       BIGINT NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ
);
CREATE INDEX ingestion_jobs_status ON ingestion_jobs (status, created_at);

CREATE TABLE ingestion_items (
    job_id        TEXT NOT NULL REFERENCES ingestion_jobs (id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    source_key    TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT,
    acl           TEXT,                       -- JSON array, as for documents
    url           TEXT,
    content       BYTEA,                       -- uploaded bytes until processed; NULL for sync items
    status        TEXT NOT NULL CHECK (status IN ('pending', 'added', 'updated', 'unchanged', 'removed', 'failed')),
    error_code    TEXT,
    error         TEXT,
    document_id   TEXT,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE assistants (
    id               TEXT PRIMARY KEY,        -- a slug: hr-helpdesk
    current_version  BIGINT NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL
);

-- Immutable: an edit is a new version, and each turn records the version it ran on.
CREATE TABLE assistant_versions (
    assistant_id  TEXT NOT NULL REFERENCES assistants (id),
    version       BIGINT NOT NULL,
    definition    TEXT NOT NULL,              -- JSON: name, instructions, deployment, scope, ...
    created_by    TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
CREATE FUNCTION assistant_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'assistant versions are immutable';
END;
$$;
CREATE TRIGGER assistant_versions_immutable BEFORE UPDATE OR DELETE ON assistant_versions
    FOR EACH ROW EXECUTE FUNCTION assistant_versions_immutable();

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,           -- UUIDv7
    owner_id      TEXT NOT NULL,              -- Principal::id
    assistant_id  TEXT NOT NULL REFERENCES assistants (id),
    title         TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX conversations_owner ON conversations (owner_id, updated_at, id);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY,      -- UUIDv7
    conversation_id    TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq                BIGINT NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content            TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('complete', 'partial', 'failed')),
    error              TEXT,
    citations          TEXT NOT NULL DEFAULT '[]',  -- JSON
    assistant_version  BIGINT,
    deployment         TEXT,
    input_tokens       BIGINT,
    output_tokens      BIGINT,
    latency_ms         BIGINT,
    trace_id           TEXT,
    request_id         TEXT,
    created_at         TIMESTAMPTZ NOT NULL,
    UNIQUE (conversation_id, seq)
);

-- One-time seeds (the demo assistant): seeded once, so deleting what a seed made is final.
CREATE TABLE seeds (
    name       TEXT PRIMARY KEY,
    seeded_at  TIMESTAMPTZ NOT NULL
);
