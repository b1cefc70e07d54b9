//! The fit: the unit figures that minimise the squared log errors of the measured rows plus a
//! penalty towards the base units (see [`crate::model`]), by Nelder-Mead (argmin), restarted
//! once from its best point, for each [`Variant`] (the best kept). Several units (of several
//! boards) can be fitted jointly: they then share the figures of [`Figure::shared`], each
//! keeping its own overall rate, memory bandwidth, thread scaling and overheads.
//! Deterministic: a fixed start and a fixed initial simplex.

use argmin::core::{CostFunction, Error, Executor, State};
use argmin::solver::neldermead::NelderMead;
use dicesim_plan::graph::Layer;
use dicesim_sim::platform::Unit;

use crate::model::{predict_ms, Figure, FitUnit, Variant};
use crate::FitError;

/// A measured row with its model's layers.
#[derive(Debug, Clone)]
pub struct Sample<'a> {
    /// The model's layers.
    pub layers: &'a [Layer],
    /// Threads of the run.
    pub threads: u32,
    /// Measured latency [ms].
    pub latency_ms: f64,
}

/// A unit to fit and its rows.
#[derive(Debug, Clone)]
pub struct Group<'a> {
    /// The unit (its prior).
    pub unit: FitUnit,
    /// Its rows.
    pub samples: Vec<Sample<'a>>,
}

/// Iterations of each Nelder-Mead run, per search dimension.
const ITERS_PER_DIM: u64 = 600;
/// Edge of the initial simplex in search units (a factor e^0.5 = 1.65 on rates).
const SIMPLEX_STEP: f64 = 0.5;
/// Nelder-Mead runs, each from the best point of the one before.
const RUNS: usize = 3;

/// A joint fit of `groups` sharing the values of `shared`.
#[derive(Clone, Copy)]
struct Joint<'a, 'b> {
    groups: &'b [Group<'a>],
    shared: &'b [Figure],
}

impl Joint<'_, '_> {
    /// Each group's unit for the joint values `x` (shared first, then each unit's own).
    fn units(&self, x: &[f64]) -> Vec<Unit> {
        let (shared_x, mut rest) = x.split_at(self.shared.len());
        let mut units = Vec::with_capacity(self.groups.len());
        for g in self.groups {
            let n = g.unit.own(self.shared).len();
            let (own, tail) = rest.split_at(n);
            rest = tail;
            units.push(g.unit.unit(&g.unit.values(self.shared, shared_x, own)));
        }
        units
    }

    fn dimensions(&self) -> usize {
        self.shared.len()
            + self
                .groups
                .iter()
                .map(|g| g.unit.own(self.shared).len())
                .sum::<usize>()
    }

    /// Squared log errors of every row, plus the penalties (shared figures counted once).
    fn objective(&self, x: &[f64]) -> f64 {
        let units = self.units(x);
        let mut total = FitUnit::penalty(self.shared, &x[..self.shared.len()]);
        let mut at = self.shared.len();
        for (g, u) in self.groups.iter().zip(&units) {
            let own = g.unit.own(self.shared);
            total += FitUnit::penalty(&own, &x[at..at + own.len()]);
            at += own.len();
            total += (g.samples.iter())
                .map(|s| {
                    (predict_ms(u, s.layers, s.threads) / s.latency_ms)
                        .ln()
                        .powi(2)
                })
                .sum::<f64>();
        }
        total
    }
}

impl CostFunction for Joint<'_, '_> {
    type Param = Vec<f64>;
    type Output = f64;

    fn cost(&self, x: &Vec<f64>) -> Result<f64, Error> {
        Ok(self.objective(x))
    }
}

/// The fitted units of `groups` (in order), sharing [`Figure::shared`] when there are
/// several; for each [`Variant`] (fused activations or not, Winograd tile), the best kept.
pub fn fit(groups: &[Group]) -> Result<Vec<Unit>, FitError> {
    let shared = if groups.len() > 1 {
        Figure::shared()
    } else {
        Vec::new()
    };
    let mut best: Option<(f64, Vec<Unit>)> = None;
    for v in Variant::all() {
        let variant: Vec<Group> = (groups.iter())
            .map(|g| Group {
                unit: g.unit.with_variant(v),
                samples: g.samples.clone(),
            })
            .collect();
        let joint = Joint {
            groups: &variant,
            shared: &shared,
        };
        let mut x = vec![0.0; joint.dimensions()];
        for _ in 0..RUNS {
            x = nelder_mead(&joint, x)?;
        }
        let cost = joint.objective(&x);
        if best.as_ref().is_none_or(|(c, _)| cost < *c) {
            best = Some((cost, joint.units(&x)));
        }
    }
    Ok(best.map(|b| b.1).unwrap_or_default())
}

fn nelder_mead(joint: &Joint, start: Vec<f64>) -> Result<Vec<f64>, FitError> {
    let mut simplex = vec![start.clone()];
    for i in 0..start.len() {
        let mut v = start.clone();
        v[i] += SIMPLEX_STEP;
        simplex.push(v);
    }
    let solver = NelderMead::new(simplex)
        .with_sd_tolerance(1e-9)
        .map_err(|e| FitError::Fit(e.to_string()))?;
    let iters = ITERS_PER_DIM * start.len() as u64;
    let result = Executor::new(*joint, solver)
        .configure(|s| s.max_iters(iters))
        .run()
        .map_err(|e| FitError::Fit(e.to_string()))?;
    Ok(result.state().get_best_param().cloned().unwrap_or(start))
}
