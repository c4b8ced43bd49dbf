-- Recovery plans (SPEC §5.3): named, ordered groups of pairs failed over or
-- drilled together, and their runs. Keep in step with
-- ../sqlite/20261129000003_plans.sql.

CREATE TABLE plans (
    id         VARCHAR(64) PRIMARY KEY NOT NULL,
    name       VARCHAR(255) NOT NULL UNIQUE,
    delay_secs BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The plan's groups in order (group_no from 1), each an ordered list of
-- pairs (slot from 1); a pair at most once per plan.
CREATE TABLE plan_pairs (
    plan_id  VARCHAR(64) NOT NULL,
    group_no BIGINT NOT NULL,
    slot     BIGINT NOT NULL,
    pair_id  VARCHAR(64) NOT NULL,
    PRIMARY KEY (plan_id, group_no, slot),
    UNIQUE (plan_id, pair_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One failover or drill of a plan. The plan's name, delay and groups are
-- copied at the start, so editing the plan never changes a run.
CREATE TABLE plan_runs (
    id            VARCHAR(64) PRIMARY KEY NOT NULL,
    plan_id       VARCHAR(64) NOT NULL,
    plan_name     VARCHAR(255) NOT NULL,
    kind          VARCHAR(64) NOT NULL,
    status        VARCHAR(64) NOT NULL,
    forced        BIGINT NOT NULL DEFAULT 0,
    delay_secs    BIGINT NOT NULL,
    requested_by  VARCHAR(255) NOT NULL,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    current_group BIGINT NOT NULL,
    group_count   BIGINT NOT NULL,
    next_group_at BIGINT,
    -- The plan's id while the run runs, NULL once it ended: at most one
    -- running run per plan, whichever process starts it.
    running_key   VARCHAR(64) UNIQUE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX plan_runs_plan ON plan_runs (plan_id, started_at);
CREATE INDEX plan_runs_status ON plan_runs (status);

CREATE TABLE plan_run_groups (
    run_id     VARCHAR(64) NOT NULL,
    group_no   BIGINT NOT NULL,
    started_at BIGINT,
    ended_at   BIGINT,
    PRIMARY KEY (run_id, group_no)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Each pair of a run: its task once queued, or why it could not be.
CREATE TABLE plan_run_items (
    run_id   VARCHAR(64) NOT NULL,
    group_no BIGINT NOT NULL,
    slot     BIGINT NOT NULL,
    pair_id  VARCHAR(64) NOT NULL,
    task_id  VARCHAR(64),
    error    TEXT,
    PRIMARY KEY (run_id, group_no, slot)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The plan runner: one process per database advances the runs.
INSERT INTO leases (name, holder, expires_at) VALUES ('plans', '', 0);
