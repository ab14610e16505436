//! Run with: cargo run -p app-service-slots
fn main() {}
