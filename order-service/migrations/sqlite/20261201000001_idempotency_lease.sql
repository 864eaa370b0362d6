-- Owner, lease and order of an in-progress key; see the MySQL migration.
ALTER TABLE idempotency_keys ADD COLUMN owner TEXT NULL;
ALTER TABLE idempotency_keys ADD COLUMN locked_until TEXT NULL;
ALTER TABLE idempotency_keys ADD COLUMN order_id TEXT NULL;
