//! The JSON REST API under `/api/v1`. This file holds the whole route table:
//! one `endpoint` per path with the methods it takes (any other method gets
//! 405 with `Allow`); an unknown path gets 404, both as JSON.

mod alerts;
mod audit;
pub mod body;
mod conformance;
mod endpoint;
mod events;
mod hypervisors;
mod metrics;
mod openapi;
mod pairs;
mod plans;
mod schedules;
mod session;
mod tasks;
mod tokens;
mod users;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};

use crate::error::AppError;
use endpoint::endpoint;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| AppError::invalid("query", strip_prefix(&e.to_string())).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|_, _| AppError::NotFound("resource").into()))
    .service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(json_only))
            // Outermost: a read-only token is refused before anything else.
            .wrap(actix_web::middleware::from_fn(crate::auth::bearer::guard))
            .service(endpoint("/health").get(session::health))
            .service(endpoint("/openapi.json").get(openapi::document))
            .service(endpoint("/auth/login").post(session::login))
            .service(endpoint("/auth/logout").post(session::logout))
            .service(endpoint("/auth/me").get(session::me))
            .service(endpoint("/session/logout-all").post(session::logout_all))
            .service(endpoint("/session/password").post(session::change_password))
            .service(endpoint("/users").get(users::list).post(users::create))
            .service(endpoint("/users/{id}").get(users::get).put(users::update).delete(users::delete))
            .service(endpoint("/users/{id}/logout-all").post(users::logout_all))
            .service(endpoint("/tokens").get(tokens::list).post(tokens::create))
            .service(endpoint("/tokens/{id}").delete(tokens::revoke))
            .service(endpoint("/hypervisors").get(hypervisors::list).post(hypervisors::create))
            .service(
                endpoint("/hypervisors/{id}")
                    .get(hypervisors::get)
                    .put(hypervisors::update)
                    .delete(hypervisors::delete),
            )
            .service(endpoint("/hypervisors/{id}/check").post(hypervisors::check))
            .service(endpoint("/hypervisors/{id}/vms").get(hypervisors::vms))
            .service(endpoint("/hypervisors/{id}/status").get(alerts::status))
            .service(endpoint("/pairs").get(pairs::list).post(pairs::create))
            .service(endpoint("/pairs/{id}").get(pairs::get).put(pairs::update).delete(pairs::delete))
            .service(endpoint("/pairs/{id}/backup").post(tasks::backup))
            .service(endpoint("/pairs/{id}/restore").post(tasks::restore))
            .service(endpoint("/pairs/{id}/replicate").post(tasks::replicate))
            .service(endpoint("/pairs/{id}/failover").post(tasks::failover))
            .service(endpoint("/pairs/{id}/failback").post(tasks::failback))
            .service(endpoint("/pairs/{id}/drill").post(tasks::drill))
            .service(endpoint("/pairs/{id}/archives").get(pairs::archives))
            .service(endpoint("/pairs/{id}/adopt").post(pairs::adopt))
            .service(endpoint("/tasks").get(tasks::list))
            .service(endpoint("/tasks/{id}").get(tasks::get))
            .service(endpoint("/tasks/{id}/log").get(tasks::log))
            .service(endpoint("/tasks/{id}/cancel").post(tasks::cancel))
            .service(endpoint("/plans").get(plans::list).post(plans::create))
            .service(endpoint("/plans/{id}").get(plans::get).put(plans::update).delete(plans::delete))
            .service(endpoint("/plans/{id}/failover").post(plans::failover))
            .service(endpoint("/plans/{id}/drill").post(plans::drill))
            .service(endpoint("/schedules").get(schedules::list).post(schedules::create))
            .service(endpoint("/schedules/{id}").get(schedules::get).put(schedules::update).delete(schedules::delete))
            .service(endpoint("/events").get(events::list))
            .service(endpoint("/audit").get(audit::list))
            .service(endpoint("/alerts").get(alerts::list))
            .service(endpoint("/alert-settings").get(alerts::settings).put(alerts::set_settings))
            .service(endpoint("/notification-targets").get(alerts::targets).post(alerts::create_target))
            .service(
                endpoint("/notification-targets/{id}")
                    .get(alerts::target)
                    .put(alerts::update_target)
                    .delete(alerts::delete_target),
            )
            .service(endpoint("/notification-targets/{id}/test").post(alerts::test_target))
            .default_service(web::to(not_found)),
    )
    .default_service(web::to(not_found));
    // Beside the API, where Prometheus looks for it.
    cfg.service(endpoint("/metrics").get(metrics::metrics));
}

/// A body sent to the API must be declared JSON. An HTML form (or any page
/// on another site) can only send urlencoded, multipart or text/plain
/// bodies without asking the browser first, so this keeps cross-site forms
/// from acting with a user's cookie, whatever the handler.
async fn json_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim() != "0")
        .unwrap_or_else(|| req.headers().contains_key(header::TRANSFER_ENCODING));
    if has_body && !declared_json(req.request()) {
        let resp = actix_web::ResponseError::error_response(&AppError::NotJson);
        return Ok(req.into_response(resp));
    }
    if cross_site(req.request()) {
        let resp = actix_web::ResponseError::error_response(&AppError::CrossSite);
        return Ok(req.into_response(resp));
    }
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}

/// A browser request that another origin started and that would change
/// something (bodiless posts included): browsers say where a request comes
/// from (`Sec-Fetch-Site`, `Origin`); scripts and curl send neither.
fn cross_site(req: &actix_web::HttpRequest) -> bool {
    if matches!(*req.method(), actix_web::http::Method::GET | actix_web::http::Method::HEAD) {
        return false;
    }
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, h)| h) != Some(host),
        (Some(_), None) => true,
        _ => false,
    }
}

/// Whether the request says its body is JSON.
pub(crate) fn declared_json(req: &actix_web::HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::NotFound("route"))
}

fn strip_prefix(msg: &str) -> String {
    msg.trim_start_matches("Query deserialize error: ").to_string()
}

/// Ids in paths are UUIDs; anything else cannot name a resource.
pub(crate) fn id<T: std::str::FromStr>(raw: &str, what: &'static str) -> Result<T, AppError> {
    raw.parse().map_err(|_| AppError::NotFound(what))
}
