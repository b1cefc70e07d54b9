//! The base device: what the measurements do not determine (memory, power, units not
//! measured), and the prior of every fitted figure. Read as a device template through the
//! simulator's platform loader, so it is checked exactly as `dicesim run` checks it.

use std::path::{Path, PathBuf};

use dicesim_plan::coreset::CoreSet;
use dicesim_sim::platform::{Platform, Unit, UnitKind};

use crate::FitError;

/// A device to fit.
#[derive(Debug, Clone)]
pub struct BaseDevice {
    /// Device name.
    pub name: String,
    /// Memory available to the model [MiB].
    pub memory_mb: f64,
    /// Idle power [W].
    pub idle_w: f64,
    /// Device memory bandwidth, when the base file gives one [GB/s].
    pub mem_gbps: Option<f64>,
    /// Its units, in file order.
    pub units: Vec<Unit>,
    /// The base file's leading comment lines (datasheet figures), kept in the output.
    pub comments: Vec<String>,
    /// The file it came from (`None`: generic defaults).
    pub path: Option<PathBuf>,
}

/// A platform of one device, the device file `path` used as its template: the file read and
/// checked exactly as `dicesim run` reads a `[[device]] template`.
pub fn one_device_platform(path: &Path) -> Result<Platform, FitError> {
    let abs = std::path::absolute(path).map_err(|e| FitError::file(path, e.to_string()))?;
    let text = format!("[[device]]\ntemplate = {:?}\n", abs.display().to_string());
    Platform::from_str(Path::new("one-device-platform.toml"), &text)
        .map_err(|e| FitError::file(path, e.to_string()))
}

impl BaseDevice {
    /// Reads a device file (the format of `platforms/devices/`).
    pub fn load(path: &Path) -> Result<BaseDevice, FitError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| FitError::file(path, e.to_string()))?;
        let p = one_device_platform(path)?;
        let d = &p.devices[0];
        let table: toml::Table = text
            .parse()
            .map_err(|e| FitError::file(path, format!("{e}")))?;
        Ok(BaseDevice {
            name: d.name.clone(),
            memory_mb: d.memory_mb,
            idle_w: d.idle_w,
            mem_gbps: table.get("mem_gbps").and_then(|v| v.as_float()),
            units: d.units.iter().map(|&u| p.units[u].clone()).collect(),
            comments: text
                .lines()
                .take_while(|l| l.starts_with('#'))
                .map(str::to_string)
                .collect(),
            path: Some(path.to_path_buf()),
        })
    }

    /// A device with no base file: named `name`, 1 GiB of memory (to be set), no power.
    pub fn generic(name: &str) -> BaseDevice {
        BaseDevice {
            name: name.to_string(),
            memory_mb: 1024.0,
            idle_w: 0.0,
            mem_gbps: None,
            units: Vec::new(),
            comments: vec![format!(
                "# {name}: no base file; memory_mb and power are placeholders, set them"
            )],
            path: None,
        }
    }

    /// The unit named `name`, or a generic one of that name (`cpu*`: a CPU of `cores` cores,
    /// anything else a GPU) added to the device.
    pub fn unit_or_generic(&mut self, name: &str, cores: u32) -> &Unit {
        if let Some(i) = self.units.iter().position(|u| u.name == name) {
            return &self.units[i];
        }
        let unit = generic_unit(&self.name, name, cores, self.units.len());
        self.units.push(unit);
        self.units.last().expect("just pushed")
    }
}

/// Figures of no board in particular, a start for a fit without a base.
fn generic_unit(device: &str, name: &str, cores: u32, index: usize) -> Unit {
    let cpu = name.starts_with("cpu");
    let cores = if cpu { cores.max(1) } else { 1 };
    Unit {
        name: name.to_string(),
        full_name: format!("{device}.{name}"),
        device: 0,
        kind: if cpu { UnitKind::Cpu } else { UnitKind::Gpu },
        cores,
        parent: index,
        core_set: CoreSet::first(cores),
        serial_fraction: None,
        classes: Default::default(),
        engine: None,
        precision: None,
        gflops: if cpu { 10.0 } else { 100.0 },
        mem_gbps: if cpu { 5.0 } else { 20.0 },
        busy_w: 0.0,
        layer_overhead_us: if cpu { 10.0 } else { 30.0 },
        run_overhead_us: 0.0,
        profile: None,
        memory: Default::default(),
    }
}
