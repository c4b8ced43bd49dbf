//! Mail delivery (to be written).
use super::{Delivery, Limits, Notice, SmtpChannel};

pub async fn send(_smtp: &SmtpChannel, _notice: &Notice, _limits: &Limits) -> Delivery {
    Delivery { ok: false, attempts: 0, detail: "mail delivery is not built yet".into() }
}
