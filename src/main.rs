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
    Profile {
        model: PathBuf,
        #[arg(long)]
        backend: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Simulate and emulate a scenario and compare
    Validate {
        scenario: PathBuf,
        #[arg(long)]
        json: bool,
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

fn not_yet(cmd: &str) -> Result<()> {
    bail!(
        "`dicesim {cmd}` is not available yet in this build (it is planned; see README.md, Status)"
    )
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
        Cmd::Run { .. } => not_yet("run"),
        Cmd::Explore { .. } => not_yet("explore"),
        Cmd::Worker { .. } => not_yet("worker"),
        Cmd::Hil { .. } => not_yet("hil"),
        Cmd::Emulate { .. } => not_yet("emulate"),
        Cmd::Profile { .. } => not_yet("profile"),
        Cmd::Validate { .. } => not_yet("validate"),
        Cmd::Backends => dicesim::infer::list_backends(),
    }
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
