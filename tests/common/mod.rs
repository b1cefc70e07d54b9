//! Helpers shared by the integration tests: the binary, fresh temporary folders, the
//! emulation rig's availability and test platforms.
// Each test file compiles this module on its own and uses only some of the helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `dicesim` binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dicesim"))
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

mod tmp_dir;
pub use tmp_dir::TmpDir;

/// A fresh, empty temporary folder for one test (`dicesim-test-<name>-` and a random
/// suffix), removed with what it holds when the test ends (passed or failed): some tests
/// write hundreds of megabytes of sub-models.
pub fn tmp(name: &str) -> TmpDir {
    tmp_dir::with_prefix(&format!("dicesim-test-{name}-"))
}

/// The command succeeded (else its stderr is the failure message).
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the emulation rig can be built here (root, iproute2's `tc`, the cgroup v1
/// cpuset controller). When it cannot: with `CI` set the test fails (a test that cannot
/// run is a failure there, not a skip); otherwise it says SKIPPED on stderr and the caller
/// returns.
pub fn can_run(test: &str) -> bool {
    let tools = Command::new("tc")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if dicesim_hil::sys::is_root() && tools && Path::new("/sys/fs/cgroup/cpuset").exists() {
        return true;
    }
    let why = "needs root, iproute2 (ip, tc) and the cgroup v1 cpuset controller";
    if std::env::var_os("CI").is_some() {
        panic!("{test}: cannot run here: {why} (CI is set, so this is a failure, not a skip)");
    }
    eprintln!("SKIPPED {test}: {why}");
    false
}

/// A platform of `n` one-CPU boards `d0..` of `gflops` GFLOP/s, each linked to switch `sw`
/// at `mbps` Mbit/s and 200 us.
pub fn platform(n: usize, gflops: f64, mbps: f64) -> String {
    platform_with("emulated rig", n, gflops, mbps, 200.0)
}

/// A platform `name` of `n` one-CPU boards `d0..` of `gflops` GFLOP/s, each linked to
/// switch `sw` at `mbps` Mbit/s and `latency_us`.
pub fn platform_with(name: &str, n: usize, gflops: f64, mbps: f64, latency_us: f64) -> String {
    let mut s = format!("name = \"{name}\"\n");
    for i in 0..n {
        s += &format!(
            "[[device]]\nname = \"d{i}\"\nmemory_mb = 4096\nidle_w = 1.0\n  [[device.unit]]\n  name = \"cpu\"\n  kind = \"cpu\"\n  cores = 1\n  gflops = {gflops}\n  mem_gbps = 10.0\n  busy_w = 2.0\n  layer_overhead_us = 5.0\n"
        );
    }
    s += "[[switch]]\nname = \"sw\"\n";
    for i in 0..n {
        s += &format!("[[link]]\nname = \"d{i}-sw\"\nends = [\"d{i}\", \"sw\"]\nbandwidth_mbps = {mbps}\nlatency_us = {latency_us:.1}\n");
    }
    s
}
