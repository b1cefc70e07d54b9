//! Checks device files against measured rows the way the outside check does: a one-device
//! platform whose device is the file (as a template), strategy `single` on the row's unit
//! (`cpu` on all cores, `cpu[0-(k-1)]` on `k` threads, `gpu`), one frame; the simulated
//! latency against the measured one.

use std::path::{Path, PathBuf};

use dicesim_sim::platform::{Platform, UnitKind};
use dicesim_sim::{PreparedScenario, Window, Workload};

use crate::board::{rel_error, Models};
use crate::measured::Row;
use crate::FitError;

/// A row and its simulated latency.
#[derive(Debug, Clone)]
pub struct Prediction {
    /// The measured row.
    pub row: Row,
    /// The device file used.
    pub file: PathBuf,
    /// Simulated latency [ms].
    pub simulated_ms: f64,
}

impl Prediction {
    /// (simulated - measured) / measured.
    pub fn error(&self) -> f64 {
        rel_error(self.simulated_ms, self.row.latency_ms)
    }
}

/// The unit name a row runs on, on device `device` of `platform`: the whole unit when the
/// row uses all its cores (or it is a GPU), else the first `threads` cores.
fn unit_name(platform: &Platform, device: &str, row: &Row) -> String {
    let whole = format!("{device}.{}", row.unit);
    match platform.find_unit(&whole).map(|u| &platform.units[u]) {
        Some(u) if u.kind == UnitKind::Cpu && row.threads < u.cores => {
            if row.threads == 1 {
                format!("{whole}[0]")
            } else {
                format!("{whole}[0-{}]", row.threads - 1)
            }
        }
        _ => whole,
    }
}

/// The simulated latency of `row` on the device of `file` [ms].
pub fn simulate(file: &Path, row: &Row, models: &Models) -> Result<f64, FitError> {
    let mut platform = crate::base::one_device_platform(file)?;
    let device = platform.devices[0].name.clone();
    let name = unit_name(&platform, &device, row);
    let u = (platform.resolve_unit(&name)).map_err(|e| FitError::file(file, e))?;
    let graph = models.graph(row).clone();
    let n = graph.layers.len();
    let workload = Workload {
        frames: 1,
        period_ns: 0,
        window: Window::Unlimited,
    };
    let prep = PreparedScenario::new(graph, platform, workload);
    let m = prep
        .evaluate_assignment(&vec![u; n])
        .map_err(|e| FitError::Rows(e.to_string()))?;
    Ok(m.latency_p50_ns as f64 / 1e6)
}

/// Every row of `rows` whose board has a device file in `dir`, simulated.
pub fn check_library(rows: &[Row], dir: &Path) -> Result<Vec<Prediction>, FitError> {
    let models = Models::of(rows)?;
    let mut out = Vec::new();
    for row in rows {
        let Some(file) = crate::library::device_file(dir, &row.board_id)? else {
            continue;
        };
        let simulated_ms = simulate(&file, row, &models)?;
        out.push(Prediction {
            row: row.clone(),
            file,
            simulated_ms,
        });
    }
    Ok(out)
}
