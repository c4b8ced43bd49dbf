//! Failover, failback and drill events: what happened to a pair, step by
//! step with times, kept as evidence (drills) and for the RTO figures.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::{flag, get, parse, parse_opt, ts, ts_opt, Db, DbError, DbResult};
use crate::domain::{PairId, TaskId, TaskKind, Timestamp};

/// One step of an event.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Step {
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "millis")]
    pub started_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "millis")]
    pub finished_at: Timestamp,
    pub ok: bool,
    pub detail: String,
}

/// Steps are stored as epoch milliseconds and shown as RFC 3339.
mod millis {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::domain::Timestamp;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            t.serialize(s)
        } else {
            t.millis().serialize(s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Ms(i64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Ms(ms) => Ok(Timestamp(ms)),
            Either::Text(s) => Timestamp::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("bad time")),
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Event {
    pub id: String,
    pub pair_id: PairId,
    /// `failover`, `failback` or `drill`.
    pub kind: TaskKind,
    pub task_id: Option<TaskId>,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
    pub steps: Vec<Step>,
    /// One sentence: what the event achieved or why it failed.
    pub summary: String,
    /// Failover and drill: from the task's start until the copy ran.
    pub rto_secs: Option<f64>,
    /// A failover that went on without fencing the DC VM.
    pub forced: bool,
}

fn event(row: &AnyRow) -> DbResult<Event> {
    let steps: String = get(row, "steps")?;
    Ok(Event {
        id: get(row, "id")?,
        pair_id: parse(row, "pair_id")?,
        kind: parse(row, "kind")?,
        task_id: parse_opt(row, "task_id")?,
        status: get(row, "status")?,
        started_at: ts(row, "started_at")?,
        finished_at: ts_opt(row, "finished_at")?,
        steps: serde_json::from_str(&steps).map_err(|_| DbError::Corrupt("event steps".into()))?,
        summary: get(row, "summary")?,
        rto_secs: get::<Option<i64>>(row, "rto_ms")?.map(|ms| ms as f64 / 1000.0),
        forced: flag(row, "forced")?,
    })
}

/// Steps go to the database as JSON with epoch milliseconds.
fn steps_json(steps: &[Step]) -> String {
    let raw: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| {
            serde_json::json!({"name": s.name, "started_at": s.started_at.millis(),
                               "finished_at": s.finished_at.millis(), "ok": s.ok, "detail": s.detail})
        })
        .collect();
    serde_json::Value::Array(raw).to_string()
}

impl Db {
    pub async fn insert_event(
        &self,
        pair: PairId,
        kind: TaskKind,
        task: TaskId,
        started: Timestamp,
    ) -> DbResult<String> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query(
            "INSERT INTO events (id, pair_id, kind, task_id, status, started_at, steps, summary) \
             VALUES (?, ?, ?, ?, 'running', ?, '[]', '')",
        )
        .bind(&id)
        .bind(pair.to_string())
        .bind(kind.as_str())
        .bind(task.to_string())
        .bind(started.millis())
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// Records the steps so far (called after each step, so a crash keeps them).
    pub async fn update_event(
        &self,
        id: &str,
        steps: &[Step],
        end: Option<(&str, &str, Option<i64>)>,
        forced: bool,
    ) -> DbResult<()> {
        match end {
            None => {
                sqlx::query("UPDATE events SET steps = ?, forced = ? WHERE id = ?")
                    .bind(steps_json(steps))
                    .bind(i64::from(forced))
                    .bind(id)
                    .execute(self.pool())
                    .await?;
            }
            Some((status, summary, rto_ms)) => {
                sqlx::query(
                    "UPDATE events SET steps = ?, forced = ?, status = ?, summary = ?, rto_ms = ?, finished_at = ? \
                     WHERE id = ?",
                )
                .bind(steps_json(steps))
                .bind(i64::from(forced))
                .bind(status)
                .bind(summary)
                .bind(rto_ms)
                .bind(Timestamp::now().millis())
                .bind(id)
                .execute(self.pool())
                .await?;
            }
        }
        Ok(())
    }

    /// Each pair's newest finished event of `kind`, in one query.
    pub async fn latest_events(&self, kind: TaskKind) -> DbResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT e.* FROM events e JOIN (SELECT pair_id, MAX(started_at) AS s FROM events \
             WHERE kind = ? AND status <> 'running' GROUP BY pair_id) m \
             ON e.pair_id = m.pair_id AND e.started_at = m.s WHERE e.kind = ?",
        )
        .bind(kind.as_str())
        .bind(kind.as_str())
        .fetch_all(self.pool())
        .await?;
        // Two events of a pair may share a start (a retried task keeps its
        // start): one per pair, the last written.
        let mut by_pair: std::collections::HashMap<PairId, Event> = std::collections::HashMap::new();
        for e in rows.iter().map(event) {
            let e = e?;
            by_pair.insert(e.pair_id, e);
        }
        Ok(by_pair.into_values().collect())
    }

    /// Newest first; for one pair or all.
    pub async fn list_events(&self, pair: Option<PairId>, limit: i64) -> DbResult<Vec<Event>> {
        let rows = match pair {
            Some(p) => {
                sqlx::query("SELECT * FROM events WHERE pair_id = ? ORDER BY started_at DESC LIMIT ?")
                    .bind(p.to_string())
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM events ORDER BY started_at DESC LIMIT ?")
                    .bind(limit)
                    .fetch_all(self.pool())
                    .await?
            }
        };
        rows.iter().map(event).collect()
    }
}
