use actix_web::{web, HttpResponse};
use utoipa::OpenApi;

use super::conformance::{self, Facts};
use crate::state::AppState;

use super::{alerts, audit, events, hypervisors, pairs, plans, schedules, session, tasks, tokens, users};

/// The API description, generated from the handlers' annotations and the
/// request/response types, so it cannot drift from the code.
#[derive(OpenApi)]
#[openapi(
    info(title = "drswitch", description = "Disaster-recovery switch for Proxmox VE"),
    paths(
        session::health,
        session::login,
        session::logout,
        session::me,
        session::logout_all,
        session::change_password,
        users::list,
        users::create,
        users::get,
        users::update,
        users::delete,
        users::logout_all,
        tokens::list,
        tokens::create,
        tokens::revoke,
        hypervisors::list,
        hypervisors::create,
        hypervisors::get,
        hypervisors::update,
        hypervisors::delete,
        hypervisors::check,
        hypervisors::vms,
        pairs::list,
        pairs::create,
        pairs::get,
        pairs::update,
        pairs::delete,
        pairs::archives,
        pairs::adopt,
        tasks::backup,
        tasks::restore,
        tasks::replicate,
        tasks::failover,
        tasks::failback,
        tasks::drill,
        tasks::list,
        tasks::get,
        tasks::log,
        tasks::cancel,
        plans::list,
        plans::create,
        plans::get,
        plans::update,
        plans::delete,
        plans::failover,
        plans::drill,
        schedules::list,
        schedules::create,
        schedules::get,
        schedules::update,
        schedules::delete,
        events::list,
        audit::list,
        alerts::status,
        alerts::list,
        alerts::settings,
        alerts::set_settings,
        alerts::targets,
        alerts::create_target,
        alerts::target,
        alerts::update_target,
        alerts::delete_target,
        alerts::test_target,
    ),
    // Types only query parameters name.
    components(schemas(crate::service::monitoring::AlertState, crate::domain::TaskStatus, crate::domain::TaskKind))
)]
pub struct ApiDoc;

/// The document as served: derived, then finished by `conformance`.
pub fn spec(facts: &Facts) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document is JSON");
    conformance::finish(&mut doc, facts);
    doc
}

pub async fn document(state: web::Data<AppState>) -> HttpResponse {
    let min_tolerance_secs = 2 * state.settings.monitor_interval.as_secs() as i64;
    HttpResponse::Ok().json(spec(&Facts { min_tolerance_secs }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every route in the route table is documented, and every documented
    /// operation is routed: the two lists cannot drift apart.
    #[test]
    fn document_matches_the_route_table() {
        let table = include_str!("mod.rs");
        let mut routed = BTreeSet::new();
        // Each `endpoint("/path")` is followed by its methods, `.get(handler)` …,
        // on one line or (once rustfmt breaks the chain) several.
        for chunk in table.split("endpoint(\"").skip(1) {
            let path = chunk.split('"').next().unwrap();
            let chain = chunk.split(".service(").next().unwrap().split(".default_service(").next().unwrap();
            if path == "/openapi.json" || path == "/metrics" {
                continue;
            }
            for method in ["get", "post", "put", "delete"] {
                if chain.contains(&format!(".{method}(")) {
                    routed.insert((method.to_string(), format!("/api/v1{path}")));
                }
            }
        }
        let doc = spec(&Facts { min_tolerance_secs: 120 });
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in ["get", "post", "put", "delete"] {
                if item.get(method).is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        assert!(routed.len() > 30, "the route table was read: {routed:?}");
        assert_eq!(routed, documented);
    }
}
