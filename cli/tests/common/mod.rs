//! Helpers shared by the integration tests: run the built binary, copy the
//! vector ring, read the vector files.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a run of `dpkeys` produced.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// Stdout as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }

    /// Asserts success and returns stdout as text.
    pub fn ok(&self) -> String {
        assert_eq!(self.code, 0, "dpkeys failed: {}", self.stderr);
        self.text()
    }

    /// Asserts exit code 1 with `class` named on stderr (as `(class)`) and nothing on stdout.
    pub fn fails_with(&self, class: &str) {
        assert_eq!(
            self.code, 1,
            "expected failure ({class}), stderr: {}",
            self.stderr
        );
        assert!(
            self.stderr.contains(&format!("({class})")),
            "stderr does not name {class:?}: {}",
            self.stderr
        );
        assert!(self.stdout.is_empty(), "stdout not empty on failure");
    }
}

/// Runs `dpkeys args...` with `stdin` (empty when `None`).
pub fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dpkeys"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `dpkeys --dir DIR args...`.
pub fn run_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut all = vec!["--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all, stdin)
}

/// The core crate's test vectors.
pub fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/vectors")
}

/// A vector file, parsed.
pub fn vector_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(vectors().join(name)).unwrap()).unwrap()
}

/// A temporary copy of the vector key ring (9 keys, one per algorithm).
pub fn vector_ring() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(vectors().join("keyring")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    dir
}

/// A temporary directory with a not-yet-existing ring directory inside it.
pub fn fresh_ring() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("keys");
    (dir, ring)
}

/// The names of the files in `dir`, sorted (empty if it does not exist).
pub fn file_names(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The `key-*.xml` files in `dir`.
pub fn key_files(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| n.starts_with("key-") && n.ends_with(".xml"))
        .collect()
}

/// `keys list --json`, parsed.
pub fn list_keys(dir: &Path) -> Vec<serde_json::Value> {
    let out = run_in(dir, &["keys", "list", "--json"], None).ok();
    serde_json::from_str::<serde_json::Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The string values of a JSON array.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// `--purpose` arguments for `purposes`.
pub fn purpose_args(purposes: &[String]) -> Vec<String> {
    purposes
        .iter()
        .flat_map(|p| ["--purpose".to_string(), p.clone()])
        .collect()
}

/// Protects `text` in `dir` with `args` before it and returns the payload line.
pub fn protect(dir: &Path, args: &[&str], text: &str) -> String {
    let mut all = vec!["protect"];
    all.extend_from_slice(args);
    all.push(text);
    let out = run_in(dir, &all, None).ok();
    assert!(out.ends_with('\n') && out.lines().count() == 1, "{out:?}");
    out.trim_end().to_string()
}
