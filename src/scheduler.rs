//! The scheduler: turns due schedules into queued tasks. It only enqueues;
//! the worker executes.

use actix_web::web;

use crate::app::AppState;

#[derive(Debug, thiserror::Error)]
#[error("scheduler stopped: {0}")]
pub struct SchedulerError(String);

pub async fn run(_state: web::Data<AppState>, _enabled: bool) -> Result<(), SchedulerError> {
    std::future::pending().await
}
