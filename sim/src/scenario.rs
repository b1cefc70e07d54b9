//! Scenario files (format: `docs/scenario.md`) and `run_scenario`, the
//! library entry point of `dicesim run`.

use std::path::{Path, PathBuf};

use crate::engine::Outcome;
use crate::engine::{Window, DEFAULT_WINDOW};
use crate::error::SimError;
use crate::files::{relative, MappingTable, ScenarioFile, WindowValue, WorkloadTable};
use crate::platform::Platform;
use crate::prepared::{PreparedScenario, SimPlan, Workload};
use crate::report::Report;
use crate::strategy;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;

pub use crate::files::{HilTable, ModelSource, Strategy};

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
    /// The `[hil]` table, its device keys checked against the platform.
    pub hil: Option<HilTable>,
    /// Platform events by time (`[[event]]`, and `[[trace]]` lines as rate changes).
    pub events: Vec<crate::events::Event>,
    /// `[adapt]`: how a run reacts to events (defaults when absent).
    pub adapt: crate::events::Adapt,
    /// The explicit mapping's horizontal splits, their shares set (`None` without splits):
    /// `prep.graph` is the model with them written in, which real execution rebuilds with
    /// [`dicesim_plan::horizontal::apply`].
    pub hybrid: Option<dicesim_plan::horizontal::Hybrid>,
}

/// Checks the values of `[workload]`.
fn check_workload(path: &Path, w: &WorkloadTable) -> Result<Workload, SimError> {
    if w.frames == 0 {
        return Err(SimError::invalid(
            path,
            "workload.frames",
            "expected at least 1 frame",
        ));
    }
    if !(w.period_ms.is_finite() && w.period_ms >= 0.0) {
        return Err(SimError::invalid(
            path,
            "workload.period_ms",
            "expected a number >= 0 (0 saturates)",
        ));
    }
    Ok(Workload {
        frames: w.frames,
        period_ns: (w.period_ms * 1e6).round() as u64,
        window: check_window(path, w.window.as_ref())?,
    })
}

/// `[workload] window`: an integer >= 1, `"unlimited"`, or absent (partitions + 2).
fn check_window(path: &Path, w: Option<&WindowValue>) -> Result<Window, SimError> {
    match w {
        None => Ok(DEFAULT_WINDOW),
        Some(WindowValue::Frames(n)) if *n >= 1 && *n <= u32::MAX as i64 => {
            Ok(Window::Frames(*n as u32))
        }
        Some(WindowValue::Word(w)) if w == "unlimited" => Ok(Window::Unlimited),
        Some(_) => Err(SimError::invalid(
            path,
            "workload.window",
            "expected a number of frames >= 1 or \"unlimited\" (default: partitions + 2)",
        )),
    }
}

/// Checks the values of `[hil]`: every key that is not reserved must name a device of
/// `platform` (a misspelt device or reserved key gets the closest name as a hint).
fn check_hil(path: &Path, hil: &HilTable, platform: &Platform) -> Result<(), SimError> {
    if hil.window == Some(0) {
        return Err(SimError::invalid(
            path,
            "hil.window",
            "expected an integer >= 1",
        ));
    }
    if let Some(s) = hil.stall_timeout_s {
        if !(s > 0.0 && s < 1e6) {
            return Err(SimError::invalid(
                path,
                "hil.stall_timeout_s",
                "expected a number of seconds > 0",
            ));
        }
    }
    let valid: Vec<String> = (HilTable::RESERVED.iter().map(|k| k.to_string()))
        .chain(platform.devices.iter().map(|d| d.name.clone()))
        .collect();
    let mut keys = hil.workers.keys().chain(&hil.not_addresses);
    match keys.find(|k| !valid.contains(k)) {
        None => match hil.not_addresses.first() {
            None => Ok(()),
            Some(k) => Err(SimError::invalid(
                path,
                format!("hil.{k}"),
                "expected a worker address \"host:port\"",
            )),
        },
        Some(k) => Err(SimError::UnknownKey {
            path: path.to_path_buf(),
            key: dicesim_plan::tomlfile::UnknownKey {
                table: "[hil]".into(),
                key: k.clone(),
                hint: format!(
                    "not a device of the platform nor a reserved key; {}",
                    dicesim_plan::tomlfile::hint(k, &valid)
                ),
            },
        }),
    }
}

/// The platform of a scenario file, with its calibration applied.
fn load_platform(path: &Path, file: &ScenarioFile) -> Result<Platform, SimError> {
    let mut platform = platform_of(path, file)?;
    if let Some(c) = &file.calibration {
        let cpath = relative(path, &c.file);
        platform
            .apply_calibration(&cpath)
            .map_err(|e| e.named_by(path, "[calibration] file", &cpath))?;
    }
    Ok(platform)
}

/// The platform `[platform] file` names, without calibration.
fn platform_of(path: &Path, file: &ScenarioFile) -> Result<Platform, SimError> {
    let ppath = relative(path, &file.platform.file);
    Platform::load(&ppath).map_err(|e| e.named_by(path, "[platform] file", &ppath))
}

/// Reads a scenario's `[hil]` table (None when it has none), checked against its platform,
/// without loading its model or computing its mapping.
pub fn read_hil(path: &Path) -> Result<Option<HilTable>, SimError> {
    let file = ScenarioFile::read(path)?;
    let Some(hil) = &file.hil else {
        return Ok(None);
    };
    let platform = platform_of(path, &file)?;
    check_hil(path, hil, &platform)?;
    Ok(file.hil)
}

fn choose_mapping(
    path: &Path,
    m: &MappingTable,
    prep: &PreparedScenario,
    explicit: Option<Mapping>,
) -> Result<Mapping, SimError> {
    let units = strategy::allowed_units(prep, m.units.as_deref())
        .map_err(|e| SimError::invalid(path, "mapping.units", e.to_string()))?;
    match (explicit, m.strategy) {
        (Some(mapping), _) => Ok(mapping),
        (None, Strategy::Single) => strategy::single(prep, &units),
        (None, Strategy::Even) => strategy::even(prep, &units),
        (None, Strategy::Pipeedge) => strategy::pipeedge(prep, &units),
        (None, Strategy::Explicit) => Err(SimError::invalid(
            path,
            "mapping.file",
            "strategy \"explicit\" needs a mapping file",
        )),
    }
}

impl Scenario {
    /// Reads a scenario, its platform and model, and computes its mapping.
    pub fn load(path: &Path) -> Result<Scenario, SimError> {
        let file = ScenarioFile::read(path)?;
        let workload = check_workload(path, &file.workload)?;
        let mut platform = load_platform(path, &file)?;
        if let Some(hil) = &file.hil {
            check_hil(path, hil, &platform)?;
        }
        let (events, adapt) = crate::events::check_file(path, &file, &platform)?;
        let mapped = crate::modelsrc::load(path, &file, &mut platform)?;
        let prep = PreparedScenario::new(mapped.graph, platform, workload);
        let mapping = choose_mapping(path, &file.mapping, &prep, mapped.explicit)?;
        Ok(Scenario {
            name: file.name.unwrap_or_else(|| {
                path.file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }),
            path: path.to_path_buf(),
            seed: file.seed,
            strategy: file.mapping.strategy,
            units: file.mapping.units,
            prep,
            mapping,
            hil: file.hil,
            events,
            adapt,
            hybrid: mapped.hybrid,
        })
    }

    /// The model as the scenario file names it (the zoo's without its random weights, or
    /// the ONNX file), without the horizontal splits that `prep.graph` has written in.
    pub fn model(&self) -> Result<dicesim_plan::Model, SimError> {
        crate::modelsrc::scenario_model(&self.path)
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
    if !scenario.events.is_empty() {
        return crate::adapt::run_with_events(scenario, opts);
    }
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
    let objectives = scenario.prep.objectives_with(&plan, Some(&outcome))?;
    let report = Report::new(
        &scenario.name,
        scenario.strategy.name(),
        &scenario.prep,
        &plan,
        &outcome,
        &objectives,
    );
    Ok(ScenarioRun {
        scenario,
        plan,
        outcome,
        report,
    })
}
