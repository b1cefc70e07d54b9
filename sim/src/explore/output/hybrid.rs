//! What the horizontal stage adds to explore's folder: `horizontal.csv` (the DeepThings
//! baseline, the best mapping and the stage's front), `mappings/hybrid-<i>.toml` (with
//! `[[split]]` tables) and `runs/hybrid-<i>.toml`, and its lines of the summary.

use std::fmt::Write as _;
use std::path::Path;

use super::bundle::{run_scenario_text, Copies};
use super::csv_table;
use crate::error::SimError;
use crate::explore::horizontal::{HorizontalResult, HybridPoint};
use crate::explore::Point;
use crate::report::r6;
use crate::scenario::Scenario;

/// The columns of `horizontal.csv`.
const COLUMNS: [&str; 9] = [
    "kind",
    "id",
    "latency_ms",
    "throughput_fps",
    "energy_mj_per_frame",
    "max_memory_mb",
    "feasible",
    "n_partitions",
    "splits",
];

/// The rows: `best`, `deepthings`, then the front, each with its id.
fn rows(h: &HorizontalResult) -> Vec<(&'static str, String, &HybridPoint)> {
    let mut out = Vec::new();
    if let Some(b) = &h.best {
        out.push(("best", "hybrid-best".to_string(), b));
    }
    if let Some(d) = &h.deepthings {
        out.push(("deepthings", "hybrid-deepthings".to_string(), d));
    }
    for (i, p) in h.front.iter().enumerate() {
        out.push(("front", format!("hybrid-{}", i + 1), p));
    }
    out
}

/// The splits of `p` in words: `spatial features.0..features.4 x4; out_channels fc x4`.
fn splits_label(sc: &Scenario, p: &HybridPoint) -> String {
    let g = &sc.prep.graph;
    let words: Vec<String> = (p.hybrid.splits.iter())
        .map(|s| {
            let (a, b) = (s.layers[0], s.layers[s.layers.len() - 1]);
            let range = if a == b {
                g.layers[a].name.clone()
            } else {
                format!("{}..{}", g.layers[a].name, g.layers[b].name)
            };
            format!("{} {range} x{}", s.kind.name(), s.units.len())
        })
        .collect();
    if words.is_empty() {
        return "no split (the vertical mapping)".into();
    }
    words.join("; ")
}

/// Writes `horizontal.csv`, the mappings and the runs of the stage's rows.
pub(super) fn write(
    sc: &Scenario,
    h: &HorizontalResult,
    copies: &Copies,
    dir: &Path,
) -> Result<(), SimError> {
    let write = |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| SimError::io(p, e));
    let rows = rows(h);
    for (_, id, p) in &rows {
        let mapping = p.hybrid.to_toml(&sc.prep.graph);
        write(&dir.join("mappings").join(format!("{id}.toml")), &mapping)?;
        let run = run_scenario_text(sc, copies, id)?;
        write(&dir.join("runs").join(format!("{id}.toml")), &run)?;
    }
    let records = rows.iter().map(|(kind, id, p)| {
        vec![
            kind.to_string(),
            id.clone(),
            r6(p.obj[0]).to_string(),
            r6(-p.obj[1]).to_string(),
            r6(p.obj[2]).to_string(),
            r6(p.obj[3]).to_string(),
            p.feasible().to_string(),
            p.partitions.to_string(),
            splits_label(sc, p),
        ]
    });
    write(&dir.join("horizontal.csv"), &csv_table(&COLUMNS, records))
}

/// The summary's lines on the stage: the best mapping and the DeepThings baseline against
/// the lowest-latency vertical mapping.
pub(super) fn summary(s: &mut String, sc: &Scenario, h: &HorizontalResult, front: &[Point]) {
    let vertical = front.iter().map(|p| p.obj[0]).fold(f64::INFINITY, f64::min);
    let line = |p: &HybridPoint| {
        format!(
            "{:.3} ms ({:.3}x the best vertical {:.3} ms): {}",
            p.obj[0],
            p.obj[0] / vertical,
            vertical,
            splits_label(sc, p)
        )
    };
    let _ = writeln!(s, "horizontal stage: {} evaluations", h.evaluations);
    if let Some(b) = &h.best {
        let _ = writeln!(s, "  best latency      {}", line(b));
    }
    if let Some(d) = &h.deepthings {
        let _ = writeln!(s, "  DeepThings tiles  {}", line(d));
    }
    let _ = writeln!(
        s,
        "  {} mappings on its front: horizontal.csv, mappings/hybrid-*.toml",
        h.front.len()
    );
}
