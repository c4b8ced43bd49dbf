-- One row per login. A session cookie names its row and is good only while
-- the row is live: not ended (logout), used within SESSION_IDLE_SECS and
-- younger than SESSION_MAX_SECS. Logging out everywhere bumps the user's
-- session epoch as before. Keep in step with
-- ../mysql/20261201100002_login_sessions.sql.
CREATE TABLE login_sessions (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    ended_at     INTEGER
);
CREATE INDEX login_sessions_user ON login_sessions (user_id);
CREATE INDEX login_sessions_created ON login_sessions (created_at);
