//! `dpkeys doctor [--json]`: check the ring, its storage and its key
//! encryption, and explain each problem in plain words.
//!
//! Nothing is written to the key ring: writability of a directory is probed
//! with a temporary file that is not an `*.xml` element; for a blob the SAS
//! (permissions and expiry) is inspected instead of writing.

use std::collections::HashMap;

use std::sync::Arc;

use dataprotection::Key;
use dataprotection::KeySet;
use dataprotection::diagnosis::{
    Diagnosis, Finding, KeyState, MasterKeyCheck, NeverUsedReason, Severity,
};
use dataprotection::policy::MAX_SERVER_CLOCK_SKEW;
use dataprotection::xml::format_date;
use dataprotection_azure_keyvault::{
    AzureKeyVaultKeyClient, CredentialKind, FailureCause, KeyVaultError, KeyVaultOptions,
    KeyWrapClient, RequestFailure, WrapAlgorithm, credential_from_environment,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{EXIT_OK, EXIT_WARNINGS, write_stdout};
use crate::cli::{DoctorArgs, KeyEncryptionArgs};
use crate::context::Context;
use crate::error::Result;
use crate::repository::Location;
use crate::ring::master_keys;
use dataprotection_azure_blobs::connection_string::{ConnectionString, Credential};
use dataprotection_azure_blobs::sas::SasInfo;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warning,
    Error,
}

/// One line of the report; the JSON field names are part of the contract.
#[derive(Debug, Serialize)]
struct Line {
    check: &'static str,
    status: Status,
    message: String,
}

#[derive(Debug, Default)]
struct Report(Vec<Line>);

impl Report {
    fn add(&mut self, check: &'static str, status: Status, message: impl Into<String>) {
        self.0.push(Line {
            check,
            status,
            message: message.into(),
        });
    }
    fn ok(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Ok, message);
    }
    fn warning(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Warning, message);
    }
    fn error(&mut self, check: &'static str, message: impl Into<String>) {
        self.add(check, Status::Error, message);
    }
    fn worst(&self) -> Status {
        self.0.iter().map(|f| f.status).max().unwrap_or(Status::Ok)
    }
}

/// A finding's status: the library decides how bad it is.
fn status_of(finding: &Finding) -> Status {
    match finding.severity() {
        Severity::Info => Status::Ok,
        Severity::Warning => Status::Warning,
        _ => Status::Error,
    }
}

/// A duration for people: `3d 4h`, `5h 2m`, `40s`.
fn human(d: Duration) -> String {
    let s = d.whole_seconds().unsigned_abs();
    let (days, hours, mins) = (s / 86_400, s / 3600 % 24, s / 60 % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {}s", s % 60)
    } else {
        format!("{s}s")
    }
}

/// Runs `doctor`.
pub async fn run(
    context: &Context,
    encryption: &KeyEncryptionArgs,
    args: DoctorArgs,
) -> Result<u8> {
    let now = OffsetDateTime::now_utc();
    let mut report = Report::default();
    storage(&mut report, context, now).await;
    if let Some(key) = &encryption.keyvault_key {
        key_vault(&mut report, key).await;
    }
    for (level, message) in
        crate::certificates::doctor_findings(&context.encryption.certificates, now)
    {
        match level {
            crate::certificates::Level::Ok => report.ok("certificate", message),
            crate::certificates::Level::Warning => report.warning("certificate", message),
        }
    }
    ring(&mut report, context, now).await;

    if args.json {
        let mut text = serde_json::to_string_pretty(&report.0)?;
        text.push('\n');
        write_stdout(text.as_bytes())?;
    } else {
        let mut text = String::new();
        for f in &report.0 {
            let status = match f.status {
                Status::Ok => "ok",
                Status::Warning => "WARNING",
                Status::Error => "ERROR",
            };
            text.push_str(&format!("{status:<8} {:<20} {}\n", f.check, f.message));
        }
        let count = |s| report.0.iter().filter(|f| f.status == s).count();
        text.push_str(&format!(
            "{} errors, {} warnings, {} checks passed\n",
            count(Status::Error),
            count(Status::Warning),
            count(Status::Ok)
        ));
        write_stdout(text.as_bytes())?;
    }
    Ok(match report.worst() {
        Status::Ok => EXIT_OK,
        Status::Warning => EXIT_WARNINGS,
        Status::Error => 1,
    })
}

/// Reachability, writability, SAS and clock checks.
async fn storage(report: &mut Report, context: &Context, now: OffsetDateTime) {
    let location = &context.location;
    match context.repository.get_all_elements().await {
        Ok(elements) => report.ok(
            "repository.read",
            format!(
                "read {} elements from {}",
                elements.len(),
                location.describe()
            ),
        ),
        Err(e) => report.error(
            "repository.read",
            format!(
                "cannot read the key ring at {}: {e} ({}); applications cannot load their keys",
                location.describe(),
                e.class()
            ),
        ),
    }
    match location {
        Location::Dir(dir) => {
            directory_writable(report, dir);
            report.ok(
                "clock.skew",
                "not measured: a local directory has no remote clock to compare with",
            );
        }
        Location::Memory => report.warning(
            "repository.write",
            "no key ring location: keys would live in memory and be lost at exit; pass --dir or --blob-url",
        ),
        _ => {
            blob_credential(report, location, now);
            blob_clock(report, location, now).await;
        }
    }
}

fn directory_writable(report: &mut Report, dir: &std::path::Path) {
    if !dir.exists() {
        report.warning(
            "repository.write",
            format!(
                "directory {} does not exist; it is created when the first key is written",
                dir.display()
            ),
        );
        return;
    }
    // A probe that core never reads as an element (not *.xml).
    let probe = dir.join(format!(".dpkeys-doctor-{}.probe", Uuid::new_v4().simple()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(file) => {
            drop(file);
            let _ = std::fs::remove_file(&probe);
            report.ok(
                "repository.write",
                format!("directory {} is writable", dir.display()),
            );
        }
        Err(e) => report.warning(
            "repository.write",
            format!(
                "directory {} is not writable ({e}): keys cannot be created or revoked through \
                 it; fine only for read-only consumers with a rotator elsewhere",
                dir.display()
            ),
        ),
    }
}

fn blob_credential(report: &mut Report, location: &Location, now: OffsetDateTime) {
    let Some(sas) = fixed_sas(location) else {
        let message = match location {
            Location::BlobConnectionString { .. } => {
                "account key: a blob SAS with racwd is minted (and renewed) as needed"
            }
            _ => {
                "token credential (Entra ID): its role cannot be checked without writing; it \
                 needs Storage Blob Data Contributor (or read/write on the blob)"
            }
        };
        report.ok("repository.write", message);
        return;
    };
    let info = match sas {
        Ok(info) => info,
        Err(e) => {
            report.warning(
                "sas.expiry",
                format!("the SAS cannot be inspected ({e}); e.g. one bound to a stored access policy: check its expiry there"),
            );
            return;
        }
    };
    let left = info.expiry - now;
    if info.is_expired_at(now) {
        report.error(
            "sas.expiry",
            format!("the {}: every request fails; issue a new SAS (or use an account key or a managed identity, which renew themselves)", info.describe_at(now)),
        );
    } else if info.start.is_some_and(|s| s > now) {
        report.error("sas.expiry", format!("the {}", info.describe_at(now)));
    } else if left < Duration::days(7) {
        report.warning(
            "sas.expiry",
            format!(
                "the {}: applications read the ring about once a day, so it fails late; replace it before then",
                info.describe_at(now)
            ),
        );
    } else {
        report.ok("sas.expiry", format!("the {}", info.describe_at(now)));
    }
    let letters = info.permissions.clone().unwrap_or_default();
    let has = |c| letters.contains(c);
    if !has('r') {
        report.error(
            "sas.permissions",
            format!(
                "the SAS allows {letters:?} but not r (read): applications cannot load their keys"
            ),
        );
    } else if !has('w') {
        report.warning(
            "sas.permissions",
            format!(
                "the SAS allows {letters:?}: read-only, so keys cannot be created, revoked or \
                 deleted through it; fine only for applications with automatic key generation \
                 disabled and a rotator with a writable credential (racwd)"
            ),
        );
    } else if !has('c') {
        report.warning(
            "sas.permissions",
            format!("the SAS allows {letters:?} but not c (create): the blob cannot be created if it does not exist yet (racwd is recommended)"),
        );
    } else {
        report.ok(
            "sas.permissions",
            format!("the SAS allows {letters:?} (read and write)"),
        );
    }
}

/// What the SAS of a blob location says about itself (`None`: not a SAS, or
/// a SAS minted from an account key, which is always fresh and complete).
fn fixed_sas(location: &Location) -> Option<std::result::Result<SasInfo, String>> {
    let query = match location {
        Location::BlobSasUrl(url) => url.clone(),
        Location::BlobConnectionString {
            connection_string, ..
        } => match ConnectionString::parse(connection_string)
            .ok()?
            .credential()
        {
            Credential::SharedAccessSignature(q) => q.clone(),
            _ => return None,
        },
        _ => return None,
    };
    Some(SasInfo::parse(&query).map_err(|e| e.to_string()))
}

async fn blob_clock(report: &mut Report, location: &Location, now: OffsetDateTime) {
    let probe = match location.open_blob(false) {
        Ok(blob) => blob.probe().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let date = match probe {
        Ok(p) => p.server_date,
        Err(e) => {
            report.ok("clock.skew", format!("not measured: {e}"));
            return;
        }
    };
    let Some(date) = date else {
        report.ok(
            "clock.skew",
            "not measured: the storage service sent no Date header (the blob may not exist yet)",
        );
        return;
    };
    report_skew(report, now, date);
}

/// Judges the difference between this machine's clock and the storage
/// service's `Date` header (one-second resolution).
fn report_skew(report: &mut Report, now: OffsetDateTime, date: OffsetDateTime) {
    let skew = now - date;
    let text = format!(
        "this machine's clock is {} {} the storage service's",
        human(skew),
        if skew.is_negative() {
            "behind"
        } else {
            "ahead of"
        }
    );
    if skew.abs() > MAX_SERVER_CLOCK_SKEW {
        report.error(
            "clock.skew",
            format!("{text}: more than the 5 minutes key activation tolerates; key dates and revocations written here will be off"),
        );
    } else if skew.abs() > Duration::seconds(30) {
        report.warning("clock.skew", format!("{text}; synchronise it (NTP)"));
    } else {
        report.ok("clock.skew", text);
    }
}

/// The Key Vault key: get (its state and allowed operations), then a wrap
/// and unwrap of random bytes.
async fn key_vault(report: &mut Report, key_url: &str) {
    let (credential, kind) = match credential_from_environment() {
        Ok(found) => found,
        Err(e) => {
            report.error("keyvault.key", format!("no credential for Key Vault: {e}"));
            return;
        }
    };
    let client = match AzureKeyVaultKeyClient::new(key_url, credential, KeyVaultOptions::default())
    {
        Ok(c) => c,
        Err(e) => {
            report.error("keyvault.key", e.to_string());
            return;
        }
    };
    // get: .NET's encryptor needs it (it reads the key before wrapping).
    match client.key_info().await {
        Ok(info) => {
            let kid = &info.kid;
            let ops = &info.operations;
            let missing: Vec<&str> = ["wrapKey", "unwrapKey"]
                .into_iter()
                .filter(|op| !ops.is_empty() && !ops.iter().any(|o| o == op))
                .collect();
            if info.enabled == Some(false) {
                report.error("keyvault.key", format!("key {kid} is disabled: keys wrapped with it cannot be unwrapped and no key can be wrapped"));
            } else if !missing.is_empty() {
                report.error(
                    "keyvault.key",
                    format!(
                        "key {kid} does not allow {} (its operations are {}): allow wrapKey and unwrapKey on the key",
                        missing.join(" and "),
                        ops.join(", ")
                    ),
                );
            } else {
                report.ok(
                    "keyvault.key",
                    format!("key {kid} is enabled and allows {}", ops.join(", ")),
                );
            }
        }
        Err(KeyVaultError::Request(f)) if f.status.is_none() => {
            // The vault was not reached, or refused before answering: a wrap
            // would fail the same way, so report the cause once.
            report.error("keyvault.key", unreached_advice(&f, kind));
            return;
        }
        // Key Vault refuses every operation on a disabled key, get included
        // (403 with the inner code KeyDisabled).
        Err(KeyVaultError::Request(f)) if f.is_key_disabled() => report.error(
            "keyvault.key",
            format!("key {key_url} is disabled ({f}): keys wrapped with it cannot be unwrapped and no key can be wrapped"),
        ),
        Err(e) => report.warning(
            "keyvault.key",
            format!(
                "reading the key (get) failed: {e}; .NET applications need the get \
                 permission as well as wrapKey and unwrapKey (Rust applications do not)"
            ),
        ),
    }
    let probe: Vec<u8> = Uuid::new_v4()
        .as_bytes()
        .iter()
        .chain(Uuid::new_v4().as_bytes())
        .copied()
        .collect();
    match client.wrap_key(WrapAlgorithm::RsaOaep, &probe).await {
        Err(e) => report.error("keyvault.wrap", wrap_advice(&e, kind)),
        Ok(wrapped) => match client.unwrap_key(&wrapped.kid, WrapAlgorithm::RsaOaep, &wrapped.wrapped).await {
            Ok(bytes) if bytes == probe => report.ok(
                "keyvault.wrap",
                format!("wrapKey and unwrapKey work with {}", wrapped.kid),
            ),
            Ok(_) => report.error(
                "keyvault.wrap",
                "unwrapKey returned different bytes than were wrapped",
            ),
            Err(e) => report.error(
                "keyvault.wrap",
                format!("wrapKey works but unwrapKey failed: {e}; stored keys cannot be read (grant unwrapKey)"),
            ),
        },
    }
}

/// What to do about a Key Vault request that got no HTTP answer, by its cause.
fn unreached_advice(f: &RequestFailure, kind: CredentialKind) -> String {
    let host = &f.vault_host;
    let advice = match f.cause {
        FailureCause::Dns => format!(
            "the vault host {host} does not resolve: check the key URL's vault name and DNS \
             (private endpoints need their private DNS zone)"
        ),
        FailureCause::ConnectionRefused => format!(
            "nothing accepts connections at {host}: check the key URL's host and port, and \
             any firewall or proxy in between"
        ),
        FailureCause::Tls => format!(
            "the TLS handshake with {host} failed: its certificate is not trusted or not for \
             this host (a TLS-inspecting proxy, or a URL that is not the vault's)"
        ),
        FailureCause::Timeout | FailureCause::Connection => format!(
            "the vault {host} cannot be reached: check the network path (firewall, proxy, \
             private endpoint) from this machine"
        ),
        FailureCause::Credential => format!(
            "the {kind} credential could not get a token for Key Vault: fix that credential \
             (see the cause), or choose another one through the environment"
        ),
        _ => format!(
            "the vault {host} refused the request before authorizing it: check that the key \
             URL names the vault's own host (https://NAME.vault.azure.net), not an alias or \
             another service"
        ),
    };
    format!("{advice}; cause: {f}")
}

/// What to do about a failed wrapKey probe.
fn wrap_advice(e: &KeyVaultError, kind: CredentialKind) -> String {
    match e {
        KeyVaultError::Request(f) => match f.status {
            None => format!("wrapKey failed: {}", unreached_advice(f, kind)),
            Some(403) => format!(
                "wrapKey failed: {e}; new keys cannot be created: grant the identity wrapKey \
                 on the key (Key Vault Crypto Service Encryption User, or an access policy)"
            ),
            Some(401) => format!(
                "wrapKey failed: {e}; the vault did not accept the {kind} credential's token \
                 (wrong tenant, or an expired or revoked credential)"
            ),
            Some(404) => format!(
                "wrapKey failed: {e}; the key or key version does not exist in this vault: \
                 check the key URL"
            ),
            Some(_) => format!("wrapKey failed: {e}; new keys cannot be created"),
        },
        other => format!("wrapKey failed: {other}; new keys cannot be created"),
    }
}

/// The keys themselves: the library's diagnosis
/// ([`KeySet::diagnose_with`]), presented check by check.
async fn ring(report: &mut Report, context: &Context, now: OffsetDateTime) {
    let Ok(elements) = context.repository.get_all_elements().await else {
        return;
    };
    let set = match KeySet::from_elements(&elements) {
        Ok(set) => set,
        Err(e) => {
            report.error(
                "ring.elements",
                format!("the ring cannot be interpreted: {e}; applications fail to load it"),
            );
            return;
        }
    };
    let registry = context.encryption.registry();
    let xmls: Vec<_> = set.keys.iter().map(Key::xml).collect();
    let checks: HashMap<Uuid, MasterKeyCheck> = set
        .keys
        .iter()
        .zip(master_keys(&registry, &xmls).await)
        .map(|(key, result)| {
            let check = match result {
                Ok(master) => MasterKeyCheck::Decrypted {
                    len: master.expose().len(),
                },
                Err(e) => MasterKeyCheck::Failed(Arc::new(e)),
            };
            (key.id(), check)
        })
        .collect();
    let diagnosis = set.diagnose_with(now, &checks);
    present(report, &set, &diagnosis, now);
}

/// Doctor's checks (ids, messages and statuses) from a diagnosis.
fn present(report: &mut Report, set: &KeySet, diagnosis: &Diagnosis, now: OffsetDateTime) {
    let findings = &diagnosis.findings;

    aggregate(
        report,
        "ring.duplicates",
        findings,
        |f| match f {
            Finding::DuplicateKey { key_id } => Some(key_id.to_string()),
            _ => None,
        },
        "no key id appears twice",
        |ids| {
            format!(
                "key {} is stored more than once: this library uses the first element, but .NET \
                 refuses the whole ring; delete the extra element",
                ids.join(", ")
            )
        },
    );

    let mut malformed = false;
    for f in findings {
        if let Finding::MalformedKey { source } = f {
            malformed = true;
            report.add(
                "ring.elements",
                status_of(f),
                format!("an element is malformed and ignored: {source}"),
            );
        }
    }
    if !malformed {
        report.ok(
            "ring.elements",
            format!(
                "{} keys, {} revocations, {} other elements, none malformed",
                set.keys.len(),
                set.revocations.len(),
                set.foreign_elements
            ),
        );
    }

    for f in findings {
        match f {
            Finding::FutureMassRevocation { date } => report.add(
                "ring.revocations",
                status_of(f),
                format!(
                    "every key created before {} (in the future) is revoked: keys created until \
                     then are revoked as soon as they are made; a clock was wrong when it was written",
                    format_date(*date)
                ),
            ),
            Finding::EveryKeyRevoked { date } => report.add(
                "ring.revocations",
                status_of(f),
                format!(
                    "every key is revoked (all keys created before {} are): if that was meant (a \
                     compromise), create a new key with `dpkeys rotate --now`",
                    format_date(*date)
                ),
            ),
            _ => {}
        }
    }

    present_decryption(report, set, findings);

    aggregate(
        report,
        "key.strength",
        findings,
        |f| match f {
            Finding::WeakMasterKey { key_id, bits } => Some(format!("{key_id} ({bits} bits)")),
            _ => None,
        },
        "every master key that decrypts is at least 128 bits",
        |weak| {
            format!(
                "master key shorter than 128 bits: {}; such a key is never used for new payloads \
                 (it only unprotects old ones) and was not made by a Data Protection \
                 implementation: find out who wrote it, then revoke it",
                weak.join(", ")
            )
        },
    );
    aggregate(
        report,
        "key.dates",
        findings,
        |f| match f {
            Finding::InvertedDates {
                key_id,
                activation,
                expiration,
            } => Some(format!(
                "key {key_id} is activated at {}, after it expires at {}",
                format_date(*activation),
                format_date(*expiration)
            )),
            _ => None,
        },
        "every key is activated before it expires",
        |inverted| {
            format!(
                "{}: such a key is never used and was not made by a key manager; revoke or delete it",
                inverted.join("; ")
            )
        },
    );

    present_default(report, diagnosis, now);

    let mut unused = false;
    for f in findings {
        if let Finding::NeverUsed { key_id, reason } = f {
            unused = true;
            let reason = match reason {
                NeverUsedReason::ActivationNotBeforeExpiration => {
                    "its activation date is not before its expiration date".to_string()
                }
                NeverUsedReason::SupersededAtCreation { by } => format!(
                    "key {by} was already active when it was created, with a later activation date"
                ),
                NeverUsedReason::LosesTie { to } => format!(
                    "key {to} has the same activation date and wins the tie (keys created concurrently)"
                ),
                other => format!("{other:?}"),
            };
            report.add(
                "key.unused",
                status_of(f),
                format!("key {key_id} will never be used: {reason}"),
            );
        }
    }
    if !unused {
        report.ok("key.unused", "no key is superseded or never active");
    }

    aggregate(
        report,
        "key.at_rest",
        findings,
        |f| match f {
            Finding::StoredUnencrypted { key_id } => Some(key_id.to_string()),
            _ => None,
        },
        "every key's master key is encrypted at rest",
        |clear| {
            format!(
                "{} keys are stored unencrypted ({}): anyone who can read the repository can read \
                 and forge payloads; configure a Key Vault key and run `dpkeys rewrap`",
                clear.len(),
                clear.join(", ")
            )
        },
    );

    for f in findings {
        if let Finding::ActivationWithinClockSkew { key_id, activation } = f {
            report.add(
                "key.activation",
                status_of(f),
                format!(
                    "key {key_id} activates at {}, within the 5-minute clock-skew tolerance: \
                     until then instances whose clocks differ may disagree on the default key \
                     (both keys decrypt everywhere)",
                    format_date(*activation)
                ),
            );
        }
    }
}

/// One line for every finding `pick` describes (its status from the worst
/// of them), or an `ok` line when there is none.
fn aggregate(
    report: &mut Report,
    check: &'static str,
    findings: &[Finding],
    pick: impl Fn(&Finding) -> Option<String>,
    ok: &str,
    message: impl Fn(&[String]) -> String,
) {
    let picked: Vec<(&Finding, String)> = findings
        .iter()
        .filter_map(|f| pick(f).map(|text| (f, text)))
        .collect();
    match picked.iter().map(|(f, _)| status_of(f)).max() {
        None => report.ok(check, ok),
        Some(status) => {
            let texts: Vec<String> = picked.into_iter().map(|(_, text)| text).collect();
            report.add(check, status, message(&texts));
        }
    }
}

/// `key.decrypt`: keys whose master key cannot be read, with a hint at what
/// to pass when the cause is a missing decryptor.
fn present_decryption(report: &mut Report, set: &KeySet, findings: &[Finding]) {
    let mut failures = 0;
    for f in findings {
        let (key_id, state, e, hint) = match f {
            Finding::UndecryptableKey {
                key_id,
                state,
                source,
            } => {
                let hint = match &**source {
                    dataprotection::Error::UnknownDecryptor { .. } => {
                        " (pass the --keyvault-key the applications use)"
                    }
                    dataprotection::Error::WindowsOnlyProtection { .. } => {
                        " (only Windows, with the account or group the key was protected for, can read it)"
                    }
                    dataprotection::Error::KeyDecryption { source, .. }
                        if source.is::<dataprotection_x509::X509Error>() =>
                    {
                        " (pass that certificate with --certificate or --certificate-thumbprint)"
                    }
                    _ => "",
                };
                (key_id, state, source.to_string(), hint)
            }
            Finding::WindowsOnlyProtection {
                key_id,
                state,
                decryptor_type,
            } => (
                key_id,
                state,
                format!(
                    "protected with Windows DPAPI: only readable on Windows ({decryptor_type})"
                ),
                "",
            ),
            _ => continue,
        };
        failures += 1;
        let class = match f {
            Finding::UndecryptableKey { source, .. } => source.class(),
            _ => "windows-only protection",
        };
        let message = match state {
            KeyState::Revoked => format!("revoked key {key_id} cannot be decrypted: {e}{hint}"),
            KeyState::Expired => format!(
                "expired key {key_id} cannot be decrypted: {e}{hint}; payloads it protected can no longer be read"
            ),
            _ => format!("key {key_id} cannot be decrypted: {e} ({class}){hint}"),
        };
        report.add("key.decrypt", status_of(f), message);
    }
    if failures == 0 {
        report.ok(
            "key.decrypt",
            format!("all {} keys decrypt", set.keys.len()),
        );
    }
}

/// `ring.default` and `ring.successor`.
fn present_default(report: &mut Report, diagnosis: &Diagnosis, now: OffsetDateTime) {
    let findings = &diagnosis.findings;
    let Some(default) = &diagnosis.default_key else {
        for f in findings {
            match f {
                Finding::RevokedDefault { key_id } => report.add(
                    "ring.default",
                    status_of(f),
                    format!(
                        "key {key_id}, which would be the default key by its dates, is revoked \
                         and nothing replaces it yet"
                    ),
                ),
                Finding::NoDefaultKey { fallback_key } => {
                    let fallback = fallback_key
                        .map(|id| {
                            format!(
                                "; until then applications that may not create keys protect with key {id}"
                            )
                        })
                        .unwrap_or_default();
                    report.add(
                        "ring.default",
                        status_of(f),
                        format!(
                            "there is no usable default key: applications with automatic generation create one at startup, \
                             others cannot protect; run `dpkeys rotate --now`{fallback}"
                        ),
                    );
                }
                _ => {}
            }
        }
        return;
    };
    report.ok(
        "ring.default",
        format!(
            "default key {} expires at {} (in {})",
            default.id,
            format_date(default.expiration_date),
            human(default.expiration_date - now)
        ),
    );
    if let Some(gap) = findings
        .iter()
        .find(|f| matches!(f, Finding::NoSuccessor { .. }))
    {
        report.add(
            "ring.successor",
            status_of(gap),
            format!(
                "the default key expires in {} and no usable successor is in place: \
                 applications with automatic generation will each create one (and may \
                 disagree), others will fail after it expires; run `dpkeys rotate --if-needed`",
                human(default.expiration_date - now)
            ),
        );
    } else {
        let text = match diagnosis.successor {
            Some(id) => format!("key {id} takes over when the default key expires"),
            None => {
                "no successor is needed yet (one is created within 3 days of expiry)".to_string()
            }
        };
        report.ok("ring.successor", text);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod skew_tests {
    use super::*;
    use time::macros::datetime;

    fn judge(skew: Duration) -> (Status, String) {
        let mut report = Report(Vec::new());
        let server = datetime!(2030-01-01 12:00 UTC);
        report_skew(&mut report, server + skew, server);
        let f = report.0.pop().unwrap();
        (f.status, f.message)
    }

    #[test]
    fn clock_skew_is_judged_against_the_five_minute_tolerance() {
        assert!(matches!(judge(Duration::seconds(2)).0, Status::Ok));
        let (status, message) = judge(Duration::minutes(2));
        assert!(matches!(status, Status::Warning), "{message}");
        assert!(message.contains("ahead of"), "{message}");
        let (status, message) = judge(-Duration::minutes(10));
        assert!(matches!(status, Status::Error), "{message}");
        assert!(
            message.contains("behind") && message.contains("5 minutes"),
            "{message}"
        );
    }
}
