//! Scenario files (see the scenario-file contract in `design.md`) and `run_scenario`, the
//! library entry point of `dicesim run`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dicesim_plan::graph::Graph;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use serde::Deserialize;

use crate::engine::Outcome;
use crate::error::{parse_toml, read_text, SimError};
use crate::platform::Platform;
use crate::prepared::{PreparedScenario, SimPlan, Workload};
use crate::report::Report;
use crate::strategy;

/// Mapping strategy of a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// A mapping file.
    Explicit,
    /// The single fastest unit that fits.
    Single,
    /// Equal-FLOP contiguous stages, one per device.
    Even,
    /// PipeEdge's dynamic programme.
    Pipeedge,
}

impl Strategy {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Explicit => "explicit",
            Strategy::Single => "single",
            Strategy::Even => "even",
            Strategy::Pipeedge => "pipeedge",
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawScenario {
    name: Option<String>,
    #[serde(default = "one")]
    seed: u64,
    model: RawModel,
    platform: RawPlatformRef,
    mapping: RawMapping,
    #[serde(default)]
    workload: RawWorkload,
    calibration: Option<RawCalibrationRef>,
}

#[derive(Debug, Deserialize)]
struct RawCalibrationRef {
    file: String,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
struct RawModel {
    zoo: Option<String>,
    path: Option<String>,
    #[serde(default = "default_input_size")]
    input_size: usize,
    #[serde(default)]
    input_shapes: BTreeMap<String, Vec<usize>>,
}

fn default_input_size() -> usize {
    224
}

#[derive(Debug, Deserialize)]
struct RawPlatformRef {
    file: String,
}

#[derive(Debug, Deserialize)]
struct RawMapping {
    strategy: Strategy,
    file: Option<String>,
    units: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct RawWorkload {
    #[serde(default = "one_u32")]
    frames: u32,
    #[serde(default)]
    period_ms: f64,
    #[serde(default)]
    window: Option<u32>,
}

fn one_u32() -> u32 {
    1
}

impl Default for RawWorkload {
    fn default() -> Self {
        RawWorkload {
            frames: 1,
            period_ms: 0.0,
            window: None,
        }
    }
}

/// A loaded scenario: model graph, platform, workload and the chosen mapping.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Name.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// Seed for anything random (the search).
    pub seed: u64,
    /// Strategy used for the mapping.
    pub strategy: Strategy,
    /// Optional unit restriction.
    pub units: Option<Vec<String>>,
    /// Everything precomputed for evaluation.
    pub prep: PreparedScenario,
    /// The mapping (explicit, or computed by the strategy).
    pub mapping: Mapping,
}

fn relative(base: &Path, file: &str) -> PathBuf {
    base.parent().unwrap_or(Path::new(".")).join(file)
}

/// Loads the model graph named by a scenario's `[model]`.
fn load_model(path: &Path, m: &RawModel) -> Result<Graph, SimError> {
    let plan_err = |error| SimError::Plan {
        path: path.to_path_buf(),
        error,
    };
    match (&m.zoo, &m.path) {
        (Some(z), None) => crate::modelsrc::zoo_graph(z, m.input_size)
            .map_err(|e| SimError::invalid(path, "model.zoo", e.to_string())),
        (None, Some(p)) => {
            crate::modelsrc::load_graph(&relative(path, p), &m.input_shapes).map_err(plan_err)
        }
        _ => Err(SimError::invalid(
            path,
            "model",
            "expected exactly one of `zoo` (a zoo model name) or `path` (an ONNX file)",
        )),
    }
}

impl Scenario {
    /// Reads a scenario, its platform and model, and computes its mapping.
    pub fn load(path: &Path) -> Result<Scenario, SimError> {
        let text = read_text(path)?;
        let raw: RawScenario = parse_toml(path, &text)?;
        if raw.workload.frames == 0 {
            return Err(SimError::invalid(
                path,
                "workload.frames",
                "expected at least 1 frame",
            ));
        }
        if !(raw.workload.period_ms.is_finite() && raw.workload.period_ms >= 0.0) {
            return Err(SimError::invalid(
                path,
                "workload.period_ms",
                "expected a number >= 0 (0 saturates)",
            ));
        }
        if raw.workload.window == Some(0) {
            return Err(SimError::invalid(
                path,
                "workload.window",
                "expected at least 1 frame in flight",
            ));
        }
        let mut platform = Platform::load(&relative(path, &raw.platform.file))?;
        if let Some(c) = &raw.calibration {
            platform.apply_calibration(&relative(path, &c.file))?;
        }
        let graph = load_model(path, &raw.model)?;
        let workload = Workload {
            frames: raw.workload.frames,
            period_ns: (raw.workload.period_ms * 1e6).round() as u64,
            window: raw.workload.window,
        };
        let prep = PreparedScenario::new(graph, platform, workload);
        let units = strategy::allowed_units(&prep, raw.mapping.units.as_deref())
            .map_err(|e| SimError::invalid(path, "mapping.units", e.to_string()))?;
        let mapping = match raw.mapping.strategy {
            Strategy::Explicit => {
                let Some(f) = &raw.mapping.file else {
                    return Err(SimError::invalid(
                        path,
                        "mapping.file",
                        "strategy \"explicit\" needs a mapping file",
                    ));
                };
                let mpath = relative(path, f);
                let m =
                    crate::modelsrc::mapping_from_file(&mpath, &prep.graph).map_err(|error| {
                        SimError::Plan {
                            path: mpath.clone(),
                            error,
                        }
                    })?;
                // unknown units are reported against the mapping file
                prep.assignment(&m).map_err(|e| SimError::Invalid {
                    path: mpath.clone(),
                    key: "units".into(),
                    expected: e.to_string(),
                })?;
                m
            }
            Strategy::Single => strategy::single(&prep, &units)?,
            Strategy::Even => strategy::even(&prep, &units)?,
            Strategy::Pipeedge => strategy::pipeedge(&prep, &units)?,
        };
        Ok(Scenario {
            name: raw.name.unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            path: path.to_path_buf(),
            seed: raw.seed,
            strategy: raw.mapping.strategy,
            units: raw.mapping.units,
            prep,
            mapping,
        })
    }
}

/// Options of [`run_scenario`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Record every job and transfer (needed for traces and Gantt charts).
    pub record: bool,
}

/// The result of simulating a scenario.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// The scenario.
    pub scenario: Scenario,
    /// Its partitions.
    pub plan: SimPlan,
    /// Everything measured.
    pub outcome: Outcome,
    /// The report.
    pub report: Report,
}

/// Loads and simulates a scenario (what `dicesim run` does). The partitions are the ones
/// `dicesim_plan::partition::Plan::build` forms, i.e. the sub-models `dicesim split` writes
/// and real execution runs.
pub fn run_scenario(path: &Path, opts: RunOptions) -> Result<ScenarioRun, SimError> {
    run_loaded(Scenario::load(path)?, opts)
}

/// Simulates a loaded (possibly modified) scenario, as [`run_scenario`].
pub fn run_loaded(scenario: Scenario, opts: RunOptions) -> Result<ScenarioRun, SimError> {
    let path = scenario.path.clone();
    let path = path.as_path();
    scenario.prep.assignment(&scenario.mapping)?;
    let partitions =
        Plan::build(&scenario.prep.graph, &scenario.mapping).map_err(|error| SimError::Plan {
            path: path.to_path_buf(),
            error,
        })?;
    let plan = scenario.prep.sim_plan_from(&partitions)?;
    let outcome = scenario.prep.simulate(&plan, opts.record)?;
    let report = Report::new(
        &scenario.name,
        scenario.strategy.name(),
        &scenario.prep,
        &plan,
        &outcome,
    );
    Ok(ScenarioRun {
        scenario,
        plan,
        outcome,
        report,
    })
}
