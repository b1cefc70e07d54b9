#!/usr/bin/env bash
# Set-up, then every check and test: formatting, lints, release build, all test suites.
# One release target dir is shared by the build, the tests and the benches.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
# Builds every backend plugin (cdylib) too: `cargo test` alone does not build them first.
cargo build --release --workspace --all-targets
cargo clippy --release --workspace --all-targets -- -D warnings
# The conformance suite loads the plugins built above.
DICESIM_PLUGIN_PATH="$PWD/target/release" cargo test --release --workspace --no-fail-fast
