-- An in-progress key has an owner (one request) and a lease: a retry after the lease
-- ran out takes the work over instead of waiting on a process that may be dead. The
-- order the key created is recorded before it is written, so a takeover settles it.
ALTER TABLE idempotency_keys
    ADD COLUMN owner        CHAR(36)    NULL,
    ADD COLUMN locked_until DATETIME(6) NULL,
    ADD COLUMN order_id     CHAR(36)    NULL;
