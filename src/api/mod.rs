//! The JSON REST API under `/api/v1`. This file holds the whole route table.

mod alerts;
pub mod body;
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

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| AppError::invalid("query", strip_prefix(&e.to_string())).into()),
    )
    .app_data(web::PathConfig::default().error_handler(|_, _| AppError::NotFound("resource").into()))
    .service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(json_only))
            .route("/health", web::get().to(session::health))
            .route("/openapi.json", web::get().to(openapi::document))
            .route("/auth/login", web::post().to(session::login))
            .route("/auth/logout", web::post().to(session::logout))
            .route("/auth/me", web::get().to(session::me))
            .route("/users", web::get().to(users::list))
            .route("/users", web::post().to(users::create))
            .route("/users/{id}", web::get().to(users::get))
            .route("/users/{id}", web::put().to(users::update))
            .route("/users/{id}", web::delete().to(users::delete))
            .route("/tokens", web::get().to(tokens::list))
            .route("/tokens", web::post().to(tokens::create))
            .route("/tokens/{id}", web::delete().to(tokens::revoke))
            .route("/hypervisors", web::get().to(hypervisors::list))
            .route("/hypervisors", web::post().to(hypervisors::create))
            .route("/hypervisors/{id}", web::get().to(hypervisors::get))
            .route("/hypervisors/{id}", web::put().to(hypervisors::update))
            .route("/hypervisors/{id}", web::delete().to(hypervisors::delete))
            .route("/hypervisors/{id}/check", web::post().to(hypervisors::check))
            .route("/hypervisors/{id}/vms", web::get().to(hypervisors::vms))
            .route("/hypervisors/{id}/status", web::get().to(alerts::status))
            .route("/pairs", web::get().to(pairs::list))
            .route("/pairs", web::post().to(pairs::create))
            .route("/pairs/{id}", web::get().to(pairs::get))
            .route("/pairs/{id}", web::put().to(pairs::update))
            .route("/pairs/{id}", web::delete().to(pairs::delete))
            .route("/pairs/{id}/backup", web::post().to(tasks::backup))
            .route("/pairs/{id}/restore", web::post().to(tasks::restore))
            .route("/pairs/{id}/replicate", web::post().to(tasks::replicate))
            .route("/pairs/{id}/failover", web::post().to(tasks::failover))
            .route("/pairs/{id}/failback", web::post().to(tasks::failback))
            .route("/pairs/{id}/drill", web::post().to(tasks::drill))
            .route("/pairs/{id}/archives", web::get().to(pairs::archives))
            .route("/pairs/{id}/adopt", web::post().to(pairs::adopt))
            .route("/tasks", web::get().to(tasks::list))
            .route("/tasks/{id}", web::get().to(tasks::get))
            .route("/tasks/{id}/log", web::get().to(tasks::log))
            .route("/tasks/{id}/cancel", web::post().to(tasks::cancel))
            .route("/plans", web::get().to(plans::list))
            .route("/plans", web::post().to(plans::create))
            .route("/plans/{id}", web::get().to(plans::get))
            .route("/plans/{id}", web::put().to(plans::update))
            .route("/plans/{id}", web::delete().to(plans::delete))
            .route("/plans/{id}/failover", web::post().to(plans::failover))
            .route("/plans/{id}/drill", web::post().to(plans::drill))
            .route("/schedules", web::get().to(schedules::list))
            .route("/schedules", web::post().to(schedules::create))
            .route("/schedules/{id}", web::get().to(schedules::get))
            .route("/schedules/{id}", web::put().to(schedules::update))
            .route("/schedules/{id}", web::delete().to(schedules::delete))
            .route("/events", web::get().to(events::list))
            .route("/alerts", web::get().to(alerts::list))
            .route("/alert-settings", web::get().to(alerts::settings))
            .route("/alert-settings", web::put().to(alerts::set_settings))
            .route("/notification-targets", web::get().to(alerts::targets))
            .route("/notification-targets", web::post().to(alerts::create_target))
            .route("/notification-targets/{id}", web::get().to(alerts::target))
            .route("/notification-targets/{id}", web::put().to(alerts::update_target))
            .route("/notification-targets/{id}", web::delete().to(alerts::delete_target))
            .route("/notification-targets/{id}/test", web::post().to(alerts::test_target))
            .default_service(web::to(not_found)),
    )
    .default_service(web::to(not_found));
    // Beside the API, where Prometheus looks for it.
    cfg.route("/metrics", web::get().to(metrics::metrics));
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
