-- Replica ownership and safety. Keep in step with ../mysql/20261123000001_replica_safety.sql.

-- An admin let drswitch replace the unmarked VM at the pair's current target
-- (cleared whenever the target changes and once the VM carries the marker).
ALTER TABLE pairs ADD COLUMN adopted INTEGER NOT NULL DEFAULT 0;
-- The archive the last good restore installed: what a rollback restores, and
-- what retention never removes.
ALTER TABLE pairs ADD COLUMN replica_archive_id TEXT;
-- The task that stopped or began overwriting the replica and has not yet left
-- it whole: while set, the VM at the target is ours even though a cut
-- qmrestore may have wiped its marker.
ALTER TABLE pairs ADD COLUMN replica_task_id TEXT;

-- Files a task made on a hypervisor, recorded before they exist, so they are
-- removed when the task ends in any state, or by whoever recovers it after a
-- crash. drswitch removes nothing on a host that is not listed here.
CREATE TABLE remote_files (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id       TEXT NOT NULL,
    hypervisor_id TEXT NOT NULL,
    path          TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
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
