//! The user's own account: change the password, create and revoke API
//! tokens (a new token is shown once, with a copy button).

use actix_session::Session;
use actix_web::web;
use maud::{html, Markup};

use crate::domain::ApiTokenId;
use crate::service::tokens::{self, TokenInput};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::{flash, PageUser};
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{post_button, redirect, when};
use crate::web::Page;

async fn render(state: &AppState, me: &PageUser, new_token: Option<&str>, pw_error: Option<&str>) -> Page {
    let list = tokens::list(state, &me.user).await?;
    let body: Markup = html! {
        h1 { "Account" }
        div.row {
            div.panel {
                h2 { "Change password" }
                @if let Some(e) = pw_error { div.flash.error role="alert" { (e) } }
                form.stack method="post" action="/account/password" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label { "Current password" input type="password" name="current_password" autocomplete="current-password" required; }
                    label { "New password" span.hint { "at least 8 characters" } input type="password" name="password" autocomplete="new-password" required; }
                    div.actions { button type="submit" { "Change password" } }
                }
                h2 { "Sessions" }
                p.muted { "Ends every login of yours, on every device, this one too. API tokens stay until revoked." }
                (post_button("/account/logout-all", "Log out everywhere", &me.csrf, "danger", Some("Log out on every device, this one too?")))
            }
            div.panel {
                h2 { "API tokens" }
                p.muted { "For scripts and cron: " code { "curl -H 'Authorization: Bearer drs_…'" } }
                @if let Some(t) = new_token {
                    div.flash.ok role="status" {
                        "New token — copy it now, it is shown only once:"
                        div.copy-row { code #new-token { (t) } button.secondary type="button" data-copy="new-token" { "Copy" } }
                    }
                }
                form.filters method="post" action="/account/tokens" {
                    input type="hidden" name="csrf" value=(me.csrf);
                    label { "Name" input type="text" name="name" placeholder="e.g. nightly cron on host x"; }
                    label { "Scope" select name="scope" {
                        option value="write" selected { "write: all you may do" }
                        option value="read" { "read: GET requests only" }
                    } }
                    button type="submit" { "Create token" }
                }
                @if list.is_empty() { p.muted { "No tokens yet." } } @else {
                    div.table-wrap { table {
                        thead { tr { th { "Name" } th { "Scope" } th { "Created" } th { "Last used" } th {} } }
                        tbody { @for t in &list { tr {
                            td { (t.name) }
                            td { (t.scope) }
                            td { (when(t.created_at)) }
                            td { @match t.last_used_at { Some(at) => { (when(at)) } None => { "never" } } }
                            td { (post_button(&format!("/account/tokens/{}/revoke", t.id), "Revoke", &me.csrf, "danger", Some("Revoke this token? Scripts using it stop working."))) }
                        } } }
                    } }
                }
            }
        }
    };
    Ok(page(me, "/account", "Account", body))
}

pub async fn page_(state: web::Data<AppState>, me: PageUser, session: Session) -> Page {
    let token = session.remove_as::<String>(SESSION_NEW_TOKEN).and_then(Result::ok);
    render(&state, &me, token.as_deref(), None).await
}

pub async fn password(
    state: web::Data<AppState>,
    guard: web::Data<crate::auth::LoginGuard>,
    me: PageUser,
    session: Session,
    f: Form,
) -> Page {
    let current = f.raw("current_password").unwrap_or_default().to_string();
    let new = f.raw("password").unwrap_or_default().to_string();
    match crate::service::users::change_own_password(&state, &guard, &me.user, current, new).await {
        Ok(user) => {
            // Every other session of this user ended with the change; this
            // one goes on under the new epoch.
            crate::auth::login_session::carry_on(&state, &session, &user).await.map_err(ServiceError::Internal)?;
            flash(&session, "ok", "Password changed; your other sessions were logged out.");
            Ok(redirect("/account"))
        }
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::BadCredentials | ServiceError::Throttled(_))) => {
            let text = match e {
                ServiceError::BadCredentials => "The current password is not right.".to_string(),
                other => other.to_string(),
            };
            let mut resp = render(&state, &me, None, Some(&text)).await?;
            *resp.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(resp)
        }
        Err(e) => Err(e.into()),
    }
}

/// The new token waits in the session for the one page that shows it, so
/// reloading that page neither shows it again nor makes another.
const SESSION_NEW_TOKEN: &str = "new_token";

pub async fn create_token(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let input = f.input::<TokenInput>(&[("name", Kind::Text), ("scope", Kind::Text)]);
    let t = match input {
        Ok(input) => tokens::create(&state, &me.user, input).await,
        Err(e) => Err(e),
    };
    let t = match t {
        Ok(t) => t,
        Err(e @ ServiceError::Invalid { .. }) => {
            flash(&session, "error", e.to_string());
            return Ok(redirect("/account"));
        }
        Err(e) => return Err(e.into()),
    };
    session.insert(SESSION_NEW_TOKEN, &t.token).map_err(|e| ServiceError::Internal(e.to_string()))?;
    Ok(redirect("/account"))
}

pub async fn revoke_token(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    _f: Form,
) -> Page {
    let id: ApiTokenId = path.parse().map_err(|_| ServiceError::NotFound("token"))?;
    tokens::revoke(&state, &me.user, id).await?;
    flash(&session, "ok", "Token revoked.");
    Ok(redirect("/account"))
}

/// Ends every session of the user, this one too.
pub async fn logout_all(state: web::Data<AppState>, me: PageUser, session: Session, _f: Form) -> Page {
    crate::service::session::logout_all(&state, &me.user).await?;
    session.purge();
    Ok(redirect("/login"))
}
