//! The REST surface checked with plain reqwest: challenge, error shapes, paths, MSI endpoint,
//! control API.
#![allow(clippy::unwrap_used, missing_docs)]

use keyvault_emulator::{EmulatorOptions, KeyVaultEmulator, Operation};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

async fn start() -> (KeyVaultEmulator, Client) {
    let emu = KeyVaultEmulator::start(EmulatorOptions::default())
        .await
        .unwrap();
    let http = Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.ca_cert_pem().as_bytes()).unwrap()])
        .build()
        .unwrap();
    (emu, http)
}

/// Sends an authenticated request with an optional JSON body; returns (status, headers, JSON).
async fn call(
    emu: &KeyVaultEmulator,
    http: &Client,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = http.request(method, url).bearer_auth(emu.issue_token());
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, headers, json)
}

/// Sends an authenticated GET; returns (status, headers, JSON).
async fn fetch(
    emu: &KeyVaultEmulator,
    http: &Client,
    url: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    call(emu, http, Method::GET, url, None).await
}

/// Sends an authenticated POST with a JSON body; returns (status, headers, JSON).
async fn post(
    emu: &KeyVaultEmulator,
    http: &Client,
    url: &str,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    call(emu, http, Method::POST, url, Some(body)).await
}

/// Sends an authenticated PATCH with a JSON body; returns (status, headers, JSON).
async fn patch(
    emu: &KeyVaultEmulator,
    http: &Client,
    url: &str,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    call(emu, http, Method::PATCH, url, Some(body)).await
}

fn assert_error(body: &Value, code: &str) {
    let err = body
        .get("error")
        .unwrap_or_else(|| panic!("no error object in {body}"));
    assert_eq!(err["code"], code, "{body}");
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn challenge_before_body_and_invalid_tokens() {
    let (emu, http) = start().await;
    let url = format!("{}/keys/k//wrapkey?api-version=2025-07-01", emu.base_url());
    // No Authorization (and a body the emulator must not look at: it is not even JSON).
    let resp = http.post(&url).body("not json").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"https://vault.azure.net\"",
            emu.tenant_id()
        )
    );
    assert_error(&resp.json::<Value>().await.unwrap(), "Unauthorized");

    // A bearer token the emulator did not issue.
    let resp = http
        .get(&url)
        .bearer_auth("eyJhbGciOiJub25lIn0.e30.")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().contains_key("www-authenticate"));

    // A token from the MSI endpoint but for another resource.
    let msi = emu.msi_endpoint_http().unwrap();
    let tok: Value = http
        .get(format!(
            "{msi}?api-version=2019-08-01&resource=https%3A%2F%2Fstorage.azure.com"
        ))
        .header("X-IDENTITY-HEADER", emu.identity_header())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let resp = http
        .get(format!("{}/keys/k?api-version=7.5", emu.base_url()))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let log = emu.requests();
    assert_eq!(log[0].operation, Operation::WrapKey);
    assert!(!log[0].had_bearer && log[0].status == 401);
    assert!(log[1].had_bearer && !log[1].authorized);
    assert_eq!(log[2].operation, Operation::GetToken);
    assert_eq!(log[3].error_code.as_deref(), Some("Unauthorized"));
    emu.clear_requests();
    assert!(emu.requests().is_empty());
}

#[tokio::test]
async fn api_versions_and_error_shapes() {
    let (emu, http) = start().await;
    emu.create_key("k", 2048).await.unwrap();
    let base = emu.base_url();
    for v in ["7.4", "7.5", "7.6", "2025-07-01"] {
        let (s, h, body) = fetch(&emu, &http, &format!("{base}/keys/k?api-version={v}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert!(
            body["key"]["kid"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{base}/keys/k/"))
        );
    }
    for q in ["", "?api-version=1.0", "?api-version=2026-03-01-preview"] {
        let (s, _, body) = fetch(&emu, &http, &format!("{base}/keys/k{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_error(&body, "BadParameter");
    }
    let (s, _, body) = fetch(&emu, &http, &format!("{base}/keys/nope?api-version=7.5")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(body.as_object().unwrap().len(), 1);
    assert_error(&body, "KeyNotFound");
    let (s, _, body) = post(
        &emu,
        &http,
        &format!("{base}/keys/nope//unwrapkey?api-version=7.5"),
        json!({"alg": "RSA-OAEP", "value": "AAAA"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_error(&body, "KeyNotFound");
}

#[tokio::test]
async fn create_get_paths_and_kid() {
    let (emu, http) = start().await;
    let base = emu.base_url().to_owned();
    let (s, _, created) = post(
        &emu,
        &http,
        &format!("{base}/keys/hsm/create?api-version=7.6"),
        json!({"kty": "RSA-HSM", "key_size": 3072, "key_ops": ["wrapKey", "unwrapKey"],
                    "attributes": {"enabled": true}, "tags": {"purpose": "test"}}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let kid = created["key"]["kid"].as_str().unwrap().to_owned();
    let version = kid.rsplit('/').next().unwrap().to_owned();
    assert_eq!(kid, format!("{base}/keys/hsm/{version}"));
    assert_eq!(created["key"]["kty"], "RSA-HSM");
    assert_eq!(created["key"]["key_ops"], json!(["wrapKey", "unwrapKey"]));
    assert_eq!(created["key"]["e"], "AQAB");
    assert_eq!(created["tags"]["purpose"], "test");
    assert_eq!(created["attributes"]["enabled"], true);
    assert!(created["attributes"]["created"].is_i64());
    assert_eq!(
        created["attributes"]["recoveryLevel"],
        "Recoverable+Purgeable"
    );
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(created["key"].get(private).is_none());
    }
    for path in ["/keys/hsm", "/keys/hsm/", &format!("/keys/hsm/{version}")] {
        let (s, _, got) = fetch(&emu, &http, &format!("{base}{path}?api-version=7.6")).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(got["key"]["kid"], kid.as_str());
        assert_eq!(got["key"]["n"], created["key"]["n"]);
    }
    // The kid echoes the host the client used.
    let local = emu.localhost_url();
    let (_, _, got) = fetch(&emu, &http, &format!("{local}/keys/hsm?api-version=7.6")).await;
    assert_eq!(got["key"]["kid"], format!("{local}/keys/hsm/{version}"));

    // Wrap via all three path shapes; padded input accepted; output unpadded.
    for path in [
        "/keys/hsm/wrapkey",
        "/keys/hsm//wrapkey",
        &format!("/keys/hsm/{version}/wrapkey"),
    ] {
        let (s, _, w) = post(
            &emu,
            &http,
            &format!("{base}{path}?api-version=7.6"),
            json!({"alg": "RSA1_5", "value": "AQIDBA=="}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{path} {w}");
        assert_eq!(w["kid"], kid.as_str());
        let value = w["value"].as_str().unwrap();
        assert!(!value.contains('=') && !value.contains('+') && !value.contains('/'));
        let (s, _, u) = post(
            &emu,
            &http,
            &format!("{base}/keys/hsm/{version}/unwrapkey?api-version=7.6"),
            json!({"alg": "RSA1_5", "value": value}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(u["value"], "AQIDBA");
        assert_eq!(u["kid"], kid.as_str());
    }
    // Versions listing and key listing.
    emu.create_key("hsm", 2048).await.unwrap();
    let (_, _, list) = fetch(
        &emu,
        &http,
        &format!("{base}/keys/hsm/versions?api-version=7.6"),
    )
    .await;
    assert_eq!(list["value"].as_array().unwrap().len(), 2);
    let (_, _, list) = fetch(&emu, &http, &format!("{base}/keys?api-version=7.6")).await;
    assert_eq!(list["value"][0]["kid"], format!("{base}/keys/hsm"));
}

#[tokio::test]
async fn bad_parameters_and_forbidden() {
    let (emu, http) = start().await;
    let base = emu.base_url().to_owned();
    let kid = emu.create_key("k", 2048).await.unwrap();
    let version = kid.rsplit('/').next().unwrap().to_owned();
    let op = |path: &str, body: Value| {
        let url = format!("{base}/keys/k/{path}?api-version=2025-07-01");
        let (emu, http) = (&emu, &http);
        async move { post(emu, http, &url, body).await }
    };
    let cases = [
        ("wrapkey", json!({"alg": "A256KW", "value": "AQID"})),
        (
            "wrapkey",
            json!({"alg": "RSA-OAEP-256", "value": "!!not base64!!"}),
        ),
        ("wrapkey", json!({"alg": "RSA-OAEP-256", "value": ""})),
        ("wrapkey", json!({"alg": "RSA-OAEP-256"})),
        ("wrapkey", json!({"value": "AQID"})),
        // 191 bytes is too long for OAEP-256 with a 2048-bit key.
        (
            "wrapkey",
            json!({"alg": "RSA-OAEP-256", "value": "A".repeat(255)}),
        ),
        ("unwrapkey", json!({"alg": "RSA-OAEP", "value": "AQID"})),
        (
            "unwrapkey",
            json!({"alg": "RSA-OAEP", "value": "A".repeat(342)}),
        ),
    ];
    for (path, body) in cases {
        let (s, _, resp) = op(path, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path} {body} {resp}");
        assert_error(&resp, "BadParameter");
    }
    // encrypt/decrypt round trip.
    let (s, _, e) = op(
        "encrypt",
        json!({"alg": "RSA-OAEP-256", "value": "aGVsbG8"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (_, _, d) = op(
        "decrypt",
        json!({"alg": "RSA-OAEP-256", "value": e["value"]}),
    )
    .await;
    assert_eq!(d["value"], "aGVsbG8");

    // Creation validation.
    for (name, body) in [
        ("bad_name", json!({"kty": "RSA"})),
        ("k2", json!({"kty": "RSA", "key_size": 1024})),
        ("k2", json!({"kty": "EC", "crv": "P-256"})),
        ("k2", json!({"key_size": 2048})),
        ("k2", json!({"kty": "RSA", "key_ops": ["fly"]})),
    ] {
        let (s, _, resp) = post(
            &emu,
            &http,
            &format!("{base}/keys/{name}/create?api-version=7.5"),
            body.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_error(&resp, "BadParameter");
    }

    // PATCH: restrict key_ops, then disable.
    let url = format!("{base}/keys/k/{version}?api-version=7.5");
    let (s, _, upd) = patch(&emu, &http, &url, json!({"key_ops": ["wrapKey"]})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(upd["key"]["key_ops"], json!(["wrapKey"]));
    let (s, _, resp) = op(
        "unwrapkey",
        json!({"alg": "RSA-OAEP", "value": "A".repeat(342)}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_error(&resp, "Forbidden");
    let (s, _, upd) = patch(&emu, &http, &url, json!({"attributes": {"enabled": false}})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(upd["attributes"]["enabled"], false);
    let (s, _, resp) = fetch(&emu, &http, &url).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_error(&resp, "Forbidden");
    assert_eq!(resp["error"]["innererror"]["code"], "KeyDisabled");
    let (s, _, _) = op("wrapkey", json!({"alg": "RSA-OAEP", "value": "AQID"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn msi_token_endpoint() {
    let (emu, http) = start().await;
    for endpoint in [emu.msi_endpoint(), emu.msi_endpoint_http().unwrap()] {
        let url =
            format!("{endpoint}?api-version=2019-08-01&resource=https%3A%2F%2Fvault.azure.net");
        let resp = http.get(&url).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_error(&resp.json().await.unwrap(), "Unauthorized");
        let resp = http
            .get(&url)
            .header("X-IDENTITY-HEADER", "wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let resp = http
            .get(endpoint.clone() + "?api-version=2017-09-01&resource=x")
            .header("X-IDENTITY-HEADER", emu.identity_header())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let tok: Value = http
            .get(&url)
            .header("X-IDENTITY-HEADER", emu.identity_header())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(tok["token_type"], "Bearer");
        assert_eq!(tok["resource"], "https://vault.azure.net");
        let exp: i64 = tok["expires_on"].as_str().unwrap().parse().unwrap();
        assert!(exp > 1_700_000_000);
        let resp = http
            .get(format!("{}/keys?api-version=7.6", emu.base_url()))
            .bearer_auth(tok["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    // The Key Vault API is not served on the plain-http listener.
    let resp = http
        .get(format!(
            "{}/keys?api-version=7.6",
            emu.http_base_url().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn control_api_drives_faults_log_and_keys() {
    let (emu, http) = start().await;
    let ctl = emu.http_base_url().unwrap().to_owned() + "/_emulator";
    let base = emu.base_url().to_owned();
    // Create a key through the control API.
    let created: Value = http
        .post(format!("{ctl}/keys/ctl"))
        .json(&json!({"key_size": 2048}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = created["key"]["kid"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let get = format!("{base}/keys/ctl?api-version=7.6");

    // One 429 with Retry-After, one without, one 503, then success.
    let faults = json!({"latency_ms": 0, "rules": [
        {"kind": "throttle", "retry_after_secs": 2, "count": 1},
        {"kind": "throttle", "count": 1},
        {"kind": "service_unavailable", "count": 1, "operations": ["getKey"], "key_name": "ctl"}
    ]});
    let resp = http
        .post(format!("{ctl}/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, h, body) = fetch(&emu, &http, &get).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h["retry-after"], "2");
    assert_error(&body, "Throttled");
    let (s, h, _) = fetch(&emu, &http, &get).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert!(!h.contains_key("retry-after"));
    let (s, _, body) = fetch(&emu, &http, &get).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_error(&body, "ServiceUnavailable");
    let (s, _, _) = fetch(&emu, &http, &get).await;
    assert_eq!(s, StatusCode::OK);
    let left: Value = http
        .get(format!("{ctl}/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(left["rules"], json!([]));

    // Latency over the control API.
    http.post(format!("{ctl}/faults"))
        .json(&json!({"latency_ms": 250}))
        .send()
        .await
        .unwrap();
    let t = std::time::Instant::now();
    fetch(&emu, &http, &get).await;
    assert!(t.elapsed() >= std::time::Duration::from_millis(250));
    http.delete(format!("{ctl}/faults")).send().await.unwrap();

    // Disable through the control API.
    let resp = http
        .patch(format!("{ctl}/keys/ctl/{version}"))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let (s, _, _) = fetch(&emu, &http, &get).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The log over the control API.
    let log: Vec<keyvault_emulator::LoggedRequest> = http
        .get(format!("{ctl}/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 503, 200, 200, 403]);
    assert!(log[..3].iter().all(|r| r.injected_fault));
    http.delete(format!("{ctl}/requests")).send().await.unwrap();
    assert!(emu.requests().is_empty());
    let pem = http
        .get(format!("{ctl}/ca.pem"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pem, emu.ca_cert_pem());
    let private = http
        .get(format!("{ctl}/keys/ctl/{version}/private"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
}
