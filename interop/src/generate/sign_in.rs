//! The sign-in values of the fixtures: tickets, an OpenID Connect state,
//! Identity tokens, and how a cookie travels in a request.

use dataprotection_aspnetcore::{
    AuthenticationProperties, AuthenticationTicket, ChunkingCookieManager, Claim, ClaimsIdentity,
    CookieOptions, DEFAULT_COOKIE_SCHEME, cookie_name,
};
use time::{Duration, OffsetDateTime};

use crate::manifest::{Case, CaseKind, Expect, RequestCookie};

/// A case with the fields every sign-in case shares; the caller fills in
/// kind, purposes and what the value holds.
pub(super) fn case(name: String, value: String) -> Case {
    Case {
        name,
        ring: String::new(),
        kind: CaseKind::Cookie,
        purposes: Vec::new(),
        value,
        expect: Expect::Ok,
        error: None,
        key_id: None,
        plaintext_hex: None,
        expires_utc: None,
        scheme: None,
        ticket: None,
        cookies: None,
        properties: None,
        token: None,
        description: None,
    }
}

/// `(label, user id, token purpose, security stamp)`.
pub(super) const IDENTITY_TOKENS: [(&str, &str, &str, &str); 3] = [
    (
        "reset-password",
        "8d3f1b2e-4c5a-4e6f-9a7b-0c1d2e3f4a5b",
        "ResetPassword",
        "Q2N4ZJ7X3VYQ5LKM6ZB2OTR4HWAU3JCA",
    ),
    (
        "confirm-email",
        "42",
        "EmailConfirmation",
        "7HGRXQXJ2ZK5WQ4PL3NBF6VY8TCMD9EA",
    ),
    (
        "non-ascii-user",
        "zoë@例え.jp",
        "ChangeEmail:zoë@example.org",
        "",
    ),
];

fn sign_in_properties(issued: OffsetDateTime) -> AuthenticationProperties {
    let mut properties = AuthenticationProperties::new();
    properties.set_issued(Some(issued));
    properties.set_expires(Some(issued + Duration::days(14)));
    properties
}

/// `(label, ticket, description)`: the tickets of the cookie cases.
pub(super) fn tickets(
    issued: OffsetDateTime,
) -> Vec<(&'static str, AuthenticationTicket, &'static str)> {
    let mut minimal = AuthenticationTicket::new(
        ClaimsIdentity::new(DEFAULT_COOKIE_SCHEME).with_name("alice"),
        DEFAULT_COOKIE_SCHEME,
    );
    minimal.properties = sign_in_properties(issued);

    let mut roles = AuthenticationTicket::new(
        ClaimsIdentity::new(DEFAULT_COOKIE_SCHEME)
            .with_name("bob")
            .with_role("Admin")
            .with_role("Auditor")
            .with_claim("department", "Engineering")
            .with_claim(
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                "bob@example.org",
            ),
        DEFAULT_COOKIE_SCHEME,
    );
    roles.properties = sign_in_properties(issued);
    roles.properties.set_persistent(true);
    roles
        .properties
        .set_redirect_uri(Some("/account/settings?tab=security"));
    roles.properties.set_allow_refresh(Some(true));

    let mut custom = ClaimsIdentity::new("AuthenticationTypes.Federation");
    custom.name_claim_type = "name".into();
    custom.role_claim_type = "roles".into();
    custom.claims.push(Claim::new("name", "Zoë Ünïcødé ✓"));
    custom.claims.push(Claim::new("roles", "Reader"));
    custom.claims.push(Claim {
        value_type: "http://www.w3.org/2001/XMLSchema#integer".into(),
        issuer: "https://login.example.org/tenant/v2.0".into(),
        original_issuer: "https://upstream.example.net".into(),
        properties: vec![
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claimproperties/ShortTypeName"
                    .into(),
                "age".into(),
            ),
            ("source".into(), "id_token".into()),
        ],
        ..Claim::new("age", "42")
    });
    custom.bootstrap_context = Some("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ6b2UifQ.".into());
    custom.actor = Some(Box::new(
        ClaimsIdentity::new("Delegation").with_name("service-account"),
    ));
    let mut federated = AuthenticationTicket::new(custom, "Identity.Application");
    federated.properties = sign_in_properties(issued);
    federated
        .properties
        .set("custom.item", "value with ; and = and ,");

    let mut two = AuthenticationTicket::new(
        ClaimsIdentity::new(DEFAULT_COOKIE_SCHEME).with_name("carol"),
        DEFAULT_COOKIE_SCHEME,
    );
    two.identities
        .push(ClaimsIdentity::new("").with_claim("scope", "read write"));
    two.properties = sign_in_properties(issued);

    let mut large = ClaimsIdentity::new(DEFAULT_COOKIE_SCHEME).with_name("erin");
    for i in 0..150 {
        large = large.with_claim(
            "group",
            format!("group-{i:03}-a-long-group-name-to-fill-cookies"),
        );
    }
    let mut chunked = AuthenticationTicket::new(large, DEFAULT_COOKIE_SCHEME);
    chunked.properties = sign_in_properties(issued);

    vec![
        ("minimal", minimal, "one name claim, default claim types"),
        (
            "roles",
            roles,
            "roles, custom claims; persistent, with a redirect and AllowRefresh",
        ),
        (
            "federated",
            federated,
            "scheme Identity.Application: custom name/role claim types, a typed claim with issuers and properties, a bootstrap context and an actor, non-ASCII values",
        ),
        (
            "two-identities",
            two,
            "two identities, the second unauthenticated",
        ),
        (
            "chunked",
            chunked,
            "too large for one cookie: split by ChunkingCookieManager (chunk size 4050, default cookie options); cookies are the request cookies, value the reassembled value",
        ),
    ]
}

/// The request cookies a browser sends back for `value` under `scheme`:
/// one cookie, or the `chunks-N` cookie and its chunks.
pub(super) fn request_cookies(
    scheme: &str,
    value: &str,
) -> Result<Vec<RequestCookie>, dataprotection::Error> {
    let headers = ChunkingCookieManager::default()
        .append_response_cookie(&cookie_name(scheme), value, &CookieOptions::default())
        .map_err(|e| dataprotection::Error::InvalidArgument(e.to_string()))?;
    Ok(headers
        .iter()
        .filter_map(|header| {
            let pair = header.split(';').next()?;
            let (name, value) = pair.split_once('=')?;
            Some(RequestCookie {
                name: name.trim().to_string(),
                value: value.trim().to_string(),
            })
        })
        .collect())
}

/// The properties of an OpenID Connect challenge's `state`.
pub(super) fn oidc_state_properties() -> AuthenticationProperties {
    AuthenticationProperties::from_items([
        (".redirect", "/after-login"),
        (
            "OpenIdConnect.Code.RedirectUri",
            "https://app.example.com/signin-oidc",
        ),
        (".xsrf", "Vh5d1J3q2bD0eA8mZ4kP7rS6tU9wX1yC"),
    ])
}
