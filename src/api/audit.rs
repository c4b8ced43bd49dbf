use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use crate::auth::CurrentUser;
use crate::db::audit::AuditEntry;
use crate::error::AppResult;
use crate::service::audit::{self, AuditQuery};
use crate::state::AppState;

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only entries by this actor: a username, or `schedule <id>`,
    /// `monitor`, `cli`, `bootstrap`, `anonymous` (failed logins).
    #[param(min_length = 1, max_length = 255)]
    actor: Option<String>,
    /// Only this action (`pair.update`) or family of actions (`pair` or
    /// `pair.*`).
    #[param(pattern = r"^[a-z0-9_.*]{1,64}$")]
    action: Option<String>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<i64>,
    /// Entries to skip, newest first; default 0.
    #[param(minimum = 0)]
    offset: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    items: Vec<AuditEntry>,
    /// Entries matching the filter.
    total: i64,
    limit: i64,
    offset: i64,
}

/// Who did what, when and from where, newest first (admin only). Names
/// and ids only: no secret is ever recorded.
#[utoipa::path(get, path = "/api/v1/audit", params(AuditParams),
    responses((status = 200, body = AuditPage), (status = 401, description = "not logged in"),
              (status = 403, description = "not an admin"), (status = 422, description = "a bad filter")))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser, q: web::Query<AuditParams>) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let query =
        AuditQuery { actor: q.actor, action: q.action, limit: q.limit.unwrap_or(50), offset: q.offset.unwrap_or(0) };
    let (limit, offset) = (query.limit, query.offset);
    let (items, total) = audit::list(&state, &me.0, query).await?;
    Ok(HttpResponse::Ok().json(AuditPage { items, total, limit, offset }))
}
