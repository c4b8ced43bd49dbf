-- Placement: a pair may leave its DRC hypervisor empty; the first restore
-- or failover picks one and records it. SQLite cannot drop NOT NULL in
-- place, so the table is rebuilt with the same columns. Keep in step with
-- ../mysql/20261129000004_placement.sql.
CREATE TABLE pairs_placed (
    id                       TEXT PRIMARY KEY NOT NULL,
    name                     TEXT NOT NULL,
    src_hypervisor_id        TEXT NOT NULL,
    src_vmid                 INTEGER NOT NULL,
    dst_hypervisor_id        TEXT,
    dst_vmid                 INTEGER NOT NULL,
    guest                    TEXT NOT NULL,
    compress                 TEXT NOT NULL,
    mode                     TEXT NOT NULL,
    start_after_restore      INTEGER NOT NULL,
    keep_last                INTEGER NOT NULL,
    keep_daily               INTEGER,
    keep_weekly              INTEGER,
    keep_monthly             INTEGER,
    auto_failover            INTEGER NOT NULL DEFAULT 0,
    enabled                  INTEGER NOT NULL DEFAULT 1,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    adopted                  INTEGER NOT NULL DEFAULT 0,
    replica_archive_id       TEXT,
    replica_task_id          TEXT,
    replica_marker           TEXT NOT NULL DEFAULT '',
    rpo_target_secs          INTEGER NOT NULL DEFAULT 90000,
    state                    VARCHAR(64) NOT NULL DEFAULT 'protected',
    drill_vmid               INTEGER,
    network_map              TEXT,
    shutdown_returned_source INTEGER NOT NULL DEFAULT 0,
    UNIQUE (dst_hypervisor_id, dst_vmid)
);
INSERT INTO pairs_placed (id, name, src_hypervisor_id, src_vmid, dst_hypervisor_id, dst_vmid, guest, compress, mode,
    start_after_restore, keep_last, keep_daily, keep_weekly, keep_monthly, auto_failover, enabled, created_at,
    updated_at, adopted, replica_archive_id, replica_task_id, replica_marker, rpo_target_secs, state, drill_vmid,
    network_map, shutdown_returned_source)
SELECT id, name, src_hypervisor_id, src_vmid, dst_hypervisor_id, dst_vmid, guest, compress, mode,
    start_after_restore, keep_last, keep_daily, keep_weekly, keep_monthly, auto_failover, enabled, created_at,
    updated_at, adopted, replica_archive_id, replica_task_id, replica_marker, rpo_target_secs, state, drill_vmid,
    network_map, shutdown_returned_source FROM pairs;
DROP TABLE pairs;
ALTER TABLE pairs_placed RENAME TO pairs;
CREATE INDEX pairs_src ON pairs (src_hypervisor_id);
