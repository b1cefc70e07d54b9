//! What a fit adjusts on a unit, and how a unit predicts a measured row.
//!
//! The fitted figures of a unit (see `sim::compute` for the model they feed):
//! - `gflops`: the all-core rate of the classes without their own figure;
//! - the all-core rates of the classes that dominate CNN time and differ most between
//!   engines: `conv3x3s1` (Winograd on ncnn's CPUs), `conv1x1`, `depthwise`;
//! - `mem_gbps`, the memory term of every class (fully connected layers at batch 1 and
//!   depthwise layers are bound by it);
//! - `serial_fraction` (CPUs: the thread scaling, one figure for every class);
//! - `layer_overhead_us` and `run_overhead_us`.
//!
//! The search runs over `x`, one number per figure: a rate or an overhead is
//! `prior * exp(x)`, the serial fraction is the logistic of `logit(prior) + x`. The prior is
//! the base unit's figure, so `x = 0` is the base unit and the fit's penalty on `x` pulls
//! towards it what the rows do not determine.

use std::collections::BTreeMap;

use dicesim_plan::coreset::CoreSet;
use dicesim_plan::graph::Layer;
use dicesim_plan::opclass::OpClass;
use dicesim_sim::compute::{layer_time_ns, ClassFigures};
use dicesim_sim::platform::{Unit, UnitKind};

/// The classes given their own rate by a fit.
pub const FITTED_CLASSES: [OpClass; 3] = [OpClass::Conv3x3s1, OpClass::Conv1x1, OpClass::Depthwise];

/// Weight of the prior on a class's rate relative to the unit's: the rows of one board rarely
/// separate the classes, so the engine's typical ratios (or the base unit's) hold unless the
/// rows clearly say otherwise.
const CLASS_PRIOR_WEIGHT: f64 = 0.3;

/// A class's rate relative to the unit's generic rate when the base unit gives none: 1
/// (neutral: the memory term already slows memory-bound classes such as depthwise), except
/// Winograd 3x3 stride-1 convolutions, counted in direct-convolution FLOPs: F(6x6, 3x3) does
/// 5x fewer multiplications, about 2.5x in practice on CPUs, less on GPUs.
pub fn default_ratio(kind: UnitKind, c: OpClass) -> f64 {
    match (kind, c) {
        (UnitKind::Cpu, OpClass::Conv3x3s1) => 2.5,
        (UnitKind::Gpu, OpClass::Conv3x3s1) => 1.5,
        _ => 1.0,
    }
}

/// Overheads are fitted as `(prior + OVERHEAD_FLOOR_US) * exp(x) - OVERHEAD_FLOOR_US`, so a
/// prior of 0 can still grow.
const OVERHEAD_FLOOR_US: f64 = 5.0;

/// One fitted figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Figure {
    /// The unit's `gflops`.
    Gflops,
    /// A class's `gflops`, as a multiple of the unit's `gflops` (what an engine's kernel for
    /// that class achieves relative to its generic one: a property of the engine and the
    /// instruction set more than of the board).
    ClassGflops(OpClass),
    /// `mem_gbps`.
    MemGbps,
    /// A class's `mem_gbps` as a multiple of the unit's (3x3 stride-1 convolutions: Winograd's transformed weights are
    /// several times the weights, so layers with many channels on small maps are bound by
    /// reading them).
    ClassMemGbps(OpClass),
    /// `serial_fraction` (CPUs only).
    SerialFraction,
    /// `layer_overhead_us`.
    LayerOverhead,
    /// `run_overhead_us`.
    RunOverhead,
}

impl Figure {
    /// The figures a joint fit shares between the units of several boards: the class rates
    /// relative to the unit's, properties of the engine and the instruction set.
    pub fn shared() -> Vec<Figure> {
        let mut f: Vec<Figure> = FITTED_CLASSES
            .iter()
            .map(|&c| Figure::ClassGflops(c))
            .collect();
        f.push(Figure::ClassMemGbps(OpClass::Conv3x3s1));
        f
    }

    /// The figures fitted on a unit of `kind`.
    pub fn fitted(kind: UnitKind) -> Vec<Figure> {
        let mut f = vec![Figure::Gflops];
        f.extend(FITTED_CLASSES.iter().map(|&c| Figure::ClassGflops(c)));
        f.push(Figure::MemGbps);
        f.push(Figure::ClassMemGbps(OpClass::Conv3x3s1));
        if kind == UnitKind::Cpu {
            f.push(Figure::SerialFraction);
        }
        f.extend([Figure::LayerOverhead, Figure::RunOverhead]);
        f
    }

    /// How strongly the fit holds this figure to its prior (the weight of `x^2` in the
    /// objective, against squared log errors of the rows). The overall rate and the thread
    /// scaling are free (the rows show them directly); the memory bandwidth stays near the
    /// base's (a datasheet figure: left free, a fit trades it for thread scaling and lands on
    /// a fraction of the board's DRAM bandwidth); class ratios and overheads need rows that
    /// show them.
    pub fn prior_weight(self) -> f64 {
        match self {
            Figure::Gflops | Figure::SerialFraction => 0.005,
            Figure::MemGbps => 0.1,
            Figure::ClassGflops(_) | Figure::ClassMemGbps(_) => CLASS_PRIOR_WEIGHT,
            Figure::LayerOverhead | Figure::RunOverhead => 0.05,
        }
    }

    /// The figure's value on `u`.
    pub fn get(self, u: &Unit) -> f64 {
        match self {
            Figure::Gflops => u.gflops,
            Figure::ClassGflops(c) => match u.classes.get(&c).and_then(|f| f.gflops) {
                Some(g) => g / u.gflops,
                None => default_ratio(u.kind, c),
            },
            Figure::MemGbps => u.mem_gbps,
            Figure::ClassMemGbps(c) => {
                (u.classes.get(&c).and_then(|f| f.mem_gbps)).map_or(1.0, |m| m / u.mem_gbps)
            }
            Figure::SerialFraction => dicesim_sim::compute::serial_fraction(u, OpClass::Conv),
            Figure::LayerOverhead => u.layer_overhead_us,
            Figure::RunOverhead => u.run_overhead_us,
        }
    }

    /// `u` with this figure set from search value `x` over the prior `p`.
    fn set(self, u: &mut Unit, p: f64, x: f64) {
        let x = x.clamp(-12.0, 12.0);
        match self {
            Figure::Gflops => u.gflops = p * x.exp(),
            Figure::ClassGflops(c) => {
                u.classes.entry(c).or_default().gflops = Some(u.gflops * p * x.exp());
            }
            Figure::MemGbps => u.mem_gbps = p * x.exp(),
            Figure::ClassMemGbps(c) => {
                u.classes.entry(c).or_default().mem_gbps = Some(u.mem_gbps * p * x.exp());
            }
            Figure::SerialFraction => u.serial_fraction = Some(logistic(logit(p) + x)),
            Figure::LayerOverhead => u.layer_overhead_us = overhead(p, x),
            Figure::RunOverhead => u.run_overhead_us = overhead(p, x),
        }
    }
}

fn overhead(prior: f64, x: f64) -> f64 {
    ((prior + OVERHEAD_FLOOR_US) * x.exp() - OVERHEAD_FLOOR_US).max(0.0)
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-4, 1.0 - 1e-4);
    (p / (1.0 - p)).ln()
}

fn logistic(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The discrete choices of a fit, tried in turn (the best kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Activations after a convolution are fused into it.
    pub fused: bool,
    /// Output tile edge of 3x3 stride-1 convolutions (1: none).
    pub tile: u32,
}

impl Variant {
    /// Every variant: fused or not, tiles 1 (direct), 2, 4 and 6 (Winograd F(2,3), F(4,3),
    /// F(6,3)) and 8.
    pub fn all() -> Vec<Variant> {
        let mut v = Vec::new();
        for fused in [false, true] {
            for tile in [1, 2, 4, 6, 8] {
                v.push(Variant { fused, tile });
            }
        }
        v
    }
}

/// A unit being fitted: the prior (base) unit and the figures the search moves.
#[derive(Debug, Clone)]
pub struct FitUnit {
    /// The base unit (`x = 0`).
    pub prior: Unit,
    /// The figures fitted, in the order of `x`.
    pub figures: Vec<Figure>,
    priors: Vec<f64>,
}

impl FitUnit {
    /// Fitting every figure of [`Figure::fitted`] on `prior`.
    pub fn new(prior: Unit) -> FitUnit {
        let figures = Figure::fitted(prior.kind);
        let priors = figures.iter().map(|f| f.get(&prior)).collect();
        FitUnit {
            prior,
            figures,
            priors,
        }
    }

    /// The same fit with the discrete choices `v`: activations fused (taking no time) or
    /// not, and the output tile of 3x3 stride-1 convolutions.
    pub fn with_variant(&self, v: Variant) -> FitUnit {
        let mut f = self.clone();
        f.prior
            .classes
            .entry(OpClass::Activation)
            .or_default()
            .fused = Some(v.fused);
        let conv = f.prior.classes.entry(OpClass::Conv3x3s1).or_default();
        conv.tile = (v.tile > 1).then_some(v.tile);
        f
    }

    /// The figures of this unit not in `shared`, in order.
    pub fn own(&self, shared: &[Figure]) -> Vec<Figure> {
        (self.figures.iter().copied())
            .filter(|f| !shared.contains(f))
            .collect()
    }

    /// This unit's search values from the values of the `shared` figures and of its own
    /// figures (in the order of [`FitUnit::own`]).
    pub fn values(&self, shared: &[Figure], shared_x: &[f64], own_x: &[f64]) -> Vec<f64> {
        let mut own = own_x.iter();
        (self.figures.iter())
            .map(|f| match shared.iter().position(|s| s == f) {
                Some(i) => shared_x[i],
                None => *own.next().expect("one value per own figure"),
            })
            .collect()
    }

    /// The unit for search values `x`.
    pub fn unit(&self, x: &[f64]) -> Unit {
        let mut u = self.prior.clone();
        for ((f, &p), &xi) in self.figures.iter().zip(&self.priors).zip(x) {
            f.set(&mut u, p, xi);
        }
        u
    }

    /// The penalty of values `x` of `figures`: each one's distance to its prior, weighted.
    pub fn penalty(figures: &[Figure], x: &[f64]) -> f64 {
        (figures.iter().zip(x))
            .map(|(f, xi)| f.prior_weight() * xi * xi)
            .sum()
    }
}

/// Predicted latency of `layers` on `u` run with `threads` threads [ms], as `dicesim run`
/// predicts a one-frame, one-partition run: the run overhead plus every layer's time.
pub fn predict_ms(u: &Unit, layers: &[Layer], threads: u32) -> f64 {
    let mut unit = u.clone();
    let k = threads.clamp(1, u.cores);
    unit.core_set = CoreSet::first(k);
    let ns: u64 = layers.iter().map(|l| layer_time_ns(l, &unit)).sum();
    (ns as f64 + unit.run_overhead_us * 1000.0) / 1e6
}

/// The class figures of `u` that differ from its overall figures (what a device file needs
/// to say).
pub fn class_table(u: &Unit) -> BTreeMap<OpClass, ClassFigures> {
    u.classes
        .iter()
        .filter(|(_, f)| f.gflops.is_some() || f.mem_gbps.is_some() || f.serial_fraction.is_some())
        .map(|(&c, &f)| (c, f))
        .collect()
}
