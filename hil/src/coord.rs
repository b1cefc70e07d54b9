//! `dicesim hil`: the coordinator. Loads a scenario (model, platform, mapping by the
//! simulator's strategies), splits the model, ships the sub-models to the workers named by
//! the scenario's `[hil]` table, deploys the partitions with their peer-to-peer routes,
//! streams the workload's frames with a bounded window in flight, checks the first frames'
//! outputs against the whole model run here, and reports what it measured.
//!
//! `[hil]` keys: a device name maps to its worker's `host:port`; reserved keys are
//! `token_file` (shared secret, relative to the scenario; `DICESIM_TOKEN_FILE` otherwise),
//! `window` (frames in flight, default partitions + 2) and `stall_timeout_s` (default 60:
//! a run in which nothing completes for that long fails).

mod adapt;
mod session;
mod slow;
mod stream;
mod summary;
mod workers;

pub use adapt::Replayed;

use crate::conn::Shaping;
use crate::report::RunReport;
use anyhow::{anyhow, bail, Context, Result};
use dicesim_plan::partition::Plan;
use dicesim_plan::Model;
use dicesim_sim::files::{HilTable, ModelSource, ScenarioFile};
use dicesim_sim::Scenario;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Frames whose outputs are compared with the whole model's.
pub const VERIFY_FRAMES: u64 = 2;
/// Verification tolerance (as `split --verify`).
pub const TOLERANCE: f64 = 1e-5;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct HilRun {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Device name -> worker address.
    pub workers: BTreeMap<String, String>,
    /// Device name -> the address other workers use to reach it (emulation: the platform
    /// network's address; the coordinator uses `workers`, a management network). Devices
    /// not listed are reached at their `workers` address.
    pub peer_addrs: BTreeMap<String, String>,
    /// Shared secret (empty: loopback workers without a token).
    pub token: Vec<u8>,
    /// Frames in flight at most (None: partitions + 2).
    pub window: Option<usize>,
    /// Per (producer device, consumer device) index pair: shaping applied by the sender.
    pub shaping: HashMap<(usize, usize), Shaping>,
    /// `hil` or `emulate`.
    pub mode: String,
    /// Emulation time dilation (1: none).
    pub dilation: f64,
    /// Emulation only: the host's calibrated GFLOP/s on this model (one core).
    pub host_gflops: Option<f64>,
    /// Emulation only: device index -> the host CPUs the rig gave it; its core `i` runs on
    /// `cpus[i % cpus.len()]`. Devices not listed are boards: core `i` is CPU `i`.
    pub cpu_map: BTreeMap<usize, Vec<usize>>,
    /// A run in which nothing arrives for this long fails.
    pub stall_timeout: Duration,
    /// Show a progress bar on stderr (only drawn on a terminal).
    pub progress: bool,
    /// The events `emulate` replays, as they happen (a fresh one for each run that
    /// replays them).
    pub replayed: Arc<Replayed>,
}

/// Reads the scenario's `[hil]` table into a [`HilRun`].
pub fn from_scenario(path: &Path) -> Result<HilRun> {
    options(path, true)
}

/// Reads the scenario's `[hil]` table (which may be absent unless `required`). The
/// simulator's scenario model reads it and checks its device keys against the platform.
pub fn options(path: &Path, required: bool) -> Result<HilRun> {
    let hil = match dicesim_sim::scenario::read_hil(path)? {
        Some(h) => h,
        None if !required => HilTable::default(),
        None => bail!(
            "{}: no [hil] table; add one naming each device's worker, e.g. [hil] nx1 = \"127.0.0.1:7070\"",
            path.display()
        ),
    };
    let mut run = HilRun {
        scenario: path.to_path_buf(),
        workers: hil.workers,
        peer_addrs: BTreeMap::new(),
        token: Vec::new(),
        window: hil.window.map(|w| w as usize),
        shaping: HashMap::new(),
        mode: "hil".into(),
        dilation: 1.0,
        host_gflops: None,
        cpu_map: BTreeMap::new(),
        stall_timeout: Duration::from_secs_f64(hil.stall_timeout_s.unwrap_or(60.0)),
        progress: true,
        replayed: Arc::default(),
    };
    if let Some(f) = &hil.token_file {
        let p = path.parent().unwrap_or(Path::new(".")).join(f);
        run.token = crate::worker::read_token(&p)?;
    }
    if run.token.is_empty() {
        if let Ok(f) = std::env::var("DICESIM_TOKEN_FILE") {
            run.token = crate::worker::read_token(Path::new(&f))?;
        }
    }
    Ok(run)
}

/// Loads the scenario's model as an ONNX [`Model`] (the simulator keeps only its graph),
/// from the `[model]` table as the simulator's scenario model reads it.
pub fn load_model(path: &Path) -> Result<Model> {
    let file = ScenarioFile::read(path)?;
    Ok(match file.model.source(path)? {
        ModelSource::Zoo { name, input_size } => Model::zoo(&name, input_size)?,
        ModelSource::Onnx { path, input_shapes } => Model::load(&path, &input_shapes)?,
    })
}

/// The loaded plan: scenario, model, partitions, and where each partition runs.
#[derive(Clone)]
pub struct Prepared {
    /// The scenario (platform, mapping, workload).
    pub scenario: Scenario,
    /// The model, horizontal splits written in.
    pub model: Model,
    /// The model as the scenario names it, when `model` has horizontal splits: the
    /// reference outputs are checked against.
    pub whole: Option<Model>,
    /// Partitions.
    pub plan: Plan,
    /// Device index of each partition.
    pub part_device: Vec<usize>,
    /// Unit, cores and engine threads of each partition.
    pub part_place: Vec<crate::cores::Placement>,
}

impl Prepared {
    /// The model whose outputs the first frames are checked against (the original one).
    pub fn reference_model(&self) -> &Model {
        self.whole.as_ref().unwrap_or(&self.model)
    }

    /// The simulator's memory need of each platform device for the plan [MiB], by its
    /// units' memory models (docs/simulator.md#memory): what reports print beside the
    /// measured peak and what `emulate` checks against `memory_mb`.
    pub fn predicted_need_mb(&self) -> Result<Vec<f64>> {
        let ps = &self.scenario.prep;
        let plan = ps.sim_plan_from(&self.plan)?;
        let mib = 1024.0 * 1024.0;
        Ok(ps
            .memory_bytes(&plan)
            .iter()
            .map(|&b| b as f64 / mib)
            .collect())
    }
}

/// Loads scenario, model and plan.
pub fn prepare(path: &Path) -> Result<Prepared> {
    let scenario = Scenario::load(path)?;
    let mut model = load_model(path)?;
    let mut whole = None;
    if let Some(h) = &scenario.hybrid {
        // the horizontal splits the simulator wrote into its graph, same shares
        let split = dicesim_plan::horizontal::apply(&model, h)
            .with_context(|| format!("{}: horizontal splits", path.display()))?
            .0;
        whole = Some(std::mem::replace(&mut model, split));
    }
    let plan = Plan::build(&model.graph, &scenario.mapping)
        .with_context(|| format!("{}: partitioning", path.display()))?;
    let pf = &scenario.prep.platform;
    let part_place = (plan.partitions.iter())
        .map(|p| {
            crate::cores::resolve(pf, &p.unit)
                .ok_or_else(|| anyhow!("unit {} is not in the platform", p.unit))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        scenario,
        model,
        whole,
        plan,
        part_device: part_place.iter().map(|p| p.device).collect(),
        part_place,
    })
}

/// Runs a scenario on workers; the CLI entry of `dicesim hil`. Prints the report (JSON or
/// text) and fails when frames did not complete or outputs do not match.
pub fn run_cli(path: &Path, json: bool) -> Result<()> {
    let run = from_scenario(path)?;
    let report = execute(&run)?;
    print_and_judge(&report, json)
}

/// Prints a report and turns a fault or a failed verification into an error.
pub fn print_and_judge(report: &RunReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.text());
    }
    if let Some(e) = &report.error {
        bail!(
            "{} of {} frames did not complete: {e}",
            report.failed_frames.len(),
            report.frames
        );
    }
    if let Some(v) = &report.verification {
        if !v.ok {
            bail!(
                "outputs differ from the whole model: max relative error {:.3e} exceeds {TOLERANCE:e}",
                v.max_rel_error
            );
        }
    }
    Ok(())
}

/// Runs `run` and returns the measured report (with `error` set when the run failed midway;
/// an error return means nothing ran: bad scenario, unreachable worker, failed deployment).
pub fn execute(run: &HilRun) -> Result<RunReport> {
    let prep = prepare(&run.scenario)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(session::execute(run, &prep))
}

/// Seeded inputs for every graph input of `model`.
pub fn random_inputs(model: &Model, seed: u64) -> HashMap<String, crate::engine::Tensor> {
    model
        .graph
        .inputs
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let shape = &model.graph.tensors[name].shape;
            (
                name.clone(),
                crate::engine::Tensor::random(shape, seed.wrapping_add(i as u64)),
            )
        })
        .collect()
}
