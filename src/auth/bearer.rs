//! API tokens presented as `Authorization: Bearer …`, and the one rule of
//! their scopes: a `read` token may only read (GET, HEAD). The token is
//! looked up once per request; the API's guard (which refuses before any
//! handler reads a body) and the user extractor share that answer.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest};

use crate::db::tokens::TokenGrant;
use crate::domain::TokenScope;
use crate::error::AppError;
use crate::state::AppState;

/// The token in the `Authorization` header, if one was presented.
pub fn presented(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// Whether a token of `scope` may make a request with `method`.
pub fn permits(scope: TokenScope, method: &Method) -> bool {
    scope == TokenScope::Write || matches!(*method, Method::GET | Method::HEAD)
}

/// The request's token looked up, kept for the rest of the request.
#[derive(Clone, Copy)]
struct Looked(Option<TokenGrant>);

/// What the presented token grants: None when no token was presented or it
/// is unknown or revoked.
pub async fn grant(req: &HttpRequest) -> Result<Option<TokenGrant>, AppError> {
    if let Some(Looked(g)) = req.extensions().get::<Looked>().copied() {
        return Ok(g);
    }
    let Some(token) = presented(req) else { return Ok(None) };
    let state = req.app_data::<web::Data<AppState>>().ok_or_else(|| AppError::internal("application state missing"))?;
    let g = state.db.token_grant(&crate::auth::token::digest(&token)).await?;
    req.extensions_mut().insert(Looked(g));
    Ok(g)
}

/// Middleware for the API: a request that would change something, made
/// with a read-only token, is refused before its handler runs (and so
/// before its body is read or checked), whatever the route.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) && presented(req.request()).is_some() {
        match grant(req.request()).await {
            Ok(Some(g)) if !permits(g.scope, req.method()) => {
                let resp = actix_web::ResponseError::error_response(&AppError::ReadOnlyToken);
                return Ok(req.into_response(resp));
            }
            Ok(_) => {}
            Err(e) => {
                let resp = actix_web::ResponseError::error_response(&e);
                return Ok(req.into_response(resp));
            }
        }
    }
    next.call(req).await.map(ServiceResponse::map_into_boxed_body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_tokens_only_read() {
        for m in [Method::GET, Method::HEAD] {
            assert!(permits(TokenScope::Read, &m));
        }
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
            assert!(!permits(TokenScope::Read, &m), "{m}");
            assert!(permits(TokenScope::Write, &m), "{m}");
        }
    }
}
