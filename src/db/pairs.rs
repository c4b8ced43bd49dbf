use serde::Serialize;
use sqlx::any::AnyRow;

use super::{conflict, flag, get, parse, parse_opt, ts, Db, DbError, DbResult};
use crate::domain::{
    ArchiveId, Compress, Guest, HypervisorId, Mode, NetworkMap, PairId, PairState, StorageId, TaskId, Timestamp,
    Transfer, Vmid,
};

/// A DC VM and its DRC replica.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Pair {
    pub id: PairId,
    pub name: String,
    pub src_hypervisor_id: HypervisorId,
    #[schema(value_type = i64)]
    pub src_vmid: Vmid,
    /// Null until placement chose a DRC host (at the first restore or
    /// failover); then that host, kept.
    pub dst_hypervisor_id: Option<HypervisorId>,
    #[schema(value_type = i64)]
    pub dst_vmid: Vmid,
    pub guest: Guest,
    pub compress: Compress,
    pub mode: Mode,
    pub start_after_restore: bool,
    pub keep_last: u32,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub auto_failover: bool,
    pub enabled: bool,
    /// How old the newest verified archive may get before the recovery
    /// point counts as breached.
    pub rpo_target_secs: i64,
    /// VMID a DR drill restores to on the DRC host (then destroys).
    #[schema(value_type = Option<i64>)]
    pub drill_vmid: Option<Vmid>,
    /// DC bridge → DRC bridge (and VLAN tag), applied before the replica starts.
    pub network_map: NetworkMap,
    /// When the DC host returns while the pair is failed over and its VM
    /// runs again, stop it (otherwise only report it).
    pub shutdown_returned_source: bool,
    /// `staged` or `streaming` (SPEC §4.1).
    pub transfer: Transfer,
    /// A fast local storage on the DC host for vzdump's fleecing image in
    /// streaming mode (qemu only); null = no fleecing.
    #[schema(value_type = Option<String>)]
    pub fleecing_storage: Option<StorageId>,
    /// `protected`, `failing_over`, `failed_over` or `failing_back`.
    pub state: PairState,
    /// An admin let drswitch replace the unmarked VM at the current target
    /// (`POST /pairs/{id}/adopt`); cleared once the VM carries the marker
    /// and whenever the target changes.
    pub adopted: bool,
    /// The archive the last good restore installed on the DRC side: what a
    /// failed restore rolls back to, kept by retention.
    pub replica_archive_id: Option<ArchiveId>,
    /// Set while a task has stopped or is overwriting the replica and has
    /// not left it whole yet.
    #[serde(skip)]
    pub replica_task_id: Option<TaskId>,
    /// The per-target part of the replica marker (see `replica_tag`).
    #[serde(skip)]
    pub replica_marker: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct PairFields {
    pub name: String,
    pub src_hypervisor_id: HypervisorId,
    pub src_vmid: Vmid,
    pub dst_hypervisor_id: Option<HypervisorId>,
    pub dst_vmid: Vmid,
    pub guest: Guest,
    pub compress: Compress,
    pub mode: Mode,
    pub start_after_restore: bool,
    pub keep_last: u32,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub auto_failover: bool,
    pub enabled: bool,
    pub rpo_target_secs: i64,
    pub drill_vmid: Option<Vmid>,
    pub network_map: NetworkMap,
    pub shutdown_returned_source: bool,
    pub transfer: Transfer,
    pub fleecing_storage: Option<StorageId>,
}

fn vmid(row: &AnyRow, col: &str) -> DbResult<Vmid> {
    let n: i64 = get(row, col)?;
    Vmid::try_from(n).map_err(|_| DbError::Corrupt(format!("{col} = {n}")))
}

fn count(row: &AnyRow, col: &str) -> DbResult<Option<u32>> {
    let n: Option<i64> = get(row, col)?;
    n.map(|n| u32::try_from(n).map_err(|_| DbError::Corrupt(format!("{col} = {n}")))).transpose()
}

fn pair(row: &AnyRow) -> DbResult<Pair> {
    Ok(Pair {
        id: parse(row, "id")?,
        name: get(row, "name")?,
        src_hypervisor_id: parse(row, "src_hypervisor_id")?,
        src_vmid: vmid(row, "src_vmid")?,
        dst_hypervisor_id: parse_opt(row, "dst_hypervisor_id")?,
        dst_vmid: vmid(row, "dst_vmid")?,
        guest: parse(row, "guest")?,
        compress: parse(row, "compress")?,
        mode: parse(row, "mode")?,
        start_after_restore: flag(row, "start_after_restore")?,
        keep_last: count(row, "keep_last")?.unwrap_or(1),
        keep_daily: count(row, "keep_daily")?,
        keep_weekly: count(row, "keep_weekly")?,
        keep_monthly: count(row, "keep_monthly")?,
        auto_failover: flag(row, "auto_failover")?,
        enabled: flag(row, "enabled")?,
        rpo_target_secs: get(row, "rpo_target_secs")?,
        drill_vmid: get::<Option<i64>>(row, "drill_vmid")?
            .map(|n| Vmid::try_from(n).map_err(|_| DbError::Corrupt(format!("drill_vmid = {n}"))))
            .transpose()?,
        network_map: match get::<Option<String>>(row, "network_map")? {
            None => NetworkMap::default(),
            Some(s) => serde_json::from_str(&s).map_err(|_| DbError::Corrupt("network_map".into()))?,
        },
        shutdown_returned_source: flag(row, "shutdown_returned_source")?,
        transfer: parse(row, "transfer")?,
        fleecing_storage: parse_opt(row, "fleecing_storage")?,
        state: parse(row, "state")?,
        adopted: flag(row, "adopted")?,
        replica_archive_id: parse_opt(row, "replica_archive_id")?,
        replica_task_id: parse_opt(row, "replica_task_id")?,
        replica_marker: get(row, "replica_marker")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the fields in the column order both INSERT and UPDATE use.
fn bind_fields<'q>(q: Query<'q>, f: &'q PairFields) -> Query<'q> {
    q.bind(&f.name)
        .bind(f.src_hypervisor_id.to_string())
        .bind(i64::from(f.src_vmid))
        .bind(f.dst_hypervisor_id.map(|h| h.to_string()))
        .bind(i64::from(f.dst_vmid))
        .bind(f.guest.as_str())
        .bind(f.compress.as_str())
        .bind(f.mode.as_str())
        .bind(i64::from(f.start_after_restore))
        .bind(i64::from(f.keep_last))
        .bind(f.keep_daily.map(i64::from))
        .bind(f.keep_weekly.map(i64::from))
        .bind(f.keep_monthly.map(i64::from))
        .bind(i64::from(f.auto_failover))
        .bind(i64::from(f.enabled))
        .bind(f.rpo_target_secs)
        .bind(f.drill_vmid.map(i64::from))
        .bind((!f.network_map.is_empty()).then(|| serde_json::to_string(&f.network_map).unwrap_or_default()))
        .bind(i64::from(f.shutdown_returned_source))
        .bind(f.transfer.as_str())
        .bind(f.fleecing_storage.as_ref().map(|s| s.as_str().to_string()))
}

/// A fresh per-target marker part.
fn new_marker() -> String {
    hex::encode(rand::random::<[u8; 4]>())
}

const DUPLICATE: &str = "another pair already targets this VMID on this DRC hypervisor";

impl Db {
    pub async fn insert_pair(&self, f: &PairFields) -> DbResult<PairId> {
        let id = PairId::new();
        let now = Timestamp::now().millis();
        let q = sqlx::query(
            "INSERT INTO pairs (id, name, src_hypervisor_id, src_vmid, dst_hypervisor_id, dst_vmid, guest, compress, \
             mode, start_after_restore, keep_last, keep_daily, keep_weekly, keep_monthly, auto_failover, enabled, \
             rpo_target_secs, drill_vmid, network_map, shutdown_returned_source, transfer, fleecing_storage, created_at, \
             updated_at, replica_marker) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string());
        bind_fields(q, f)
            .bind(now)
            .bind(now)
            .bind(new_marker())
            .execute(self.pool())
            .await
            .map_err(|e| conflict(e, DUPLICATE))?;
        Ok(id)
    }

    /// Changes the pair unless a task of it is queued or running (false
    /// then): a task was planned against the pair as it was. A new target
    /// makes the VM there "not ours": the adoption, an unfinished
    /// replacement and the marker belonged to the old one.
    pub async fn update_pair(&self, id: PairId, f: &PairFields, target_changed: bool) -> DbResult<bool> {
        let q = sqlx::query(
            "UPDATE pairs SET name = ?, src_hypervisor_id = ?, src_vmid = ?, dst_hypervisor_id = ?, dst_vmid = ?, \
             guest = ?, compress = ?, mode = ?, start_after_restore = ?, keep_last = ?, keep_daily = ?, \
             keep_weekly = ?, keep_monthly = ?, auto_failover = ?, enabled = ?, rpo_target_secs = ?, \
             drill_vmid = ?, network_map = ?, shutdown_returned_source = ?, transfer = ?, fleecing_storage = ?, updated_at = ?, adopted = CASE WHEN ? = 1 THEN 0 ELSE adopted END, \
             replica_task_id = CASE WHEN ? = 1 THEN NULL ELSE replica_task_id END, \
             replica_marker = CASE WHEN ? = 1 THEN ? ELSE replica_marker END \
             WHERE id = ? AND NOT EXISTS (SELECT 1 FROM tasks WHERE pair_id = ? AND status IN ('queued', 'running'))",
        );
        let changed = i64::from(target_changed);
        let r = bind_fields(q, f)
            .bind(Timestamp::now().millis())
            .bind(changed)
            .bind(changed)
            .bind(changed)
            .bind(new_marker())
            .bind(id.to_string())
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(|e| conflict(e, DUPLICATE))?;
        // MySQL counts only rows whose values changed; tell "busy" apart.
        Ok(r.rows_affected() > 0 || !self.pair_is_busy(id).await?)
    }

    /// Lets drswitch replace the unmarked VM at the pair's current target,
    /// unless a task of the pair is queued or running (false then).
    pub async fn set_adopted(&self, id: PairId) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE pairs SET adopted = 1, updated_at = ? WHERE id = ? \
             AND NOT EXISTS (SELECT 1 FROM tasks WHERE pair_id = ? AND status IN ('queued', 'running'))",
        )
        .bind(Timestamp::now().millis())
        .bind(id.to_string())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0 || !self.pair_is_busy(id).await?)
    }

    /// Records, before the first destructive step, that `task` is about to
    /// stop or overwrite the pair's replica.
    pub async fn replica_touched(&self, id: PairId, task: TaskId) -> DbResult<()> {
        sqlx::query("UPDATE pairs SET replica_task_id = ? WHERE id = ?")
            .bind(task.to_string())
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The replica is whole and marked again; `archive` is what it now holds
    /// (None after a rollback to the archive already recorded).
    pub async fn replica_whole(&self, id: PairId, archive: Option<ArchiveId>) -> DbResult<()> {
        sqlx::query(
            "UPDATE pairs SET replica_task_id = NULL, adopted = 0, \
             replica_archive_id = COALESCE(?, replica_archive_id) WHERE id = ?",
        )
        .bind(archive.map(|a| a.to_string()))
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records the DRC host placement chose, unless the pair has one
    /// already (false then).
    pub async fn place_pair(&self, id: PairId, host: HypervisorId) -> DbResult<bool> {
        let r = sqlx::query("UPDATE pairs SET dst_hypervisor_id = ? WHERE id = ? AND dst_hypervisor_id IS NULL")
            .bind(host.to_string())
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(|e| conflict(e, DUPLICATE))?;
        Ok(r.rows_affected() > 0)
    }

    /// Moves the pair from `from` to `to`; false if it is not in `from`
    /// (another task moved it first).
    pub async fn set_pair_state(&self, id: PairId, from: PairState, to: PairState) -> DbResult<bool> {
        let r = sqlx::query("UPDATE pairs SET state = ? WHERE id = ? AND state = ?")
            .bind(to.as_str())
            .bind(id.to_string())
            .bind(from.as_str())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn pair(&self, id: PairId) -> DbResult<Option<Pair>> {
        sqlx::query("SELECT * FROM pairs WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(pair)
            .transpose()
    }

    pub async fn list_pairs(&self) -> DbResult<Vec<Pair>> {
        sqlx::query("SELECT * FROM pairs ORDER BY created_at, id")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(pair)
            .collect()
    }

    /// Deletes the pair and its schedules (queued tasks of it are cancelled;
    /// archives and task history stay on disk and in the database).
    /// Returns false (and changes nothing) while a task of the pair runs.
    pub async fn delete_pair(&self, id: PairId) -> DbResult<bool> {
        let mut tx = self.pool().begin().await?;
        // Deleting the pair row first, conditionally, decides it in one step.
        let n = sqlx::query(
            "DELETE FROM pairs WHERE id = ? AND NOT EXISTS \
             (SELECT 1 FROM tasks WHERE pair_id = ? AND status = 'running')",
        )
        .bind(id.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("DELETE FROM schedules WHERE pair_id = ?").bind(id.to_string()).execute(&mut *tx).await?;
        sqlx::query(
            "UPDATE tasks SET status = 'cancelled', finished_at = ?, error = ? WHERE pair_id = ? AND status = 'queued'",
        )
        .bind(Timestamp::now().millis())
        .bind("The pair was deleted before the task started.")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}
