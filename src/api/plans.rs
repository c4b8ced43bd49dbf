use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::body::{Body, OptionalBody};
use crate::auth::CurrentUser;
use crate::db::plans::{PlanAction, PlanRun};
use crate::error::AppResult;
use crate::service::plans::{self, PlanDetail, PlanInput, PlanSummary};
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PlanFailoverInput {
    /// Let each failover go on where the DC VM cannot be fenced (its host
    /// does not answer); each pair's event records that fencing was impossible.
    #[serde(default)]
    force: bool,
}

#[utoipa::path(get, path = "/api/v1/plans", responses((status = 200, body = [PlanSummary])))]
pub async fn list(state: web::Data<AppState>, me: CurrentUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(plans::list(&state, &me.0).await?))
}

#[utoipa::path(post, path = "/api/v1/plans", request_body = PlanInput,
    responses((status = 201, body = PlanDetail), (status = 403), (status = 409), (status = 422)))]
pub async fn create(state: web::Data<AppState>, me: CurrentUser, Body(b): Body<PlanInput>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Created().json(plans::create(&state, &me.0, b).await?))
}

/// The plan with its newest runs (up to 10).
#[utoipa::path(get, path = "/api/v1/plans/{id}", responses((status = 200, body = PlanDetail), (status = 404)))]
pub async fn get(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "plan")?;
    Ok(HttpResponse::Ok().json(plans::get(&state, &me.0, id).await?))
}

#[utoipa::path(put, path = "/api/v1/plans/{id}", request_body = PlanInput,
    responses((status = 200, body = PlanDetail), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn update(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    Body(b): Body<PlanInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "plan")?;
    Ok(HttpResponse::Ok().json(plans::update(&state, &me.0, id, b).await?))
}

/// Deletes the plan and its run history (not while a run of it is running);
/// the pairs and their tasks stay.
#[utoipa::path(delete, path = "/api/v1/plans/{id}", responses((status = 204), (status = 403), (status = 404), (status = 409)))]
pub async fn delete(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "plan")?;
    plans::delete(&state, &me.0, id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Fails the plan's pairs over group by group: group 1 is queued at once,
/// each next group once every task of the one before has ended and the
/// plan's delay has passed.
#[utoipa::path(post, path = "/api/v1/plans/{id}/failover", request_body = Option<PlanFailoverInput>,
    responses((status = 202, body = PlanRun), (status = 403), (status = 404), (status = 409)))]
pub async fn failover(
    state: web::Data<AppState>,
    me: CurrentUser,
    path: web::Path<String>,
    OptionalBody(input): OptionalBody<PlanFailoverInput>,
) -> AppResult<HttpResponse> {
    let id = super::id(&path, "plan")?;
    Ok(HttpResponse::Accepted().json(plans::start(&state, &me.0, id, PlanAction::Failover, input.force).await?))
}

/// Runs a DR drill of the plan's pairs group by group, like a failover but
/// on isolated throwaway VMs: replicas and DC VMs are not touched.
#[utoipa::path(post, path = "/api/v1/plans/{id}/drill",
    responses((status = 202, body = PlanRun), (status = 403), (status = 404), (status = 409)))]
pub async fn drill(state: web::Data<AppState>, me: CurrentUser, path: web::Path<String>) -> AppResult<HttpResponse> {
    let id = super::id(&path, "plan")?;
    Ok(HttpResponse::Accepted().json(plans::start(&state, &me.0, id, PlanAction::Drill, false).await?))
}
