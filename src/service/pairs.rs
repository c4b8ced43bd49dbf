//! VM pairs: which DC VM is replicated to which DRC VMID, and how.

use serde::{Deserialize, Serialize};

use super::audit::{self, changes, subject};
use super::input::{doc, label, nullable, required, CreateRules, Input};
use super::{require, ServiceError, ServiceResult};
use crate::db::archives::Archive;
use crate::db::pairs::{Pair, PairFields};
use crate::db::users::User;
use crate::domain::{
    Compress, Guest, HypervisorId, HypervisorRole, Mode, NetworkMap, PairId, PairState, Role, StorageId, Timestamp,
    Transfer, Vmid,
};
use crate::state::AppState;
use crate::worker::jobs::backup::MIN_KEEP_LAST;

/// Who may create, change, delete pairs (the UI shows the buttons by this).
pub const MANAGE: Role = Role::Operator;
/// Who may let drswitch replace an unmarked VM.
pub const ADOPT: Role = Role::Admin;

/// Fields of a VM pair. On create, the two hypervisors and VMIDs are
/// required; on update every field is optional.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairInput {
    #[schema(value_type = Option<doc::Label>)]
    pub name: Option<String>,
    pub src_hypervisor_id: Option<HypervisorId>,
    pub src_vmid: Option<Vmid>,
    /// A DRC hypervisor, or null to let placement choose the one with the
    /// most free memory at the first restore or failover.
    #[serde(default, deserialize_with = "nullable")]
    pub dst_hypervisor_id: Option<Option<HypervisorId>>,
    pub dst_vmid: Option<Vmid>,
    pub guest: Option<Guest>,
    pub compress: Option<Compress>,
    pub mode: Option<Mode>,
    pub start_after_restore: Option<bool>,
    /// Archives kept, 2 to 1000 (default 3).
    #[schema(minimum = 2, maximum = 1000)]
    pub keep_last: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 1000)]
    pub keep_daily: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 1000)]
    pub keep_weekly: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 1, maximum = 1000)]
    pub keep_monthly: Option<Option<i64>>,
    pub auto_failover: Option<bool>,
    pub enabled: Option<bool>,
    /// Seconds the newest verified archive may age before the pair's RPO is breached (60 to 2678400; default 90000).
    #[schema(minimum = 60, maximum = 2_678_400)]
    pub rpo_target_secs: Option<i64>,
    /// VMID on the DRC host that DR drills restore to and destroy; null
    /// clears it (no drills).
    #[serde(default, deserialize_with = "nullable")]
    pub drill_vmid: Option<Option<Vmid>>,
    /// `{"vmbr0": "vmbr10"}` or `{"vmbr0": {"bridge": "vmbr10", "tag": 20}}`;
    /// null clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub network_map: Option<Option<NetworkMap>>,
    /// Stop the DC VM if it runs again after its host returns while the
    /// pair is failed over (default false: only report it).
    pub shutdown_returned_source: Option<bool>,
    /// `staged` (default) or `streaming` (SPEC §4.1).
    pub transfer: Option<Transfer>,
    /// DC storage for vzdump's fleecing image in streaming mode (qemu
    /// pairs only); null clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub fleecing_storage: Option<Option<StorageId>>,
}

/// A body may not ask for fleecing on a container.
fn no_lxc_fleecing() -> serde_json::Value {
    serde_json::json!({"not": {"required": ["guest", "fleecing_storage"],
        "properties": {"guest": {"const": "lxc"}, "fleecing_storage": {"type": "string"}}}})
}

impl Input for PairInput {
    fn rules() -> CreateRules {
        CreateRules {
            required: &["src_hypervisor_id", "src_vmid", "dst_vmid"],
            create: Some(no_lxc_fleecing()),
            update: Some(no_lxc_fleecing()),
        }
    }
}

/// A pair as shown to people, with its current recovery point age.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PairView {
    #[serde(flatten)]
    pub pair: Pair,
    /// Seconds since the newest verified archive was taken (the pair's current RPO); null if none.
    pub rpo_seconds: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_archive_at: Option<Timestamp>,
    /// The newest finished DR drill: passed or not, measured RTO, when.
    pub last_drill: Option<crate::db::events::Event>,
}

fn view(pair: Pair, newest: Option<Timestamp>) -> PairView {
    let rpo_seconds = newest.map(|t| (Timestamp::now().millis() - t.millis()).max(0) / 1000);
    PairView { pair, rpo_seconds, last_archive_at: newest, last_drill: None }
}

async fn view_one(state: &AppState, pair: Pair) -> ServiceResult<PairView> {
    let newest = state.db.list_archives(pair.id).await?.into_iter().find(|a| a.verified_at.is_some());
    let last_drill = state
        .db
        .list_events(Some(pair.id), 20)
        .await?
        .into_iter()
        .find(|e| e.kind == crate::domain::TaskKind::Drill && e.status != "running");
    let mut v = view(pair, newest.map(|a| a.created_at));
    v.last_drill = last_drill;
    Ok(v)
}

fn keep(field: &str, n: i64, min: u32) -> ServiceResult<u32> {
    if (i64::from(min)..=1000).contains(&n) {
        Ok(n as u32)
    } else {
        Err(ServiceError::invalid(field, format!("must be an integer from {min} to 1000")))
    }
}

/// SPEC: 25 h, a nightly backup with an hour to spare.
pub const DEFAULT_RPO_TARGET: i64 = 90_000;

fn rpo_target(n: i64) -> ServiceResult<i64> {
    if (60..=31 * 86_400).contains(&n) {
        Ok(n)
    } else {
        Err(ServiceError::invalid("rpo_target_secs", "must be from 60 to 2678400 seconds (31 days)"))
    }
}

fn keep_opt(field: &str, n: Option<i64>) -> ServiceResult<Option<u32>> {
    n.map(|n| keep(field, n, 1)).transpose()
}

/// Checks the hypervisors exist and stand on the right sides.
async fn check_sides(state: &AppState, f: &PairFields) -> ServiceResult<()> {
    for (field, id, role) in [
        ("src_hypervisor_id", Some(f.src_hypervisor_id), HypervisorRole::Dc),
        ("dst_hypervisor_id", f.dst_hypervisor_id, HypervisorRole::Drc),
    ] {
        let Some(id) = id else { continue };
        match state.db.hypervisor(id).await? {
            None => return Err(ServiceError::clash(field, "no hypervisor has this id")),
            Some(h) if h.role != role => {
                return Err(ServiceError::clash(
                    field,
                    format!("must be a {role} hypervisor, but {} is {}", h.name, h.role),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Gives the unique target a clear message naming `dst_vmid`.
async fn check_target_free(state: &AppState, f: &PairFields, except: Option<PairId>) -> ServiceResult<()> {
    let clash = state
        .db
        .list_pairs()
        .await?
        .into_iter()
        .any(|p| Some(p.id) != except && p.dst_hypervisor_id == f.dst_hypervisor_id && p.dst_vmid == f.dst_vmid);
    if clash {
        return Err(ServiceError::Taken {
            field: "dst_vmid".into(),
            message: format!("another pair already targets VM {} on this DRC hypervisor", f.dst_vmid),
        });
    }
    Ok(())
}

/// A queued or running task was planned against the pair as it is; its
/// target and hosts must not move under it (the database checks this in the
/// same statement that changes the pair).
fn busy(what: &str) -> ServiceError {
    ServiceError::Conflict(format!("This pair has a queued or running task; wait for it or cancel it before {what}."))
}

pub async fn load(state: &AppState, id: PairId) -> ServiceResult<Pair> {
    state.db.pair(id).await?.ok_or(ServiceError::NotFound("pair"))
}

/// Every pair with its RPO, in two queries whatever their number.
pub async fn list(state: &AppState, actor: &User) -> ServiceResult<Vec<PairView>> {
    require(actor, Role::Viewer)?;
    let newest = state.db.newest_verified_archives().await?;
    let drills = state.db.latest_events(crate::domain::TaskKind::Drill).await?;
    Ok(state
        .db
        .list_pairs()
        .await?
        .into_iter()
        .map(|p| {
            let at = newest.get(&p.id).copied();
            let mut v = view(p, at);
            v.last_drill = drills.iter().find(|e| e.pair_id == v.pair.id).cloned();
            v
        })
        .collect())
}

pub async fn get(state: &AppState, actor: &User, id: PairId) -> ServiceResult<PairView> {
    require(actor, Role::Viewer)?;
    view_one(state, load(state, id).await?).await
}

pub async fn create(state: &AppState, actor: &User, b: PairInput) -> ServiceResult<PairView> {
    require(actor, MANAGE)?;
    let (b_guest, b_fleecing) = (b.guest, matches!(b.fleecing_storage, Some(Some(_))));
    let src_vmid = required("src_vmid", b.src_vmid)?;
    let dst_vmid = required("dst_vmid", b.dst_vmid)?;
    let f = PairFields {
        name: match b.name {
            Some(n) => label("name", &n)?,
            None => format!("VM {src_vmid} to VM {dst_vmid}"),
        },
        src_hypervisor_id: required("src_hypervisor_id", b.src_hypervisor_id)?,
        src_vmid,
        // None: placement picks a DRC host at the first restore or failover.
        dst_hypervisor_id: b.dst_hypervisor_id.flatten(),
        dst_vmid,
        guest: b.guest.unwrap_or(Guest::Qemu),
        compress: b.compress.unwrap_or(Compress::Zstd),
        mode: b.mode.unwrap_or(Mode::Snapshot),
        start_after_restore: b.start_after_restore.unwrap_or(true),
        keep_last: keep("keep_last", b.keep_last.unwrap_or(3), MIN_KEEP_LAST)?,
        keep_daily: keep_opt("keep_daily", b.keep_daily.flatten())?,
        keep_weekly: keep_opt("keep_weekly", b.keep_weekly.flatten())?,
        keep_monthly: keep_opt("keep_monthly", b.keep_monthly.flatten())?,
        auto_failover: b.auto_failover.unwrap_or(false),
        enabled: b.enabled.unwrap_or(true),
        rpo_target_secs: rpo_target(b.rpo_target_secs.unwrap_or(DEFAULT_RPO_TARGET))?,
        drill_vmid: b.drill_vmid.flatten(),
        network_map: b.network_map.flatten().unwrap_or_default(),
        shutdown_returned_source: b.shutdown_returned_source.unwrap_or(false),
        transfer: b.transfer.unwrap_or(Transfer::Staged),
        fleecing_storage: b.fleecing_storage.flatten(),
    };
    check_fleecing(&f, b_guest, b_fleecing)?;
    check_sides(state, &f).await?;
    check_target_free(state, &f, None).await?;
    check_drill_vmid(state, &f, None).await?;
    let id = state.db.insert_pair(&f).await?;
    tracing::info!(by = %actor.username, pair = %id, "pair created");
    audit::record(state, &actor.username, "pair.create", subject("pair", id), &format!("name {:?}", f.name)).await;
    view_one(state, load(state, id).await?).await
}

/// Changes only the fields given; changing the target makes the VM there
/// "not ours" until a restore marks it or an admin adopts it.
pub async fn update(state: &AppState, actor: &User, id: PairId, b: PairInput) -> ServiceResult<PairView> {
    require(actor, MANAGE)?;
    let p = load(state, id).await?;
    let (b_guest, b_fleecing) = (b.guest, matches!(b.fleecing_storage, Some(Some(_))));
    let f = PairFields {
        name: match b.name {
            Some(n) => label("name", &n)?,
            None => p.name.clone(),
        },
        src_hypervisor_id: b.src_hypervisor_id.unwrap_or(p.src_hypervisor_id),
        src_vmid: b.src_vmid.unwrap_or(p.src_vmid),
        dst_hypervisor_id: b.dst_hypervisor_id.unwrap_or(p.dst_hypervisor_id),
        dst_vmid: b.dst_vmid.unwrap_or(p.dst_vmid),
        guest: b.guest.unwrap_or(p.guest),
        compress: b.compress.unwrap_or(p.compress),
        mode: b.mode.unwrap_or(p.mode),
        start_after_restore: b.start_after_restore.unwrap_or(p.start_after_restore),
        keep_last: match b.keep_last {
            Some(n) => keep("keep_last", n, MIN_KEEP_LAST)?,
            None => p.keep_last,
        },
        keep_daily: match b.keep_daily {
            Some(n) => keep_opt("keep_daily", n)?,
            None => p.keep_daily,
        },
        keep_weekly: match b.keep_weekly {
            Some(n) => keep_opt("keep_weekly", n)?,
            None => p.keep_weekly,
        },
        keep_monthly: match b.keep_monthly {
            Some(n) => keep_opt("keep_monthly", n)?,
            None => p.keep_monthly,
        },
        auto_failover: b.auto_failover.unwrap_or(p.auto_failover),
        enabled: b.enabled.unwrap_or(p.enabled),
        rpo_target_secs: match b.rpo_target_secs {
            Some(n) => rpo_target(n)?,
            None => p.rpo_target_secs,
        },
        drill_vmid: b.drill_vmid.unwrap_or(p.drill_vmid),
        network_map: match b.network_map {
            Some(m) => m.unwrap_or_default(),
            None => p.network_map.clone(),
        },
        shutdown_returned_source: b.shutdown_returned_source.unwrap_or(p.shutdown_returned_source),
        transfer: b.transfer.unwrap_or(p.transfer),
        fleecing_storage: b.fleecing_storage.unwrap_or(p.fleecing_storage.clone()),
    };
    check_fleecing(&f, b_guest, b_fleecing)?;
    check_sides(state, &f).await?;
    check_target_free(state, &f, Some(p.id)).await?;
    check_drill_vmid(state, &f, Some(p.id)).await?;
    let target_changed = f.dst_hypervisor_id != p.dst_hypervisor_id || f.dst_vmid != p.dst_vmid;
    let source_changed = f.src_hypervisor_id != p.src_hypervisor_id || f.src_vmid != p.src_vmid;
    if (target_changed || source_changed) && p.state != PairState::Protected {
        return Err(ServiceError::Conflict(format!(
            "The pair is {}; fail back before moving its source or replica.",
            p.state
        )));
    }
    if !state.db.update_pair(p.id, &f, target_changed).await? {
        return Err(busy("changing the pair"));
    }
    tracing::info!(by = %actor.username, pair = %p.id, "pair updated");
    let after = load(state, id).await?;
    let detail = changes(&p, &after, &[]);
    audit::record(state, &actor.username, "pair.update", subject("pair", p.id), &detail).await;
    view_one(state, after).await
}

/// vzdump fleeces only VM disks (PVE 8.2+); a container has none to fleece.
/// A body that asks for both is invalid (422); one that meets the stored
/// other half clashes with it (409).
fn check_fleecing(f: &PairFields, b_guest: Option<Guest>, b_fleecing: bool) -> ServiceResult<()> {
    if f.fleecing_storage.is_some() && f.guest == Guest::Lxc {
        let message = "only VMs (guest qemu) can use fleecing";
        if b_fleecing && b_guest == Some(Guest::Lxc) {
            return Err(ServiceError::invalid("fleecing_storage", message));
        }
        return Err(ServiceError::clash("fleecing_storage", message));
    }
    Ok(())
}

/// A drill VMID must differ from every replica and drill VMID on the same
/// DRC host: a drill destroys its VM at the end.
async fn check_drill_vmid(state: &AppState, f: &PairFields, except: Option<PairId>) -> ServiceResult<()> {
    let Some(drill) = f.drill_vmid else { return Ok(()) };
    let clash = drill == f.dst_vmid
        || state.db.list_pairs().await?.into_iter().any(|p| {
            Some(p.id) != except
                && p.dst_hypervisor_id == f.dst_hypervisor_id
                && (p.dst_vmid == drill || p.drill_vmid == Some(drill))
        });
    if clash {
        return Err(ServiceError::clash(
            "drill_vmid",
            "is a replica or drill VMID of a pair on this DRC hypervisor; pick a free VMID",
        ));
    }
    Ok(())
}

/// Deletes the pair and its schedules; its archives and task history are kept.
pub async fn delete(state: &AppState, actor: &User, id: PairId) -> ServiceResult<()> {
    require(actor, MANAGE)?;
    let p = load(state, id).await?;
    if p.replica_task_id.is_some() {
        return Err(ServiceError::Conflict(format!(
            "VM {} was left half-restored by a task of this pair; restore it before deleting the pair.",
            p.dst_vmid
        )));
    }
    if !state.db.delete_pair(p.id).await? {
        return Err(ServiceError::Conflict("A task of this pair is running; cancel it or wait for it first.".into()));
    }
    state.wake.schedules_changed();
    tracing::info!(by = %actor.username, pair = %p.id, "pair deleted");
    audit::record(state, &actor.username, "pair.delete", subject("pair", p.id), &format!("name {:?}", p.name)).await;
    Ok(())
}

/// Newest first.
pub async fn archives(state: &AppState, actor: &User, id: PairId) -> ServiceResult<Vec<Archive>> {
    require(actor, Role::Viewer)?;
    let p = load(state, id).await?;
    Ok(state.db.list_archives(p.id).await?)
}

/// Lets drswitch replace the VM that exists, without drswitch's replica
/// marker, at the pair's target: the next restore overwrites it and marks
/// it. Admin only, logged with who did it; changing the target undoes it.
pub async fn adopt(state: &AppState, actor: &User, id: PairId) -> ServiceResult<PairView> {
    require(actor, ADOPT)?;
    let p = load(state, id).await?;
    if !state.db.set_adopted(p.id).await? {
        return Err(busy("adopting its target"));
    }
    tracing::warn!(target: "audit", by = %actor.username, pair = %p.id, vmid = %p.dst_vmid,
        hypervisor = ?p.dst_hypervisor_id, "VM at the pair's target adopted: the next restore may replace it");
    let detail = format!("VM {} at the pair's target may be replaced by the next restore", p.dst_vmid);
    audit::record(state, &actor.username, "pair.adopt", subject("pair", p.id), &detail).await;
    view_one(state, load(state, id).await?).await
}
