//! The fitted device file: the base file's leading comments (datasheet figures), a comment
//! block saying which rows were fitted and with which errors, then the device (written by
//! the `toml` crate).

use std::collections::BTreeMap;
use std::fmt::Write;

use dicesim_sim::compute::ClassFigures;
use dicesim_sim::memory::UnitMemory;
use dicesim_sim::platform::{Unit, UnitKind};
use serde::Serialize;

use crate::board::{rel_error, BoardFit, Checked, UnitFit};

#[derive(Serialize)]
struct DeviceOut {
    name: String,
    memory_mb: f64,
    idle_w: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    mem_gbps: Option<f64>,
    unit: Vec<UnitOut>,
}

#[derive(Serialize)]
struct UnitOut {
    name: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cores: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    engine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    precision: Option<String>,
    gflops: f64,
    mem_gbps: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial_fraction: Option<f64>,
    busy_w: f64,
    layer_overhead_us: f64,
    run_overhead_us: f64,
    /// The memory model's keys, kept from the base (the fit does not touch them).
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_base_mb: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weights_factor: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    activations_factor: Option<f64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    classes: BTreeMap<&'static str, ClassFigures>,
}

/// Four significant digits: figures fitted to a few rows mean no more.
fn round4(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let digits = 3 - x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

fn unit_out(u: &Unit) -> UnitOut {
    let classes = (u.classes.iter())
        .map(|(c, f)| {
            let f = ClassFigures {
                gflops: f.gflops.map(round4),
                mem_gbps: f.mem_gbps.map(round4),
                serial_fraction: f.serial_fraction.map(round4),
                fused: f.fused,
                tile: f.tile,
                weights_factor: f.weights_factor,
            };
            (c.name(), f)
        })
        .collect();
    let (m, d) = (&u.memory, UnitMemory::default());
    UnitOut {
        name: u.name.clone(),
        kind: match u.kind {
            UnitKind::Cpu => "cpu",
            UnitKind::Gpu => "gpu",
        },
        cores: (u.kind == UnitKind::Cpu).then_some(u.cores),
        engine: u.engine.clone(),
        precision: u.precision.clone(),
        gflops: round4(u.gflops),
        mem_gbps: round4(u.mem_gbps),
        serial_fraction: u.serial_fraction.map(round4),
        busy_w: u.busy_w,
        layer_overhead_us: round4(u.layer_overhead_us),
        run_overhead_us: round4(u.run_overhead_us),
        memory_base_mb: (m.base_mb != d.base_mb).then_some(m.base_mb),
        weights_factor: (m.weights_factor != d.weights_factor).then_some(m.weights_factor),
        activations_factor: (m.activations_factor != d.activations_factor)
            .then_some(m.activations_factor),
        classes,
    }
}

/// The device file text; `command` is the command line that produced it.
pub fn write(fit: &BoardFit, command: &str) -> Result<String, toml::ser::Error> {
    let d = &fit.device;
    let out = DeviceOut {
        name: d.name.clone(),
        memory_mb: d.memory_mb,
        idle_w: d.idle_w,
        mem_gbps: d.mem_gbps,
        unit: d.units.iter().map(unit_out).collect(),
    };
    let mut text = String::new();
    for c in &d.comments {
        text += c;
        text += "\n";
    }
    text += &fit_comments(fit, command);
    text += &toml::to_string(&out)?;
    Ok(text)
}

/// `# ` lines: the command, and per fitted unit its rows with their errors.
fn fit_comments(fit: &BoardFit, command: &str) -> String {
    let mut s = String::from("#\n");
    let _ = writeln!(s, "# Fitted by `{command}`.");
    for u in &fit.units {
        s += &unit_comments(u);
    }
    s
}

fn unit_comments(u: &UnitFit) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# unit {}: {} rows ({}, {}); error = (predicted - measured) / measured",
        u.unit.name,
        u.rows.len(),
        u.unit.engine.as_deref().unwrap_or("engine not given"),
        u.unit.precision.as_deref().unwrap_or("")
    );
    for c in &u.rows {
        let _ = writeln!(s, "#   {}", row_line(c));
    }
    let summary = Summary::of(&u.rows);
    let _ = writeln!(s, "#   {}", summary.line());
    s
}

/// One row: measured, fitted and left-out predictions.
pub fn row_line(c: &Checked) -> String {
    let r = &c.row;
    let left = match c.left_out_ms {
        Some(ms) => format!(
            "left out {ms:9.2} ({:+6.1}%)",
            100.0 * rel_error(ms, r.latency_ms)
        ),
        None => "left out        -".into(),
    };
    format!(
        "{:>14}@{:<3} {} thr  measured {:9.2} ms  fitted {:9.2} ({:+6.1}%)  {left}",
        r.model,
        r.input,
        r.threads,
        r.latency_ms,
        c.fitted_ms,
        100.0 * rel_error(c.fitted_ms, r.latency_ms),
    )
}

/// Median and 90th percentile of |error| before the fit, fitted, and left out.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// (median, p90) of the base unit's |error|.
    pub base: (f64, f64),
    /// (median, p90) of the fit's |error| on its own rows.
    pub fitted: (f64, f64),
    /// (median, p90) of the left-out |error|, if any.
    pub left_out: Option<(f64, f64)>,
}

impl Summary {
    /// Of a unit's rows.
    pub fn of(rows: &[Checked]) -> Summary {
        let abs = |f: &dyn Fn(&Checked) -> Option<f64>| -> Option<(f64, f64)> {
            let e: Vec<f64> = (rows.iter())
                .filter_map(|c| f(c).map(|p| rel_error(p, c.row.latency_ms).abs()))
                .collect();
            let sorted = dicesim_stats::sorted(&e);
            Some((
                dicesim_stats::median(&sorted)?,
                dicesim_stats::percentile(&sorted, 0.9)?,
            ))
        };
        Summary {
            base: abs(&|c| Some(c.base_ms)).unwrap_or((0.0, 0.0)),
            fitted: abs(&|c| Some(c.fitted_ms)).unwrap_or((0.0, 0.0)),
            left_out: abs(&|c| c.left_out_ms),
        }
    }

    /// `|error| median/p90: before x/y%, fitted x/y%, left out x/y%`.
    pub fn line(&self) -> String {
        let pct = |(m, p): (f64, f64)| format!("{:.1}% / {:.1}%", 100.0 * m, 100.0 * p);
        let left = self.left_out.map_or("-".into(), pct);
        format!(
            "|error| median / p90: before {}, fitted {}, left-one-model-out {}",
            pct(self.base),
            pct(self.fitted),
            left
        )
    }
}
