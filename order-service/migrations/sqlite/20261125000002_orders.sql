-- Orders, their lines and idempotency keys; see the MySQL migration.
CREATE TABLE orders (
    id              TEXT    NOT NULL PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    currency        TEXT    NOT NULL,
    total_amount    INTEGER NOT NULL,
    customer_email  TEXT    NOT NULL,
    customer_name   TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    release_pending BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL
);
CREATE INDEX orders_user_created ON orders (user_id, created_at);
CREATE INDEX orders_created ON orders (created_at);
CREATE INDEX orders_status_updated ON orders (status, updated_at);

CREATE TABLE order_lines (
    order_id    TEXT    NOT NULL REFERENCES orders (id),
    line_no     INTEGER NOT NULL,
    sku         TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    quantity    INTEGER NOT NULL,
    unit_amount INTEGER NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE idempotency_keys (
    user_id      TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status_code  INTEGER NULL,
    response     TEXT    NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
