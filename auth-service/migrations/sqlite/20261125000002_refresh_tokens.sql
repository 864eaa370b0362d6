-- Refresh tokens, stored hashed; see the MySQL migration.
CREATE TABLE refresh_tokens (
    token_hash TEXT NOT NULL PRIMARY KEY,
    family_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT NULL,
    revoked_at TEXT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
