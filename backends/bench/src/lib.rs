//! Benchmarks only: see `benches/plugins.rs`.
