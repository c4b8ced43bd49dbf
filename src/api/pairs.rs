use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::body::{label, nullable, required, Body};
use crate::auth::CurrentUser;
use crate::db::archives::Archive;
use crate::db::pairs::{Pair, PairFields};
use crate::domain::{Compress, Guest, HypervisorRole, Mode, Role, Timestamp, Vmid};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::worker::jobs::backup::MIN_KEEP_LAST;

/// Fields of a VM pair. On create, the two hypervisors and VMIDs are
/// required; on update every field is optional.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairInput {
    name: Option<String>,
    src_hypervisor_id: Option<Uuid>,
    #[schema(value_type = Option<i64>)]
    src_vmid: Option<Vmid>,
    dst_hypervisor_id: Option<Uuid>,
    #[schema(value_type = Option<i64>)]
    dst_vmid: Option<Vmid>,
    guest: Option<Guest>,
    compress: Option<Compress>,
    mode: Option<Mode>,
    start_after_restore: Option<bool>,
    keep_last: Option<i64>,
    #[serde(default, deserialize_with = "nullable")]
    keep_daily: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    keep_weekly: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    keep_monthly: Option<Option<i64>>,
    auto_failover: Option<bool>,
    enabled: Option<bool>,
}

/// A pair as shown by the API, with its current recovery point age.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PairView {
    #[serde(flatten)]
    pair: Pair,
    /// Seconds since the newest verified archive was taken (the pair's current RPO); null if none.
    rpo_seconds: Option<i64>,
    #[schema(value_type = Option<String>, format = DateTime)]
    last_archive_at: Option<Timestamp>,
}

fn keep(field: &str, n: i64, min: u32) -> AppResult<u32> {
    if (i64::from(min)..=1000).contains(&n) {
        Ok(n as u32)
    } else {
        Err(AppError::invalid(field, format!("must be an integer from {min} to 1000")))
    }
}

fn keep_opt(field: &str, n: Option<i64>) -> AppResult<Option<u32>> {
    n.map(|n| keep(field, n, 1)).transpose()
}

/// Checks the hypervisors exist and stand on the right sides.
async fn check_sides(state: &AppState, f: &PairFields) -> AppResult<()> {
    for (field, id, role) in [
        ("src_hypervisor_id", f.src_hypervisor_id, HypervisorRole::Dc),
        ("dst_hypervisor_id", f.dst_hypervisor_id, HypervisorRole::Drc),
    ] {
        match state.db.hypervisor(id).await? {
            None => return Err(AppError::invalid(field, "no hypervisor has this id")),
            Some(h) if h.role != role => {
                return Err(AppError::invalid(
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
async fn check_target_free(state: &AppState, f: &PairFields, except: Option<Uuid>) -> AppResult<()> {
    let clash = state
        .db
        .list_pairs()
        .await?
        .into_iter()
        .any(|p| Some(p.id) != except && p.dst_hypervisor_id == f.dst_hypervisor_id && p.dst_vmid == f.dst_vmid);
    if clash {
        return Err(AppError::Taken {
            field: "dst_vmid".into(),
            message: format!("another pair already targets VM {} on this DRC hypervisor", f.dst_vmid),
        });
    }
    Ok(())
}

async fn view(state: &AppState, pair: Pair) -> AppResult<PairView> {
    let newest = state.db.list_archives(pair.id).await?.into_iter().find(|a| a.verified_at.is_some());
    let last_archive_at = newest.map(|a| a.created_at);
    let rpo_seconds = last_archive_at.map(|t| (Timestamp::now().millis() - t.millis()).max(0) / 1000);
    Ok(PairView { pair, rpo_seconds, last_archive_at })
}

pub(crate) async fn load(state: &AppState, raw: &str) -> AppResult<Pair> {
    let id = super::id(raw, "pair")?;
    state.db.pair(id).await?.ok_or(AppError::NotFound("pair"))
}

#[utoipa::path(get, path = "/api/v1/pairs", responses((status = 200, body = [PairView])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    let mut out = Vec::new();
    for p in state.db.list_pairs().await? {
        out.push(view(&state, p).await?);
    }
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(post, path = "/api/v1/pairs", request_body = PairInput,
    responses((status = 201, body = PairView), (status = 403), (status = 409), (status = 422)))]
pub async fn create(state: web::Data<AppState>, me: CurrentUser, Body(b): Body<PairInput>) -> AppResult<HttpResponse> {
    me.require(Role::Operator)?;
    let src_vmid = required("src_vmid", b.src_vmid)?;
    let dst_vmid = required("dst_vmid", b.dst_vmid)?;
    let f = PairFields {
        name: match b.name {
            Some(n) => label("name", &n)?,
            None => format!("VM {src_vmid} to VM {dst_vmid}"),
        },
        src_hypervisor_id: required("src_hypervisor_id", b.src_hypervisor_id)?,
        src_vmid,
        dst_hypervisor_id: required("dst_hypervisor_id", b.dst_hypervisor_id)?,
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
    };
    check_sides(&state, &f).await?;
    check_target_free(&state, &f, None).await?;
    let id = state.db.insert_pair(&f).await?;
    tracing::info!(by = %me.0.username, pair = %id, "pair created");
    let pair = state.db.pair(id).await?.ok_or(AppError::NotFound("pair"))?;
    Ok(HttpResponse::Created().json(view(&state, pair).await?))
}

#[utoipa::path(get, path = "/api/v1/pairs/{id}", responses((status = 200, body = PairView), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    let pair = load(&state, &path).await?;
    Ok(HttpResponse::Ok().json(view(&state, pair).await?))
}

#[utoipa::path(put, path = "/api/v1/pairs/{id}", request_body = PairInput,
    responses((status = 200, body = PairView), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<PairInput>,
) -> AppResult<HttpResponse> {
    me.require(Role::Operator)?;
    let p = load(&state, &path).await?;
    // A queued or running task was planned against the pair as it is; its
    // target and hosts must not move under it.
    if state.db.pair_is_busy(p.id).await? {
        return Err(AppError::Conflict(
            "This pair has a queued or running task; wait for it or cancel it before changing the pair.".into(),
        ));
    }
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
    };
    check_sides(&state, &f).await?;
    check_target_free(&state, &f, Some(p.id)).await?;
    state.db.update_pair(p.id, &f).await?;
    tracing::info!(by = %me.0.username, pair = %p.id, "pair updated");
    let pair = load(&state, &path).await?;
    Ok(HttpResponse::Ok().json(view(&state, pair).await?))
}

/// Deletes the pair and its schedules; its archives and task history are kept.
#[utoipa::path(delete, path = "/api/v1/pairs/{id}", responses((status = 204), (status = 404), (status = 409)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Operator)?;
    let p = load(&state, &path).await?;
    if state.db.pair_has_running_task(p.id).await? {
        return Err(AppError::Conflict("A task of this pair is running; cancel it or wait for it first.".into()));
    }
    state.db.delete_pair(p.id).await?;
    state.wake.schedules_changed();
    tracing::info!(by = %me.0.username, pair = %p.id, "pair deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/pairs/{id}/archives", responses((status = 200, body = [Archive]), (status = 404)))]
pub async fn archives(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    let p = load(&state, &path).await?;
    Ok(HttpResponse::Ok().json(state.db.list_archives(p.id).await?))
}

/// Lets drswitch replace the VM that exists, without drswitch's replica
/// marker, at the pair's target: the next restore overwrites it and marks
/// it. Admin only, logged with who did it; changing the target undoes it.
#[utoipa::path(post, path = "/api/v1/pairs/{id}/adopt",
    responses((status = 200, body = PairView), (status = 403), (status = 404), (status = 409)))]
pub async fn adopt(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let user = me.require(Role::Admin)?;
    let p = load(&state, &path).await?;
    if state.db.pair_is_busy(p.id).await? {
        return Err(AppError::Conflict(
            "This pair has a queued or running task; adopt its target once that has ended.".into(),
        ));
    }
    state.db.set_adopted(p.id).await?;
    tracing::warn!(target: "audit", by = %user.username, pair = %p.id, vmid = %p.dst_vmid,
        hypervisor = %p.dst_hypervisor_id, "VM at the pair's target adopted: the next restore may replace it");
    let pair = load(&state, &path).await?;
    Ok(HttpResponse::Ok().json(view(&state, pair).await?))
}
