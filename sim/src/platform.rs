//! Platform files: devices with compute units, switches and links (see the platform-file
//! format in `docs/platform.md`), loaded and validated into a [`Platform`].
//!
//! Additions to the contract:
//! - `[[device]] template = "devices/jetson-nano.toml"` (relative to the platform file):
//!   the device's keys are read from that file first; keys given inline override them.
//!   Units merge by name: an inline `[[device.unit]]` whose `name` is a unit of the
//!   template overrides only the keys it gives (the template's other units and that unit's
//!   other keys stay); an inline unit with a new name is added after the template's units.
//!   A template cannot itself name a template.
//! - `[[device.unit]] profile = "file.csv"` (relative to the file that names it): a measured
//!   per-layer profile, CSV with header `layer,time_us`; it replaces the compute-model
//!   estimate for the layers it lists.
//! - `[[link]] energy_nj_per_byte = 0.0`: energy spent per byte carried [nJ/B].
//! - `[[device.unit]] run_overhead_us = 0.0`: fixed cost of every partition run on the unit
//!   (handing the inputs to the engine, taking the outputs) [us], on top of its layers.
//! - A calibration file (a scenario's `[calibration] file`, written by `dicesim validate
//!   --calibration-out`) overrides measured figures of named units and links: see
//!   [`Platform::apply_calibration`].
//! - Every table denies unknown keys (see [`crate::files`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use dicesim_plan::coreset::{trailing_core, CoreSet, UnitRef, MAX_CORES};
use dicesim_plan::opclass::OpClass;

use crate::compute::ClassFigures;
use crate::error::{parse_toml, read_text, SimError};
use crate::files::{relative, CalibrationFile, DeviceTable, LinkTable, PlatformFile, UnitTable};
use crate::memory::UnitMemory;

/// Kind of compute unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitKind {
    /// A multicore CPU.
    Cpu,
    /// A GPU (or other accelerator).
    Gpu,
}

/// A compute unit of a device.
#[derive(Debug, Clone)]
pub struct Unit {
    /// Unit name, unique within its device.
    pub name: String,
    /// Full name `"<device>.<unit>"`.
    pub full_name: String,
    /// Index of its device in [`Platform::devices`].
    pub device: usize,
    /// Kind.
    pub kind: UnitKind,
    /// Cores of the physical unit (1 for a GPU).
    pub cores: u32,
    /// The physical unit this is: its own index for a unit of the platform file, the CPU's
    /// index for a core set of it (see [`Platform::resolve_unit`]).
    pub parent: usize,
    /// The cores it runs on (all of them for a whole unit).
    pub core_set: CoreSet,
    /// Serial fraction of the thread scaling for classes without their own (`None`: the
    /// defaults of [`crate::compute::default_serial_fraction`]).
    pub serial_fraction: Option<f64>,
    /// Per operator class figures (see [`crate::compute`]).
    pub classes: BTreeMap<OpClass, ClassFigures>,
    /// The inference engine its figures describe (informative, e.g. `ncnn`).
    pub engine: Option<String>,
    /// The arithmetic precision its figures describe (informative, e.g. `fp32`).
    pub precision: Option<String>,
    /// Effective compute rate [GFLOP/s].
    pub gflops: f64,
    /// Effective memory bandwidth [GB/s].
    pub mem_gbps: f64,
    /// Power above idle while busy [W].
    pub busy_w: f64,
    /// Fixed cost per layer [us].
    pub layer_overhead_us: f64,
    /// Fixed cost per partition run [us].
    pub run_overhead_us: f64,
    /// Measured per-layer times [us] by layer name, if the platform names a profile.
    pub profile: Option<BTreeMap<String, f64>>,
    /// Its engine's memory model (`memory_base_mb`, `weights_factor`, `activations_factor`).
    pub memory: UnitMemory,
}

impl Unit {
    /// Threads a partition on it runs with: its cores (1 on a GPU).
    pub fn threads(&self) -> u32 {
        self.core_set.count()
    }
}

/// A device (board).
#[derive(Debug, Clone)]
pub struct Device {
    /// Name, unique in the platform.
    pub name: String,
    /// Memory available to the model [MiB].
    pub memory_mb: f64,
    /// Power drawn always [W].
    pub idle_w: f64,
    /// Memory bandwidth shared by all jobs running on the device at once [GB/s] (default:
    /// the sum of its units' `mem_gbps`, so that units never slow each other down unless the
    /// device file says so).
    pub mem_gbps: f64,
    /// Indices of its units in [`Platform::units`] (core sets not included).
    pub units: Vec<usize>,
}

/// A link or a shared medium.
#[derive(Debug, Clone)]
pub struct Link {
    /// Name.
    pub name: String,
    /// Node indices (devices first, then switches: see [`Platform::node_name`]).
    pub ends: Vec<usize>,
    /// Bandwidth [Mbit/s] (per direction, or of the whole medium when shared).
    pub bandwidth_mbps: f64,
    /// Latency [us].
    pub latency_us: f64,
    /// One half-duplex medium shared by all its traffic (Wi-Fi).
    pub shared_medium: bool,
    /// Energy per byte carried [nJ/B].
    pub energy_nj_per_byte: f64,
}

/// A loaded, validated platform.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Name.
    pub name: String,
    /// The file it was read from.
    pub path: PathBuf,
    /// Devices in file order.
    pub devices: Vec<Device>,
    /// All compute units, device by device in file order.
    pub units: Vec<Unit>,
    /// Switch names; switch `i` is node `devices.len() + i`.
    pub switches: Vec<String>,
    /// Links in file order.
    pub links: Vec<Link>,
}

fn positive(path: &Path, key: &str, v: Option<f64>) -> Result<f64, SimError> {
    match v {
        None => Err(SimError::invalid(
            path,
            key,
            "missing; expected a positive number",
        )),
        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
        Some(x) => Err(SimError::invalid(
            path,
            key,
            format!("expected a positive number, found {x}"),
        )),
    }
}

fn non_negative(path: &Path, key: &str, v: f64) -> Result<f64, SimError> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(SimError::invalid(
            path,
            key,
            format!("expected a number >= 0, found {v}"),
        ))
    }
}

/// Reads a per-layer profile CSV (`layer,time_us`, further columns ignored, `#` lines are
/// comments; the `dicesim profile` format), through the `csv` crate (quoted layer names).
pub fn load_profile(path: &Path) -> Result<BTreeMap<String, f64>, SimError> {
    let text = read_text(path)?;
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = BTreeMap::new();
    for row in rows.records() {
        let row = row.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            SimError::invalid(path, format!("line {line}"), e.to_string())
        })?;
        let key = format!("line {}", row.position().map_or(0, |p| p.line()));
        let (Some(layer), Some(t)) = (row.get(0), row.get(1)) else {
            return Err(SimError::invalid(path, key, "expected `layer,time_us`"));
        };
        if layer == "layer" && t == "time_us" {
            continue;
        }
        let t: f64 = t
            .parse()
            .map_err(|_| SimError::invalid(path, &key, format!("time_us `{t}` is not a number")))?;
        non_negative(path, &key, t)?;
        out.insert(layer.to_string(), t);
    }
    Ok(out)
}

/// The file's stem, the default name of a platform or scenario.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A `[[device]]` with its template (if it names one) read first: inline keys override the
/// template's, inline units merge into the template's by name (see the module doc).
fn with_template(path: &Path, key: &str, rd: DeviceTable) -> Result<DeviceTable, SimError> {
    let Some(t) = &rd.template else {
        return Ok(rd);
    };
    let tpath = relative(path, t);
    let text =
        read_text(&tpath).map_err(|e| e.named_by(path, &format!("{key}.template"), &tpath))?;
    let tpl: DeviceTable = parse_toml(&tpath, &text)?;
    if tpl.template.is_some() {
        return Err(SimError::invalid(
            &tpath,
            "template",
            "a device template cannot name another template",
        ));
    }
    let mut units: Vec<UnitTable> = tpl.unit.unwrap_or_default();
    for u in &mut units {
        u.base = Some(tpath.clone());
    }
    for inline in rd.unit.unwrap_or_default() {
        match units
            .iter_mut()
            .find(|u| u.name.is_some() && u.name == inline.name)
        {
            Some(u) => override_unit(u, inline),
            None => units.push(inline),
        }
    }
    Ok(DeviceTable {
        name: rd.name.or(tpl.name),
        template: None,
        memory_mb: rd.memory_mb.or(tpl.memory_mb),
        idle_w: rd.idle_w.or(tpl.idle_w),
        mem_gbps: rd.mem_gbps.or(tpl.mem_gbps),
        unit: Some(units),
    })
}

/// Overrides the keys of template unit `u` that `inline` gives.
fn override_unit(u: &mut UnitTable, inline: UnitTable) {
    if inline.profile.is_some() {
        // an inline profile is relative to the platform file, not the template
        u.profile = inline.profile;
        u.base = None;
    }
    u.kind = inline.kind.or(u.kind);
    u.cores = inline.cores.or(u.cores);
    u.gflops = inline.gflops.or(u.gflops);
    u.mem_gbps = inline.mem_gbps.or(u.mem_gbps);
    u.busy_w = inline.busy_w.or(u.busy_w);
    u.layer_overhead_us = inline.layer_overhead_us.or(u.layer_overhead_us);
    u.run_overhead_us = inline.run_overhead_us.or(u.run_overhead_us);
    u.serial_fraction = inline.serial_fraction.or(u.serial_fraction);
    u.engine = inline.engine.or(u.engine.take());
    u.precision = inline.precision.or(u.precision.take());
    u.memory_base_mb = inline.memory_base_mb.or(u.memory_base_mb);
    u.weights_factor = inline.weights_factor.or(u.weights_factor);
    u.activations_factor = inline.activations_factor.or(u.activations_factor);
    for (c, f) in inline.classes.unwrap_or_default() {
        u.classes.get_or_insert_with(BTreeMap::new).insert(c, f);
    }
}

/// A unit's core count: 1 to 64 on a CPU (default 1), 1 on a GPU.
fn unit_cores(path: &Path, key: &str, kind: UnitKind, cores: Option<u32>) -> Result<u32, SimError> {
    match (kind, cores) {
        (UnitKind::Gpu, None | Some(1)) | (UnitKind::Cpu, None) => Ok(1),
        (UnitKind::Gpu, Some(n)) => Err(SimError::invalid(
            path,
            key,
            format!("a GPU unit has no cores to allocate (found {n}); leave `cores` out"),
        )),
        (UnitKind::Cpu, Some(n)) if (1..=MAX_CORES).contains(&n) => Ok(n),
        (UnitKind::Cpu, Some(n)) => Err(SimError::invalid(
            path,
            key,
            format!("expected 1 to {} cores, found {n}", MAX_CORES),
        )),
    }
}

/// A number in [0, 1].
fn fraction(path: &Path, key: &str, v: f64) -> Result<f64, SimError> {
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(SimError::invalid(
            path,
            key,
            format!("expected a number from 0 to 1, found {v}"),
        ))
    }
}

/// Checks a unit's `[unit.classes.<class>]` tables.
fn class_figures(
    path: &Path,
    key: &dyn Fn(&str) -> String,
    raw: BTreeMap<OpClass, ClassFigures>,
) -> Result<BTreeMap<OpClass, ClassFigures>, SimError> {
    for (c, f) in &raw {
        let k = |n: &str| key(&format!("classes.{}.{n}", c.name()));
        if let Some(v) = f.gflops {
            positive(path, &k("gflops"), Some(v))?;
        }
        if let Some(v) = f.mem_gbps {
            positive(path, &k("mem_gbps"), Some(v))?;
        }
        if let Some(v) = f.serial_fraction {
            fraction(path, &k("serial_fraction"), v)?;
        }
    }
    Ok(raw)
}

/// Checks one (named) unit of device number `di`; `key` names its keys in errors.
fn unit(
    path: &Path,
    key: &dyn Fn(&str) -> String,
    full_name: String,
    di: usize,
    ru: UnitTable,
) -> Result<Unit, SimError> {
    let kind = ru
        .kind
        .ok_or_else(|| SimError::invalid(path, key("kind"), "missing; cpu or gpu"))?;
    let profile = match &ru.profile {
        Some(p) => {
            let base = ru.base.as_deref().unwrap_or(path);
            let ppath = relative(base, p);
            Some(load_profile(&ppath).map_err(|e| e.named_by(path, &key("profile"), &ppath))?)
        }
        None => None,
    };
    let or0 = |k: &str, v: Option<f64>| non_negative(path, &key(k), v.unwrap_or(0.0));
    let cores = unit_cores(path, &key("cores"), kind, ru.cores)?;
    let memory = UnitMemory::default().with_keys(path, key, ru.memory_keys())?;
    let classes = class_figures(path, key, ru.classes.unwrap_or_default())?;
    Ok(Unit {
        full_name,
        name: ru.name.unwrap_or_default(),
        device: di,
        kind,
        cores,
        parent: usize::MAX,
        core_set: CoreSet::first(cores),
        serial_fraction: ru
            .serial_fraction
            .map(|v| fraction(path, &key("serial_fraction"), v))
            .transpose()?,
        classes,
        engine: ru.engine,
        precision: ru.precision,
        gflops: positive(path, &key("gflops"), ru.gflops)?,
        mem_gbps: positive(path, &key("mem_gbps"), ru.mem_gbps)?,
        busy_w: or0("busy_w", ru.busy_w)?,
        layer_overhead_us: or0("layer_overhead_us", ru.layer_overhead_us)?,
        run_overhead_us: or0("run_overhead_us", ru.run_overhead_us)?,
        profile,
        memory,
    })
}

impl Platform {
    /// Applies a calibration file: measured figures that replace the platform's.
    ///
    /// ```toml
    /// [[unit]]                 # a unit by its full name
    /// name = "d0.cpu"
    /// profile = "d0.cpu.csv"   # per-layer times [us] (relative to the calibration file)
    /// run_overhead_us = 60.0   # also gflops, mem_gbps, layer_overhead_us
    /// [[link]]                 # a link by name
    /// name = "d0-sw"
    /// bandwidth_mbps = 95.1    # effective rate
    /// latency_us = 310.0       # effective latency, per-message costs included
    /// ```
    /// Unknown names and keys are errors (a calibration that silently applies to nothing
    /// would be worse than none).
    pub fn apply_calibration(&mut self, path: &Path) -> Result<(), SimError> {
        let text = read_text(path)?;
        let raw: CalibrationFile = parse_toml(path, &text)?;
        for (i, ru) in raw.unit.into_iter().enumerate() {
            let key = |k: &str| format!("unit[{i}].{k}");
            let u = self.unit_index(&ru.name).ok_or_else(|| {
                SimError::invalid(
                    path,
                    key("name"),
                    format!("no unit `{}` in platform {}", ru.name, self.path.display()),
                )
            })?;
            let unit = &mut self.units[u];
            if let Some(p) = &ru.profile {
                let ppath = relative(path, p);
                let profile =
                    load_profile(&ppath).map_err(|e| e.named_by(path, &key("profile"), &ppath))?;
                unit.profile = Some(profile);
            }
            if let Some(v) = ru.run_overhead_us {
                unit.run_overhead_us = non_negative(path, &key("run_overhead_us"), v)?;
            }
            if let Some(v) = ru.layer_overhead_us {
                unit.layer_overhead_us = non_negative(path, &key("layer_overhead_us"), v)?;
            }
            if ru.gflops.is_some() {
                unit.gflops = positive(path, &key("gflops"), ru.gflops)?;
            }
            if ru.mem_gbps.is_some() {
                unit.mem_gbps = positive(path, &key("mem_gbps"), ru.mem_gbps)?;
            }
            unit.memory = unit.memory.with_keys(path, &key, ru.memory_keys())?;
            let memory = unit.memory;
            // core sets already made of this CPU run the same engine
            for c in self.units.iter_mut().filter(|c| c.parent == u) {
                c.memory = memory;
            }
        }
        for (i, rl) in raw.link.into_iter().enumerate() {
            let key = |k: &str| format!("link[{i}].{k}");
            let link = self
                .links
                .iter_mut()
                .find(|l| l.name == rl.name)
                .ok_or_else(|| {
                    SimError::invalid(path, key("name"), format!("no link `{}`", rl.name))
                })?;
            if rl.bandwidth_mbps.is_some() {
                link.bandwidth_mbps = positive(path, &key("bandwidth_mbps"), rl.bandwidth_mbps)?;
            }
            if let Some(v) = rl.latency_us {
                link.latency_us = non_negative(path, &key("latency_us"), v)?;
            }
        }
        Ok(())
    }

    /// Reads and validates a platform file.
    pub fn load(path: &Path) -> Result<Platform, SimError> {
        let text = read_text(path)?;
        Self::from_str(path, &text)
    }

    /// Parses and validates platform TOML `text` (`path` names it in errors and anchors
    /// relative paths).
    pub fn from_str(path: &Path, text: &str) -> Result<Platform, SimError> {
        let raw: PlatformFile = parse_toml(path, text)?;
        let mut p = Platform {
            name: raw.name.unwrap_or_else(|| file_stem(path)),
            path: path.to_path_buf(),
            devices: Vec::new(),
            units: Vec::new(),
            switches: Vec::new(),
            links: Vec::new(),
        };
        for (di, rd) in raw.device.into_iter().enumerate() {
            let rd = with_template(path, &format!("device[{di}]"), rd)?;
            p.add_device(path, di, rd)?;
        }
        if p.devices.is_empty() {
            return Err(SimError::invalid(
                path,
                "device",
                "a platform needs at least one [[device]]",
            ));
        }
        for (si, s) in raw.switch.into_iter().enumerate() {
            p.add_switch(path, si, s.name)?;
        }
        for (li, rl) in raw.link.into_iter().enumerate() {
            let link = p.link(path, li, rl)?;
            p.links.push(link);
        }
        Ok(p)
    }

    /// Checks device `di` and adds it with its units.
    fn add_device(&mut self, path: &Path, di: usize, rd: DeviceTable) -> Result<(), SimError> {
        let key = |k: &str| format!("device[{di}].{k}");
        let name = rd
            .name
            .clone()
            .ok_or_else(|| SimError::invalid(path, key("name"), "missing device name"))?;
        if self.devices.iter().any(|d| d.name == name) {
            return Err(SimError::invalid(
                path,
                key("name"),
                format!("device `{name}` is declared twice"),
            ));
        }
        let memory_mb = positive(path, &key("memory_mb"), rd.memory_mb)?;
        let idle_w = non_negative(path, &key("idle_w"), rd.idle_w.unwrap_or(0.0))?;
        let raw_units = rd.unit.unwrap_or_default();
        if raw_units.is_empty() {
            return Err(SimError::invalid(
                path,
                key("unit"),
                "a device needs at least one [[device.unit]]",
            ));
        }
        let mut ids: Vec<usize> = Vec::new();
        for (ui, ru) in raw_units.into_iter().enumerate() {
            let uk = |k: &str| format!("device[{di}].unit[{ui}].{k}");
            let uname = ru
                .name
                .clone()
                .ok_or_else(|| SimError::invalid(path, uk("name"), "missing unit name"))?;
            if ids.iter().any(|&i| self.units[i].name == uname) {
                return Err(SimError::invalid(
                    path,
                    uk("name"),
                    format!("unit `{uname}` is declared twice on device `{name}`"),
                ));
            }
            let mut unit = unit(path, &uk, format!("{name}.{uname}"), di, ru)?;
            unit.parent = self.units.len();
            ids.push(self.units.len());
            self.units.push(unit);
        }
        let units_gbps: f64 = ids.iter().map(|&u| self.units[u].mem_gbps).sum();
        let mem_gbps = match rd.mem_gbps {
            Some(v) => positive(path, &key("mem_gbps"), Some(v))?,
            None => units_gbps,
        };
        self.devices.push(Device {
            name,
            memory_mb,
            idle_w,
            mem_gbps,
            units: ids,
        });
        Ok(())
    }

    /// Adds switch `si`, whose name must be new among devices and switches.
    fn add_switch(&mut self, path: &Path, si: usize, name: String) -> Result<(), SimError> {
        if self.devices.iter().any(|d| d.name == name) || self.switches.contains(&name) {
            return Err(SimError::invalid(
                path,
                format!("switch[{si}].name"),
                format!("name `{name}` is already used"),
            ));
        }
        self.switches.push(name);
        Ok(())
    }

    /// Node index of a device or switch name.
    fn node(&self, n: &str) -> Option<usize> {
        self.devices.iter().position(|d| d.name == n).or_else(|| {
            self.switches
                .iter()
                .position(|s| s == n)
                .map(|i| self.devices.len() + i)
        })
    }

    /// Checks link `li` against the declared nodes.
    fn link(&self, path: &Path, li: usize, rl: LinkTable) -> Result<Link, SimError> {
        let key = |k: &str| format!("link[{li}].{k}");
        let mut ends = Vec::new();
        for e in &rl.ends {
            let n = self.node(e).ok_or_else(|| {
                SimError::invalid(
                    path,
                    key("ends"),
                    format!("`{e}` is neither a declared device nor a declared switch"),
                )
            })?;
            if ends.contains(&n) {
                return Err(SimError::invalid(
                    path,
                    key("ends"),
                    format!("`{e}` is listed twice"),
                ));
            }
            ends.push(n);
        }
        if ends.len() < 2 || (!rl.shared_medium && ends.len() != 2) {
            return Err(SimError::invalid(
                path,
                key("ends"),
                "expected two ends (or two or more with shared_medium = true)",
            ));
        }
        Ok(Link {
            name: rl.name.unwrap_or_else(|| rl.ends.join("-")),
            ends,
            bandwidth_mbps: positive(path, &key("bandwidth_mbps"), Some(rl.bandwidth_mbps))?,
            latency_us: non_negative(path, &key("latency_us"), rl.latency_us)?,
            shared_medium: rl.shared_medium,
            energy_nj_per_byte: non_negative(
                path,
                &key("energy_nj_per_byte"),
                rl.energy_nj_per_byte,
            )?,
        })
    }

    /// Name of node `n` (a device, or a switch after the devices).
    pub fn node_name(&self, n: usize) -> &str {
        if n < self.devices.len() {
            &self.devices[n].name
        } else {
            &self.switches[n - self.devices.len()]
        }
    }

    /// Index of the unit called `"<device>.<unit>"`.
    pub fn unit_index(&self, full_name: &str) -> Option<usize> {
        self.units.iter().position(|u| u.full_name == full_name)
    }

    /// The unit a mapping names: a unit of the platform (`"dev.unit"`), or a core set of a
    /// CPU unit (`"dev.cpu[0-1]"`, or AutoDiCE's `"dev.cpu0"` when the device has no unit
    /// `cpu0`), added to [`Platform::units`] on first use as a unit of its own whose `parent`
    /// is the CPU. A core set naming every core is the CPU itself. The error says what was
    /// expected.
    pub fn resolve_unit(&mut self, name: &str) -> Result<usize, String> {
        match self.parse_unit(name)? {
            (u, None) => Ok(u),
            (parent, Some(cores)) => self.core_set_unit(parent, cores),
        }
    }

    /// The unit `name` refers to, if it exists (see [`Platform::resolve_unit`], which adds
    /// core sets; this only finds them).
    pub fn find_unit(&self, name: &str) -> Option<usize> {
        match self.parse_unit(name).ok()? {
            (u, None) => Some(u),
            (parent, Some(cores)) if cores == self.units[parent].core_set => Some(parent),
            (parent, Some(cores)) => {
                (self.units.iter()).position(|u| u.parent == parent && u.core_set == cores)
            }
        }
    }

    /// A unit name as (unit of the platform file, core set if one is named).
    fn parse_unit(&self, name: &str) -> Result<(usize, Option<CoreSet>), String> {
        if let Some(u) = self.unit_index(name) {
            return Ok((u, None));
        }
        let (base, cores) = match trailing_core(name) {
            Some((base, core)) if !name.contains('[') && self.unit_index(base).is_some() => {
                (base.to_string(), CoreSet::block(core, 1))
            }
            _ => match UnitRef::parse(name)? {
                UnitRef {
                    unit,
                    cores: Some(c),
                } => (unit, c),
                UnitRef { unit, cores: None } => return Err(self.unknown_unit(&unit)),
            },
        };
        let parent = self
            .unit_index(&base)
            .ok_or_else(|| self.unknown_unit(&base))?;
        Ok((parent, Some(cores)))
    }

    fn unknown_unit(&self, name: &str) -> String {
        format!(
            "no unit `{name}` in platform {} (known: {}; a CPU's cores: `dev.cpu[0-1]`)",
            self.path.display(),
            self.unit_names().join(", ")
        )
    }

    /// The unit for core set `cores` of physical unit `parent`, added if new.
    pub fn core_set_unit(&mut self, parent: usize, cores: CoreSet) -> Result<usize, String> {
        let p = &self.units[parent];
        if p.kind != UnitKind::Cpu {
            return Err(format!(
                "`{}[{cores}]`: core sets apply to CPU units; `{}` is a GPU",
                p.full_name, p.full_name
            ));
        }
        if cores.span() > p.cores {
            return Err(format!(
                "`{}[{cores}]`: `{}` has {} cores (0 to {})",
                p.full_name,
                p.full_name,
                p.cores,
                p.cores - 1
            ));
        }
        if cores == p.core_set {
            return Ok(parent);
        }
        let found = (self.units.iter()).position(|u| u.parent == parent && u.core_set == cores);
        if let Some(u) = found {
            return Ok(u);
        }
        let mut unit = p.clone();
        unit.full_name = format!("{}[{cores}]", p.full_name);
        unit.name = format!("{}[{cores}]", p.name);
        unit.core_set = cores;
        // a core set draws its share of the unit's busy power
        unit.busy_w = p.busy_w * f64::from(cores.count()) / f64::from(p.cores);
        self.units.push(unit);
        Ok(self.units.len() - 1)
    }

    /// All unit full names, in platform order.
    pub fn unit_names(&self) -> Vec<String> {
        self.units.iter().map(|u| u.full_name.clone()).collect()
    }

    /// Memory bandwidth used for copies between two units of device `d` [GB/s]: the
    /// largest of its units' (a copy is bounded by the faster side's memory system on
    /// boards whose units share DRAM, as all the boards modelled here do).
    pub fn device_copy_gbps(&self, d: usize) -> f64 {
        self.devices[d]
            .units
            .iter()
            .map(|&u| self.units[u].mem_gbps)
            .fold(0.0, f64::max)
    }
}
