use serde::Serialize;
use sqlx::any::AnyRow;

use super::{conflict, flag, get, parse, parse_opt, ts, Db, DbResult};
use crate::domain::{
    DirPath, HostName, HypervisorId, HypervisorRole, NodeName, SshUser, StorageId, Timestamp, TlsFingerprint, TokenId,
};

/// A Proxmox VE host. The API token secret is held encrypted and is never
/// serialized.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Hypervisor {
    pub id: HypervisorId,
    pub name: String,
    #[schema(value_type = String)]
    pub host: HostName,
    pub ssh_port: u16,
    #[schema(value_type = String)]
    pub ssh_user: SshUser,
    #[schema(value_type = String)]
    pub node: NodeName,
    pub role: HypervisorRole,
    pub api_port: u16,
    #[schema(value_type = Option<String>)]
    pub api_token_id: Option<TokenId>,
    /// Whether a secret is stored; the secret itself is write-only.
    pub has_api_token_secret: bool,
    #[schema(value_type = Option<String>)]
    pub tls_fingerprint: Option<TlsFingerprint>,
    #[schema(value_type = String)]
    pub dump_dir: DirPath,
    #[schema(value_type = String)]
    pub restore_storage: StorageId,
    pub enabled: bool,
    /// Transfer limit in KiB/s for archives to or from this host (DR
    /// traffic must not starve the production WAN); null = the
    /// `TRANSFER_BWLIMIT_KIB` setting, 0 = no limit.
    pub bwlimit_kib: Option<u64>,
    /// SHA-256 fingerprint of the pinned SSH host key, once `check` pinned it.
    pub host_key_fingerprint: Option<String>,
    #[serde(skip)]
    pub host_key: Option<String>,
    #[serde(skip)]
    pub api_token_secret_enc: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// Every stored field of a hypervisor except the pinned key and times.
#[derive(Debug, Clone)]
pub struct HypervisorFields {
    pub name: String,
    pub host: HostName,
    pub ssh_port: u16,
    pub ssh_user: SshUser,
    pub node: NodeName,
    pub role: HypervisorRole,
    pub api_port: u16,
    pub api_token_id: Option<TokenId>,
    pub api_token_secret_enc: Option<String>,
    pub tls_fingerprint: Option<TlsFingerprint>,
    pub dump_dir: DirPath,
    pub restore_storage: StorageId,
    pub enabled: bool,
    pub bwlimit_kib: Option<u64>,
}

fn port(row: &AnyRow, col: &str) -> DbResult<u16> {
    let n: i64 = get(row, col)?;
    u16::try_from(n).map_err(|_| super::DbError::Corrupt(format!("{col} = {n}")))
}

fn hypervisor(row: &AnyRow) -> DbResult<Hypervisor> {
    let secret: Option<String> = get(row, "api_token_secret_enc")?;
    Ok(Hypervisor {
        id: parse(row, "id")?,
        name: get(row, "name")?,
        host: parse(row, "host")?,
        ssh_port: port(row, "ssh_port")?,
        ssh_user: parse(row, "ssh_user")?,
        node: parse(row, "node")?,
        role: parse(row, "role")?,
        api_port: port(row, "api_port")?,
        api_token_id: parse_opt(row, "api_token_id")?,
        has_api_token_secret: secret.is_some(),
        api_token_secret_enc: secret,
        tls_fingerprint: parse_opt(row, "tls_fingerprint")?,
        dump_dir: parse(row, "dump_dir")?,
        restore_storage: parse(row, "restore_storage")?,
        enabled: flag(row, "enabled")?,
        bwlimit_kib: get::<Option<i64>>(row, "bwlimit_kib")?.map(|n| n.max(0) as u64),
        host_key: get(row, "host_key")?,
        host_key_fingerprint: get(row, "host_key_fingerprint")?,
        created_at: ts(row, "created_at")?,
        updated_at: ts(row, "updated_at")?,
    })
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds the fields in the column order both INSERT and UPDATE use.
fn bind_fields<'q>(q: Query<'q>, f: &'q HypervisorFields) -> Query<'q> {
    q.bind(&f.name)
        .bind(f.host.as_str())
        .bind(i64::from(f.ssh_port))
        .bind(f.ssh_user.as_str())
        .bind(f.node.as_str())
        .bind(f.role.as_str())
        .bind(i64::from(f.api_port))
        .bind(f.api_token_id.as_ref().map(|t| t.as_str().to_string()))
        .bind(f.api_token_secret_enc.clone())
        .bind(f.tls_fingerprint.as_ref().map(|t| t.as_str().to_string()))
        .bind(f.dump_dir.as_str())
        .bind(f.restore_storage.as_str())
        .bind(i64::from(f.enabled))
        .bind(f.bwlimit_kib.map(|n| n as i64))
}

const DUPLICATE: &str = "a hypervisor with this name already exists";

impl Db {
    pub async fn insert_hypervisor(&self, f: &HypervisorFields) -> DbResult<HypervisorId> {
        let id = HypervisorId::new();
        let now = Timestamp::now().millis();
        let q = sqlx::query(
            "INSERT INTO hypervisors (id, name, host, ssh_port, ssh_user, node, role, api_port, api_token_id, \
             api_token_secret_enc, tls_fingerprint, dump_dir, restore_storage, enabled, bwlimit_kib, created_at, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string());
        bind_fields(q, f).bind(now).bind(now).execute(self.pool()).await.map_err(|e| conflict(e, DUPLICATE))?;
        Ok(id)
    }

    /// Replaces every field; a changed host or port drops the pinned host key.
    pub async fn update_hypervisor(&self, id: HypervisorId, f: &HypervisorFields, keep_host_key: bool) -> DbResult<()> {
        let q = sqlx::query(
            "UPDATE hypervisors SET name = ?, host = ?, ssh_port = ?, ssh_user = ?, node = ?, role = ?, api_port = ?, \
             api_token_id = ?, api_token_secret_enc = ?, tls_fingerprint = ?, dump_dir = ?, restore_storage = ?, \
             enabled = ?, bwlimit_kib = ?, host_key = CASE WHEN ? = 1 THEN host_key ELSE NULL END, \
             host_key_fingerprint = CASE WHEN ? = 1 THEN host_key_fingerprint ELSE NULL END, updated_at = ? \
             WHERE id = ?",
        );
        bind_fields(q, f)
            .bind(i64::from(keep_host_key))
            .bind(i64::from(keep_host_key))
            .bind(Timestamp::now().millis())
            .bind(id.to_string())
            .execute(self.pool())
            .await
            .map_err(|e| conflict(e, DUPLICATE))?;
        Ok(())
    }

    pub async fn hypervisor(&self, id: HypervisorId) -> DbResult<Option<Hypervisor>> {
        sqlx::query("SELECT * FROM hypervisors WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(hypervisor)
            .transpose()
    }

    pub async fn list_hypervisors(&self) -> DbResult<Vec<Hypervisor>> {
        sqlx::query("SELECT * FROM hypervisors ORDER BY name")
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(hypervisor)
            .collect()
    }

    pub async fn pin_host_key(&self, id: HypervisorId, key: Option<&str>, fingerprint: Option<&str>) -> DbResult<()> {
        sqlx::query("UPDATE hypervisors SET host_key = ?, host_key_fingerprint = ?, updated_at = ? WHERE id = ?")
            .bind(key)
            .bind(fingerprint)
            .bind(Timestamp::now().millis())
            .bind(id.to_string())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn count_pairs_using(&self, hypervisor_id: HypervisorId) -> DbResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM pairs WHERE src_hypervisor_id = ? OR dst_hypervisor_id = ?")
            .bind(hypervisor_id.to_string())
            .bind(hypervisor_id.to_string())
            .fetch_one(self.pool())
            .await?;
        get(&row, "n")
    }

    pub async fn delete_hypervisor(&self, id: HypervisorId) -> DbResult<bool> {
        let r = sqlx::query("DELETE FROM hypervisors WHERE id = ?").bind(id.to_string()).execute(self.pool()).await?;
        Ok(r.rows_affected() > 0)
    }
}
