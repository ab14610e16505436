//! HTTP(S) serving: listeners, routing, auth, the Key Vault keys API, the managed identity
//! token endpoint and the `/_emulator/` control API.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::faults::{FaultConfig, FaultHandle, FaultKind};
use crate::log::{LoggedRequest, Operation, RequestLog};
use crate::util::{b64url, b64url_decode, now_secs, random_guid, valid_key_name};
use crate::vault::{
    CryptoOp, KvError, NewKey, Vault, generate_rsa, kid, parse_key_ops, private_pem,
};

/// The audience Key Vault tokens must carry.
pub(crate) const VAULT_RESOURCE: &str = "https://vault.azure.net";
/// api-versions of the Key Vault REST API the emulator accepts.
pub const SUPPORTED_API_VERSIONS: [&str; 4] = ["7.4", "7.5", "7.6", "2025-07-01"];
/// The api-version of the App Service managed identity protocol.
pub(crate) const MSI_API_VERSION: &str = "2019-08-01";
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, Clone)]
pub(crate) struct TokenInfo {
    pub audience: String,
    pub expires_on: i64,
}

/// Everything the request handlers share.
pub(crate) struct Shared {
    pub vault: Mutex<Vault>,
    pub tokens: Mutex<HashMap<String, TokenInfo>>,
    pub faults: FaultHandle,
    pub log: RequestLog,
    pub identity_header: String,
    pub tenant_id: String,
    pub ca_pem: String,
    pub token_lifetime_secs: i64,
}

impl std::fmt::Debug for Shared {
    // Keeps private keys and tokens out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("tenant_id", &self.tenant_id)
            .field("faults", &self.faults.get())
            .field("keys", &self.vault().names())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub fn vault(&self) -> MutexGuard<'_, Vault> {
        lock(&self.vault)
    }

    /// Issues an unsigned JWT (`alg: none`) for `resource` and remembers it.
    pub fn issue_token(&self, resource: &str) -> (String, i64) {
        let now = now_secs();
        let exp = now + self.token_lifetime_secs;
        let header = json!({"alg": "none", "typ": "JWT"});
        let claims = json!({
            "aud": resource,
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": now,
            "nbf": now,
            "exp": exp,
            "tid": self.tenant_id,
            "oid": random_guid(),
            "jti": random_guid(),
            "idtyp": "app",
        });
        let token = format!(
            "{}.{}.",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        lock(&self.tokens).insert(
            token.clone(),
            TokenInfo {
                audience: resource.to_owned(),
                expires_on: exp,
            },
        );
        (token, exp)
    }

    fn token_valid_for_vault(&self, token: &str) -> bool {
        lock(&self.tokens).get(token).is_some_and(|t| {
            t.expires_on > now_secs() && t.audience.trim_end_matches('/') == VAULT_RESOURCE
        })
    }

    /// Creates a key version through the same path as the REST API.
    pub async fn create(
        &self,
        name: &str,
        new: NewKey,
    ) -> Result<crate::vault::KeyVersion, KvError> {
        if !valid_key_name(name) {
            return Err(KvError::bad_parameter(format!(
                "The key name '{name}' is invalid: it must match ^[0-9a-zA-Z-]+$ and be at most 127 characters."
            )));
        }
        let bits = new.bits;
        let private = tokio::task::spawn_blocking(move || generate_rsa(bits))
            .await
            .map_err(|_| KvError::new(500, "InternalError", "key generation task failed"))??;
        Ok(self.vault().insert(name, new, private))
    }
}

/// Serves one listener until the task is aborted. `tls = None` means plain http.
pub(crate) async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                };
                let shared = Arc::clone(&shared);
                let tls = tls.clone();
                conns.spawn(async move {
                    match tls {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls_stream) => serve_conn(TokioIo::new(tls_stream), shared, "https").await,
                            Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        },
                        None => serve_conn(TokioIo::new(stream), shared, "http").await,
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

async fn serve_conn<I>(io: I, shared: Arc<Shared>, scheme: &'static str)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(shared, scheme, req).await) }
    });
    if let Err(e) = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, service)
        .await
    {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// A response under construction plus what the log needs to know about it.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Option<Value>,
    text: Option<(String, &'static str)>,
    headers: Vec<(&'static str, String)>,
    error_code: Option<String>,
    injected: bool,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Self {
            status: 200,
            body: Some(body),
            text: None,
            headers: Vec::new(),
            error_code: None,
            injected: false,
        }
    }
    fn err(e: &KvError) -> Self {
        Self {
            status: e.status,
            body: Some(e.body()),
            error_code: Some(e.code.to_owned()),
            ..Self::ok(Value::Null)
        }
    }
    fn text(body: String, content_type: &'static str) -> Self {
        Self {
            body: None,
            text: Some((body, content_type)),
            ..Self::ok(Value::Null)
        }
    }
    fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
    fn into_response(self, client_request_id: Option<HeaderValue>) -> Response<Full<Bytes>> {
        let (bytes, content_type) = match (self.text, self.body) {
            (Some((t, ct)), _) => (Bytes::from(t), ct),
            (None, Some(v)) => (
                Bytes::from(v.to_string()),
                "application/json; charset=utf-8",
            ),
            (None, None) => (Bytes::new(), "application/json; charset=utf-8"),
        };
        let mut resp = Response::new(Full::new(bytes));
        *resp.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert(
            "x-ms-keyvault-service-version",
            HeaderValue::from_static("1.9.0.0-emulator"),
        );
        h.insert(
            "x-ms-keyvault-region",
            HeaderValue::from_static("localhost"),
        );
        if let Ok(v) = HeaderValue::from_str(&random_guid()) {
            h.insert("x-ms-request-id", v);
        }
        if let Some(id) = client_request_id {
            h.insert("x-ms-client-request-id", id);
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

/// A request path classified.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    op: Operation,
    name: Option<String>,
    version: Option<String>,
    crypto: Option<CryptoOp>,
}

impl Route {
    fn of(op: Operation) -> Self {
        Self {
            op,
            name: None,
            version: None,
            crypto: None,
        }
    }
    fn key(op: Operation, name: &str, version: Option<&str>) -> Self {
        Self {
            op,
            name: Some(name.to_owned()),
            version: version.map(str::to_owned),
            crypto: None,
        }
    }
}

/// Classifies a path. Empty versions (`/keys/n/`, `/keys/n//wrapkey`) mean "latest".
fn classify(method: &Method, path: &str) -> Route {
    if path == "/msi/token" || path == "/msi/token/" {
        return Route::of(Operation::GetToken);
    }
    for (prefix, op) in [
        ("/secrets/", Operation::GetSecret),
        ("/certificates/", Operation::GetCertificate),
    ] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let segs: Vec<&str> = rest.split('/').collect();
            return match (method, segs.as_slice()) {
                (&Method::GET, [name]) if !name.is_empty() => Route::key(op, name, None),
                (&Method::GET, [name, version]) if !name.is_empty() => {
                    Route::key(op, name, Some(version))
                }
                _ => Route::of(Operation::Unknown),
            };
        }
    }
    let Some(rest) = path.strip_prefix("/keys") else {
        return Route::of(Operation::Unknown);
    };
    if rest.is_empty() || rest == "/" {
        return if method == Method::GET {
            Route::of(Operation::ListKeys)
        } else {
            Route::of(Operation::Unknown)
        };
    }
    let Some(rest) = rest.strip_prefix('/') else {
        return Route::of(Operation::Unknown);
    };
    let segs: Vec<&str> = rest.split('/').collect();
    let crypto_route = |name: &str, version: Option<&str>, seg: &str| {
        CryptoOp::parse(seg).map(|c| {
            let op = match c {
                CryptoOp::WrapKey => Operation::WrapKey,
                CryptoOp::UnwrapKey => Operation::UnwrapKey,
                CryptoOp::Encrypt => Operation::Encrypt,
                CryptoOp::Decrypt => Operation::Decrypt,
            };
            Route {
                crypto: Some(c),
                ..Route::key(op, name, version)
            }
        })
    };
    let route = match (method, segs.as_slice()) {
        (&Method::GET, [name]) => Some(Route::key(Operation::GetKey, name, None)),
        (&Method::GET, [name, "versions"]) => {
            Some(Route::key(Operation::ListKeyVersions, name, None))
        }
        (&Method::GET, [name, version]) => Some(Route::key(Operation::GetKey, name, Some(version))),
        (&Method::PATCH, [name]) => Some(Route::key(Operation::UpdateKey, name, None)),
        (&Method::PATCH, [name, version]) => {
            Some(Route::key(Operation::UpdateKey, name, Some(version)))
        }
        (&Method::POST, [name, "create"]) => Some(Route::key(Operation::CreateKey, name, None)),
        (&Method::POST, [name, seg]) => crypto_route(name, None, seg),
        (&Method::POST, [name, version, seg]) => crypto_route(name, Some(version), seg),
        _ => None,
    };
    route.unwrap_or_else(|| {
        let mut r = Route::of(Operation::Unknown);
        r.name = segs.first().map(|s| (*s).to_owned());
        r
    })
}

fn query_param(query: Option<&str>, key: &str) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn read_body(body: Incoming) -> Result<Bytes, KvError> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .map_err(|e| KvError::bad_parameter(format!("Could not read the request body: {e}")))
}

fn parse_json_object(body: &[u8]) -> Result<Map<String, Value>, KvError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(KvError::bad_parameter(
            "The request body must be a JSON object.",
        )),
        Err(e) => Err(KvError::bad_parameter(format!(
            "The request body is not valid JSON: {e}"
        ))),
    }
}

/// Entry point for every request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    scheme: &'static str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let client_request_id = req.headers().get("x-ms-client-request-id").cloned();
    if path == "/_emulator" || path.starts_with("/_emulator/") {
        let reply = control(&shared, scheme, req).await;
        return reply.into_response(client_request_id);
    }

    let method = req.method().clone();
    let route = classify(&method, &path);
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let had_bearer = bearer.is_some();
    let authorized = bearer
        .as_deref()
        .is_some_and(|t| shared.token_valid_for_vault(t));

    let reply = if route.op == Operation::GetToken {
        msi_token(&shared, &req, &route)
    } else if scheme != "https" {
        Reply::err(&KvError::new(
            404,
            "NotFound",
            "The Key Vault API is served over HTTPS only; this listener serves /msi/token and /_emulator/.",
        ))
    } else {
        let latency = shared.faults.latency_for(route.op);
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        if authorized {
            key_vault(&shared, scheme, req, &route).await
        } else {
            challenge(&shared, had_bearer)
        }
    };

    tracing::debug!(
        method = %method,
        path = %path_and_query,
        operation = ?route.op,
        had_bearer,
        status = reply.status,
        "request"
    );
    shared.log.push(LoggedRequest {
        method: method.to_string(),
        path: path_and_query,
        operation: route.op,
        key_name: route.name.clone(),
        key_version: route.version.clone(),
        had_bearer,
        authorized,
        status: reply.status,
        error_code: reply.error_code.clone(),
        injected_fault: reply.injected,
    });
    reply.into_response(client_request_id)
}

/// 401 with the Key Vault bearer challenge.
fn challenge(shared: &Shared, had_bearer: bool) -> Reply {
    let message = if had_bearer {
        "AKV10032: Invalid token: it was not issued by this emulator for https://vault.azure.net, or it has expired."
    } else {
        "AKV10000: Request is missing a Bearer or PoP token."
    };
    Reply::err(&KvError::new(401, "Unauthorized", message)).header(
        "www-authenticate",
        format!(
            "Bearer authorization=\"https://login.microsoftonline.com/{}\", resource=\"{VAULT_RESOURCE}\"",
            shared.tenant_id
        ),
    )
}

fn fault_reply(kind: FaultKind, retry_after: Option<u64>) -> Reply {
    let err = match kind {
        FaultKind::Throttle => KvError::new(
            429,
            "Throttled",
            "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached",
        ),
        FaultKind::ServiceUnavailable => KvError::new(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable. Please retry.",
        ),
        FaultKind::InternalError => KvError::new(
            500,
            "InternalServerError",
            "An internal server error occurred (injected).",
        ),
    };
    let mut reply = Reply::err(&err);
    reply.injected = true;
    match retry_after {
        Some(secs) => reply.header("retry-after", secs.to_string()),
        None => reply,
    }
}

/// The managed identity (App Service, `IDENTITY_ENDPOINT` protocol) token endpoint.
fn msi_token(shared: &Shared, req: &Request<Incoming>, route: &Route) -> Reply {
    let msi_err =
        |status: u16, code: &'static str, msg: &str| Reply::err(&KvError::new(status, code, msg));
    if req.method() != Method::GET {
        return msi_err(405, "MethodNotAllowed", "Use GET for the token endpoint.");
    }
    match req
        .headers()
        .get("x-identity-header")
        .map(HeaderValue::to_str)
    {
        None => {
            return msi_err(
                401,
                "Unauthorized",
                "The X-IDENTITY-HEADER header is missing.",
            );
        }
        Some(Ok(v)) if v == shared.identity_header => {}
        Some(_) => {
            return msi_err(
                403,
                "Forbidden",
                "The X-IDENTITY-HEADER header value is not valid.",
            );
        }
    }
    let query = req.uri().query();
    match query_param(query, "api-version") {
        Some(v) if v == MSI_API_VERSION => {}
        other => {
            return msi_err(
                400,
                "BadRequest",
                &format!("Unsupported api-version {other:?}; use {MSI_API_VERSION}."),
            );
        }
    }
    let Some(resource) = query_param(query, "resource").filter(|r| !r.is_empty()) else {
        return msi_err(
            400,
            "BadRequest",
            "The 'resource' query parameter is required.",
        );
    };
    if let Some(f) = shared.faults.fire(route.op, None) {
        return fault_reply(f.kind, f.retry_after_secs);
    }
    let (token, exp) = shared.issue_token(&resource);
    Reply::ok(json!({
        "access_token": token,
        "expires_on": exp.to_string(),
        "token_type": "Bearer",
        "resource": resource,
    }))
}

fn base_url(scheme: &str, req: &Request<Incoming>) -> String {
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "127.0.0.1".to_owned());
    format!("{scheme}://{authority}")
}

/// An authenticated Key Vault REST request.
async fn key_vault(shared: &Shared, scheme: &str, req: Request<Incoming>, route: &Route) -> Reply {
    let query = req.uri().query().map(str::to_owned);
    match query_param(query.as_deref(), "api-version") {
        None => {
            return Reply::err(&KvError::bad_parameter(
                "The 'api-version' query parameter is required.",
            ));
        }
        Some(v) if !SUPPORTED_API_VERSIONS.contains(&v.as_str()) => {
            return Reply::err(&KvError::bad_parameter(format!(
                "The specified version ({v}) is not recognized. Supported versions: {}.",
                SUPPORTED_API_VERSIONS.join(", ")
            )));
        }
        Some(_) => {}
    }
    if let Some(f) = shared.faults.fire(route.op, route.name.as_deref()) {
        return fault_reply(f.kind, f.retry_after_secs);
    }
    let base = base_url(scheme, &req);
    let body = if matches!(*req.method(), Method::POST | Method::PATCH | Method::PUT) {
        match read_body(req.into_body()).await {
            Ok(b) => b,
            Err(e) => return Reply::err(&e),
        }
    } else {
        Bytes::new()
    };
    let result = dispatch(shared, &base, route, &body).await;
    match result {
        Ok(reply) => reply,
        Err(e) => Reply::err(&e),
    }
}

async fn dispatch(
    shared: &Shared,
    base: &str,
    route: &Route,
    body: &[u8],
) -> Result<Reply, KvError> {
    let name = route.name.as_deref().unwrap_or("");
    let version = route.version.as_deref();
    match route.op {
        Operation::CreateKey => {
            let new = parse_create(&parse_json_object(body)?)?;
            let kv = shared.create(name, new).await?;
            Ok(Reply::ok(kv.bundle(base, name)))
        }
        Operation::GetKey => {
            let vault = shared.vault();
            let kv = vault.get(name, version)?;
            kv.check_usable("get")?;
            Ok(Reply::ok(kv.bundle(base, name)))
        }
        Operation::UpdateKey => {
            let update = parse_json_object(body)?;
            let mut vault = shared.vault();
            let kv = vault.get_mut(name, version)?;
            apply_update(kv, &update)?;
            Ok(Reply::ok(kv.bundle(base, name)))
        }
        Operation::ListKeys => {
            let vault = shared.vault();
            let items: Vec<Value> = vault
                .names()
                .iter()
                .filter_map(|n| {
                    let latest = vault.get(n, None).ok()?;
                    Some(latest.list_item(format!("{base}/keys/{n}")))
                })
                .collect();
            Ok(Reply::ok(json!({"value": items, "nextLink": null})))
        }
        Operation::ListKeyVersions => {
            let vault = shared.vault();
            let items: Vec<Value> = vault
                .versions(name)?
                .iter()
                .map(|v| v.list_item(kid(base, name, &v.version)))
                .collect();
            Ok(Reply::ok(json!({"value": items, "nextLink": null})))
        }
        Operation::WrapKey | Operation::UnwrapKey | Operation::Encrypt | Operation::Decrypt => {
            let Some(op) = route.crypto else {
                return Err(KvError::bad_parameter("Unsupported operation."));
            };
            let params = parse_json_object(body)?;
            let alg = params
                .get("alg")
                .and_then(Value::as_str)
                .ok_or_else(|| KvError::bad_parameter("Property 'alg' is required."))?
                .to_owned();
            let value = params
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| KvError::bad_parameter("Property 'value' is required."))?
                .to_owned();
            let kv = shared.vault().get(name, version)?.clone();
            kv.check_usable(op.key_op())?;
            if !kv.key_ops.iter().any(|o| o == op.key_op()) {
                return Err(KvError::forbidden(
                    format!("Operation {} is not permitted on this key.", op.key_op()),
                    "KeyOperationForbidden",
                ));
            }
            if crate::vault::RsaAlg::parse(&alg).is_none() {
                // Let crypto() produce the canonical message.
                return kv.crypto(op, &alg, &[]).map(|_| Reply::ok(Value::Null));
            }
            let input = b64url_decode(&value).map_err(|e| {
                KvError::bad_parameter(format!("Property 'value' is not valid base64url: {e}"))
            })?;
            let out = tokio::task::spawn_blocking(move || {
                let out = kv.crypto(op, &alg, &input);
                (kv, out)
            })
            .await
            .map_err(|_| KvError::new(500, "InternalError", "crypto task failed"))?;
            let (kv, out) = out;
            let out = out?;
            Ok(Reply::ok(json!({
                "kid": kid(base, name, &kv.version),
                "value": b64url(&out),
            })))
        }
        Operation::GetSecret => {
            let vault = shared.vault();
            Ok(Reply::ok(
                vault.get_secret(name, version)?.bundle(base, name),
            ))
        }
        Operation::GetCertificate => {
            let vault = shared.vault();
            vault
                .get_secret(name, version)?
                .certificate_bundle(base, name)
                .map(Reply::ok)
                .ok_or_else(|| {
                    KvError::new(
                        404,
                        "CertificateNotFound",
                        format!(
                            "A certificate with (name/id) {name} was not found in this key vault."
                        ),
                    )
                })
        }
        Operation::GetToken | Operation::Unknown => Err(KvError::new(
            404,
            "NotFound",
            "The requested path is not part of the emulated Key Vault keys API.",
        )),
    }
}

fn parse_create(body: &Map<String, Value>) -> Result<NewKey, KvError> {
    let kty = body
        .get("kty")
        .and_then(Value::as_str)
        .ok_or_else(|| KvError::bad_parameter("Property 'kty' is required."))?;
    let kty = match kty {
        "RSA" | "RSA-HSM" => kty.to_owned(),
        "EC" | "EC-HSM" | "oct" | "oct-HSM" => {
            return Err(KvError::bad_parameter(format!(
                "Key type '{kty}' is not supported by this emulator (RSA and RSA-HSM only)."
            )));
        }
        other => {
            return Err(KvError::bad_parameter(format!(
                "Invalid key type '{other}'."
            )));
        }
    };
    let bits = match body.get("key_size") {
        None | Some(Value::Null) => 2048,
        Some(v) => v
            .as_u64()
            .and_then(|b| usize::try_from(b).ok())
            .ok_or_else(|| KvError::bad_parameter("Property 'key_size' must be an integer."))?,
    };
    if ![2048, 3072, 4096].contains(&bits) {
        return Err(KvError::bad_parameter(format!(
            "Invalid key_size {bits}: RSA keys must be 2048, 3072 or 4096 bits."
        )));
    }
    match body.get("public_exponent") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(65537) => {}
        Some(v) => {
            return Err(KvError::bad_parameter(format!(
                "Unsupported public_exponent {v}: only 65537 is supported."
            )));
        }
    }
    let mut new = NewKey::rsa(bits);
    new.kty = kty;
    if let Some(ops) = body.get("key_ops").filter(|v| !v.is_null()) {
        new.key_ops = parse_key_ops(ops)?;
    }
    if let Some(attrs) = body.get("attributes").filter(|v| !v.is_null()) {
        let attrs = attrs
            .as_object()
            .ok_or_else(|| KvError::bad_parameter("Property 'attributes' must be an object."))?;
        if let Some(enabled) = opt_bool(attrs, "enabled")? {
            new.enabled = enabled;
        }
        new.nbf = opt_i64(attrs, "nbf")?;
        new.exp = opt_i64(attrs, "exp")?;
    }
    new.tags = parse_tags(body)?;
    Ok(new)
}

fn apply_update(
    kv: &mut crate::vault::KeyVersion,
    body: &Map<String, Value>,
) -> Result<(), KvError> {
    if let Some(attrs) = body.get("attributes").filter(|v| !v.is_null()) {
        let attrs = attrs
            .as_object()
            .ok_or_else(|| KvError::bad_parameter("Property 'attributes' must be an object."))?;
        if let Some(enabled) = opt_bool(attrs, "enabled")? {
            kv.enabled = enabled;
        }
        if attrs.contains_key("nbf") {
            kv.nbf = opt_i64(attrs, "nbf")?;
        }
        if attrs.contains_key("exp") {
            kv.exp = opt_i64(attrs, "exp")?;
        }
    }
    if let Some(ops) = body.get("key_ops").filter(|v| !v.is_null()) {
        kv.key_ops = parse_key_ops(ops)?;
    }
    if let Some(tags) = parse_tags(body)? {
        kv.tags = Some(tags);
    }
    kv.updated = now_secs();
    Ok(())
}

fn opt_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>, KvError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(KvError::bad_parameter(format!(
            "Property '{key}' must be a boolean."
        ))),
    }
}

fn opt_i64(m: &Map<String, Value>, key: &str) -> Result<Option<i64>, KvError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| {
            KvError::bad_parameter(format!("Property '{key}' must be Unix seconds."))
        }),
    }
}

fn parse_tags(body: &Map<String, Value>) -> Result<Option<Map<String, Value>>, KvError> {
    match body.get("tags") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(t)) if t.values().all(Value::is_string) => Ok(Some(t.clone())),
        Some(_) => Err(KvError::bad_parameter(
            "Property 'tags' must map names to strings.",
        )),
    }
}

/// The unauthenticated `/_emulator/` control API (loopback only, like everything else).
async fn control(shared: &Shared, scheme: &str, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let base = base_url(scheme, &req);
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => return Reply::err(&e),
    };
    let rest = path.trim_start_matches("/_emulator").trim_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    let result: Result<Reply, KvError> = match (&method, segs.as_slice()) {
        (&Method::GET, ["faults"]) => Ok(Reply::ok(json!(shared.faults.get()))),
        (&Method::POST | &Method::PUT, ["faults"]) => {
            match serde_json::from_slice::<FaultConfig>(&body) {
                Ok(cfg) => {
                    shared.faults.set(cfg);
                    Ok(Reply::ok(json!(shared.faults.get())))
                }
                Err(e) => Err(KvError::bad_parameter(format!(
                    "Invalid fault configuration: {e}"
                ))),
            }
        }
        (&Method::DELETE, ["faults"]) => {
            shared.faults.clear();
            Ok(Reply::ok(json!(shared.faults.get())))
        }
        (&Method::GET, ["requests"]) => Ok(Reply::ok(json!(shared.log.snapshot()))),
        (&Method::DELETE, ["requests"]) => {
            shared.log.clear();
            Ok(Reply::ok(json!([])))
        }
        (&Method::GET, ["ca.pem"]) => {
            Ok(Reply::text(shared.ca_pem.clone(), "application/x-pem-file"))
        }
        (&Method::POST, ["token"]) => {
            let resource = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("resource").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| VAULT_RESOURCE.to_owned());
            let (token, exp) = shared.issue_token(&resource);
            Ok(Reply::ok(
                json!({"access_token": token, "expires_on": exp.to_string(), "resource": resource}),
            ))
        }
        (&Method::POST, ["keys", name]) => {
            let params = if body.is_empty() {
                Map::new()
            } else {
                parse_json_object(&body).unwrap_or_default()
            };
            let mut create = params.clone();
            create.entry("kty").or_insert_with(|| json!("RSA"));
            match parse_create(&create) {
                Ok(new) => shared
                    .create(name, new)
                    .await
                    .map(|kv| Reply::ok(kv.bundle(&base, name))),
                Err(e) => Err(e),
            }
        }
        (&Method::PATCH, ["keys", name, version]) => parse_json_object(&body).and_then(|b| {
            let mut update = Map::new();
            if let Some(enabled) = b.get("enabled") {
                update.insert("attributes".to_owned(), json!({"enabled": enabled}));
            }
            if let Some(ops) = b.get("key_ops") {
                update.insert("key_ops".to_owned(), ops.clone());
            }
            let mut vault = shared.vault();
            let kv = vault.get_mut(name, Some(version))?;
            apply_update(kv, &update)?;
            Ok(Reply::ok(kv.bundle(&base, name)))
        }),
        (&Method::GET, ["keys", name, version, "private"]) => {
            let vault = shared.vault();
            vault
                .get(name, Some(version))
                .and_then(|kv| private_pem(&kv.private))
                .map(|pem| Reply::text(pem, "application/x-pem-file"))
        }
        _ => Err(KvError::new(
            404,
            "NotFound",
            format!("Unknown control request {method} {path}"),
        )),
    };
    result.unwrap_or_else(|e| Reply::err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_paths() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(
            classify(&get, "/keys/k"),
            Route::key(Operation::GetKey, "k", None)
        );
        assert_eq!(
            classify(&get, "/keys/k/"),
            Route::key(Operation::GetKey, "k", Some(""))
        );
        assert_eq!(
            classify(&get, "/keys/k/abc"),
            Route::key(Operation::GetKey, "k", Some("abc"))
        );
        assert_eq!(classify(&get, "/keys"), Route::of(Operation::ListKeys));
        assert_eq!(
            classify(&get, "/keys/k/versions").op,
            Operation::ListKeyVersions
        );
        assert_eq!(classify(&post, "/keys/k/create").op, Operation::CreateKey);
        let r = classify(&post, "/keys/k//wrapkey");
        assert_eq!((r.op, r.version.as_deref()), (Operation::WrapKey, Some("")));
        let r = classify(&post, "/keys/k/wrapkey");
        assert_eq!((r.op, r.version.as_deref()), (Operation::WrapKey, None));
        let r = classify(&post, "/keys/k/v1/unwrapKey");
        assert_eq!(
            (r.op, r.version.as_deref()),
            (Operation::UnwrapKey, Some("v1"))
        );
        assert_eq!(classify(&post, "/keys/k/v1/sign").op, Operation::Unknown);
        assert_eq!(classify(&get, "/msi/token").op, Operation::GetToken);
        assert_eq!(classify(&get, "/secrets/x").op, Operation::GetSecret);
        assert_eq!(
            classify(&get, "/secrets/x/v1").version.as_deref(),
            Some("v1")
        );
        assert_eq!(
            classify(&get, "/certificates/x").op,
            Operation::GetCertificate
        );
        assert_eq!(classify(&get, "/secrets/").op, Operation::Unknown);
        assert_eq!(classify(&Method::POST, "/secrets/x").op, Operation::Unknown);
        assert_eq!(
            classify(&Method::PATCH, "/keys/k/v").op,
            Operation::UpdateKey
        );
    }
}
