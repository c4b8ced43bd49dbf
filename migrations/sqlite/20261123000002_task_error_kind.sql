-- Why a task failed, as a kind for alerts and retries (the error column is the
-- sentence for people). Keep in step with ../mysql/20261123000002_task_error_kind.sql.
ALTER TABLE tasks ADD COLUMN error_kind TEXT;
