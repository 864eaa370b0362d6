-- One row per event whose email was handed to the mail server; see the MySQL migration.
CREATE TABLE processed_events (
    event_id   TEXT NOT NULL PRIMARY KEY,
    event_type TEXT NOT NULL,
    order_id   TEXT NOT NULL,
    handled_at TEXT NOT NULL
);
