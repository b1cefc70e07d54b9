#!/usr/bin/env bash
# Cross-builds the tract backend plugin (the ARM CPU engine) for aarch64-unknown-linux-gnu and
# runs the backend conformance suite on it under qemu-aarch64. Installs what it needs
# (Debian: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user; rustup target), idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu

need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null 2>&1 || need_apt+=(qemu-user)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "cross-aarch64: installing ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

cargo build --release --target "$TARGET" -p dicesim-backend-tract
file "target/$TARGET/release/libdicesim_backend_tract.so" 2>/dev/null || true
# Only the tract plugin exists for this target; the others are x86-64 engines here.
DICESIM_TEST_BACKENDS=tract DICESIM_REQUIRE_BACKENDS=1 \
  DICESIM_PLUGIN_PATH="$PWD/target/$TARGET/release" \
  cargo test --release --target "$TARGET" -p dicesim-backend-conformance -- "${@}"
