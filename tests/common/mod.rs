//! Helpers shared by the integration tests that build the emulation rig.

use std::path::Path;
use std::process::{Command, Stdio};

/// Whether the emulation rig can be built here (root, iproute2's `tc`, the cgroup v1
/// cpuset controller). When it cannot: with `CI` set the test fails (a test that cannot
/// run is a failure there, not a skip); otherwise it says SKIPPED on stderr and the caller
/// returns.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let tools = Command::new("tc")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if root && tools && Path::new("/sys/fs/cgroup/cpuset").exists() {
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
    let mut s = String::from("name = \"emulated rig\"\n");
    for i in 0..n {
        s += &format!(
            "[[device]]\nname = \"d{i}\"\nmemory_mb = 4096\nidle_w = 1.0\n  [[device.unit]]\n  name = \"cpu\"\n  kind = \"cpu\"\n  cores = 1\n  gflops = {gflops}\n  mem_gbps = 10.0\n  busy_w = 2.0\n  layer_overhead_us = 5.0\n"
        );
    }
    s += "[[switch]]\nname = \"sw\"\n";
    for i in 0..n {
        s += &format!("[[link]]\nname = \"d{i}-sw\"\nends = [\"d{i}\", \"sw\"]\nbandwidth_mbps = {mbps}\nlatency_us = 200.0\n");
    }
    s
}
