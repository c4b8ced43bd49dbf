-- Keep in step with ../sqlite/20261123000003_replica_marker.sql.
ALTER TABLE pairs ADD COLUMN replica_marker VARCHAR(16) NOT NULL DEFAULT '';
UPDATE pairs SET replica_marker = SUBSTRING(MD5(RAND()), 1, 8);
UPDATE pairs SET keep_last = 2 WHERE keep_last < 2;
