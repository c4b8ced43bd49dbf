//! Files a task makes on hypervisors (pushed archives under temporary
//! names, vzdump's dumps), recorded before they exist so that whoever ends
//! the task, or recovers it after a crash, removes exactly those and
//! nothing else.

use super::{get, parse, Db, DbResult};
use crate::domain::{HypervisorId, TaskId, Timestamp};

#[derive(Debug, Clone)]
pub struct RemoteFile {
    pub seq: i64,
    pub hypervisor_id: HypervisorId,
    pub path: String,
}

impl Db {
    pub async fn record_remote_file(&self, task: TaskId, hypervisor: HypervisorId, path: &str) -> DbResult<()> {
        sqlx::query("INSERT INTO remote_files (task_id, hypervisor_id, path, created_at) VALUES (?, ?, ?, ?)")
            .bind(task.to_string())
            .bind(hypervisor.to_string())
            .bind(path)
            .bind(Timestamp::now().millis())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn remote_files(&self, task: TaskId) -> DbResult<Vec<RemoteFile>> {
        sqlx::query("SELECT seq, hypervisor_id, path FROM remote_files WHERE task_id = ? ORDER BY seq")
            .bind(task.to_string())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| {
                Ok(RemoteFile { seq: get(r, "seq")?, hypervisor_id: parse(r, "hypervisor_id")?, path: get(r, "path")? })
            })
            .collect()
    }

    /// Forgets files that are gone (removed, or renamed into a real archive
    /// the task hands on).
    pub async fn forget_remote_file(&self, task: TaskId, hypervisor: HypervisorId, path: &str) -> DbResult<()> {
        sqlx::query("DELETE FROM remote_files WHERE task_id = ? AND hypervisor_id = ? AND path = ?")
            .bind(task.to_string())
            .bind(hypervisor.to_string())
            .bind(path)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Tasks that ended for good but still have recorded files (their
    /// worker died before cleaning up).
    pub async fn tasks_with_leftovers(&self) -> DbResult<Vec<TaskId>> {
        sqlx::query(
            "SELECT DISTINCT r.task_id FROM remote_files r JOIN tasks t ON t.id = r.task_id \
             WHERE t.status IN ('succeeded', 'failed', 'cancelled')",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| parse(r, "task_id"))
        .collect()
    }
}
