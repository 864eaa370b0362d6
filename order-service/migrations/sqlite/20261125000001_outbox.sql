-- Events waiting to be relayed to the bus; see the MySQL migration.
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT    NOT NULL,
    event_type    TEXT    NOT NULL,
    topic         TEXT    NOT NULL,
    event_key     TEXT    NOT NULL,
    payload       TEXT    NOT NULL,
    trace_context TEXT    NOT NULL DEFAULT '{}',
    created_at    TEXT    NOT NULL,
    sent_at       TEXT    NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT outbox_event_id_unique UNIQUE (event_id)
);
CREATE INDEX outbox_unsent ON outbox (sent_at, seq);
