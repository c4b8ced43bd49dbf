//! One module per area of the UI.

pub mod account;
pub mod dashboard;
pub mod hypervisors;
pub mod pairs;
pub mod schedules;
pub mod session;
pub mod tasks;
pub mod users;
