//! Integration-test support for dataprotection: an Azurite harness (see [`azurite`]) and the
//! end-to-end tests under `tests/tests/`.

pub mod azurite;
