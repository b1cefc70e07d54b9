//! `dicesim profile`: per-layer times of a model on this host, and a fit of the simulator's
//! baseline compute model to them.
//!
//! Every layer runs as its own single-layer sub-model (one partition per layer, written by
//! `dicesim_plan::split::sub_model`) in tract, with warm-up runs and then repetitions; the
//! CSV gives the median and the 10th/90th percentiles. The header (`#` lines) records the
//! CPU model, governor, frequency and affinity of the host.
//!
//! **Fusion.** A single-layer sub-model cannot fuse with its neighbours, so a pair that
//! tract fuses when it runs together (Conv + Relu, Conv + BatchNormalization, Gemm + Relu)
//! is measured as two layers: the activation is charged one extra pass over its tensor
//! (read + write, at memory speed) plus the per-run overhead of a sub-model. A profile
//! therefore over-estimates fused pairs by roughly that activation's time; the sum of a
//! profile exceeds the whole model's time by about that much plus the per-layer run
//! overhead (which the simulator's `layer_overhead_us` models too).

use anyhow::{bail, Context, Result};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::{split, Model};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One layer's measured time.
#[derive(Debug, Clone)]
pub struct LayerTime {
    /// Layer name.
    pub layer: String,
    /// Operator.
    pub op: String,
    /// Median [us].
    pub time_us: f64,
    /// 10th percentile [us].
    pub p10_us: f64,
    /// 90th percentile [us].
    pub p90_us: f64,
    /// FLOPs (the simulator's count).
    pub flops: u64,
    /// Bytes moved (inputs + outputs + parameters): the compute model's memory term.
    pub bytes: u64,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (q * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Measures every layer of `model` (warm-up runs, then repetitions until about
/// `budget_ms` per layer, between 5 and 200 runs). Layers that tract cannot run alone (a
/// non-f32 input) are skipped with a warning on stderr.
pub fn profile_model(model: &Model, warmup: usize, budget_ms: f64) -> Result<Vec<LayerTime>> {
    let g = &model.graph;
    let names: Vec<String> = (0..g.layers.len()).map(|i| format!("h.l{i}")).collect();
    let plan = Plan::build(g, &Mapping::from_assignment(&names))?;
    let mut out = Vec::new();
    for (p, part) in plan.partitions.iter().enumerate() {
        let &[l] = part.layers.as_slice() else {
            bail!(
                "partition {p} has {} layers, expected one",
                part.layers.len()
            );
        };
        let layer = &g.layers[l];
        let t = match time_partition(model, &plan, p, warmup, budget_ms) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "profile: skipping layer {} ({}): {e:#}",
                    layer.name, layer.op
                );
                continue;
            }
        };
        out.push(LayerTime {
            layer: layer.name.clone(),
            op: layer.op.clone(),
            time_us: pct(&t, 0.5),
            p10_us: pct(&t, 0.1),
            p90_us: pct(&t, 0.9),
            flops: layer.flops,
            bytes: layer.input_bytes + layer.output_bytes + layer.params_bytes,
        });
    }
    Ok(out)
}

/// Sorted run times [us] of partition `p` of `plan` run alone as a sub-model in tract
/// (warm-up runs, then 5-200 runs within about `budget_ms`).
pub fn time_partition(
    model: &Model,
    plan: &Plan,
    p: usize,
    warmup: usize,
    budget_ms: f64,
) -> Result<Vec<f64>> {
    let bytes = dicesim_plan::onnx::encode_model(&split::sub_model(model, plan, p));
    let s = dicesim_tract::Session::from_onnx_bytes(&bytes)?;
    let ins: HashMap<String, dicesim_tract::Tensor> = s
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, (n, shape))| {
            (
                n.clone(),
                dicesim_tract::Tensor::random(shape, 1 + i as u64),
            )
        })
        .collect();
    s.run(&ins)?;
    for _ in 1..warmup.max(1) {
        s.run(&ins)?;
    }
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < 5 || (t.len() < 200 && start.elapsed().as_secs_f64() * 1e3 < budget_ms) {
        let t0 = Instant::now();
        s.run(&ins)?;
        t.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    t.sort_by(f64::total_cmp);
    Ok(t)
}

fn read(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// `key: value` lines describing this host (CPU model, governor, frequency, affinity).
pub fn host_info() -> Vec<(String, String)> {
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    let field = |k: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let status = read("/proc/self/status").unwrap_or_default();
    let affinity = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cf = "/sys/devices/system/cpu/cpu0/cpufreq/";
    let khz = |f: &str| read(&format!("{cf}{f}")).and_then(|v| v.parse::<f64>().ok());
    let freq = match (khz("scaling_cur_freq"), khz("scaling_max_freq")) {
        (Some(c), Some(m)) => format!("{:.0} MHz (max {:.0} MHz)", c / 1e3, m / 1e3),
        (Some(c), None) => format!("{:.0} MHz", c / 1e3),
        _ => format!("{} MHz (/proc/cpuinfo; no cpufreq)", field("cpu MHz")),
    };
    vec![
        ("cpu".into(), field("model name")),
        (
            "governor".into(),
            read(&format!("{cf}scaling_governor")).unwrap_or_else(|| "unknown (no cpufreq)".into()),
        ),
        ("frequency".into(), freq),
        ("affinity".into(), affinity),
    ]
}

/// Parameters of the baseline compute model fitted to a profile.
#[derive(Debug, Clone, Copy)]
pub struct Fit {
    /// [GFLOP/s].
    pub gflops: f64,
    /// [GB/s].
    pub mem_gbps: f64,
    /// [us].
    pub layer_overhead_us: f64,
    /// Median over layers of |model - measured| / measured.
    pub median_rel_error: f64,
}

/// The simulator's baseline model: `max(flops / gflops, bytes / mem_gbps) + overhead` [us].
pub fn model_us(l: &LayerTime, gflops: f64, mem_gbps: f64, overhead_us: f64) -> f64 {
    (l.flops as f64 / gflops / 1e3).max(l.bytes as f64 / mem_gbps / 1e3) + overhead_us
}

/// Least-squares fit of the log ratios model/measured (relative errors that weigh over- and
/// under-estimates alike; squared plain relative errors favour under-estimating everything)
/// over a grid (overhead from 0 to the smallest
/// layer time, GFLOP/s and GB/s on log grids), refined once around the best point.
pub fn fit(layers: &[LayerTime]) -> Option<Fit> {
    if layers.is_empty() {
        return None;
    }
    let tmin = layers
        .iter()
        .map(|l| l.time_us)
        .fold(f64::INFINITY, f64::min);
    let cost = |g: f64, m: f64, o: f64| -> f64 {
        layers
            .iter()
            .map(|l| {
                let r = (model_us(l, g, m, o).max(1e-6) / l.time_us.max(1e-3)).ln();
                r * r
            })
            .sum()
    };
    let logs = |lo: f64, hi: f64, n: usize| -> Vec<f64> {
        (0..n)
            .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp())
            .collect()
    };
    let mut best = (f64::INFINITY, 1.0, 1.0, 0.0);
    let search = |gs: &[f64], ms: &[f64], os: &[f64], best: &mut (f64, f64, f64, f64)| {
        for &o in os {
            for &g in gs {
                for &m in ms {
                    let c = cost(g, m, o);
                    if c < best.0 {
                        *best = (c, g, m, o);
                    }
                }
            }
        }
    };
    let os: Vec<f64> = (0..=24).map(|i| tmin * i as f64 / 24.0).collect();
    search(
        &logs(0.1, 2000.0, 48),
        &logs(0.1, 500.0, 40),
        &os,
        &mut best,
    );
    let (_, g, m, o) = best;
    let os2: Vec<f64> = (0..=16)
        .map(|i| (o - tmin / 24.0 + tmin / 96.0 * i as f64).max(0.0))
        .collect();
    search(
        &logs(g / 1.3, g * 1.3, 17),
        &logs(m / 1.3, m * 1.3, 17),
        &os2,
        &mut best,
    );
    let (_, g, m, o) = best;
    let mut errs: Vec<f64> = layers
        .iter()
        .map(|l| ((model_us(l, g, m, o) - l.time_us) / l.time_us.max(1e-3)).abs())
        .collect();
    errs.sort_by(f64::total_cmp);
    Some(Fit {
        gflops: g,
        mem_gbps: m,
        layer_overhead_us: o,
        median_rel_error: pct(&errs, 0.5),
    })
}

/// Writes the profile CSV (`layer,time_us,p10_us,p90_us,flops,bytes,op`) with the host
/// header; the simulator's unit `profile = "file.csv"` reads its first two columns.
pub fn write_csv(path: &Path, model: &str, threads: usize, layers: &[LayerTime]) -> Result<()> {
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    writeln!(
        f,
        "# dicesim profile of {model}, backend tract, threads {threads}"
    )?;
    for (k, v) in host_info() {
        writeln!(f, "# {k}: {v}")?;
    }
    writeln!(
        f,
        "# each layer run alone as a sub-model: no fusion across layers (fused pairs over-estimated)"
    )?;
    writeln!(f, "layer,time_us,p10_us,p90_us,flops,bytes,op")?;
    for l in layers {
        writeln!(
            f,
            "{},{:.3},{:.3},{:.3},{},{},{}",
            l.layer, l.time_us, l.p10_us, l.p90_us, l.flops, l.bytes, l.op
        )?;
    }
    f.flush()?;
    Ok(())
}
