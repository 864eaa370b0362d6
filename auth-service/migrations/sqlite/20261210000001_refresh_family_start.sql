-- When a refresh-token family began; see the MySQL migration.
ALTER TABLE refresh_tokens ADD COLUMN family_started_at TEXT NULL;
