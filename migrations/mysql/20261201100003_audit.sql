-- The audit log: who did what, when and from where. Rows are only ever
-- appended, and the oldest pruned past AUDIT_MAX_ENTRIES. Names and ids
-- only: never a secret. Keep in step with ../sqlite/20261201100003_audit.sql.
CREATE TABLE audit (
    seq          BIGINT PRIMARY KEY AUTO_INCREMENT,
    at           BIGINT NOT NULL,
    actor        VARCHAR(255) NOT NULL,
    action       VARCHAR(64) NOT NULL,
    subject_type VARCHAR(64) NOT NULL,
    subject_id   VARCHAR(64),
    detail       TEXT NOT NULL,
    source_ip    VARCHAR(64)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX audit_actor ON audit (actor, seq);
CREATE INDEX audit_action ON audit (action, seq);
