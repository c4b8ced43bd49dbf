//! `GET /metrics` (Prometheus text format), beside the API rather than
//! under `/api/v1`, where scrapers look for it.

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::auth::CurrentUser;
use crate::error::AppResult;
use crate::service::metrics;
use crate::state::AppState;

/// Needs a login or API token unless `METRICS_PUBLIC=true`.
pub async fn metrics(state: web::Data<AppState>, req: HttpRequest) -> AppResult<HttpResponse> {
    let body = if state.settings.metrics_public {
        metrics::render(&state, None).await?
    } else {
        let me = CurrentUser::extract(&req).await?;
        metrics::render(&state, Some(&me.0)).await?
    };
    Ok(HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(body))
}
