use actix_web::HttpResponse;
use utoipa::OpenApi;

use super::{hypervisors, pairs, schedules, session, tasks, tokens, users};

/// The API description, generated from the handlers' annotations and the
/// request/response types, so it cannot drift from the code.
#[derive(OpenApi)]
#[openapi(
    info(title = "drswitch", description = "Disaster-recovery switch for Proxmox VE"),
    paths(
        session::health,
        session::login,
        session::logout,
        session::me,
        users::list,
        users::create,
        users::get,
        users::update,
        users::delete,
        tokens::list,
        tokens::create,
        tokens::revoke,
        hypervisors::list,
        hypervisors::create,
        hypervisors::get,
        hypervisors::update,
        hypervisors::delete,
        hypervisors::check,
        hypervisors::vms,
        pairs::list,
        pairs::create,
        pairs::get,
        pairs::update,
        pairs::delete,
        pairs::archives,
        pairs::adopt,
        tasks::backup,
        tasks::restore,
        tasks::replicate,
        tasks::list,
        tasks::get,
        tasks::log,
        tasks::cancel,
        schedules::list,
        schedules::create,
        schedules::get,
        schedules::update,
        schedules::delete,
    )
)]
pub struct ApiDoc;

pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
