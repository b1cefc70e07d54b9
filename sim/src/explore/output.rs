//! What `dicesim explore` writes: `pareto.csv`, `pareto.svg`, `mappings/<id>.toml` (mapping
//! contract), `runs/<id>.toml` (the scenario with that mapping swapped in, ready for
//! `dicesim run`), `summary.json`, and the stdout summary table.
//!
//! Figures in the CSV are rounded exactly like the `run --json` report (6 significant
//! digits), so a row equals what `dicesim run` prints for its mapping. Nothing written to
//! the folder depends on timing or thread count.

use std::fmt::Write as _;
use std::path::Path;

use super::{ExploreResult, Point};
use crate::error::SimError;
use crate::report::r6;
use crate::scenario::Scenario;
use crate::strategy::mapping_from_assignment;

/// One output row: `kind` is `front` or a baseline name.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// `front`, `single`, `even`, `pipeedge` or `2way`.
    pub kind: &'a str,
    /// Mapping id (file stem under `mappings/`).
    pub id: String,
    /// The evaluation.
    pub point: &'a Point,
}

/// Front members (`f0001`, ... in latency order) then baselines (id = kind).
pub fn rows(res: &ExploreResult) -> Vec<Row<'_>> {
    let w = res.front.len().to_string().len().max(4);
    let mut v: Vec<Row> = res
        .front
        .iter()
        .enumerate()
        .map(|(i, p)| Row {
            kind: "front",
            id: format!("f{:0w$}", i + 1),
            point: p,
        })
        .collect();
    for b in &res.baselines {
        v.push(Row {
            kind: &b.kind,
            id: b.kind.clone(),
            point: &b.point,
        });
    }
    v
}

fn units_label(sc: &Scenario, p: &Point) -> String {
    p.part_units
        .iter()
        .map(|&u| sc.prep.platform.units[u].full_name.as_str())
        .collect::<Vec<_>>()
        .join("+")
}

/// Columns of `pareto.csv` (and of `exhaustive.csv`, which adds `cuts`).
const CSV_COLUMNS: [&str; 10] = [
    "kind",
    "id",
    "latency_ms",
    "throughput_fps",
    "energy_mj_per_frame",
    "max_memory_mb",
    "feasible",
    "overload",
    "n_partitions",
    "units",
];

/// One CSV record of `p`: the columns of [`CSV_COLUMNS`] after `kind` and `id`.
fn csv_fields(sc: &Scenario, p: &Point) -> Vec<String> {
    vec![
        r6(p.latency_ms()).to_string(),
        r6(p.throughput_fps()).to_string(),
        r6(p.energy_mj()).to_string(),
        r6(p.max_memory_mb()).to_string(),
        p.feasible().to_string(),
        r6(p.overload).to_string(),
        p.partitions.to_string(),
        units_label(sc, p),
    ]
}

/// A CSV table (through the `csv` crate: fields are quoted where needed).
fn csv_table(header: &[&str], records: impl Iterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let written = w
        .write_record(header)
        .and_then(|_| records.map(|r| w.write_record(&r)).collect::<Result<(), _>>());
    // writing to memory cannot fail
    written.expect("CSV into memory");
    String::from_utf8(w.into_inner().expect("CSV into memory")).expect("UTF-8 fields")
}

/// `pareto.csv`: front rows then baselines; the objectives as defined in the module docs of
/// [`super`] (latency unloaded or at the offered rate, saturated throughput, energy per
/// frame, largest memory need).
pub fn csv(sc: &Scenario, res: &ExploreResult) -> String {
    let records = rows(res).into_iter().map(|r| {
        let mut rec = vec![r.kind.to_string(), r.id.clone()];
        rec.extend(csv_fields(sc, r.point));
        rec
    });
    csv_table(&CSV_COLUMNS, records)
}

/// `exhaustive.csv`: the exhaustive front, same columns (kind `exhaustive`, id `e<n>`), plus
/// the cut positions.
pub fn exhaustive_csv(sc: &Scenario, front: &[Point]) -> String {
    let mut header = CSV_COLUMNS.to_vec();
    header.push("cuts");
    let records = front.iter().enumerate().map(|(i, p)| {
        let cuts: Vec<String> = p.genome.cuts.iter().map(|c| c.to_string()).collect();
        let mut rec = vec!["exhaustive".to_string(), format!("e{:04}", i + 1)];
        rec.extend(csv_fields(sc, p));
        rec.push(cuts.join("+"));
        rec
    });
    csv_table(&header, records)
}

/// The stdout summary.
pub fn summary(sc: &Scenario, res: &ExploreResult) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "explore {}: {} units, space of {} mappings, {} evaluations ({} duplicates from the cache)",
        sc.name,
        res.units.len(),
        res.space_size,
        res.evaluations,
        res.cache_hits
    );
    let _ = writeln!(
        s,
        "front: {} mappings, hypervolume {:.6} (normalised to the front and baselines, reference 1.1)",
        res.front.len(),
        res.hypervolume
    );
    if let Some(e) = &res.exhaustive {
        let _ = writeln!(
            s,
            "exhaustive: {} mappings enumerated, front of {}, hypervolume ratio found/exhaustive {:.4}",
            e.evaluated,
            e.front.len(),
            e.ratio
        );
    }
    let _ = writeln!(
        s,
        "{:9} {:>6} {:>12} {:>11} {:>12} {:>11} {:>5} {:>5}  units",
        "kind", "id", "latency ms", "fps", "mJ/frame", "max MiB", "fits", "parts"
    );
    for r in rows(res) {
        let p = r.point;
        let _ = writeln!(
            s,
            "{:9} {:>6} {:>12} {:>11} {:>12} {:>11} {:>5} {:>5}  {}",
            r.kind,
            r.id,
            r6(p.latency_ms()),
            r6(p.throughput_fps()),
            r6(p.energy_mj()),
            r6(p.max_memory_mb()),
            if p.feasible() { "yes" } else { "NO" },
            p.partitions,
            units_label(sc, p)
        );
    }
    s
}

/// `summary.json`.
pub fn summary_json(res: &ExploreResult) -> String {
    let v = serde_json::json!({
        "evaluations": res.evaluations,
        "cache_hits": res.cache_hits,
        "space_size": res.space_size.to_string(),
        "front_size": res.front.len(),
        "hypervolume": res.hypervolume,
        "exhaustive": res.exhaustive.as_ref().map(|e| serde_json::json!({
            "evaluated": e.evaluated,
            "front_size": e.front.len(),
            "hypervolume_ratio": e.ratio,
        })),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// The scenario with `[mapping]` replaced by an explicit mapping file; the platform (and an
/// ONNX model path) made absolute so the file works from `runs/`.
fn run_scenario_text(sc: &Scenario, id: &str) -> Result<String, SimError> {
    let mapping_rel = format!("../mappings/{id}.toml");
    let text = crate::error::read_text(&sc.path)?;
    let mut t: toml::Table = crate::error::parse_toml(&sc.path, &text)?;
    let dir = sc.path.parent().unwrap_or(Path::new("."));
    let absolute = |rel: &str| {
        let p = dir.join(rel);
        std::fs::canonicalize(&p)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    for (section, key) in [("platform", "file"), ("model", "path")] {
        if let Some(toml::Value::Table(s)) = t.get_mut(section) {
            if let Some(toml::Value::String(f)) = s.get(key).cloned() {
                s.insert(key.into(), toml::Value::String(absolute(&f)));
            }
        }
    }
    let mut m = toml::Table::new();
    m.insert("strategy".into(), toml::Value::String("explicit".into()));
    m.insert("file".into(), toml::Value::String(mapping_rel));
    t.insert("mapping".into(), toml::Value::Table(m));
    t.remove("hil");
    t.insert(
        "name".into(),
        toml::Value::String(format!("{} (explore {})", sc.name, id)),
    );
    Ok(toml::to_string(&t).unwrap_or_default())
}

/// Writes every output into `dir`.
pub fn write_all(sc: &Scenario, res: &ExploreResult, dir: &Path) -> Result<(), SimError> {
    let mk = |d: &Path| std::fs::create_dir_all(d).map_err(|e| SimError::io(d, e));
    let write = |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| SimError::io(p, e));
    mk(dir)?;
    mk(&dir.join("mappings"))?;
    mk(&dir.join("runs"))?;
    let nl = sc.prep.graph.layers.len();
    for r in rows(res) {
        let assign = r.point.genome.assignment(nl);
        let m = mapping_from_assignment(&sc.prep, &assign);
        write(
            &dir.join("mappings").join(format!("{}.toml", r.id)),
            &m.to_toml(&sc.prep.graph),
        )?;
        write(
            &dir.join("runs").join(format!("{}.toml", r.id)),
            &run_scenario_text(sc, &r.id)?,
        )?;
    }
    write(&dir.join("pareto.csv"), &csv(sc, res))?;
    if let Some(e) = &res.exhaustive {
        write(&dir.join("exhaustive.csv"), &exhaustive_csv(sc, &e.front))?;
    }
    write(&dir.join("pareto.svg"), &svg(sc, res))?;
    write(&dir.join("summary.json"), &summary_json(res))?;
    Ok(())
}

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
            (v.ln() - self.lo.ln()) / (self.hi.ln() - self.lo.ln())
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

fn marker(x: f64, y: f64, colour: &str, shape: &str, title: &str) -> String {
    let t = format!("<title>{}</title>", xml(title));
    match shape {
        "square" => format!(
            r##"<rect x="{:.1}" y="{:.1}" width="9" height="9" fill="none" stroke="{colour}" stroke-width="2">{t}</rect>"##,
            x - 4.5,
            y - 4.5
        ),
        "triangle" => format!(
            r##"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="none" stroke="{colour}" stroke-width="2">{t}</polygon>"##,
            x,
            y - 6.0,
            x - 5.5,
            y + 4.5,
            x + 5.5,
            y + 4.5
        ),
        "diamond" => format!(
            r##"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="none" stroke="{colour}" stroke-width="2">{t}</polygon>"##,
            x,
            y - 6.5,
            x + 6.5,
            y,
            x,
            y + 6.5,
            x - 6.5,
            y
        ),
        "cross" => format!(
            r##"<path d="M{:.1},{:.1}L{:.1},{:.1}M{:.1},{:.1}L{:.1},{:.1}" stroke="{colour}" stroke-width="2.5">{t}</path>"##,
            x - 5.0,
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0,
            y + 5.0,
            x + 5.0,
            y - 5.0
        ),
        "dot" => format!(r##"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{colour}">{t}</circle>"##),
        _ => format!(
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{colour}" fill-opacity="0.75" stroke="#1f3a60" stroke-width="0.6">{t}</circle>"##
        ),
    }
}

/// `pareto.svg`: latency vs energy and throughput vs memory, front and baselines.
pub fn svg(sc: &Scenario, res: &ExploreResult) -> String {
    let (pw, ph, left, top, gap) = (460.0, 340.0, 70.0, 70.0, 110.0);
    let width = left + 2.0 * pw + gap + 30.0;
    let height = top + ph + 60.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    s.push_str("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
    let _ = writeln!(
        s,
        r#"<text x="{left}" y="18" font-size="13">{} — Pareto front of {} mappings ({} evaluations)</text>"#,
        xml(&sc.name),
        res.front.len(),
        res.evaluations
    );
    // legend
    let mut lx = left;
    let mut legend: Vec<(String, &str, &str)> = vec![("front".into(), "#1f77b4", "circle")];
    if res.exhaustive.is_some() {
        legend.push(("exhaustive front".into(), "#bbbbbb", "dot"));
    }
    for (k, c, sh) in STYLES {
        if res.baselines.iter().any(|b| b.kind == k) {
            legend.push((format!("baseline {k}"), c, sh));
        }
    }
    for (label, c, sh) in &legend {
        s.push_str(&marker(lx + 6.0, 38.0, c, sh, label));
        let _ = writeln!(s, r#"<text x="{}" y="42">{}</text>"#, lx + 16.0, xml(label));
        lx += 24.0 + 7.0 * label.len() as f64;
    }
    let feasible_baselines: Vec<&super::Baseline> = res
        .baselines
        .iter()
        .filter(|b| b.point.feasible())
        .collect();
    let exh: &[Point] = res.exhaustive.as_ref().map_or(&[], |e| &e.front);
    type Get = fn(&Point) -> f64;
    let panels: [(&str, &str, Get, Get); 2] = [
        (
            "latency [ms]",
            "energy [mJ/frame]",
            |p| p.latency_ms(),
            |p| p.energy_mj(),
        ),
        (
            "throughput [frames/s]",
            "max device memory [MiB]",
            |p| p.throughput_fps(),
            |p| p.max_memory_mb(),
        ),
    ];
    for (pi, (xl, yl, fx, fy)) in panels.iter().enumerate() {
        let x0 = left + pi as f64 * (pw + gap);
        let all: Vec<&Point> = res
            .front
            .iter()
            .chain(feasible_baselines.iter().map(|b| &b.point))
            .chain(exh.iter())
            .collect();
        let (mut xlo, mut xhi, mut ylo, mut yhi) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for p in &all {
            xlo = xlo.min(fx(p));
            xhi = xhi.max(fx(p));
            ylo = ylo.min(fy(p));
            yhi = yhi.max(fy(p));
        }
        // an axis spanning more than 20x is drawn on a log scale (a far-off baseline would
        // otherwise squash the front into a corner)
        let (xa, ya) = (Axis::new(xlo, xhi), Axis::new(ylo, yhi));
        let px = |v: f64| x0 + xa.frac(v) * pw;
        let py = |v: f64| top + ph - ya.frac(v) * ph;
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
        );
        for t in xa.ticks() {
            let x = px(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{}" stroke="#eee"/><text x="{x:.1}" y="{}" text-anchor="middle">{}</text>"##,
                top + ph,
                top + ph + 14.0,
                fmt_tick(t)
            );
        }
        for t in ya.ticks() {
            let y = py(t);
            let _ = writeln!(
                s,
                r##"<line x1="{x0}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 + pw,
                x0 - 4.0,
                y + 4.0,
                fmt_tick(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{xl}{}</text>"#,
            x0 + pw / 2.0,
            top + ph + 32.0,
            if xa.log { " (log scale)" } else { "" }
        );
        let _ = writeln!(
            s,
            r#"<text transform="translate({},{}) rotate(-90)" text-anchor="middle">{yl}{}</text>"#,
            x0 - 52.0,
            top + ph / 2.0,
            if ya.log { " (log scale)" } else { "" }
        );
        for p in exh {
            s.push_str(&marker(
                px(fx(p)),
                py(fy(p)),
                "#bbbbbb",
                "dot",
                "exhaustive",
            ));
            s.push('\n');
        }
        for (i, p) in res.front.iter().enumerate() {
            let t = format!("f{:03}: {:.4} / {:.4}", i + 1, fx(p), fy(p));
            s.push_str(&marker(px(fx(p)), py(fy(p)), "#1f77b4", "circle", &t));
            s.push('\n');
        }
        for b in &feasible_baselines {
            if let Some((k, c, sh)) = STYLES.iter().find(|st| st.0 == b.kind) {
                let t = format!("{k}: {:.4} / {:.4}", fx(&b.point), fy(&b.point));
                s.push_str(&marker(px(fx(&b.point)), py(fy(&b.point)), c, sh, &t));
                s.push('\n');
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
