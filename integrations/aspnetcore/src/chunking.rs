//! Cookies as ASP.NET Core writes and reads them: `SetCookieHeaderValue`
//! formatting, `ChunkingCookieManager`'s split into `name=chunks-N` plus
//! `nameC1..nameCN`, reassembly, and deletion of every chunk.

use std::fmt::Write as _;

use time::{Duration, OffsetDateTime};

use crate::model::format_rfc1123;

/// `ChunkingCookieManager.DefaultChunkSize`: the largest Set-Cookie header
/// value (in UTF-16 code units, as .NET counts) before a cookie is split.
pub const DEFAULT_CHUNK_SIZE: usize = 4050;
const CHUNK_COUNT_PREFIX: &str = "chunks-";
const CHUNK_KEY_SUFFIX: &str = "C";

/// The `SameSite` attribute (`SameSiteMode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SameSite {
    /// No attribute.
    Unspecified,
    /// `samesite=none`.
    None,
    /// `samesite=lax` (the cookie handler's default).
    #[default]
    Lax,
    /// `samesite=strict`.
    Strict,
}

/// Cookie attributes (`CookieOptions`). The default is the cookie
/// authentication handler's: path `/`, HttpOnly, SameSite=Lax, not Secure
/// (the handler adds Secure on HTTPS requests), no Expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CookieOptions {
    /// `path=` (None: no attribute).
    pub path: Option<String>,
    /// `domain=`.
    pub domain: Option<String>,
    /// `expires=` (persistent cookies).
    pub expires: Option<OffsetDateTime>,
    /// `max-age=`.
    pub max_age: Option<Duration>,
    /// `secure`.
    pub secure: bool,
    /// `httponly`.
    pub http_only: bool,
    /// `samesite=`.
    pub same_site: SameSite,
}

impl Default for CookieOptions {
    fn default() -> Self {
        CookieOptions {
            path: Some("/".to_owned()),
            domain: None,
            expires: None,
            max_age: None,
            secure: false,
            http_only: true,
            same_site: SameSite::Lax,
        }
    }
}

impl CookieOptions {
    /// The `Set-Cookie` header value for `name=value`, exactly as
    /// `SetCookieHeaderValue.ToString()`:
    /// `name=value; expires=…; max-age=…; domain=…; path=…; secure; samesite=…; httponly`.
    ///
    /// ```
    /// use dataprotection_aspnetcore::CookieOptions;
    /// assert_eq!(
    ///     CookieOptions::default().set_cookie_header(".AspNetCore.Cookies", ""),
    ///     ".AspNetCore.Cookies=; path=/; samesite=lax; httponly"
    /// );
    /// ```
    pub fn set_cookie_header(&self, name: &str, value: &str) -> String {
        let mut s = format!("{name}={value}");
        if let Some(expires) = self.expires {
            let _ = write!(s, "; expires={}", format_rfc1123(expires));
        }
        if let Some(max_age) = self.max_age {
            let _ = write!(s, "; max-age={}", max_age.whole_seconds().max(0));
        }
        if let Some(domain) = &self.domain {
            let _ = write!(s, "; domain={domain}");
        }
        if let Some(path) = &self.path {
            let _ = write!(s, "; path={path}");
        }
        if self.secure {
            s.push_str("; secure");
        }
        match self.same_site {
            SameSite::Unspecified => {}
            SameSite::None => s.push_str("; samesite=none"),
            SameSite::Lax => s.push_str("; samesite=lax"),
            SameSite::Strict => s.push_str("; samesite=strict"),
        }
        if self.http_only {
            s.push_str("; httponly");
        }
        s
    }
}

/// The cookies of a request, in order, from its `Cookie` header(s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestCookies {
    cookies: Vec<(String, String)>,
}

impl RequestCookies {
    /// Parses `Cookie` header values (`a=b; c=d`). Pairs without `=` are
    /// skipped; a value in double quotes loses them; when a name repeats the
    /// first value wins.
    pub fn parse<'a>(headers: impl IntoIterator<Item = &'a str>) -> Self {
        let mut cookies: Vec<(String, String)> = Vec::new();
        for header in headers {
            for pair in header.split(';') {
                let Some((name, value)) = pair.split_once('=') else {
                    continue;
                };
                let name = name.trim();
                let mut value = value.trim();
                if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                    value = &value[1..value.len() - 1];
                }
                if name.is_empty() || cookies.iter().any(|(n, _)| n == name) {
                    continue;
                }
                cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        RequestCookies { cookies }
    }

    /// Request cookies from name/value pairs.
    pub fn from_pairs<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        let mut cookies = RequestCookies::default();
        for (n, v) in pairs {
            let n = n.into();
            if !cookies.cookies.iter().any(|(name, _)| *name == n) {
                cookies.cookies.push((n, v.into()));
            }
        }
        cookies
    }

    /// The value of cookie `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A chunked cookie whose chunks did not all arrive.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the chunked cookie is incomplete: only {found} of the expected {expected} chunks were found"
)]
pub struct IncompleteChunkedCookie {
    /// Chunks present before the first missing one.
    pub found: usize,
    /// The count announced by `chunks-N`.
    pub expected: usize,
}

/// The cookie name and attributes leave no room for data within the chunk size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the cookie name and options are larger than the chunk size, leaving no room for data")]
pub struct ChunkSizeTooSmall;

/// ASP.NET Core's `ChunkingCookieManager`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkingCookieManager {
    /// The largest Set-Cookie header value, in UTF-16 code units, before
    /// splitting (`None`: never split). Default [`DEFAULT_CHUNK_SIZE`].
    pub chunk_size: Option<usize>,
}

impl Default for ChunkingCookieManager {
    fn default() -> Self {
        ChunkingCookieManager {
            chunk_size: Some(DEFAULT_CHUNK_SIZE),
        }
    }
}

/// `ParseChunksCount`: `chunks-` then decimal digits only, as an `Int32`.
fn chunk_count(value: &str) -> usize {
    value
        .strip_prefix(CHUNK_COUNT_PREFIX)
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<i32>().ok())
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0)
}

fn chunk_name(name: &str, index: usize) -> String {
    format!("{name}{CHUNK_KEY_SUFFIX}{index}")
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

impl ChunkingCookieManager {
    /// `GetRequestCookie`: the reassembled value, the plain value of an
    /// unchunked cookie, or — when a chunk is missing or empty — the literal
    /// `chunks-N` value (which then fails to decode), exactly as .NET.
    pub fn get_request_cookie(&self, cookies: &RequestCookies, name: &str) -> Option<String> {
        match self.reassemble(cookies, name) {
            Ok(value) => value,
            Err(_) => cookies.get(name).map(str::to_owned),
        }
    }

    /// As [`ChunkingCookieManager::get_request_cookie`] with
    /// `ThrowForPartialCookies`: a missing chunk is an error.
    ///
    /// ```
    /// use dataprotection_aspnetcore::{ChunkingCookieManager, RequestCookies};
    /// let cookies = RequestCookies::parse(["a=1; .AspNetCore.Cookies=chunks-2; .AspNetCore.CookiesC1=ab; .AspNetCore.CookiesC2=cd"]);
    /// let manager = ChunkingCookieManager::default();
    /// assert_eq!(manager.reassemble(&cookies, ".AspNetCore.Cookies")?.as_deref(), Some("abcd"));
    /// # Ok::<(), dataprotection_aspnetcore::IncompleteChunkedCookie>(())
    /// ```
    ///
    /// # Errors
    /// [`IncompleteChunkedCookie`] when a chunk is missing or empty.
    pub fn reassemble(
        &self,
        cookies: &RequestCookies,
        name: &str,
    ) -> Result<Option<String>, IncompleteChunkedCookie> {
        let Some(value) = cookies.get(name) else {
            return Ok(None);
        };
        let count = chunk_count(value);
        if count == 0 {
            return Ok(Some(value.to_owned()));
        }
        let mut joined = String::new();
        for index in 1..=count {
            match cookies.get(&chunk_name(name, index)) {
                Some(chunk) if !chunk.is_empty() => joined.push_str(chunk),
                _ => {
                    return Err(IncompleteChunkedCookie {
                        found: index - 1,
                        expected: count,
                    });
                }
            }
        }
        Ok(Some(joined))
    }

    /// `AppendResponseCookie`: the `Set-Cookie` header values for `name=value`,
    /// split into chunks when `template length + value length` reaches the
    /// chunk size (the template is the header for an empty value, so the
    /// attributes count). Each chunk holds `chunk size - template length - 3`
    /// characters. Chunks of the request's cookie that the new value no
    /// longer uses are expired first, as .NET does.
    ///
    /// # Errors
    /// [`ChunkSizeTooSmall`] when fewer than 10 characters would remain for data.
    pub fn append_response_cookie(
        &self,
        request: &RequestCookies,
        name: &str,
        value: &str,
        options: &CookieOptions,
    ) -> Result<Vec<String>, ChunkSizeTooSmall> {
        if value.is_empty() {
            return Ok(vec![options.set_cookie_header(name, "")]);
        }
        let template_len = utf16_len(&options.set_cookie_header(name, ""));
        let value_len = utf16_len(value);
        let request_chunks = request.get(name).map(chunk_count).unwrap_or(0);
        let Some(chunk_size) = self
            .chunk_size
            .filter(|size| *size <= template_len + value_len)
        else {
            let mut headers = stale_chunk_removals(request, name, options, 1, request_chunks);
            headers.push(options.set_cookie_header(name, value));
            return Ok(headers);
        };
        if chunk_size < template_len + 10 {
            return Err(ChunkSizeTooSmall);
        }
        let per_chunk = chunk_size - template_len - 3;
        let mut chunks: Vec<&str> = Vec::new();
        let mut start = 0;
        let mut units = 0;
        for (at, c) in value.char_indices() {
            // A surrogate pair is never split: .NET would write a lone half.
            if units + c.len_utf16() > per_chunk {
                chunks.push(&value[start..at]);
                start = at;
                units = 0;
            }
            units += c.len_utf16();
        }
        chunks.push(&value[start..]);
        let mut headers =
            stale_chunk_removals(request, name, options, chunks.len() + 1, request_chunks);
        headers.push(
            options.set_cookie_header(name, &format!("{CHUNK_COUNT_PREFIX}{}", chunks.len())),
        );
        for (i, chunk) in chunks.iter().enumerate() {
            headers.push(options.set_cookie_header(&chunk_name(name, i + 1), chunk));
        }
        Ok(headers)
    }

    /// `DeleteCookie`: `Set-Cookie` values that expire `name` and, when the
    /// request carries `name=chunks-N`, each of its chunks that the request
    /// carries (up to the first missing one, so a hostile `N` costs nothing),
    /// with an empty value, `expires=Thu, 01 Jan 1970 00:00:00 GMT` and the
    /// same path, domain, SameSite, Secure and HttpOnly.
    pub fn delete_cookie(
        &self,
        cookies: &RequestCookies,
        name: &str,
        options: &CookieOptions,
    ) -> Vec<String> {
        let count = cookies.get(name).map(chunk_count).unwrap_or(0);
        let mut headers = vec![removal_options(options).set_cookie_header(name, "")];
        headers.extend(stale_chunk_removals(cookies, name, options, 1, count));
        headers
    }
}

/// The options of a deletion: expired at the Unix epoch, no `max-age`.
fn removal_options(options: &CookieOptions) -> CookieOptions {
    CookieOptions {
        expires: Some(OffsetDateTime::UNIX_EPOCH),
        max_age: None,
        ..options.clone()
    }
}

/// `DeleteChunks`: removals for chunks `start..=end` that the request
/// carries, stopping at the first one it does not.
fn stale_chunk_removals(
    request: &RequestCookies,
    name: &str,
    options: &CookieOptions,
    start: usize,
    end: usize,
) -> Vec<String> {
    let removal = removal_options(options);
    (start..=end)
        .map(|index| chunk_name(name, index))
        .take_while(|chunk| request.get(chunk).is_some_and(|v| !v.is_empty()))
        .map(|chunk| removal.set_cookie_header(&chunk, ""))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expired(chunk: &str) -> String {
        format!("{chunk}=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; samesite=lax; httponly")
    }

    #[test]
    fn small_values_are_not_chunked_and_the_limit_is_exclusive() {
        let m = ChunkingCookieManager {
            chunk_size: Some(100),
        };
        let none = RequestCookies::default();
        let options = CookieOptions::default();
        let template = options.set_cookie_header("n", "").len();
        let fits = "a".repeat(100 - template - 1);
        assert_eq!(
            m.append_response_cookie(&none, "n", &fits, &options)
                .unwrap()
                .len(),
            1
        );
        let splits = "a".repeat(100 - template);
        let headers = m
            .append_response_cookie(&none, "n", &splits, &options)
            .unwrap();
        assert_eq!(headers[0], "n=chunks-2; path=/; samesite=lax; httponly");
        let per_chunk = 100 - template - 3;
        assert_eq!(
            headers[1],
            options.set_cookie_header("nC1", &splits[..per_chunk])
        );
        assert_eq!(
            headers[2],
            options.set_cookie_header("nC2", &splits[per_chunk..])
        );
        let tiny = ChunkingCookieManager {
            chunk_size: Some(template + 9),
        };
        assert_eq!(
            tiny.append_response_cookie(&none, "n", &"a".repeat(50), &options),
            Err(ChunkSizeTooSmall)
        );
    }

    #[test]
    fn chunks_the_new_value_no_longer_uses_are_expired_first() {
        let m = ChunkingCookieManager {
            chunk_size: Some(100),
        };
        let options = CookieOptions::default();
        let request = RequestCookies::parse(["n=chunks-3; nC1=a; nC2=b; nC3=c"]);
        let small = m
            .append_response_cookie(&request, "n", "v", &options)
            .unwrap();
        assert_eq!(
            small,
            [
                expired("nC1"),
                expired("nC2"),
                expired("nC3"),
                options.set_cookie_header("n", "v")
            ]
        );
        let two_chunks = "a".repeat(100);
        let headers = m
            .append_response_cookie(&request, "n", &two_chunks, &options)
            .unwrap();
        assert_eq!(headers[0], expired("nC3"));
        assert!(headers[1].starts_with("n=chunks-2;"));
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn a_hostile_chunk_count_costs_nothing() {
        let m = ChunkingCookieManager::default();
        let options = CookieOptions::default();
        let c = RequestCookies::parse(["n=chunks-2147483647; nC1=a"]);
        assert_eq!(
            m.delete_cookie(&c, "n", &options),
            [expired("n"), expired("nC1")]
        );
        assert_eq!(
            m.append_response_cookie(&c, "n", "v", &options).unwrap(),
            [expired("nC1"), options.set_cookie_header("n", "v")]
        );
        assert!(m.reassemble(&c, "n").is_err());
    }

    #[test]
    fn reassembly_follows_dotnet() {
        let m = ChunkingCookieManager::default();
        let c = RequestCookies::parse(["n=chunks-2; nC1=ab", "nC2=\"cd\""]);
        assert_eq!(m.get_request_cookie(&c, "n").as_deref(), Some("abcd"));
        let partial = RequestCookies::parse(["n=chunks-3; nC1=ab; nC2=cd; nC3="]);
        assert_eq!(
            m.get_request_cookie(&partial, "n").as_deref(),
            Some("chunks-3")
        );
        assert_eq!(
            m.reassemble(&partial, "n"),
            Err(IncompleteChunkedCookie {
                found: 2,
                expected: 3
            })
        );
        for literal in [
            "chunks-",
            "chunks-0",
            "chunks-+1",
            "chunks- 1",
            "chunks-99999999999",
        ] {
            let c = RequestCookies::from_pairs([("n", literal)]);
            assert_eq!(m.get_request_cookie(&c, "n").as_deref(), Some(literal));
        }
        assert_eq!(m.get_request_cookie(&RequestCookies::default(), "n"), None);
    }

    #[test]
    fn deletion_expires_every_chunk_the_request_carries() {
        let m = ChunkingCookieManager::default();
        let c = RequestCookies::parse(["n=chunks-3; nC1=ab; nC2=cd"]);
        let options = CookieOptions {
            secure: true,
            ..CookieOptions::default()
        };
        assert_eq!(
            m.delete_cookie(&c, "n", &options),
            [
                "n=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; secure; samesite=lax; httponly",
                "nC1=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; secure; samesite=lax; httponly",
                "nC2=; expires=Thu, 01 Jan 1970 00:00:00 GMT; path=/; secure; samesite=lax; httponly",
            ]
        );
    }
}
