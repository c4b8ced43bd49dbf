//! Users (admin): register, change role, deactivate, reset a password.

use actix_session::Session;
use actix_web::web;
use maud::html;

use crate::auth::login_session;
use crate::domain::UserId;
use crate::service::users::{self as svc, UserInput, MANAGE};
use crate::service::ServiceError;
use crate::state::AppState;
use crate::web::auth::{flash, PageUser};
use crate::web::form::{Form, Kind};
use crate::web::layout::page;
use crate::web::view::{done, form_error, input, outcome, post_button, redirect, select, when, Outcome};
use crate::web::Page;

const FIELDS: &[(&str, Kind)] = &[
    ("username", Kind::Text),
    ("full_name", Kind::Text),
    ("password", Kind::Secret),
    ("role", Kind::Text),
    ("active", Kind::Flag),
];

fn roles() -> Vec<(String, String)> {
    ["viewer", "operator", "admin"].iter().map(|r| (r.to_string(), r.to_string())).collect()
}

async fn render(state: &AppState, me: &PageUser, values: &dyn Fn(&str) -> String, err: Option<&ServiceError>) -> Page {
    let users = svc::list(state, &me.user).await?;
    let fields: Vec<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    let body = html! {
        h1 { "Users" }
        div.table-wrap { table {
            thead { tr { th { "Username" } th { "Name" } th { "Role" } th { "Active" } th { "Since" } th { "Change" } } }
            tbody { @for u in &users { tr {
                td { (u.username) }
                td { (u.full_name) }
                td { (u.role) }
                td { @if u.active { span.badge.ok { "active" } } @else { span.badge.muted { "deactivated" } } }
                td { (when(u.created_at)) }
                td {
                    form.filters method="post" action={ "/users/" (u.id) } {
                        input type="hidden" name="csrf" value=(me.csrf);
                        select name="role" { @for (r, _) in roles() { option value=(r) selected[r == u.role.as_str()] { (r) } } }
                        select name="active" { option value="true" selected[u.active] { "active" } option value="false" selected[!u.active] { "deactivated" } }
                        input type="password" name="password" placeholder="new password (optional)" autocomplete="new-password";
                        button.secondary type="submit" { "Save" }
                    }
                    (post_button(&format!("/users/{}/logout-all", u.id), "Log out everywhere", &me.csrf, "secondary", Some("End every session of this user, on every device?")))
                }
            } } }
        } }
        div.panel {
            h2 { "Register user" }
            @if let Some(e) = form_error(err, &fields) { div.flash.error role="alert" { (e) } }
            form.stack method="post" action="/users" {
                input type="hidden" name="csrf" value=(me.csrf);
                div.two {
                    (input("Username", "username", "text", &values("username"), None, err))
                    (input("Full name", "full_name", "text", &values("full_name"), None, err))
                }
                div.two {
                    (input("Password", "password", "password", "", Some("at least 8 characters"), err))
                    (select("Role", "role", &roles(), &values("role"), err))
                }
                div.actions { button type="submit" { "Register user" } }
            }
        }
    };
    let mut resp = page(me, "/users", "Users", body);
    if err.is_some() {
        *resp.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(resp)
}

pub async fn list(state: web::Data<AppState>, me: PageUser) -> Page {
    crate::service::require(&me.user, MANAGE)?;
    render(&state, &me, &|n| if n == "role" { "operator".into() } else { String::new() }, None).await
}

pub async fn create(state: web::Data<AppState>, me: PageUser, session: Session, f: Form) -> Page {
    let result = async { svc::create(&state, &me.user, f.input::<UserInput>(FIELDS)?).await }.await;
    match outcome(result)? {
        Outcome::Done(u) => done(&session, format!("User {} registered.", u.username), "/users"),
        Outcome::Again(e) => render(&state, &me, &f.values(), Some(&e)).await,
    }
}

pub async fn update(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    f: Form,
) -> Page {
    let uid: UserId = path.parse().map_err(|_| ServiceError::NotFound("user"))?;
    let result = async { svc::update(&state, &me.user, uid, f.input::<UserInput>(FIELDS)?).await }.await;
    match result {
        Ok(u) => {
            // A new password ends the user's sessions; not this one, if it is theirs.
            login_session::carry_on(&state, &session, &u).await.map_err(ServiceError::Internal)?;
            flash(&session, "ok", format!("User {} saved.", u.username))
        }
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::Conflict(_))) => flash(&session, "error", e.to_string()),
        Err(e) => return Err(e.into()),
    }
    Ok(redirect("/users"))
}

/// Ends every session of the user, on every device.
pub async fn logout_all(
    state: web::Data<AppState>,
    me: PageUser,
    session: Session,
    path: web::Path<String>,
    _f: Form,
) -> Page {
    let uid: UserId = path.parse().map_err(|_| ServiceError::NotFound("user"))?;
    let u = svc::logout_all(&state, &me.user, uid).await?;
    flash(&session, "ok", format!("Every session of {} ended.", u.username));
    Ok(redirect("/users"))
}
