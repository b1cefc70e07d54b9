//! Visual outputs of a recorded run: a Chrome trace-event file (open in Perfetto or
//! chrome://tracing) and an SVG Gantt chart of the first frames.

use std::fmt::Write;
use std::path::Path;

use serde_json::json;

use crate::error::SimError;
use crate::scenario::ScenarioRun;

/// Chrome trace-event JSON: one track per unit, per link and per device's copy engine; one
/// complete slice per partition execution and per transfer (on every link it crosses), with
/// the frame in `args`.
pub fn chrome_trace(run: &ScenarioRun) -> String {
    let p = &run.scenario.prep.platform;
    let nu = p.units.len();
    let nl = p.links.len();
    let mut ev = Vec::new();
    let name_track = |tid: usize, name: &str| json!({"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}});
    for (u, unit) in p.units.iter().enumerate() {
        ev.push(name_track(u + 1, &unit.full_name));
    }
    for (l, link) in p.links.iter().enumerate() {
        ev.push(name_track(nu + l + 1, &format!("link {}", link.name)));
    }
    for (d, dev) in p.devices.iter().enumerate() {
        ev.push(name_track(nu + nl + d + 1, &format!("{} copy", dev.name)));
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    for j in &run.outcome.jobs {
        ev.push(
            json!({"ph": "X", "name": format!("p{} f{}", j.part, j.frame), "cat": "compute",
            "pid": 1, "tid": j.unit + 1, "ts": us(j.start), "dur": us(j.end - j.start),
            "args": {"frame": j.frame, "partition": j.part}}),
        );
    }
    for t in &run.outcome.transfers {
        let c = &run.plan.conns[t.conn];
        let name = format!("p{}->p{} f{}", c.from, c.to, t.frame);
        let args = json!({"frame": t.frame, "bytes": t.bytes, "from": c.from, "to": c.to});
        let tids: Vec<usize> = if t.links.is_empty() {
            let d = p.units[run.plan.parts[c.from].unit].device;
            vec![nu + nl + d + 1]
        } else {
            t.links.iter().map(|l| nu + l + 1).collect()
        };
        for tid in tids {
            ev.push(
                json!({"ph": "X", "name": name, "cat": "transfer", "pid": 1, "tid": tid,
                "ts": us(t.start), "dur": us(t.end - t.start), "args": args}),
            );
        }
    }
    serde_json::to_string(&json!({"traceEvents": ev, "displayTimeUnit": "ms"}))
        .expect("trace serialises")
}

/// SVG Gantt chart of the first `frames` frames: one row per unit and per link.
pub fn gantt_svg(run: &ScenarioRun, frames: u32) -> String {
    let p = &run.scenario.prep.platform;
    let nu = p.units.len();
    let rows: Vec<String> = p
        .units
        .iter()
        .map(|u| u.full_name.clone())
        .chain(p.links.iter().map(|l| format!("link {}", l.name)))
        .collect();
    // (row, start, end, frame, label)
    let mut bars: Vec<(usize, u64, u64, u32, String)> = Vec::new();
    for j in run.outcome.jobs.iter().filter(|j| j.frame < frames) {
        bars.push((j.unit, j.start, j.end, j.frame, format!("p{}", j.part)));
    }
    for t in run.outcome.transfers.iter().filter(|t| t.frame < frames) {
        for &l in &t.links {
            let c = &run.plan.conns[t.conn];
            bars.push((
                nu + l,
                t.start,
                t.end,
                t.frame,
                format!("{}>{}", c.from, c.to),
            ));
        }
    }
    let end = bars.iter().map(|b| b.2).max().unwrap_or(1).max(1) as f64;
    let (left, width, row_h, top) = (150.0, 1000.0, 24.0, 30.0);
    let height = top + row_h * rows.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="11">"#,
        left + width + 20.0
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="18">{} — first {frames} frame(s), {:.3} ms</text>"#,
        xml(&run.scenario.name),
        end / 1e6
    );
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let _ = writeln!(
            s,
            r##"<text x="4" y="{}">{}</text><line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#ddd"/>"##,
            y + 16.0,
            xml(r),
            left + width,
            y + row_h,
            y + row_h
        );
    }
    // time axis: ticks at a 1-2-5 step giving at most 10 intervals, with light grid lines
    let end_ms = end / 1e6;
    let raw = end_ms / 10.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&st| st >= raw)
        .unwrap_or(10.0 * mag);
    let axis_y = top + row_h * rows.len() as f64;
    let mut t = 0.0;
    while t <= end_ms + 1e-9 {
        let x = left + t / end_ms * width;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.2}" x2="{x:.2}" y1="{top}" y2="{}" stroke="#eee"/><text x="{x:.2}" y="{}" text-anchor="middle">{}</text>"##,
            axis_y + 4.0,
            axis_y + 16.0,
            fmt_ms(t)
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">ms</text>"#,
        left - 6.0,
        axis_y + 16.0
    );
    for (row, a, b, f, label) in &bars {
        let x = left + *a as f64 / end * width;
        let w = ((*b - *a) as f64 / end * width).max(0.5);
        let y = top + row_h * *row as f64 + 3.0;
        let hue = (*f as u64 * 47) % 360;
        let _ = writeln!(
            s,
            r##"<rect x="{x:.2}" y="{y}" width="{w:.2}" height="{}" fill="hsl({hue},60%,60%)" stroke="#333" stroke-width="0.3"><title>frame {f} {} {:.3}-{:.3} ms</title></rect>"##,
            row_h - 6.0,
            xml(label),
            *a as f64 / 1e6,
            *b as f64 / 1e6
        );
        if w > 30.0 {
            let _ = writeln!(
                s,
                r#"<text x="{:.2}" y="{}">f{f} {}</text>"#,
                x + 2.0,
                y + 13.0,
                xml(label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// A tick label: no more decimals than needed.
fn fmt_ms(t: f64) -> String {
    let r = format!("{t:.3}");
    r.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Writes the Chrome trace of `run` to `path`.
pub fn write_trace(run: &ScenarioRun, path: &Path) -> Result<(), SimError> {
    std::fs::write(path, chrome_trace(run)).map_err(|e| SimError::io(path, e))
}

/// Writes the Gantt chart of the first 10 frames of `run` to `path`.
pub fn write_gantt(run: &ScenarioRun, path: &Path) -> Result<(), SimError> {
    std::fs::write(path, gantt_svg(run, 10)).map_err(|e| SimError::io(path, e))
}
