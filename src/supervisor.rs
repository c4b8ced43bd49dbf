//! Background work as supervised siblings: each runs until the shared
//! shutdown token fires, and one that panics is logged and started again
//! instead of taking the process down.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

/// Runs a sibling until `shutdown`; if it panics, logs it and starts it
/// again, so one bug never takes the whole process down.
pub fn supervise<F, Fut>(name: &'static str, shutdown: CancellationToken, make: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(CancellationToken) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            match AssertUnwindSafe(make(shutdown.clone())).catch_unwind().await {
                Ok(()) => return,
                Err(_) if shutdown.is_cancelled() => return,
                Err(panic) => {
                    tracing::error!(sibling = name, panic = panic_text(&panic), "panicked; starting it again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    })
}

/// The message of a panic payload, if it has one.
pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Waits for the siblings to end, at most `grace`, and again for as long as
/// `keep_waiting` says so; true if all ended.
pub async fn wait_all(
    siblings: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
    keep_waiting: impl Fn() -> bool,
) -> bool {
    let mut all = Box::pin(futures_util::future::join_all(siblings));
    loop {
        match tokio::time::timeout(grace, &mut all).await {
            Ok(_) => return true,
            Err(_) if keep_waiting() => continue,
            Err(_) => return false,
        }
    }
}
