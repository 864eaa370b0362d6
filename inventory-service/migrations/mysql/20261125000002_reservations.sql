-- One row per order that asked for stock: the idempotency record of a reservation.
-- status: RESERVED (units held), REJECTED (not enough stock; `response` is the 409
-- body to replay), RELEASED (units returned, or released before any reservation).
CREATE TABLE reservation_orders (
    order_id    CHAR(36)    NOT NULL PRIMARY KEY,
    status      VARCHAR(16) NOT NULL,
    response    TEXT        NULL,
    created_at  DATETIME(6) NOT NULL,
    released_at DATETIME(6) NULL
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;

CREATE TABLE reservation_lines (
    order_id CHAR(36)    NOT NULL,
    sku      VARCHAR(64) NOT NULL,
    quantity INT         NOT NULL,
    PRIMARY KEY (order_id, sku),
    CONSTRAINT reservation_lines_order FOREIGN KEY (order_id) REFERENCES reservation_orders (order_id)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
