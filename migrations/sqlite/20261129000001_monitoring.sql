-- Monitoring, alerts and notification targets. Keep in step with
-- ../mysql/20261129000001_monitoring.sql.

-- Probe results: raw samples (span_secs 0) and 15-minute averages
-- (span_secs 900) made from them once they are 48 h old.
CREATE TABLE host_samples (
    hypervisor_id  VARCHAR(64) NOT NULL,
    at             INTEGER NOT NULL,
    span_secs      INTEGER NOT NULL DEFAULT 0,
    api_up         REAL,
    ssh_up         REAL,
    cpu_pct        REAL,
    mem_pct        REAL,
    mem_free_bytes INTEGER,
    disk_pct       REAL,
    backup_pct     REAL,
    services       TEXT,
    PRIMARY KEY (hypervisor_id, span_secs, at)
);

-- The newest probe of each host, and when it last answered at all.
CREATE TABLE host_health (
    hypervisor_id  VARCHAR(64) PRIMARY KEY NOT NULL,
    first_probe_at INTEGER NOT NULL,
    last_probe_at  INTEGER NOT NULL,
    last_good_at   INTEGER,
    api_up         INTEGER NOT NULL,
    ssh_up         INTEGER NOT NULL,
    api_detail     TEXT NOT NULL,
    ssh_detail     TEXT NOT NULL
);

CREATE TABLE alerts (
    id           VARCHAR(64) PRIMARY KEY NOT NULL,
    kind         VARCHAR(64) NOT NULL,
    severity     VARCHAR(64) NOT NULL,
    subject_type VARCHAR(64) NOT NULL,
    subject_id   VARCHAR(64) NOT NULL,
    subject_name VARCHAR(255) NOT NULL,
    message      TEXT NOT NULL,
    -- kind and subject while open, NULL once resolved: at most one open
    -- alert per incident, whichever process tries to open it.
    open_key     VARCHAR(255) UNIQUE,
    opened_at    INTEGER NOT NULL,
    resolved_at  INTEGER,
    resolution   TEXT
);
CREATE INDEX alerts_opened ON alerts (opened_at);

CREATE TABLE alert_deliveries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id    VARCHAR(64) NOT NULL,
    target_id   VARCHAR(64) NOT NULL,
    target_name VARCHAR(255) NOT NULL,
    event       VARCHAR(64) NOT NULL,
    status      VARCHAR(64) NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    detail      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);

CREATE TABLE notification_targets (
    id           VARCHAR(64) PRIMARY KEY NOT NULL,
    name         VARCHAR(255) NOT NULL UNIQUE,
    kind         VARCHAR(64) NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    min_severity VARCHAR(64) NOT NULL,
    kinds        TEXT NOT NULL,
    config       TEXT NOT NULL,
    secret_enc   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);

-- One row: the thresholds; NULL tolerance means FAILOVER_TOLERANCE_SECS.
CREATE TABLE alert_settings (
    id             INTEGER PRIMARY KEY NOT NULL,
    cpu_pct        REAL NOT NULL,
    mem_pct        REAL NOT NULL,
    disk_pct       REAL NOT NULL,
    samples        INTEGER NOT NULL,
    tolerance_secs INTEGER,
    updated_at     INTEGER NOT NULL
);
INSERT INTO alert_settings (id, cpu_pct, mem_pct, disk_pct, samples, tolerance_secs, updated_at)
VALUES (1, 90, 90, 90, 3, NULL, 0);

-- Work one process does for the whole database (the monitor): whoever
-- holds the row until expires_at.
CREATE TABLE leases (
    name       VARCHAR(64) PRIMARY KEY NOT NULL,
    holder     VARCHAR(64) NOT NULL,
    expires_at INTEGER NOT NULL
);
INSERT INTO leases (name, holder, expires_at) VALUES ('monitor', '', 0);
