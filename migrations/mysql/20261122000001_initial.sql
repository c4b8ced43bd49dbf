-- drswitch schema. Timestamps are Unix epoch milliseconds (UTC); flags are 0/1.
-- Keep in step with ../sqlite/20261122000001_initial.sql.

CREATE TABLE users (
    id            CHAR(36) PRIMARY KEY NOT NULL,
    username      VARCHAR(255) NOT NULL UNIQUE,
    full_name     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          VARCHAR(255) NOT NULL,
    active        BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE api_tokens (
    id           CHAR(36) PRIMARY KEY NOT NULL,
    user_id      VARCHAR(64) NOT NULL,
    name         VARCHAR(255) NOT NULL,
    token_hash   VARCHAR(255) NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE hypervisors (
    id                   CHAR(36) PRIMARY KEY NOT NULL,
    name                 VARCHAR(255) NOT NULL UNIQUE,
    host                 VARCHAR(255) NOT NULL,
    ssh_port             BIGINT NOT NULL,
    ssh_user             VARCHAR(255) NOT NULL,
    node                 VARCHAR(255) NOT NULL,
    role                 VARCHAR(255) NOT NULL,
    api_port             BIGINT NOT NULL,
    api_token_id         VARCHAR(255),
    api_token_secret_enc TEXT,
    tls_fingerprint      VARCHAR(255),
    dump_dir             VARCHAR(255) NOT NULL,
    restore_storage      VARCHAR(255) NOT NULL,
    enabled              BIGINT NOT NULL DEFAULT 1,
    host_key             TEXT,
    host_key_fingerprint VARCHAR(255),
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE pairs (
    id                  CHAR(36) PRIMARY KEY NOT NULL,
    name                VARCHAR(255) NOT NULL,
    src_hypervisor_id   VARCHAR(64) NOT NULL,
    src_vmid            BIGINT NOT NULL,
    dst_hypervisor_id   VARCHAR(64) NOT NULL,
    dst_vmid            BIGINT NOT NULL,
    guest               VARCHAR(255) NOT NULL,
    compress            VARCHAR(255) NOT NULL,
    mode                VARCHAR(255) NOT NULL,
    start_after_restore BIGINT NOT NULL,
    keep_last           BIGINT NOT NULL,
    keep_daily          BIGINT,
    keep_weekly         BIGINT,
    keep_monthly        BIGINT,
    auto_failover       BIGINT NOT NULL DEFAULT 0,
    enabled             BIGINT NOT NULL DEFAULT 1,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (dst_hypervisor_id, dst_vmid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX pairs_src ON pairs (src_hypervisor_id);

CREATE TABLE tasks (
    seq               BIGINT PRIMARY KEY AUTO_INCREMENT,
    id                CHAR(36) NOT NULL UNIQUE,
    kind              VARCHAR(255) NOT NULL,
    pair_id           VARCHAR(64) NOT NULL,
    status            VARCHAR(255) NOT NULL,
    phase             VARCHAR(255) NOT NULL,
    progress          BIGINT NOT NULL DEFAULT 0,
    bytes_done        BIGINT NOT NULL DEFAULT 0,
    bytes_total       BIGINT NOT NULL DEFAULT 0,
    archive_id        VARCHAR(64),
    schedule_id       VARCHAR(64),
    requested_by      VARCHAR(255) NOT NULL,
    attempt           BIGINT NOT NULL DEFAULT 0,
    max_attempts      BIGINT NOT NULL,
    src_hypervisor_id VARCHAR(64),
    dst_hypervisor_id VARCHAR(64),
    worker_id         VARCHAR(64),
    lease_until       BIGINT,
    cancel_requested  BIGINT NOT NULL DEFAULT 0,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    finished_at       BIGINT,
    error             TEXT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX tasks_status ON tasks (status, seq);
CREATE INDEX tasks_pair ON tasks (pair_id, seq);

CREATE TABLE task_logs (
    seq     BIGINT PRIMARY KEY AUTO_INCREMENT,
    task_id VARCHAR(64) NOT NULL,
    at      BIGINT NOT NULL,
    line    TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX task_logs_task ON task_logs (task_id, seq);

CREATE TABLE schedules (
    id           CHAR(36) PRIMARY KEY NOT NULL,
    pair_id      VARCHAR(64) NOT NULL,
    kind         VARCHAR(255) NOT NULL,
    hour         BIGINT,
    minute       BIGINT,
    cron         VARCHAR(255) NOT NULL,
    timezone     VARCHAR(255) NOT NULL,
    enabled      BIGINT NOT NULL DEFAULT 1,
    next_run     BIGINT,
    last_run     BIGINT,
    last_task_id VARCHAR(64),
    last_result  VARCHAR(255),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX schedules_pair ON schedules (pair_id);

-- One row per (schedule, due time): the unique key makes each due run
-- enqueue at most once, whatever number of processes try.
CREATE TABLE schedule_runs (
    schedule_id VARCHAR(64) NOT NULL,
    due_at      BIGINT NOT NULL,
    result      VARCHAR(255) NOT NULL,
    task_id     VARCHAR(64),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (schedule_id, due_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE archives (
    id          CHAR(36) PRIMARY KEY NOT NULL,
    pair_id     VARCHAR(64) NOT NULL,
    file_name   VARCHAR(255) NOT NULL,
    size_bytes  BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    task_id     VARCHAR(64),
    verified_at BIGINT,
    UNIQUE (pair_id, file_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A single row every task claim updates first, so claims from any number of
-- workers run one at a time (row lock on MySQL, write lock on SQLite).
CREATE TABLE claim_lock (
    id      BIGINT PRIMARY KEY NOT NULL,
    counter BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
INSERT INTO claim_lock (id, counter) VALUES (1, 0);
