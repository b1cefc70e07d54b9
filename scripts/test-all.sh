#!/usr/bin/env bash
# Set-up, then every check and test: formatting, lints, release build, all test suites.
# One release target dir is shared by the build, the tests and the benches.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo build --release --workspace --all-targets
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --no-fail-fast
