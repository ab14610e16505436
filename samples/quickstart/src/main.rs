//! Run with: cargo run -p quickstart
fn main() {}
