-- Placement: a pair may leave its DRC hypervisor empty; the first restore
-- or failover picks one and records it. Keep in step with
-- ../sqlite/20261129000004_placement.sql.
ALTER TABLE pairs MODIFY dst_hypervisor_id VARCHAR(64) NULL;
