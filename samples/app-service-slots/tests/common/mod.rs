//! Running the sample binary in tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// Every variable the sample reads, removed so the test environment cannot leak in.
pub const SAMPLE_VARS: &[&str] = &[
    "DATAPROTECTION_BLOB_URL",
    "DATAPROTECTION_KEYVAULT_KEY_ID",
    "DATAPROTECTION_APP_NAME",
    "LOCAL_MODE",
    "PORT",
    "BIND_ADDRESS",
    "SLOT_NAME",
    "WEBSITE_SLOT_NAME",
    "DATAPROTECTION_KEY_DIR",
    "AZURE_STORAGE_CONNECTION_STRING",
];

/// A running sample process; killed when dropped.
pub struct App {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stderr: Arc<Mutex<String>>,
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl App {
    /// Starts the sample with `envs` (plus `PORT=0`) and waits for its address line.
    pub async fn start(envs: &[(&str, &str)]) -> App {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_app-service-slots"));
        for var in SAMPLE_VARS {
            cmd.env_remove(var);
        }
        cmd.env("PORT", "0")
            .env("RUST_LOG", "info,dataprotection_axum=debug")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(StdDuration::from_secs(120), lines.next_line()).await;
        let app_stderr = stderr.lock().unwrap().clone();
        let line = match first {
            Ok(Ok(Some(line))) => line,
            other => panic!("the sample did not start ({other:?}); stderr:\n{app_stderr}"),
        };
        // Keep draining stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        App { child, url, stderr }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}
