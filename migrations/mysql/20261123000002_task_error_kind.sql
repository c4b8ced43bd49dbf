-- Keep in step with ../sqlite/20261123000002_task_error_kind.sql.
ALTER TABLE tasks ADD COLUMN error_kind VARCHAR(64);
