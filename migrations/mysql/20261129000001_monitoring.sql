-- Monitoring, alerts and notification targets. Keep in step with
-- ../sqlite/20261129000001_monitoring.sql.

-- Probe results: raw samples (span_secs 0) and 15-minute averages
-- (span_secs 900) made from them once they are 48 h old.
CREATE TABLE host_samples (
    hypervisor_id  VARCHAR(64) NOT NULL,
    at             BIGINT NOT NULL,
    span_secs      BIGINT NOT NULL DEFAULT 0,
    api_up         DOUBLE,
    ssh_up         DOUBLE,
    cpu_pct        DOUBLE,
    mem_pct        DOUBLE,
    mem_free_bytes BIGINT,
    disk_pct       DOUBLE,
    backup_pct     DOUBLE,
    services       TEXT,
    PRIMARY KEY (hypervisor_id, span_secs, at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The newest probe of each host, and when it last answered at all.
CREATE TABLE host_health (
    hypervisor_id  VARCHAR(64) PRIMARY KEY NOT NULL,
    first_probe_at BIGINT NOT NULL,
    last_probe_at  BIGINT NOT NULL,
    last_good_at   BIGINT,
    api_up         BIGINT NOT NULL,
    ssh_up         BIGINT NOT NULL,
    api_detail     TEXT NOT NULL,
    ssh_detail     TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

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
    opened_at    BIGINT NOT NULL,
    resolved_at  BIGINT,
    resolution   TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX alerts_opened ON alerts (opened_at);

CREATE TABLE alert_deliveries (
    seq         BIGINT PRIMARY KEY AUTO_INCREMENT,
    alert_id    VARCHAR(64) NOT NULL,
    target_id   VARCHAR(64) NOT NULL,
    target_name VARCHAR(255) NOT NULL,
    event       VARCHAR(64) NOT NULL,
    status      VARCHAR(64) NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    detail      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX alert_deliveries_alert ON alert_deliveries (alert_id);

CREATE TABLE notification_targets (
    id           VARCHAR(64) PRIMARY KEY NOT NULL,
    name         VARCHAR(255) NOT NULL UNIQUE,
    kind         VARCHAR(64) NOT NULL,
    enabled      BIGINT NOT NULL DEFAULT 1,
    min_severity VARCHAR(64) NOT NULL,
    kinds        TEXT NOT NULL,
    config       TEXT NOT NULL,
    secret_enc   TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row: the thresholds; NULL tolerance means FAILOVER_TOLERANCE_SECS.
CREATE TABLE alert_settings (
    id             BIGINT PRIMARY KEY NOT NULL,
    cpu_pct        DOUBLE NOT NULL,
    mem_pct        DOUBLE NOT NULL,
    disk_pct       DOUBLE NOT NULL,
    samples        BIGINT NOT NULL,
    tolerance_secs BIGINT,
    updated_at     BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO alert_settings (id, cpu_pct, mem_pct, disk_pct, samples, tolerance_secs, updated_at)
VALUES (1, 90, 90, 90, 3, NULL, 0);

-- Work one process does for the whole database (the monitor): whoever
-- holds the row until expires_at.
CREATE TABLE leases (
    name       VARCHAR(64) PRIMARY KEY NOT NULL,
    holder     VARCHAR(64) NOT NULL,
    expires_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO leases (name, holder, expires_at) VALUES ('monitor', '', 0);
