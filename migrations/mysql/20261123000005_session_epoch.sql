-- Keep in step with ../sqlite/20261123000005_session_epoch.sql.
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
