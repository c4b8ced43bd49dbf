//! The worker: claims queued tasks and runs them.

use actix_web::web;

use crate::app::AppState;

#[derive(Debug, thiserror::Error)]
#[error("worker stopped: {0}")]
pub struct WorkerError(String);

pub async fn run(_state: web::Data<AppState>, _enabled: bool) -> Result<(), WorkerError> {
    std::future::pending().await
}
