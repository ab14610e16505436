#!/usr/bin/env bash
# Runs every check and every test, Azurite- and emulator-backed ones included.
# Needs Rust, Node.js (with npm) and Python 3 (with venv); installs Azurite from
# tests/package-lock.json and checkov/pytest from infra/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing the pinned Azurite (tests/package-lock.json)"
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

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
