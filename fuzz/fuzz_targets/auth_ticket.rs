//! The ASP.NET Core authentication readers (`TicketSerializer` v5,
//! `PropertiesSerializer` v1, Identity token plaintext, chunked cookie
//! reassembly): any input gives a value or a typed error, never a panic; what
//! is read writes back to a fixed point, also through the JSON form.
#![no_main]

use dataprotection_aspnetcore::{
    AuthenticationTicket, ChunkingCookieManager, IdentityToken, RequestCookies,
    deserialize_properties, deserialize_ticket, serialize_properties, serialize_ticket,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ticket) = deserialize_ticket(data) {
        let written = serialize_ticket(&ticket).expect("a read ticket can be written");
        let reread = deserialize_ticket(&written).expect("a written ticket can be read");
        let rewritten = serialize_ticket(&reread).expect("a read ticket can be written");
        assert_eq!(written, rewritten, "ticket bytes are not a fixed point");
        let json = reread.to_json();
        let from_json = AuthenticationTicket::from_json(&json).expect("our JSON can be read");
        assert_eq!(
            serialize_ticket(&from_json).expect("writable"),
            written,
            "JSON changed the ticket"
        );
    }
    if let Ok(properties) = deserialize_properties(data) {
        let written = serialize_properties(&properties).expect("read properties can be written");
        let reread = deserialize_properties(&written).expect("written properties can be read");
        assert_eq!(reread, properties, "properties did not round-trip");
    }
    if let Ok(token) = IdentityToken::from_bytes(data) {
        // Not byte equality: .NET (and we) accept overlong 7-bit lengths,
        // which are written back canonically.
        let written = token.to_bytes().expect("a read token can be written");
        let reread = IdentityToken::from_bytes(&written).expect("a written token can be read");
        assert_eq!(reread, token, "token plaintext did not round-trip");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let cookies = RequestCookies::parse([text]);
        let manager = ChunkingCookieManager::default();
        let _ = manager.reassemble(&cookies, ".AspNetCore.Cookies");
        let _ = manager.get_request_cookie(&cookies, ".AspNetCore.Cookies");
    }
});
