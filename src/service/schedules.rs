//! Schedules: when a pair is backed up or replicated by itself. Every
//! change wakes the scheduler, so it takes effect at once.

use serde::Deserialize;

use super::audit::{self, changes, subject};
use super::input::{nullable, required, CreateRules, Input};
use super::{require, ServiceError, ServiceResult};
use crate::db::schedules::{Schedule, ScheduleFields};
use crate::db::users::User;
use crate::domain::{CronExpr, PairId, Role, ScheduleId, ScheduleKind, TimeZone, Timestamp};
use crate::state::AppState;

/// Who may create, change and delete schedules.
pub const MANAGE: Role = Role::Operator;

/// A schedule runs either daily at `hour`:`minute` or on a five-field
/// `cron` expression, in `timezone` (default: the server's `TZ`).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleInput {
    pub pair_id: Option<PairId>,
    pub kind: Option<ScheduleKind>,
    /// Daily at this hour (0 to 23), instead of `cron`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 0, maximum = 23)]
    pub hour: Option<Option<i64>>,
    /// With `hour` (0 to 59, default 0).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(minimum = 0, maximum = 59)]
    pub minute: Option<Option<i64>>,
    /// A five-field cron expression, instead of `hour` and `minute`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<CronExpr>)]
    pub cron: Option<Option<String>>,
    pub timezone: Option<TimeZone>,
    pub enabled: Option<bool>,
}

/// The timing is either `hour` (and `minute`) or `cron`, as `timing` says.
fn timing_rule(or_none: bool) -> serde_json::Value {
    let mut ways = vec![
        serde_json::json!({"required": ["hour"], "properties": {"hour": {"type": "integer"}, "cron": {"type": "null"}}}),
        serde_json::json!({"required": ["cron"],
            "properties": {"cron": {"type": "string"}, "hour": {"type": "null"}, "minute": {"type": "null"}}}),
    ];
    if or_none {
        ways.push(serde_json::json!({"properties": {"hour": false, "minute": false, "cron": false}}));
    }
    serde_json::json!({"anyOf": ways})
}

impl Input for ScheduleInput {
    fn rules() -> CreateRules {
        CreateRules { required: &["pair_id"], create: Some(timing_rule(false)), update: Some(timing_rule(true)) }
    }
}

fn in_range(field: &str, v: i64, max: i64) -> ServiceResult<u8> {
    if (0..=max).contains(&v) {
        Ok(v as u8)
    } else {
        Err(ServiceError::invalid(field, format!("must be an integer from 0 to {max}")))
    }
}

/// Turns (hour, minute, cron) into the stored form: a daily time is kept
/// as hour/minute and also written as cron.
fn timing(
    hour: Option<i64>,
    minute: Option<i64>,
    cron: Option<String>,
    seconds_ok: bool,
) -> ServiceResult<(Option<u8>, Option<u8>, CronExpr)> {
    match (hour, minute, cron) {
        (None, None, Some(c)) => {
            let c = CronExpr::try_from(c).map_err(|e| ServiceError::invalid("cron", e.0))?;
            if c.has_seconds() && !seconds_ok {
                return Err(ServiceError::invalid(
                    "cron",
                    "must have five fields: minute hour day-of-month month day-of-week",
                ));
            }
            Ok((None, None, c))
        }
        (Some(h), m, None) => {
            let h = in_range("hour", h, 23)?;
            let m = in_range("minute", m.unwrap_or(0), 59)?;
            Ok((Some(h), Some(m), CronExpr::daily(h, m).map_err(|e| ServiceError::invalid("hour", e.0))?))
        }
        (None, Some(_), None) => Err(ServiceError::invalid("hour", "is required with minute")),
        (None, None, None) => Err(ServiceError::invalid("cron", "give either cron or hour and minute")),
        _ => Err(ServiceError::invalid("cron", "give either cron or hour and minute, not both")),
    }
}

fn next_run(enabled: bool, cron: &CronExpr, tz: &TimeZone) -> Option<Timestamp> {
    if !enabled {
        return None;
    }
    cron.next_after(Timestamp::now().to_datetime(), tz).map(Timestamp::from_datetime)
}

async fn check_pair(state: &AppState, pair_id: PairId) -> ServiceResult<()> {
    match state.db.pair(pair_id).await? {
        Some(_) => Ok(()),
        None => Err(ServiceError::clash("pair_id", "no pair has this id")),
    }
}

/// The next `n` run times of a timing as the form would store it (for the
/// preview beside the form), checked by the same rules as a save.
pub fn preview(
    state: &AppState,
    hour: Option<i64>,
    minute: Option<i64>,
    cron: Option<String>,
    timezone: Option<TimeZone>,
    n: usize,
) -> ServiceResult<Vec<Timestamp>> {
    let (_, _, cron) = timing(hour, minute, cron, state.settings.schedule_seconds)?;
    let tz = timezone.unwrap_or(state.settings.timezone);
    let mut out = Vec::new();
    let mut after = Timestamp::now().to_datetime();
    while out.len() < n {
        let Some(next) = cron.next_after(after, &tz) else { break };
        out.push(Timestamp::from_datetime(next));
        after = next;
    }
    Ok(out)
}

pub async fn list(state: &AppState, actor: &User) -> ServiceResult<Vec<Schedule>> {
    require(actor, Role::Viewer)?;
    Ok(state.db.list_schedules(None).await?)
}

pub async fn get(state: &AppState, actor: &User, id: ScheduleId) -> ServiceResult<Schedule> {
    require(actor, Role::Viewer)?;
    state.db.schedule(id).await?.ok_or(ServiceError::NotFound("schedule"))
}

pub async fn create(state: &AppState, actor: &User, b: ScheduleInput) -> ServiceResult<Schedule> {
    require(actor, MANAGE)?;
    let pair_id = required("pair_id", b.pair_id)?;
    let (hour, minute, cron) =
        timing(b.hour.flatten(), b.minute.flatten(), b.cron.flatten(), state.settings.schedule_seconds)?;
    check_pair(state, pair_id).await?;
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
    tracing::info!(by = %actor.username, schedule = %id, cron = f.cron.as_str(), "schedule created");
    let detail = format!("{} of pair {} at {:?}", f.kind, f.pair_id, f.cron.as_str());
    audit::record(state, &actor.username, "schedule.create", subject("schedule", id), &detail).await;
    state.db.schedule(id).await?.ok_or(ServiceError::NotFound("schedule"))
}

/// Changes only the fields given; a new timing replaces the old one whole.
pub async fn update(state: &AppState, actor: &User, id: ScheduleId, b: ScheduleInput) -> ServiceResult<Schedule> {
    require(actor, MANAGE)?;
    let s = state.db.schedule(id).await?.ok_or(ServiceError::NotFound("schedule"))?;
    let timing_changed = b.hour.is_some() || b.minute.is_some() || b.cron.is_some();
    let (hour, minute, cron) = if timing_changed {
        timing(b.hour.flatten(), b.minute.flatten(), b.cron.flatten(), state.settings.schedule_seconds)?
    } else {
        (s.hour, s.minute, s.cron.clone())
    };
    let pair_id = b.pair_id.unwrap_or(s.pair_id);
    check_pair(state, pair_id).await?;
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
    tracing::info!(by = %actor.username, schedule = %s.id, "schedule updated");
    let after = state.db.schedule(id).await?.ok_or(ServiceError::NotFound("schedule"))?;
    let detail = changes(&s, &after, &[]);
    audit::record(state, &actor.username, "schedule.update", subject("schedule", s.id), &detail).await;
    Ok(after)
}

pub async fn delete(state: &AppState, actor: &User, id: ScheduleId) -> ServiceResult<()> {
    require(actor, MANAGE)?;
    let s = state.db.schedule(id).await?.ok_or(ServiceError::NotFound("schedule"))?;
    state.db.delete_schedule(s.id).await?;
    state.wake.schedules_changed();
    tracing::info!(by = %actor.username, schedule = %s.id, "schedule deleted");
    let detail = format!("{} of pair {}", s.kind, s.pair_id);
    audit::record(state, &actor.username, "schedule.delete", subject("schedule", s.id), &detail).await;
    Ok(())
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
            matches!(timing(Some(24), Some(0), None, false), Err(ServiceError::Invalid { field, .. }) if field == "hour")
        );
        assert!(
            matches!(timing(Some(1), Some(60), None, false), Err(ServiceError::Invalid { field, .. }) if field == "minute")
        );
        assert!(
            matches!(timing(None, None, Some("61 * * * *".into()), false), Err(ServiceError::Invalid { field, .. }) if field == "cron")
        );
        assert!(matches!(timing(Some(1), None, Some("* * * * *".into()), false), Err(ServiceError::Invalid { .. })));
        assert!(matches!(timing(None, None, None, false), Err(ServiceError::Invalid { .. })));
    }
}
