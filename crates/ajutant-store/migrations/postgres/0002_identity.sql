-- Identity and access: browser sessions, sign-ins in progress, platform API keys, role bindings
-- and the directory's provisioning state (SCIM). No passwords: people prove who they are to the
-- organisation's identity provider. Secrets (session ids, API keys) are stored as SHA-256 only.

CREATE TABLE sessions (
    id_hash        TEXT PRIMARY KEY,   -- hex SHA-256 of the cookie value
    principal      TEXT NOT NULL,      -- JSON: ajutant_core::policy::Principal
    subject        TEXT NOT NULL,      -- the directory object id, for deprovisioning
    csrf_token     TEXT NOT NULL,      -- per-session synchroniser token for form posts
    refresh_token  TEXT,               -- the provider's, to re-check the user; NULL if none
    created_at     TIMESTAMPTZ NOT NULL,
    last_seen_at   TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL,      -- absolute lifetime
    recheck_at     TIMESTAMPTZ NOT NULL,      -- next re-check with the provider
    ended_at       TIMESTAMPTZ,
    end_reason     TEXT
);
CREATE INDEX sessions_subject ON sessions (subject);

-- A sign-in between the redirect to the provider and the callback; consumed exactly once.
CREATE TABLE login_attempts (
    state_hash     TEXT PRIMARY KEY,   -- hex SHA-256 of `state`
    browser_hash   TEXT NOT NULL,      -- hex SHA-256 of the short-lived cookie binding it to a browser
    nonce          TEXT NOT NULL,
    code_verifier  TEXT NOT NULL,      -- PKCE
    return_to      TEXT NOT NULL,
    expires_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE api_keys (
    id             TEXT PRIMARY KEY,   -- the public part of the key, e.g. ajk_3f9c2a1b7d
    name           TEXT NOT NULL,      -- the service identity
    groups         TEXT NOT NULL,      -- JSON array of group ids
    secret_hash    TEXT NOT NULL,      -- hex SHA-256 of the whole key
    owner_subject  TEXT,               -- directory object id of the person responsible, if any
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    expires_at     TIMESTAMPTZ,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT,
    last_used_at   TIMESTAMPTZ
);
CREATE INDEX api_keys_owner_subject ON api_keys (owner_subject);

CREATE TABLE role_bindings (
    id             TEXT PRIMARY KEY,   -- UUIDv7
    role           TEXT NOT NULL CHECK (role IN ('assistant_owner', 'it_ops', 'auditor', 'platform_admin')),
    grantee_kind   TEXT NOT NULL CHECK (grantee_kind IN ('group', 'app_role')),
    grantee        TEXT NOT NULL,
    assistant      TEXT NOT NULL DEFAULT '',  -- '' = not limited to one assistant
    source         TEXT NOT NULL CHECK (source IN ('config', 'api')),
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (role, grantee_kind, grantee, assistant)
);

-- Users as the directory provisions them over SCIM 2.0; `active = false` locks the user out.
CREATE TABLE directory_users (
    id             TEXT PRIMARY KEY,   -- our SCIM id (UUID)
    external_id    TEXT NOT NULL UNIQUE, -- the directory object id (Entra objectId = oid)
    user_name      TEXT NOT NULL,
    display_name   TEXT NOT NULL,
    active         BOOLEAN NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    deleted_at     TIMESTAMPTZ              -- SCIM DELETE: kept as a tombstone so the lock-out stays
);
CREATE INDEX directory_users_user_name ON directory_users (user_name);
