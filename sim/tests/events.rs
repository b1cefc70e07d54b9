//! Platform events (`docs/events.md`): the file format's errors, a device lost with and
//! without re-planning, a link slowed down as the network model predicts, a slowdown
//! re-planned, determinism.

use std::path::{Path, PathBuf};

use dicesim_sim::events::{Action, OnDeviceLoss, ReplanStrategy};
use dicesim_sim::{run_scenario, RunOptions, Scenario, ScenarioRun};

mod common;

/// A fresh temporary folder of this test, removed when it ends.
fn tmp(name: &str) -> common::TmpDir {
    common::tmp("events", name)
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Three boards on a 100 Mbit/s switch; every layer costs its unit's overhead (the rates are
/// huge), so stage times are easy to tell apart from transfers.
const THREE_BOARDS: &str = r#"
name = "three boards"
[[device]]
name = "a"
memory_mb = 1024
idle_w = 1.0
  [[device.unit]]
  name = "cpu"
  kind = "cpu"
  gflops = 1e9
  mem_gbps = 1e9
  busy_w = 2.0
  layer_overhead_us = 100.0
[[device]]
name = "b"
memory_mb = 1024
idle_w = 1.0
  [[device.unit]]
  name = "cpu"
  kind = "cpu"
  gflops = 1e9
  mem_gbps = 1e9
  busy_w = 2.0
  layer_overhead_us = 100.0
[[device]]
name = "c"
memory_mb = 1024
idle_w = 1.0
  [[device.unit]]
  name = "cpu"
  kind = "cpu"
  gflops = 1e9
  mem_gbps = 1e9
  busy_w = 2.0
  layer_overhead_us = 100.0
[[switch]]
name = "sw"
[[link]]
name = "a-sw"
ends = ["a", "sw"]
bandwidth_mbps = 100.0
latency_us = 100.0
[[link]]
name = "b-sw"
ends = ["b", "sw"]
bandwidth_mbps = 100.0
latency_us = 100.0
[[link]]
name = "c-sw"
ends = ["c", "sw"]
bandwidth_mbps = 100.0
latency_us = 100.0
"#;

/// A scenario on the three boards: alexnet at 64 px in three even stages, `frames` frames
/// back to back, then `extra` (events, `[adapt]`).
fn scenario(dir: &Path, frames: u32, extra: &str) -> PathBuf {
    scenario_with(dir, frames, "", extra)
}

/// [`scenario`] with more keys in `[mapping]`.
fn scenario_with(dir: &Path, frames: u32, mapping: &str, extra: &str) -> PathBuf {
    write(dir, "three.toml", THREE_BOARDS);
    write(
        dir,
        "s.toml",
        &format!(
            "seed = 1\n[model]\nzoo = \"alexnet\"\ninput_size = 64\n[platform]\n\
             file = \"three.toml\"\n[mapping]\nstrategy = \"even\"\n{mapping}[workload]\n\
             frames = {frames}\nperiod_ms = 0.0\n{extra}"
        ),
    )
}

fn run(path: &Path) -> ScenarioRun {
    run_scenario(path, RunOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn error(path: &Path) -> String {
    Scenario::load(path).expect_err("must fail").to_string()
}

#[test]
fn events_traces_and_adapt_are_read_and_checked() {
    let d = tmp("read");
    write(&d, "bw.csv", "time_ms,bandwidth_mbps\n10,50\n2.5, 20\n");
    let s = scenario(
        &d,
        4,
        "[[event]]\nat_ms = 5.0\ndevice = \"c\"\naction = \"down\"\n\
         [[trace]]\nlink = \"b-sw\"\nfile = \"bw.csv\"\n\
         [adapt]\non_device_loss = \"replan\"\nstrategy = \"explore\"\nbudget = 30\n",
    );
    let sc = Scenario::load(&s).unwrap();
    let at: Vec<f64> = sc.events.iter().map(|e| e.at_ms).collect();
    assert_eq!(at, [2.5, 5.0, 10.0], "sorted by time");
    assert_eq!(sc.events[1].action, Action::Down { device: 2 });
    assert_eq!(
        sc.events[0].action,
        Action::Bandwidth {
            link: 1,
            mbps: 20.0
        }
    );
    assert_eq!(sc.adapt.on_device_loss, OnDeviceLoss::Replan);
    assert_eq!(sc.adapt.strategy, ReplanStrategy::Explore);
    assert_eq!((sc.adapt.budget, sc.adapt.slowdown_factor), (30, 2.0));
}

#[test]
fn mistakes_in_events_are_one_clear_error_naming_the_file_and_key_or_line() {
    let d = tmp("errors");
    write(&d, "bad.csv", "time_ms,bandwidth_mbps\n0,100\n5,fast\n");
    let cases: [(&str, &[&str]); 9] = [
        (
            "[adapt]\non_device_los = \"replan\"\n",
            &["[adapt]", "on_device_los", "did you mean `on_device_loss`"],
        ),
        (
            "[adapt]\non_device_loss = \"retry\"\n",
            &["unknown variant `retry`", "replan"],
        ),
        (
            "[[event]]\nat_ms = 1.0\ndevice = \"d\"\naction = \"down\"\n",
            &["event[0].device", "no device `d`"],
        ),
        (
            "[[event]]\nat_ms = 1.0\nlink = \"x-sw\"\nbandwidth_mbps = 5.0\n",
            &["event[0].link", "no link `x-sw`", "did you mean"],
        ),
        (
            "[[event]]\nat_ms = -1.0\ndevice = \"c\"\naction = \"down\"\n",
            &["event[0].at_ms", "time >= 0"],
        ),
        (
            "[[event]]\nat_ms = 1.0\ndevice = \"c\"\nbandwidth_mbps = 5.0\n",
            &["event[0]", "either `device` and `action`"],
        ),
        (
            "[[trace]]\nlink = \"a-sw\"\nfile = \"bad.csv\"\n",
            &["bad.csv", "line 3", "two numbers"],
        ),
        (
            "[[trace]]\nlink = \"a-sw\"\nfile = \"missing.csv\"\n",
            &["s.toml", "trace[0].file", "missing.csv"],
        ),
        (
            "[adapt]\nslowdown_factor = 0.5\n",
            &["adapt.slowdown_factor", "> 1"],
        ),
    ];
    for (extra, want) in cases {
        let e = error(&scenario(&d, 2, extra));
        for w in want {
            assert!(e.contains(w), "{extra:?}: `{e}` lacks `{w}`");
        }
        assert!(!e.contains('\n'), "one line: {e}");
    }
}

const LOSS: &str = "[[event]]\nat_ms = 5.0\ndevice = \"c\"\naction = \"down\"\n";

#[test]
fn a_device_lost_mid_stream_is_replanned_and_every_frame_completes_once() {
    let d = tmp("loss");
    let s = scenario(
        &d,
        40,
        &format!("{LOSS}[adapt]\non_device_loss = \"replan\"\n"),
    );
    let r = run(&s);
    assert_eq!(r.report.failed_frames, Some(0));
    assert_eq!(
        r.outcome.exit_ns.len(),
        40,
        "every frame completes exactly once"
    );
    let replans = r.report.replans.as_ref().unwrap();
    assert_eq!(replans.len(), 1);
    let p = &replans[0];
    assert_eq!((p.at_ms, p.reason.as_str()), (5.0, "device c down"));
    assert!(p.frames_rerun > 0, "frames in flight are run again");
    assert!(p.mapping_before.iter().any(|m| m.starts_with("c.cpu")));
    assert!(p.mapping_after.iter().all(|m| !m.starts_with("c.cpu")));
    assert_eq!(p.detect_ms, dicesim_sim::events::LOSS_DETECT_MS);
    // the last frame leaves after the loss, its detection, the plan and the deployment
    let resume = 5.0 + p.detect_ms + p.plan_ms + p.deploy_ms;
    assert!(
        r.report.makespan_ms > resume,
        "{} <= {resume}",
        r.report.makespan_ms
    );
    let text = r.report.to_text();
    assert!(text.contains("re-plan at 5 ms: device c down"), "{text}");
}

#[test]
fn a_device_lost_without_replanning_fails_the_frames_not_completed() {
    let d = tmp("fail");
    let s = scenario(&d, 40, LOSS);
    let r = run(&s);
    let failed = r.report.failed_frames.unwrap();
    assert!(failed > 0 && failed < 40, "{failed}");
    assert_eq!(r.outcome.exit_ns.len() as u32 + failed, 40);
    assert_eq!(r.report.replans.as_deref(), Some(&[][..]));
    assert!(r.report.makespan_ms <= 5.0);
}

#[test]
fn a_device_the_plan_does_not_use_changes_nothing() {
    let d = tmp("unused");
    let two = "units = [\"a.cpu\", \"b.cpu\"]\n";
    let with = run(&scenario_with(&d, 20, two, LOSS)).report;
    let without = run(&scenario_with(&d, 20, two, "")).report;
    assert_eq!(with.failed_frames, Some(0));
    assert_eq!(with.replans.as_deref(), Some(&[][..]));
    assert_eq!(
        (with.latency_ms, with.makespan_ms),
        (without.latency_ms, without.makespan_ms)
    );
}

#[test]
fn a_bandwidth_drop_paces_frames_at_the_link_rate() {
    let d = tmp("drop");
    // the first cut of the even alexnet plan crosses a-sw; at 1 Mbit/s its transfer, not a
    // 100 us layer, is the bottleneck: one frame per bytes x 8 / 1e6 s
    let s = scenario(
        &d,
        60,
        "[[event]]\nat_ms = 5.0\nlink = \"a-sw\"\nbandwidth_mbps = 1.0\n",
    );
    let r = run(&s);
    assert_eq!(r.report.failed_frames, Some(0));
    assert!(
        r.report.replans.as_ref().unwrap().is_empty(),
        "ignore is the default"
    );
    let bytes = r.report.partitions[0].out_bytes as f64;
    // each transfer also pays the route latency (a-sw + b-sw), one frame at a time
    let expected_ns = bytes * 8.0 / 1e6 * 1e9 + 200_000.0;
    let x = &r.outcome.exit_ns;
    let gap = (x[59] - x[49]) as f64 / 10.0;
    assert!((gap - expected_ns).abs() < 2.0, "{gap} vs {expected_ns}");
    let before = run(&scenario(&d, 60, ""));
    assert!(r.report.makespan_ms > 10.0 * before.report.makespan_ms);
}

#[test]
fn a_slowdown_is_replanned_when_asked() {
    // alexnet's weights take seconds to ship at 100 Mbit/s: enough frames that the new plan
    // is deployed before the old one would have finished
    let d = tmp("slow");
    let drop = "[[event]]\nat_ms = 5.0\nlink = \"c-sw\"\nbandwidth_mbps = 1.0\n";
    let s = scenario(
        &d,
        1000,
        &format!("{drop}[adapt]\non_slowdown = \"replan\"\n"),
    );
    let r = run(&s);
    assert_eq!(r.report.failed_frames, Some(0));
    assert_eq!(r.outcome.exit_ns.len(), 1000);
    let replans = r.report.replans.as_ref().unwrap();
    assert_eq!(replans.len(), 1, "{:?}", r.report.makespan_ms);
    assert_eq!(replans[0].reason, "link c-sw at 1 Mbit/s (planned 100)");
    assert!(replans[0].detect_ms > 0.0);
    assert!(replans[0]
        .mapping_after
        .iter()
        .all(|m| !m.starts_with("c.cpu")));
    let ignored = run(&scenario(&d, 1000, drop));
    assert!(r.report.makespan_ms < ignored.report.makespan_ms);
}

#[test]
fn a_slowdown_replan_still_deploying_when_the_run_ends_is_reported() {
    // 30 frames end long before alexnet's weights reach their new boards at 100 Mbit/s
    let d = tmp("slow-short");
    let drop = "[[event]]\nat_ms = 5.0\nlink = \"c-sw\"\nbandwidth_mbps = 1.0\n";
    let s = scenario(
        &d,
        30,
        &format!("{drop}[adapt]\non_slowdown = \"replan\"\n"),
    );
    let r = run(&s);
    assert_eq!(r.report.failed_frames, Some(0));
    let replans = r.report.replans.as_ref().unwrap();
    assert_eq!(replans.len(), 1);
    assert!(
        replans[0]
            .reason
            .ends_with("(not deployed: the run ended first)"),
        "{replans:?}"
    );
    assert_eq!(replans[0].frames_rerun, 0);
    let p = &replans[0];
    let ready = p.at_ms + p.detect_ms + p.plan_ms + p.deploy_ms;
    assert!(ready > r.report.makespan_ms, "{replans:?}");
}

#[test]
fn an_explore_replan_avoids_the_lost_device() {
    let d = tmp("explore");
    let s = scenario(
        &d,
        30,
        &format!(
            "{LOSS}[adapt]\non_device_loss = \"replan\"\nstrategy = \"explore\"\nbudget = 40\n"
        ),
    );
    let r = run(&s);
    assert_eq!(r.report.failed_frames, Some(0));
    let p = &r.report.replans.as_ref().unwrap()[0];
    assert!(
        p.mapping_after.iter().all(|m| !m.starts_with("c.cpu")),
        "{p:?}"
    );
    assert_eq!(
        p.plan_ms,
        40.0 * dicesim_sim::events::PLAN_MS_PER_EVALUATION
    );
}

#[test]
fn runs_with_events_are_deterministic() {
    let d = tmp("det");
    let s = scenario(
        &d,
        40,
        &format!(
            "{LOSS}[[event]]\nat_ms = 2.0\nlink = \"b-sw\"\nbandwidth_mbps = 10.0\n\
             [adapt]\non_device_loss = \"replan\"\non_slowdown = \"replan\"\n"
        ),
    );
    let a = run(&s).report.to_json();
    let b = run(&s).report.to_json();
    assert_eq!(a, b);
    assert!(a.contains("\"replans\""));
}

#[test]
fn scenarios_without_events_report_neither_replans_nor_failed_frames() {
    let d = tmp("none");
    let json = run(&scenario(&d, 4, "")).report.to_json();
    assert!(!json.contains("replans") && !json.contains("failed_frames"));
}

#[test]
fn explore_can_minimise_the_p95_latency_under_the_events() {
    // c is the fastest board but is lost at 5 ms: by the plan's own latency the best mapping
    // runs on c alone; by the p95 under the loss it avoids c
    let d = tmp("robust");
    let search = |latency: &str| {
        let s = scenario(
            &d,
            40,
            &format!(
                "{LOSS}[adapt]\non_device_loss = \"replan\"\nexplore_latency = \"{latency}\"\n"
            ),
        );
        let fast_c = THREE_BOARDS
            .replacen("layer_overhead_us = 100.0", "layer_overhead_us = 10.0", 3)
            .replacen("layer_overhead_us = 10.0", "layer_overhead_us = 100.0", 2);
        write(&d, "three.toml", &fast_c);
        let sc = Scenario::load(&s).unwrap();
        let opts = dicesim_sim::explore::ExploreOptions {
            budget: 150,
            core_sets: false,
            exhaustive_limit: 0,
            ..Default::default()
        };
        let res = dicesim_sim::explore::explore(&sc, opts, None).unwrap();
        res.front[0].part_units.clone()
    };
    let c = 2;
    assert_eq!(search("plan"), [c], "the plan's own latency: all on c");
    let robust = search("events_p95");
    assert!(!robust.contains(&c), "{robust:?}");
}

#[test]
fn a_loss_while_a_slowdown_replan_is_deployed_wins() {
    // the slowdown's new plan takes seconds to ship; b is lost meanwhile
    let d = tmp("both");
    let s = scenario(
        &d,
        1000,
        "[[event]]\nat_ms = 5.0\nlink = \"c-sw\"\nbandwidth_mbps = 1.0\n\
         [[event]]\nat_ms = 2000.0\ndevice = \"b\"\naction = \"down\"\n\
         [adapt]\non_slowdown = \"replan\"\non_device_loss = \"replan\"\n",
    );
    let r = run(&s);
    assert_eq!(r.report.failed_frames, Some(0));
    assert_eq!(r.outcome.exit_ns.len(), 1000);
    let replans = r.report.replans.as_ref().unwrap();
    assert_eq!(replans[0].reason, "device b down", "{replans:?}");
}
