use actix_web::{web, HttpResponse};
use serde::Deserialize;
use uuid::Uuid;

use super::body::{nullable, required, Body};
use crate::auth::CurrentUser;
use crate::db::schedules::{Schedule, ScheduleFields};
use crate::domain::{CronExpr, Role, ScheduleKind, TimeZone, Timestamp};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// A schedule runs either daily at `hour`:`minute` or on a five-field
/// `cron` expression, in `timezone` (default: the server's `TZ`).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    pair_id: Option<Uuid>,
    kind: Option<ScheduleKind>,
    #[serde(default, deserialize_with = "nullable")]
    hour: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    minute: Option<Option<i64>>,
    #[serde(default, deserialize_with = "nullable")]
    cron: Option<Option<String>>,
    #[schema(value_type = Option<String>)]
    timezone: Option<TimeZone>,
    enabled: Option<bool>,
}

fn in_range(field: &str, v: i64, max: i64) -> AppResult<u8> {
    if (0..=max).contains(&v) {
        Ok(v as u8)
    } else {
        Err(AppError::invalid(field, format!("must be an integer from 0 to {max}")))
    }
}

/// Turns (hour, minute, cron) into the stored form: a daily time is kept
/// as hour/minute and also written as cron.
fn timing(
    hour: Option<i64>,
    minute: Option<i64>,
    cron: Option<String>,
    seconds_ok: bool,
) -> AppResult<(Option<u8>, Option<u8>, CronExpr)> {
    match (hour, minute, cron) {
        (None, None, Some(c)) => {
            let c = CronExpr::try_from(c).map_err(|e| AppError::invalid("cron", e.0))?;
            if c.has_seconds() && !seconds_ok {
                return Err(AppError::invalid(
                    "cron",
                    "must have five fields: minute hour day-of-month month day-of-week",
                ));
            }
            Ok((None, None, c))
        }
        (Some(h), m, None) => {
            let h = in_range("hour", h, 23)?;
            let m = in_range("minute", m.unwrap_or(0), 59)?;
            Ok((Some(h), Some(m), CronExpr::daily(h, m).map_err(|e| AppError::invalid("hour", e.0))?))
        }
        (None, Some(_), None) => Err(AppError::invalid("hour", "is required with minute")),
        (None, None, None) => Err(AppError::invalid("cron", "give either cron or hour and minute")),
        _ => Err(AppError::invalid("cron", "give either cron or hour and minute, not both")),
    }
}

fn next_run(enabled: bool, cron: &CronExpr, tz: &TimeZone) -> Option<Timestamp> {
    if !enabled {
        return None;
    }
    cron.next_after(Timestamp::now().to_datetime(), tz).map(Timestamp::from_datetime)
}

async fn check_pair(state: &AppState, pair_id: Uuid) -> AppResult<()> {
    match state.db.pair(pair_id).await? {
        Some(_) => Ok(()),
        None => Err(AppError::invalid("pair_id", "no pair has this id")),
    }
}

async fn load(state: &AppState, raw: &str) -> AppResult<Schedule> {
    let id = super::id(raw, "schedule")?;
    state.db.schedule(id).await?.ok_or(AppError::NotFound("schedule"))
}

#[utoipa::path(get, path = "/api/v1/schedules", responses((status = 200, body = [Schedule])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    Ok(HttpResponse::Ok().json(state.db.list_schedules(None).await?))
}

#[utoipa::path(post, path = "/api/v1/schedules", request_body = ScheduleInput,
    responses((status = 201, body = Schedule), (status = 403), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    me: CurrentUser,
    Body(b): Body<ScheduleInput>,
) -> AppResult<HttpResponse> {
    me.require(Role::Operator)?;
    let pair_id = required("pair_id", b.pair_id)?;
    let (hour, minute, cron) =
        timing(b.hour.flatten(), b.minute.flatten(), b.cron.flatten(), state.settings.schedule_seconds)?;
    check_pair(&state, pair_id).await?;
    let timezone = b.timezone.unwrap_or(state.settings.timezone);
    let enabled = b.enabled.unwrap_or(true);
    let f = ScheduleFields {
        pair_id,
        kind: b.kind.unwrap_or(ScheduleKind::Backup),
        hour,
        minute,
        next_run: next_run(enabled, &cron, &timezone),
        cron,
        timezone,
        enabled,
    };
    let id = state.db.insert_schedule(&f).await?;
    state.wake.schedules_changed();
    tracing::info!(by = %me.0.username, schedule = %id, cron = f.cron.as_str(), "schedule created");
    let s = state.db.schedule(id).await?.ok_or(AppError::NotFound("schedule"))?;
    Ok(HttpResponse::Created().json(s))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}", responses((status = 200, body = Schedule), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Viewer)?;
    Ok(HttpResponse::Ok().json(load(&state, &path).await?))
}

#[utoipa::path(put, path = "/api/v1/schedules/{id}", request_body = ScheduleInput,
    responses((status = 200, body = Schedule), (status = 404), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<ScheduleInput>,
) -> AppResult<HttpResponse> {
    me.require(Role::Operator)?;
    let s = load(&state, &path).await?;
    let timing_changed = b.hour.is_some() || b.minute.is_some() || b.cron.is_some();
    let (hour, minute, cron) = if timing_changed {
        // A new timing replaces the old one whole.
        timing(b.hour.flatten(), b.minute.flatten(), b.cron.flatten(), state.settings.schedule_seconds)?
    } else {
        (s.hour, s.minute, s.cron.clone())
    };
    let pair_id = b.pair_id.unwrap_or(s.pair_id);
    check_pair(&state, pair_id).await?;
    let timezone = b.timezone.unwrap_or(s.timezone);
    let enabled = b.enabled.unwrap_or(s.enabled);
    let f = ScheduleFields {
        pair_id,
        kind: b.kind.unwrap_or(s.kind),
        hour,
        minute,
        next_run: next_run(enabled, &cron, &timezone),
        cron,
        timezone,
        enabled,
    };
    state.db.update_schedule(s.id, &f).await?;
    state.wake.schedules_changed();
    tracing::info!(by = %me.0.username, schedule = %s.id, "schedule updated");
    Ok(HttpResponse::Ok().json(load(&state, &path).await?))
}

#[utoipa::path(delete, path = "/api/v1/schedules/{id}", responses((status = 204), (status = 404)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    me.require(Role::Operator)?;
    let s = load(&state, &path).await?;
    state.db.delete_schedule(s.id).await?;
    state.wake.schedules_changed();
    tracing::info!(by = %me.0.username, schedule = %s.id, "schedule deleted");
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_rules() {
        assert!(timing(Some(2), Some(30), None, false).is_ok());
        assert!(timing(None, None, Some("*/5 * * * * *".into()), false).is_err());
        assert!(timing(None, None, Some("*/5 * * * * *".into()), true).is_ok());
        assert!(
            matches!(timing(Some(24), Some(0), None, false), Err(AppError::Invalid { field, .. }) if field == "hour")
        );
        assert!(
            matches!(timing(Some(1), Some(60), None, false), Err(AppError::Invalid { field, .. }) if field == "minute")
        );
        assert!(
            matches!(timing(None, None, Some("61 * * * *".into()), false), Err(AppError::Invalid { field, .. }) if field == "cron")
        );
        assert!(matches!(timing(Some(1), None, Some("* * * * *".into()), false), Err(AppError::Invalid { .. })));
        assert!(matches!(timing(None, None, None, false), Err(AppError::Invalid { .. })));
    }
}
