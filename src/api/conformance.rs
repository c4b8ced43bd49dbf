//! Finishes the OpenAPI document that utoipa derives from the handlers. What
//! holds for every operation is added here once, from the operation's own
//! shape, so a new route gets it without anyone having to remember:
//! - the error answers it can give, each with the error body: 401 without
//!   credentials, 403 for a request from another site (and a role, where
//!   the handler says so), 400/413/415/422 where it takes a body, 422 where
//!   it takes a query, 404 where an id is in its path;
//! - who may call it (an API token or the session cookie), unless public;
//! - path ids typed by the resource they name, request bodies closed to
//!   unknown fields (every input refuses them), and the fields and rules a
//!   create needs beyond an update;
//! - unique operation ids, and links from each answer that carries an id
//!   to the operations that take it, so a client can follow real ids.
//!
//! It never removes what a handler declared.

use serde_json::{json, Map, Value};

use crate::service::input::CreateRules;

/// Paths that answer without credentials.
pub const PUBLIC: &[&str] = &["/api/v1/health", "/api/v1/auth/login", "/api/v1/auth/logout"];

/// The id each collection's `{id}` names, by the path segment before it;
/// `None` where the id has no type of its own (a plain UUID).
pub const ID_TYPES: &[(&str, Option<&str>)] = &[
    ("users", Some("UserId")),
    ("tokens", Some("ApiTokenId")),
    ("hypervisors", Some("HypervisorId")),
    ("pairs", Some("PairId")),
    ("tasks", Some("TaskId")),
    ("plans", None),
    ("schedules", Some("ScheduleId")),
    ("notification-targets", Some("TargetId")),
];

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

/// What the document needs to know of the running server.
pub struct Facts {
    /// The shortest failover tolerance accepted: twice the probe interval.
    pub min_tolerance_secs: i64,
}

/// The fields and cross-field rules of each create's body.
fn creates() -> Vec<(&'static str, CreateRules)> {
    use crate::service::input::Input;
    use crate::service::{hypervisors, pairs, plans, schedules, targets, users};
    vec![
        (
            <hypervisors::HypervisorInput as utoipa::ToSchema>::name().into_static(),
            hypervisors::HypervisorInput::rules(),
        ),
        (<pairs::PairInput as utoipa::ToSchema>::name().into_static(), pairs::PairInput::rules()),
        (<plans::PlanInput as utoipa::ToSchema>::name().into_static(), plans::PlanInput::rules()),
        (<schedules::ScheduleInput as utoipa::ToSchema>::name().into_static(), schedules::ScheduleInput::rules()),
        (<targets::TargetInput as utoipa::ToSchema>::name().into_static(), targets::TargetInput::rules()),
        (<users::UserInput as utoipa::ToSchema>::name().into_static(), users::UserInput::rules()),
    ]
}

trait IntoStatic {
    fn into_static(self) -> &'static str;
}

impl IntoStatic for std::borrow::Cow<'static, str> {
    fn into_static(self) -> &'static str {
        match self {
            std::borrow::Cow::Borrowed(s) => s,
            std::borrow::Cow::Owned(s) => Box::leak(s.into_boxed_str()),
        }
    }
}

/// Applies every rule above to the derived document.
pub fn finish(doc: &mut Value, facts: &Facts) {
    put_json_schemas(doc);
    add_components(doc);
    close_request_bodies(doc);
    add_create_schemas(doc);
    let paths: Vec<String> = doc["paths"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    for path in &paths {
        for method in METHODS {
            if doc["paths"][path][method].is_object() {
                finish_operation(doc, path, method);
            }
        }
    }
    add_links(doc, &paths);
    if let Some(t) = doc.pointer_mut("/components/schemas/AlertSettingsInput/properties/tolerance_secs") {
        t["minimum"] = json!(facts.min_tolerance_secs);
    }
}

/// Schemas written as JSON (`domain::schema`) replace their placeholder;
/// a description utoipa put beside it (a field's doc comment) stays.
fn put_json_schemas(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Object(mut schema)) = m.remove(crate::domain::JSON_SCHEMA_KEY) {
                m.remove("type");
                for (k, v) in std::mem::take(m) {
                    schema.entry(k).or_insert(v);
                }
                *m = schema;
            }
            m.values_mut().for_each(put_json_schemas);
        }
        Value::Array(a) => a.iter_mut().for_each(put_json_schemas),
        _ => {}
    }
}

fn add_components(doc: &mut Value) {
    let components = doc["components"].as_object_mut().expect("the document has components");
    components.entry("schemas").or_insert_with(|| json!({}))["Error"] = json!({
        "type": "object",
        "description": "Every error answer: a machine-readable code and one sentence for people.",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[a-z_]+$", "examples": ["invalid_field"]},
                    "message": {"type": "string", "description": "For a bad field, it begins with the field's name."}
                }
            }
        }
    });
    components.insert(
        "securitySchemes".into(),
        json!({
            "token": {"type": "http", "scheme": "bearer", "description": "An API token from POST /api/v1/tokens."},
            "session": {"type": "apiKey", "in": "cookie", "name": crate::app::SESSION_COOKIE,
                        "description": "The cookie POST /api/v1/auth/login sets."}
        }),
    );
    doc["security"] = json!([{"token": []}, {"session": []}]);
}

/// Every input refuses unknown fields (`deny_unknown_fields`).
fn close_request_bodies(doc: &mut Value) {
    let mut names = Vec::new();
    for item in doc["paths"].as_object().into_iter().flat_map(|p| p.values()) {
        for method in METHODS {
            let Some(schema) = item[method].pointer("/requestBody/content/application~1json/schema") else { continue };
            // An optional body is `oneOf: [null, {$ref}]`.
            for s in std::iter::once(schema).chain(schema["oneOf"].as_array().into_iter().flatten()) {
                names.extend(
                    s["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")).map(str::to_string),
                );
            }
        }
    }
    for name in names {
        if let Some(s) = doc["components"]["schemas"].get_mut(&name) {
            s["additionalProperties"] = json!(false);
        }
    }
}

/// `XCreate`: the body of `POST /xs`, which needs more than an update.
fn add_create_schemas(doc: &mut Value) {
    for (name, rules) in creates() {
        let Some(mut schema) = doc["components"]["schemas"].get(name).cloned() else { continue };
        for field in rules.required {
            // A required field may not be null either.
            if let Some(p) = schema.get_mut("properties").and_then(|ps| ps.get_mut(*field)) {
                *p = not_null(p.take());
            }
        }
        schema["required"] = json!(rules.required);
        if let Some(extra) = rules.create {
            schema = json!({"allOf": [schema, extra]});
        }
        let create = format!("{}Create", name.trim_end_matches("Input"));
        doc["components"]["schemas"][&create] = schema;
        let from = format!("#/components/schemas/{name}");
        for item in doc["paths"]
            .as_object_mut()
            .into_iter()
            .flat_map(|p| p.iter_mut())
            .filter(|(p, _)| !p.contains('{'))
            .map(|(_, i)| i)
        {
            if let Some(r) = item.pointer_mut("/post/requestBody/content/application~1json/schema/$ref") {
                if *r == from {
                    *r = json!(format!("#/components/schemas/{create}"));
                }
            }
        }
        if let Some(extra) = rules.update {
            let input = &mut doc["components"]["schemas"][name];
            *input = json!({"allOf": [input.take(), extra]});
        }
    }
}

fn not_null(p: Value) -> Value {
    match p {
        Value::Object(mut m) => {
            if let Some(Value::Array(types)) = m.get("type") {
                let kept: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                m.insert("type".into(), if kept.len() == 1 { kept[0].clone() } else { Value::Array(kept) });
            }
            if let Some(Value::Array(branches)) = m.remove("oneOf") {
                let kept: Vec<Value> = branches.into_iter().filter(|b| b["type"] != "null").collect();
                if kept.len() == 1 {
                    let mut only = kept.into_iter().next().unwrap_or_default();
                    if let (Some(d), Value::Object(o)) = (m.get("description").cloned(), &mut only) {
                        o.entry("description").or_insert(d);
                    }
                    return only;
                }
                m.insert("oneOf".into(), Value::Array(kept));
            }
            Value::Object(m)
        }
        other => other,
    }
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

fn finish_operation(doc: &mut Value, path: &str, method: &str) {
    let public = PUBLIC.contains(&path);
    // A body that names another record (`pair_id`, `src_hypervisor_id`)
    // may name one that is not there.
    let names_records = doc["paths"][path][method]
        .pointer("/requestBody/content/application~1json/schema")
        .map(|s| properties(doc, s).values().any(|p| id_type(&not_null(p.clone())).is_some()))
        .unwrap_or(false);
    let op = &mut doc["paths"][path][method];
    // `tags` is the handler's module, `operationId` its name: together unique.
    let tag = op["tags"][0].as_str().unwrap_or("api").to_string();
    let name = op["operationId"].as_str().unwrap_or(method).to_string();
    if !name.starts_with(&format!("{tag}_")) {
        op["operationId"] = json!(format!("{tag}_{name}"));
    }
    if public {
        op["security"] = json!([]);
    }
    type_path_ids(op, path);
    let has_body = op.get("requestBody").is_some();
    let has_query = op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let has_id = path.contains('{');
    let responses = op["responses"].as_object_mut().expect("every operation has responses");
    let add = |responses: &mut Map<String, Value>, status: &str, description: &str| {
        let r = responses.entry(status.to_string()).or_insert_with(|| error_response(description));
        if r.get("content").is_none() {
            *r = error_response(r["description"].as_str().filter(|d| !d.is_empty()).unwrap_or(description));
        }
    };
    if has_body {
        add(responses, "400", "The body is not well-formed JSON.");
        add(responses, "413", "The body is larger than 64 KiB.");
        add(responses, "415", "The body is not sent as application/json.");
        add(responses, "422", "A field is missing, unknown or invalid; the message names it.");
    }
    if has_query {
        add(responses, "422", "A query parameter is unknown or invalid; the message names it.");
    }
    if !public {
        add(responses, "401", "No valid session cookie or API token.");
    }
    if !public {
        add(responses, "403", "Your role (or the token's scope) may not do this.");
    }
    if method != "get" {
        add(responses, "403", "The request came from another site's page.");
    }
    if has_id {
        add(responses, "404", "No such resource (or the id is not a UUID).");
    }
    if names_records {
        add(responses, "409", "A field names a record that does not exist or does not fit; the message names it.");
    }
    // What a handler declared without a body gets the error body too.
    let declared: Vec<String> = responses.keys().filter(|s| s.starts_with(['4', '5'])).cloned().collect();
    for status in declared {
        let description = match status.as_str() {
            "403" => "Your role may not do this.",
            "404" => "No such resource.",
            "409" => "It conflicts with the current state; the message says how.",
            "422" => "A field is invalid; the message names it.",
            "429" => "Too many failed logins; see Retry-After.",
            "502" => "The hypervisor could not be reached or answered wrongly.",
            "503" => "The database is unreachable.",
            _ => "An error.",
        };
        add(responses, &status, description);
    }
    for (status, r) in responses.iter_mut() {
        if r["description"] == "" {
            r["description"] = json!(match status.as_str() {
                "200" => "OK.",
                "201" => "Created.",
                "202" => "Accepted: queued.",
                "204" => "Done; no body.",
                _ => "See the error body.",
            });
        }
    }
}

/// The schema of the id a path names: the collection's id type, else a UUID.
pub fn id_schema(path: &str) -> Value {
    let segment = path.split("/{id}").next().and_then(|p| p.rsplit('/').next()).unwrap_or_default();
    match ID_TYPES.iter().find(|(s, _)| *s == segment) {
        Some((_, Some(ty))) => json!({"$ref": format!("#/components/schemas/{ty}")}),
        _ => json!({"type": "string", "format": "uuid"}),
    }
}

fn type_path_ids(op: &mut Value, path: &str) {
    for p in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
        if p["in"] == "path" {
            p["schema"] = id_schema(path);
            if p.get("description").is_none() {
                p["description"] = json!("The resource's id, a UUID.");
            }
        }
    }
}

/// The properties of a schema, through `$ref` and `allOf`.
fn properties(doc: &Value, schema: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(r) = schema["$ref"].as_str() {
        if let Some(target) = doc.pointer(&r.replacen('#', "", 1)) {
            out.extend(properties(doc, target));
        }
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        out.extend(properties(doc, part));
    }
    if let Some(p) = schema["properties"].as_object() {
        out.extend(p.clone());
    }
    out
}

/// The id type a property holds, when it is one (not nullable: a link
/// must always give an id).
fn id_type(prop: &Value) -> Option<&str> {
    prop["$ref"].as_str()?.strip_prefix("#/components/schemas/").filter(|t| t.ends_with("Id"))
}

/// Links from every answer that carries an id to the operations that take
/// it: in their path (`/pairs/{id}/…` from a pair's `id`, a task's
/// `pair_id`) or in their body (`src_hypervisor_id` from a hypervisor).
fn add_links(doc: &mut Value, paths: &[String]) {
    // (operationId, path, id type in its path or the collection it belongs to)
    let mut takers = Vec::new();
    // (operationId, body field, id type)
    let mut body_takers = Vec::new();
    for path in paths {
        for method in METHODS {
            let op = &doc["paths"][path][method];
            let Some(id) = op["operationId"].as_str() else { continue };
            if path.contains("{id}") {
                let ty = id_schema(path);
                takers.push((id.to_string(), path.clone(), ty));
            }
            if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                for (field, prop) in properties(doc, body) {
                    if let Some(ty) = id_type(&prop) {
                        body_takers.push((id.to_string(), field, ty.to_string()));
                    }
                }
            }
        }
    }
    for path in paths {
        for method in METHODS {
            let op = &doc["paths"][path][method];
            if !op.is_object() {
                continue;
            }
            let mut links: Vec<(String, String, Value)> = Vec::new();
            // What the caller's own session says (`/auth/me`) links nowhere:
            // a client following it would act on its own account.
            if path.starts_with("/api/v1/auth/") {
                continue;
            }
            let statuses: Vec<String> =
                op["responses"].as_object().into_iter().flatten().map(|(s, _)| s.clone()).collect();
            for status in statuses.into_iter().filter(|s| s.starts_with('2')) {
                let Some(schema) = op["responses"][&status].pointer("/content/application~1json/schema") else {
                    continue;
                };
                let props = properties(doc, schema);
                for (field, prop) in &props {
                    let ty = id_type(prop).map(str::to_string);
                    let plain_uuid = field == "id" && prop["format"] == "uuid";
                    for (target, target_path, target_ty) in &takers {
                        let same_collection =
                            method == "post" && field == "id" && target_path.starts_with(&format!("{path}/{{id}}"));
                        let typed = ty
                            .as_deref()
                            .is_some_and(|t| target_ty["$ref"].as_str() == Some(&format!("#/components/schemas/{t}")));
                        if typed || (plain_uuid && same_collection) {
                            let name = format!("{target}_by_{field}");
                            links.push((
                                status.clone(),
                                name,
                                json!({
                                    "operationId": target,
                                    "parameters": {"path.id": format!("$response.body#/{field}")}
                                }),
                            ));
                        }
                    }
                    if field != "id" {
                        continue;
                    }
                    let Some(ty) = &ty else { continue };
                    for (target, body_field, body_ty) in &body_takers {
                        if body_ty == ty {
                            links.push((
                                status.clone(),
                                format!("{target}_with_{body_field}"),
                                json!({
                                    "operationId": target,
                                    "requestBody": {body_field.clone(): "$response.body#/id"}
                                }),
                            ));
                        }
                    }
                }
            }
            let op = &mut doc["paths"][path][method];
            for (status, name, link) in links {
                op["responses"][&status]["links"][name] = link;
            }
        }
    }
}
