#!/usr/bin/env bash
# Runs every check and every test, Azurite- and emulator-backed ones included.
# Needs Rust, Node.js (with npm) and Python 3 (with venv); installs Azurite from
# tests/package-lock.json and checkov/pytest from infra/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing the pinned Azurite (tests/package-lock.json)"
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

echo "== supply chain (cargo deny: advisories, licenses, duplicate versions, sources)"
# Pinned so that every machine judges the same rules; built once into ~/.cargo/bin.
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " ${CARGO_DENY_VERSION}$"; then
    cargo install cargo-deny --locked --version "${CARGO_DENY_VERSION}"
fi
# The RustSec advisory database is a git repository. Where it cannot be
# fetched, the last fetched copy (~/.cargo/advisory-dbs) is used offline; where there is
# none, the advisories cannot be judged here, and the run says so loudly (licenses, bans
# and sources are still checked; they need no network).
if timeout 180 cargo deny fetch db >/dev/null 2>&1; then
    cargo deny --locked check
elif compgen -G "${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/*/crates" >/dev/null; then
    echo "cargo deny: cannot reach the RustSec advisory database; using the cached copy"
    cargo deny --locked --offline check
else
    echo "::warning:: cargo deny: ADVISORIES NOT CHECKED: the RustSec advisory database" \
        "(a git repository) cannot be fetched from this machine; run" \
        "'cargo deny check advisories' on a machine that can fetch it"
    cargo deny --locked check licenses bans sources
fi

echo "== the openssl command (the independent RSA implementation of the Key Vault emulator tests)"
if ! command -v openssl >/dev/null; then
    apt-get update -qq && apt-get install -y -qq openssl >/dev/null \
        || { echo "openssl is needed: apt-get install openssl" >&2; exit 1; }
fi

echo "== formatting, lints, docs"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

echo "== tests"
cargo test --workspace --locked

echo "== infrastructure templates (checkov + property tests, in infra/.venv)"
bash scripts/check-infra.sh
