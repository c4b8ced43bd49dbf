//! The API's own OpenAPI document against the API, for every operation it
//! lists, so a new route is held to the same rules without a new test:
//! what scripts/schemathesis.sh checks by fuzzing, in a few seconds.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::TestApp;
use serde_json::{json, Value};

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

/// `(method, path, operation)` for every operation of the document.
fn operations(doc: &Value) -> Vec<(&'static str, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((method, path.clone(), op.clone()));
            }
        }
    }
    out
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => doc.pointer(&r.replacen('#', "", 1)).unwrap_or_else(|| panic!("{r} does not resolve")),
        None => schema,
    }
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|v| refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn with_id(path: &str) -> String {
    path.replace("{id}", "00000000-0000-4000-8000-000000000000")
}

async fn document(app: &TestApp) -> Value {
    let (s, doc) = app.get("/api/v1/openapi.json").await;
    assert_eq!(s, 200);
    doc
}

#[tokio::test]
async fn the_document_says_what_every_operation_takes_and_answers() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let ops = operations(&doc);
    assert!(ops.len() > 50, "every operation is read");

    let mut all = Vec::new();
    refs(&doc, &mut all);
    for r in &all {
        assert!(doc.pointer(&r.replacen('#', "", 1)).is_some(), "{r} does not resolve");
    }

    let mut ids = BTreeSet::new();
    for (method, path, op) in &ops {
        let what = format!("{} {path}", method.to_uppercase());
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{what}: no operationId"));
        assert!(ids.insert(id.to_string()), "{what}: operationId {id} is not unique");

        let responses = op["responses"].as_object().unwrap();
        let public = op["security"] == json!([]);
        if !public {
            assert!(responses.contains_key("401"), "{what}: 401 not listed");
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(responses.contains_key(status), "{what}: {status} not listed");
            }
            let body = &op["requestBody"]["content"]["application/json"]["schema"];
            // An optional body is `oneOf: [null, {$ref}]`.
            let body = resolve(
                &doc,
                body["oneOf"].as_array().and_then(|o| o.iter().find(|s| s.get("$ref").is_some())).unwrap_or(body),
            );
            let closed = body["additionalProperties"] == json!(false)
                || body["allOf"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|s| resolve(&doc, s)["additionalProperties"] == json!(false)));
            assert!(closed, "{what}: the body does not refuse unknown fields");
        }
        for p in op["parameters"].as_array().into_iter().flatten() {
            let schema = resolve(&doc, &p["schema"]);
            if p["in"] == "path" {
                assert_eq!((&schema["type"], &schema["format"]), (&json!("string"), &json!("uuid")), "{what}: {p}");
                assert!(responses.contains_key("404"), "{what}: 404 not listed");
            }
            if p["in"] == "query" {
                assert!(responses.contains_key("422"), "{what}: 422 not listed for its query");
                match p["name"].as_str() {
                    Some("limit") => {
                        assert_eq!((&schema["minimum"], &schema["maximum"]), (&json!(1), &json!(500)), "{what}")
                    }
                    Some("offset") => assert_eq!(schema["minimum"], json!(0), "{what}"),
                    _ => {}
                }
            }
        }
        for (status, r) in responses {
            if status.starts_with(['4', '5']) {
                let schema = &r["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/Error", "{what}: {status} has no error body");
            }
            assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()), "{what}: {status} undescribed");
        }
        // A create's answer leads to what can be done with what it made.
        if *method == "post" && !path.contains('{') {
            if let Some(created) = responses.get("201") {
                assert!(created["links"].as_object().is_some_and(|l| !l.is_empty()), "{what}: no links");
            }
        }
    }
}

#[tokio::test]
async fn every_operation_answers_as_its_document_says() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let doc = document(&app).await;
    let anonymous = common::client();
    for (method, path, op) in operations(&doc) {
        let what = format!("{} {path}", method.to_uppercase());
        let url = app.url(&with_id(&path));
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();

        // No credentials: 401, unless the document says the route is public.
        if op["security"] != json!([]) {
            let r = anonymous.request(m.clone(), &url).json(&json!({})).send().await.unwrap();
            assert_eq!(r.status(), 401, "{what} without credentials");
        }
        // An unknown field: 422 naming it (before the id is looked up).
        if op.get("requestBody").is_some() {
            let r = app.client.request(m.clone(), &url).json(&json!({"no_such_field": 1})).send().await.unwrap();
            let (s, v) = common::decode(r).await;
            assert_eq!(s, 422, "{what} with an unknown field: {v}");
            assert!(common::message(&v).starts_with("no_such_field"), "{what}: {v}");
            let r = app
                .client
                .request(m.clone(), &url)
                .header("content-type", "text/plain")
                .body("x")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 415, "{what} with a text body");
        }
        // An id that names nothing: 404.
        if path.contains("{id}") && op.get("requestBody").is_none() {
            let r = app.client.request(m.clone(), &url).send().await.unwrap();
            assert_eq!(r.status(), 404, "{what} for an unknown id");
        }
    }
}

/// What the document says a create needs is what the server asks for.
#[tokio::test]
async fn creates_require_what_the_document_requires() {
    let app = TestApp::spawn().await;
    app.login_admin().await;
    let doc = document(&app).await;
    let mut checked = BTreeMap::new();
    for (method, path, op) in operations(&doc) {
        if method != "post" || path.contains('{') {
            continue;
        }
        let Some(r) = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() else { continue };
        let schema = resolve(&doc, &op["requestBody"]["content"]["application/json"]["schema"]);
        let schema = schema["allOf"].get(0).map(|s| resolve(&doc, s)).unwrap_or(schema);
        let required: Vec<String> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        if required.is_empty() {
            continue;
        }
        let (s, v) = app.post(&path, json!({})).await;
        assert_eq!(s, 422, "POST {path} with nothing: {v}");
        let field = common::message(&v).split(':').next().unwrap_or_default().to_string();
        assert!(
            required.contains(&field),
            "POST {path}: the server asked for {field}, the document ({r}) for {required:?}"
        );
        checked.insert(path, required);
    }
    assert!(checked.len() >= 5, "{checked:?}");
    assert_eq!(checked["/api/v1/pairs"], ["src_hypervisor_id", "src_vmid", "dst_vmid"]);
}
