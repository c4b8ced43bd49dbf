use serde::Serialize;
use sqlx::any::AnyRow;

use super::{get, parse, parse_opt, ts, ts_opt, Db, DbResult};
use crate::domain::{ArchiveId, ArchiveName, PairId, TaskId, Timestamp};

/// A vzdump archive held by the middleware.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Archive {
    pub id: ArchiveId,
    pub pair_id: PairId,
    #[schema(value_type = String)]
    pub file_name: ArchiveName,
    pub size_bytes: i64,
    pub sha256: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub task_id: Option<TaskId>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub verified_at: Option<Timestamp>,
}

fn archive(row: &AnyRow) -> DbResult<Archive> {
    Ok(Archive {
        id: parse(row, "id")?,
        pair_id: parse(row, "pair_id")?,
        file_name: parse(row, "file_name")?,
        size_bytes: get(row, "size_bytes")?,
        sha256: get(row, "sha256")?,
        created_at: ts(row, "created_at")?,
        task_id: parse_opt(row, "task_id")?,
        verified_at: ts_opt(row, "verified_at")?,
    })
}

pub struct NewArchive<'a> {
    pub pair_id: PairId,
    pub file_name: &'a ArchiveName,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub task_id: TaskId,
}

impl Db {
    /// Records an archive whose checksum was verified on arrival.
    pub async fn insert_archive(&self, a: &NewArchive<'_>) -> DbResult<Archive> {
        let id = ArchiveId::new();
        let now = Timestamp::now().millis();
        sqlx::query(
            "INSERT INTO archives (id, pair_id, file_name, size_bytes, sha256, created_at, task_id, verified_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(a.pair_id.to_string())
        .bind(a.file_name.as_str())
        .bind(a.size_bytes)
        .bind(a.sha256)
        .bind(now)
        .bind(a.task_id.to_string())
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| super::conflict(e, "an archive with this name is already recorded for the pair"))?;
        self.archive(id).await?.ok_or_else(|| super::DbError::Corrupt("archive vanished after insert".into()))
    }

    pub async fn archive(&self, id: ArchiveId) -> DbResult<Option<Archive>> {
        sqlx::query("SELECT * FROM archives WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(archive)
            .transpose()
    }

    /// Newest first.
    pub async fn list_archives(&self, pair_id: PairId) -> DbResult<Vec<Archive>> {
        sqlx::query("SELECT * FROM archives WHERE pair_id = ? ORDER BY created_at DESC, file_name DESC")
            .bind(pair_id.to_string())
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(archive)
            .collect()
    }

    /// The creation time of each pair's newest verified archive, in one query.
    pub async fn newest_verified_archives(&self) -> DbResult<std::collections::HashMap<PairId, Timestamp>> {
        sqlx::query(
            "SELECT pair_id, MAX(created_at) AS newest FROM archives WHERE verified_at IS NOT NULL GROUP BY pair_id",
        )
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok((parse(r, "pair_id")?, ts(r, "newest")?)))
        .collect()
    }

    /// Bytes and count of the archives each pair holds. Summed here: SUM
    /// answers a DECIMAL on MySQL.
    pub async fn archive_totals(&self) -> DbResult<std::collections::HashMap<PairId, (i64, i64)>> {
        let mut totals = std::collections::HashMap::new();
        for r in sqlx::query("SELECT pair_id, size_bytes FROM archives").fetch_all(self.pool()).await? {
            let e: &mut (i64, i64) = totals.entry(parse(&r, "pair_id")?).or_default();
            e.0 += get::<i64>(&r, "size_bytes")?;
            e.1 += 1;
        }
        Ok(totals)
    }

    /// Deletes the archive's record unless something needs it: the replica
    /// holds it, or a queued or running task names it. Checked in the same
    /// statement, so a restore queued meanwhile keeps its archive.
    pub async fn delete_archive_if_unused(&self, id: ArchiveId) -> DbResult<bool> {
        let r = sqlx::query(
            "DELETE FROM archives WHERE id = ? \
             AND NOT EXISTS (SELECT 1 FROM tasks WHERE archive_id = ? AND status IN ('queued', 'running')) \
             AND NOT EXISTS (SELECT 1 FROM pairs WHERE replica_archive_id = ?)",
        )
        .bind(id.to_string())
        .bind(id.to_string())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }
}
