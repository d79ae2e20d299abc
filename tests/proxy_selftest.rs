//! Runs the fault proxy's own tests: `cargo test --test proxy_selftest`.
#[path = "support/fault_proxy.rs"]
mod fault_proxy;
