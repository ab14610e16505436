//! Property tests: random tickets and properties round-trip byte for byte,
//! through the binary format and through JSON; random bytes never panic the
//! readers.
#![allow(clippy::unwrap_used)]

use dataprotection_aspnetcore::{
    AuthenticationProperties, AuthenticationTicket, Claim, ClaimsIdentity, DEFAULT_ISSUER,
    DEFAULT_NAME_CLAIM_TYPE, DEFAULT_ROLE_CLAIM_TYPE, STRING_VALUE_TYPE, deserialize_properties,
    deserialize_ticket, serialize_properties, serialize_ticket,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const CASES: u64 = 500;

/// Strings that exercise the format: empty, NULs (but never the lone
/// placeholder "\0", which reads back as a default in .NET too), the
/// defaults, multi-byte UTF-8 and lengths around the 7-bit boundaries.
fn random_string(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0 => String::new(),
        1 => "\0\0".to_owned(),
        2 => DEFAULT_ISSUER.to_owned(),
        3 => STRING_VALUE_TYPE.to_owned(),
        4 => "é🔐日".repeat(rng.random_range(1..50)),
        5 => "x".repeat(rng.random_range(120..140)),
        6 => "y".repeat(rng.random_range(16_380..16_390)),
        _ => {
            let len = rng.random_range(0..20);
            (0..len)
                .map(|_| char::from_u32(rng.random_range(0x20..0x2_0000)).unwrap_or('?'))
                .collect()
        }
    }
}

fn random_map(rng: &mut StdRng, max: usize) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = Vec::new();
    for _ in 0..rng.random_range(0..=max) {
        let key = random_string(rng);
        if !items.iter().any(|(k, _)| *k == key) {
            items.push((key, random_string(rng)));
        }
    }
    items
}

fn pick<'a>(rng: &mut StdRng, default: &'a str, other: &'a str) -> String {
    if rng.random_bool(0.5) {
        default.to_owned()
    } else {
        other.to_owned()
    }
}

fn random_identity(rng: &mut StdRng, depth: usize) -> ClaimsIdentity {
    let name_claim_type = if rng.random_bool(0.5) {
        DEFAULT_NAME_CLAIM_TYPE.to_owned()
    } else {
        random_string(rng)
    };
    let claims = (0..rng.random_range(0..6))
        .map(|_| {
            let issuer = if rng.random_bool(0.5) {
                DEFAULT_ISSUER.to_owned()
            } else {
                random_string(rng)
            };
            Claim {
                claim_type: if rng.random_bool(0.3) {
                    name_claim_type.clone()
                } else {
                    random_string(rng)
                },
                value: random_string(rng),
                value_type: if rng.random_bool(0.5) {
                    STRING_VALUE_TYPE.to_owned()
                } else {
                    random_string(rng)
                },
                original_issuer: if rng.random_bool(0.5) {
                    issuer.clone()
                } else {
                    random_string(rng)
                },
                issuer,
                properties: random_map(rng, 3),
            }
        })
        .collect();
    ClaimsIdentity {
        authentication_type: random_string(rng),
        role_claim_type: pick(rng, DEFAULT_ROLE_CLAIM_TYPE, "role"),
        name_claim_type,
        claims,
        // An empty bootstrap context is not written, so it cannot round-trip.
        bootstrap_context: if rng.random_bool(0.3) {
            Some(format!("b{}", random_string(rng)))
        } else {
            None
        },
        actor: if depth < 3 && rng.random_bool(0.2) {
            Some(Box::new(random_identity(rng, depth + 1)))
        } else {
            None
        },
    }
}

fn random_ticket(rng: &mut StdRng) -> AuthenticationTicket {
    AuthenticationTicket {
        scheme: random_string(rng),
        identities: (0..rng.random_range(0..4))
            .map(|_| random_identity(rng, 0))
            .collect(),
        properties: AuthenticationProperties::from_items(random_map(rng, 5)),
    }
}

#[test]
fn random_tickets_round_trip_byte_for_byte() {
    for seed in 0..CASES {
        let mut rng = StdRng::seed_from_u64(seed);
        let ticket = random_ticket(&mut rng);
        let bytes = serialize_ticket(&ticket).unwrap();
        let read = deserialize_ticket(&bytes).unwrap();
        assert!(read == ticket, "seed {seed}");
        assert!(serialize_ticket(&read).unwrap() == bytes, "seed {seed}");
        // Through the JSON form used by `dpkeys cookie`.
        let json = read.to_json();
        let from_json = AuthenticationTicket::from_json(&json).unwrap();
        assert!(
            serialize_ticket(&from_json).unwrap() == bytes,
            "seed {seed}"
        );
    }
}

#[test]
fn random_properties_round_trip_byte_for_byte() {
    for seed in 0..CASES {
        let mut rng = StdRng::seed_from_u64(seed);
        let properties = AuthenticationProperties::from_items(random_map(&mut rng, 8));
        let bytes = serialize_properties(&properties).unwrap();
        let read = deserialize_properties(&bytes).unwrap();
        assert!(read == properties, "seed {seed}");
        assert!(serialize_properties(&read).unwrap() == bytes, "seed {seed}");
    }
}

#[test]
fn mutated_tickets_never_panic() {
    for seed in 0..CASES {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut bytes = serialize_ticket(&random_ticket(&mut rng)).unwrap();
        if bytes.is_empty() {
            continue;
        }
        for _ in 0..rng.random_range(1..8) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = rng.random();
        }
        let cut = rng.random_range(0..=bytes.len());
        // Either outcome is fine; the point is no panic and no huge allocation.
        let _ = deserialize_ticket(&bytes[..cut]);
        let _ = deserialize_properties(&bytes[..cut]);
    }
}
