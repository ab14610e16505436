//! Every case of `tests/vectors/aspnetcore_auth.json`.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{APP, modifier_and_iv, reader, vectors, writer};
use dataprotection::payload::decode_text;
use dataprotection_aspnetcore::{
    AuthenticationProperties, AuthenticationTicket, ChunkingCookieManager, CookieOptions,
    IdentityToken, IdentityTokenProvider, PropertiesDataFormat, RequestCookies, TicketDataFormat,
    TokenError, UnprotectError, cookie_name, cookie_purposes, deserialize_properties,
    deserialize_ticket, serialize_properties, serialize_ticket,
};
use serde_json::Value;
use time::Duration;

fn ticket_of(v: &Value) -> AuthenticationTicket {
    serde_json::from_value(v.clone()).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn tickets_serialize_to_the_exact_bytes_and_back() {
    let v = vectors();
    assert_eq!(v["constants"]["ticket_format_version"], 5);
    let tickets = v["tickets"].as_array().unwrap();
    assert_eq!(tickets.len(), 6);
    for case in tickets {
        let ticket = ticket_of(&case["ticket"]);
        let bytes = hex::decode(s(&case["serialized_hex"])).unwrap();
        assert_eq!(
            serialize_ticket(&ticket).unwrap(),
            bytes,
            "{}",
            case["description"]
        );
        assert_eq!(
            deserialize_ticket(&bytes).unwrap(),
            ticket,
            "{}",
            case["description"]
        );
        // The JSON form is exactly the vector's object.
        assert_eq!(serde_json::to_value(&ticket).unwrap(), case["ticket"]);
    }
}

#[tokio::test]
async fn cookies_decode_to_their_tickets_and_re_encode_identically() {
    let v = vectors();
    let provider = reader(APP).await;
    let cookies = v["cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), 6);
    for case in cookies {
        let scheme = s(&case["scheme"]);
        let purposes: Vec<&str> = case["purposes"].as_array().unwrap().iter().map(s).collect();
        assert_eq!(purposes[0], s(&case["application_name"]));
        assert_eq!(purposes[1..], cookie_purposes(scheme));
        assert_eq!(cookie_name(scheme), s(&case["cookie_name"]));
        let expected =
            ticket_of(&v["tickets"][case["ticket_index"].as_u64().unwrap() as usize]["ticket"]);
        let format = TicketDataFormat::for_cookie_scheme(&provider, scheme);
        let value = s(&case["cookie_value"]);
        assert_eq!(
            format.unprotect(value).unwrap(),
            expected,
            "{}",
            case["description"]
        );

        let mut random = hex::decode(s(&case["key_modifier_hex"])).unwrap();
        random.extend(hex::decode(s(&case["iv_hex"])).unwrap());
        let (writer, _dir) = writer(random).await;
        let again = TicketDataFormat::for_cookie_scheme(&writer, scheme)
            .protect(&expected)
            .unwrap();
        assert_eq!(again, value, "{}", case["description"]);
    }
}

#[tokio::test]
async fn cookies_fail_under_another_scheme_or_application() {
    let v = vectors();
    let case = &v["cookies"][0];
    let value = s(&case["cookie_value"]);
    let provider = reader(APP).await;
    let other_scheme = TicketDataFormat::for_cookie_scheme(&provider, "Other");
    assert!(matches!(
        other_scheme.unprotect(value),
        Err(UnprotectError::Protection(_))
    ));
    let other_app = TicketDataFormat::for_cookie_scheme(&reader("other-app").await, "Cookies");
    assert!(matches!(
        other_app.unprotect(value),
        Err(UnprotectError::Protection(_))
    ));
    let mut tampered = value.to_owned().into_bytes();
    let at = tampered.len() - 10;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let error = TicketDataFormat::for_cookie_scheme(&provider, "Cookies")
        .unprotect(&tampered)
        .unwrap_err();
    assert_eq!(error.class(), "decryption failure");
}

#[tokio::test]
async fn the_chunked_cookie_set_splits_reassembles_and_decodes() {
    let v = vectors();
    let case = &v["chunked_cookie"];
    let scheme = s(&case["scheme"]);
    let name = cookie_name(scheme);
    let options = CookieOptions::default();
    assert_eq!(
        options.set_cookie_header(&name, ""),
        s(&case["set_cookie_template"])
    );
    let manager = ChunkingCookieManager {
        chunk_size: Some(case["chunk_size"].as_u64().unwrap() as usize),
    };
    assert_eq!(manager, ChunkingCookieManager::default());
    let joined = s(&case["joined_value"]);
    let expected_cookies: Vec<(&str, &str)> = case["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (s(&c["name"]), s(&c["value"])))
        .collect();

    // Writing: the same names and values as .NET, in the same order.
    let headers = manager
        .append_response_cookie(&RequestCookies::default(), &name, joined, &options)
        .unwrap();
    let expected_headers: Vec<String> = expected_cookies
        .iter()
        .map(|(n, val)| options.set_cookie_header(n, val))
        .collect();
    assert_eq!(headers, expected_headers);

    // Reading: reassembled and decoded.
    let request = RequestCookies::from_pairs(expected_cookies.iter().copied());
    assert_eq!(
        manager.reassemble(&request, &name).unwrap().as_deref(),
        Some(joined)
    );
    let provider = reader(APP).await;
    let format = TicketDataFormat::for_cookie_scheme(&provider, scheme);
    let ticket = format.unprotect(joined).unwrap();
    assert_eq!(ticket, ticket_of(&case["ticket"]));
    assert_eq!(
        serialize_ticket(&ticket).unwrap(),
        hex::decode(s(&case["serialized_hex"])).unwrap()
    );

    // Re-encoding with the payload's key modifier and IV gives the same value.
    let (writer, _dir) = writer(modifier_and_iv(&decode_text(joined).unwrap())).await;
    assert_eq!(
        TicketDataFormat::for_cookie_scheme(&writer, scheme)
            .protect(&ticket)
            .unwrap(),
        joined
    );

    // Sign-out deletes the cookie and every chunk.
    let deleted = manager.delete_cookie(&request, &name, &options);
    assert_eq!(deleted.len(), expected_cookies.len());
    for ((n, _), header) in expected_cookies.iter().zip(&deleted) {
        assert!(header.starts_with(&format!("{n}=; expires=Thu, 01 Jan 1970 00:00:00 GMT")));
    }
}

#[tokio::test]
async fn the_partial_chunk_set_fails() {
    let v = vectors();
    let case = &v["chunked_cookie"];
    let name = cookie_name(s(&case["scheme"]));
    let partial: Vec<(&str, &str)> = case["partial"]["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (s(&c["name"]), s(&c["value"])))
        .collect();
    let request = RequestCookies::from_pairs(partial);
    let manager = ChunkingCookieManager::default();
    let literal = manager.get_request_cookie(&request, &name).unwrap();
    assert_eq!(literal, "chunks-5");
    let provider = reader(APP).await;
    let format = TicketDataFormat::for_cookie_scheme(&provider, s(&case["scheme"]));
    assert!(format.unprotect(&literal).is_err());
    let incomplete = manager.reassemble(&request, &name).unwrap_err();
    assert_eq!((incomplete.found, incomplete.expected), (4, 5));
}

#[tokio::test]
async fn the_openid_connect_state_round_trips() {
    let v = vectors();
    let case = &v["oidc_state"];
    let purposes: Vec<&str> = case["purposes"].as_array().unwrap().iter().map(s).collect();
    assert_eq!(purposes[0], APP);
    let expected: AuthenticationProperties =
        serde_json::from_value(case["properties"].clone()).unwrap();
    let bytes = hex::decode(s(&case["serialized_hex"])).unwrap();
    assert_eq!(serialize_properties(&expected).unwrap(), bytes);
    assert_eq!(deserialize_properties(&bytes).unwrap(), expected);
    assert_eq!(expected.redirect_uri(), Some("/after-login"));

    let provider = reader(APP).await;
    let format = PropertiesDataFormat::for_handler(&provider, purposes[1], purposes[2]);
    let state = s(&case["state_value"]);
    assert_eq!(format.unprotect(state).unwrap(), expected);
    assert_eq!(
        PropertiesDataFormat::openid_connect_state(&provider, purposes[2])
            .unprotect(state)
            .unwrap(),
        expected
    );
    let (writer, _dir) = writer(modifier_and_iv(&decode_text(state).unwrap())).await;
    let again = PropertiesDataFormat::openid_connect_state(&writer, purposes[2])
        .protect(&expected)
        .unwrap();
    assert_eq!(again, state);
}

#[tokio::test]
async fn identity_tokens_read_validate_and_regenerate() {
    let v = vectors();
    let cases = v["identity_tokens"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    let provider = reader(APP).await;
    let tokens = IdentityTokenProvider::new(&provider);
    for case in cases {
        let purposes: Vec<&str> = case["purposes"].as_array().unwrap().iter().map(s).collect();
        assert_eq!(purposes, [APP, "DataProtectorTokenProvider"]);
        let token = s(&case["token"]);
        let read = tokens.read(token).unwrap();
        let created = time::OffsetDateTime::parse(
            s(&case["created_utc"]),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let expected = IdentityToken {
            created,
            user_id: s(&case["user_id"]).to_owned(),
            purpose: s(&case["token_purpose"]).to_owned(),
            security_stamp: s(&case["security_stamp"]).to_owned(),
        };
        assert_eq!(read, expected);
        let plaintext = hex::decode(s(&case["plaintext_hex"])).unwrap();
        assert_eq!(expected.to_bytes().unwrap(), plaintext);
        assert_eq!(
            i64::from_le_bytes(plaintext[..8].try_into().unwrap()),
            case["created_utc_ticks"].as_i64().unwrap()
        );

        let (user, purpose, stamp) = (
            &expected.user_id,
            &expected.purpose,
            &expected.security_stamp,
        );
        let validate = |u: &str, p: &str, st: &str, at| tokens.validate(token, u, p, st, at);
        validate(user, purpose, stamp, created + Duration::hours(23)).unwrap();
        validate(user, purpose, stamp, created + Duration::days(1)).unwrap();
        assert!(matches!(
            validate(
                user,
                purpose,
                stamp,
                created + Duration::days(1) + Duration::microseconds(1)
            ),
            Err(TokenError::Expired { .. })
        ));
        assert!(matches!(
            validate("someone-else", purpose, stamp, created),
            Err(TokenError::WrongUser)
        ));
        assert!(matches!(
            validate(user, "Other", stamp, created),
            Err(TokenError::WrongPurpose)
        ));
        assert!(matches!(
            validate(user, purpose, "CHANGED", created),
            Err(TokenError::WrongSecurityStamp)
        ));
        // A shorter configured lifespan expires it sooner.
        let short = IdentityTokenProvider::new(&provider).with_lifespan(Duration::hours(1));
        assert!(matches!(
            short.validate(token, user, purpose, stamp, created + Duration::hours(2)),
            Err(TokenError::Expired { .. })
        ));

        // Regenerated with the payload's key modifier and IV: the same token.
        let payload = STANDARD.decode(token).unwrap();
        let (writer, _dir) = writer(modifier_and_iv(&payload)).await;
        let again = IdentityTokenProvider::new(&writer)
            .generate(user, purpose, stamp, created)
            .unwrap();
        assert_eq!(again, token);
    }
}

#[tokio::test]
async fn a_tampered_identity_token_is_a_protection_failure() {
    let v = vectors();
    let token = s(&v["identity_tokens"][0]["token"]);
    let provider = reader(APP).await;
    let mut payload = STANDARD.decode(token).unwrap();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let tampered = STANDARD.encode(payload);
    assert!(matches!(
        IdentityTokenProvider::new(&provider).read(&tampered),
        Err(TokenError::Protection(_))
    ));
    assert!(matches!(
        IdentityTokenProvider::new(&provider).read("not base64!"),
        Err(TokenError::Protection(_))
    ));
}
