//! What every part of a drswitch process shares: the database, the
//! settings, the secret box and the wake-up signals. A leaf: it depends on
//! nothing above it, so the worker, the scheduler, the hypervisor drivers
//! and the web layer all take it without depending on each other.

use std::sync::Arc;

use tokio::sync::Notify;

use crate::archive_store::ArchiveStore;
use crate::db::Db;
use crate::secrets::SecretBox;
use crate::settings::Settings;

pub struct AppState {
    pub db: Db,
    pub settings: Arc<Settings>,
    pub secrets: SecretBox,
    pub wake: Wake,
    /// Replicas this process is replacing right now: shutdown waits for
    /// them to be whole, whatever its grace period.
    pub in_flux: std::sync::atomic::AtomicUsize,
}

impl AppState {
    pub fn new(db: Db, settings: Settings, secrets: SecretBox) -> Self {
        Self { db, settings: Arc::new(settings), secrets, wake: Wake::default(), in_flux: Default::default() }
    }

    pub fn replicas_in_flux(&self) -> usize {
        self.in_flux.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn archives(&self) -> ArchiveStore {
        ArchiveStore::new(self.settings.archive_dir())
    }
}

/// In-process wake-ups. Other processes on the same database notice
/// changes by polling; these only save this process the wait.
#[derive(Clone, Default)]
pub struct Wake {
    task_queued: Arc<Notify>,
    schedules_changed: Arc<Notify>,
}

impl Wake {
    pub fn task_queued(&self) {
        self.task_queued.notify_one();
    }

    pub fn schedules_changed(&self) {
        self.schedules_changed.notify_one();
    }

    pub async fn until_task_queued(&self) {
        self.task_queued.notified().await
    }

    pub async fn until_schedules_changed(&self) {
        self.schedules_changed.notified().await
    }
}
