CREATE TABLE products (
    id          TEXT    NOT NULL PRIMARY KEY,
    sku         TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    category    TEXT    NOT NULL DEFAULT '',
    price_amount   INTEGER NOT NULL,
    price_currency TEXT    NOT NULL,
    created_at  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL,
    CONSTRAINT products_sku_unique UNIQUE (sku)
);
CREATE INDEX products_category ON products (category);
CREATE INDEX products_price ON products (price_amount);
CREATE INDEX products_created_at ON products (created_at);
