-- The idempotency record of each order's reservation; see the MySQL migration.
CREATE TABLE reservation_orders (
    order_id    TEXT NOT NULL PRIMARY KEY,
    status      TEXT NOT NULL,
    response    TEXT NULL,
    created_at  TEXT NOT NULL,
    released_at TEXT NULL
);

CREATE TABLE reservation_lines (
    order_id TEXT    NOT NULL REFERENCES reservation_orders (order_id),
    sku      TEXT    NOT NULL,
    quantity INTEGER NOT NULL,
    PRIMARY KEY (order_id, sku)
);
