//! Fitting the simulator's baseline compute model (`gflops`, `mem_gbps`,
//! `layer_overhead_us`) to a profile.

use crate::profile::LayerTime;

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

/// `n` points from `lo` to `hi` evenly spaced on a log scale.
fn log_grid(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (lo.ln() + (hi.ln() - lo.ln()) * i as f64 / (n - 1) as f64).exp())
        .collect()
}

/// The best point of a grid search: (cost, GFLOP/s, GB/s, overhead [us]).
type Best = (f64, f64, f64, f64);

/// Sum over `layers` of the squared log ratio model / measured.
fn cost(layers: &[&LayerTime], g: f64, m: f64, o: f64) -> f64 {
    layers
        .iter()
        .map(|l| {
            let r = (model_us(l, g, m, o).max(1e-6) / l.time_us.max(1e-3)).ln();
            r * r
        })
        .sum()
}

/// Lowers `best` to the cheapest point of the grid `gs x ms x os` (overhead outermost).
fn search(layers: &[&LayerTime], gs: &[f64], ms: &[f64], os: &[f64], best: &mut Best) {
    for &o in os {
        for &g in gs {
            for &m in ms {
                let c = cost(layers, g, m, o);
                if c < best.0 {
                    *best = (c, g, m, o);
                }
            }
        }
    }
}

/// Least-squares fit of the log ratios model/measured (relative errors that weigh over- and
/// under-estimates alike; squared plain relative errors favour under-estimating everything)
/// over a grid (overhead from 0 to the smallest
/// layer time, GFLOP/s and GB/s on log grids), refined once around the best point.
pub fn fit(layers: &[LayerTime]) -> Option<Fit> {
    // layers fused into another (time 0 in an in-context profile) carry no information
    let layers: Vec<&LayerTime> = layers.iter().filter(|l| l.time_us > 0.0).collect();
    if layers.is_empty() {
        return None;
    }
    let tmin = layers
        .iter()
        .map(|l| l.time_us)
        .fold(f64::INFINITY, f64::min);
    let mut best = (f64::INFINITY, 1.0, 1.0, 0.0);
    let os: Vec<f64> = (0..=24).map(|i| tmin * i as f64 / 24.0).collect();
    let (gs, ms) = (log_grid(0.1, 2000.0, 48), log_grid(0.1, 500.0, 40));
    search(&layers, &gs, &ms, &os, &mut best);
    let (_, g, m, o) = best;
    let os2: Vec<f64> = (0..=16)
        .map(|i| (o - tmin / 24.0 + tmin / 96.0 * i as f64).max(0.0))
        .collect();
    let (gs2, ms2) = (
        log_grid(g / 1.3, g * 1.3, 17),
        log_grid(m / 1.3, m * 1.3, 17),
    );
    search(&layers, &gs2, &ms2, &os2, &mut best);
    let (_, g, m, o) = best;
    let errs: Vec<f64> = layers
        .iter()
        .map(|l| ((model_us(l, g, m, o) - l.time_us) / l.time_us.max(1e-3)).abs())
        .collect();
    Some(Fit {
        gflops: g,
        mem_gbps: m,
        layer_overhead_us: o,
        median_rel_error: dicesim_stats::median(&dicesim_stats::sorted(&errs)).unwrap_or(0.0),
    })
}
