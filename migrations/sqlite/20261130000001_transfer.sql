-- Transfer modes, per-host bandwidth limits, progress rate/ETA and resumable
-- dumps. Keep in step with ../mysql/20261130000001_transfer.sql.
ALTER TABLE pairs ADD COLUMN transfer TEXT NOT NULL DEFAULT 'staged';
ALTER TABLE pairs ADD COLUMN fleecing_storage TEXT;
ALTER TABLE hypervisors ADD COLUMN bwlimit_kib INTEGER;
ALTER TABLE tasks ADD COLUMN rate_bps INTEGER;
ALTER TABLE tasks ADD COLUMN eta_secs INTEGER;
-- The finished dump an attempt left on the DC host, for the next attempt
-- to copy on from instead of dumping again.
ALTER TABLE tasks ADD COLUMN resume_dump TEXT;
