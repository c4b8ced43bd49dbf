-- Replica ownership and safety. Keep in step with ../sqlite/20261123000001_replica_safety.sql.

ALTER TABLE pairs ADD COLUMN adopted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pairs ADD COLUMN replica_archive_id VARCHAR(64);
ALTER TABLE pairs ADD COLUMN replica_task_id VARCHAR(64);

CREATE TABLE remote_files (
    seq           BIGINT PRIMARY KEY AUTO_INCREMENT,
    task_id       VARCHAR(64) NOT NULL,
    hypervisor_id VARCHAR(64) NOT NULL,
    path          TEXT NOT NULL,
    created_at    BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX remote_files_task ON remote_files (task_id);

-- Pairs restored before markers existed: their last good restore is known
-- from the task history, and a replica restored after the pair's last edit
-- was made by drswitch, so it counts as adopted until its next restore marks it.
UPDATE pairs SET replica_archive_id = (
    SELECT t.archive_id FROM tasks t
    WHERE t.pair_id = pairs.id AND t.kind IN ('restore', 'replicate') AND t.status = 'succeeded'
      AND t.archive_id IS NOT NULL
    ORDER BY t.seq DESC LIMIT 1);
UPDATE pairs SET adopted = 1 WHERE EXISTS (
    SELECT 1 FROM tasks t
    WHERE t.pair_id = pairs.id AND t.kind IN ('restore', 'replicate') AND t.status = 'succeeded'
      AND t.finished_at >= pairs.updated_at);
