-- The age the newest verified archive of a pair may reach before its
-- recovery point counts as breached (SPEC: default 25 h). Keep in step with
-- ../mysql/20261123000004_rpo_target.sql.
ALTER TABLE pairs ADD COLUMN rpo_target_secs INTEGER NOT NULL DEFAULT 90000;
