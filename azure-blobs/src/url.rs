//! Blob URLs: splitting a blob URL into its container and blob, and adding or removing the
//! query (the SAS).

use azure_core::http::Url;
use percent_encoding::percent_decode_str;

use crate::error::BlobError;
use crate::sas;

/// The blob and its container.
#[derive(Clone)]
pub(crate) struct Target {
    /// The blob URL without a query.
    pub(crate) blob_url: Url,
    /// The container URL without a query.
    pub(crate) container_url: Url,
    /// The container name.
    pub(crate) container: String,
}

/// Splits a blob URL into the container URL (no query), the container name and the blob name.
///
/// URLs whose host is an IP address, `localhost` or a name without a dot (Azurite, the storage
/// emulator, IP-style endpoints) carry the account as the first path segment.
pub(crate) fn split_blob_url(url: &Url) -> std::result::Result<(Url, String, String), String> {
    let host = url.host_str().ok_or("the URL has no host")?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let path_style = bare.parse::<std::net::IpAddr>().is_ok()
        || bare.eq_ignore_ascii_case("localhost")
        || !bare.contains('.');
    let segments: Vec<&str> = url.path().trim_start_matches('/').split('/').collect();
    let skip = usize::from(path_style);
    if segments.len() < skip + 2
        || segments[..skip + 2].iter().any(|s| s.is_empty())
        || segments[skip + 1..].join("/").is_empty()
    {
        return Err(if path_style {
            "expected http(s)://host:port/<account>/<container>/<blob>".into()
        } else {
            "expected https://<account>.blob.core.windows.net/<container>/<blob>".into()
        });
    }
    let mut container_url = url.clone();
    container_url.set_query(None);
    container_url.set_fragment(None);
    container_url.set_path(&format!("/{}", segments[..=skip].join("/")));
    let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
    Ok((
        container_url,
        decode(segments[skip]),
        decode(&segments[skip + 1..].join("/")),
    ))
}

/// `url` without its query and fragment.
pub(crate) fn without_query(url: &Url) -> Url {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u
}

/// `url` with `query` (a SAS) as its query string.
pub(crate) fn with_query(url: &Url, query: &str) -> Url {
    let mut u = without_query(url);
    u.set_query(Some(query.trim_start_matches('?')));
    u
}

pub(crate) fn parse_url(url: &str) -> std::result::Result<Url, BlobError> {
    Url::parse(url.trim()).map_err(|e| BlobError::InvalidUrl {
        url: sas::redact(url),
        reason: e.to_string(),
    })
}

pub(crate) fn target_from_url(url: &Url, original: &str) -> std::result::Result<Target, BlobError> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(BlobError::InvalidUrl {
            url: sas::redact(original),
            reason: "expected an http or https URL".into(),
        });
    }
    let (container_url, container, _blob) =
        split_blob_url(url).map_err(|reason| BlobError::InvalidUrl {
            url: sas::redact(original),
            reason,
        })?;
    Ok(Target {
        blob_url: without_query(url),
        container_url,
        container,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn split(url: &str) -> (String, String, String) {
        let (c, container, blob) = split_blob_url(&Url::parse(url).unwrap()).unwrap();
        (c.to_string(), container, blob)
    }

    #[test]
    fn splits_host_and_path_style_urls() {
        assert_eq!(
            split("https://acct.blob.core.windows.net/keys/ring.xml?sv=1&sig=x"),
            (
                "https://acct.blob.core.windows.net/keys".into(),
                "keys".into(),
                "ring.xml".into()
            )
        );
        assert_eq!(
            split("http://127.0.0.1:10000/devstoreaccount1/keys/dir/ring%20a.xml"),
            (
                "http://127.0.0.1:10000/devstoreaccount1/keys".into(),
                "keys".into(),
                "dir/ring a.xml".into()
            )
        );
        assert_eq!(
            split("http://localhost:10000/devstoreaccount1/keys/r").1,
            "keys"
        );
        for bad in [
            "https://acct.blob.core.windows.net/keys",
            "https://acct.blob.core.windows.net/keys/",
            "http://127.0.0.1:10000/devstoreaccount1/keys",
        ] {
            assert!(split_blob_url(&Url::parse(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
