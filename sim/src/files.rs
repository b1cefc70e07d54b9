//! The file model: one serde struct per table of the scenario, platform, device template and
//! calibration files (the mapping file's are in `dicesim_plan::mapping`). Every table denies
//! unknown keys, so a misspelled key is a one-line error naming the file, the table and the
//! closest valid key (see `dicesim_plan::tomlfile`), never a silently ignored line.
//!
//! These structs only describe what a file says; [`crate::scenario`] and [`crate::platform`]
//! check the values and build the simulator's types from them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::error::{parse_toml, read_text, SimError};
use crate::platform::UnitKind;

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

/// A scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// `name` (default: the file's stem).
    pub name: Option<String>,
    /// `seed` for anything random (default 1).
    #[serde(default = "one_u64")]
    pub seed: u64,
    /// `[model]`.
    pub model: ModelTable,
    /// `[platform]`.
    pub platform: FileRef,
    /// `[mapping]`.
    pub mapping: MappingTable,
    /// `[workload]` (default: one frame).
    #[serde(default)]
    pub workload: WorkloadTable,
    /// `[calibration]`.
    pub calibration: Option<FileRef>,
    /// `[hil]`: where the workers of `dicesim hil` listen.
    pub hil: Option<HilTable>,
    /// `[[event]]`: platform events (`docs/events.md`).
    #[serde(default)]
    pub event: Vec<crate::events::EventTable>,
    /// `[[trace]]`: link rates over time from CSV files.
    #[serde(default)]
    pub trace: Vec<crate::events::TraceTable>,
    /// `[adapt]`: what a run does on events.
    pub adapt: Option<crate::events::AdaptTable>,
}

impl ScenarioFile {
    /// Reads and parses a scenario file (no value checks).
    pub fn read(path: &Path) -> Result<ScenarioFile, SimError> {
        parse_toml(path, &read_text(path)?)
    }
}

fn one_u64() -> u64 {
    1
}

/// `[model]`: a zoo model or an ONNX file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTable {
    /// `zoo`: a zoo model name.
    pub zoo: Option<String>,
    /// `path`: an ONNX file, relative to the scenario.
    pub path: Option<String>,
    /// `input_size` of a zoo model (default 224).
    #[serde(default = "default_input_size")]
    pub input_size: usize,
    /// `input_shapes` of an ONNX file's inputs without static shapes.
    #[serde(default)]
    pub input_shapes: BTreeMap<String, Vec<usize>>,
}

fn default_input_size() -> usize {
    224
}

/// Where a scenario's model comes from: the one reading of `[model]` that `run`, `explore`
/// and `hil` share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A zoo model built at `input_size`.
    Zoo {
        /// The zoo name.
        name: String,
        /// Input height and width.
        input_size: usize,
    },
    /// An ONNX file.
    Onnx {
        /// The file (resolved against the scenario's folder).
        path: PathBuf,
        /// Shapes of inputs the file leaves open.
        input_shapes: BTreeMap<String, Vec<usize>>,
    },
}

impl ModelTable {
    /// The model source; exactly one of `zoo` and `path` must be given. `scenario` is the
    /// file (named in errors; `path` is relative to it).
    pub fn source(&self, scenario: &Path) -> Result<ModelSource, SimError> {
        match (&self.zoo, &self.path) {
            (Some(z), None) => Ok(ModelSource::Zoo {
                name: z.clone(),
                input_size: self.input_size,
            }),
            (None, Some(p)) => Ok(ModelSource::Onnx {
                path: relative(scenario, p),
                input_shapes: self.input_shapes.clone(),
            }),
            _ => Err(SimError::invalid(
                scenario,
                "model",
                "expected exactly one of `zoo` (a zoo model name) or `path` (an ONNX file)",
            )),
        }
    }
}

/// A `file = "..."` table (`[platform]`, `[calibration]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRef {
    /// The file, relative to the scenario.
    pub file: String,
}

/// `[mapping]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingTable {
    /// `strategy`.
    pub strategy: Strategy,
    /// `file` (strategy `explicit`), relative to the scenario.
    pub file: Option<String>,
    /// `horizontal`: AutoDiCE's `horizontal.json` beside a `mapping.json` file, relative to
    /// the scenario.
    pub horizontal: Option<String>,
    /// `units`: the units the strategy may use.
    pub units: Option<Vec<String>>,
}

/// `[workload]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadTable {
    /// `frames` (default 1).
    #[serde(default = "one_u32")]
    pub frames: u32,
    /// `period_ms` between frame arrivals (default 0: saturate).
    #[serde(default)]
    pub period_ms: f64,
    /// `window`: frames in flight at most, or `"unlimited"` (default: partitions + 2).
    #[serde(default)]
    pub window: Option<WindowValue>,
}

/// A `window` value as written: a number of frames, or a word (`"unlimited"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum WindowValue {
    /// At most this many frames in flight.
    Frames(i64),
    /// A word; only `unlimited` is valid.
    Word(String),
}

fn one_u32() -> u32 {
    1
}

impl Default for WorkloadTable {
    fn default() -> Self {
        WorkloadTable {
            frames: 1,
            period_ms: 0.0,
            window: None,
        }
    }
}

/// `[hil]`: reserved keys, and one `device = "host:port"` per worker.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HilTable {
    /// `token_file`: the shared secret, relative to the scenario.
    pub token_file: Option<String>,
    /// `window`: frames in flight at most.
    pub window: Option<u32>,
    /// `stall_timeout_s`: a run in which nothing completes for this long fails.
    pub stall_timeout_s: Option<f64>,
    /// Device name -> worker address `host:port`, in key order.
    pub workers: BTreeMap<String, String>,
    /// Other keys whose value is not a string: a misspelt reserved key, or a device whose
    /// address is not a string (told apart once the platform's devices are known).
    pub not_addresses: Vec<String>,
}

impl HilTable {
    /// The keys with a meaning of their own; every other key names a device.
    pub const RESERVED: [&'static str; 3] = ["token_file", "window", "stall_timeout_s"];
}

// By hand rather than derived: its device keys are open (so `deny_unknown_fields` cannot
// apply); they are checked against the platform's devices instead (`Scenario::check_hil`).
impl<'de> Deserialize<'de> for HilTable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(HilVisitor)
    }
}

struct HilVisitor;

impl<'de> Visitor<'de> for HilVisitor {
    type Value = HilTable;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table of device = \"host:port\" and reserved keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HilTable, A::Error> {
        let mut t = HilTable::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "token_file" => t.token_file = Some(map.next_value()?),
                "window" => t.window = Some(map.next_value()?),
                "stall_timeout_s" => t.stall_timeout_s = Some(map.next_value()?),
                _ => match map.next_value()? {
                    toml::Value::String(addr) => {
                        t.workers.insert(key, addr);
                    }
                    _ => t.not_addresses.push(key),
                },
            }
        }
        Ok(t)
    }
}

/// A platform file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlatformFile {
    pub name: Option<String>,
    #[serde(default)]
    pub device: Vec<DeviceTable>,
    #[serde(default)]
    pub switch: Vec<SwitchTable>,
    #[serde(default)]
    pub link: Vec<LinkTable>,
}

/// A `[[device]]` of a platform, or a whole device template file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeviceTable {
    pub name: Option<String>,
    pub template: Option<String>,
    pub memory_mb: Option<f64>,
    pub idle_w: Option<f64>,
    pub mem_gbps: Option<f64>,
    pub unit: Option<Vec<UnitTable>>,
}

/// A `[[device.unit]]` (`[[unit]]` in a template).
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnitTable {
    pub name: Option<String>,
    pub kind: Option<UnitKind>,
    pub cores: Option<u32>,
    pub gflops: Option<f64>,
    pub mem_gbps: Option<f64>,
    pub busy_w: Option<f64>,
    pub layer_overhead_us: Option<f64>,
    pub run_overhead_us: Option<f64>,
    pub serial_fraction: Option<f64>,
    pub engine: Option<String>,
    pub precision: Option<String>,
    /// The memory model's keys (see [`crate::memory`]).
    pub memory_base_mb: Option<f64>,
    pub weights_factor: Option<f64>,
    pub activations_factor: Option<f64>,
    pub classes: Option<
        std::collections::BTreeMap<dicesim_plan::opclass::OpClass, crate::compute::ClassFigures>,
    >,
    pub profile: Option<String>,
    /// Set while loading: the file `profile` is relative to (None: the platform file).
    #[serde(skip)]
    pub base: Option<PathBuf>,
}

/// A `[[switch]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchTable {
    pub name: String,
}

/// A `[[link]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LinkTable {
    pub name: Option<String>,
    pub ends: Vec<String>,
    pub bandwidth_mbps: f64,
    #[serde(default)]
    pub latency_us: f64,
    #[serde(default)]
    pub shared_medium: bool,
    #[serde(default)]
    pub energy_nj_per_byte: f64,
}

/// A calibration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalibrationFile {
    #[serde(default)]
    pub unit: Vec<CalUnit>,
    #[serde(default)]
    pub link: Vec<CalLink>,
}

/// A calibration's `[[unit]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalUnit {
    pub name: String,
    pub profile: Option<String>,
    pub run_overhead_us: Option<f64>,
    pub gflops: Option<f64>,
    pub mem_gbps: Option<f64>,
    pub layer_overhead_us: Option<f64>,
    /// The memory model's keys (see [`crate::memory`]).
    pub memory_base_mb: Option<f64>,
    pub weights_factor: Option<f64>,
    pub activations_factor: Option<f64>,
    /// `[unit.classes.<class>] weights_factor` (the memory model's only class key here).
    pub classes: Option<std::collections::BTreeMap<dicesim_plan::opclass::OpClass, CalClass>>,
}

/// A calibration unit's `[unit.classes.<class>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalClass {
    pub weights_factor: Option<f64>,
}

/// A calibration's `[[link]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CalLink {
    pub name: String,
    pub bandwidth_mbps: Option<f64>,
    pub latency_us: Option<f64>,
}

/// `file` relative to the folder of `base`.
pub(crate) fn relative(base: &Path, file: &str) -> PathBuf {
    base.parent().unwrap_or(Path::new(".")).join(file)
}

/// The memory keys of a unit table.
impl UnitTable {
    pub(crate) fn memory_keys(&self) -> crate::memory::MemoryKeys {
        crate::memory::MemoryKeys {
            memory_base_mb: self.memory_base_mb,
            weights_factor: self.weights_factor,
            activations_factor: self.activations_factor,
            class_weights: Default::default(),
        }
        .with_classes((self.classes.iter().flatten()).map(|(&c, f)| (c, f.weights_factor)))
    }
}

/// The memory keys of a calibration's unit.
impl CalUnit {
    pub(crate) fn memory_keys(&self) -> crate::memory::MemoryKeys {
        crate::memory::MemoryKeys {
            memory_base_mb: self.memory_base_mb,
            weights_factor: self.weights_factor,
            activations_factor: self.activations_factor,
            class_weights: Default::default(),
        }
        .with_classes((self.classes.iter().flatten()).map(|(&c, f)| (c, f.weights_factor)))
    }
}
