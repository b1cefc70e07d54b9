//! Explore at scale: times searches of a scenario and compares their fronts with a long
//! reference run (hypervolume of each front / hypervolume of the reference front, both
//! normalised by the bounds of their union, as the exhaustive comparison does).
//!
//! ```text
//! cargo run --release -p dicesim-sim --example explore_scale -- SCENARIO.toml \
//!     [--budget 25000] [--seeds 1,2,3] [--reference 1000000] [--reference-seeds 1,2] \
//!     [--core-sets on|off|both] [--reference-file F] [--fronts F1,F2] \
//!     [--add-to-reference F1,F2]
//! ```
//! Prints one line per run (seed, evaluations, seconds, front size, ratio to the reference).
//! The reference is the union of the fronts of `--reference-seeds` runs of `--reference`
//! evaluations (0: no reference, timings only). `--core-sets both` runs each seed with and
//! without core allocation and prints both fronts' hypervolumes normalised by the bounds of
//! their union (the reference runs use core sets unless `off`). `--reference-file F` reads
//! the reference front from `F` when it exists, else writes it there (a CSV file with the
//! columns `latency_ms,neg_throughput_fps,energy_mj_per_frame,max_memory_mib`);
//! `sim/examples/fronts/` holds those of the two scale scenarios. `--fronts F1,F2` compares
//! front files of that form with the reference instead of running searches;
//! `--add-to-reference F1,F2` unites front files (such as the dumps below of long runs) with
//! the reference file and writes the non-dominated union back to it.
//!
//! Environment: `EXPLORE_SCALE_SHOW=1` prints each front's best mapping per objective;
//! `EXPLORE_SCALE_DUMP=DIR` writes each seed's front to `DIR/front-SEED.csv` (latency,
//! negative throughput, energy, memory, segment count, units), for looking at what a front
//! lacks.

use std::path::PathBuf;
use std::time::Instant;

use dicesim_sim::explore::hv::Bounds;
use dicesim_sim::explore::{dominates, explore, ExploreOptions, Point};
use dicesim_sim::Scenario;

struct Args {
    scenario: PathBuf,
    budget: u64,
    seeds: Vec<u64>,
    reference: u64,
    reference_seeds: Vec<u64>,
    reference_file: Option<PathBuf>,
    fronts: Vec<PathBuf>,
    add: Vec<PathBuf>,
    core_sets: CoreSets,
}

/// Which searches `--core-sets` asks for.
#[derive(Clone, Copy, PartialEq)]
enum CoreSets {
    On,
    Off,
    Both,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        scenario: PathBuf::new(),
        budget: 25_000,
        seeds: vec![1, 2, 3],
        reference: 0,
        reference_seeds: vec![1, 2],
        reference_file: None,
        fronts: Vec::new(),
        add: Vec::new(),
        core_sets: CoreSets::On,
    };
    let mut it = std::env::args().skip(1);
    let seeds = |s: String| -> Result<Vec<u64>, String> {
        s.split(',')
            .map(|x| x.parse().map_err(|_| format!("bad seed `{x}`")))
            .collect()
    };
    while let Some(k) = it.next() {
        let mut val = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--budget" => a.budget = val()?.parse().map_err(|_| "bad --budget")?,
            "--seeds" => a.seeds = seeds(val()?)?,
            "--reference" => a.reference = val()?.parse().map_err(|_| "bad --reference")?,
            "--reference-seeds" => a.reference_seeds = seeds(val()?)?,
            "--reference-file" => a.reference_file = Some(PathBuf::from(val()?)),
            "--fronts" => a.fronts = val()?.split(',').map(PathBuf::from).collect(),
            "--add-to-reference" => a.add = val()?.split(',').map(PathBuf::from).collect(),
            "--core-sets" => {
                a.core_sets = match val()?.as_str() {
                    "on" => CoreSets::On,
                    "off" => CoreSets::Off,
                    "both" => CoreSets::Both,
                    v => return Err(format!("--core-sets {v}: expected on, off or both")),
                }
            }
            s if !s.starts_with("--") => a.scenario = PathBuf::from(s),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    if a.scenario.as_os_str().is_empty() {
        return Err("usage: explore_scale SCENARIO.toml [--budget N] [--seeds 1,2] [--reference N] [--reference-seeds 1,2] [--reference-file F] [--fronts F1,F2] [--add-to-reference F1,F2] [--core-sets on|off|both]".into());
    }
    Ok(a)
}

fn run(sc: &Scenario, budget: u64, seed: u64, core_sets: bool) -> (Vec<Point>, u64, f64) {
    let opts = ExploreOptions {
        budget,
        seed,
        exhaustive_limit: 0,
        core_sets,
        ..ExploreOptions::default()
    };
    let t = Instant::now();
    let r = explore(sc, opts, None).unwrap_or_else(|e| panic!("explore: {e}"));
    if std::env::var_os("EXPLORE_SCALE_SHOW").is_some() {
        show_fastest(&r);
    }
    if let Some(dir) = std::env::var_os("EXPLORE_SCALE_DUMP") {
        let path = PathBuf::from(dir).join(format!("front-{seed}.csv"));
        if let Err(e) = dump(&r, &path) {
            eprintln!("{}: {e}", path.display());
        }
    }
    (r.front, r.evaluations, t.elapsed().as_secs_f64())
}

/// The best value of each objective on a front (throughput as fps).
fn best(front: &[Point]) -> String {
    let m = |k: usize| front.iter().map(|p| p.obj[k]).fold(f64::INFINITY, f64::min);
    format!(
        "[{:.1} ms, {:.1} fps, {:.0} mJ, {:.1} MiB]",
        m(0),
        -m(1),
        m(2),
        m(3)
    )
}

/// The best mapping of a result by each objective: its figures, cuts and units.
fn show_fastest(r: &dicesim_sim::explore::ExploreResult) {
    for (k, what) in ["latency", "throughput", "energy", "memory"]
        .iter()
        .enumerate()
    {
        let Some(p) = r.front.iter().min_by(|a, b| a.obj[k].total_cmp(&b.obj[k])) else {
            return;
        };
        let units: Vec<&str> = (p.genome.units.iter())
            .map(|&u| r.unit_names[u as usize].as_str())
            .collect();
        println!(
            "  best {what}: {:.2} ms {:.1} fps {:.0} mJ {:.1} MiB: cuts {:?} units {:?}",
            p.obj[0], -p.obj[1], p.obj[2], p.obj[3], p.genome.cuts, units
        );
    }
}

/// Writes a front to `path`: [`FRONT_COLUMNS`], then each mapping's segment count and
/// units (space-separated).
fn dump(r: &dicesim_sim::explore::ExploreResult, path: &std::path::Path) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(FRONT_COLUMNS.iter().chain(&["segments", "units"]))?;
    for p in &r.front {
        let units: Vec<&str> = (p.genome.units.iter())
            .map(|&u| r.unit_names[u as usize].as_str())
            .collect();
        let mut row: Vec<String> = p.obj.iter().map(|v| v.to_string()).collect();
        row.push(units.len().to_string());
        row.push(units.join(" "));
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}

/// Non-dominated union of fronts (objectives), each point once, in objective order.
fn union(fronts: Vec<Vec<[f64; 4]>>) -> Vec<[f64; 4]> {
    let mut all: Vec<[f64; 4]> = fronts.into_iter().flatten().collect();
    all.sort_by(|a, b| {
        a.iter()
            .zip(b)
            .fold(std::cmp::Ordering::Equal, |o, (x, y)| {
                o.then(x.total_cmp(y))
            })
    });
    all.dedup();
    all.iter()
        .filter(|p| !all.iter().any(|q| dominates(q, p)))
        .copied()
        .collect()
}

/// The reference file united with the front files `add`, written back.
fn add_to_reference(reference: &std::path::Path, add: &[PathBuf]) -> Result<(), String> {
    let mut fronts = vec![read_front(reference)?];
    for f in add {
        fronts.push(read_front(f)?);
    }
    let before = fronts[0].len();
    let united = union(fronts);
    write_front(reference, &united).map_err(|e| format!("{}: {e}", reference.display()))?;
    println!(
        "{}: {before} -> {} points",
        reference.display(),
        united.len()
    );
    Ok(())
}

/// Hypervolume of `front` over that of `reference`, both normalised by their union's bounds.
fn ratio(front: &[[f64; 4]], reference: &[[f64; 4]]) -> f64 {
    let b = Bounds::of(front.iter().chain(reference)).expect("non-empty");
    b.hypervolume(front) / b.hypervolume(reference)
}

/// Each front file of `paths` against `reference`: its size and hypervolume ratio.
fn compare_files(paths: &[PathBuf], reference: &[[f64; 4]]) -> Result<(), String> {
    for path in paths {
        let front = read_front(path)?;
        println!(
            "{}: front {}, hypervolume ratio {:.4}",
            path.display(),
            front.len(),
            ratio(&front, reference)
        );
    }
    Ok(())
}

/// Columns of a front file (objectives as the explorer minimises them).
const FRONT_COLUMNS: [&str; 4] = [
    "latency_ms",
    "neg_throughput_fps",
    "energy_mj_per_frame",
    "max_memory_mib",
];

/// The reference front's objectives: read from `file` when it exists, else computed (and
/// written there, a CSV file of [`FRONT_COLUMNS`]).
fn reference_front(sc: &Scenario, a: &Args) -> Result<Vec<[f64; 4]>, String> {
    if let Some(f) = a.reference_file.as_ref().filter(|f| f.exists()) {
        return read_front(f);
    }
    let fronts = a.reference_seeds.iter().map(|&s| {
        let (f, n, secs) = run(sc, a.reference, s, a.core_sets != CoreSets::Off);
        println!(
            "reference seed {s}: {n} evaluations in {secs:.1} s, front {}",
            f.len()
        );
        f.iter().map(|p| p.obj).collect()
    });
    let objs = union(fronts.collect());
    if let Some(f) = &a.reference_file {
        write_front(f, &objs).map_err(|e| format!("{}: {e}", f.display()))?;
    }
    Ok(objs)
}

/// A front file's points; an error names the file and the line.
fn read_front(path: &std::path::Path) -> Result<Vec<[f64; 4]>, String> {
    let at = |line: u64, what: String| format!("{}:{line}: {what}", path.display());
    let mut r = csv::Reader::from_path(path).map_err(|e| at(0, e.to_string()))?;
    let header = r.headers().map_err(|e| at(1, e.to_string()))?;
    if header.iter().take(4).ne(FRONT_COLUMNS) {
        return Err(at(
            1,
            format!("expected the columns {}", FRONT_COLUMNS.join(",")),
        ));
    }
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| at(e.position().map_or(0, |p| p.line()), e.to_string()))?;
        let line = rec.position().map_or(0, |p| p.line());
        let mut p = [0.0; 4];
        for (k, v) in p.iter_mut().enumerate() {
            let field = rec.get(k).unwrap_or("");
            *v = field.parse().map_err(|_| {
                at(
                    line,
                    format!("{}: `{field}` is not a number", FRONT_COLUMNS[k]),
                )
            })?;
        }
        out.push(p);
    }
    Ok(out)
}

/// Writes the objectives `points` as a front file.
fn write_front(path: &std::path::Path, points: &[[f64; 4]]) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_path(path)?;
    w.write_record(FRONT_COLUMNS)?;
    for p in points {
        w.write_record(p.iter().map(|v| v.to_string()))?;
    }
    w.flush()?;
    Ok(())
}

fn main() {
    let a = parse().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    if !a.add.is_empty() {
        let Some(rf) = &a.reference_file else {
            eprintln!("--add-to-reference needs --reference-file F");
            std::process::exit(2)
        };
        if let Err(e) = add_to_reference(rf, &a.add) {
            eprintln!("{e}");
            std::process::exit(1)
        }
        return;
    }
    let sc = Scenario::load(&a.scenario).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    let reference = (a.reference > 0).then(|| {
        reference_front(&sc, &a).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1)
        })
    });
    if !a.fronts.is_empty() {
        let Some(rf) = &reference else {
            eprintln!("--fronts needs a reference (--reference N --reference-file F)");
            std::process::exit(2)
        };
        if let Err(e) = compare_files(&a.fronts, rf) {
            eprintln!("{e}");
            std::process::exit(1)
        }
        return;
    }
    for &seed in &a.seeds {
        if a.core_sets == CoreSets::Both {
            compare(&sc, a.budget, seed);
            continue;
        }
        let (f, n, secs) = run(&sc, a.budget, seed, a.core_sets == CoreSets::On);
        let r = reference.as_ref().map_or(String::new(), |rf| {
            let refs: Vec<Point> = rf
                .iter()
                .map(|o| Point {
                    obj: *o,
                    ..f[0].clone()
                })
                .collect();
            format!(
                ", hypervolume ratio {:.4}; best {} vs reference {}",
                ratio(&f.iter().map(|p| p.obj).collect::<Vec<_>>(), rf),
                best(&f),
                best(&refs)
            )
        });
        println!(
            "seed {seed}: {n} evaluations (budget {}) in {secs:.2} s, front {}{r}",
            a.budget,
            f.len()
        );
    }
}

/// One seed with and without core sets: times, front sizes, and each front's hypervolume
/// normalised by the bounds of both fronts.
fn compare(sc: &Scenario, budget: u64, seed: u64) {
    let (on, n_on, s_on) = run(sc, budget, seed, true);
    let (off, n_off, s_off) = run(sc, budget, seed, false);
    let b = Bounds::of(on.iter().chain(&off).map(|p| &p.obj)).expect("non-empty");
    let hv = |f: &[Point]| b.hypervolume(f.iter().map(|p| &p.obj));
    println!(
        "seed {seed}: core sets {n_on} evaluations in {s_on:.2} s, front {}, hypervolume {:.4}; \
         whole units {n_off} evaluations in {s_off:.2} s, front {}, hypervolume {:.4}",
        on.len(),
        hv(&on),
        off.len(),
        hv(&off)
    );
}
