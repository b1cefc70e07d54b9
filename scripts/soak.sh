#!/usr/bin/env bash
# Soak run: two loopback workers (tract), `dicesim hil` streaming FRAMES frames (default
# 10000, saturated, window partitions + 2) of alexnet at 64 px split in two (the
# docs/examples two-board scenario). Samples the workers' RSS every 0.2 s and prints:
# RSS over the last 10% of the run vs 10%-20% (flat: within 5%), the longest gap between
# frame exits vs the median (no stall: < 10x), throughput per tenth of the run (steady),
# and where the longest gap arose: each partition's stages for the late frame, from the
# workers' per-run timeline (DICESIM_WORKER_TIMES), against their medians.
# Environment passes to the workers (DICESIM_LEAN_ALLOC=0: glibc's allocator defaults).
#
#   scripts/soak.sh [FRAMES] [TIMEOUT_S]      # default 10000 frames, 900 s
#
# Exit 1 if the run fails or a figure is out of bounds. Builds the release binary first.
set -euo pipefail
cd "$(dirname "$0")/.."
frames="${1:-10000}"
limit="${2:-900}"
cargo build --release --bin dicesim
bin="$PWD/target/release/dicesim"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
p0=$(free_port)
p1=$(free_port)
for port in "$p0" "$p1"; do
    DICESIM_WORKER_TIMES="$work/times-$port.csv" "$bin" worker --listen "127.0.0.1:$port" \
        --backend tract >"$work/worker-$port.log" 2>&1 &
    pids+=($!)
done
ex="$PWD/docs/examples"
cat >"$work/soak.toml" <<TOML
name = "soak"
[model]
zoo = "alexnet"
input_size = 64
[platform]
file = "$ex/platforms/two-boards.toml"
[mapping]
strategy = "explicit"
file = "$ex/mappings/alexnet-2way.toml"
[workload]
frames = $frames
period_ms = 0.0
[hil]
a = "127.0.0.1:$p0"
b = "127.0.0.1:$p1"
TOML
for port in "$p0" "$p1"; do
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
done

# RSS sampler: "t_s rss0_kb rss1_kb" lines while the run lasts. One process reading /proc:
# a shell loop forking date, bc and awk 25 times a second was load of its own on a
# 2-core machine, next to the run it measures.
python3 - "${pids[@]}" >"$work/rss.txt" <<'PY' &
import sys, time
pids, t0 = sys.argv[1:], time.monotonic()
def rss(p):
    try:
        return next(l.split()[1] for l in open(f"/proc/{p}/status") if l.startswith("VmRSS"))
    except (OSError, StopIteration):
        return "0"
while True:
    print(f"{time.monotonic() - t0:.3f} " + " ".join(rss(p) for p in pids), flush=True)
    time.sleep(0.2)
PY
sampler=$!
pids+=("$sampler")

start=$(date +%s)
rc=0
DICESIM_FRAME_TIMES="$work/frames.csv" timeout "$limit" "$bin" hil "$work/soak.toml" --json \
    >"$work/report.json" 2>"$work/hil.err" || rc=$?
kill "$sampler" 2>/dev/null || true
echo "hil exit status $rc after $(( $(date +%s) - start )) s"
[ $rc -eq 0 ] || { tail -5 "$work/hil.err"; exit 1; }

python3 - "$work" <<'PY'
import csv, glob, json, statistics, sys
work = sys.argv[1]
rep = json.load(open(f"{work}/report.json"))
print(f"frames completed {rep['frames_completed']}/{rep['frames']}, throughput "
      f"{rep['throughput_fps']:.1f} fps, latency p50 {rep['latency_ms']['p50']:.2f} ms, "
      f"max {rep['latency_ms']['max']:.2f} ms, workers' peak RSS (VmHWM) "
      + ", ".join(f"{d['name']} {d.get('memory_peak_mb')} MB" for d in rep["devices"]))
ok = rep["frames_completed"] == rep["frames"]

# RSS: samples during streaming, by share of the run
rows = [list(map(float, l.split())) for l in open(f"{work}/rss.txt") if len(l.split()) == 3]
exits = [(int(r["frame"]), int(r["exit_us"]) / 1e6) for r in csv.DictReader(open(f"{work}/frames.csv")) if r["exit_us"]]
span_end = rows[-1][0]
# the stream is the last part of the run (model shipping and loading come first)
stream_len = max(t for _, t in exits)
t0 = span_end - stream_len
def window(a, b):
    return [r for r in rows if t0 + a * stream_len <= r[0] <= t0 + b * stream_len]
for w, name in ((1, "worker a"), (2, "worker b")):
    early = statistics.mean(r[w] for r in window(0.1, 0.2)) / 1024
    late = statistics.mean(r[w] for r in window(0.9, 1.0)) / 1024
    growth = (late - early) / early
    flag = "ok" if abs(growth) <= 0.05 else "OUT OF BOUNDS"
    ok &= abs(growth) <= 0.05
    print(f"{name}: RSS 10-20% {early:.1f} MiB, last 10% {late:.1f} MiB, change {growth*100:+.2f}% ({flag})")
    series = " ".join(f"{r[w]/1024:.0f}" for r in rows[:: max(1, len(rows) // 20)])
    print(f"  RSS over time [MiB, every {max(1, len(rows)//20) * 0.2:.1f} s]: {series}")

# stalls: gaps between successive exits
t = sorted(x for _, x in exits)
gaps = [b - a for a, b in zip(t, t[1:])]
med = statistics.median(gaps)
worst = max(gaps)
at = t[gaps.index(worst)]
ok &= worst <= 10 * med
print(f"exit intervals: median {med*1e3:.3f} ms, longest {worst*1e3:.3f} ms at {at:.2f} s "
      f"= {worst/med:.1f}x median ({'ok' if worst <= 10*med else 'STALL'}); "
      f"p99 {statistics.quantiles(gaps, n=100)[98]*1e3:.3f} ms")

# where the longest gap arose: the late frame's stages on the workers vs their medians
runs = {}
for path in glob.glob(f"{work}/times-*.csv"):
    for line in open(path):
        f, p, *ts = map(int, line.split(","))
        runs[(f, p)] = [x / 1e9 for x in ts]  # ready, start, end, sent, cpu [s]
if runs:
    by_exit = sorted(exits, key=lambda e: e[1])
    i = gaps.index(worst)
    prev, late = by_exit[i][0], by_exit[i + 1][0]
    parts = sorted({p for _, p in runs})
    def stages(f):
        out, last = [], None
        for p in parts:
            r = runs.get((f, p))
            if r is None:
                return None
            if last is not None:
                out.append((f"hop {last}->{p}", r[0] - runs[(f, last)][3]))
            out += [(f"p{p} turn", r[1] - r[0]), (f"p{p} run", r[2] - r[1]), (f"p{p} send", r[3] - r[2])]
            last = p
        return out
    common = [f for f, _ in exits if stages(f)]
    meds = [statistics.median(s[k][1] for s in map(stages, common)) for k in range(len(stages(common[0])))]
    st = stages(late)
    if st:
        print(f"late frame {late} (after {prev}) on the workers [ms, median in ()]: "
              + ", ".join(f"{n} {v*1e3:.1f} ({m*1e3:.1f})" for (n, v), m in zip(st, meds)))
        lp = parts[-1]
        if (prev, lp) in runs:
            wgap = runs[(late, lp)][3] - runs[(prev, lp)][3]
            print(f"  the last partition handed frames {prev} and {late} over {wgap*1e3:.1f} ms apart "
                  f"(coordinator saw {worst*1e3:.1f} ms)")
        for p in parts:
            r = runs[(late, p)]
            if len(r) > 4:
                print(f"  p{p} run: {(r[2]-r[1])*1e3:.1f} ms wall, {r[4]*1e3:.1f} ms on the CPU "
                      "(the rest: the thread waited for a core)")
    # the workers' own longest interval between last-partition outputs
    lp = parts[-1]
    ws = sorted(r[3] for (f, p), r in runs.items() if p == lp)
    wg = [b - a for a, b in zip(ws, ws[1:])]
    print(f"workers' last-partition output intervals: median {statistics.median(wg)*1e3:.3f} ms, "
          f"longest {max(wg)*1e3:.1f} ms = {max(wg)/statistics.median(wg):.1f}x")

# steadiness: frames per second in each tenth of the stream
tenth = (t[-1] - t[0]) / 10
rates = [sum(1 for x in t if t[0] + i * tenth <= x < t[0] + (i + 1) * tenth) / tenth for i in range(10)]
mean = statistics.mean(rates)
cv = statistics.pstdev(rates) / mean
print("throughput per tenth [fps]: " + " ".join(f"{r:.0f}" for r in rates)
      + f"; min/mean {min(rates)/mean:.3f}, cv {cv*100:.1f}%")
sys.exit(0 if ok else 1)
PY
