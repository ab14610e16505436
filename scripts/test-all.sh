#!/usr/bin/env bash
# Runs every check and every test, Azurite- and emulator-backed ones and the
# sample's headless-browser test included.
# Needs Rust, Node.js (with npm) and Python 3 (with venv); installs Azurite from
# tests/package-lock.json, checkov/pytest from infra/requirements.txt,
# cargo-deny with cargo, and with apt-get (Debian) OpenSSL headers for
# azure_identity's client-certificate credential and Chromium + chromedriver.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== installing the pinned Azurite (tests/package-lock.json)"
(cd tests && npm ci --no-audit --no-fund --loglevel=error)

# apt-get install, as root or through sudo, running `apt-get update` first if
# the package lists are stale; fails with instructions when it cannot.
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "test-all: install the packages $* (Debian names) and run again" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    local as_root=()
    [[ $(id -u) -eq 0 ]] || as_root=(sudo)
    if ! "${as_root[@]}" apt-get install -y --no-install-recommends "$@"; then
        "${as_root[@]}" apt-get update
        "${as_root[@]}" apt-get install -y --no-install-recommends "$@" || {
            echo "test-all: could not install $* with apt-get; install them" \
                "(as root: apt-get update && apt-get install -y $*) and run again" >&2
            exit 1
        }
    fi
}

echo "== OpenSSL headers (azure_identity's ClientCertificateCredential)"
pkg-config --exists openssl 2>/dev/null || apt_install pkg-config libssl-dev

echo "== headless Chromium for the sample's browser test (Debian chromium, chromium-driver)"
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    apt_install chromium chromium-driver
fi
/usr/bin/chromium --version 2>/dev/null

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
