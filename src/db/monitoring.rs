//! Probe history, each host's latest health, and leases for work one
//! process does for the whole database.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::any::AnyRow;

use super::{get, parse, ts, ts_opt, Db, DbResult};
use crate::domain::{HypervisorId, Timestamp};

/// Raw samples are averaged into buckets of this many seconds once older
/// than `RAW_KEEP_SECS`; buckets are dropped after `AVG_KEEP_SECS`.
pub const BUCKET_SECS: i64 = 900;
pub const RAW_KEEP_SECS: i64 = 48 * 3600;
pub const AVG_KEEP_SECS: i64 = 90 * 86_400;

/// One probe of a host, or the average of a bucket of them (`span_secs`
/// 900). `api_up` and `ssh_up` are 1/0 for a probe and the fraction of good
/// probes for a bucket; figures are absent when the API did not answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sample {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub span_secs: i64,
    pub api_up: Option<f64>,
    pub ssh_up: Option<f64>,
    pub cpu_pct: Option<f64>,
    pub mem_pct: Option<f64>,
    pub mem_free_bytes: Option<i64>,
    pub disk_pct: Option<f64>,
    pub backup_pct: Option<f64>,
    /// Service name → systemd state (`running`, `dead`, …); probes only.
    pub services: Option<BTreeMap<String, String>>,
}

impl Sample {
    pub fn up(&self) -> bool {
        self.api_up.unwrap_or(0.0) > 0.0 || self.ssh_up.unwrap_or(0.0) > 0.0
    }
}

/// A host's newest probe and when it last answered at all.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Health {
    #[serde(skip)]
    pub hypervisor_id: HypervisorId,
    #[schema(value_type = String, format = DateTime)]
    pub first_probe_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_probe_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_good_at: Option<Timestamp>,
    pub api_up: bool,
    pub ssh_up: bool,
    /// Why the API probe failed, or what it found.
    pub api_detail: String,
    pub ssh_detail: String,
}

impl Health {
    /// Since when nothing answered: the last good probe, or the first
    /// probe of a host that never answered.
    pub fn silent_since(&self) -> Option<Timestamp> {
        if self.api_up || self.ssh_up {
            None
        } else {
            Some(self.last_good_at.unwrap_or(self.first_probe_at))
        }
    }
}

fn sample(row: &AnyRow) -> DbResult<Sample> {
    let services: Option<String> = get(row, "services")?;
    Ok(Sample {
        at: ts(row, "at")?,
        span_secs: get(row, "span_secs")?,
        api_up: get(row, "api_up")?,
        ssh_up: get(row, "ssh_up")?,
        cpu_pct: get(row, "cpu_pct")?,
        mem_pct: get(row, "mem_pct")?,
        mem_free_bytes: get(row, "mem_free_bytes")?,
        disk_pct: get(row, "disk_pct")?,
        backup_pct: get(row, "backup_pct")?,
        services: services.and_then(|s| serde_json::from_str(&s).ok()),
    })
}

fn health(row: &AnyRow) -> DbResult<Health> {
    Ok(Health {
        hypervisor_id: parse(row, "hypervisor_id")?,
        first_probe_at: ts(row, "first_probe_at")?,
        last_probe_at: ts(row, "last_probe_at")?,
        last_good_at: ts_opt(row, "last_good_at")?,
        api_up: super::flag(row, "api_up")?,
        ssh_up: super::flag(row, "ssh_up")?,
        api_detail: get(row, "api_detail")?,
        ssh_detail: get(row, "ssh_detail")?,
    })
}

impl Db {
    /// Stores one probe and moves the host's health on, in one transaction.
    pub async fn record_probe(&self, id: HypervisorId, s: &Sample, api_detail: &str, ssh_detail: &str) -> DbResult<()> {
        let mut tx = self.pool().begin().await?;
        insert_sample(&mut tx, id, s).await?;
        let good = s.up();
        let at = s.at.millis();
        let api_up = i64::from(s.api_up.unwrap_or(0.0) > 0.0);
        let ssh_up = i64::from(s.ssh_up.unwrap_or(0.0) > 0.0);
        let r = sqlx::query(
            "UPDATE host_health SET last_probe_at = ?, last_good_at = CASE WHEN ? = 1 THEN ? ELSE last_good_at END, \
             api_up = ?, ssh_up = ?, api_detail = ?, ssh_detail = ? WHERE hypervisor_id = ?",
        )
        .bind(at)
        .bind(i64::from(good))
        .bind(at)
        .bind(api_up)
        .bind(ssh_up)
        .bind(api_detail)
        .bind(ssh_detail)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            sqlx::query(
                "INSERT INTO host_health (hypervisor_id, first_probe_at, last_probe_at, last_good_at, api_up, ssh_up, \
                 api_detail, ssh_detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(id.to_string())
            .bind(at)
            .bind(at)
            .bind(good.then_some(at))
            .bind(api_up)
            .bind(ssh_up)
            .bind(api_detail)
            .bind(ssh_detail)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn host_health(&self, id: HypervisorId) -> DbResult<Option<Health>> {
        let row = sqlx::query("SELECT * FROM host_health WHERE hypervisor_id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(health).transpose()
    }

    pub async fn all_host_health(&self) -> DbResult<Vec<Health>> {
        let rows = sqlx::query("SELECT * FROM host_health").fetch_all(self.pool()).await?;
        rows.iter().map(health).collect()
    }

    /// Forgets a host's health, e.g. after its address or key changed, so
    /// it is "not checked yet" rather than down.
    pub async fn forget_host_health(&self, id: HypervisorId) -> DbResult<()> {
        sqlx::query("DELETE FROM host_health WHERE hypervisor_id = ?")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The newest `n` raw probes of a host, newest first.
    pub async fn recent_samples(&self, id: HypervisorId, n: i64) -> DbResult<Vec<Sample>> {
        let rows = sqlx::query(
            "SELECT * FROM host_samples WHERE hypervisor_id = ? AND span_secs = 0 ORDER BY at DESC LIMIT ?",
        )
        .bind(id.to_string())
        .bind(n)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(sample).collect()
    }

    /// History since `since`, oldest first: averages where the raw samples
    /// were compacted, raw samples after. At most `limit` rows (the newest).
    pub async fn sample_history(&self, id: HypervisorId, since: Timestamp, limit: i64) -> DbResult<Vec<Sample>> {
        let rows = sqlx::query(
            "SELECT * FROM host_samples WHERE hypervisor_id = ? AND at >= ? ORDER BY at DESC, span_secs ASC LIMIT ?",
        )
        .bind(id.to_string())
        .bind(since.millis())
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut v = rows.iter().map(sample).collect::<DbResult<Vec<_>>>()?;
        v.reverse();
        Ok(v)
    }

    /// Averages raw samples older than `RAW_KEEP_SECS` into 15-minute
    /// buckets and drops buckets older than `AVG_KEEP_SECS`. Only whole
    /// buckets are compacted, each once (its raw rows go in the same
    /// transaction). Returns the raw rows compacted.
    pub async fn compact_samples(&self, now: Timestamp) -> DbResult<u64> {
        let bucket_ms = BUCKET_SECS * 1000;
        let cutoff = (now.millis() - RAW_KEEP_SECS * 1000).div_euclid(bucket_ms) * bucket_ms;
        let mut tx = self.pool().begin().await?;
        // A write first: SQLite then takes the write lock at once, instead
        // of failing to upgrade a read when the API wrote meanwhile.
        sqlx::query("DELETE FROM host_samples WHERE span_secs > 0 AND at < ?")
            .bind(now.millis() - AVG_KEEP_SECS * 1000)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query("SELECT * FROM host_samples WHERE span_secs = 0 AND at < ? ORDER BY hypervisor_id, at")
            .bind(cutoff)
            .fetch_all(&mut *tx)
            .await?;
        let mut buckets: BTreeMap<(String, i64), Vec<Sample>> = BTreeMap::new();
        for row in &rows {
            let s = sample(row)?;
            let host: String = get(row, "hypervisor_id")?;
            buckets.entry((host, s.at.millis().div_euclid(bucket_ms) * bucket_ms)).or_default().push(s);
        }
        for ((host, at), samples) in &buckets {
            let avg = average(Timestamp(*at), samples);
            let id: HypervisorId =
                host.parse().map_err(|_| super::DbError::Corrupt(format!("hypervisor_id = {host}")))?;
            insert_sample(&mut tx, id, &avg).await?;
        }
        let compacted = sqlx::query("DELETE FROM host_samples WHERE span_secs = 0 AND at < ?")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(compacted.rows_affected())
    }

    /// Takes or renews the lease `name` for `holder` until `until`; false
    /// while another holder's lease runs.
    pub async fn take_lease(&self, name: &str, holder: &str, now: Timestamp, until: Timestamp) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE leases SET holder = ?, expires_at = ? WHERE name = ? AND (holder = ? OR expires_at < ?)",
        )
        .bind(holder)
        .bind(until.millis())
        .bind(name)
        .bind(holder)
        .bind(now.millis())
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn release_lease(&self, name: &str, holder: &str) -> DbResult<()> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

async fn insert_sample(conn: &mut sqlx::AnyConnection, id: HypervisorId, s: &Sample) -> DbResult<()> {
    let services = s.services.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default());
    sqlx::query(
        "INSERT INTO host_samples (hypervisor_id, at, span_secs, api_up, ssh_up, cpu_pct, mem_pct, mem_free_bytes, \
         disk_pct, backup_pct, services) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(id.to_string())
    .bind(s.at.millis())
    .bind(s.span_secs)
    .bind(s.api_up)
    .bind(s.ssh_up)
    .bind(s.cpu_pct)
    .bind(s.mem_pct)
    .bind(s.mem_free_bytes)
    .bind(s.disk_pct)
    .bind(s.backup_pct)
    .bind(services)
    .execute(conn)
    .await?;
    Ok(())
}

/// The mean of each figure over the samples that have it.
fn average(at: Timestamp, samples: &[Sample]) -> Sample {
    fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
        let v: Vec<f64> = values.flatten().collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
    Sample {
        at,
        span_secs: BUCKET_SECS,
        api_up: mean(samples.iter().map(|s| s.api_up)),
        ssh_up: mean(samples.iter().map(|s| s.ssh_up)),
        cpu_pct: mean(samples.iter().map(|s| s.cpu_pct)),
        mem_pct: mean(samples.iter().map(|s| s.mem_pct)),
        mem_free_bytes: mean(samples.iter().map(|s| s.mem_free_bytes.map(|b| b as f64))).map(|b| b as i64),
        disk_pct: mean(samples.iter().map(|s| s.disk_pct)),
        backup_pct: mean(samples.iter().map(|s| s.backup_pct)),
        services: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let settings = crate::settings::Settings::from_lookup(|k| match k {
            "DATA_DIR" => Some(data.display().to_string()),
            _ => None,
        })
        .unwrap();
        let db = Db::connect(&settings).await.unwrap();
        db.migrate().await.unwrap();
        (dir, db)
    }

    /// Raw samples older than 48 h become one average per whole 15-minute
    /// bucket, once; younger ones stay raw; averages past 90 days go.
    #[tokio::test]
    async fn history_is_compacted_and_expired() {
        let (_dir, db) = db().await;
        let host = HypervisorId::new();
        let bucket = BUCKET_SECS * 1000;
        let now = Timestamp(1_000 * bucket);
        let old = now.millis() - RAW_KEEP_SECS * 1000 - 2 * bucket;
        let start = old - old.rem_euclid(bucket);
        for (i, cpu) in [10.0, 20.0, 30.0].into_iter().enumerate() {
            let s = Sample {
                at: Timestamp(start + i as i64 * 60_000),
                api_up: Some(1.0),
                cpu_pct: Some(cpu),
                ..Default::default()
            };
            db.record_probe(host, &s, "", "").await.unwrap();
        }
        let fresh = Sample { at: Timestamp(now.millis() - 60_000), api_up: Some(0.0), ..Default::default() };
        db.record_probe(host, &fresh, "", "").await.unwrap();
        let ancient = Sample {
            at: Timestamp(now.millis() - AVG_KEEP_SECS * 1000 - bucket),
            span_secs: BUCKET_SECS,
            ..Default::default()
        };
        let mut conn = db.pool().acquire().await.unwrap();
        insert_sample(&mut conn, host, &ancient).await.unwrap();
        drop(conn);

        assert_eq!(db.compact_samples(now).await.unwrap(), 3);
        let all = db.sample_history(host, Timestamp(0), 100).await.unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
        assert_eq!((all[0].at, all[0].span_secs, all[0].cpu_pct), (Timestamp(start), BUCKET_SECS, Some(20.0)));
        assert_eq!(all[0].api_up, Some(1.0));
        assert_eq!((all[1].span_secs, all[1].api_up), (0, Some(0.0)));
        assert_eq!(db.compact_samples(now).await.unwrap(), 0, "each bucket once");
        let health = db.host_health(host).await.unwrap().unwrap();
        assert_eq!(health.last_good_at, Some(Timestamp(start + 120_000)));
        assert!(!health.api_up);
    }

    #[test]
    fn averages_skip_missing_figures() {
        let a = Sample { api_up: Some(1.0), cpu_pct: Some(10.0), ..Default::default() };
        let b = Sample { api_up: Some(0.0), cpu_pct: None, ..Default::default() };
        let avg = average(Timestamp(0), &[a, b]);
        assert_eq!(avg.api_up, Some(0.5));
        assert_eq!(avg.cpu_pct, Some(10.0));
        assert_eq!(avg.mem_pct, None);
        assert_eq!(avg.span_secs, BUCKET_SECS);
    }
}
