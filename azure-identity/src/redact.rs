//! Keeping tokens out of messages.

/// Replaces anything that looks like a bearer token or a JWT with
/// `[redacted]`, for error messages that quote an SDK or a server.
pub fn redact_tokens(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut words = message.split_inclusive(char::is_whitespace).peekable();
    let mut after_bearer = false;
    while let Some(word) = words.next() {
        let trimmed = word.trim_end();
        let tail = &word[trimmed.len()..];
        let core = trimmed.trim_matches(|c: char| matches!(c, '"' | '\'' | ',' | ';' | '(' | ')'));
        if after_bearer || looks_like_jwt(core) {
            out.push_str("[redacted]");
            out.push_str(tail);
            after_bearer = false;
            continue;
        }
        after_bearer = core.eq_ignore_ascii_case("bearer") && words.peek().is_some();
        out.push_str(word);
    }
    out
}

fn looks_like_jwt(s: &str) -> bool {
    let s = s.split_once('=').map_or(s, |(_, v)| v);
    s.len() > 20
        && s.starts_with("eyJ")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_tokens() {
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJ4In0.c2lnbmF0dXJl";
        let m = redact_tokens(&format!(
            "got Authorization: Bearer abc.def and token={jwt} here"
        ));
        assert!(!m.contains("abc.def"), "{m}");
        assert!(!m.contains(jwt), "{m}");
        assert!(m.contains("here"));
        assert_eq!(redact_tokens("plain message"), "plain message");
    }
}
