CREATE TABLE stock (
    sku        TEXT    NOT NULL PRIMARY KEY,
    available  INTEGER NOT NULL,
    reserved   INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT    NOT NULL,
    CONSTRAINT stock_available_not_negative CHECK (available >= 0),
    CONSTRAINT stock_reserved_not_negative CHECK (reserved >= 0)
);
