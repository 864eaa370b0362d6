CREATE TABLE orders (
    id              CHAR(36)     NOT NULL PRIMARY KEY,
    user_id         CHAR(36)     NOT NULL,
    status          VARCHAR(16)  NOT NULL,
    currency        CHAR(3)      NOT NULL,
    total_amount    BIGINT       NOT NULL,
    customer_email  VARCHAR(254) NOT NULL,
    customer_name   VARCHAR(200) NOT NULL,
    version         INT          NOT NULL,
    -- Set when stock must be (or may still be) released; cleared once inventory confirmed it.
    release_pending BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at      DATETIME(6)  NOT NULL,
    updated_at      DATETIME(6)  NOT NULL,
    INDEX orders_user_created (user_id, created_at),
    INDEX orders_created (created_at),
    INDEX orders_status_updated (status, updated_at)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE order_lines (
    order_id    CHAR(36)     NOT NULL,
    line_no     INT          NOT NULL,
    sku         VARCHAR(64)  NOT NULL,
    name        VARCHAR(200) NOT NULL,
    quantity    INT          NOT NULL,
    unit_amount BIGINT       NOT NULL,
    PRIMARY KEY (order_id, line_no),
    CONSTRAINT order_lines_order FOREIGN KEY (order_id) REFERENCES orders (id)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

-- Idempotency-Key: one row per (user, key); the response is stored once complete.
CREATE TABLE idempotency_keys (
    user_id      CHAR(36)     NOT NULL,
    idem_key     VARCHAR(255) NOT NULL,
    request_hash CHAR(64)     NOT NULL,
    status_code  INT          NULL,
    response     LONGTEXT     NULL,
    created_at   DATETIME(6)  NOT NULL,
    PRIMARY KEY (user_id, idem_key),
    INDEX idempotency_keys_created (created_at)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
