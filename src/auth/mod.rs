//! Who is calling: passwords, API tokens, the login throttle and the
//! extractor that turns a session cookie or bearer token into a user.

pub mod bearer;
mod current;
pub mod password;
mod throttle;
pub mod token;

pub mod login_session;

pub use current::CurrentUser;
pub use login_session::SESSION_USER;
pub use throttle::{LoginGuard, Throttle};
