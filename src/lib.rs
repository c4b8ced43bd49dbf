//! drswitch: a disaster-recovery switch for Proxmox VE.

pub mod api;
pub mod app;
pub mod archive_store;
pub mod auth;
pub mod cli;
pub mod db;
pub mod domain;
pub mod error;
pub mod files;
pub mod hypervisor;
pub mod monitor;
pub mod notify;
pub mod placement;
pub mod plans;
pub mod queue;
pub mod scheduler;
pub mod secrets;
pub mod secure_cookie;
pub mod security_headers;
pub mod service;
pub mod settings;
pub mod sshkey;
pub mod state;
pub mod supervisor;
pub mod web;
pub mod worker;
