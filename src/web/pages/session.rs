//! Logging in and out.

use actix_session::Session;
use actix_web::{web, HttpRequest, HttpResponse};
use maud::{html, DOCTYPE};

use crate::auth::{login_session, LoginGuard};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::csrf_token;
use crate::web::form::Form;
use crate::web::layout::head;
use crate::web::view::redirect;
use crate::web::Page;

fn login_page(csrf: &str, username: &str, error: Option<&str>, status: actix_web::http::StatusCode) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in"))
            body {
                main.login {
                    h1 { "drswitch" }
                    div.panel {
                        @if let Some(e) = error { div.flash.error role="alert" { (e) } }
                        form.stack method="post" action="/login" {
                            input type="hidden" name="csrf" value=(csrf);
                            label { "Username" input type="text" name="username" value=(username) autocomplete="username" autofocus required; }
                            label { "Password" input type="password" name="password" autocomplete="current-password" required; }
                            button type="submit" { "Log in" }
                        }
                    }
                    p.muted { "Disaster-recovery switch for Proxmox VE" }
                }
            }
        }
    };
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(markup.into_string())
}

pub async fn login_form(session: Session) -> HttpResponse {
    if login_session::user_id(&session).is_some() {
        return redirect("/");
    }
    login_page(&csrf_token(&session), "", None, actix_web::http::StatusCode::OK)
}

pub async fn login(
    state: web::Data<AppState>,
    guard: web::Data<LoginGuard>,
    session: Session,
    req: HttpRequest,
    form: Form,
) -> Page {
    // Behind a trusted proxy, the client's own address: one client's
    // guesses must not lock out everyone behind the proxy.
    let peer =
        crate::client_addr::client_ip(&req, &state.settings.trusted_proxies).map(|a| a.to_string()).unwrap_or_default();
    let username = form.get("username").unwrap_or_default().to_string();
    let password = form.raw("password").unwrap_or_default().to_string();
    match crate::service::session::login(&state, &guard, &peer, &username, password).await {
        Ok(user) => {
            login_session::start(&state, &session, &user).await.map_err(ServiceError::Internal)?;
            // A new form token for the logged-in session.
            session.remove("csrf");
            Ok(redirect("/"))
        }
        Err(e @ (ServiceError::BadCredentials | ServiceError::Throttled(_))) => {
            let status = if matches!(e, ServiceError::Throttled(_)) {
                actix_web::http::StatusCode::TOO_MANY_REQUESTS
            } else {
                actix_web::http::StatusCode::UNAUTHORIZED
            };
            let text = e.to_string();
            let text = text.get(..1).map(|f| f.to_uppercase() + &text[1..]).unwrap_or(text);
            Ok(login_page(&csrf_token(&session), &username, Some(&text), status))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn logout(state: web::Data<AppState>, session: Session, _form: Form) -> Page {
    if let Some(id) = login_session::user_id(&session) {
        crate::service::session::logout(&state, id, login_session::id(&session)).await?;
    }
    session.purge();
    Ok(redirect("/login"))
}
