//! Talking to hypervisors: connectivity checks and VM listings.

pub mod api;

use serde_json::Value;

use crate::app::AppState;
use crate::db::hypervisors::Hypervisor;
use crate::error::{AppError, AppResult};

/// Connects over ssh and the Proxmox API and reports what works.
pub async fn check(_state: &AppState, _h: &Hypervisor) -> AppResult<Value> {
    Err(AppError::NotImplemented("Connectivity checks arrive with the pipeline."))
}

/// VMs on the host, from its Proxmox API.
pub async fn list_vms(_state: &AppState, _h: &Hypervisor) -> AppResult<Value> {
    Err(AppError::NotImplemented("Listing VMs arrives with the pipeline."))
}
