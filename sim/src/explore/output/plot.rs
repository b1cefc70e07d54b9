//! `pareto.svg`: a 4-objective front in two panels. Left: latency vs throughput, each front
//! point coloured by its energy (colour bar beside), memory in its tooltip. Right: parallel
//! coordinates of the four objectives, each axis scaled to the front's range with the best
//! value at the bottom. Ids are those of `pareto.csv` (tooltips on every point; the extremes
//! and the knee labelled). Axes span the front (and the exhaustive front): a baseline
//! outside that range is drawn at the edge with an arrow pointing to where it lies, so one
//! poor baseline cannot squash the front into a corner.

use std::fmt::Write as _;

use super::{extremes, knee, Row};
use crate::explore::{ExploreResult, Point};
use crate::report::r6;
use crate::scenario::Scenario;

const TOP: f64 = 112.0;
const PH: f64 = 380.0;
const LEFT: f64 = 84.0;
const PW: f64 = 470.0;
const BAR_X: f64 = LEFT + PW + 22.0;
const PAR_X: f64 = BAR_X + 150.0;
const PAR_W: f64 = 420.0;

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// 1-2-5 ticks covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 6.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut v = Vec::new();
    while t <= hi + step * 1e-9 && v.len() < 20 {
        v.push(t);
        t += step;
    }
    v
}

/// One plot axis: padded range, linear or log.
struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
}

impl Axis {
    /// Covers `[lo, hi]`; logarithmic when that spans more than 20x.
    fn new(lo: f64, hi: f64) -> Axis {
        if lo > 0.0 && hi / lo > 20.0 {
            let (l, h) = (lo.ln(), hi.ln());
            let d = (h - l) * 0.05;
            return Axis {
                lo: (l - d).exp(),
                hi: (h + d).exp(),
                log: true,
            };
        }
        let d = ((hi - lo) * 0.06).max(hi.abs() * 0.01).max(1e-9);
        Axis {
            lo: lo - d,
            hi: hi + d,
            log: false,
        }
    }

    fn frac(&self, v: f64) -> f64 {
        if self.log {
            (v.max(1e-300).ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if !self.log {
            return ticks(self.lo, self.hi);
        }
        let mut v = Vec::new();
        let mut e = self.lo.log10().floor() as i32;
        while 10f64.powi(e) <= self.hi {
            for m in [1.0, 2.0, 5.0] {
                let t = m * 10f64.powi(e);
                if t >= self.lo && t <= self.hi {
                    v.push(t);
                }
            }
            e += 1;
        }
        v
    }
}

fn fmt_tick(t: f64) -> String {
    let r = format!("{:.6}", r6(t));
    let r = r.trim_end_matches('0').trim_end_matches('.');
    if r == "-0" {
        "0".into()
    } else {
        r.to_string()
    }
}

/// Baseline marker styles: (kind, colour, shape).
const STYLES: [(&str, &str, &str); 4] = [
    ("single", "#d62728", "square"),
    ("even", "#ff7f0e", "triangle"),
    ("pipeedge", "#2ca02c", "diamond"),
    ("2way", "#9467bd", "cross"),
];

fn style(kind: &str) -> (&'static str, &'static str) {
    STYLES
        .iter()
        .find(|s| s.0 == kind)
        .map_or(("#444", "square"), |s| (s.1, s.2))
}

fn marker(x: f64, y: f64, colour: &str, shape: &str, title: &str) -> String {
    let t = format!("<title>{}</title>", xml(title));
    let open = format!(r#"fill="none" stroke="{colour}" stroke-width="2""#);
    match shape {
        "square" => format!(
            r#"<rect x="{:.1}" y="{:.1}" width="9" height="9" {open}>{t}</rect>"#,
            x - 4.5,
            y - 4.5
        ),
        "triangle" => format!(
            r#"<polygon points="{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" {open}>{t}</polygon>"#,
            y - 6.0,
            x - 5.5,
            y + 4.5,
            x + 5.5,
            y + 4.5
        ),
        "diamond" => format!(
            r#"<polygon points="{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}" {open}>{t}</polygon>"#,
            y - 6.5,
            x + 6.5,
            y + 6.5,
            x - 6.5
        ),
        "cross" => format!(
            r#"<path d="M{:.1},{:.1}l10,10m-10,0l10,-10" stroke="{colour}" stroke-width="2.5">{t}</path>"#,
            x - 5.0,
            y - 5.0
        ),
        "dot" => format!(r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{colour}">{t}</circle>"#),
        "star" => format!(
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="8" fill="none" stroke="black" stroke-width="2">{t}</circle>"#
        ),
        _ => format!(
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{colour}" stroke="#333" stroke-width="0.5">{t}</circle>"##
        ),
    }
}

/// Viridis-like colour of `f` in [0, 1] (dark blue: low energy, yellow: high).
fn colour(f: f64) -> String {
    const STOPS: [(f64, f64, f64); 5] = [
        (68.0, 1.0, 84.0),
        (59.0, 82.0, 139.0),
        (33.0, 145.0, 140.0),
        (94.0, 201.0, 98.0),
        (253.0, 231.0, 37.0),
    ];
    let x = f.clamp(0.0, 1.0) * 4.0;
    let i = (x.floor() as usize).min(3);
    let t = x - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let m = |p: f64, q: f64| (p + (q - p) * t).round() as u8;
    format!("#{:02x}{:02x}{:02x}", m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

/// Range of objective `k` over `pts` (min, max).
fn range(pts: &[&Point], k: usize) -> (f64, f64) {
    pts.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.obj[k]), hi.max(p.obj[k]))
    })
}

/// Energy colour of a point, scaled to the front's energy range.
struct Energy(f64, f64);

impl Energy {
    fn colour(&self, p: &Point) -> String {
        let span = self.1 - self.0;
        colour(if span > 0.0 {
            (p.energy_mj() - self.0) / span
        } else {
            0.5
        })
    }
}

fn tooltip(id: &str, p: &Point) -> String {
    format!(
        "{id}: {} ms, {} fps, {} mJ/frame, {} MiB",
        r6(p.latency_ms()),
        r6(p.throughput_fps()),
        r6(p.energy_mj()),
        r6(p.max_memory_mb())
    )
}

/// An arrow of 14 px from the edge point `(x, y)` outwards along `(dx, dy)`.
fn arrow(x: f64, y: f64, dx: f64, dy: f64, colour: &str) -> String {
    let (ex, ey) = (x + 14.0 * dx, y + 14.0 * dy);
    let (px, py) = (-dy, dx);
    format!(
        r#"<path d="M{x:.1},{y:.1}L{ex:.1},{ey:.1}M{:.1},{:.1}L{ex:.1},{ey:.1}L{:.1},{:.1}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
        ex - 5.0 * dx + 4.0 * px,
        ey - 5.0 * dy + 4.0 * py,
        ex - 5.0 * dx - 4.0 * px,
        ey - 5.0 * dy - 4.0 * py
    )
}

/// `pareto.svg` (see the module docs).
pub(super) fn svg(sc: &Scenario, res: &ExploreResult, rows: &[Row]) -> String {
    let width = PAR_X + PAR_W + 80.0;
    let height = TOP + PH + 64.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="13">{} — Pareto front of {} mappings ({} evaluations); ids as in pareto.csv</text>"#,
        xml(&sc.name),
        res.front.len(),
        res.evaluations
    );
    legend(&mut s, res);
    let front: Vec<&Point> = res.front.iter().collect();
    let (elo, ehi) = range(&front, 2);
    let energy = Energy(elo, ehi);
    scatter(&mut s, res, rows, &energy);
    colour_bar(&mut s, &energy);
    parallel(&mut s, res, rows, &energy);
    s.push_str("</svg>\n");
    s
}

fn legend(s: &mut String, res: &ExploreResult) {
    let mut items: Vec<(String, &str, &str)> =
        vec![("front (colour: energy)".into(), "#21918c", "circle")];
    if res.exhaustive.is_some() {
        items.push(("exhaustive front".into(), "#bbbbbb", "dot"));
    }
    items.push(("knee".into(), "black", "star"));
    for (k, c, sh) in STYLES {
        if res.baselines.iter().any(|b| b.kind == k) {
            items.push((format!("baseline {k}"), c, sh));
        }
    }
    let mut x = LEFT;
    for (label, c, sh) in &items {
        s.push_str(&marker(x + 6.0, 38.0, c, sh, label));
        let _ = writeln!(s, r#"<text x="{}" y="42">{}</text>"#, x + 17.0, xml(label));
        x += 30.0 + 6.2 * label.len() as f64;
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="62" fill="#555">Off-scale baselines sit at the panel edge, an arrow pointing outwards. Hover for ids and values.</text>"##
    );
}

/// The panel frame, ticks and titles of an x/y panel.
fn frame(s: &mut String, xa: &Axis, ya: &Axis, xl: &str, yl: &str) {
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PW}" height="{PH}" fill="none" stroke="#333"/>"##
    );
    for t in xa.ticks() {
        let x = LEFT + xa.frac(t) * PW;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + PH,
            TOP + PH + 14.0,
            fmt_tick(t)
        );
    }
    for t in ya.ticks() {
        let y = TOP + PH - ya.frac(t) * PH;
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + PW,
            LEFT - 5.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let log = |a: &Axis| if a.log { " (log scale)" } else { "" };
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{xl}{}</text>"#,
        LEFT + PW / 2.0,
        TOP + PH + 36.0,
        log(xa)
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{yl}{}</text>"#,
        LEFT - 58.0,
        TOP + PH / 2.0,
        log(ya)
    );
}

/// Left panel: latency vs throughput, coloured by energy.
fn scatter(s: &mut String, res: &ExploreResult, rows: &[Row], energy: &Energy) {
    let exh: &[Point] = res.exhaustive.as_ref().map_or(&[], |e| &e.front);
    let span: Vec<&Point> = res.front.iter().chain(exh).collect();
    let (xlo, xhi) = range(&span, 0);
    let (ylo, yhi) = range(&span, 1);
    // throughput is obj[1] negated
    let (xa, ya) = (Axis::new(xlo, xhi), Axis::new(-yhi, -ylo));
    frame(s, &xa, &ya, "latency [ms]", "throughput [frames/s]");
    let pos = |p: &Point| (xa.frac(p.latency_ms()), ya.frac(p.throughput_fps()));
    let at = |(fx, fy): (f64, f64)| (LEFT + fx * PW, TOP + PH - fy * PH);
    for p in exh {
        s.push_str(&marker(
            at(pos(p)).0,
            at(pos(p)).1,
            "#bbbbbb",
            "dot",
            "exhaustive",
        ));
        s.push('\n');
    }
    for r in rows.iter().filter(|r| r.kind == "front") {
        let (x, y) = at(pos(r.point));
        let t = tooltip(&r.id, r.point);
        s.push_str(&marker(x, y, &energy.colour(r.point), "circle", &t));
        s.push('\n');
    }
    let mut labels = Labels::default();
    label_special(s, res, rows, &mut labels, &|p| at(pos(p)));
    for r in rows
        .iter()
        .filter(|r| r.kind != "front" && r.point.feasible())
    {
        let (fx, fy) = pos(r.point);
        let (cx, cy) = (fx.clamp(0.0, 1.0), fy.clamp(0.0, 1.0));
        let (x, y) = at((cx, cy));
        let (c, sh) = style(r.kind);
        let off = (fx, fy) != (cx, cy);
        if off {
            let (dx, dy) = ((fx - cx).signum(), -(fy - cy).signum());
            let n = (dx * dx + dy * dy).sqrt().max(1.0);
            s.push_str(&arrow(x, y, dx / n, dy / n, c));
        }
        let t = tooltip(r.kind, r.point) + if off { " (off scale)" } else { "" };
        s.push_str(&marker(x, y, c, sh, &t));
        s.push_str(&labels.place(x, y, r.kind, c));
    }
}

/// Baseline labels beside their markers, moved up while they would overlap an earlier
/// one, and to the left of the marker near the right edge.
#[derive(Default)]
struct Labels(Vec<(f64, f64)>);

impl Labels {
    fn place(&mut self, x: f64, y: f64, text: &str, colour: &str) -> String {
        let w = 6.5 * text.len() as f64;
        let (lx, anchor) = if x + 10.0 + w > LEFT + PW {
            (x - 10.0 - w, "end")
        } else {
            (x + 10.0, "start")
        };
        let mut ly = y - 6.0;
        while self
            .0
            .iter()
            .any(|&(px, py)| (px - lx).abs() < w.max(40.0) && (py - ly).abs() < 12.0)
        {
            ly -= 12.0;
        }
        self.0.push((lx, ly));
        let tx = if anchor == "end" { lx + w } else { lx };
        format!(
            r#"<text x="{tx:.1}" y="{ly:.1}" fill="{colour}" text-anchor="{anchor}">{text}</text>"#
        ) + "\n"
    }
}

/// Rings the knee and writes the ids of the extremes and the knee beside their points.
fn label_special(
    s: &mut String,
    res: &ExploreResult,
    rows: &[Row],
    labels: &mut Labels,
    at: &dyn Fn(&Point) -> (f64, f64),
) {
    let mut marked: Vec<usize> = extremes(&res.front).iter().map(|e| e.1).collect();
    if let Some(k) = knee(&res.front) {
        let (x, y) = at(&res.front[k]);
        let t = format!("knee {}", tooltip(&rows[k].id, rows[k].point));
        s.push_str(&marker(x, y, "black", "star", &t));
        marked.push(k);
    }
    marked.sort_unstable();
    marked.dedup();
    for i in marked {
        let (x, y) = at(&res.front[i]);
        labels.0.push((x + 9.0, y + 13.0));
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-weight="bold">{}</text>"#,
            x + 9.0,
            y + 13.0,
            rows[i].id
        );
    }
}

/// The energy colour bar beside the left panel.
fn colour_bar(s: &mut String, energy: &Energy) {
    let n = 40;
    for i in 0..n {
        let f = i as f64 / n as f64;
        let y = TOP + PH - (f + 1.0 / n as f64) * PH;
        let _ = writeln!(
            s,
            r#"<rect x="{BAR_X}" y="{y:.1}" width="14" height="{:.1}" fill="{}"/>"#,
            PH / n as f64 + 0.5,
            colour(f + 0.5 / n as f64)
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{BAR_X}" y="{TOP}" width="14" height="{PH}" fill="none" stroke="#333"/>"##
    );
    let a = Axis {
        lo: energy.0,
        hi: energy.1.max(energy.0 + 1e-9),
        log: false,
    };
    for t in a.ticks() {
        let y = TOP + PH - a.frac(t) * PH;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{:.1}">{}</text>"#,
            BAR_X + 18.0,
            y + 4.0,
            fmt_tick(t)
        );
    }
    let _ = writeln!(
        s,
        r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">energy [mJ/frame]</text>"#,
        BAR_X + 78.0,
        TOP + PH / 2.0
    );
}

/// Titles of the parallel-coordinates axes, in the order of `Point::obj`.
const OBJECTIVES: [&str; 4] = [
    "latency [ms]",
    "throughput [fps]",
    "energy [mJ/frame]",
    "max memory [MiB]",
];

/// Right panel: one polyline per front member over the four objectives (best at the
/// bottom of each axis), baselines dashed.
fn parallel(s: &mut String, res: &ExploreResult, rows: &[Row], energy: &Energy) {
    let front: Vec<&Point> = res.front.iter().collect();
    let ranges: Vec<(f64, f64)> = (0..4).map(|k| range(&front, k)).collect();
    let ax = |k: usize| PAR_X + k as f64 * PAR_W / 3.0;
    // objectives are minimised internally (throughput negated): the best is the lowest
    let frac = |p: &Point, k: usize| {
        let (lo, hi) = ranges[k];
        if hi > lo {
            (p.obj[k] - lo) / (hi - lo)
        } else {
            0.5
        }
    };
    let y_of = |f: f64| TOP + PH - f.clamp(-0.035, 1.035) * PH;
    let line = |p: &Point| -> String {
        (0..4)
            .map(|k| format!("{:.1},{:.1}", ax(k), y_of(frac(p, k))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    parallel_axes(s, &ranges, &ax);
    for r in rows.iter().filter(|r| r.kind == "front") {
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-opacity="0.45" stroke-width="1"><title>{}</title></polyline>"#,
            line(r.point),
            energy.colour(r.point),
            xml(&tooltip(&r.id, r.point))
        );
    }
    for r in rows
        .iter()
        .filter(|r| r.kind != "front" && r.point.feasible())
    {
        let (c, sh) = style(r.kind);
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{c}" stroke-width="1.8" stroke-dasharray="6,3"><title>{}</title></polyline>"#,
            line(r.point),
            xml(&tooltip(r.kind, r.point))
        );
        for k in 0..4 {
            let f = frac(r.point, k);
            if !(0.0..=1.0).contains(&f) {
                let t = format!("{} off scale", r.kind);
                s.push_str(&marker(ax(k), y_of(f), c, sh, &t));
            }
        }
    }
    if let Some(k) = knee(&res.front) {
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="black" stroke-width="2.5"><title>knee {}</title></polyline>"#,
            line(&res.front[k]),
            xml(&tooltip(&rows[k].id, rows[k].point))
        );
    }
}

/// The four vertical axes with titles and their front ranges (best at the bottom).
fn parallel_axes(s: &mut String, ranges: &[(f64, f64)], ax: &dyn Fn(usize) -> f64) {
    for (k, title) in OBJECTIVES.iter().enumerate() {
        let x = ax(k);
        let (lo, hi) = ranges[k];
        // shown values: throughput's best (bottom) is its largest
        let (best, worst) = if k == 1 { (-lo, -hi) } else { (lo, hi) };
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{TOP}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle" font-weight="bold">{title}</text><text x="{x:.1}" y="{}" text-anchor="middle">{}</text><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
            TOP + PH,
            TOP - 40.0,
            TOP - 24.0,
            fmt_tick(worst),
            TOP + PH + 28.0,
            fmt_tick(best)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">each axis spans the front; better is lower on the plot (most throughput at the bottom)</text>"##,
        PAR_X + PAR_W / 2.0,
        TOP + PH + 48.0
    );
}
