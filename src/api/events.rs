use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::db::events::Event;
use crate::domain::PairId;
use crate::error::{AppError, AppResult};
use crate::service::tasks;
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    #[param(value_type = Option<PairId>)]
    pair_id: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
}

/// Failover, failback and drill history with each step's times.
#[utoipa::path(get, path = "/api/v1/events", params(EventQuery), responses((status = 200, body = [Event]), (status = 422)))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser, q: web::Query<EventQuery>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let pair = q.pair_id.map(|s| s.parse::<PairId>().map_err(|e| AppError::invalid("pair_id", e.0))).transpose()?;
    Ok(HttpResponse::Ok().json(tasks::events(&state, &me.0, pair, q.limit.unwrap_or(50)).await?))
}
