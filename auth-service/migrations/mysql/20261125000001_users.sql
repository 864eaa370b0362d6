CREATE TABLE users (
    id               CHAR(36)     NOT NULL PRIMARY KEY,
    email            VARCHAR(254) NOT NULL,
    email_normalized VARCHAR(254) NOT NULL,
    name             VARCHAR(200) NOT NULL,
    password_hash    VARCHAR(255) NOT NULL,
    roles            VARCHAR(255) NOT NULL,
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    CONSTRAINT users_email_unique UNIQUE (email_normalized)
) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
