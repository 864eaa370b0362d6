CREATE TABLE stock (
    sku        VARCHAR(64) NOT NULL PRIMARY KEY,
    available  INT         NOT NULL,
    reserved   INT         NOT NULL DEFAULT 0,
    updated_at DATETIME(6) NOT NULL,
    CONSTRAINT stock_available_not_negative CHECK (available >= 0),
    CONSTRAINT stock_reserved_not_negative CHECK (reserved >= 0)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
