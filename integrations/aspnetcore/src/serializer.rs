//! `TicketSerializer` (format version 5) and `PropertiesSerializer`
//! (format version 1), byte for byte as ASP.NET Core writes and reads them.

use crate::binary::{BinaryReader, BinaryWriter, Utf8Mode};
use crate::error::FormatError;
use crate::model::{
    AuthenticationProperties, AuthenticationTicket, Claim, ClaimsIdentity, DEFAULT_ISSUER,
    DEFAULT_NAME_CLAIM_TYPE, DEFAULT_ROLE_CLAIM_TYPE, STRING_VALUE_TYPE,
};

/// The version `TicketSerializer` writes and accepts.
pub const TICKET_FORMAT_VERSION: i32 = 5;
/// The version `PropertiesSerializer` writes and accepts.
pub const PROPERTIES_FORMAT_VERSION: i32 = 1;
/// How deep actor identities may nest when reading. .NET recurses without a
/// limit (until its stack overflows); real delegation chains are one or two
/// deep.
pub const MAX_ACTOR_DEPTH: usize = 32;

/// Stands for a default value (`"\0"`): the identity's name claim type for a
/// claim type, the default name/role claim types, `ClaimValueTypes.String`,
/// `LOCAL AUTHORITY`, and the issuer for the original issuer.
const DEFAULT_PLACEHOLDER: &str = "\0";

/// Serializes a ticket exactly as `TicketSerializer.Default.Serialize`.
///
/// ```
/// use dataprotection_aspnetcore::{AuthenticationTicket, ClaimsIdentity, serialize_ticket, deserialize_ticket};
/// let ticket = AuthenticationTicket::new(ClaimsIdentity::new("Cookies").with_name("alice"), "Cookies");
/// let bytes = serialize_ticket(&ticket)?;
/// assert_eq!(&bytes[..4], &5i32.to_le_bytes());
/// assert_eq!(deserialize_ticket(&bytes)?, ticket);
/// # Ok::<(), dataprotection_aspnetcore::FormatError>(())
/// ```
///
/// # Errors
/// [`FormatError::TooLarge`] for a string or collection beyond .NET's 2 GiB limits.
pub fn serialize_ticket(ticket: &AuthenticationTicket) -> Result<Vec<u8>, FormatError> {
    let mut w = BinaryWriter::default();
    w.write_i32(TICKET_FORMAT_VERSION);
    w.write_string(&ticket.scheme, "the scheme")?;
    w.write_count(ticket.identities.len(), "identities")?;
    for identity in &ticket.identities {
        write_identity(&mut w, identity)?;
    }
    write_properties(&mut w, &ticket.properties)?;
    Ok(w.out)
}

/// Serializes properties exactly as `PropertiesSerializer.Default.Serialize`.
///
/// # Errors
/// [`FormatError::TooLarge`] for a string or collection beyond .NET's 2 GiB limits.
pub fn serialize_properties(properties: &AuthenticationProperties) -> Result<Vec<u8>, FormatError> {
    let mut w = BinaryWriter::default();
    write_properties(&mut w, properties)?;
    Ok(w.out)
}

fn write_with_default(
    w: &mut BinaryWriter,
    value: &str,
    default: &str,
    what: &'static str,
) -> Result<(), FormatError> {
    w.write_string(
        if value == default {
            DEFAULT_PLACEHOLDER
        } else {
            value
        },
        what,
    )
}

fn write_identity(w: &mut BinaryWriter, identity: &ClaimsIdentity) -> Result<(), FormatError> {
    w.write_string(&identity.authentication_type, "an authentication type")?;
    write_with_default(
        w,
        &identity.name_claim_type,
        DEFAULT_NAME_CLAIM_TYPE,
        "a name claim type",
    )?;
    write_with_default(
        w,
        &identity.role_claim_type,
        DEFAULT_ROLE_CLAIM_TYPE,
        "a role claim type",
    )?;
    w.write_count(identity.claims.len(), "claims")?;
    for claim in &identity.claims {
        write_with_default(
            w,
            &claim.claim_type,
            &identity.name_claim_type,
            "a claim type",
        )?;
        w.write_string(&claim.value, "a claim value")?;
        write_with_default(
            w,
            &claim.value_type,
            STRING_VALUE_TYPE,
            "a claim value type",
        )?;
        write_with_default(w, &claim.issuer, DEFAULT_ISSUER, "a claim issuer")?;
        write_with_default(
            w,
            &claim.original_issuer,
            &claim.issuer,
            "a claim original issuer",
        )?;
        w.write_count(claim.properties.len(), "claim properties")?;
        for (key, value) in &claim.properties {
            w.write_string(key, "a claim property key")?;
            w.write_string(value, "a claim property value")?;
        }
    }
    // Only a non-empty string bootstrap context is written.
    match identity.bootstrap_context.as_deref() {
        Some(bootstrap) if !bootstrap.is_empty() => {
            w.write_bool(true);
            w.write_string(bootstrap, "a bootstrap context")?;
        }
        _ => w.write_bool(false),
    }
    match &identity.actor {
        Some(actor) => {
            w.write_bool(true);
            write_identity(w, actor)?;
        }
        None => w.write_bool(false),
    }
    Ok(())
}

fn write_properties(
    w: &mut BinaryWriter,
    properties: &AuthenticationProperties,
) -> Result<(), FormatError> {
    w.write_i32(PROPERTIES_FORMAT_VERSION);
    w.write_count(properties.items().len(), "properties")?;
    for (key, value) in properties.items() {
        w.write_string(key, "a property key")?;
        w.write_string(value, "a property value")?;
    }
    Ok(())
}

/// Reads a ticket as `TicketSerializer.Default.Deserialize` does: invalid
/// UTF-8 becomes U+FFFD, data after the ticket is ignored, and a properties
/// section with another version yields empty properties (all as .NET).
/// Counts are never trusted for allocation; actor chains deeper than
/// [`MAX_ACTOR_DEPTH`] are rejected.
///
/// # Errors
/// A [`FormatError`] naming what is wrong, wherever .NET's reader returns
/// `null` or throws.
pub fn deserialize_ticket(data: &[u8]) -> Result<AuthenticationTicket, FormatError> {
    let mut r = BinaryReader::new(data, Utf8Mode::Replace);
    let version = r.read_i32("the ticket format version")?;
    if version != TICKET_FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion {
            what: "ticket",
            found: version,
            expected: TICKET_FORMAT_VERSION,
        });
    }
    let scheme = r.read_string("the scheme")?;
    let count = r.read_count("identities")?;
    let mut identities = Vec::new();
    for _ in 0..count {
        identities.push(read_identity(&mut r, 0)?);
    }
    let properties = read_properties(&mut r)?.unwrap_or_default();
    Ok(AuthenticationTicket {
        scheme,
        identities,
        properties,
    })
}

/// Reads properties as `PropertiesSerializer.Default.Deserialize` does.
///
/// # Errors
/// A [`FormatError`]; another format version is [`FormatError::UnsupportedVersion`]
/// (.NET returns `null`), a repeated key [`FormatError::DuplicateKey`].
pub fn deserialize_properties(data: &[u8]) -> Result<AuthenticationProperties, FormatError> {
    let mut r = BinaryReader::new(data, Utf8Mode::Replace);
    read_properties(&mut r)?.ok_or(FormatError::UnsupportedVersion {
        what: "properties",
        found: i32::from_le_bytes(
            data.get(..4)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        ),
        expected: PROPERTIES_FORMAT_VERSION,
    })
}

fn read_with_default(
    r: &mut BinaryReader<'_>,
    default: &str,
    what: &'static str,
) -> Result<String, FormatError> {
    let value = r.read_string(what)?;
    Ok(if value == DEFAULT_PLACEHOLDER {
        default.to_owned()
    } else {
        value
    })
}

fn read_identity(r: &mut BinaryReader<'_>, depth: usize) -> Result<ClaimsIdentity, FormatError> {
    let authentication_type = r.read_string("an authentication type")?;
    let name_claim_type = read_with_default(r, DEFAULT_NAME_CLAIM_TYPE, "a name claim type")?;
    let role_claim_type = read_with_default(r, DEFAULT_ROLE_CLAIM_TYPE, "a role claim type")?;
    // .NET loops `index != count`: a negative count reads until the data
    // ends, which is a failure either way.
    let count = r.read_count("claims")?;
    let mut claims = Vec::new();
    for _ in 0..count {
        let claim_type = read_with_default(r, &name_claim_type, "a claim type")?;
        let value = r.read_string("a claim value")?;
        let value_type = read_with_default(r, STRING_VALUE_TYPE, "a claim value type")?;
        let issuer = read_with_default(r, DEFAULT_ISSUER, "a claim issuer")?;
        let original_issuer = read_with_default(r, &issuer, "a claim original issuer")?;
        let property_count = r.read_count("claim properties")?;
        let mut properties: Vec<(String, String)> = Vec::new();
        for _ in 0..property_count {
            let key = r.read_string("a claim property key")?;
            let value = r.read_string("a claim property value")?;
            if properties.iter().any(|(k, _)| *k == key) {
                return Err(FormatError::DuplicateKey {
                    what: "claim properties",
                });
            }
            properties.push((key, value));
        }
        claims.push(Claim {
            claim_type,
            value,
            value_type,
            issuer,
            original_issuer,
            properties,
        });
    }
    let bootstrap_context = if r.read_bool("the bootstrap context flag")? {
        Some(r.read_string("a bootstrap context")?)
    } else {
        None
    };
    let actor = if r.read_bool("the actor flag")? {
        if depth >= MAX_ACTOR_DEPTH {
            return Err(FormatError::ActorTooDeep {
                max: MAX_ACTOR_DEPTH,
            });
        }
        Some(Box::new(read_identity(r, depth + 1)?))
    } else {
        None
    };
    Ok(ClaimsIdentity {
        authentication_type,
        name_claim_type,
        role_claim_type,
        claims,
        bootstrap_context,
        actor,
    })
}

/// `None` when the version is not 1 (.NET's `Read` returns `null`).
fn read_properties(
    r: &mut BinaryReader<'_>,
) -> Result<Option<AuthenticationProperties>, FormatError> {
    if r.read_i32("the properties format version")? != PROPERTIES_FORMAT_VERSION {
        return Ok(None);
    }
    let count = r.read_count("properties")?;
    let mut properties = AuthenticationProperties::new();
    for _ in 0..count {
        let key = r.read_string("a property key")?;
        let value = r.read_string("a property value")?;
        if !properties.push_unique(key, value) {
            return Err(FormatError::DuplicateKey { what: "properties" });
        }
    }
    Ok(Some(properties))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> AuthenticationTicket {
        let mut ticket =
            AuthenticationTicket::new(ClaimsIdentity::new("Cookies").with_name("a"), "Cookies");
        ticket.properties.set("k", "v");
        ticket
    }

    #[test]
    fn truncation_anywhere_is_an_error() {
        let bytes = serialize_ticket(&ticket()).unwrap();
        for len in 0..bytes.len() {
            assert!(
                deserialize_ticket(&bytes[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
        // Trailing data is ignored, as by .NET.
        let mut longer = bytes.clone();
        longer.push(0xff);
        assert_eq!(deserialize_ticket(&longer).unwrap(), ticket());
    }

    #[test]
    fn other_properties_version_yields_empty_properties_in_a_ticket() {
        let mut bytes = serialize_ticket(&ticket()).unwrap();
        let at = bytes.len() - (4 + 4 + 2 + 2);
        bytes[at] = 2;
        let read = deserialize_ticket(&bytes).unwrap();
        assert!(read.properties.is_empty());
        let props = serialize_properties(&ticket().properties).unwrap();
        let mut other = props.clone();
        other[0] = 2;
        assert!(matches!(
            deserialize_properties(&other),
            Err(FormatError::UnsupportedVersion { found: 2, .. })
        ));
    }

    #[test]
    fn hostile_counts_and_duplicates_fail_without_allocating() {
        let mut w = BinaryWriter::default();
        w.write_i32(5);
        w.write_string("s", "").unwrap();
        w.write_i32(i32::MAX);
        assert!(matches!(
            deserialize_ticket(&w.out),
            Err(FormatError::UnexpectedEnd { .. })
        ));
        let mut w = BinaryWriter::default();
        w.write_i32(5);
        w.write_string("s", "").unwrap();
        w.write_i32(-1);
        assert!(matches!(
            deserialize_ticket(&w.out),
            Err(FormatError::NegativeCount { .. })
        ));
        let mut w = BinaryWriter::default();
        w.write_i32(1);
        w.write_i32(2);
        for _ in 0..2 {
            w.write_string("k", "").unwrap();
            w.write_string("v", "").unwrap();
        }
        assert!(matches!(
            deserialize_properties(&w.out),
            Err(FormatError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn actor_chains_are_bounded() {
        let mut identity = ClaimsIdentity::new("x");
        for _ in 0..MAX_ACTOR_DEPTH {
            let mut outer = ClaimsIdentity::new("x");
            outer.actor = Some(Box::new(identity));
            identity = outer;
        }
        let ok = AuthenticationTicket::new(identity.clone(), "s");
        assert_eq!(
            deserialize_ticket(&serialize_ticket(&ok).unwrap()).unwrap(),
            ok
        );
        let mut outer = ClaimsIdentity::new("x");
        outer.actor = Some(Box::new(identity));
        let deep = AuthenticationTicket::new(outer, "s");
        assert!(matches!(
            deserialize_ticket(&serialize_ticket(&deep).unwrap()),
            Err(FormatError::ActorTooDeep { .. })
        ));
    }

    #[test]
    fn defaults_are_written_as_the_placeholder() {
        let mut identity = ClaimsIdentity::new("Cookies");
        identity.name_claim_type = "name".into();
        identity.claims.push(Claim::new("name", "bob"));
        let bytes = serialize_ticket(&AuthenticationTicket::new(identity, "Cookies")).unwrap();
        // scheme, auth type, "name", role placeholder, count, then the claim
        // type as the placeholder because it equals the name claim type.
        let claim_start = 4 + 8 + 8 + 5 + 2 + 4;
        assert_eq!(&bytes[claim_start..claim_start + 2], &[1, 0]);
    }
}
