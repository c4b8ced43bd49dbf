-- The switch: pair state, drills, network maps, failover events. Keep in
-- step with ../sqlite/20261129000002_switch.sql.
ALTER TABLE pairs ADD COLUMN state VARCHAR(64) NOT NULL DEFAULT 'protected';
ALTER TABLE pairs ADD COLUMN drill_vmid BIGINT;
ALTER TABLE pairs ADD COLUMN network_map TEXT;
ALTER TABLE pairs ADD COLUMN shutdown_returned_source BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN forced BIGINT NOT NULL DEFAULT 0;

-- One failover, failback or drill: its steps with their times.
CREATE TABLE events (
    id          VARCHAR(64) PRIMARY KEY NOT NULL,
    pair_id     VARCHAR(64) NOT NULL,
    kind        VARCHAR(64) NOT NULL,
    task_id     VARCHAR(64),
    status      VARCHAR(64) NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    steps       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    rto_ms      BIGINT,
    forced      BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX events_pair ON events (pair_id, started_at);
