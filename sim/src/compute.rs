//! The compute model: the time of one layer on a unit, or on a core set of a CPU unit.
//!
//! A layer of class `c` (see [`OpClass`]) with `F` FLOPs moving `B` bytes (inputs, outputs,
//! weights) on `k` of a unit's `n` cores takes
//!
//! ```text
//! t = max(F / rate_c(k), B / mem_c) + layer_overhead
//! rate_c(k) = gflops_c * S_c(k) / S_c(n)          S(k) = k / (1 + s_c (k - 1))
//! ```
//!
//! - `gflops_c` is the class's all-core rate (`[unit.classes.<c>] gflops`), or the unit's
//!   `gflops` when the unit gives no figure for the class (the one-rate baseline);
//! - `S` is Amdahl's speed-up with serial fraction `s_c` (`serial_fraction` of the class, of
//!   the unit, or the default of [`default_serial_fraction`]): one thread runs at
//!   `gflops_c / S_c(n)`, all `n` cores at `gflops_c`;
//! - `mem_c` is the class's memory bandwidth (`[unit.classes.<c>] mem_gbps`) or the unit's;
//! - a class with a `tile` computes its output in `tile x tile` tiles: `F` counts the padded
//!   output (see [`tile_padding`]);
//! - a class marked `fused` (the engine fuses such layers into the layer before them, as
//!   ncnn does with batch normalisation and activations after a convolution) takes no time;
//! - a measured per-layer profile, when the unit has one, replaces all of this for the
//!   layers it lists (it was measured with all cores).
//!
//! GPUs have one "core": `k = n = 1`.

use dicesim_plan::graph::Layer;
use dicesim_plan::opclass::OpClass;

use crate::kernel::Time;
use crate::platform::Unit;

/// Figures of one operator class on one unit (each optional: the unit's figure applies).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFigures {
    /// All-core compute rate for this class [GFLOP/s].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gflops: Option<f64>,
    /// Memory bandwidth this class reaches [GB/s].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_gbps: Option<f64>,
    /// Serial fraction of the thread scaling (0: perfect scaling, 1: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial_fraction: Option<f64>,
    /// The engine fuses layers of this class into the layer before: they take no time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused: Option<bool>,
    /// Output tile edge [pixels]: the engine computes the output in `tile x tile` tiles, so a
    /// map of `h x w` costs as much as `ceil(h / tile) x ceil(w / tile)` whole tiles
    /// (Winograd F(6x6, 3x3) on ncnn's CPUs: 6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tile: Option<u32>,
    /// Resident bytes per byte of this class's weights (the memory model,
    /// [`crate::memory`]; the unit's `weights_factor` otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights_factor: Option<f64>,
}

/// Serial fraction used when neither the class nor the unit gives one: convolutions and
/// matrix products parallelise well, memory-bound and small operators less, copies not at
/// all (documented in docs/platform.md).
pub fn default_serial_fraction(c: OpClass) -> f64 {
    match c {
        OpClass::Conv3x3s1 | OpClass::Conv | OpClass::Conv1x1 => 0.05,
        OpClass::Grouped | OpClass::Fc => 0.10,
        OpClass::Depthwise => 0.15,
        OpClass::Pool | OpClass::Eltwise | OpClass::Activation => 0.25,
        OpClass::Copy => 1.0,
    }
}

/// Amdahl's speed-up of `k` threads with serial fraction `s`.
pub fn speedup(k: u32, s: f64) -> f64 {
    let k = f64::from(k.max(1));
    k / (1.0 + s * (k - 1.0))
}

/// The serial fraction of class `c` on unit `u`.
pub fn serial_fraction(u: &Unit, c: OpClass) -> f64 {
    let class = u.classes.get(&c);
    class
        .and_then(|f| f.serial_fraction)
        .or(u.serial_fraction)
        .unwrap_or_else(|| default_serial_fraction(c))
}

/// Compute rate of class `c` with `k` threads on unit `u` [GFLOP/s].
pub fn rate_gflops(u: &Unit, c: OpClass, k: u32) -> f64 {
    let all = u.classes.get(&c).and_then(|f| f.gflops).unwrap_or(u.gflops);
    if k == u.cores {
        return all;
    }
    let s = serial_fraction(u, c);
    all * speedup(k, s) / speedup(u.cores, s)
}

/// Memory bandwidth class `c` reaches on unit `u` [GB/s].
pub fn mem_gbps(u: &Unit, c: OpClass) -> f64 {
    u.classes
        .get(&c)
        .and_then(|f| f.mem_gbps)
        .unwrap_or(u.mem_gbps)
}

/// The work of an `[n, c, h, w]` output computed in `tile x tile` tiles, relative to its
/// pixels: `ceil(h / t) t ceil(w / t) t / (h w)` (1 for other shapes or `t <= 1`).
pub fn tile_padding(shape: &[usize], tile: u32) -> f64 {
    let t = tile as usize;
    match shape {
        [_, _, h, w] if t > 1 && *h > 0 && *w > 0 => {
            (h.div_ceil(t) * t * w.div_ceil(t) * t) as f64 / (h * w) as f64
        }
        _ => 1.0,
    }
}

/// Bytes a layer moves: activations in and out, and its weights.
pub fn layer_bytes(layer: &Layer) -> u64 {
    layer.input_bytes + layer.output_bytes + layer.params_bytes
}

/// Time of `layer` on unit `u` (its core set's threads) [ns]: the measured profile where it
/// lists the layer, else the model of the module documentation.
pub fn layer_time_ns(layer: &Layer, u: &Unit) -> Time {
    let c = layer.class;
    if let Some(t) = u.profile.as_ref().and_then(|p| p.get(&layer.name)) {
        let scale = rate_gflops(u, c, u.cores) / rate_gflops(u, c, u.threads());
        return (t * 1000.0 * scale).round() as Time;
    }
    let figures = u.classes.get(&c).copied().unwrap_or_default();
    if figures.fused == Some(true) {
        return 0;
    }
    let flops = layer.flops as f64 * tile_padding(&layer.output_shape, figures.tile.unwrap_or(1));
    // GFLOP/s == FLOP/ns and GB/s == B/ns
    let compute = flops / rate_gflops(u, c, u.threads());
    let memory = layer_bytes(layer) as f64 / mem_gbps(u, c);
    (compute.max(memory) + u.layer_overhead_us * 1000.0).round() as Time
}
