//! The HTML pages: plain, readable, and telling a person what happened.
//! They take a description of the session, not a cookie, so they do not
//! depend on how the session cookie is written.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::MAX_USER_LEN;

/// The signed-in user, as the page shows them.
#[derive(Clone, Debug)]
pub struct SessionView {
    /// The user name.
    pub user: String,
    /// Claim type and value, in order.
    pub claims: Vec<(String, String)>,
    /// The key that protected the session cookie (from its header).
    pub key_id: Option<Uuid>,
}

/// What the page says about the key ring.
#[derive(Clone, Debug)]
pub struct RingView {
    /// Where it is stored (never a secret).
    pub location: String,
    /// When this instance last read it.
    pub loaded_at: OffsetDateTime,
    /// When it will read it again.
    pub next_refresh: OffsetDateTime,
    /// The key new cookies are protected with.
    pub default_key: Option<Uuid>,
    /// How many keys it holds.
    pub keys: usize,
}

/// Everything a page shows.
#[derive(Clone, Debug)]
pub struct PageView<'a> {
    /// The slot that served the page.
    pub slot: &'a str,
    /// The application name every slot shares.
    pub app_name: &'a str,
    /// The signed-in user, if any.
    pub session: Option<SessionView>,
    /// The key ring, if it is loaded.
    pub ring: Option<RingView>,
}

fn date(value: OffsetDateTime) -> String {
    value.format(&Rfc3339).unwrap_or_else(|_| value.to_string())
}

/// The home page.
pub fn home(view: &PageView<'_>) -> String {
    let mut body = String::new();
    match &view.session {
        Some(session) => {
            body.push_str(&format!(
                "<h1>Signed in as <span id=user>{}</span></h1>",
                escape_html(&session.user)
            ));
            body.push_str(&served_by(view));
            body.push_str(
                "<h2>Your claims</h2><table id=claims><tr><th>type</th><th>value</th></tr>",
            );
            for (claim_type, value) in &session.claims {
                body.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td></tr>",
                    escape_html(claim_type),
                    escape_html(value)
                ));
            }
            body.push_str("</table><h2>Your session cookie</h2>");
            body.push_str(&match session.key_id {
                Some(key) => {
                    let which = match view.ring.as_ref().and_then(|r| r.default_key) {
                        Some(default) if default == key => {
                            "the key ring's current default key".to_string()
                        }
                        Some(_) => "an older key that is still valid; new cookies use the \
                                    current default key"
                            .to_string(),
                        None => "a key of the shared key ring".to_string(),
                    };
                    format!(
                        "<p>It was protected with key <code id=cookie-key>{key}</code>, {which}. \
                         Any slot that reads the same key ring under the same application name \
                         can read it.</p>"
                    )
                }
                None => "<p>Its key could not be read from the cookie.</p>".to_string(),
            });
            body.push_str(
                "<form method=post action=/signout><button id=signout>Sign out</button></form>",
            );
        }
        None => {
            body.push_str("<h1>You are not signed in</h1>");
            body.push_str(&served_by(view));
            body.push_str(&format!(
                "<form method=post action=/signin><label>User name \
                 <input id=user-name name=user required maxlength={MAX_USER_LEN}></label> \
                 <button id=signin>Sign in</button></form>\
                 <p>Signing in sets a session cookie protected with the shared key ring; \
                 the other slot accepts it too.</p>"
            ));
        }
    }
    body.push_str("<h2>Key ring</h2>");
    body.push_str(&match &view.ring {
        Some(ring) => format!(
            "<p>Stored in <code>{}</code>: {} key(s); the default key is <code id=default-key>{}</code>.</p>\
             <p>This instance last refreshed it at <time id=ring-refreshed>{}</time> and will \
             again at <time>{}</time> (or sooner, when a cookie names a key it has not seen).</p>",
            escape_html(&ring.location),
            ring.keys,
            ring.default_key
                .map_or("none".to_string(), |k| k.to_string()),
            date(ring.loaded_at),
            date(ring.next_refresh),
        ),
        None => "<p>The key ring is not loaded.</p>".to_string(),
    });
    body.push_str("<p>Machines: <a href=/me>/me</a> answers the same as JSON.</p>");
    page(&body)
}

fn served_by(view: &PageView<'_>) -> String {
    format!(
        "<p>This page was served by the <b id=slot>{}</b> slot of the application \
         <code>{}</code>.</p>",
        escape_html(view.slot),
        escape_html(view.app_name)
    )
}

fn page(body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>App Service slots</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.5}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}}\
         code{{font-size:.9em}}</style></head><body>{body}</body></html>"
    )
}

/// Escapes text for HTML element content and quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            escape_html("<b a=\"1\">&'"),
            "&lt;b a=&quot;1&quot;&gt;&amp;&#39;"
        );
    }

    fn ring(default: Uuid) -> RingView {
        RingView {
            location: "directory /tmp/keys".into(),
            loaded_at: OffsetDateTime::UNIX_EPOCH,
            next_refresh: OffsetDateTime::UNIX_EPOCH,
            default_key: Some(default),
            keys: 2,
        }
    }

    #[test]
    fn signed_in_page_names_user_claims_slot_key_and_refresh() {
        let default = Uuid::from_u128(1);
        let older = Uuid::from_u128(2);
        let view = PageView {
            slot: "staging",
            app_name: "shop",
            session: Some(SessionView {
                user: "<alice>".into(),
                claims: vec![("name".into(), "<alice>".into())],
                key_id: Some(older),
            }),
            ring: Some(ring(default)),
        };
        let html = home(&view);
        assert!(
            html.contains("Signed in as <span id=user>&lt;alice&gt;</span>"),
            "{html}"
        );
        assert!(html.contains("<b id=slot>staging</b>"), "{html}");
        assert!(
            html.contains("<td>name</td><td>&lt;alice&gt;</td>"),
            "{html}"
        );
        assert!(
            html.contains(&format!("<code id=cookie-key>{older}</code>, an older key")),
            "{html}"
        );
        assert!(html.contains("1970-01-01T00:00:00Z"), "{html}");
        assert!(!html.contains("<alice>"), "{html}");

        let mut view = view;
        view.session.as_mut().unwrap().key_id = Some(default);
        assert!(home(&view).contains("current default key"));
        view.session = None;
        let html = home(&view);
        assert!(html.contains("You are not signed in"), "{html}");
        assert!(html.contains("action=/signin"), "{html}");
        assert!(!html.contains("id=signout"), "{html}");
    }
}
