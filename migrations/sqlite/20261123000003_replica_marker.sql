-- A per-target part of the replica marker: regenerated whenever the pair's
-- target changes, so a VM made for the old target (or a clone of it) is not
-- taken for the replica at the new one. Keep in step with
-- ../mysql/20261123000003_replica_marker.sql.
ALTER TABLE pairs ADD COLUMN replica_marker TEXT NOT NULL DEFAULT '';
UPDATE pairs SET replica_marker = lower(hex(randomblob(4)));
-- keep_last is at least 2 now (the newest archive and its rollback).
UPDATE pairs SET keep_last = 2 WHERE keep_last < 2;
