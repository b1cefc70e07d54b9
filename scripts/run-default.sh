#!/usr/bin/env bash
# Set-up, release build, then the main job on the default scenario:
# simulate resnet18 on two Jetson Xavier NX over gigabit Ethernet.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null
cargo build --release --quiet
exec target/release/dicesim run "${1:-scenarios/resnet18-nx2-pipeedge.toml}"
