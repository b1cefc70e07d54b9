//! Visual outputs of a recorded run: a Chrome trace-event file (open in Perfetto or
//! chrome://tracing) and an SVG Gantt chart of the first frames.
//!
//! Transfers that share a link (a Wi-Fi medium, a switch port) run concurrently, so both
//! outputs split a resource's activity into lanes: intervals in one lane never overlap.

mod gantt;

use std::path::Path;

use serde_json::{json, Value};

use crate::engine::TransferRecord;
use crate::error::SimError;
use crate::scenario::ScenarioRun;

pub use gantt::gantt_svg;

/// The lane of each interval `(start, end)` and the number of lanes: intervals in one lane do
/// not overlap (one may start where another ends). Greedy by start time, which uses as few
/// lanes as the largest number of intervals open at one instant.
pub(crate) fn lanes(spans: &[(u64, u64)]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| spans[i]);
    let mut free_at: Vec<u64> = Vec::new();
    let mut lane = vec![0; spans.len()];
    for i in order {
        let (start, end) = spans[i];
        match free_at.iter().position(|&f| f <= start) {
            Some(k) => {
                free_at[k] = end;
                lane[i] = k;
            }
            None => {
                lane[i] = free_at.len();
                free_at.push(end);
            }
        }
    }
    (lane, free_at.len())
}

/// One complete ("X") event before it is given a thread.
struct Slice {
    name: String,
    cat: &'static str,
    start: u64,
    end: u64,
    args: Value,
}

/// A resource whose activity is shown: a unit, a link or a device's copy engine.
struct Track {
    name: String,
    slices: Vec<Slice>,
}

/// The tracks of `run`, in the order units, links, copy engines, with their slices.
fn tracks(run: &ScenarioRun) -> Vec<Track> {
    let p = &run.scenario.prep.platform;
    let names = (p.units.iter().map(|u| u.full_name.clone()))
        .chain(p.links.iter().map(|l| format!("link {}", l.name)))
        .chain(p.devices.iter().map(|d| format!("{} copy", d.name)));
    let mut tracks: Vec<Track> = names
        .map(|name| Track {
            name,
            slices: Vec::new(),
        })
        .collect();
    for j in &run.outcome.jobs {
        tracks[j.unit].slices.push(Slice {
            name: format!("p{} f{}", j.part, j.frame),
            cat: "compute",
            start: j.start,
            end: j.end,
            args: json!({"frame": j.frame, "partition": j.part}),
        });
    }
    for t in &run.outcome.transfers {
        for k in transfer_tracks(run, t) {
            tracks[k].slices.push(transfer_slice(run, t));
        }
    }
    tracks
}

/// Indices (in `tracks` order) of the tracks transfer `t` occupies: every link it crosses, or
/// the copy engine of the producing device for a copy within a device.
fn transfer_tracks(run: &ScenarioRun, t: &TransferRecord) -> Vec<usize> {
    let p = &run.scenario.prep.platform;
    let (nu, nl) = (p.units.len(), p.links.len());
    if t.links.is_empty() {
        let c = &run.plan.conns[t.conn];
        vec![nu + nl + p.units[run.plan.parts[c.from].unit].device]
    } else {
        t.links.iter().map(|l| nu + l).collect()
    }
}

/// The slice of transfer `t` (the same on every track it occupies).
fn transfer_slice(run: &ScenarioRun, t: &TransferRecord) -> Slice {
    let c = &run.plan.conns[t.conn];
    Slice {
        name: format!("p{}->p{} f{}", c.from, c.to, t.frame),
        cat: "transfer",
        start: t.start,
        end: t.end,
        args: json!({"frame": t.frame, "bytes": t.bytes, "from": c.from, "to": c.to}),
    }
}

/// Appends `track` as one thread per lane, from thread id `tid` on (the first lane keeps the
/// track's name, further ones are "name #2", ...), and returns the next free thread id.
fn push_track(ev: &mut Vec<Value>, track: Track, tid: usize) -> usize {
    let spans: Vec<(u64, u64)> = track.slices.iter().map(|s| (s.start, s.end)).collect();
    let (lane, n) = lanes(&spans);
    for k in 0..n.max(1) {
        let name = match k {
            0 => track.name.clone(),
            _ => format!("{} #{}", track.name, k + 1),
        };
        ev.push(
            json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid + k,
            "args": {"name": name}}),
        );
        ev.push(
            json!({"ph": "M", "name": "thread_sort_index", "pid": 1, "tid": tid + k,
            "args": {"sort_index": tid + k}}),
        );
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    for (s, k) in track.slices.into_iter().zip(lane) {
        ev.push(
            json!({"ph": "X", "name": s.name, "cat": s.cat, "pid": 1, "tid": tid + k,
            "ts": us(s.start), "dur": us(s.end - s.start), "args": s.args}),
        );
    }
    tid + n.max(1)
}

/// Chrome trace-event JSON: one track per unit, per link and per device's copy engine (split
/// into lanes where its slices overlap, so that slices on one thread never partially
/// overlap, as Perfetto requires); one complete slice per partition execution and per
/// transfer (on every link it crosses), with the frame in `args`.
pub fn chrome_trace(run: &ScenarioRun) -> String {
    let mut ev = Vec::new();
    let mut tid = 1;
    for track in tracks(run) {
        tid = push_track(&mut ev, track, tid);
    }
    serde_json::to_string(&json!({"traceEvents": ev, "displayTimeUnit": "ms"}))
        .expect("trace serialises")
}

/// Writes the Chrome trace of `run` to `path`.
pub fn write_trace(run: &ScenarioRun, path: &Path) -> Result<(), SimError> {
    std::fs::write(path, chrome_trace(run)).map_err(|e| SimError::io(path, e))
}

/// Writes the Gantt chart of the first 10 frames of `run` to `path`.
pub fn write_gantt(run: &ScenarioRun, path: &Path) -> Result<(), SimError> {
    std::fs::write(path, gantt_svg(run, 10)).map_err(|e| SimError::io(path, e))
}
