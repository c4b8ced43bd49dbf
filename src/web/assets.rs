//! CSS and scripts, compiled into the binary: data centers are often offline.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// (name in URLs, content type, bytes)
const FILES: &[(&str, &str, &[u8])] = &[
    ("style.css", "text/css; charset=utf-8", include_bytes!("../../assets/style.css")),
    ("app.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/app.js")),
    ("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("../../assets/htmx-2.0.11.min.js")),
];

pub async fn serve(name: web::Path<String>) -> HttpResponse {
    match FILES.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, ctype, bytes)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *ctype))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(*bytes),
        None => HttpResponse::NotFound().finish(),
    }
}
