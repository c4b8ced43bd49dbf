-- The audit log: who did what, when and from where. Rows are only ever
-- appended, and the oldest pruned past AUDIT_MAX_ENTRIES. Names and ids
-- only: never a secret. Keep in step with ../mysql/20261201100003_audit.sql.
CREATE TABLE audit (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           INTEGER NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_id   TEXT,
    detail       TEXT NOT NULL,
    source_ip    TEXT
);
CREATE INDEX audit_actor ON audit (actor, seq);
CREATE INDEX audit_action ON audit (action, seq);
