//! The Chrome trace and the Gantt chart of runs where transfers share a Wi-Fi medium: slices
//! on one trace thread nest, Gantt bars in one lane do not overlap, unused rows are left out
//! and labels fit their bars.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dicesim_sim::trace::{chrome_trace, gantt_svg};
use dicesim_sim::{run_scenario, RunOptions, ScenarioRun};

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

fn recorded(name: &str) -> ScenarioRun {
    run_scenario(&scenario(name), RunOptions { record: true }).unwrap_or_else(|e| panic!("{e}"))
}

/// Complete slices `(ts, end)` [µs] of every `(pid, tid)` in a Chrome trace.
fn slices_by_thread(trace: &str) -> HashMap<(u64, u64), Vec<(f64, f64)>> {
    let v: serde_json::Value = serde_json::from_str(trace).expect("the trace is JSON");
    let mut by: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in v["traceEvents"].as_array().unwrap() {
        if e["ph"] == "X" {
            let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
            let key = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
            by.entry(key).or_default().push((ts, ts + dur));
        }
    }
    by
}

/// Whether two slices on one thread either nest or are disjoint (1 ns of rounding allowed).
fn nest_or_disjoint(a: (f64, f64), b: (f64, f64)) -> bool {
    let eps = 1e-3;
    let disjoint = a.1 <= b.0 + eps || b.1 <= a.0 + eps;
    let a_in_b = b.0 <= a.0 + eps && a.1 <= b.1 + eps;
    let b_in_a = a.0 <= b.0 + eps && b.1 <= a.1 + eps;
    disjoint || a_in_b || b_in_a
}

#[test]
fn trace_slices_on_one_thread_nest_even_on_a_shared_medium() {
    for name in ["googlenet-wifi-pipeedge.toml", "resnet50-wifi-even.toml"] {
        let run = recorded(name);
        let by = slices_by_thread(&chrome_trace(&run));
        for (key, mut s) in by {
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            for w in s.windows(2) {
                assert!(nest_or_disjoint(w[0], w[1]), "{name} {key:?}: {w:?}");
            }
        }
    }
}

#[test]
fn trace_keeps_every_slice_and_names_lanes_after_their_link() {
    let run = recorded("googlenet-wifi-pipeedge.toml");
    let v: serde_json::Value = serde_json::from_str(&chrome_trace(&run)).unwrap();
    let ev = v["traceEvents"].as_array().unwrap();
    let crossings: usize = run
        .outcome
        .transfers
        .iter()
        .map(|t| t.links.len().max(1))
        .sum();
    let transfers = ev
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "transfer");
    assert_eq!(transfers.count(), crossings);
    let names: Vec<&str> = ev
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"link wifi"), "{names:?}");
    assert!(
        names.contains(&"link wifi #2"),
        "concurrent transfers need a second lane"
    );
}

/// The value of attribute `name` in the element text `el`.
fn attr(el: &str, name: &str) -> Option<f64> {
    let at = el.find(&format!(" {name}=\""))? + name.len() + 3;
    el[at..].split('"').next()?.parse().ok()
}

/// The `(x, y, width, height)` of every bar (every non-white rectangle) of a Gantt SVG.
fn bars(svg: &str) -> Vec<[f64; 4]> {
    svg.split("<rect")
        .skip(1)
        .filter(|el| !el.contains("fill=\"#FFFFFF\""))
        .map(|el| ["x", "y", "width", "height"].map(|a| attr(el, a).unwrap()))
        .collect()
}

/// Every `(x, y, text)` of a Gantt SVG.
fn texts(svg: &str) -> Vec<(f64, f64, String)> {
    svg.split("<text")
        .skip(1)
        .map(|el| {
            let body = el.split('>').nth(1).unwrap().split('<').next().unwrap();
            let body = body.trim().replace("&gt;", ">").replace("&lt;", "<");
            (attr(el, "x").unwrap(), attr(el, "y").unwrap(), body)
        })
        .collect()
}

#[test]
fn gantt_bars_in_one_lane_do_not_overlap() {
    for name in ["googlenet-wifi-pipeedge.toml", "vgg16-mixed4-pipeedge.toml"] {
        let mut b = bars(&gantt_svg(&recorded(name), 10));
        b.sort_by(|p, q| (p[1], p[0]).partial_cmp(&(q[1], q[0])).unwrap());
        for w in b.windows(2) {
            let same_lane = w[0][1] == w[1][1];
            assert!(
                !same_lane || w[0][0] + w[0][2] <= w[1][0] + 1.0,
                "{name}: {w:?}"
            );
        }
    }
}

#[test]
fn gantt_leaves_out_unused_units_and_has_a_legend() {
    let svg = gantt_svg(&recorded("googlenet-wifi-pipeedge.toml"), 10);
    let t: Vec<String> = texts(&svg).into_iter().map(|t| t.2).collect();
    for used in [
        "nano.gpu",
        "rpi4.cpu",
        "nx.gpu",
        "link wifi",
        "time [ms]",
        "f9",
    ] {
        assert!(t.iter().any(|s| s == used), "{used} missing from {t:?}");
    }
    for unused in ["nano.cpu", "nx.cpu"] {
        assert!(!t.iter().any(|s| s == unused), "empty row {unused}");
    }
    assert!(t.iter().any(|s| s.starts_with("compute")));
    assert!(t.iter().any(|s| s.starts_with("transfer")));
}

#[test]
fn gantt_labels_fit_inside_their_bars() {
    for name in ["googlenet-wifi-pipeedge.toml", "resnet50-wifi-even.toml"] {
        let svg = gantt_svg(&recorded(name), 10);
        let b = bars(&svg);
        let inside = |x: f64, y: f64| {
            b.iter()
                .find(|r| r[0] <= x && x <= r[0] + r[2] && r[1] <= y && y <= r[1] + r[3])
        };
        let labels = texts(&svg).into_iter().filter(|t| t.2.starts_with('f'));
        for (x, y, text) in labels {
            // Legend entries lie outside every bar.
            let Some(r) = inside(x, y) else { continue };
            let width = text.chars().count() as f64 * 6.5;
            assert!(
                x + width <= r[0] + r[2] + 1.0,
                "{name}: `{text}` overflows {r:?}"
            );
        }
    }
}
