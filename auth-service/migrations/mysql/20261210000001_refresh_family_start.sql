-- When a refresh-token family began (its login), copied to every rotation, so the
-- family ends a fixed time after it (ECOM_REFRESH_FAMILY_LIFETIME_SECS) however often
-- it rotates. NULL only on rows written before this column: they count from their own
-- creation, and their rotations carry that start on.
ALTER TABLE refresh_tokens ADD COLUMN family_started_at DATETIME(6) NULL;
