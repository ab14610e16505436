#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod binary;
mod chunking;
mod error;
mod json;
mod model;
mod protect;
mod serializer;

pub use chunking::{
    ChunkSizeTooSmall, ChunkingCookieManager, CookieOptions, DEFAULT_CHUNK_SIZE,
    IncompleteChunkedCookie, RequestCookies, SameSite,
};
pub use error::{FormatError, TokenError, UnprotectError};
pub use model::{
    AuthenticationProperties, AuthenticationTicket, Claim, ClaimsIdentity, DEFAULT_ISSUER,
    DEFAULT_NAME_CLAIM_TYPE, DEFAULT_ROLE_CLAIM_TYPE, EXPIRES_KEY, ISSUED_KEY, PERSISTENT_KEY,
    REDIRECT_KEY, REFRESH_KEY, STRING_VALUE_TYPE, format_rfc1123, parse_rfc1123,
};
pub use protect::{
    COOKIE_AUTHENTICATION_PURPOSE, COOKIE_FORMAT_VERSION_PURPOSE, DEFAULT_TOKEN_LIFESPAN,
    IdentityToken, IdentityTokenProvider, OPENID_CONNECT_HANDLER_PURPOSE, PropertiesDataFormat,
    STATE_FORMAT_VERSION_PURPOSE, TOKEN_PROVIDER_PURPOSE, TicketDataFormat, cookie_purposes,
};
pub use serializer::{
    MAX_ACTOR_DEPTH, PROPERTIES_FORMAT_VERSION, TICKET_FORMAT_VERSION, deserialize_properties,
    deserialize_ticket, serialize_properties, serialize_ticket,
};

/// `CookieAuthenticationDefaults.AuthenticationScheme`.
pub const DEFAULT_COOKIE_SCHEME: &str = "Cookies";
/// `CookieAuthenticationDefaults.CookiePrefix`: the cookie name is this plus the scheme.
pub const COOKIE_PREFIX: &str = ".AspNetCore.";
/// `OpenIdConnectDefaults.AuthenticationScheme`.
pub const DEFAULT_OPENID_CONNECT_SCHEME: &str = "OpenIdConnect";

/// The cookie handler's default cookie name for `scheme`: `.AspNetCore.<scheme>`.
///
/// ```
/// assert_eq!(dataprotection_aspnetcore::cookie_name("Identity.Application"), ".AspNetCore.Identity.Application");
/// ```
pub fn cookie_name(scheme: &str) -> String {
    format!("{COOKIE_PREFIX}{scheme}")
}
