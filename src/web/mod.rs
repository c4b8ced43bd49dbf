//! The web UI: server-rendered pages (maud) on the same service functions
//! as the JSON API, so a rule lives in one place. Forms carry the API's
//! field names and a CSRF token; every asset comes from the binary, so the
//! Content-Security-Policy (`crate::security_headers`) forbids inline
//! scripts and other origins.

mod assets;
mod auth;
mod charts;
mod error;
mod form;
mod layout;
mod pages;
mod view;

use actix_web::web;

pub use error::PageError;

/// What every page answers with.
pub type Page = Result<actix_web::HttpResponse, PageError>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    use pages::*;
    cfg.service(
        web::scope("")
            .route("/static/{file}", web::get().to(assets::serve))
            .route("/login", web::get().to(session::login_form))
            .route("/login", web::post().to(session::login))
            .route("/logout", web::post().to(session::logout))
            .route("/", web::get().to(dashboard::index))
            .route("/dashboard/live", web::get().to(dashboard::live))
            .route("/hypervisors", web::get().to(hypervisors::list))
            .route("/hypervisors", web::post().to(hypervisors::create))
            .route("/hypervisors/new", web::get().to(hypervisors::new_form))
            .route("/hypervisors/{id}", web::get().to(hypervisors::detail))
            .route("/hypervisors/{id}", web::post().to(hypervisors::update))
            .route("/hypervisors/{id}/edit", web::get().to(hypervisors::edit_form))
            .route("/hypervisors/{id}/health", web::get().to(health::live))
            .route("/hypervisors/{id}/check", web::post().to(hypervisors::check))
            .route("/hypervisors/{id}/delete", web::post().to(hypervisors::delete))
            .route("/pairs", web::get().to(pairs::list))
            .route("/pairs", web::post().to(pairs::create))
            .route("/pairs/new", web::get().to(pairs::new_form))
            .route("/pairs/vms", web::get().to(pairs::vm_picker))
            .route("/pairs/{id}", web::get().to(pairs::detail))
            .route("/pairs/{id}", web::post().to(pairs::update))
            .route("/pairs/{id}/edit", web::get().to(pairs::edit_form))
            .route("/pairs/{id}/delete", web::post().to(pairs::delete))
            .route("/pairs/{id}/adopt", web::post().to(pairs::adopt))
            .route("/pairs/{id}/{action}", web::post().to(pairs::queue))
            .route("/archives", web::get().to(pairs::archives))
            .route("/plans", web::get().to(plans::list))
            .route("/plans", web::post().to(plans::create))
            .route("/plans/{id}", web::get().to(plans::detail))
            .route("/plans/{id}", web::post().to(plans::update))
            .route("/plans/{id}/failover", web::post().to(plans::failover))
            .route("/plans/{id}/drill", web::post().to(plans::drill))
            .route("/plans/{id}/delete", web::post().to(plans::delete))
            .route("/tasks", web::get().to(tasks::list))
            .route("/tasks/{id}", web::get().to(tasks::detail))
            .route("/tasks/{id}/live", web::get().to(tasks::live))
            .route("/tasks/{id}/cancel", web::post().to(tasks::cancel))
            .route("/schedules", web::get().to(schedules::list))
            .route("/schedules", web::post().to(schedules::create))
            .route("/schedules/preview", web::get().to(schedules::preview))
            .route("/schedules/{id}/toggle", web::post().to(schedules::toggle))
            .route("/schedules/{id}/delete", web::post().to(schedules::delete))
            .route("/alerts", web::get().to(alerts::list))
            .route("/audit", web::get().to(audit::list))
            .route("/settings", web::get().to(settings::page_))
            .route("/settings/thresholds", web::post().to(settings::thresholds))
            .route("/settings/targets", web::post().to(targets::create))
            .route("/settings/targets/new", web::get().to(targets::new_form))
            .route("/settings/targets/{id}", web::post().to(targets::update))
            .route("/settings/targets/{id}/edit", web::get().to(targets::edit_form))
            .route("/settings/targets/{id}/test", web::post().to(targets::test))
            .route("/settings/targets/{id}/delete", web::post().to(targets::delete))
            .route("/users", web::get().to(users::list))
            .route("/users", web::post().to(users::create))
            .route("/users/{id}", web::post().to(users::update))
            .route("/users/{id}/logout-all", web::post().to(users::logout_all))
            .route("/account", web::get().to(account::page_))
            .route("/account/password", web::post().to(account::password))
            .route("/account/logout-all", web::post().to(account::logout_all))
            .route("/account/tokens", web::post().to(account::create_token))
            .route("/account/tokens/{id}/revoke", web::post().to(account::revoke_token)),
    );
}
