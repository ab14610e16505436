//! Hostile command lines, environments and key directories: never a panic
//! (exit 101) or a hang, never a secret in help or usage text, and read-only
//! commands never create a directory or a key.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use uuid::Uuid;

const SAS_URL: &str = "https://acct.blob.core.windows.net/keys/ring.xml?sv=2022-11-02&sp=racwd&sig=SASSIGNATUREs3cr3t%3D";
const CONNECTION_STRING: &str = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=QUNDT1VOVEtFWXMzY3IzdA==;EndpointSuffix=core.windows.net";
const SECRETS: &[&str] = &["SASSIGNATUREs3cr3t", "QUNDT1VOVEtFWXMzY3IzdA"];

/// Runs `dpkeys` with exactly `envs` added to a clean environment for it.
fn run_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dpkeys"));
    cmd.args(args)
        .env_remove("DATAPROTECTION_BLOB_URL")
        .env_remove("DATAPROTECTION_KEYVAULT_KEY_ID")
        .env_remove("DATAPROTECTION_APP_NAME")
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_no_secret(out: &Output, what: &str) {
    let all = format!("{}{}", out.text(), out.stderr);
    for s in SECRETS {
        assert!(!all.contains(s), "{what} shows a secret:\n{all}");
    }
}

fn assert_no_panic(out: &Output, what: &str) {
    assert_ne!(out.code, 101, "{what} panicked: {}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{what}: {}", out.stderr);
}

#[test]
fn help_and_usage_errors_never_show_secrets_from_the_environment() {
    let envs = [
        ("DATAPROTECTION_BLOB_URL", SAS_URL),
        ("AZURE_STORAGE_CONNECTION_STRING", CONNECTION_STRING),
        ("DATAPROTECTION_KEYVAULT_KEY_ID", SAS_URL),
        ("DATAPROTECTION_APP_NAME", SAS_URL),
    ];
    let mut runs: Vec<Vec<&str>> = vec![
        vec!["--help"],
        vec!["-h"],
        vec!["--bogus"],
        vec!["protect", "--expires", "not a date", "x"],
        vec!["keys"],
        vec!["--dir", "/tmp/x", "--blob-url", SAS_URL, "keys", "list"],
        vec!["--connection-string", CONNECTION_STRING, "keys", "list"],
        vec!["migrate", "--to-blob-url", SAS_URL, "--to-dir", "/tmp/x"],
    ];
    let subcommands = [
        vec!["protect"],
        vec!["unprotect"],
        vec!["keys"],
        vec!["keys", "list"],
        vec!["keys", "new"],
        vec!["keys", "revoke"],
        vec!["keys", "revoke-all"],
        vec!["keys", "delete"],
        vec!["rotate"],
        vec!["rewrap"],
        vec!["migrate"],
        vec!["prune"],
        vec!["doctor"],
    ];
    for sub in &subcommands {
        let mut help = sub.clone();
        help.push("--help");
        runs.push(help);
    }
    for args in &runs {
        let out = run_env(args, &envs);
        assert_no_panic(&out, &args.join(" "));
        assert_no_secret(&out, &args.join(" "));
    }
    // The help still says where the value may come from.
    let help = run_env(&["--help"], &envs).ok();
    assert!(help.contains("DATAPROTECTION_BLOB_URL"), "{help}");
}

#[test]
fn an_explicit_dir_wins_over_the_blob_url_in_the_environment() {
    let (_tmp, ring) = fresh_ring();
    let dir = ring.to_str().unwrap();
    let out = run_env(
        &["--dir", dir, "protect", "hello"],
        &[("DATAPROTECTION_BLOB_URL", SAS_URL)],
    );
    let payload = out.ok();
    assert_eq!(key_files(&ring).len(), 1);
    assert_no_secret(&out, "protect");
    let out = run_env(
        &["--dir", dir, "unprotect", payload.trim()],
        &[("DATAPROTECTION_BLOB_URL", SAS_URL)],
    );
    assert_eq!(out.ok(), "hello");
    // Two explicit locations are still a usage error.
    let out = run_env(&["--dir", dir, "--blob-url", SAS_URL, "keys", "list"], &[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
}

#[test]
fn out_of_range_dates_and_durations_are_errors_not_panics() {
    let ring = vector_ring();
    let dir = ring.path().to_str().unwrap();
    let cases: &[(&[&str], i32)] = &[
        (&["keys", "new", "--activation", "9999-12-01T00:00:00Z"], 1),
        (
            &[
                "keys",
                "new",
                "--activation",
                "9999-12-31T23:59:59.9999999Z",
            ],
            1,
        ),
        (&["rotate", "--now", "--lifetime", "2000000w"], 2),
        (&["rotate", "--now", "--lifetime", "500000w"], 1),
        (&["rotate", "--activation", "9999-12-01T00:00:00Z"], 1),
        (&["prune", "--retain", "2000000w", "--dry-run"], 2),
        (
            &["prune", "--retain", "99999999999999999999w", "--dry-run"],
            2,
        ),
        (&["prune", "--retain", "700000w", "--dry-run"], 1),
        (
            &[
                "keys",
                "delete",
                "--expired-before",
                "9999-12-31T23:00:00-14:00",
            ],
            2,
        ),
        (
            &[
                "keys",
                "delete",
                "--expired-before",
                "2030-01-01T00:00:00+0\u{e9}00",
            ],
            2,
        ),
        (&["keys", "revoke-all", "--before", "0000-01-01"], 2),
        (&["protect", "--expires", "99999-01-01T00:00:00Z", "x"], 2),
        (
            &["protect", "--expires", "2030-01-01T00:00:0\u{1f600}", "x"],
            2,
        ),
        (&["rotate", "--now", "--lifetime", "1\u{661}d"], 2),
    ];
    let before = key_files(ring.path());
    for (args, code) in cases {
        let mut all = vec!["--dir", dir];
        all.extend_from_slice(args);
        let out = run(&all, None);
        assert_no_panic(&out, &args.join(" "));
        assert_eq!(out.code, *code, "{}: {}", args.join(" "), out.stderr);
        assert!(!out.stderr.is_empty());
    }
    assert_eq!(key_files(ring.path()), before, "no key was created");
    let out = run_in(
        ring.path(),
        &["rotate", "--now", "--lifetime", "500000w"],
        None,
    );
    assert!(out.stderr.contains("--lifetime"), "{}", out.stderr);
    assert!(out.stderr.contains("out of range"), "{}", out.stderr);
}

#[test]
fn a_date_alone_is_midnight_utc_and_messages_use_rfc3339() {
    let (_tmp, ring) = fresh_ring();
    let id = run_in(
        &ring,
        &[
            "keys",
            "new",
            "--activation",
            "2020-01-01",
            "--expiration",
            "2020-04-01",
        ],
        None,
    )
    .ok();
    let keys = list_keys(&ring);
    let key = keys.iter().find(|k| k["id"] == id.trim()).unwrap();
    assert_eq!(key["activationDate"], "2020-01-01T00:00:00Z");
    assert_eq!(key["expirationDate"], "2020-04-01T00:00:00Z");

    // An expired time-limited payload names its expiration in RFC 3339.
    let payload = protect(&ring, &["--expires", "2020-01-01"], "x");
    let out = run_in(&ring, &["unprotect", "--time-limited", &payload], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("expired at 2020-01-01T00:00:00Z"),
        "{}",
        out.stderr
    );
}

fn plant_key(dir: &Path, name: &str, expiration: &str) {
    let id = Uuid::new_v4();
    let text = std::fs::read_to_string(
        vectors().join("keyring/key-ba73c9ce-d322-4e45-af90-341307e11c00.xml"),
    )
    .unwrap();
    let start = text.find("<expirationDate>").unwrap() + "<expirationDate>".len();
    let end = text.find("</expirationDate>").unwrap();
    let text = format!("{}{expiration}{}", &text[..start], &text[end..])
        .replace("ba73c9ce-d322-4e45-af90-341307e11c00", &id.to_string());
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_planted_multibyte_date_never_crashes_a_command() {
    let ring = vector_ring();
    plant_key(
        ring.path(),
        "key-planted.xml",
        "2030-01-01T00:00:00+0\u{e9}00",
    );
    for args in [
        vec!["keys", "list"],
        vec!["keys", "list", "--json"],
        vec!["doctor"],
        vec!["doctor", "--json"],
        vec!["protect", "x"],
        vec!["prune", "--retain", "30d", "--dry-run"],
        vec!["rotate", "--if-needed"],
    ] {
        let out = run_in(ring.path(), &args, None);
        assert_no_panic(&out, &args.join(" "));
    }
    let doctor = run_in(ring.path(), &["doctor"], None);
    assert!(doctor.text().contains("malformed"), "{}", doctor.text());
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

#[test]
fn planted_fifos_devices_and_huge_files_are_named_not_waited_on() {
    // A FIFO key file: `keys list` fails naming it (a hang would never return).
    let ring = vector_ring();
    mkfifo(&ring.path().join("key-x.xml"));
    for args in [vec!["keys", "list"], vec!["doctor"], vec!["protect", "x"]] {
        let out = run_in(ring.path(), &args, None);
        assert_no_panic(&out, &args.join(" "));
        assert_ne!(out.code, 0, "{}", args.join(" "));
        let all = format!("{}{}", out.text(), out.stderr);
        assert!(all.contains("key-x.xml"), "{}: {all}", args.join(" "));
    }

    // A FIFO lock file: `protect` into an empty ring must create a key under
    // the lock, and fails naming the lock instead of hanging.
    let (_tmp, ring) = fresh_ring();
    std::fs::create_dir(&ring).unwrap();
    mkfifo(&ring.join(".dataprotection.lock"));
    let out = run_in(&ring, &["protect", "x"], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(".dataprotection.lock"),
        "{}",
        out.stderr
    );
    assert!(key_files(&ring).is_empty());

    // A symlink to /dev/zero, and a 2 MiB file.
    let ring = vector_ring();
    std::os::unix::fs::symlink("/dev/zero", ring.path().join("key-zero.xml")).unwrap();
    let out = run_in(ring.path(), &["keys", "list"], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("key-zero.xml"), "{}", out.stderr);
    let ring = vector_ring();
    std::fs::write(ring.path().join("key-big.xml"), vec![b' '; 2 * 1024 * 1024]).unwrap();
    let out = run_in(ring.path(), &["keys", "list"], None);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("key-big.xml"), "{}", out.stderr);
}

#[test]
fn a_symlinked_key_file_still_loads() {
    let ring = vector_ring();
    let mount = tempfile::tempdir().unwrap();
    let name = "key-ba73c9ce-d322-4e45-af90-341307e11c00.xml";
    std::fs::rename(ring.path().join(name), mount.path().join(name)).unwrap();
    std::os::unix::fs::symlink(mount.path().join(name), ring.path().join(name)).unwrap();
    let keys = list_keys(ring.path());
    assert_eq!(keys.len(), 9);
    assert!(
        keys.iter()
            .any(|k| k["id"] == "ba73c9ce-d322-4e45-af90-341307e11c00")
    );
}

#[test]
fn a_key_file_with_100000_attributes_is_read() {
    // Under the 1 MiB cap, so it is parsed: quadratic attribute checks took
    // 22 s per command for such a file.
    let ring = vector_ring();
    let mut attrs = String::new();
    for i in 0..100_000u32 {
        let mut name = String::new();
        let mut n = i;
        loop {
            name.push(char::from_digit(n % 36, 36).unwrap());
            n /= 36;
            if n == 0 {
                break;
            }
        }
        attrs.push_str(&format!(" x{name}=''"));
    }
    let text = format!("<foreign{attrs} />");
    assert!(text.len() < 1024 * 1024);
    std::fs::write(ring.path().join("foreign.xml"), text).unwrap();
    let keys = list_keys(ring.path());
    assert_eq!(keys.len(), 9);
}

#[test]
fn read_only_commands_never_create_the_directory_or_a_key() {
    let (_tmp, missing) = fresh_ring();
    let payload = {
        let ring = vector_ring();
        protect(ring.path(), &[], "x")
    };
    for args in [
        vec!["unprotect", payload.as_str()],
        vec!["keys", "list"],
        vec!["prune", "--retain", "30d", "--dry-run"],
    ] {
        let out = run_in(&missing, &args, None);
        assert_eq!(out.code, 1, "{}: {}", args.join(" "), out.stderr);
        assert!(
            out.stderr.contains(missing.to_str().unwrap()),
            "{}: {}",
            args.join(" "),
            out.stderr
        );
        assert!(
            !missing.exists(),
            "{} created the directory",
            args.join(" ")
        );
    }
    let out = run_in(&missing, &["doctor"], None);
    assert_eq!(out.code, 1);
    assert!(!missing.exists(), "doctor created the directory");
    let out = run_in(
        &missing,
        &["keys", "delete", "--expired-before", "2020-01-01"],
        None,
    );
    assert_no_panic(&out, "keys delete");
    assert!(!missing.exists(), "keys delete created the directory");

    // A ring whose keys all expired: unprotect reads old payloads and adds no key.
    let ring = vector_ring();
    let payload = vector_json("protected_payloads.json")["positive"][0].clone();
    let before = key_files(ring.path());
    let mut args = vec!["unprotect".to_string()];
    args.extend(purpose_args(&strings(&payload["purposes"])));
    args.push(payload["protected_base64url"].as_str().unwrap().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_in(ring.path(), &args, None);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(key_files(ring.path()), before, "unprotect created a key");
}

fn weak_key_xml(id: Uuid, master: &[u8], activation: &str, expiration: &str) -> String {
    use dataprotection::crypto::{Algorithm, Secret};
    use dataprotection::xml::{Format, KeyXml, descriptor_element, parse_date};
    KeyXml {
        id,
        creation_date: parse_date("2020-01-01T00:00:00Z").unwrap(),
        activation_date: parse_date(activation).unwrap(),
        expiration_date: parse_date(expiration).unwrap(),
        descriptor: descriptor_element(Algorithm::default(), &Secret::new(master.to_vec())),
    }
    .to_element()
    .to_document(Format::Indented)
}

#[test]
fn doctor_flags_weak_master_keys_and_inverted_dates() {
    let (_tmp, ring) = fresh_ring();
    std::fs::create_dir(&ring).unwrap();
    let weak = Uuid::new_v4();
    std::fs::write(
        ring.join(format!("key-{weak}.xml")),
        weak_key_xml(weak, &[1], "2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z"),
    )
    .unwrap();
    let out = run_in(&ring, &["doctor", "--json"], None);
    assert_eq!(out.code, 1, "{}", out.text());
    let findings: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
    let finding = |check: &str| {
        findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == check)
            .unwrap()
            .clone()
    };
    assert_eq!(finding("key.strength")["status"], "error");
    assert!(
        finding("key.strength")["message"]
            .as_str()
            .unwrap()
            .contains(&weak.to_string())
    );
    assert_eq!(finding("ring.default")["status"], "error");

    // protect never uses it: a new key is created instead.
    let payload = protect(&ring, &[], "x");
    let id = dataprotection::payload::read_header(
        &dataprotection::payload::decode_text(&payload).unwrap(),
    )
    .unwrap();
    assert_ne!(id, weak);

    let inverted = Uuid::new_v4();
    std::fs::write(
        ring.join(format!("key-{inverted}.xml")),
        weak_key_xml(
            inverted,
            &[3; 64],
            "2021-01-01T00:00:00Z",
            "2020-06-01T00:00:00Z",
        ),
    )
    .unwrap();
    let out = run_in(&ring, &["doctor", "--json"], None);
    let findings: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
    let dates = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "key.dates")
        .unwrap();
    assert_eq!(dates["status"], "error");
    assert!(
        dates["message"]
            .as_str()
            .unwrap()
            .contains(&inverted.to_string())
    );
    assert!(
        dates["message"]
            .as_str()
            .unwrap()
            .contains("2021-01-01T00:00:00Z")
    );
}

/// Any string given to the date and duration parsers is a value or an error.
#[test]
fn any_argument_string_parses_or_is_refused() {
    use dpkeys::args::{add, parse_duration, parse_time, sub};
    let alphabet = [
        '0', '1', '9', '-', ':', 'T', 'Z', '+', '.', 'd', 'w', 'h', 'm', 's', ' ', 'é', '😀',
        '\u{661}',
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ok = 0;
    for _ in 0..50_000 {
        let len = (next() % 32) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let date = parse_time(&s);
        let duration = parse_duration(&s);
        if let (Ok(d), Ok(t)) = (parse_time("9999-12-31"), duration) {
            let _ = add(d, t, "x");
            let _ = sub(d, t, "x");
            ok += 1;
        }
        if date.is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0);
    for s in [
        "2020-01-01",
        "2020-01-01T00:00:00Z",
        "9999-12-31T23:59:59.9999999Z",
    ] {
        assert!(parse_time(s).is_ok(), "{s}");
    }
}

/// `doctor` names why the vault was not reached, and never advises granting
/// wrapKey for a network failure.
#[test]
fn doctor_advice_matches_an_unreachable_vault() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let ring = vector_ring();
    let dir = ring.path().to_str().unwrap();
    let refused = format!("https://127.0.0.1:{port}/keys/k");
    for (key, expected) in [
        (refused.as_str(), "nothing accepts connections"),
        (
            "https://dpkeys-hardening-test.invalid/keys/k",
            "does not resolve",
        ),
    ] {
        let out = run_env(
            &["--dir", dir, "--keyvault-key", key, "doctor", "--json"],
            &[("RUST_LOG", "error")],
        );
        assert_eq!(out.code, 1, "{}", out.stderr);
        let findings: serde_json::Value = serde_json::from_str(&out.text()).unwrap();
        let vault = findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["check"] == "keyvault.key")
            .unwrap();
        let message = vault["message"].as_str().unwrap();
        assert_eq!(vault["status"], "error", "{message}");
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("grant"), "{message}");
        assert!(!message.contains("retry policy expired"), "{message}");
    }
}
