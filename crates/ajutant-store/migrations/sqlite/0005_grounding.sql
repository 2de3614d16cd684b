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
    created_at            TEXT NOT NULL,
    updated_at            TEXT NOT NULL
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
    chunk_count    INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (collection_id, source_key)
);

CREATE TABLE document_readers (
    document_id  TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    reader       TEXT NOT NULL,              -- a group id, or '*' for everyone signed in
    PRIMARY KEY (reader, document_id)
);
CREATE INDEX document_readers_document ON document_readers (document_id);

CREATE TABLE chunks (
    id             INTEGER PRIMARY KEY,       -- the FTS rowid
    document_id    TEXT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    collection_id  TEXT NOT NULL,
    ordinal        INTEGER NOT NULL,
    heading        TEXT NOT NULL,             -- "Leave > Parental leave"; '' when none
    page           INTEGER,
    text           TEXT NOT NULL,             -- the passage as shown and cited
    indexed_text   TEXT NOT NULL,             -- heading line + passage: what is searched and embedded
    tokens         INTEGER NOT NULL,
    dims           INTEGER,                   -- embedding dimensions; NULL = not embedded
    embedding      BLOB                       -- little-endian f32 × dims, unit length
);
CREATE INDEX chunks_document ON chunks (document_id, ordinal);
CREATE INDEX chunks_collection ON chunks (collection_id);

CREATE VIRTUAL TABLE chunks_fts USING fts5 (
    indexed_text,
    content = 'chunks',
    content_rowid = 'id',
    tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts (rowid, indexed_text) VALUES (new.id, new.indexed_text);
END;
CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts (chunks_fts, rowid, indexed_text) VALUES ('delete', old.id, old.indexed_text);
END;

-- A job is claimed by one worker at a time through a lease; a worker that dies leaves a lease
-- that runs out, and another worker resumes the items not yet done.
CREATE TABLE ingestion_jobs (
    id             TEXT PRIMARY KEY,          -- UUIDv7
    collection_id  TEXT NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('upload', 'sync')),
    status         TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    total          INTEGER NOT NULL DEFAULT 0,
    processed      INTEGER NOT NULL DEFAULT 0,
    added          INTEGER NOT NULL DEFAULT 0,
    updated        INTEGER NOT NULL DEFAULT 0,
    unchanged      INTEGER NOT NULL DEFAULT 0,
    removed        INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    chunks         INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    claimed_by     TEXT,
    lease_until    TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    started_at     TEXT,
    finished_at    TEXT
);
CREATE INDEX ingestion_jobs_status ON ingestion_jobs (status, created_at);

CREATE TABLE ingestion_items (
    job_id        TEXT NOT NULL REFERENCES ingestion_jobs (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    source_key    TEXT NOT NULL,
    name          TEXT NOT NULL,
    content_type  TEXT,
    acl           TEXT,                       -- JSON array, as for documents
    url           TEXT,
    content       BLOB,                       -- uploaded bytes until processed; NULL for sync items
    status        TEXT NOT NULL CHECK (status IN ('pending', 'added', 'updated', 'unchanged', 'removed', 'failed')),
    error_code    TEXT,
    error         TEXT,
    document_id   TEXT,
    PRIMARY KEY (job_id, seq)
);

CREATE TABLE assistants (
    id               TEXT PRIMARY KEY,        -- a slug: hr-helpdesk
    current_version  INTEGER NOT NULL,
    created_by       TEXT NOT NULL,
    created_at       TEXT NOT NULL
);

-- Immutable: an edit is a new version, and each turn records the version it ran on.
CREATE TABLE assistant_versions (
    assistant_id  TEXT NOT NULL REFERENCES assistants (id),
    version       INTEGER NOT NULL,
    definition    TEXT NOT NULL,              -- JSON: name, instructions, deployment, scope, ...
    created_by    TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (assistant_id, version)
);
CREATE TRIGGER assistant_versions_immutable_update BEFORE UPDATE ON assistant_versions BEGIN
    SELECT RAISE(ABORT, 'assistant versions are immutable');
END;
CREATE TRIGGER assistant_versions_immutable_delete BEFORE DELETE ON assistant_versions BEGIN
    SELECT RAISE(ABORT, 'assistant versions are immutable');
END;

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,           -- UUIDv7
    owner_id      TEXT NOT NULL,              -- Principal::id
    assistant_id  TEXT NOT NULL REFERENCES assistants (id),
    title         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX conversations_owner ON conversations (owner_id, updated_at, id);

CREATE TABLE messages (
    id                 TEXT PRIMARY KEY,      -- UUIDv7
    conversation_id    TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq                INTEGER NOT NULL,
    role               TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content            TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('complete', 'partial', 'failed')),
    error              TEXT,
    citations          TEXT NOT NULL DEFAULT '[]',  -- JSON
    assistant_version  INTEGER,
    deployment         TEXT,
    input_tokens       INTEGER,
    output_tokens      INTEGER,
    latency_ms         INTEGER,
    trace_id           TEXT,
    request_id         TEXT,
    created_at         TEXT NOT NULL,
    UNIQUE (conversation_id, seq)
);

-- One-time seeds (the demo assistant): seeded once, so deleting what a seed made is final.
CREATE TABLE seeds (
    name       TEXT PRIMARY KEY,
    seeded_at  TEXT NOT NULL
);
