//! Command delivery (to be written).
use super::{Delivery, Limits, Notice};

pub async fn run(_argv: &[String], _notice: &Notice, _limits: &Limits) -> Delivery {
    Delivery { ok: false, attempts: 0, detail: "command delivery is not built yet".into() }
}
