//! Webhook delivery (to be written).
use super::{Delivery, Limits, Notice};
use crate::settings::Secret;

pub async fn send(_url: &str, _secret: Option<&Secret>, _notice: &Notice, _limits: &Limits) -> Delivery {
    Delivery { ok: false, attempts: 0, detail: "webhook delivery is not built yet".into() }
}
