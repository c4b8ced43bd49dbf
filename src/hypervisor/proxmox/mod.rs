//! Proxmox VE: its CLI tools over ssh (`cli.rs`), its HTTPS API with
//! certificate pinning (`api/`), and the connectivity check (`check.rs`).

pub mod api;
pub mod check;
pub mod cli;
pub mod probe;

pub use check::{check, list_vms, CheckReport};
pub use cli::ProxmoxCli;
