//! Visual outputs of a recorded run: a Chrome trace-event file (open in Perfetto or
//! chrome://tracing) and an SVG Gantt chart of the first frames.

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

/// One bar of the Gantt chart.
struct Bar {
    row: usize,
    start_ns: u64,
    end_ns: u64,
    frame: u32,
    label: String,
}

/// Fill colour of frame `f`: hues spread around the wheel so neighbouring frames differ.
fn frame_colour(f: u32) -> plotters::style::HSLColor {
    plotters::style::HSLColor(((f as u64 * 47) % 360) as f64 / 360.0, 0.6, 0.6)
}

/// SVG Gantt chart of the first `frames` frames (drawn with `plotters`): one row per unit and
/// per link, one bar per partition execution and per transfer on each link it crosses,
/// coloured by frame and labelled `f<frame> p<partition>` or `f<frame> <from>><to>` where
/// there is room.
pub fn gantt_svg(run: &ScenarioRun, frames: u32) -> String {
    use plotters::prelude::*;

    let p = &run.scenario.prep.platform;
    let nu = p.units.len();
    let rows: Vec<String> = p
        .units
        .iter()
        .map(|u| u.full_name.clone())
        .chain(p.links.iter().map(|l| format!("link {}", l.name)))
        .collect();
    let mut bars: Vec<Bar> = Vec::new();
    for j in run.outcome.jobs.iter().filter(|j| j.frame < frames) {
        bars.push(Bar {
            row: j.unit,
            start_ns: j.start,
            end_ns: j.end,
            frame: j.frame,
            label: format!("p{}", j.part),
        });
    }
    for t in run.outcome.transfers.iter().filter(|t| t.frame < frames) {
        let c = &run.plan.conns[t.conn];
        for &l in &t.links {
            bars.push(Bar {
                row: nu + l,
                start_ns: t.start,
                end_ns: t.end,
                frame: t.frame,
                label: format!("{}>{}", c.from, c.to),
            });
        }
    }
    let end_ms = bars.iter().map(|b| b.end_ns).max().unwrap_or(1).max(1) as f64 / 1e6;
    let n = rows.len();
    // Row i is drawn in segment n-1-i so that the first row is at the top.
    let seg = |row: usize| n - 1 - row;
    let (w, h) = (1200u32, 70 + 26 * n as u32);
    let mut svg = String::new();
    let drawn: Result<(), Box<dyn std::error::Error>> = (|| {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let title = format!(
            "{} — first {frames} frame(s), {} ms",
            run.scenario.name,
            fmt_ms(end_ms)
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(130)
            .build_cartesian_2d(0f64..end_ms, (0..n.saturating_sub(1)).into_segmented())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .bold_line_style(RGBColor(221, 221, 221))
            .x_desc("ms")
            .x_label_formatter(&|t| fmt_ms(*t))
            .y_labels(n)
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(k) if *k < n => rows[n - 1 - *k].clone(),
                _ => String::new(),
            })
            .draw()?;
        chart.draw_series(bars.iter().map(|b| {
            let (y0, y1) = (
                SegmentValue::Exact(seg(b.row)),
                SegmentValue::Exact(seg(b.row) + 1),
            );
            let x1 = (b.end_ns as f64 / 1e6).max(b.start_ns as f64 / 1e6 + end_ms * 5e-4);
            Rectangle::new(
                [(b.start_ns as f64 / 1e6, y0), (x1, y1)],
                frame_colour(b.frame).filled(),
            )
        }))?;
        // Labels where the bar is wide enough (about 40 px).
        let px_per_ms = (w as f64 - 150.0) / end_ms;
        chart.draw_series(
            bars.iter()
                .filter(|b| (b.end_ns - b.start_ns) as f64 / 1e6 * px_per_ms > 40.0)
                .map(|b| {
                    Text::new(
                        format!("f{} {}", b.frame, b.label),
                        (b.start_ns as f64 / 1e6, SegmentValue::CenterOf(seg(b.row))),
                        ("sans-serif", 11).into_font().color(&BLACK),
                    )
                }),
        )?;
        root.present()?;
        Ok(())
    })();
    // The SVG backend draws into a String: nothing here can fail at run time.
    drawn.expect("drawing an SVG into a string does not fail");
    svg
}

/// A tick label: no more decimals than needed.
fn fmt_ms(t: f64) -> String {
    let r = format!("{t:.3}");
    r.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Writes the Chrome trace of `run` to `path`.
pub fn write_trace(run: &ScenarioRun, path: &Path) -> Result<(), SimError> {
    std::fs::write(path, chrome_trace(run)).map_err(|e| SimError::io(path, e))
}

/// Writes the Gantt chart of the first 10 frames of `run` to `path`.
pub fn write_gantt(run: &ScenarioRun, path: &Path) -> Result<(), SimError> {
    std::fs::write(path, gantt_svg(run, 10)).map_err(|e| SimError::io(path, e))
}
