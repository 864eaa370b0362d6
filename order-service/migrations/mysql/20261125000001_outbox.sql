-- Events waiting to be relayed to the bus. `seq` orders them; the relay claims
-- unsent rows with FOR UPDATE SKIP LOCKED and stamps `sent_at` once published.
CREATE TABLE outbox (
    seq           BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id      CHAR(36)     NOT NULL,
    event_type    VARCHAR(64)  NOT NULL,
    topic         VARCHAR(128) NOT NULL,
    event_key     VARCHAR(64)  NOT NULL,
    payload       LONGTEXT     NOT NULL,
    trace_context VARCHAR(1024) NOT NULL DEFAULT '{}',
    created_at    DATETIME(6)  NOT NULL,
    sent_at       DATETIME(6)  NULL,
    attempts      INT          NOT NULL DEFAULT 0,
    CONSTRAINT outbox_event_id_unique UNIQUE (event_id),
    INDEX outbox_unsent (sent_at, seq)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
