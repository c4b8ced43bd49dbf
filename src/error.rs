//! The one error type handlers return, mapped to HTTP once. 4xx bodies say
//! what the caller did wrong; 5xx bodies stay opaque and the cause goes to
//! the log.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::db::DbError;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{0}")]
    Malformed(String),
    #[error("login required")]
    Unauthorized,
    #[error("{0}")]
    BadCredentials(String),
    #[error("your role may not do this; it needs {0}")]
    Forbidden(&'static str),
    /// A read-only API token was used for a request that changes something.
    #[error("this API token is read-only; it may only make GET requests")]
    ReadOnlyToken,
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The path exists, but not with this method; holds the ones it takes
    /// (`GET, POST`), for the `Allow` header.
    #[error("this path accepts only {0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    /// A conflict caused by one field's value (e.g. a duplicate target).
    #[error("{field}: {message}")]
    Taken { field: String, message: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("a request body to the API must be JSON sent as Content-Type: application/json")]
    NotJson,
    #[error("requests from another site may not change anything here")]
    CrossSite,
    #[error("too many failed logins; try again in {0} seconds")]
    Throttled(u64),
    #[error("{0}")]
    NotImplemented(&'static str),
    /// A hypervisor could not be reached or answered wrongly.
    #[error("{0}")]
    Upstream(String),
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Invalid { field: field.into(), message: message.into() }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        AppError::Internal(e.to_string())
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::Malformed(_) => "malformed_request",
            AppError::Unauthorized => "unauthorized",
            AppError::BadCredentials(_) => "bad_credentials",
            AppError::Forbidden(_) => "forbidden",
            AppError::ReadOnlyToken => "read_only_token",
            AppError::NotFound(_) => "not_found",
            AppError::MethodNotAllowed(_) => "method_not_allowed",
            AppError::Conflict(_) => "conflict",
            AppError::Invalid { .. } => "invalid_field",
            AppError::Taken { .. } => "conflict",
            AppError::TooLarge(_) => "payload_too_large",
            AppError::NotJson => "unsupported_media_type",
            AppError::CrossSite => "cross_site_request",
            AppError::Throttled(_) => "too_many_requests",
            AppError::NotImplemented(_) => "not_implemented",
            AppError::Upstream(_) => "hypervisor_error",
            AppError::Internal(_) => "internal_error",
        }
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::BadCredentials => AppError::BadCredentials("Wrong username or password.".into()),
            ServiceError::Invalid { field, message } => AppError::Invalid { field, message },
            ServiceError::Conflict(m) => AppError::Conflict(m),
            ServiceError::Taken { field, message } => AppError::Taken { field, message },
            ServiceError::NotFound(what) => AppError::NotFound(what),
            ServiceError::Forbidden(what) => AppError::Forbidden(what),
            ServiceError::Upstream(m) => AppError::Upstream(m),
            ServiceError::Throttled(secs) => AppError::Throttled(secs),
            ServiceError::Internal(m) => AppError::Internal(m),
        }
    }
}

impl From<crate::hypervisor::HvError> for AppError {
    fn from(e: crate::hypervisor::HvError) -> Self {
        match e {
            crate::hypervisor::HvError::Failed { kind: crate::domain::ErrorKind::Database, message } => {
                AppError::Internal(message)
            }
            other => AppError::Upstream(other.to_string()),
        }
    }
}

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Conflict(what) => AppError::Conflict(what),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::Malformed(_) => StatusCode::BAD_REQUEST,
            AppError::Unauthorized | AppError::BadCredentials(_) => StatusCode::UNAUTHORIZED,
            AppError::Forbidden(_) | AppError::ReadOnlyToken => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            AppError::Conflict(_) | AppError::Taken { .. } => StatusCode::CONFLICT,
            AppError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::CrossSite => StatusCode::FORBIDDEN,
            AppError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            AppError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            AppError::Upstream(_) => StatusCode::BAD_GATEWAY,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let AppError::Internal(cause) = self {
            tracing::error!(%cause, "request failed");
        }
        let mut message = self.to_string();
        // "host: must be …" keeps the field's exact spelling; sentences get a capital.
        if !matches!(self, AppError::Invalid { .. } | AppError::Taken { .. }) {
            if let Some(first) = message.get(..1) {
                message = first.to_uppercase() + &message[1..];
            }
        }
        let mut resp = HttpResponse::build(self.status_code());
        match self {
            AppError::Throttled(secs) => {
                resp.insert_header(("Retry-After", secs.to_string()));
            }
            AppError::MethodNotAllowed(allow) => {
                resp.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        resp.json(json!({"error": {"code": self.code(), "message": message}}))
    }
}

pub type AppResult<T> = Result<T, AppError>;
