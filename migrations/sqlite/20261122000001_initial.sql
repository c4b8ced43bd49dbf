-- drswitch schema. Timestamps are Unix epoch milliseconds (UTC); flags are 0/1.
-- Keep in step with ../mysql/20261122000001_initial.sql.

CREATE TABLE users (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    full_name     TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    active        INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    user_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE hypervisors (
    id                   TEXT PRIMARY KEY NOT NULL,
    name                 TEXT NOT NULL UNIQUE,
    host                 TEXT NOT NULL,
    ssh_port             INTEGER NOT NULL,
    ssh_user             TEXT NOT NULL,
    node                 TEXT NOT NULL,
    role                 TEXT NOT NULL,
    api_port             INTEGER NOT NULL,
    api_token_id         TEXT,
    api_token_secret_enc TEXT,
    tls_fingerprint      TEXT,
    dump_dir             TEXT NOT NULL,
    restore_storage      TEXT NOT NULL,
    enabled              INTEGER NOT NULL DEFAULT 1,
    host_key             TEXT,
    host_key_fingerprint TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

CREATE TABLE pairs (
    id                  TEXT PRIMARY KEY NOT NULL,
    name                TEXT NOT NULL,
    src_hypervisor_id   TEXT NOT NULL,
    src_vmid            INTEGER NOT NULL,
    dst_hypervisor_id   TEXT NOT NULL,
    dst_vmid            INTEGER NOT NULL,
    guest               TEXT NOT NULL,
    compress            TEXT NOT NULL,
    mode                TEXT NOT NULL,
    start_after_restore INTEGER NOT NULL,
    keep_last           INTEGER NOT NULL,
    keep_daily          INTEGER,
    keep_weekly         INTEGER,
    keep_monthly        INTEGER,
    auto_failover       INTEGER NOT NULL DEFAULT 0,
    enabled             INTEGER NOT NULL DEFAULT 1,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    UNIQUE (dst_hypervisor_id, dst_vmid)
);
CREATE INDEX pairs_src ON pairs (src_hypervisor_id);

CREATE TABLE tasks (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    kind              TEXT NOT NULL,
    pair_id           TEXT NOT NULL,
    status            TEXT NOT NULL,
    phase             TEXT NOT NULL,
    progress          INTEGER NOT NULL DEFAULT 0,
    bytes_done        INTEGER NOT NULL DEFAULT 0,
    bytes_total       INTEGER NOT NULL DEFAULT 0,
    archive_id        TEXT,
    schedule_id       TEXT,
    requested_by      TEXT NOT NULL,
    attempt           INTEGER NOT NULL DEFAULT 0,
    max_attempts      INTEGER NOT NULL,
    src_hypervisor_id TEXT,
    dst_hypervisor_id TEXT,
    worker_id         TEXT,
    lease_until       INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    created_at        INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER,
    error             TEXT
);
CREATE INDEX tasks_status ON tasks (status, seq);
CREATE INDEX tasks_pair ON tasks (pair_id, seq);

CREATE TABLE task_logs (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    at      INTEGER NOT NULL,
    line    TEXT NOT NULL
);
CREATE INDEX task_logs_task ON task_logs (task_id, seq);

CREATE TABLE schedules (
    id           TEXT PRIMARY KEY NOT NULL,
    pair_id      TEXT NOT NULL,
    kind         TEXT NOT NULL,
    hour         INTEGER,
    minute       INTEGER,
    cron         TEXT NOT NULL,
    timezone     TEXT NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    next_run     INTEGER,
    last_run     INTEGER,
    last_task_id TEXT,
    last_result  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX schedules_pair ON schedules (pair_id);

-- One row per (schedule, due time): the unique key makes each due run
-- enqueue at most once, whatever number of processes try.
CREATE TABLE schedule_runs (
    schedule_id TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    result      TEXT NOT NULL,
    task_id     TEXT,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (schedule_id, due_at)
);

CREATE TABLE archives (
    id          TEXT PRIMARY KEY NOT NULL,
    pair_id     TEXT NOT NULL,
    file_name   TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    sha256      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    task_id     TEXT,
    verified_at INTEGER,
    UNIQUE (pair_id, file_name)
);

-- A single row every task claim updates first, so claims from any number of
-- workers run one at a time (row lock on MySQL, write lock on SQLite).
CREATE TABLE claim_lock (
    id      INTEGER PRIMARY KEY NOT NULL,
    counter INTEGER NOT NULL
);
INSERT INTO claim_lock (id, counter) VALUES (1, 0);
