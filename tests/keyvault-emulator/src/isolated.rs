//! Run a test in a child process whose environment points the real
//! `azure_identity::ManagedIdentityCredential` at an emulator.
//!
//! `ManagedIdentityCredential` reads `IDENTITY_ENDPOINT` / `IDENTITY_HEADER` from the process
//! environment only, and the SDK's default transport reads `SSL_CERT_FILE`. Setting environment
//! variables in a running, multi-threaded test binary is `unsafe` (edition 2024) and racy, so
//! instead [`run`] re-executes the current test binary for just this one test, with those
//! variables set through [`std::process::Command::env`]:
//!
//! - `IDENTITY_ENDPOINT=http://127.0.0.1:P/msi/token` (or `https://…` with [`MsiScheme::Https`]),
//!   where P is a free port reserved for the child's emulator;
//! - `IDENTITY_HEADER=<random secret>`;
//! - `SSL_CERT_FILE=<temp path>`: the emulator started with
//!   [`EmulatorOptions::from_identity_env`](crate::EmulatorOptions::from_identity_env) writes its CA
//!   there, so the SDK's default transport trusts it.
//!
//! In the child, `body` runs on a multi-threaded tokio runtime and should start its emulator with
//! `KeyVaultEmulator::start(EmulatorOptions::from_identity_env()?)` **before** building any SDK
//! client.
//!
//! ```no_run
//! #[test]
//! fn roundtrip() {
//!     keyvault_emulator::isolated::run("roundtrip", keyvault_emulator::isolated::MsiScheme::Http, || async {
//!         let emu = keyvault_emulator::KeyVaultEmulator::start(
//!             keyvault_emulator::EmulatorOptions::from_identity_env().unwrap(),
//!         )
//!         .await
//!         .unwrap();
//!         // ManagedIdentityCredential::new(None) and KeyClient::new(emu.base_url(), …) work here.
//!     });
//! }
//! ```

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::process::Command;

/// Environment variable marking the child process (value: the test name).
pub const CHILD_MARKER: &str = "KEYVAULT_EMULATOR_CHILD_TEST";

/// Which listener the child's `IDENTITY_ENDPOINT` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiScheme {
    /// The plain-http listener (no TLS trust needed for the credential).
    Http,
    /// The HTTPS listener (the credential trusts the CA through `SSL_CERT_FILE`).
    Https,
}

/// Whether the current process is the child for `test_name`.
pub fn is_child(test_name: &str) -> bool {
    std::env::var(CHILD_MARKER).is_ok_and(|v| v == test_name)
}

/// In the parent: re-runs `test_name` (its full libtest path, e.g. `my_test` or `module::my_test`)
/// in a child process with the identity environment and asserts that exactly that one test passed.
/// In the child: runs `body` on a fresh tokio runtime.
///
/// # Panics
/// When the child fails, does not run exactly one test, or cannot be spawned, or (in the child)
/// when the runtime cannot be built. This is a test helper.
pub fn run<F, Fut>(test_name: &str, msi: MsiScheme, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if is_child(test_name) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(body());
        return;
    }
    let port = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("reserve a loopback port");
    let secret = crate::util::hex(&crate::util::random_bytes(16));
    let scheme = match msi {
        MsiScheme::Http => "http",
        MsiScheme::Https => "https",
    };
    let ca_path = std::env::temp_dir().join(format!(
        "keyvault-emulator-ca-{}.pem",
        crate::util::hex(&crate::util::random_bytes(8))
    ));
    let exe = std::env::current_exe().expect("current test executable");
    let output = Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, test_name)
        .env(
            "IDENTITY_ENDPOINT",
            format!("{scheme}://127.0.0.1:{port}/msi/token"),
        )
        .env("IDENTITY_HEADER", &secret)
        .env("SSL_CERT_FILE", &ca_path)
        .output()
        .expect("spawn the test binary as a child");
    let _ = std::fs::remove_file(&ca_path);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("--- child stdout ---\n{stdout}\n--- child stderr ---\n{stderr}");
    assert!(
        output.status.success(),
        "child process for {test_name} failed ({})",
        output.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "child process did not run exactly the test {test_name}: is the name its full libtest path?"
    );
}
