-- One row per event whose email was handed to the mail server: the consumer's
-- idempotency record (a redelivered event finds its row and sends nothing).
CREATE TABLE processed_events (
    event_id   CHAR(36)    NOT NULL PRIMARY KEY,
    event_type VARCHAR(64) NOT NULL,
    order_id   CHAR(36)    NOT NULL,
    handled_at DATETIME(6) NOT NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
