//! The page shell: head, navigation, the flash message, the body.

use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

use super::auth::PageUser;
use crate::domain::Role;

/// Navigation entries: (path, label, role needed).
const NAV: &[(&str, &str, Role)] = &[
    ("/", "Dashboard", Role::Viewer),
    ("/hypervisors", "Hypervisors", Role::Viewer),
    ("/pairs", "Pairs", Role::Viewer),
    ("/plans", "Plans", Role::Viewer),
    ("/tasks", "Tasks", Role::Viewer),
    ("/schedules", "Schedules", Role::Viewer),
    ("/archives", "Archives", Role::Viewer),
    ("/alerts", "Alerts", Role::Viewer),
    ("/users", "Users", Role::Admin),
    ("/settings", "Settings", Role::Admin),
    ("/audit", "Audit", Role::Admin),
    ("/account", "Account", Role::Viewer),
];

pub fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // htmx must not add inline styles (the CSP forbids them) or eval.
            meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false}"#;
            title { (title) " · drswitch" }
            link rel="stylesheet" href="/static/style.css";
            // No favicon request: the tab shows the title.
            link rel="icon" href="data:,";
            script src="/static/htmx.min.js" defer {}
            script src="/static/app.js" defer {}
        }
    }
}

/// A full page for a logged-in user; `active` is the navigation entry.
pub fn page(me: &PageUser, active: &str, title: &str, body: Markup) -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header.top {
                    a.brand href="/" { "drswitch" }
                    nav {
                        @for (path, label, role) in NAV {
                            @if me.user.role.allows(*role) {
                                a href=(path) class=[(active == *path).then_some("active")] { (label) }
                            }
                        }
                    }
                    div.who {
                        span { (me.user.username) " · " (me.user.role) }
                        form method="post" action="/logout" {
                            input type="hidden" name="csrf" value=(me.csrf);
                            button.secondary type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    @if let Some((kind, text)) = &me.flash {
                        div class={ "flash " (kind) } role="status" { (text) }
                    }
                    (body)
                }
            }
        }
    };
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(markup.into_string())
}
