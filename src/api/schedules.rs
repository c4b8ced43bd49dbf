use actix_web::{web, HttpResponse};

use super::body::Body;
use crate::auth::CurrentUser;
use crate::db::schedules::Schedule;
use crate::error::AppResult;
use crate::service::schedules::{self, ScheduleInput};
use crate::state::AppState;

#[utoipa::path(get, path = "/api/v1/schedules", responses((status = 200, body = [Schedule])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(schedules::list(&state, &me.0).await?))
}

#[utoipa::path(post, path = "/api/v1/schedules", request_body = ScheduleInput,
    responses((status = 201, body = Schedule), (status = 403), (status = 422)))]
pub async fn create(
    state: web::Data<AppState>,
    me: CurrentUser,
    Body(b): Body<ScheduleInput>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(schedules::create(&state, &me.0, b).await?))
}

#[utoipa::path(get, path = "/api/v1/schedules/{id}", responses((status = 200, body = Schedule), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "schedule")?;
    Ok(HttpResponse::Ok().json(schedules::get(&state, &me.0, id).await?))
}

#[utoipa::path(put, path = "/api/v1/schedules/{id}", request_body = ScheduleInput,
    responses((status = 200, body = Schedule), (status = 404), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<ScheduleInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "schedule")?;
    Ok(HttpResponse::Ok().json(schedules::update(&state, &me.0, id, b).await?))
}

#[utoipa::path(delete, path = "/api/v1/schedules/{id}", responses((status = 204), (status = 404)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "schedule")?;
    schedules::delete(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}
