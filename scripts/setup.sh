#!/usr/bin/env bash
# Installs everything dicesim needs on a fresh Debian machine, idempotently:
# the Rust toolchain check and the project-local Python packages used by the tests
# (ONNX checker and ONNX Runtime reference runs) under .deps/, and the inference engines the
# backend plugins load (ONNX Runtime, LibTorch) under .deps/ (scripts/setup-engines.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust with rustup (https://rustup.rs) and re-run" >&2
  exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "setup: installing python3 (Debian)"
  apt-get update -qq && apt-get install -y -qq python3 python3-pip >/dev/null
fi
if [ -x scripts/setup-python.sh ]; then
  scripts/setup-python.sh
fi
scripts/setup-engines.sh
echo "setup: done"
