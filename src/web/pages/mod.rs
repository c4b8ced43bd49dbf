//! One module per area of the UI.

pub mod account;
pub mod alerts;
pub mod audit;
pub mod dashboard;
pub mod health;
pub mod hypervisors;
pub mod pairs;
pub mod plans;
pub mod schedules;
pub mod session;
pub mod settings;
pub mod targets;
pub mod tasks;
pub mod users;
