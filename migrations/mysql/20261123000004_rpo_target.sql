-- Keep in step with ../sqlite/20261123000004_rpo_target.sql.
ALTER TABLE pairs ADD COLUMN rpo_target_secs BIGINT NOT NULL DEFAULT 90000;
