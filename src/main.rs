//! `dicesim`: distributed CNN inference at the edge: simulate, explore and execute plans.

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use dicesim::commands;
use dicesim_calibrate::cli;
use dicesim_plan::model::InputShapes;
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
    /// [default: none]
    #[arg(long = "input-shape", value_name = "NAME=D0,D1,...")]
    input_shape: Vec<String>,
}

#[derive(Args)]
struct ProfileArgs {
    /// ONNX model (with --memory: the model to split [default: the zoo's resnet18 and vgg16
    /// at 224 px])
    #[arg(required_unless_present = "memory")]
    model: Option<PathBuf>,
    /// Engine that times the layers: the built-in `tract`, or a backend plugin (`ort`,
    /// `tch`; see `dicesim backends`)
    #[arg(long)]
    backend: String,
    /// Profile CSV written (a unit's `profile`); with --memory, the measured-vs-predicted
    /// table [default: required, except with --memory]
    #[arg(long, required_unless_present = "memory")]
    out: Option<PathBuf>,
    /// Measure the backend's memory model instead (memory_base_mb, weights_factor,
    /// activations_factor): each sub-model of 2- and 3-way splits loaded in a child
    /// process, its peak resident set fitted [default: off]
    #[arg(long)]
    memory: bool,
    /// Intra-op thread counts, a list or repeated (`--threads 1,2,4`): each layer is timed
    /// alone at each count and the per-class serial fractions are fitted (multi-threaded
    /// backends: ort, tch, tract)
    #[arg(long, value_delimiter = ',', default_value = "1")]
    threads: Vec<usize>,
    /// Pin the profile to these host CPUs (`0-3`, `0,2`); the largest thread count must not
    /// exceed them [default: the CPUs this process may use]
    #[arg(long, value_name = "LIST")]
    cores: Option<String>,
    /// Warm-up runs (per layer with --isolated)
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Measuring time [ms] (5 to 200 runs): of the whole model, or per layer with --isolated
    #[arg(long, default_value_t = 1000.0)]
    budget_ms: f64,
    /// Time each layer run alone as a single-layer sub-model instead of in context
    /// [default: off]
    #[arg(long)]
    isolated: bool,
    /// Pace the runs as a device computing 1/DUTY of the time (sleep (DUTY-1) x each run;
    /// DUTY >= 1)
    #[arg(long, default_value_t = 1.0)]
    duty: f64,
    /// Evict the caches between runs (a device whose caches do not keep the model between
    /// frames) [default: off]
    #[arg(long)]
    cold: bool,
    /// Fit the in-context times to this many contiguous sub-model runs (0: no fit)
    #[arg(long, default_value_t = 8)]
    chunks: usize,
    #[command(flatten)]
    shapes: ShapeArgs,
}

#[derive(Args)]
struct WorkerArgs {
    /// Address to listen on, HOST:PORT (only loopback without --token-file)
    #[arg(long)]
    listen: String,
    /// Engine: `tract` (built in) or a backend plugin name (see `dicesim backends`)
    #[arg(long)]
    backend: String,
    /// Shared secret file; the coordinator must hold the same [default: none]
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// Emulation: make each partition run take at least this factor x its host CPU time
    /// [default: none, no pacing]
    #[arg(long)]
    pace: Option<f64>,
    /// Refuse sub-models larger than this [MiB], uploaded or as analysed (weights +
    /// largest activation) [default: 4096, the protocol's limit]
    #[arg(long)]
    max_model_mb: Option<u64>,
    /// Cap of the cache of shipped sub-models [MiB]; least recently used ones not
    /// deployed are evicted [default: 4096]
    #[arg(long)]
    cache_mb: Option<u64>,
    /// Addresses a deployment may make this worker connect to: comma-separated
    /// `local`, `any`, IPs, CIDR networks, host names [default: local = loopback and
    /// this host's interface networks]
    #[arg(long)]
    peers: Option<String>,
    /// Authenticated connections (coordinators and peer workers) open at once; more are
    /// refused with an error [default: 16]
    #[arg(long)]
    max_connections: Option<usize>,
}

#[derive(Args)]
struct RunArgs {
    /// Scenario (TOML; see docs/scenario.md)
    scenario: PathBuf,
    /// Print the JSON report instead of a table [default: off]
    #[arg(long)]
    json: bool,
    /// Write a Chrome trace-event JSON here (Perfetto, chrome://tracing) [default: none]
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Write an SVG Gantt chart of the first frames here [default: none]
    #[arg(long, value_name = "FILE")]
    gantt: Option<PathBuf>,
    /// Write the mapping the scenario's strategy chose here (mapping TOML, editable; run it
    /// with `strategy = "explicit"`) [default: none]
    #[arg(long, value_name = "FILE")]
    export_mapping: Option<PathBuf>,
    /// Exit 0 even when the mapping does not fit a device's memory [default: off]
    #[arg(long)]
    allow_infeasible: bool,
}

#[derive(Args)]
struct ExploreArgs {
    /// Scenario (TOML; see docs/scenario.md)
    scenario: PathBuf,
    /// Unique mappings evaluated, baselines included (at least 1) [default: 5000]
    #[arg(long)]
    budget: Option<u64>,
    /// Seed of the search [default: the scenario's `seed`]
    #[arg(long)]
    seed: Option<u64>,
    /// Threads of the search (0: all cores) [default: all cores]
    #[arg(long)]
    threads: Option<usize>,
    /// Output folder (created)
    #[arg(long)]
    out: PathBuf,
    /// Replace the results of an earlier explore in a non-empty --out folder
    #[arg(long)]
    force: bool,
    /// Search whole units only, not the core sets of CPUs (as before core allocation)
    #[arg(long)]
    no_core_sets: bool,
    /// Also search horizontal splits (fused tiles, channel splits) with 20% of the budget
    /// (at most 2000 evaluations); writes horizontal.csv and mappings/hybrid-*.toml
    #[arg(long)]
    horizontal: bool,
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
        /// Print JSON instead of a table [default: off]
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        shapes: ShapeArgs,
    },
    /// Split a model into one ONNX sub-model per partition of a mapping, plus plan.json
    Split {
        /// ONNX model
        model: PathBuf,
        /// Mapping file (TOML, or AutoDiCE mapping.json; see docs/mapping.md)
        #[arg(long)]
        mapping: PathBuf,
        /// AutoDiCE horizontal.json beside a mapping.json: layers split over several units
        /// (docs/mapping.md#horizontal-splits) [default: none]
        #[arg(long)]
        horizontal: Option<PathBuf>,
        /// Output folder (created)
        #[arg(long)]
        out: PathBuf,
        /// Run the whole model and the chained sub-models on the same random input and compare
        /// [default: off]
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
        /// Backend plugin name, e.g. `tract` (see `dicesim backends`)
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
    /// Simulate a scenario and print its report
    Run(RunArgs),
    /// Multi-objective search over mappings
    Explore(ExploreArgs),
    /// Serve sub-models on this board
    Worker(WorkerArgs),
    /// Run a scenario on real workers (the scenario's [hil] names them)
    Hil {
        /// Scenario with a [hil] table (see docs/scenario.md)
        scenario: PathBuf,
        /// Print the JSON report instead of a table [default: off]
        #[arg(long)]
        json: bool,
    },
    /// Build the scenario's platform on this host (namespaces, shaped links) and run it
    Emulate {
        /// Scenario (TOML; see docs/scenario.md)
        scenario: PathBuf,
        /// Print the JSON report instead of a table [default: off]
        #[arg(long)]
        json: bool,
    },
    /// Per-layer times of a model on this host (CSV for a unit's `profile`), and a fit of
    /// the baseline compute model (gflops, mem_gbps, layer_overhead_us)
    Profile(ProfileArgs),
    /// Simulate and emulate a scenario and compare
    Validate {
        /// Scenario (or, with --suite, a folder of scenarios)
        scenario: PathBuf,
        /// Print JSON instead of a table [default: off]
        #[arg(long)]
        json: bool,
        /// Validate every *.toml scenario in the folder and print median / p90 errors
        /// [default: off]
        #[arg(long)]
        suite: bool,
        /// Keep the calibration (cal.toml and unit profiles, for a scenario's
        /// `[calibration] file`) in this folder [default: none, a temporary folder]
        #[arg(long)]
        calibration_out: Option<PathBuf>,
        /// With --suite: write suite.json and suite.svg (simulated vs measured) here
        /// [default: none]
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the built-in engine and the backend plugins, and whether each is usable here
    Backends,
    /// (internal, for `profile --memory`) Load one sub-model, run it and print the peak
    /// resident set
    #[command(name = "profile-memory-probe", hide = true)]
    MemoryProbe {
        /// Backend
        #[arg(long)]
        backend: String,
        /// Intra-op threads
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// A graph input and its shape, NAME=D0,D1,... (repeatable)
        #[arg(long)]
        input: Vec<String>,
        /// The ONNX sub-model [default: none, the engine alone]
        model: Option<PathBuf>,
    },
    /// Device models: fit a device file to measured latencies
    Device {
        #[command(subcommand)]
        cmd: DeviceCmd,
    },
    /// Shared secrets of workers and coordinators
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Write a fresh 256-bit token to FILE (created exclusively, mode 0600)
    New {
        /// Token file to create (it must not exist)
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum DeviceCmd {
    /// Fit a device file's units to measured whole-model latencies (CSV with columns
    /// board_id, unit, threads, precision, model, input, latency_ms), printing each row's
    /// error and the leave-one-model-out cross-validation
    Fit {
        /// Measured rows (e.g. shared/hardware/ncnn-published.csv)
        measured: PathBuf,
        /// The board whose rows are fitted (the `board_id` column)
        #[arg(long, required_unless_present = "library", conflicts_with = "library")]
        board: Option<String>,
        /// Device file written (with --board); with --library, the folder written
        /// [default with --library: the library, in place]
        #[arg(long)]
        out: Option<PathBuf>,
        /// Device file supplying what the rows do not determine (memory, power, units not
        /// measured) and the starting figures [default: none, generic figures]
        #[arg(long, conflicts_with = "library")]
        base: Option<PathBuf>,
        /// Fit every board of the rows that has a device file in this folder, jointly (the
        /// units of one kind share their class figures) [default: none]
        #[arg(long)]
        library: Option<PathBuf>,
    },
    /// Simulate every measured row whose board has a device file in a folder (one device,
    /// strategy single on the row's unit or first cores, one frame) and print the errors
    Check {
        /// Measured rows (e.g. shared/hardware/ncnn-published.csv)
        measured: PathBuf,
        /// Folder of device files (boards match by name: rpi4-1.5ghz is rpi4.toml)
        #[arg(long)]
        library: PathBuf,
    },
}

#[derive(Subcommand)]
enum ZooCmd {
    /// Write NAME.onnx for each name into DIR
    Build {
        /// Zoo model names (see `dicesim zoo list`)
        #[arg(required = true)]
        names: Vec<String>,
        /// Output folder (created)
        #[arg(long)]
        out: PathBuf,
        /// Input height and width [default: the model's own, 224 or 416]
        #[arg(long)]
        input_size: Option<usize>,
    },
    /// List zoo models
    List,
}

fn main() -> ExitCode {
    // Behave like other command-line tools when stdout is closed early (`dicesim inspect | head`).
    dicesim_hil::sys::default_sigpipe();
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
        Cmd::Zoo { cmd } => zoo(cmd),
        Cmd::Device { cmd } => device(cmd),
        Cmd::Inspect {
            model,
            json,
            shapes,
        } => commands::inspect(&model, json, &parse_shapes(&shapes)?),
        Cmd::Split {
            model,
            mapping,
            horizontal,
            out,
            verify,
            backend,
            shapes,
        } => commands::split(
            &model,
            (&mapping, horizontal.as_deref()),
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
        Cmd::Run(a) => commands::run(&commands::RunRequest {
            scenario: &a.scenario,
            json: a.json,
            trace: a.trace.as_deref(),
            gantt: a.gantt.as_deref(),
            export_mapping: a.export_mapping.as_deref(),
            allow_infeasible: a.allow_infeasible,
        }),
        Cmd::Explore(a) => explore(a),
        Cmd::Worker(a) => worker(a),
        Cmd::Hil { scenario, json } => dicesim_hil::coord::run_cli(&scenario, json),
        Cmd::Emulate { scenario, json } => dicesim_hil::emulate::run_cli(&scenario, json),
        Cmd::Profile(a) => profile(a),
        Cmd::Validate {
            scenario,
            json,
            suite,
            calibration_out,
            out,
        } => cli::validate_command(cli::ValidateRequest {
            scenario,
            json,
            suite,
            calibration_out,
            out,
        }),
        Cmd::Backends => commands::backends(),
        Cmd::MemoryProbe {
            backend,
            threads,
            input,
            model,
        } => memory_probe(&backend, threads, &input, model.as_deref()),
        Cmd::Token {
            cmd: TokenCmd::New { file },
        } => {
            dicesim_hil::token::write_new_token(&file)?;
            eprintln!("dicesim: wrote a new token to {}", file.display());
            Ok(())
        }
    }
}

/// `dicesim worker`: serves sub-models until killed.
fn worker(a: WorkerArgs) -> Result<()> {
    let opts = dicesim_hil::worker::Options {
        pace: a.pace,
        max_model_mb: a.max_model_mb,
        cache_mb: a.cache_mb,
        peers: a.peers,
        max_connections: a.max_connections,
    };
    dicesim_hil::worker::run(&a.listen, &a.backend, a.token_file.as_deref(), &opts)
}

/// Sizes rayon's global pool (the search's worker threads) when `--threads` is given; 0 or
/// none leaves rayon's default, one thread per core.
fn size_thread_pool(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads.filter(|&n| n > 0) {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("--threads: setting up the thread pool")?;
    }
    Ok(())
}

fn explore(a: ExploreArgs) -> Result<()> {
    size_thread_pool(a.threads)?;
    let search = commands::ExploreSearch {
        budget: a.budget,
        seed: a.seed,
        core_sets: !a.no_core_sets,
        horizontal: a.horizontal,
    };
    commands::explore(&a.scenario, search, &a.out, a.force)
}

fn device(cmd: DeviceCmd) -> Result<()> {
    match cmd {
        DeviceCmd::Fit {
            measured,
            board,
            out,
            base,
            library,
        } => device_fit(measured, board, out, base, library),
        DeviceCmd::Check { measured, library } => dicesim::device::check(&measured, &library),
    }
}

fn device_fit(
    measured: PathBuf,
    board: Option<String>,
    out: Option<PathBuf>,
    base: Option<PathBuf>,
    library: Option<PathBuf>,
) -> Result<()> {
    use dicesim::device::FitTarget;
    let target = match (board, library) {
        (Some(board), None) => FitTarget::Board {
            board,
            out: out.ok_or_else(|| anyhow!("--board needs --out DEVICE.toml"))?,
            base,
        },
        (None, Some(dir)) => FitTarget::Library { dir, out },
        _ => bail!("give --board ID --out FILE, or --library DIR"),
    };
    dicesim::device::fit(&measured, &target)
}

fn zoo(cmd: ZooCmd) -> Result<()> {
    match cmd {
        ZooCmd::List => commands::zoo_list(),
        ZooCmd::Build {
            names,
            out,
            input_size,
        } => commands::zoo_build(&names, &out, input_size),
    }
}

fn profile(a: ProfileArgs) -> Result<()> {
    if a.memory {
        return dicesim_calibrate::memory::memory_command(
            &dicesim_calibrate::memory::MemoryRequest {
                backend: a.backend,
                threads: a.threads.first().copied().unwrap_or(1),
                model: a.model,
                out: a.out,
            },
        );
    }
    cli::profile_command(&cli::ProfileRequest {
        shapes: parse_shapes(&a.shapes)?,
        model: a.model.context("profile: a model is needed")?,
        backend: a.backend,
        out: a.out.context("profile: --out is needed")?,
        threads: a.threads,
        cores: a.cores,
        warmup: a.warmup,
        budget_ms: a.budget_ms,
        isolated: a.isolated,
        duty: a.duty,
        cold: a.cold,
        chunks: a.chunks,
    })
}

/// The child of `profile --memory`: prints `peak_rss_kb N`.
fn memory_probe(
    backend: &str,
    threads: usize,
    input: &[String],
    model: Option<&Path>,
) -> Result<()> {
    use dicesim_calibrate::memory;
    let inputs = (input.iter())
        .map(|s| memory::parse_input(s).with_context(|| format!("--input {s}")))
        .collect::<Result<Vec<_>>>()?;
    println!(
        "peak_rss_kb {}",
        memory::probe(backend, model, &inputs, threads)?
    );
    Ok(())
}
