//! One API path and the methods it accepts. A request with another method
//! gets 405 in the API's error shape, with an `Allow` header built from the
//! same list the routes are, so the two cannot disagree.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, Resource, Responder};

use crate::error::AppError;

pub struct Endpoint {
    resource: Resource,
    allow: Vec<Method>,
}

/// Starts the endpoint for `path` (relative to the API's scope).
pub fn endpoint(path: &str) -> Endpoint {
    Endpoint { resource: web::resource(path), allow: Vec::new() }
}

impl Endpoint {
    pub fn get<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.method(Method::GET, handler)
    }

    pub fn post<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.method(Method::POST, handler)
    }

    pub fn put<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.method(Method::PUT, handler)
    }

    pub fn delete<F, Args>(self, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.method(Method::DELETE, handler)
    }

    fn method<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.resource = self.resource.route(web::method(method.clone()).to(handler));
        self.allow.push(method);
        self
    }
}

impl HttpServiceFactory for Endpoint {
    fn register(self, config: &mut AppService) {
        let allow = self.allow.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
        let refuse = move || {
            let allow = allow.clone();
            async move { Err::<actix_web::HttpResponse, _>(AppError::MethodNotAllowed(allow)) }
        };
        self.resource.default_service(web::to(refuse)).register(config)
    }
}
