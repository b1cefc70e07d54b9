//! What `dicesim explore` writes: `pareto.csv`, `pareto.svg` ([`plot`]), `mappings/<id>.toml`
//! (mapping contract), `runs/<id>.toml` (the scenario with that mapping swapped in, ready for
//! `dicesim run`, referring to copies under `platform/` ([`bundle`]) so the folder can be
//! moved), `summary.json`, and the short stdout summary.
//!
//! Figures in the CSV are rounded exactly like the `run --json` report (6 significant
//! digits), so a row equals what `dicesim run` prints for its mapping. Nothing written to
//! the folder depends on timing or thread count.

mod bundle;
mod hybrid;
mod plot;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{ExploreResult, Point};
use crate::error::SimError;
use crate::report::r6;
use crate::scenario::Scenario;
use dicesim_plan::mapping::Mapping;

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

/// Front members (`f0001`, ... in latency order, index = index into the front) then
/// baselines (id = kind).
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

fn units_label(names: &[String], p: &Point) -> String {
    p.part_units
        .iter()
        .map(|&u| names[u].as_str())
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
fn csv_fields(names: &[String], p: &Point) -> Vec<String> {
    vec![
        r6(p.latency_ms()).to_string(),
        r6(p.throughput_fps()).to_string(),
        r6(p.energy_mj()).to_string(),
        r6(p.max_memory_mb()).to_string(),
        p.feasible().to_string(),
        r6(p.overload).to_string(),
        p.partitions.to_string(),
        units_label(names, p),
    ]
}

/// A CSV table (through the `csv` crate: fields are quoted where needed).
fn csv_table(header: &[&str], mut records: impl Iterator<Item = Vec<String>>) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let written = w
        .write_record(header)
        .and_then(|_| records.try_for_each(|r| w.write_record(&r)));
    // writing to memory cannot fail
    written.expect("CSV into memory");
    String::from_utf8(w.into_inner().expect("CSV into memory")).expect("UTF-8 fields")
}

/// `pareto.csv`: front rows then baselines; the objectives as defined in the module docs of
/// [`super`] (latency unloaded or at the offered rate, saturated throughput, energy per
/// frame, largest memory need).
pub fn csv(res: &ExploreResult) -> String {
    let records = rows(res).into_iter().map(|r| {
        let mut rec = vec![r.kind.to_string(), r.id.clone()];
        rec.extend(csv_fields(&res.unit_names, r.point));
        rec
    });
    csv_table(&CSV_COLUMNS, records)
}

/// `exhaustive.csv`: the exhaustive front, same columns (kind `exhaustive`, id `e<n>`), plus
/// the cut positions.
pub fn exhaustive_csv(res: &ExploreResult, front: &[Point]) -> String {
    let mut header = CSV_COLUMNS.to_vec();
    header.push("cuts");
    let records = front.iter().enumerate().map(|(i, p)| {
        let cuts: Vec<String> = p.genome.cuts.iter().map(|c| c.to_string()).collect();
        let mut rec = vec!["exhaustive".to_string(), format!("e{:04}", i + 1)];
        rec.extend(csv_fields(&res.unit_names, p));
        rec.push(cuts.join("+"));
        rec
    });
    csv_table(&header, records)
}

/// The front member best in each objective: (label, index into the front), in the order
/// latency, throughput, energy, memory; ties go to the earlier member.
pub fn extremes(front: &[Point]) -> Vec<(&'static str, usize)> {
    let labels = [
        "best latency",
        "best throughput",
        "best energy",
        "best memory",
    ];
    labels
        .iter()
        .enumerate()
        .filter_map(|(k, &l)| {
            let i =
                (0..front.len()).min_by(|&a, &b| front[a].obj[k].total_cmp(&front[b].obj[k]))?;
            Some((l, i))
        })
        .collect()
}

/// The knee of the front: the member closest (Euclidean) to the ideal point once each
/// objective is scaled to [0, 1] over the front; ties go to the earlier member.
pub fn knee(front: &[Point]) -> Option<usize> {
    let mut lo = [f64::MAX; 4];
    let mut hi = [f64::MIN; 4];
    for p in front {
        for k in 0..4 {
            lo[k] = lo[k].min(p.obj[k]);
            hi[k] = hi[k].max(p.obj[k]);
        }
    }
    let dist = |p: &Point| -> f64 {
        (0..4)
            .map(|k| {
                let span = hi[k] - lo[k];
                let f = if span > 0.0 {
                    (p.obj[k] - lo[k]) / span
                } else {
                    0.0
                };
                f * f
            })
            .sum()
    };
    (0..front.len()).min_by(|&a, &b| dist(&front[a]).total_cmp(&dist(&front[b])))
}

/// One row of the stdout table.
fn summary_row(s: &mut String, names: &[String], label: &str, id: &str, p: &Point) {
    let _ = writeln!(
        s,
        "{:17} {:>8} {:>12} {:>11} {:>12} {:>11} {:>5} {:>5}  {}",
        label,
        id,
        r6(p.latency_ms()),
        r6(p.throughput_fps()),
        r6(p.energy_mj()),
        r6(p.max_memory_mb()),
        if p.feasible() { "yes" } else { "NO" },
        p.partitions,
        units_label(names, p)
    );
}

/// `6 units`, or `6 units and 23 core sets` with core allocation.
fn units_count(res: &ExploreResult) -> String {
    let whole = res.units.len() - res.core_set_units;
    match res.core_set_units {
        0 => format!("{whole} units"),
        c => format!("{whole} units and {c} core sets"),
    }
}

/// The header lines of the stdout summary.
fn summary_header(s: &mut String, sc: &Scenario, res: &ExploreResult) {
    let _ = writeln!(
        s,
        "explore {}: {}, space of {} mappings, {} evaluations ({} duplicates from the cache)",
        sc.name,
        units_count(res),
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
}

/// The stdout summary: header lines, the front's extremes and knee, the baselines, and
/// where the full table is (`dir/pareto.csv`).
pub fn summary(sc: &Scenario, res: &ExploreResult, dir: &Path) -> String {
    let mut s = String::new();
    summary_header(&mut s, sc, res);
    let _ = writeln!(
        s,
        "{:17} {:>8} {:>12} {:>11} {:>12} {:>11} {:>5} {:>5}  units",
        "", "id", "latency ms", "fps", "mJ/frame", "need MiB", "fits", "parts"
    );
    let rows = rows(res);
    let mut picks = extremes(&res.front);
    if let Some(k) = knee(&res.front) {
        picks.push(("knee", k));
    }
    for (label, i) in picks {
        summary_row(&mut s, &res.unit_names, label, &rows[i].id, rows[i].point);
    }
    for r in rows.iter().filter(|r| r.kind != "front") {
        summary_row(
            &mut s,
            &res.unit_names,
            &format!("baseline {}", r.kind),
            &r.id,
            r.point,
        );
    }
    let _ = writeln!(
        s,
        "all {} front mappings and the baselines: {} (run one: dicesim run {})",
        res.front.len(),
        dir.join("pareto.csv").display(),
        dir.join("runs")
            .join(format!("{}.toml", rows[0].id))
            .display()
    );
    if let Some(h) = &res.horizontal {
        hybrid::summary(&mut s, sc, h, &res.front);
    }
    s
}

/// The mapping of a unit index per layer, the units named by `names` (the search's
/// platform, core sets included), in order of first use.
fn mapping_of(names: &[String], assign: &[usize]) -> Mapping {
    let mut used: Vec<usize> = Vec::new();
    let layer_unit = (assign.iter())
        .map(|&u| match used.iter().position(|&x| x == u) {
            Some(i) => i,
            None => {
                used.push(u);
                used.len() - 1
            }
        })
        .collect();
    Mapping {
        units: used.iter().map(|&u| names[u].clone()).collect(),
        layer_unit,
        groups: Vec::new(),
    }
}

/// What `summary.json` records about the invocation besides the results.
#[derive(Debug, Clone, Copy)]
pub struct Invocation {
    /// `--budget`.
    pub budget: u64,
    /// The seed used (`--seed`, else the scenario's).
    pub seed: u64,
}

/// `summary.json`: the scenario (path and name), seed, budget and dicesim version, then the
/// results.
pub fn summary_json(sc: &Scenario, res: &ExploreResult, inv: Invocation) -> String {
    let v = serde_json::json!({
        "dicesim_version": env!("CARGO_PKG_VERSION"),
        "scenario": {
            "path": sc.path.to_string_lossy(),
            "name": sc.name,
        },
        "seed": inv.seed,
        "budget": inv.budget,
        "evaluations": res.evaluations,
        "cache_hits": res.cache_hits,
        "space_size": res.space_size.to_string(),
        "core_set_units": res.core_set_units,
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

/// When the baselines alone needed more evaluations than `budget` (they are evaluated
/// anyway, and then the search evaluates nothing new), a line saying so.
pub fn budget_note(res: &ExploreResult, budget: u64) -> Option<String> {
    (res.evaluations > budget).then(|| {
        format!(
            "warning: --budget {budget} is below the {} evaluations the baselines need \
             (single, even, pipeedge, 2way and every single-unit mapping); they were \
             evaluated anyway and the search added nothing; raise --budget well above that",
            res.evaluations
        )
    })
}

/// Whether `name` (relative to the output folder) is a file an earlier explore wrote.
fn is_output(rel: &Path) -> bool {
    let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or("");
    let parent = rel.parent().and_then(|p| p.to_str()).unwrap_or("");
    match parent {
        "" => {
            name.starts_with("pareto.")
                || ["exhaustive.csv", "summary.json", "horizontal.csv"].contains(&name)
        }
        "runs" | "mappings" => ext == "toml",
        p if p == bundle::PLATFORM_DIR || p.starts_with(&format!("{}/", bundle::PLATFORM_DIR)) => {
            ext == "toml" || ext == "csv"
        }
        _ => false,
    }
}

/// Files under `dir` (relative paths, recursive), sorted.
fn files_under(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<(), SimError> {
    let here = dir.join(rel);
    let rd = std::fs::read_dir(&here).map_err(|e| SimError::io(&here, e))?;
    for e in rd {
        let e = e.map_err(|e| SimError::io(&here, e))?;
        let r = rel.join(e.file_name());
        if e.file_type()
            .map_err(|err| SimError::io(&e.path(), err))?
            .is_dir()
        {
            files_under(dir, &r, out)?;
        } else {
            out.push(r);
        }
    }
    Ok(())
}

/// Makes `dir` ready for [`write_all`]: a missing or empty folder is fine; a non-empty one is
/// refused unless `force`, which removes the files an earlier explore wrote there (`runs/*.toml`,
/// `mappings/*.toml`, `platform/**/*.{toml,csv}`, `pareto.*`, `exhaustive.csv`,
/// `summary.json`) and nothing else.
pub fn prepare_dir(dir: &Path, force: bool) -> Result<(), SimError> {
    let mut entries = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SimError::io(dir, e)),
    };
    if entries.next().is_none() {
        return Ok(());
    }
    if !force {
        let msg = "the --out folder is not empty; pass --force to replace the results of an \
                   earlier explore there, or choose another folder";
        return Err(SimError::io(
            dir,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, msg),
        ));
    }
    let mut files = Vec::new();
    files_under(dir, Path::new(""), &mut files)?;
    for f in files.iter().filter(|f| is_output(f)) {
        let p = dir.join(f);
        std::fs::remove_file(&p).map_err(|e| SimError::io(&p, e))?;
    }
    Ok(())
}

/// Writes every output into `dir` (see [`prepare_dir`] for an earlier run's files).
pub fn write_all(
    sc: &Scenario,
    res: &ExploreResult,
    inv: Invocation,
    dir: &Path,
) -> Result<(), SimError> {
    let mk = |d: &Path| std::fs::create_dir_all(d).map_err(|e| SimError::io(d, e));
    let write = |p: &Path, s: &str| std::fs::write(p, s).map_err(|e| SimError::io(p, e));
    mk(dir)?;
    mk(&dir.join("mappings"))?;
    mk(&dir.join("runs"))?;
    let copies = bundle::write_platform(sc, dir)?;
    let nl = sc.prep.graph.layers.len();
    let rows = rows(res);
    for r in &rows {
        let assign = r.point.genome.assignment(nl);
        let m = mapping_of(&res.unit_names, &assign);
        write(
            &dir.join("mappings").join(format!("{}.toml", r.id)),
            &m.to_toml(&sc.prep.graph),
        )?;
        write(
            &dir.join("runs").join(format!("{}.toml", r.id)),
            &bundle::run_scenario_text(sc, &copies, &r.id)?,
        )?;
    }
    if let Some(h) = &res.horizontal {
        hybrid::write(sc, h, &copies, dir)?;
    }
    write(&dir.join("pareto.csv"), &csv(res))?;
    if let Some(e) = &res.exhaustive {
        write(&dir.join("exhaustive.csv"), &exhaustive_csv(res, &e.front))?;
    }
    write(&dir.join("pareto.svg"), &plot::svg(sc, res, &rows))?;
    write(&dir.join("summary.json"), &summary_json(sc, res, inv))?;
    Ok(())
}
