//! The authentication model: tickets, identities, claims and properties, as
//! ASP.NET Core's `System.Security.Claims` and `AuthenticationProperties`.

use std::fmt;

use time::{Month, OffsetDateTime, UtcOffset, Weekday};

/// `ClaimsIdentity.DefaultNameClaimType`.
pub const DEFAULT_NAME_CLAIM_TYPE: &str =
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
/// `ClaimsIdentity.DefaultRoleClaimType`.
pub const DEFAULT_ROLE_CLAIM_TYPE: &str =
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
/// `ClaimsIdentity.DefaultIssuer`.
pub const DEFAULT_ISSUER: &str = "LOCAL AUTHORITY";
/// `ClaimValueTypes.String`, the default value type.
pub const STRING_VALUE_TYPE: &str = "http://www.w3.org/2001/XMLSchema#string";

/// `AuthenticationProperties` item: when the ticket was issued.
pub const ISSUED_KEY: &str = ".issued";
/// `AuthenticationProperties` item: when the ticket expires.
pub const EXPIRES_KEY: &str = ".expires";
/// `AuthenticationProperties` item: present (empty) when the sign-in is persistent.
pub const PERSISTENT_KEY: &str = ".persistent";
/// `AuthenticationProperties` item: where to go after the sign-in.
pub const REDIRECT_KEY: &str = ".redirect";
/// `AuthenticationProperties` item behind `AllowRefresh` (.NET's `RefreshKey`
/// is `".refresh"`).
pub const REFRESH_KEY: &str = ".refresh";

/// A claim: `System.Security.Claims.Claim`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Claim {
    /// The claim type (a URI or short name).
    pub claim_type: String,
    /// The value.
    pub value: String,
    /// The value type (default [`STRING_VALUE_TYPE`]).
    pub value_type: String,
    /// Who issued it (default [`DEFAULT_ISSUER`]).
    pub issuer: String,
    /// Who originally issued it (default: the issuer).
    pub original_issuer: String,
    /// Extra properties, in order; keys are unique.
    pub properties: Vec<(String, String)>,
}

impl Claim {
    /// A string claim issued by `LOCAL AUTHORITY`, as `new Claim(type, value)`.
    pub fn new(claim_type: impl Into<String>, value: impl Into<String>) -> Self {
        Claim {
            claim_type: claim_type.into(),
            value: value.into(),
            value_type: STRING_VALUE_TYPE.to_owned(),
            issuer: DEFAULT_ISSUER.to_owned(),
            original_issuer: DEFAULT_ISSUER.to_owned(),
            properties: Vec::new(),
        }
    }
}

/// An identity: `System.Security.Claims.ClaimsIdentity`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ClaimsIdentity {
    /// How the user authenticated (the scheme name for cookie sign-ins);
    /// empty means not authenticated.
    pub authentication_type: String,
    /// The claim type that holds the name (default [`DEFAULT_NAME_CLAIM_TYPE`]).
    pub name_claim_type: String,
    /// The claim type that holds roles (default [`DEFAULT_ROLE_CLAIM_TYPE`]).
    pub role_claim_type: String,
    /// The claims, in order.
    pub claims: Vec<Claim>,
    /// The bootstrap context, when it is a string (the only kind serialized).
    pub bootstrap_context: Option<String>,
    /// The identity acting on behalf of this one (delegation).
    pub actor: Option<Box<ClaimsIdentity>>,
}

impl ClaimsIdentity {
    /// An identity authenticated by `authentication_type` with the default
    /// name and role claim types and no claims.
    pub fn new(authentication_type: impl Into<String>) -> Self {
        ClaimsIdentity {
            authentication_type: authentication_type.into(),
            name_claim_type: DEFAULT_NAME_CLAIM_TYPE.to_owned(),
            role_claim_type: DEFAULT_ROLE_CLAIM_TYPE.to_owned(),
            claims: Vec::new(),
            bootstrap_context: None,
            actor: None,
        }
    }

    /// Adds a string claim of `claim_type` (builder style).
    pub fn with_claim(mut self, claim_type: impl Into<String>, value: impl Into<String>) -> Self {
        self.claims.push(Claim::new(claim_type, value));
        self
    }

    /// Adds a name claim (of the identity's name claim type).
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let claim_type = self.name_claim_type.clone();
        self.with_claim(claim_type, name)
    }

    /// Adds a role claim (of the identity's role claim type).
    pub fn with_role(self, role: impl Into<String>) -> Self {
        let claim_type = self.role_claim_type.clone();
        self.with_claim(claim_type, role)
    }

    /// `IsAuthenticated`: the authentication type is not empty.
    pub fn is_authenticated(&self) -> bool {
        !self.authentication_type.is_empty()
    }

    /// The first claim of `claim_type` (compared ignoring ASCII case, as
    /// .NET's `FindFirst` does).
    pub fn find_first(&self, claim_type: &str) -> Option<&Claim> {
        self.claims
            .iter()
            .find(|c| c.claim_type.eq_ignore_ascii_case(claim_type))
    }

    /// `Name`: the value of the first claim of the name claim type.
    pub fn name(&self) -> Option<&str> {
        self.find_first(&self.name_claim_type)
            .map(|c| c.value.as_str())
    }

    /// The values of the role claims.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.claims
            .iter()
            .filter(|c| c.claim_type.eq_ignore_ascii_case(&self.role_claim_type))
            .map(|c| c.value.as_str())
    }

    /// `IsInRole`: a role claim has exactly this value.
    pub fn is_in_role(&self, role: &str) -> bool {
        self.roles().any(|r| r == role)
    }
}

/// State about a sign-in: `AuthenticationProperties.Items`, in order, with
/// typed accessors for the well-known items.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct AuthenticationProperties {
    items: Vec<(String, String)>,
}

impl AuthenticationProperties {
    /// No items.
    pub fn new() -> Self {
        Self::default()
    }

    /// Properties with these items; a later duplicate key replaces the earlier value.
    pub fn from_items<K: Into<String>, V: Into<String>>(
        items: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut properties = Self::new();
        for (k, v) in items {
            properties.set(k, v);
        }
        properties
    }

    /// The items in order (the order they are serialized in).
    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The raw item `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Sets the raw item `key` (replacing in place, or appending, as a .NET
    /// `Dictionary` does when nothing was removed).
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.items.iter_mut().find(|(k, _)| *k == key) {
            Some(item) => item.1 = value,
            None => self.items.push((key, value)),
        }
    }

    /// Removes the raw item `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let index = self.items.iter().position(|(k, _)| k == key)?;
        Some(self.items.remove(index).1)
    }

    /// Adds an item that must not exist yet (what the .NET reader does).
    pub(crate) fn push_unique(&mut self, key: String, value: String) -> bool {
        if self.get(&key).is_some() {
            return false;
        }
        self.items.push((key, value));
        true
    }

    fn date(&self, key: &str) -> Option<OffsetDateTime> {
        self.get(key).and_then(parse_rfc1123)
    }

    fn set_date(&mut self, key: &str, value: Option<OffsetDateTime>) {
        match value {
            Some(v) => self.set(key, format_rfc1123(v)),
            None => {
                self.remove(key);
            }
        }
    }

    /// `.issued` (`IssuedUtc`), parsed from the RFC 1123 ("r") format.
    pub fn issued(&self) -> Option<OffsetDateTime> {
        self.date(ISSUED_KEY)
    }

    /// Sets or removes `.issued` (to whole seconds, as the "r" format keeps).
    pub fn set_issued(&mut self, value: Option<OffsetDateTime>) {
        self.set_date(ISSUED_KEY, value);
    }

    /// `.expires` (`ExpiresUtc`), parsed from the RFC 1123 ("r") format.
    pub fn expires(&self) -> Option<OffsetDateTime> {
        self.date(EXPIRES_KEY)
    }

    /// Sets or removes `.expires`.
    pub fn set_expires(&mut self, value: Option<OffsetDateTime>) {
        self.set_date(EXPIRES_KEY, value);
    }

    /// `.persistent` (`IsPersistent`): the item is present.
    pub fn is_persistent(&self) -> bool {
        self.get(PERSISTENT_KEY).is_some()
    }

    /// Sets (`""`) or removes `.persistent`.
    pub fn set_persistent(&mut self, persistent: bool) {
        if persistent {
            self.set(PERSISTENT_KEY, "");
        } else {
            self.remove(PERSISTENT_KEY);
        }
    }

    /// `.redirect` (`RedirectUri`).
    pub fn redirect_uri(&self) -> Option<&str> {
        self.get(REDIRECT_KEY)
    }

    /// Sets or removes `.redirect`.
    pub fn set_redirect_uri(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.set(REDIRECT_KEY, v),
            None => {
                self.remove(REDIRECT_KEY);
            }
        }
    }

    /// `AllowRefresh`: the item `.refresh` parsed as a .NET boolean
    /// (`True`/`False`, any case, surrounding white space allowed).
    pub fn allow_refresh(&self) -> Option<bool> {
        let value = self.get(REFRESH_KEY)?.trim();
        if value.eq_ignore_ascii_case("true") {
            Some(true)
        } else if value.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }

    /// Sets (`True`/`False`) or removes `.refresh`.
    pub fn set_allow_refresh(&mut self, value: Option<bool>) {
        match value {
            Some(true) => self.set(REFRESH_KEY, "True"),
            Some(false) => self.set(REFRESH_KEY, "False"),
            None => {
                self.remove(REFRESH_KEY);
            }
        }
    }
}

/// A signed-in principal with its scheme and properties:
/// `AuthenticationTicket`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuthenticationTicket {
    /// The authentication scheme (e.g. `Cookies`, `Identity.Application`).
    pub scheme: String,
    /// The principal's identities; the first is the primary identity.
    pub identities: Vec<ClaimsIdentity>,
    /// The sign-in's properties.
    pub properties: AuthenticationProperties,
}

impl AuthenticationTicket {
    /// A ticket for one identity under `scheme`, without properties.
    pub fn new(identity: ClaimsIdentity, scheme: impl Into<String>) -> Self {
        AuthenticationTicket {
            scheme: scheme.into(),
            identities: vec![identity],
            properties: AuthenticationProperties::new(),
        }
    }

    /// The primary identity (`ClaimsPrincipal.Identity`): the first one.
    pub fn identity(&self) -> Option<&ClaimsIdentity> {
        self.identities.first()
    }

    /// The primary identity's name.
    pub fn name(&self) -> Option<&str> {
        self.identity().and_then(ClaimsIdentity::name)
    }

    /// Whether the primary identity is authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.identity()
            .is_some_and(ClaimsIdentity::is_authenticated)
    }

    /// `ClaimsPrincipal.IsInRole`: any identity has the role.
    pub fn is_in_role(&self, role: &str) -> bool {
        self.identities.iter().any(|i| i.is_in_role(role))
    }

    /// The roles of all identities.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.identities.iter().flat_map(ClaimsIdentity::roles)
    }

    /// `ClaimsPrincipal.FindFirst`: the first claim of `claim_type` in any identity.
    pub fn find_first(&self, claim_type: &str) -> Option<&Claim> {
        self.identities
            .iter()
            .find_map(|i| i.find_first(claim_type))
    }

    /// All claims of all identities.
    pub fn claims(&self) -> impl Iterator<Item = &Claim> {
        self.identities.iter().flat_map(|i| i.claims.iter())
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats as .NET's "r" format: `Mon, 30 Nov 2026 08:00:00 GMT` (UTC,
/// whole seconds).
pub fn format_rfc1123(value: OffsetDateTime) -> String {
    struct R(OffsetDateTime);
    impl fmt::Display for R {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let v = self.0;
            write!(
                f,
                "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
                DAYS[v.weekday().number_days_from_monday() as usize],
                v.day(),
                MONTHS[usize::from(u8::from(v.month())) - 1],
                v.year(),
                v.hour(),
                v.minute(),
                v.second()
            )
        }
    }
    R(value.to_offset(UtcOffset::UTC)).to_string()
}

/// Parses .NET's "r" format as `DateTimeOffset.TryParseExact(value, "r", ...)`
/// does: names in any case, the day of the week must match the date.
pub fn parse_rfc1123(value: &str) -> Option<OffsetDateTime> {
    let b = value.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || b[7] != b' ' || b[11] != b' ' || b[16] != b' ' {
        return None;
    }
    if b[19] != b':' || b[22] != b':' || b[25] != b' ' || &b[26..] != b"GMT" {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let s = value.get(range)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let day_name = value.get(0..3)?;
    let month_name = value.get(8..11)?;
    let weekday = DAYS.iter().position(|d| d.eq_ignore_ascii_case(day_name))?;
    let month = MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(month_name))?;
    let month = Month::try_from(u8::try_from(month + 1).ok()?).ok()?;
    let year = i32::try_from(num(12..16)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(num(5..7)?).ok()?).ok()?;
    let time = time::Time::from_hms(
        u8::try_from(num(17..19)?).ok()?,
        u8::try_from(num(20..22)?).ok()?,
        u8::try_from(num(23..25)?).ok()?,
    )
    .ok()?;
    let weekdays = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];
    if date.weekday() != weekdays[weekday] {
        return None;
    }
    Some(OffsetDateTime::new_utc(date, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1123_round_trips_and_checks_the_weekday() {
        let s = "Mon, 30 Nov 2026 08:00:00 GMT";
        let t = parse_rfc1123(s).unwrap();
        assert_eq!(format_rfc1123(t), s);
        assert_eq!(parse_rfc1123("mon, 30 nov 2026 08:00:00 GMT"), Some(t));
        assert_eq!(parse_rfc1123("Tue, 30 Nov 2026 08:00:00 GMT"), None);
        assert_eq!(parse_rfc1123("Mon, 30 Nov 2026 08:00:00 UTC"), None);
        assert_eq!(parse_rfc1123("Mon, 31 Nov 2026 08:00:00 GMT"), None);
        assert_eq!(parse_rfc1123("Mon, 30 Nov 2026 24:00:00 GMT"), None);
        assert_eq!(parse_rfc1123("Mon, +0 Nov 2026 08:00:00 GMT"), None);
        assert_eq!(parse_rfc1123("Mon, 30 Nov 2026 08:00:00 GMTé"), None);
    }

    #[test]
    fn typed_accessors_use_the_dotnet_items() {
        let mut p = AuthenticationProperties::new();
        p.set_persistent(true);
        p.set_allow_refresh(Some(false));
        p.set_redirect_uri(Some("/home"));
        assert_eq!(
            p.items(),
            [
                (".persistent".to_owned(), String::new()),
                (".refresh".to_owned(), "False".to_owned()),
                (".redirect".to_owned(), "/home".to_owned())
            ]
        );
        assert!(p.is_persistent());
        assert_eq!(p.allow_refresh(), Some(false));
        p.set(".refresh", " TRUE ");
        assert_eq!(p.allow_refresh(), Some(true));
        p.set_persistent(false);
        assert!(!p.is_persistent());
    }

    #[test]
    fn principal_helpers() {
        let identity = ClaimsIdentity::new("Cookies")
            .with_name("alice")
            .with_role("Admin")
            .with_role("Reader");
        let ticket = AuthenticationTicket::new(identity, "Cookies");
        assert_eq!(ticket.name(), Some("alice"));
        assert!(ticket.is_authenticated());
        assert!(ticket.is_in_role("Admin"));
        assert!(!ticket.is_in_role("admin"));
        assert_eq!(ticket.roles().collect::<Vec<_>>(), ["Admin", "Reader"]);
        assert_eq!(
            ticket
                .find_first(&DEFAULT_NAME_CLAIM_TYPE.to_uppercase())
                .map(|c| c.value.as_str()),
            Some("alice")
        );
        assert!(!ClaimsIdentity::new("").is_authenticated());
    }
}
