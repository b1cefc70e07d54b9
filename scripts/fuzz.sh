#!/usr/bin/env bash
# Builds every fuzz target (fuzz/, cargo-fuzz on the nightly toolchain, its own target dir
# fuzz/target) and runs each for SECONDS (default 600) on its corpus (fuzz/corpus/<t>,
# git-ignored, grown from the committed seeds in fuzz/seeds/<t>). Prints executions and
# findings per target; crashes land in fuzz/artifacts/<t>/. Exit 1 if any target found one.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     # default: 600 s each, every target
#   scripts/fuzz.sh 30                        # the smoke run (30 s each, ~6 min in all)
#
# Not part of scripts/test-all.sh (CI): CI has no nightly toolchain guarantee and the full
# run takes ~100 minutes. Needs: rustup nightly, `cargo install cargo-fuzz`.
set -uo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz missing (cargo install cargo-fuzz)" >&2; exit 2; }
# FUZZ_NO_BUILD=1 runs the binaries already built (a checkout others are editing may not
# build at the moment)
[ -n "${FUZZ_NO_BUILD:-}" ] || cargo +nightly fuzz build || exit 2
bins=fuzz/target/x86_64-unknown-linux-gnu/release
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
mkdir -p fuzz/logs
# the targets' scratch folders (fuzz/src/lib.rs: dicesim-fuzz-<pid> under the temporary
# folder) go to one folder of this run, removed at the end
scratch=$(mktemp -d -t dicesim-fuzz-run.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
found=0
printf '%-14s %12s %10s %8s  %s\n' target executions exec/s corpus result
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    log="fuzz/logs/$t.log"
    # rss_limit: a parser must not need GBs for a small input; timeout: nor seconds
    # the built binary, run as `cargo fuzz run` runs it (without rebuilding first)
    mkdir -p "fuzz/artifacts/$t"
    TMPDIR="$scratch" "$bins/$t" -artifact_prefix="fuzz/artifacts/$t/" -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        "fuzz/corpus/$t" "fuzz/seeds/$t" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
    result=ok
    if [ $rc -ne 0 ]; then
        found=1
        result="FOUND (see $log, fuzz/artifacts/$t/)"
    fi
    printf '%-14s %12s %10s %8s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$corpus" "$result"
done
exit $found
