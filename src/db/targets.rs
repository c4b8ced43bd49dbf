//! Notification targets. The non-secret settings of each kind are kept as
//! one JSON column; the secret (webhook signing key or SMTP password) is
//! encrypted and never serialized.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use super::{conflict, flag, get, parse, ts, Db, DbError, DbResult};
use crate::domain::{AlertKind, Severity, SmtpTlsMode, TargetId, TargetKind, Timestamp};

/// The settings of a target's kind; only those of its kind are set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TargetSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_tls: Option<SmtpTlsMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_to: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Target {
    pub id: TargetId,
    pub name: String,
    pub kind: TargetKind,
    pub enabled: bool,
    /// Alerts below this severity are not sent here.
    pub min_severity: Severity,
    /// Alert kinds sent here; empty means every kind.
    pub kinds: Vec<AlertKind>,
    #[serde(flatten)]
    pub settings: TargetSettings,
    /// Whether a secret (webhook `secret`, `smtp_password`) is stored; the
    /// secret itself is write-only.
    pub has_secret: bool,
    #[serde(skip)]
    pub secret_enc: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl Target {
    /// Whether an alert of this kind and severity goes here.
    pub fn wants(&self, kind: AlertKind, severity: Severity) -> bool {
        self.enabled && severity.at_least(self.min_severity) && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

#[derive(Debug, Clone)]
pub struct TargetFields {
    pub name: String,
    pub kind: TargetKind,
    pub enabled: bool,
    pub min_severity: Severity,
    pub kinds: Vec<AlertKind>,
    pub settings: TargetSettings,
    pub secret_enc: Option<String>,
}

fn target(row: &AnyRow) -> DbResult<Target> {
    let kinds: String = get(row, "kinds")?;
    let kinds = kinds
        .split(',')
        .filter(|k| !k.is_empty())
        .map(|k| k.parse().map_err(|_| DbError::Corrupt(format!("kinds = {k:?}"))))
        .collect::<DbResult<Vec<AlertKind>>>()?;
    let config: String = get(row, "config")?;
    let settings = serde_json::from_str(&config).map_err(|_| DbError::Corrupt("notification target config".into()))?;
    let secret_enc: Option<String> = get(row, "secret_enc")?;
    Ok(Target {
        id: parse(row, "id")?,
        name: get(row, "name")?,
        kind: parse(row, "kind")?,
        enabled: flag(row, "enabled")?,
        min_severity: parse(row, "min_severity")?,
        kinds,
        settings,
        has_secret: secret_enc.is_some(),
        secret_enc,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

fn kinds_text(kinds: &[AlertKind]) -> String {
    kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",")
}

fn config_text(s: &TargetSettings) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "{}".into())
}

const NAME_TAKEN: &str = "a notification target with this name already exists";

impl Db {
    pub async fn insert_target(&self, f: &TargetFields) -> DbResult<TargetId> {
        let id = TargetId::new();
        let now = Timestamp::now().millis();
        sqlx::query(
            "INSERT INTO notification_targets (id, name, kind, enabled, min_severity, kinds, config, secret_enc, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(&f.name)
        .bind(f.kind.as_str())
        .bind(i64::from(f.enabled))
        .bind(f.min_severity.as_str())
        .bind(kinds_text(&f.kinds))
        .bind(config_text(&f.settings))
        .bind(f.secret_enc.as_deref())
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await
        .map_err(|e| conflict(e, NAME_TAKEN))?;
        Ok(id)
    }

    pub async fn update_target(&self, id: TargetId, f: &TargetFields) -> DbResult<bool> {
        let r = sqlx::query(
            "UPDATE notification_targets SET name = ?, kind = ?, enabled = ?, min_severity = ?, kinds = ?, config = ?, \
             secret_enc = ?, updated_at = ? WHERE id = ?",
        )
        .bind(&f.name)
        .bind(f.kind.as_str())
        .bind(i64::from(f.enabled))
        .bind(f.min_severity.as_str())
        .bind(kinds_text(&f.kinds))
        .bind(config_text(&f.settings))
        .bind(f.secret_enc.as_deref())
        .bind(Timestamp::now().millis())
        .bind(id.to_string())
        .execute(self.pool())
        .await
        .map_err(|e| conflict(e, NAME_TAKEN))?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn target(&self, id: TargetId) -> DbResult<Option<Target>> {
        let row = sqlx::query("SELECT * FROM notification_targets WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(target).transpose()
    }

    pub async fn list_targets(&self) -> DbResult<Vec<Target>> {
        let rows = sqlx::query("SELECT * FROM notification_targets ORDER BY name").fetch_all(self.pool()).await?;
        rows.iter().map(target).collect()
    }

    pub async fn delete_target(&self, id: TargetId) -> DbResult<bool> {
        let r = sqlx::query("DELETE FROM notification_targets WHERE id = ?")
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() > 0)
    }
}
