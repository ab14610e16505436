//! Protected formats: ASP.NET Core's `TicketDataFormat` and
//! `PropertiesDataFormat` (`SecureDataFormat<T>`: serialize, protect,
//! Base64Url), and Identity's `DataProtectorTokenProvider` tokens.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use dataprotection::payload::{decode_text, encode_text};
use dataprotection::{DataProtectionProvider, DataProtector};
use time::{Duration, OffsetDateTime};

use crate::binary::{BinaryReader, BinaryWriter, Utf8Mode};
use crate::error::{FormatError, TokenError, UnprotectError};
use crate::model::{AuthenticationProperties, AuthenticationTicket};
use crate::serializer::{
    deserialize_properties, deserialize_ticket, serialize_properties, serialize_ticket,
};

/// The first purpose of the cookie authentication handler's protector.
pub const COOKIE_AUTHENTICATION_PURPOSE: &str =
    "Microsoft.AspNetCore.Authentication.Cookies.CookieAuthenticationMiddleware";
/// The last purpose of the cookie authentication handler's protector.
pub const COOKIE_FORMAT_VERSION_PURPOSE: &str = "v2";
/// The OpenID Connect handler's type name: the first purpose of its state protector.
pub const OPENID_CONNECT_HANDLER_PURPOSE: &str =
    "Microsoft.AspNetCore.Authentication.OpenIdConnect.OpenIdConnectHandler";
/// The last purpose of remote handlers' state protectors.
pub const STATE_FORMAT_VERSION_PURPOSE: &str = "v1";
/// `DataProtectionTokenProviderOptions.Name`: Identity's token purpose.
pub const TOKEN_PROVIDER_PURPOSE: &str = "DataProtectorTokenProvider";
/// `DataProtectionTokenProviderOptions.TokenLifespan` default: one day.
pub const DEFAULT_TOKEN_LIFESPAN: Duration = Duration::days(1);

/// The authentication ticket in a sign-in cookie: ASP.NET Core's
/// `TicketDataFormat` under the cookie handler's purposes.
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use dataprotection::{DataProtectionProvider, repository::InMemoryXmlRepository};
/// use dataprotection_aspnetcore::{AuthenticationTicket, ClaimsIdentity, TicketDataFormat};
/// let provider = DataProtectionProvider::builder()
///     .application_name("my-app")
///     .repository(Arc::new(InMemoryXmlRepository::new()))
///     .build()
///     .await?;
/// let format = TicketDataFormat::for_cookie_scheme(&provider, "Cookies");
/// let ticket = AuthenticationTicket::new(ClaimsIdentity::new("Cookies").with_name("alice"), "Cookies");
/// let cookie_value = format.protect(&ticket)?;
/// assert_eq!(format.unprotect(&cookie_value)?.name(), Some("alice"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct TicketDataFormat {
    protector: DataProtector,
}

impl fmt::Debug for TicketDataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TicketDataFormat")
            .field("purposes", &self.protector.purposes())
            .finish()
    }
}

/// The purposes of the cookie handler for `scheme`, after the application
/// name: `[COOKIE_AUTHENTICATION_PURPOSE, scheme, "v2"]`.
pub fn cookie_purposes(scheme: &str) -> [&str; 3] {
    [
        COOKIE_AUTHENTICATION_PURPOSE,
        scheme,
        COOKIE_FORMAT_VERSION_PURPOSE,
    ]
}

fn unprotect_text(protector: &DataProtector, text: &str) -> Result<Vec<u8>, UnprotectError> {
    let result = decode_text(text).and_then(|bytes| protector.unprotect(&bytes));
    result.map_err(|e| {
        tracing::debug!(error = %e, purposes = ?protector.purposes(), "rejected a protected value");
        UnprotectError::Protection(e)
    })
}

async fn unprotect_text_async(
    protector: &DataProtector,
    text: &str,
) -> Result<Vec<u8>, UnprotectError> {
    let result = match decode_text(text) {
        Ok(bytes) => protector.unprotect_async(&bytes).await,
        Err(e) => Err(e),
    };
    result.map_err(|e| {
        tracing::debug!(error = %e, purposes = ?protector.purposes(), "rejected a protected value");
        UnprotectError::Protection(e)
    })
}

/// `provider.CreateProtector(purposes...)`: the application name first.
fn purposes_after_application_name(
    provider: &DataProtectionProvider,
    purposes: &[&str],
) -> DataProtector {
    let mut protector = provider.create_protector(purposes[0]);
    for purpose in &purposes[1..] {
        protector = protector.create_protector(*purpose);
    }
    protector
}

fn protection(e: dataprotection::Error) -> UnprotectError {
    UnprotectError::Protection(e)
}

impl TicketDataFormat {
    /// The format of the cookie handler for `scheme` (its protector is
    /// `provider` + [`cookie_purposes`]`(scheme)`).
    pub fn for_cookie_scheme(provider: &DataProtectionProvider, scheme: &str) -> Self {
        Self::new(purposes_after_application_name(
            provider,
            &cookie_purposes(scheme),
        ))
    }

    /// A ticket format over any protector.
    pub fn new(protector: DataProtector) -> Self {
        TicketDataFormat { protector }
    }

    /// The protector.
    pub fn protector(&self) -> &DataProtector {
        &self.protector
    }

    /// Serializes (`TicketSerializer` v5), protects and Base64Url-encodes.
    ///
    /// # Errors
    /// No usable default key, or a ticket too large for the format.
    pub fn protect(&self, ticket: &AuthenticationTicket) -> Result<String, UnprotectError> {
        let bytes = serialize_ticket(ticket)?;
        self.protector
            .protect(&bytes)
            .map(|p| encode_text(&p))
            .map_err(protection)
    }

    /// Decodes, unprotects and deserializes, from the key ring already
    /// loaded (see [`DataProtector::unprotect`]).
    ///
    /// # Errors
    /// [`UnprotectError::Protection`] if the value is not authentic for these
    /// purposes, [`UnprotectError::Format`] if its content is not a ticket.
    pub fn unprotect(&self, text: &str) -> Result<AuthenticationTicket, UnprotectError> {
        Ok(deserialize_ticket(&unprotect_text(&self.protector, text)?)?)
    }

    /// As [`TicketDataFormat::unprotect`], waiting for a key ring refresh or a
    /// key decryption when needed (see [`DataProtector::unprotect_async`]).
    ///
    /// # Errors
    /// As [`TicketDataFormat::unprotect`].
    pub async fn unprotect_async(
        &self,
        text: &str,
    ) -> Result<AuthenticationTicket, UnprotectError> {
        Ok(deserialize_ticket(
            &unprotect_text_async(&self.protector, text).await?,
        )?)
    }
}

/// Protected `AuthenticationProperties`: ASP.NET Core's
/// `PropertiesDataFormat`, e.g. the OpenID Connect `state` parameter.
#[derive(Clone)]
pub struct PropertiesDataFormat {
    protector: DataProtector,
}

impl fmt::Debug for PropertiesDataFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropertiesDataFormat")
            .field("purposes", &self.protector.purposes())
            .finish()
    }
}

impl PropertiesDataFormat {
    /// The state format of a remote authentication handler: purposes
    /// `[handler_type_name, scheme, "v1"]` after the application name.
    pub fn for_handler(
        provider: &DataProtectionProvider,
        handler_type_name: &str,
        scheme: &str,
    ) -> Self {
        Self::new(purposes_after_application_name(
            provider,
            &[handler_type_name, scheme, STATE_FORMAT_VERSION_PURPOSE],
        ))
    }

    /// The OpenID Connect handler's `state` format for `scheme` (default
    /// scheme name `OpenIdConnect`).
    pub fn openid_connect_state(provider: &DataProtectionProvider, scheme: &str) -> Self {
        Self::for_handler(provider, OPENID_CONNECT_HANDLER_PURPOSE, scheme)
    }

    /// A properties format over any protector.
    pub fn new(protector: DataProtector) -> Self {
        PropertiesDataFormat { protector }
    }

    /// Serializes (`PropertiesSerializer` v1), protects and Base64Url-encodes.
    ///
    /// # Errors
    /// No usable default key, or properties too large for the format.
    pub fn protect(&self, properties: &AuthenticationProperties) -> Result<String, UnprotectError> {
        let bytes = serialize_properties(properties)?;
        self.protector
            .protect(&bytes)
            .map(|p| encode_text(&p))
            .map_err(protection)
    }

    /// Decodes, unprotects and deserializes.
    ///
    /// # Errors
    /// As [`TicketDataFormat::unprotect`].
    pub fn unprotect(&self, text: &str) -> Result<AuthenticationProperties, UnprotectError> {
        Ok(deserialize_properties(&unprotect_text(
            &self.protector,
            text,
        )?)?)
    }
}

/// What an Identity token carries.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityToken {
    /// When it was generated (UTC, 100 ns precision).
    pub created: OffsetDateTime,
    /// The user id.
    pub user_id: String,
    /// The token purpose, e.g. `ResetPassword`, `EmailConfirmation`, `ChangeEmail:new@example.com`.
    pub purpose: String,
    /// The user's security stamp when it was generated (empty when the store has none).
    pub security_stamp: String,
}

impl fmt::Debug for IdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The security stamp is a secret of the user: never shown.
        f.debug_struct("IdentityToken")
            .field("created", &self.created)
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// 100-nanosecond ticks from 0001-01-01 to the Unix epoch.
const UNIX_EPOCH_TICKS: i128 = 621_355_968_000_000_000;
/// `DateTimeOffset.MaxValue.UtcTicks`.
const MAX_TICKS: i64 = 3_155_378_975_999_999_999;

fn to_ticks(t: OffsetDateTime) -> Result<i64, FormatError> {
    let ticks = t.unix_timestamp_nanos() / 100 + UNIX_EPOCH_TICKS;
    i64::try_from(ticks)
        .ok()
        .filter(|t| (0..=MAX_TICKS).contains(t))
        .ok_or(FormatError::DateOutOfRange {
            what: "the token creation time",
        })
}

fn from_ticks(ticks: i64) -> Result<OffsetDateTime, FormatError> {
    let out_of_range = FormatError::DateOutOfRange {
        what: "the token creation time",
    };
    if !(0..=MAX_TICKS).contains(&ticks) {
        return Err(out_of_range);
    }
    OffsetDateTime::from_unix_timestamp_nanos((i128::from(ticks) - UNIX_EPOCH_TICKS) * 100)
        .map_err(|_| out_of_range)
}

impl IdentityToken {
    /// The plaintext: `Int64` UTC ticks, then user id, purpose and security
    /// stamp as .NET `BinaryWriter` strings.
    ///
    /// # Errors
    /// A creation time outside .NET's range, or strings too large.
    pub fn to_bytes(&self) -> Result<Vec<u8>, FormatError> {
        let mut w = BinaryWriter::default();
        w.write_i64(to_ticks(self.created)?);
        w.write_string(&self.user_id, "the user id")?;
        w.write_string(&self.purpose, "the token purpose")?;
        w.write_string(&self.security_stamp, "the security stamp")?;
        Ok(w.out)
    }

    /// Reads the plaintext as the provider does (strict UTF-8, nothing after
    /// the security stamp).
    ///
    /// # Errors
    /// A [`FormatError`] naming what is wrong.
    pub fn from_bytes(data: &[u8]) -> Result<Self, FormatError> {
        let mut r = BinaryReader::new(data, Utf8Mode::Strict);
        let created = from_ticks(r.read_i64("the token creation time")?)?;
        let user_id = r.read_string("the user id")?;
        let purpose = r.read_string("the token purpose")?;
        let security_stamp = r.read_string("the security stamp")?;
        if r.remaining() != 0 {
            return Err(FormatError::TrailingData {
                what: "the security stamp",
            });
        }
        Ok(IdentityToken {
            created,
            user_id,
            purpose,
            security_stamp,
        })
    }
}

/// ASP.NET Core Identity's `DataProtectorTokenProvider`: password-reset,
/// email-confirmation and change-email tokens (standard Base64).
///
/// ```
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use dataprotection::{DataProtectionProvider, repository::InMemoryXmlRepository};
/// use dataprotection_aspnetcore::{IdentityTokenProvider, TokenError};
/// let provider = DataProtectionProvider::builder()
///     .application_name("my-app")
///     .repository(Arc::new(InMemoryXmlRepository::new()))
///     .build()
///     .await?;
/// let tokens = IdentityTokenProvider::new(&provider);
/// let now = time::OffsetDateTime::now_utc();
/// let token = tokens.generate("user-42", "ResetPassword", "STAMP", now)?;
/// tokens.validate(&token, "user-42", "ResetPassword", "STAMP", now)?;
/// assert!(matches!(
///     tokens.validate(&token, "user-42", "ResetPassword", "NEW-STAMP", now),
///     Err(TokenError::WrongSecurityStamp)
/// ));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IdentityTokenProvider {
    protector: DataProtector,
    lifespan: Duration,
}

impl fmt::Debug for IdentityTokenProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityTokenProvider")
            .field("purposes", &self.protector.purposes())
            .field("lifespan", &self.lifespan)
            .finish()
    }
}

impl IdentityTokenProvider {
    /// The default provider: purpose `DataProtectorTokenProvider` after the
    /// application name, lifespan one day.
    pub fn new(provider: &DataProtectionProvider) -> Self {
        Self::with_protector(provider.create_protector(TOKEN_PROVIDER_PURPOSE))
    }

    /// A provider over any protector (e.g. a custom `Name` option).
    pub fn with_protector(protector: DataProtector) -> Self {
        IdentityTokenProvider {
            protector,
            lifespan: DEFAULT_TOKEN_LIFESPAN,
        }
    }

    /// `TokenLifespan` (default one day).
    pub fn with_lifespan(mut self, lifespan: Duration) -> Self {
        self.lifespan = lifespan;
        self
    }

    /// Generates a token as `GenerateAsync` does at time `now`; pass an empty
    /// `security_stamp` when the user store has none.
    ///
    /// # Errors
    /// No usable default key; `now` outside .NET's date range.
    pub fn generate(
        &self,
        user_id: &str,
        purpose: &str,
        security_stamp: &str,
        now: OffsetDateTime,
    ) -> Result<String, TokenError> {
        let plaintext = IdentityToken {
            created: now,
            user_id: user_id.to_owned(),
            purpose: purpose.to_owned(),
            security_stamp: security_stamp.to_owned(),
        }
        .to_bytes()?;
        let protected = self
            .protector
            .protect(&plaintext)
            .map_err(TokenError::Protection)?;
        Ok(STANDARD.encode(protected))
    }

    /// Unprotects and reads a token without checking it against a user.
    ///
    /// # Errors
    /// [`TokenError::Protection`] or [`TokenError::Format`].
    pub fn read(&self, token: &str) -> Result<IdentityToken, TokenError> {
        // Convert.FromBase64String skips white space.
        let compact: String = token.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = STANDARD.decode(compact).map_err(|e| {
            tracing::debug!(error = %e, "identity token is not standard Base64");
            TokenError::Protection(dataprotection::Error::InvalidEncoding)
        })?;
        let plaintext = self.protector.unprotect(&bytes).map_err(|e| {
            tracing::debug!(error = %e, "identity token could not be unprotected");
            TokenError::Protection(e)
        })?;
        Ok(IdentityToken::from_bytes(&plaintext)?)
    }

    /// Validates a token as `ValidateAsync` does at time `now`: not expired
    /// (creation + lifespan is not before `now`), same user id, purpose and
    /// security stamp (empty when the store has none).
    ///
    /// # Errors
    /// The [`TokenError`] naming the first check that failed.
    pub fn validate(
        &self,
        token: &str,
        user_id: &str,
        purpose: &str,
        security_stamp: &str,
        now: OffsetDateTime,
    ) -> Result<IdentityToken, TokenError> {
        let read = self.read(token)?;
        // An overflow is an exception in .NET, which rejects the token.
        let expired_at =
            read.created
                .checked_add(self.lifespan)
                .ok_or(FormatError::DateOutOfRange {
                    what: "the token expiration time",
                })?;
        if expired_at < now {
            return Err(TokenError::Expired { expired_at });
        }
        if read.user_id != user_id {
            return Err(TokenError::WrongUser);
        }
        if read.purpose != purpose {
            return Err(TokenError::WrongPurpose);
        }
        // Not a secret comparison: the stamp is inside an authenticated payload.
        if read.security_stamp != security_stamp {
            return Err(TokenError::WrongSecurityStamp);
        }
        Ok(read)
    }
}
