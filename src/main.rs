//! `dicesim`: distributed CNN inference at the edge: simulate, explore and execute plans.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::model::InputShapes;
use dicesim_plan::partition::Plan;
use dicesim_plan::{split, zoo, Model};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "dicesim",
    version,
    about = "Distributed CNN inference at the edge: simulate, explore and execute partitioned plans"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone, Default)]
struct ShapeArgs {
    /// Shape for a graph input with symbolic dimensions, e.g. `x=1,3,48,192` (repeatable)
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...")]
    input_shape: Vec<String>,
}

#[derive(Args)]
struct ProfileArgs {
    model: PathBuf,
    #[arg(long)]
    backend: String,
    #[arg(long)]
    out: PathBuf,
    /// Threads (tract runs a model on one thread: only 1 is accepted)
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Warm-up runs (per layer with --isolated)
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Measuring time [ms] (5 to 200 runs): of the whole model, or per layer with --isolated
    #[arg(long, default_value_t = 1000.0)]
    budget_ms: f64,
    /// Time each layer run alone as a single-layer sub-model instead of in context
    #[arg(long)]
    isolated: bool,
    /// Pace the runs as a device computing 1/DUTY of the time (sleep (DUTY-1) x each run)
    #[arg(long, default_value_t = 1.0)]
    duty: f64,
    /// Evict the caches between runs (a device whose caches do not keep the model between
    /// frames)
    #[arg(long)]
    cold: bool,
    /// Fit the in-context times to this many contiguous sub-model runs (0: no fit)
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    #[command(flatten)]
    shapes: ShapeArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// The built-in model zoo
    Zoo {
        #[command(subcommand)]
        cmd: ZooCmd,
    },
    /// Per-layer table of a model (topological order: the order mapping ranges use)
    Inspect {
        /// ONNX model
        model: PathBuf,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        shapes: ShapeArgs,
    },
    /// Split a model into one ONNX sub-model per partition of a mapping, plus plan.json
    Split {
        /// ONNX model
        model: PathBuf,
        /// Mapping file (TOML, or AutoDiCE mapping.json)
        #[arg(long)]
        mapping: PathBuf,
        /// Output folder
        #[arg(long)]
        out: PathBuf,
        /// Run the whole model and the chained sub-models on the same random input and compare
        #[arg(long)]
        verify: bool,
        /// Engine used by --verify
        #[arg(long, default_value = "tract", requires = "verify")]
        backend: String,
        #[command(flatten)]
        shapes: ShapeArgs,
    },
    /// Run one model through one backend on NumPy tensors
    Infer {
        /// ONNX model
        model: PathBuf,
        /// Backend plugin name (see `dicesim backends`)
        #[arg(long)]
        backend: String,
        /// Input tensors: a .npy (one-input models) or a .npz with one array per input name
        #[arg(long)]
        input: PathBuf,
        /// Output tensors (.npz, one array per output name)
        #[arg(long)]
        output: PathBuf,
        /// Intra-op threads (0: the engine's default)
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Simulate a scenario
    Run {
        scenario: PathBuf,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        trace: Option<PathBuf>,
        #[arg(long)]
        gantt: Option<PathBuf>,
    },
    /// Multi-objective search over mappings
    Explore {
        scenario: PathBuf,
        #[arg(long)]
        budget: Option<u64>,
        #[arg(long)]
        seed: Option<u64>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve sub-models on this board
    Worker {
        #[arg(long)]
        listen: String,
        #[arg(long)]
        backend: String,
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Emulation: make each partition run take at least this factor x its host CPU time
        #[arg(long)]
        pace: Option<f64>,
    },
    /// Run a scenario on real workers (the scenario's [hil] names them)
    Hil {
        scenario: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Build the scenario's platform on this host (namespaces, shaped links) and run it
    Emulate {
        scenario: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Measure per-layer times with a backend
    /// Per-layer times of a model on this host (CSV for a unit's `profile`), and a fit of
    /// the baseline compute model (gflops, mem_gbps, layer_overhead_us)
    Profile(ProfileArgs),
    /// Simulate and emulate a scenario and compare
    Validate {
        /// Scenario (or, with --suite, a folder of scenarios)
        scenario: PathBuf,
        #[arg(long)]
        json: bool,
        /// Validate every *.toml scenario in the folder and print median / p90 errors
        #[arg(long)]
        suite: bool,
        /// Keep the calibration (cal.toml and unit profiles, for a scenario's
        /// `[calibration] file`) in this folder
        #[arg(long)]
        calibration_out: Option<PathBuf>,
        /// With --suite: write suite.json and suite.svg (simulated vs measured) here
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List backend plugins and whether each is usable here
    Backends,
}

#[derive(Subcommand)]
enum ZooCmd {
    /// Write NAME.onnx for each name into DIR
    Build {
        /// Zoo model names (see `dicesim zoo list`)
        #[arg(required = true)]
        names: Vec<String>,
        /// Output folder
        #[arg(long)]
        out: PathBuf,
        /// Input height and width (default: the model's own, 224 or 416)
        #[arg(long)]
        input_size: Option<usize>,
    },
    /// List zoo models
    List,
}

fn main() -> ExitCode {
    // Behave like other command-line tools when stdout is closed early (`dicesim inspect | head`).
    // SAFETY: resetting a signal disposition before any other thread exists.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("dicesim: error: {}", msg.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn parse_shapes(a: &ShapeArgs) -> Result<InputShapes> {
    let mut m = InputShapes::new();
    for s in &a.input_shape {
        let (name, dims) = s.split_once('=').ok_or_else(|| {
            anyhow!("--input-shape '{s}': expected NAME=D0,D1,... (e.g. x=1,3,48,192)")
        })?;
        let dims: Result<Vec<usize>, _> =
            dims.split(',').map(|d| d.trim().parse::<usize>()).collect();
        let dims = dims.map_err(|_| {
            anyhow!("--input-shape '{s}': dimensions must be positive integers separated by commas")
        })?;
        if dims.contains(&0) || dims.is_empty() {
            bail!("--input-shape '{s}': dimensions must be positive integers");
        }
        m.insert(name.to_string(), dims);
    }
    Ok(m)
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Zoo { cmd: ZooCmd::List } => {
            for n in zoo::names() {
                println!(
                    "{n:16} (default input {})",
                    zoo::default_input_size(n).unwrap_or(224)
                );
            }
            Ok(())
        }
        Cmd::Zoo {
            cmd:
                ZooCmd::Build {
                    names,
                    out,
                    input_size,
                },
        } => {
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for name in &names {
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
        Cmd::Inspect {
            model,
            json,
            shapes,
        } => inspect(&model, json, &parse_shapes(&shapes)?),
        Cmd::Split {
            model,
            mapping,
            out,
            verify,
            backend,
            shapes,
        } => split_cmd(
            &model,
            &mapping,
            &out,
            verify.then_some(backend.as_str()),
            &parse_shapes(&shapes)?,
        ),
        Cmd::Infer {
            model,
            backend,
            input,
            output,
            threads,
        } => dicesim::infer::infer(&model, &backend, &input, &output, threads),
        Cmd::Run {
            scenario,
            json,
            trace,
            gantt,
        } => run_cmd(&scenario, json, trace.as_deref(), gantt.as_deref()),
        Cmd::Explore {
            scenario,
            budget,
            seed,
            out,
        } => explore_cmd(&scenario, budget, seed, &out),
        Cmd::Worker {
            listen,
            backend,
            token_file,
            pace,
        } => dicesim_hil::worker::run(&listen, &backend, token_file.as_deref(), pace),
        Cmd::Hil { scenario, json } => dicesim_hil::coord::run_cli(&scenario, json),
        Cmd::Emulate { scenario, json } => dicesim_hil::emulate::run_cli(&scenario, json),
        Cmd::Profile(args) => profile_cmd(&args),
        Cmd::Validate {
            scenario,
            json,
            suite,
            calibration_out,
            out,
        } => {
            if suite {
                dicesim::validate::suite(&scenario, out.as_deref()).map(|_| ())
            } else {
                let v = dicesim::validate::validate(
                    &scenario,
                    &dicesim::validate::Options { calibration_out },
                )?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v.to_json())?);
                } else {
                    print!("{}", v.text());
                }
                Ok(())
            }
        }
        Cmd::Backends => dicesim::infer::list_backends(),
    }
}

fn profile_cmd(a: &ProfileArgs) -> Result<()> {
    use dicesim::profile;
    let (path, backend, out, threads) = (&a.model, &a.backend, &a.out, a.threads);
    let (warmup, budget_ms, duty, chunks) = (a.warmup, a.budget_ms, a.duty, a.chunks);
    let shapes = &parse_shapes(&a.shapes)?;
    if backend != "tract" {
        bail!("profile: unknown backend '{backend}' (available: tract)");
    }
    if !(duty.is_finite() && duty >= 1.0) {
        bail!("profile: --duty must be a number >= 1, got {duty}");
    }
    if threads != 1 {
        bail!("profile: tract runs a model on one thread; --threads must be 1");
    }
    let model = Model::load(path, shapes)?;
    // measure on one CPU (the last this process may use: CPU 0 takes most interrupts)
    if let Some(&cpu) = profile::allowed_cpus().last() {
        profile::pin_to(cpu)?;
    }
    let (layers, context) = if a.isolated {
        (profile::profile_model(&model, warmup, budget_ms)?, None)
    } else {
        let p = profile::profile_in_context(
            &model,
            warmup,
            budget_ms,
            profile::Pace { duty, cold: a.cold },
            chunks,
        )?;
        (p.layers.clone(), Some(p))
    };
    profile::write_csv(out, &model.graph.name, threads, &layers, context.as_ref())?;
    let total: f64 = layers.iter().map(|l| l.time_us).sum();
    if let Some(c) = &context {
        println!(
            "whole model: {:.1} us per run (median), of which {:.1} us outside every operator",
            c.run_us, c.run_overhead_us
        );
    }
    println!(
        "{} layers profiled ({} skipped), sum of medians {:.1} us -> {}",
        layers.len(),
        model.graph.layers.len() - layers.len(),
        total,
        out.display()
    );
    match profile::fit(&layers) {
        Some(f) => println!(
            "baseline fit: gflops = {:.3}, mem_gbps = {:.3}, layer_overhead_us = {:.2}; median relative error {:.1}%",
            f.gflops,
            f.mem_gbps,
            f.layer_overhead_us,
            f.median_rel_error * 100.0
        ),
        None => println!("baseline fit: no layers"),
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

fn inspect(path: &Path, json: bool, shapes: &InputShapes) -> Result<()> {
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

fn split_cmd(
    model_path: &Path,
    mapping: &Path,
    out: &Path,
    verify: Option<&str>,
    shapes: &InputShapes,
) -> Result<()> {
    let t0 = std::time::Instant::now();
    let model = Model::load(model_path, shapes)?;
    let m = Mapping::from_file(mapping, &model.graph)?;
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
                dicesim::verify::verify_split_backend(&model, &pf, out, 1, &b)?,
                if backend == "tract" { 1e-5 } else { 1e-4 },
            ),
            Err(_) if backend == "tract" => {
                (dicesim::verify::verify_split(&model, &pf, out, 1)?, 1e-5)
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

/// `dicesim run`: simulate a scenario, print its report, optionally write a Chrome trace and
/// a Gantt chart.
fn run_cmd(scenario: &Path, json: bool, trace: Option<&Path>, gantt: Option<&Path>) -> Result<()> {
    use dicesim_sim::{run_scenario, trace as tr, RunOptions};
    let record = trace.is_some() || gantt.is_some();
    let run = run_scenario(scenario, RunOptions { record })?;
    if let Some(t) = trace {
        tr::write_trace(&run, t)?;
    }
    if let Some(g) = gantt {
        tr::write_gantt(&run, g)?;
    }
    if json {
        println!("{}", run.report.to_json());
    } else {
        print!("{}", run.report.to_text());
    }
    Ok(())
}

/// `dicesim explore`: search the scenario's mapping space, write the front and the ready-to-run
/// mappings to `out`, print a summary. The progress bar (stderr) shows only on a terminal.
fn explore_cmd(scenario: &Path, budget: Option<u64>, seed: Option<u64>, out: &Path) -> Result<()> {
    use dicesim_sim::explore::{explore, output, ExploreOptions, Progress};
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    use std::io::IsTerminal;
    let sc = dicesim_sim::Scenario::load(scenario)?;
    let budget = budget.unwrap_or(ExploreOptions::default().budget);
    if budget == 0 {
        bail!("--budget 0: expected at least 1 evaluation");
    }
    let opts = ExploreOptions {
        budget,
        seed: seed.unwrap_or(sc.seed),
        ..ExploreOptions::default()
    };
    let t0 = std::time::Instant::now();
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(budget), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut cb = |p: Progress| {
        if p.stage == 4 {
            bar.set_length(p.budget);
            bar.set_position(p.evaluations);
            bar.set_message("exhaustive enumeration");
        } else {
            bar.set_position(p.evaluations.min(p.budget));
            bar.set_message(format!(
                "stage {} front {} hv {:.4}",
                p.stage, p.front, p.hypervolume
            ));
        }
    };
    let progress: Option<&mut dyn FnMut(Progress)> =
        if bar.is_hidden() { None } else { Some(&mut cb) };
    let res = explore(&sc, opts, progress)?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    output::write_all(&sc, &res, out)?;
    print!("{}", output::summary(&sc, &res));
    let total = res.evaluations + res.exhaustive.as_ref().map_or(0, |e| e.evaluated);
    eprintln!(
        "{total} evaluations{} in {:.2} s ({:.0} evaluations/s); wrote {}",
        if res.exhaustive.is_some() {
            " (search and exhaustive enumeration)"
        } else {
            ""
        },
        secs,
        total as f64 / secs.max(1e-9),
        out.display()
    );
    Ok(())
}
