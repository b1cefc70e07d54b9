//! `dicesim emulate` (root): 2- and 3-device rigs with namespaces, tbf-shaped links and
//! paced compute; outputs verified, throughput within what the shaping allows, nothing
//! left behind. Without root the tests fail when `CI` is set and are skipped (said on
//! stderr) otherwise.

mod common;
use common::{can_run, platform, tmp};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn leftovers(pid: u32) -> Vec<String> {
    let mut v = Vec::new();
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for l in String::from_utf8_lossy(&ns.stdout).lines() {
        if l.starts_with(&format!("ds{pid}")) {
            v.push(format!("netns {l}"));
        }
    }
    for ctl in ["cpu", "cpuset"] {
        for e in std::fs::read_dir(format!("/sys/fs/cgroup/{ctl}"))
            .unwrap()
            .flatten()
        {
            if e.file_name()
                .to_string_lossy()
                .starts_with(&format!("ds{pid}"))
            {
                v.push(format!("cgroup {}", e.path().display()));
            }
        }
    }
    let token_dir = format!("dicesim-emulate-{pid}");
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(&token_dir) {
                v.push(format!("process {}", e.file_name().to_string_lossy()));
            }
        }
    }
    v
}

/// Runs `emulate --json`; returns (success, report, stderr, pid of the run).
fn emulate(s: &Path) -> (bool, serde_json::Value, String, u32) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dicesim"))
        .args(["emulate", s.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = c.id();
    let t = Instant::now();
    while c.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(240) {
            let _ = c.kill();
            panic!("emulate ran for more than 240 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = c.wait_with_output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.success(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        pid,
    )
}

fn scenario(
    dir: &Path,
    zoo: &str,
    size: usize,
    n: usize,
    gflops: f64,
    mbps: f64,
    frames: u32,
) -> PathBuf {
    std::fs::write(dir.join("platform.toml"), platform(n, gflops, mbps)).unwrap();
    let p = dir.join("scenario.toml");
    std::fs::write(
        &p,
        format!("name = \"{zoo} emulated\"\nseed = 1\n[model]\nzoo = \"{zoo}\"\ninput_size = {size}\n[platform]\nfile = \"platform.toml\"\n[mapping]\nstrategy = \"even\"\n[workload]\nframes = {frames}\nperiod_ms = 0.0\n"),
    )
    .unwrap();
    p
}

/// Bytes per frame crossing between the two partitions (every cut tensor: a residual cut
/// carries two), from the report's edges.
fn cut_bytes_per_frame(v: &serde_json::Value) -> f64 {
    v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["from"].is_number() && e["to"].is_number())
        .map(|e| e["bytes"].as_f64().unwrap() / e["count"].as_f64().unwrap())
        .sum()
}

#[test]
fn two_devices_link_bound_throughput_and_no_leftovers() {
    if !can_run("two_devices_link_bound_throughput_and_no_leftovers") {
        return;
    }
    let d = tmp("two");
    // slow devices (the host is faster: no dilation) and a 4 Mbit/s link: the link bounds
    let s = scenario(&d, "resnet18", 32, 2, 2.0, 4.0, 16);
    let (ok, v, err, pid) = emulate(&s);
    assert!(ok, "{err}\n{v:#}");
    assert_eq!(v["mode"], "emulate");
    assert_eq!(v["frames_completed"], 16);
    assert_eq!(v["verification"]["ok"], true);
    let bytes = cut_bytes_per_frame(&v);
    // the cut crosses d0-sw then sw-d1 at 4 Mbit/s (the bridge forwards packet by packet,
    // so the bound is one link's rate)
    let bound_fps = 4e6 / 8.0 / bytes;
    let fps = v["throughput_fps"].as_f64().unwrap();
    eprintln!(
        "tensor {bytes} B/frame, bound {bound_fps:.1} fps, measured {fps:.1} fps, dilation {}",
        v["time_dilation"]
    );
    assert!(
        fps <= bound_fps * 1.15,
        "{fps} fps exceeds the link bound {bound_fps}"
    );
    assert!(
        fps >= bound_fps * 0.6,
        "{fps} fps far below the link bound {bound_fps}"
    );
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}

#[test]
fn three_devices_verified_and_no_leftovers() {
    if !can_run("three_devices_verified_and_no_leftovers") {
        return;
    }
    let d = tmp("three");
    let s = scenario(&d, "squeezenet1_1", 64, 3, 4.0, 100.0, 10);
    let (ok, v, err, pid) = emulate(&s);
    assert!(ok, "{err}\n{v:#}");
    assert_eq!(v["partitions"].as_array().unwrap().len(), 3);
    assert_eq!(v["frames_completed"], 10);
    assert_eq!(v["verification"]["ok"], true);
    assert!(v["time_dilation"].as_f64().unwrap() >= 1.0);
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}

#[test]
fn a_bad_platform_fails_cleanly_without_leftovers() {
    if !can_run("a_bad_platform_fails_cleanly_without_leftovers") {
        return;
    }
    let d = tmp("cycle");
    let mut p = platform(2, 2.0, 10.0);
    p += "[[link]]\nname = \"direct\"\nends = [\"d0\", \"d1\"]\nbandwidth_mbps = 10.0\nlatency_us = 1.0\n";
    let s = scenario(&d, "resnet18", 32, 2, 2.0, 10.0, 2);
    std::fs::write(d.join("platform.toml"), p).unwrap();
    let (ok, _, err, pid) = emulate(&s);
    assert!(!ok);
    assert!(err.contains("cycle"), "{err}");
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}
