//! The horizontal stage (`explore --horizontal`): mappings that run parts of layers on
//! several units at once ([`dicesim_plan::horizontal`]), searched after the vertical stages.
//!
//! A candidate is the best-latency mapping of the vertical front with, on top, spatial runs
//! (fused tiles over a run of tileable layers, each run over the `k` fastest units) and
//! output-channel splits of heavy Gemm/MatMul/Conv layers (over the `k` fastest units);
//! shares follow the units' simulated speed. Runs start and end at clean cut points (one
//! tensor crossing), so a run's scatter and gather move one feature map. Each candidate is
//! written into the model and simulated like `dicesim run` simulates it (partitions as
//! `Plan::build` forms them).
//!
//! The stage first evaluates the **DeepThings baseline**: fused tiles over the first `N`
//! layers on all units, for the clean cut points `N` of the first tileable run (at most
//! [`MAX_TRIES`] of them), the rest as the vertical mapping. Then it climbs from the better
//! of that baseline and the vertical mapping: every neighbour (a run removed, its unit
//! count changed, an end moved to the next clean point, a run cut in two, a run added over
//! an uncovered stretch, a channel split added or removed) is evaluated and the one with
//! the lowest latency (feasible first) taken, until none improves or the stage's budget is
//! spent. Every feasible candidate evaluated enters the stage's own Pareto front.

use std::collections::HashMap;

use dicesim_plan::horizontal::{self, Hybrid, Shares, SplitKind, SplitSpec};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::Model;

use super::nsga::dominates;
use super::Point;
use crate::error::SimError;
use crate::prepared::PreparedScenario;
use crate::scenario::Scenario;

/// Most values tried for one choice (ends of the baseline's run, cut points of a run).
pub const MAX_TRIES: usize = 12;
/// Layers whose weights exceed this many bytes may get an output-channel split.
pub const HEAVY_WEIGHTS: u64 = 1 << 20;

/// One evaluated mapping with horizontal splits.
#[derive(Debug, Clone)]
pub struct HybridPoint {
    /// The mapping.
    pub hybrid: Hybrid,
    /// Latency [ms], negative throughput [fps], energy [mJ/frame], max memory [MiB], as
    /// [`Point::obj`].
    pub obj: [f64; 4],
    /// As [`Point::violation`].
    pub violation: f64,
    /// Partitions of the plan.
    pub partitions: usize,
}

impl HybridPoint {
    /// Whether it fits every device and keeps up.
    pub fn feasible(&self) -> bool {
        self.violation <= 0.0
    }
}

/// What the stage found.
#[derive(Debug, Clone, Default)]
pub struct HorizontalResult {
    /// The best (lowest latency, feasible) DeepThings-style baseline.
    pub deepthings: Option<HybridPoint>,
    /// The lowest-latency feasible mapping found (hybrid or the vertical one itself).
    pub best: Option<HybridPoint>,
    /// The feasible non-dominated candidates.
    pub front: Vec<HybridPoint>,
    /// Candidates evaluated.
    pub evaluations: u64,
}

/// A candidate: spatial runs `(first, last, units)` and channel splits `(layer, units)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Candidate {
    runs: Vec<(usize, usize, usize)>,
    channels: Vec<(usize, usize)>,
}

/// The stage's state.
struct Stage<'a> {
    sc: &'a Scenario,
    model: Model,
    /// Unit of each layer in the vertical mapping the candidates start from.
    base: Vec<String>,
    /// Whole units, fastest first.
    by_speed: Vec<String>,
    /// Where runs may start (after) and end: clean cut points, per tileable stretch.
    stretches: Vec<Vec<usize>>,
    /// Heavy matrix and convolution layers.
    heavy: Vec<usize>,
    cache: HashMap<Candidate, usize>,
    points: Vec<HybridPoint>,
    budget: u64,
}

/// Runs the stage from the vertical `front` with at most `budget` evaluations.
pub fn search(
    sc: &Scenario,
    units: &[usize],
    front: &[Point],
    unit_names: &[String],
    budget: u64,
) -> Result<HorizontalResult, SimError> {
    let Some(start) = fastest(front) else {
        return Ok(HorizontalResult::default());
    };
    let model = sc.model()?;
    let assign = start.genome.assignment(model.graph.layers.len());
    let base = assign.iter().map(|&u| unit_names[u].clone()).collect();
    let mut st = Stage {
        sc,
        base,
        by_speed: by_speed(&sc.prep, units),
        stretches: stretches(&model),
        heavy: heavy_layers(&model),
        model,
        cache: HashMap::new(),
        points: Vec::new(),
        budget,
    };
    let deepthings = st.deepthings();
    let from = match deepthings {
        Some(i) if st.points[i].obj[0] < start.obj[0] => st.candidate_of(i),
        _ => Candidate::default(),
    };
    let best = st.climb(from);
    Ok(st.result(deepthings, best))
}

/// The lowest-latency point of the front.
fn fastest(front: &[Point]) -> Option<&Point> {
    front.iter().min_by(|a, b| a.obj[0].total_cmp(&b.obj[0]))
}

/// The allowed whole units by their time on the whole model, fastest first.
fn by_speed(prep: &PreparedScenario, units: &[usize]) -> Vec<String> {
    let pf = &prep.platform;
    let mut whole: Vec<(u64, usize)> = (units.iter())
        .filter(|&&u| pf.units[u].parent == u)
        .map(|&u| (prep.layer_ns[u].iter().sum::<u64>(), u))
        .collect();
    whole.sort_unstable();
    whole
        .iter()
        .map(|&(_, u)| pf.units[u].full_name.clone())
        .collect()
}

/// The tileable stretches of the layer order, each as its cut points: the position before
/// its first layer, its clean cut points (one tensor crossing), its last layer.
fn stretches(model: &Model) -> Vec<Vec<usize>> {
    let g = &model.graph;
    let crossing = crossing_counts(model);
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut open: Option<Vec<usize>> = None;
    for (l, &crossing) in crossing.iter().enumerate() {
        if !horizontal::tileable(model, l) {
            if let Some(mut s) = open.take() {
                if s.last() != Some(&(l - 1)) {
                    s.push(l - 1); // a run may end where tiling must
                }
                out.extend(Some(s).filter(|s| s.len() > 1));
            }
            continue;
        }
        let s = open.get_or_insert_with(|| vec![l.wrapping_sub(1)]);
        if crossing == 1 || l + 1 == g.layers.len() {
            s.push(l);
        }
    }
    out.extend(open.filter(|s| s.len() > 1));
    out
}

/// For each position `l`, the activations crossing the cut after layer `l`.
fn crossing_counts(model: &Model) -> Vec<usize> {
    let g = &model.graph;
    let mut count = vec![0usize; g.layers.len()];
    for t in g.tensors.values() {
        let last = t.consumers.iter().max().copied();
        if let (Some(p), Some(c)) = (t.producer, last) {
            for x in count.iter_mut().take(c).skip(p) {
                *x += 1;
            }
        }
    }
    count
}

/// Gemm, MatMul and Conv layers with weights over [`HEAVY_WEIGHTS`].
fn heavy_layers(model: &Model) -> Vec<usize> {
    let g = &model.graph;
    (0..g.layers.len())
        .filter(|&l| {
            let layer = &g.layers[l];
            matches!(layer.op.as_str(), "Gemm" | "MatMul" | "Conv")
                && layer.params_bytes > HEAVY_WEIGHTS
        })
        .collect()
}

/// At most `n` of `v`, spread evenly, the last included.
fn spread(v: &[usize], n: usize) -> Vec<usize> {
    if v.len() <= n {
        return v.to_vec();
    }
    (1..=n).map(|i| v[i * v.len() / n - 1]).collect()
}

impl Stage<'_> {
    /// The DeepThings baseline: the best of fused tiles over the first `N` layers of the
    /// first tileable stretch, on all units.
    fn deepthings(&mut self) -> Option<usize> {
        let cuts = self.stretches.first()?.clone();
        let first = cuts[0].wrapping_add(1);
        let k = self.by_speed.len();
        let mut best: Option<usize> = None;
        for end in spread(&cuts[1..], MAX_TRIES) {
            let c = Candidate {
                runs: vec![(first, end, k)],
                channels: Vec::new(),
            };
            if let Some(i) = self.evaluate(c) {
                best = Some(self.better(best, i));
            }
        }
        best.filter(|&i| self.points[i].feasible())
    }

    /// The better of two points: feasible first, then lower latency.
    fn better(&self, a: Option<usize>, b: usize) -> usize {
        // infeasible after feasible, then by latency; ties keep `a`
        let key = |i: usize| (u8::from(!self.points[i].feasible()), self.points[i].obj[0]);
        match a {
            Some(a) if key(a).partial_cmp(&key(b)) != Some(std::cmp::Ordering::Greater) => a,
            _ => b,
        }
    }

    /// Hill climbing by latency from `c`; returns the best point reached.
    fn climb(&mut self, mut c: Candidate) -> Option<usize> {
        let mut at = self.evaluate(c.clone())?;
        loop {
            let mut next = None;
            for n in self.neighbours(&c) {
                if let Some(i) = self.evaluate(n.clone()) {
                    if self.better(Some(at), i) == i && i != at {
                        at = i;
                        next = Some(n);
                    }
                }
            }
            match next {
                Some(n) => c = n,
                None => return Some(at),
            }
        }
    }

    /// The candidate point `i` was made from.
    fn candidate_of(&self, i: usize) -> Candidate {
        (self.cache.iter())
            .find(|(_, &j)| j == i)
            .map(|(c, _)| c.clone())
            .unwrap_or_default()
    }
}

impl Stage<'_> {
    /// Every candidate one change away from `c`.
    fn neighbours(&self, c: &Candidate) -> Vec<Candidate> {
        let mut out = Vec::new();
        for i in 0..c.runs.len() {
            self.run_changes(c, i, &mut out);
        }
        self.added_runs(c, &mut out);
        for &l in &self.heavy {
            let mut n = c.clone();
            match n.channels.iter().position(|&(x, _)| x == l) {
                Some(j) => drop(n.channels.remove(j)),
                None if !c.runs.iter().any(|r| (r.0..=r.1).contains(&l)) => {
                    n.channels.push((l, self.by_speed.len()));
                    n.channels.sort_unstable();
                }
                None => continue,
            }
            out.push(n);
        }
        out
    }

    /// Run `i` removed, on one unit more or fewer, its end moved to a neighbouring cut,
    /// cut in two.
    fn run_changes(&self, c: &Candidate, i: usize, out: &mut Vec<Candidate>) {
        let (a, b, k) = c.runs[i];
        let with = |runs: Vec<(usize, usize, usize)>| {
            let mut n = c.clone();
            n.runs.splice(i..=i, runs);
            n
        };
        out.push(with(vec![]));
        for k2 in [k - 1, k + 1] {
            if k2 >= 2 && k2 <= self.by_speed.len() {
                out.push(with(vec![(a, b, k2)]));
            }
        }
        let cuts = self.cuts_of(a);
        let pos = cuts.iter().position(|&x| x == b);
        let next_start = c.runs.get(i + 1).map_or(usize::MAX, |r| r.0);
        if let Some(p) = pos {
            let ends = [p.checked_sub(1).map(|q| cuts[q]), cuts.get(p + 1).copied()];
            for e in ends.into_iter().flatten() {
                if e >= a && e < next_start {
                    out.push(with(vec![(a, e, k)]));
                }
            }
        }
        let inner: Vec<usize> = cuts.iter().copied().filter(|&x| x >= a && x < b).collect();
        for m in spread(&inner, MAX_TRIES) {
            out.push(with(vec![(a, m, k), (m + 1, b, k)]));
        }
    }

    /// The cut points of the stretch holding layer `a`.
    fn cuts_of(&self, a: usize) -> &[usize] {
        (self.stretches.iter())
            .find(|s| s[0].wrapping_add(1) <= a && a <= s[s.len() - 1])
            .map_or(&[], Vec::as_slice)
    }

    /// A run on the two fastest units and one on all units over each stretch between
    /// neighbouring cut points that no run covers.
    fn added_runs(&self, c: &Candidate, out: &mut Vec<Candidate>) {
        let all = self.by_speed.len();
        let mut ks = vec![2, all];
        ks.dedup();
        for k in ks.into_iter().filter(|&k| (2..=all).contains(&k)) {
            self.added_runs_on(c, k, out);
        }
    }

    /// [`Stage::added_runs`] on the `k` fastest units.
    fn added_runs_on(&self, c: &Candidate, k: usize, out: &mut Vec<Candidate>) {
        let covered = |l: usize| c.runs.iter().any(|r| (r.0..=r.1).contains(&l));
        for cuts in &self.stretches {
            let pieces: Vec<(usize, usize)> = (cuts.windows(2))
                .map(|w| (w[0].wrapping_add(1), w[1]))
                .filter(|&(a, b)| a <= b && !(a..=b).any(covered))
                .collect();
            for (a, b) in spread_pairs(&pieces, MAX_TRIES) {
                let mut n = c.clone();
                n.runs.push((a, b, k));
                n.runs.sort_unstable();
                n.channels.retain(|&(l, _)| !(a..=b).contains(&l));
                out.push(n);
            }
        }
    }

    /// Evaluates `c` (once; `None` when the stage's budget is spent).
    fn evaluate(&mut self, c: Candidate) -> Option<usize> {
        if let Some(&i) = self.cache.get(&c) {
            return Some(i);
        }
        if self.points.len() as u64 >= self.budget {
            return None;
        }
        let hybrid = self.hybrid_of(&c);
        let point = score(self.sc, &self.model, hybrid.clone()).unwrap_or(HybridPoint {
            hybrid,
            obj: [f64::MAX; 4],
            violation: 1e12, // not a plan (e.g. a tile with no rows): as bad as it gets
            partitions: 0,
        });
        self.points.push(point);
        self.cache.insert(c, self.points.len() - 1);
        Some(self.points.len() - 1)
    }

    /// The mapping of `c`: the vertical mapping with its splits.
    fn hybrid_of(&self, c: &Candidate) -> Hybrid {
        let mut per_layer = self.base.clone();
        let mut splits = Vec::new();
        let spec = |layers: Vec<usize>, kind, k: usize| SplitSpec {
            layers,
            kind,
            units: self.by_speed[..k].to_vec(),
            shares: Shares::Speed,
            grid: (k, 1),
            label: "explore".into(),
        };
        for &(a, b, k) in &c.runs {
            splits.push(spec((a..=b).collect(), SplitKind::Spatial, k));
        }
        for &(l, k) in &c.channels {
            splits.push(spec(vec![l], SplitKind::OutChannels, k));
        }
        for s in &splits {
            for &l in &s.layers {
                per_layer[l] = s.units[0].clone();
            }
        }
        let mut h = Hybrid {
            base: Mapping::from_assignment(&per_layer),
            splits,
        };
        let (g, pf) = (&self.model.graph, &self.sc.prep.platform);
        h.set_ratios(|s, u| crate::modelsrc::speed(g, pf, s, u));
        h
    }

    /// The stage's result; `deepthings` and `best` index the points.
    fn result(self, deepthings: Option<usize>, best: Option<usize>) -> HorizontalResult {
        let feasible: Vec<&HybridPoint> = self.points.iter().filter(|p| p.feasible()).collect();
        let front = (feasible.iter())
            .filter(|p| !feasible.iter().any(|q| dominates(&q.obj, &p.obj)))
            .map(|&p| p.clone())
            .collect();
        HorizontalResult {
            deepthings: deepthings.map(|i| self.points[i].clone()),
            best: best
                .map(|i| self.points[i].clone())
                .filter(HybridPoint::feasible),
            front,
            evaluations: self.points.len() as u64,
        }
    }
}

/// At most `n` of `v`, spread evenly.
fn spread_pairs(v: &[(usize, usize)], n: usize) -> Vec<(usize, usize)> {
    let idx: Vec<usize> = spread(&(0..v.len()).collect::<Vec<_>>(), n);
    idx.into_iter().map(|i| v[i]).collect()
}

/// Simulates `hybrid` as `dicesim run` would: written into the model, partitioned by
/// `Plan::build`, scored with the search's objectives and memory need.
fn score(sc: &Scenario, model: &Model, hybrid: Hybrid) -> Result<HybridPoint, SimError> {
    let (split, mapping) = horizontal::apply(model, &hybrid).map_err(|error| SimError::Plan {
        path: sc.path.clone(),
        error,
    })?;
    let mut platform = sc.prep.platform.clone();
    for u in hybrid.units() {
        // the vertical mapping may use core sets, which the scenario's platform lacks
        platform.resolve_unit(&u).map_err(SimError::Mapping)?;
    }
    let prep = PreparedScenario::new(split.graph, platform, sc.prep.workload);
    let plan = Plan::build(&prep.graph, &mapping).map_err(|error| SimError::Plan {
        path: sc.path.clone(),
        error,
    })?;
    let sp = prep.sim_plan_from(&plan)?;
    let o = prep.objectives(&sp)?;
    let (max_mb, memory) = super::search::memory_need(&prep, &prep.memory_bytes(&sp));
    Ok(HybridPoint {
        hybrid,
        obj: [
            o.latency_ns as f64 / 1e6,
            -o.throughput_fps,
            o.energy_mj_per_frame,
            max_mb,
        ],
        violation: memory + o.overload,
        partitions: plan.partitions.len(),
    })
}
