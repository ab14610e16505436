//! The JSON form of tickets and properties, exactly the `ticket` objects of
//! the interop vectors:
//! `{"scheme", "identities": [{"authenticationType", "nameClaimType",
//! "roleClaimType", "claims": [{"type", "value", "valueType", "issuer",
//! "originalIssuer", "properties": {}}], "bootstrapContext", "actor"}],
//! "properties": {}}`. Dictionaries keep their order (it is part of the bytes).
//! When reading, omitted claim-level and identity-level fields take the .NET
//! defaults; unknown fields are an error.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{
    AuthenticationProperties, AuthenticationTicket, Claim, ClaimsIdentity, DEFAULT_ISSUER,
    DEFAULT_NAME_CLAIM_TYPE, DEFAULT_ROLE_CLAIM_TYPE, STRING_VALUE_TYPE,
};

/// An ordered string dictionary with unique keys.
struct OrderedMap(Vec<(String, String)>);

impl Serialize for OrderedMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for OrderedMap {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<OrderedMap, A::Error> {
                let mut items: Vec<(String, String)> = Vec::new();
                while let Some((k, v)) = access.next_entry::<String, String>()? {
                    if items.iter().any(|(key, _)| *key == k) {
                        return Err(de::Error::custom(format_args!("duplicate key {k:?}")));
                    }
                    items.push((k, v));
                }
                Ok(OrderedMap(items))
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClaimJson {
    #[serde(rename = "type")]
    claim_type: Option<String>,
    value: String,
    #[serde(default)]
    value_type: Option<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    original_issuer: Option<String>,
    #[serde(default)]
    properties: Option<OrderedMap>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IdentityJson {
    #[serde(default)]
    authentication_type: Option<String>,
    #[serde(default)]
    name_claim_type: Option<String>,
    #[serde(default)]
    role_claim_type: Option<String>,
    #[serde(default)]
    claims: Vec<ClaimJson>,
    #[serde(default)]
    bootstrap_context: Option<String>,
    #[serde(default)]
    actor: Option<Box<IdentityJson>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TicketJson {
    scheme: String,
    identities: Vec<IdentityJson>,
    #[serde(default)]
    properties: Option<OrderedMap>,
}

fn identity_to_json(identity: &ClaimsIdentity) -> IdentityJson {
    IdentityJson {
        authentication_type: Some(identity.authentication_type.clone()),
        name_claim_type: Some(identity.name_claim_type.clone()),
        role_claim_type: Some(identity.role_claim_type.clone()),
        claims: identity
            .claims
            .iter()
            .map(|c| ClaimJson {
                claim_type: Some(c.claim_type.clone()),
                value: c.value.clone(),
                value_type: Some(c.value_type.clone()),
                issuer: Some(c.issuer.clone()),
                original_issuer: Some(c.original_issuer.clone()),
                properties: Some(OrderedMap(c.properties.clone())),
            })
            .collect(),
        bootstrap_context: identity.bootstrap_context.clone(),
        actor: identity
            .actor
            .as_deref()
            .map(|a| Box::new(identity_to_json(a))),
    }
}

fn identity_from_json(json: IdentityJson) -> ClaimsIdentity {
    let name_claim_type = json
        .name_claim_type
        .unwrap_or_else(|| DEFAULT_NAME_CLAIM_TYPE.to_owned());
    let claims = json
        .claims
        .into_iter()
        .map(|c| {
            let issuer = c.issuer.unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
            Claim {
                claim_type: c.claim_type.unwrap_or_else(|| name_claim_type.clone()),
                value: c.value,
                value_type: c.value_type.unwrap_or_else(|| STRING_VALUE_TYPE.to_owned()),
                original_issuer: c.original_issuer.unwrap_or_else(|| issuer.clone()),
                issuer,
                properties: c.properties.map(|p| p.0).unwrap_or_default(),
            }
        })
        .collect();
    ClaimsIdentity {
        authentication_type: json.authentication_type.unwrap_or_default(),
        role_claim_type: json
            .role_claim_type
            .unwrap_or_else(|| DEFAULT_ROLE_CLAIM_TYPE.to_owned()),
        name_claim_type,
        claims,
        bootstrap_context: json.bootstrap_context,
        actor: json.actor.map(|a| Box::new(identity_from_json(*a))),
    }
}

impl Serialize for AuthenticationTicket {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TicketJson {
            scheme: self.scheme.clone(),
            identities: self.identities.iter().map(identity_to_json).collect(),
            properties: Some(OrderedMap(self.properties.items().to_vec())),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AuthenticationTicket {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let json = TicketJson::deserialize(deserializer)?;
        Ok(AuthenticationTicket {
            scheme: json.scheme,
            identities: json
                .identities
                .into_iter()
                .map(identity_from_json)
                .collect(),
            properties: AuthenticationProperties::from_items(
                json.properties.map(|p| p.0).unwrap_or_default(),
            ),
        })
    }
}

impl Serialize for ClaimsIdentity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        identity_to_json(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ClaimsIdentity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        IdentityJson::deserialize(deserializer).map(identity_from_json)
    }
}

impl Serialize for AuthenticationProperties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        OrderedMap(self.items().to_vec()).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AuthenticationProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        OrderedMap::deserialize(deserializer).map(|m| AuthenticationProperties::from_items(m.0))
    }
}

impl AuthenticationTicket {
    /// The ticket as JSON (the shape of the interop vectors), pretty-printed.
    pub fn to_json(&self) -> String {
        // Serializing strings and maps of strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads the JSON form.
    ///
    /// ```
    /// let ticket = dataprotection_aspnetcore::AuthenticationTicket::from_json(
    ///     r#"{"scheme": "Cookies", "identities": [{"authenticationType": "Cookies",
    ///         "claims": [{"value": "alice"}]}], "properties": {".persistent": ""}}"#,
    /// )?;
    /// assert_eq!(ticket.name(), Some("alice"));
    /// assert!(ticket.properties.is_persistent());
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    ///
    /// # Errors
    /// Not JSON, or not the ticket shape (unknown fields included).
    pub fn from_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }
}
