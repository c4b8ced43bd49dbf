-- Sessions live in signed cookies; a session is valid only while it carries the
-- user's current epoch, which logout, a password change and deactivation bump.
-- Keep in step with ../mysql/20261123000005_session_epoch.sql.
ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
