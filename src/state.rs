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
}

impl AppState {
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
