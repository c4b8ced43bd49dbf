//! What the dashboard shows at a glance, in a fixed number of queries
//! whatever the number of pairs, hosts and tasks.

use std::collections::HashMap;

use super::pairs::PairView;
use super::{require, ServiceResult};
use crate::db::hypervisors::Hypervisor;
use crate::db::tasks::Task;
use crate::db::users::User;
use crate::domain::{PairId, Role};
use crate::state::AppState;

/// How a pair's recovery point stands against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpoHealth {
    /// Within 80 % of the target.
    Good,
    /// Past 80 % of the target: the next backup had better come.
    Near,
    /// Older than the target, or no archive at all.
    Breached,
}

pub fn rpo_health(view: &PairView) -> RpoHealth {
    match view.rpo_seconds {
        None => RpoHealth::Breached,
        Some(age) if age > view.pair.rpo_target_secs => RpoHealth::Breached,
        Some(age) if age * 5 > view.pair.rpo_target_secs * 4 => RpoHealth::Near,
        Some(_) => RpoHealth::Good,
    }
}

pub struct Overview {
    pub pairs: Vec<PairView>,
    pub hypervisors: Vec<Hypervisor>,
    /// Each pair's newest task.
    pub latest: HashMap<PairId, Task>,
}

pub async fn overview(state: &AppState, actor: &User) -> ServiceResult<Overview> {
    require(actor, Role::Viewer)?;
    let pairs = super::pairs::list(state, actor).await?;
    let hypervisors = state.db.list_hypervisors().await?;
    let latest = state.db.latest_task_per_pair().await?.into_iter().map(|t| (t.pair_id, t)).collect();
    Ok(Overview { pairs, hypervisors, latest })
}
