//! The plan and simulator commands of `dicesim` (zoo, inspect, split, run, explore): what
//! each does after its options are parsed, and what it prints.

use anyhow::{anyhow, bail, Context, Result};
use dicesim_plan::horizontal::Hybrid;
use dicesim_plan::model::InputShapes;
use dicesim_plan::partition::Plan;
use dicesim_plan::{split, zoo, Model};
use std::path::Path;

/// `dicesim zoo list`.
pub fn zoo_list() -> Result<()> {
    for n in zoo::names() {
        println!(
            "{n:16} (default input {})",
            zoo::default_input_size(n).unwrap_or(224)
        );
    }
    Ok(())
}

/// `dicesim zoo build`: writes `NAME.onnx` for each name into `out`.
pub fn zoo_build(names: &[String], out: &Path, input_size: Option<usize>) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for name in names {
        let size = match input_size {
            Some(s) => s,
            None => zoo::default_input_size(name).ok_or_else(|| {
                anyhow!(
                    "unknown zoo model '{name}'; known: {}",
                    zoo::names().join(", ")
                )
            })?,
        };
        let m = zoo::build(name, size)?;
        let path = out.join(format!("{name}.onnx"));
        dicesim_plan::onnx::save_model(&m, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn human(x: u64) -> String {
    let f = x as f64;
    if f >= 1e9 {
        format!("{:.2}G", f / 1e9)
    } else if f >= 1e6 {
        format!("{:.2}M", f / 1e6)
    } else if f >= 1e3 {
        format!("{:.1}k", f / 1e3)
    } else {
        format!("{x}")
    }
}

/// `dicesim inspect`: the per-layer table (or JSON) of a model.
pub fn inspect(path: &Path, json: bool, shapes: &InputShapes) -> Result<()> {
    let model = Model::load(path, shapes)?;
    let g = &model.graph;
    if json {
        let layers: Vec<serde_json::Value> = g
            .layers
            .iter()
            .map(|l| {
                serde_json::json!({
                    "name": l.name, "op": l.op, "inputs": l.inputs, "outputs": l.outputs,
                    "output_shape": l.output_shape, "flops": l.flops,
                    "params_bytes": l.params_bytes, "output_bytes": l.output_bytes,
                })
            })
            .collect();
        let v = serde_json::json!({
            "model": g.name,
            "total_flops": g.total_flops(),
            "total_params_bytes": g.total_params_bytes(),
            "inputs": g.inputs.iter().map(|i| serde_json::json!({"name": i, "shape": g.tensors[i].shape})).collect::<Vec<_>>(),
            "outputs": g.outputs.iter().map(|o| serde_json::json!({"name": o, "shape": g.tensors[o].shape})).collect::<Vec<_>>(),
            "layers": layers,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "model {}: {} layers, {} FLOPs, {} weight bytes",
        g.name,
        g.layers.len(),
        human(g.total_flops()),
        human(g.total_params_bytes())
    );
    for i in &g.inputs {
        println!("input  {i} {:?}", g.tensors[i].shape);
    }
    for o in &g.outputs {
        println!("output {o} {:?}", g.tensors[o].shape);
    }
    let w = g
        .layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(4)
        .max(5);
    println!(
        "{:>4}  {:w$}  {:18}  {:20}  {:>9}  {:>9}  {:>9}",
        "#", "layer", "op", "output shape", "FLOPs", "weights", "out bytes"
    );
    for (i, l) in g.layers.iter().enumerate() {
        println!(
            "{:>4}  {:w$}  {:18}  {:20}  {:>9}  {:>9}  {:>9}",
            i,
            l.name,
            l.op,
            format!("{:?}", l.output_shape),
            human(l.flops),
            human(l.params_bytes),
            human(l.output_bytes)
        );
    }
    Ok(())
}

/// `dicesim split`: writes one sub-model per partition and plan.json; with `verify`, runs
/// the whole model and the chained sub-models on one backend and compares.
pub fn split(
    model_path: &Path,
    (mapping, horizontal): (&Path, Option<&Path>),
    out: &Path,
    verify: Option<&str>,
    shapes: &InputShapes,
) -> Result<()> {
    let t0 = std::time::Instant::now();
    let original = Model::load(model_path, shapes)?;
    let hybrid = Hybrid::from_file(mapping, &original.graph, horizontal)?;
    let (model, m) = dicesim_plan::horizontal::apply(&original, &hybrid)?;
    let plan = Plan::build(&model.graph, &m)?;
    let pf = split::write_split(&model, &plan, out)?;
    eprintln!(
        "wrote {} sub-models and plan.json to {} in {:.3} s",
        pf.partitions.len(),
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    for p in &pf.partitions {
        println!(
            "part{}  {:12}  {:4} layers  {:>9} FLOPs  in: {}  out: {}",
            p.id,
            p.unit,
            p.layers.len(),
            human(p.flops),
            p.inputs
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            p.outputs
                .iter()
                .map(|t| t.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    if let Some(backend) = verify {
        // The built-in tract engine when its plugin is not built; plugins otherwise. Engines
        // other than tract fuse differently across cut points: 1e-4, as the conformance suite.
        let (v, tol) = match dicesim_backend_loader::Backend::load(backend) {
            Ok(b) => (
                crate::verify::verify_split_backend(&original, &pf, out, 1, &b)?,
                if backend == "tract" { 1e-5 } else { 1e-4 },
            ),
            Err(_) if backend == "tract" => {
                (crate::verify::verify_split(&original, &pf, out, 1)?, 1e-5)
            }
            Err(e) => return Err(e.into()),
        };
        for (name, e) in &v.outputs {
            println!("verify {name}: max relative error {e:.3e}");
        }
        let worst = v.max_rel_error();
        println!("verify: max relative error {worst:.3e} (tolerance {tol:.0e}, backend {backend})");
        if worst.is_nan() || worst > tol {
            bail!("verification failed: max relative error {worst:.3e} exceeds {tol:.0e}");
        }
    }
    Ok(())
}

/// What `dicesim run` was asked for.
pub struct RunRequest<'a> {
    /// Scenario file.
    pub scenario: &'a Path,
    /// Print the JSON report instead of the table.
    pub json: bool,
    /// Chrome trace to write.
    pub trace: Option<&'a Path>,
    /// Gantt chart (SVG) to write.
    pub gantt: Option<&'a Path>,
    /// Mapping file to write (the mapping the strategy chose).
    pub export_mapping: Option<&'a Path>,
    /// Succeed even when the mapping does not fit a device's memory.
    pub allow_infeasible: bool,
}

/// `dicesim run`: simulate a scenario, print its report, optionally write a Chrome trace, a
/// Gantt chart and the chosen mapping. An infeasible mapping fails after the report unless
/// allowed, so scripts do not take its figures for a plan that can run.
pub fn run(req: &RunRequest) -> Result<()> {
    use dicesim_sim::{run_scenario, RunOptions};
    let record = req.trace.is_some() || req.gantt.is_some();
    let run = run_scenario(req.scenario, RunOptions { record })
        .map_err(|e| mapping_given_as_scenario(req.scenario).unwrap_or_else(|| e.into()))?;
    write_run_outputs(&run, req)?;
    if let Some(w) = run.report.queueing_warning() {
        eprintln!("{w}");
    }
    if req.json {
        println!("{}", run.report.to_json());
    } else {
        print!("{}", run.report.to_text());
    }
    if !run.report.feasible && !req.allow_infeasible {
        let over: Vec<&str> = (run.report.devices.iter())
            .filter(|d| !d.memory_ok)
            .map(|d| d.name.as_str())
            .collect();
        bail!(
            "{}: infeasible: the mapping does not fit the memory of {} (see the report); \
             pass --allow-infeasible to accept it",
            req.scenario.display(),
            over.join(", ")
        );
    }
    Ok(())
}

/// Writes the trace, the Gantt chart and the mapping `req` asks for, each announced on
/// stderr.
fn write_run_outputs(run: &dicesim_sim::ScenarioRun, req: &RunRequest) -> Result<()> {
    use dicesim_sim::trace as tr;
    if let Some(t) = req.trace {
        tr::write_trace(run, t)?;
        eprintln!("wrote trace {}", t.display());
    }
    if let Some(g) = req.gantt {
        tr::write_gantt(run, g)?;
        eprintln!("wrote Gantt chart {}", g.display());
    }
    if let Some(m) = req.export_mapping {
        let sc = &run.scenario;
        std::fs::write(m, exported_mapping(sc)?)
            .with_context(|| format!("writing {}", m.display()))?;
        eprintln!(
            "wrote mapping {} (strategy {}; use it with strategy = \"explicit\")",
            m.display(),
            sc.strategy.name()
        );
    }
    Ok(())
}

/// The mapping `--export-mapping` writes. With horizontal splits, `sc.mapping` maps the
/// layers of the model with the splits written in (`<layer>.tile0`, ...), which the
/// scenario's model does not have: the `[units]` and `[[split]]` tables over the scenario's
/// own model, with the shares the run used.
fn exported_mapping(sc: &dicesim_sim::Scenario) -> Result<String> {
    match &sc.hybrid {
        Some(h) => Ok(h.to_toml(&sc.model()?.graph)),
        None => Ok(sc.mapping.to_toml(&sc.prep.graph)),
    }
}

/// The error for a mapping file given where a scenario belongs (it has a `[units]` table),
/// or None when `path` does not look like one.
fn mapping_given_as_scenario(path: &Path) -> Option<anyhow::Error> {
    let text = std::fs::read_to_string(path).ok()?;
    let units = text.lines().any(|l| l.trim() == "[units]");
    let model = text.lines().any(|l| l.trim() == "[model]");
    (units && !model).then(|| {
        anyhow!(
            "{} looks like a mapping file ([units] table); `dicesim run` takes a scenario, \
             see docs/scenario.md",
            path.display()
        )
    })
}

/// `dicesim backends`: the built-in tract engine and every plugin found, each with its check;
/// fails only when none is usable.
pub fn backends() -> Result<()> {
    use dicesim_backend_loader::{discover, search_path, Backend};
    println!(
        "{:8} ok           built-in  pure-Rust engine (worker, profile, split --verify)",
        "tract"
    );
    let found = discover();
    if found.is_empty() {
        eprintln!(
            "no backend plugins found in {}; build them with `cargo build --release --workspace` \
             or set DICESIM_PLUGIN_PATH",
            (search_path().iter())
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (name, path) in found {
        match Backend::load_file(&path).map(|b| (b.check(), b)) {
            Ok((Ok(msg), b)) => {
                println!(
                    "{name:8} ok           {}  {msg}  [{}]",
                    b.version(),
                    path.display()
                )
            }
            Ok((Err(e), b)) => println!(
                "{name:8} unavailable  {}  {e}  [{}]",
                b.version(),
                path.display()
            ),
            Err(e) => println!("{name:8} broken       {e}"),
        }
    }
    Ok(())
}

/// What `dicesim explore` searches: `--budget`, `--seed`, and whether core sets are in the
/// space (`--no-core-sets` turns them off).
pub struct ExploreSearch {
    /// `--budget` (default: the search's default budget).
    pub budget: Option<u64>,
    /// `--seed` (default: the scenario's).
    pub seed: Option<u64>,
    /// Search the core allocation of CPUs.
    pub core_sets: bool,
    /// Run the horizontal stage.
    pub horizontal: bool,
}

/// `dicesim explore`: search the scenario's mapping space, write the front and the ready-to-run
/// mappings to `out`, print a summary. The progress bar (stderr) shows only on a terminal.
pub fn explore(scenario: &Path, search: ExploreSearch, out: &Path, force: bool) -> Result<()> {
    use dicesim_sim::explore::{explore, output, ExploreOptions, Progress};
    let ExploreSearch {
        budget,
        seed,
        core_sets,
        horizontal,
    } = search;
    let sc = dicesim_sim::Scenario::load(scenario)?;
    let budget = budget.unwrap_or(ExploreOptions::default().budget);
    if budget == 0 {
        bail!("--budget 0: expected at least 1 evaluation");
    }
    // before the search: a refused folder should not cost its time
    output::prepare_dir(out, force)?;
    let opts = ExploreOptions {
        budget,
        seed: seed.unwrap_or(sc.seed),
        core_sets,
        horizontal,
        ..ExploreOptions::default()
    };
    let t0 = std::time::Instant::now();
    let bar = progress_bar(budget);
    let mut cb = |p: Progress| show_progress(&bar, &p);
    let progress: Option<&mut dyn FnMut(Progress)> =
        if bar.is_hidden() { None } else { Some(&mut cb) };
    let res = explore(&sc, opts, progress)?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    let inv = output::Invocation {
        budget,
        seed: opts.seed,
    };
    output::write_all(&sc, &res, inv, out)?;
    print!("{}", output::summary(&sc, &res, out));
    if let Some(note) = output::budget_note(&res, budget) {
        eprintln!("{note}");
    }
    eprintln!("{}", explore_totals(&res, secs, out));
    Ok(())
}

/// Explore's progress bar over `budget` evaluations: on stderr when it is a terminal, else
/// hidden.
fn progress_bar(budget: u64) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(budget), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Shows a progress report of the search on `bar`.
fn show_progress(bar: &indicatif::ProgressBar, p: &dicesim_sim::explore::Progress) {
    if p.stage == dicesim_sim::explore::Stage::Exhaustive {
        bar.set_length(p.budget);
        bar.set_position(p.evaluations);
        bar.set_message("exhaustive enumeration");
    } else {
        bar.set_position(p.evaluations.min(p.budget));
        bar.set_message(format!(
            "stage {} front {} hv {:.4}",
            p.stage.number(),
            p.front,
            p.hypervolume
        ));
    }
}

/// The closing line of `dicesim explore`: evaluations, time, rate and where it wrote.
fn explore_totals(res: &dicesim_sim::explore::ExploreResult, secs: f64, out: &Path) -> String {
    let total = res.evaluations + res.exhaustive.as_ref().map_or(0, |e| e.evaluated);
    let what = if res.exhaustive.is_some() {
        " (search and exhaustive enumeration)"
    } else {
        ""
    };
    format!(
        "{total} evaluations{what} in {secs:.2} s ({:.0} evaluations/s); wrote {}",
        total as f64 / secs.max(1e-9),
        out.display()
    )
}
