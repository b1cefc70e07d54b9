//! `dicesim explore`: multi-stage, multi-objective search over mappings (NSGA-II with
//! constraint domination), driven by the fast evaluator ([`PreparedScenario`]).
//!
//! # Objectives and constraint
//!
//! Four objectives, all minimised internally: per-frame latency p50 [ms], throughput [fps]
//! (maximised: minimised as its negative), energy per frame [mJ], and the largest memory
//! need of any device [MiB]. A mapping whose memory need exceeds a device's memory is
//! infeasible; constraint domination (Deb): a feasible mapping beats an infeasible one, two
//! infeasible ones compare by their total relative overrun, two feasible ones by Pareto
//! dominance. The returned front holds only feasible mappings.
//!
//! # Encoding (the search space)
//!
//! A mapping is a list of **contiguous segments of the topological layer order** (the order
//! `dicesim inspect` prints), each on one compute unit: cut positions `0 < c1 < ... < ck-1 <
//! L` and a unit per segment, neighbouring segments on different units (equal neighbours
//! merge, so each assignment has one encoding). At most `K` segments, `K` = the number of
//! allowed units (all platform units, or the scenario's `mapping.units`). Residual and
//! Inception branches inside a segment stay together; a unit may run several non-adjacent
//! segments. The space is therefore
//! `sum_{k=1..K} C(L-1, k-1) * U * (U-1)^(k-1)` mappings for `L` layers and `U` units;
//! exhaustive enumeration (below) enumerates exactly this space.
//!
//! Cut points are not all alike: a cut inside a residual block or Inception module sends
//! several tensors (the branch and the skip). For every position the number of tensors
//! crossing it is counted; the **clean** cut points are those with the fewest crossing
//! tensors (the minimum over the graph, one more when that leaves fewer than 4).
//!
//! # Stages (one budget)
//!
//! 1. **Partitioning** (first 30% of the budget): NSGA-II whose variation acts mostly on the
//!    cut structure: add a cut (85% at a clean point), remove one, move one to another clean
//!    point, paint a range between two clean points with another unit (offloading a block:
//!    `A-B-A`), one-point crossover at a clean point. The initial population is random
//!    structures plus every baseline (below), so the front dominates or equals each baseline
//!    by construction.
//! 2. **Placement** (up to 60%): the same NSGA-II, variation mostly on the units of fixed
//!    segments: change one segment's unit, swap two segments' units, swap cpu/gpu on a device,
//!    uniform crossover of the unit lists.
//! 3. **Refinement** (the rest): local search around the current front: move a boundary by
//!    1 to 3 layers (to any position), to any clean point, shift an inner segment by 1 to 3 layers, swap two partitions' units, put one partition on each
//!    other unit. Front members are refined extremes first (largest crowding distance), each
//!    once. When no untried neighbour is left, NSGA-II generations resume.
//!
//! Every evaluation of a new assignment counts once against `--budget`, baselines included.
//! Evaluated encodings are cached by value (a hash map): a duplicate costs nothing and is not
//! counted. Offspring are generated sequentially from the seeded generator, each generation's
//! new encodings are evaluated in parallel (rayon) and the results kept in index order, so the
//! same seed gives the same front on any number of threads.
//!
//! # Baselines
//!
//! `single` (the scenario strategy), `even` (equal-FLOP contiguous split), `pipeedge` (the
//! PipeEdge DP), and `2way`: every cut point times every ordered pair of distinct units
//! (Neurosurgeon style), the best by latency (ties: energy) among those that fit. All of them
//! are in the encoding space; all are evaluated (and counted) before the search, even when
//! they alone exceed the budget (the reported evaluation count then exceeds `--budget`).
//!
//! # Exhaustive comparison
//!
//! When the space has at most [`ExploreOptions::exhaustive_limit`] mappings (default one
//! million) it is enumerated in full and the ratio of the found front's hypervolume to the
//! exhaustive front's is reported, both normalised with the bounds of their union
//! (see [`hv`]).

pub mod hv;
pub mod output;

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::SimError;
use crate::kernel::Rng;
use crate::prepared::PreparedScenario;
use crate::scenario::Scenario;
use crate::strategy;

use hv::Bounds;

/// Probability that a new cut is drawn among the clean cut points (else any position).
const CLEAN_BIAS: f64 = 0.85;

/// Search settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExploreOptions {
    /// Evaluations (unique assignments, baselines included).
    pub budget: u64,
    /// Seed of the search.
    pub seed: u64,
    /// Population size (0: chosen from the budget).
    pub population: usize,
    /// Enumerate the whole space when it has at most this many mappings (0: never).
    pub exhaustive_limit: u64,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            budget: 5000,
            seed: 1,
            population: 0,
            exhaustive_limit: 1_000_000,
        }
    }
}

/// One encoding: cut positions and a unit per segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Genome {
    /// Cut positions (a cut at `c` starts a segment at layer `c`), strictly ascending, in
    /// `1..L`.
    pub cuts: Vec<u32>,
    /// Platform unit index per segment (`cuts.len() + 1` of them).
    pub units: Vec<u16>,
}

impl Genome {
    /// The encoding of an assignment (maximal runs of one unit).
    pub fn from_assignment(assign: &[usize]) -> Genome {
        let mut g = Genome {
            cuts: Vec::new(),
            units: Vec::new(),
        };
        for (l, &u) in assign.iter().enumerate() {
            if g.units.last() != Some(&(u as u16)) {
                if l > 0 {
                    g.cuts.push(l as u32);
                }
                g.units.push(u as u16);
            }
        }
        g
    }

    /// Platform unit per layer.
    pub fn assignment(&self, layers: usize) -> Vec<usize> {
        let mut a = Vec::with_capacity(layers);
        for (s, &u) in self.units.iter().enumerate() {
            let end = self.cuts.get(s).map_or(layers, |&c| c as usize);
            a.resize(end, u as usize);
        }
        a
    }

    /// Merges equal neighbours and drops duplicate or out-of-range cuts.
    fn canonical(mut self, layers: usize) -> Genome {
        let mut cuts = Vec::with_capacity(self.cuts.len());
        let mut units = Vec::with_capacity(self.units.len());
        units.push(self.units[0]);
        for (i, &c) in self.cuts.iter().enumerate() {
            let u = self.units[i + 1];
            if c == 0 || c as usize >= layers || cuts.last() == Some(&c) {
                // a cut that does not start a segment: the later unit wins the segment
                *units.last_mut().expect("non-empty") = u;
                continue;
            }
            if *units.last().expect("non-empty") == u {
                continue;
            }
            cuts.push(c);
            units.push(u);
        }
        // merging may have made new equal neighbours
        self.cuts = cuts;
        self.units = units;
        let a = self.assignment(layers);
        Genome::from_assignment(&a)
    }
}

/// One evaluated mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Evaluation sequence number (order of evaluation).
    pub eval: usize,
    /// Its encoding.
    pub genome: Genome,
    /// Latency p50 [ms], negative throughput [fps], energy [mJ/frame], max memory [MiB].
    pub obj: [f64; 4],
    /// Sum over devices of the relative memory overrun (0 when it fits).
    pub violation: f64,
    /// Number of partitions (as `Plan::build` forms them).
    pub partitions: usize,
    /// Unit of each partition, in partition order.
    pub part_units: Vec<usize>,
}

impl Point {
    /// Whether every device's memory need fits.
    pub fn feasible(&self) -> bool {
        self.violation <= 0.0
    }
    /// Latency p50 [ms].
    pub fn latency_ms(&self) -> f64 {
        self.obj[0]
    }
    /// Throughput [fps].
    pub fn throughput_fps(&self) -> f64 {
        -self.obj[1]
    }
    /// Energy per frame [mJ].
    pub fn energy_mj(&self) -> f64 {
        self.obj[2]
    }
    /// Largest memory need of a device [MiB].
    pub fn max_memory_mb(&self) -> f64 {
        self.obj[3]
    }
}

/// Pareto dominance (minimisation): `a` no worse everywhere and better somewhere.
pub fn dominates(a: &[f64; 4], b: &[f64; 4]) -> bool {
    let mut better = false;
    for i in 0..4 {
        if a[i] > b[i] {
            return false;
        }
        better |= a[i] < b[i];
    }
    better
}

/// Constraint domination (Deb).
fn c_dominates(a: &Point, b: &Point) -> bool {
    match (a.feasible(), b.feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => dominates(&a.obj, &b.obj),
    }
}

/// A named baseline mapping with its evaluation.
#[derive(Debug, Clone)]
pub struct Baseline {
    /// `single`, `even`, `pipeedge` or `2way`.
    pub kind: String,
    /// The evaluation.
    pub point: Point,
}

/// Progress report handed to the caller's callback.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Evaluations so far.
    pub evaluations: u64,
    /// The budget.
    pub budget: u64,
    /// Stage (1 partitioning, 2 placement, 3 refinement, 4 exhaustive enumeration).
    pub stage: u8,
    /// Size of the current feasible front.
    pub front: usize,
    /// Its hypervolume, normalised by the initial population's bounds.
    pub hypervolume: f64,
}

/// Exhaustive enumeration results.
#[derive(Debug, Clone)]
pub struct Exhaustive {
    /// Mappings enumerated (the space size).
    pub evaluated: u64,
    /// The exhaustive feasible front.
    pub front: Vec<Point>,
    /// Hypervolume of the found front / hypervolume of the exhaustive front (bounds of their
    /// union).
    pub ratio: f64,
}

/// The result of a search.
#[derive(Debug, Clone)]
pub struct ExploreResult {
    /// Feasible non-dominated mappings, sorted by latency, then the other objectives.
    pub front: Vec<Point>,
    /// Baselines.
    pub baselines: Vec<Baseline>,
    /// Unique evaluations spent (baselines included).
    pub evaluations: u64,
    /// Duplicate encodings met and answered from the cache (not counted).
    pub cache_hits: u64,
    /// Size of the encoding space (saturating).
    pub space_size: u128,
    /// Hypervolume of the front, normalised by the bounds of the front and the feasible
    /// baselines.
    pub hypervolume: f64,
    /// Present when the space was small enough to enumerate.
    pub exhaustive: Option<Exhaustive>,
    /// Allowed units.
    pub units: Vec<usize>,
}

/// Which platform units the search may use: the scenario's `mapping.units`, or all.
pub fn search_units(sc: &Scenario) -> Result<Vec<usize>, SimError> {
    strategy::allowed_units(&sc.prep, sc.units.as_deref())
}

/// The encoding space of a prepared scenario.
#[derive(Debug, Clone)]
pub struct Space {
    /// Layers.
    pub layers: usize,
    /// Allowed platform units.
    pub units: Vec<usize>,
    /// Most segments.
    pub max_segments: usize,
    /// Clean cut points (few crossing tensors), ascending.
    pub clean_cuts: Vec<u32>,
}

impl Space {
    /// The space of `prep` over `units`.
    pub fn new(prep: &PreparedScenario, units: Vec<usize>) -> Space {
        let nl = prep.graph.layers.len();
        // tensors crossing the cut before layer i
        let mut cross = vec![0u32; nl + 1];
        for t in prep.graph.tensors.values() {
            if let (Some(p), Some(&last)) = (t.producer, t.consumers.iter().max()) {
                for c in cross.iter_mut().take(last + 1).skip(p + 1) {
                    *c += 1;
                }
            }
        }
        let inner = || (1..nl).map(|i| cross[i]);
        let min = inner().min().unwrap_or(0);
        let mut clean: Vec<u32> = (1..nl as u32)
            .filter(|&i| cross[i as usize] <= min)
            .collect();
        if clean.len() < 4 {
            clean = (1..nl as u32)
                .filter(|&i| cross[i as usize] <= min + 1)
                .collect();
        }
        Space {
            layers: nl,
            max_segments: units.len().min(nl.max(1)),
            units,
            clean_cuts: clean,
        }
    }

    /// Number of mappings in the space (saturating).
    pub fn size(&self) -> u128 {
        let u = self.units.len() as u128;
        if self.layers == 0 || u == 0 {
            return 0;
        }
        let mut total: u128 = 0;
        let mut binom: u128 = 1; // C(L-1, k-1)
        let mut pow: u128 = u; // U (U-1)^(k-1)
        for k in 1..=self.max_segments {
            total = total.saturating_add(binom.saturating_mul(pow));
            let n = (self.layers - 1) as u128;
            let j = (k - 1) as u128;
            if j >= n {
                break;
            }
            binom = binom.saturating_mul(n - j) / (j + 1);
            pow = pow.saturating_mul(u - 1);
        }
        total
    }
}

/// The evaluator shared by all stages: evaluation, cache, archive, budget.
struct Search<'a> {
    prep: &'a PreparedScenario,
    space: Space,
    budget: u64,
    cache: HashMap<Genome, usize>,
    points: Vec<Point>,
    cache_hits: u64,
    /// Indices into `points` of the feasible non-dominated ones.
    archive: Vec<usize>,
    rng: Rng,
}

fn evaluate(prep: &PreparedScenario, g: &Genome, eval: usize) -> Point {
    let assign = g.assignment(prep.graph.layers.len());
    let plan = prep.sim_plan(&assign);
    let part_units: Vec<usize> = plan.parts.iter().map(|p| p.unit).collect();
    let mib = 1024.0 * 1024.0;
    let out = match prep.simulate(&plan, false) {
        Ok(o) => o,
        Err(_) => {
            // e.g. two devices without a route: as bad as it gets
            return Point {
                eval,
                genome: g.clone(),
                obj: [f64::MAX; 4],
                violation: 1e12,
                partitions: plan.parts.len(),
                part_units,
            };
        }
    };
    let mem = prep.memory_bytes(&plan);
    let m = prep.metrics(&plan, &out, &mem);
    let mut violation = 0.0;
    let mut max_mb = 0.0f64;
    for (d, &b) in mem.iter().enumerate() {
        let need = b as f64 / mib;
        let cap = prep.platform.devices[d].memory_mb;
        max_mb = max_mb.max(need);
        if need > cap {
            violation += (need - cap) / cap;
        }
    }
    Point {
        eval,
        genome: g.clone(),
        obj: [
            m.latency_p50_ns as f64 / 1e6,
            -m.throughput_fps,
            m.energy_mj_per_frame,
            max_mb,
        ],
        violation,
        partitions: plan.parts.len(),
        part_units,
    }
}

impl<'a> Search<'a> {
    fn spent(&self) -> u64 {
        self.points.len() as u64
    }

    /// Evaluates the new genomes of `batch` (in parallel, results in order) and returns the
    /// point index of every genome of the batch (cached or new). With `force`, genomes are
    /// evaluated even past the budget (baselines).
    fn eval_batch(&mut self, batch: Vec<Genome>, force: bool) -> Vec<usize> {
        let mut new: Vec<Genome> = Vec::new();
        let mut idx = Vec::with_capacity(batch.len());
        let mut pending: HashMap<Genome, usize> = HashMap::new();
        let mut order: Vec<Option<usize>> = Vec::with_capacity(batch.len());
        for g in batch {
            if let Some(&i) = self.cache.get(&g) {
                self.cache_hits += 1;
                order.push(Some(i));
                continue;
            }
            if let Some(&k) = pending.get(&g) {
                self.cache_hits += 1;
                order.push(Some(self.points.len() + k));
                continue;
            }
            if !force && self.spent() + new.len() as u64 >= self.budget {
                order.push(None);
                continue;
            }
            pending.insert(g.clone(), new.len());
            order.push(Some(self.points.len() + new.len()));
            new.push(g);
        }
        let base = self.points.len();
        let prep = self.prep;
        let evaluated: Vec<Point> = new
            .par_iter()
            .enumerate()
            .map(|(k, g)| evaluate(prep, g, base + k))
            .collect();
        for p in evaluated {
            self.cache.insert(p.genome.clone(), p.eval);
            self.insert_archive(p.eval, &p);
            self.points.push(p);
        }
        for o in order.into_iter().flatten() {
            idx.push(o);
        }
        idx
    }

    fn insert_archive(&mut self, i: usize, p: &Point) {
        if !p.feasible() {
            return;
        }
        let pts = &self.points;
        // equal objectives: the earlier one stays
        if self
            .archive
            .iter()
            .any(|&a| pts[a].obj == p.obj || dominates(&pts[a].obj, &p.obj))
        {
            return;
        }
        self.archive.retain(|&a| !dominates(&p.obj, &pts[a].obj));
        self.archive.push(i);
    }

    fn unit(&mut self) -> u16 {
        self.space.units[self.rng.below(self.space.units.len() as u64) as usize] as u16
    }

    fn unit_except(&mut self, a: Option<u16>, b: Option<u16>) -> u16 {
        let cands: Vec<u16> = self
            .space
            .units
            .iter()
            .map(|&u| u as u16)
            .filter(|&u| Some(u) != a && Some(u) != b)
            .collect();
        if cands.is_empty() {
            return self.unit();
        }
        cands[self.rng.below(cands.len() as u64) as usize]
    }

    fn cut_point(&mut self) -> u32 {
        let nl = self.space.layers as u64;
        if !self.space.clean_cuts.is_empty() && self.rng.next_f64() < CLEAN_BIAS {
            self.space.clean_cuts[self.rng.below(self.space.clean_cuts.len() as u64) as usize]
        } else {
            1 + self.rng.below(nl - 1) as u32
        }
    }

    fn random_genome(&mut self) -> Genome {
        let k = 1 + self.rng.below(self.space.max_segments as u64) as usize;
        let mut cuts: Vec<u32> = if self.space.layers > 1 {
            (1..k).map(|_| self.cut_point()).collect()
        } else {
            Vec::new()
        };
        cuts.sort_unstable();
        cuts.dedup();
        let mut units: Vec<u16> = Vec::with_capacity(cuts.len() + 1);
        for _ in 0..=cuts.len() {
            let u = self.unit_except(units.last().copied(), None);
            units.push(u);
        }
        self.fit(Genome { cuts, units })
    }

    /// Canonical and within the segment limit.
    fn fit(&mut self, g: Genome) -> Genome {
        let mut g = g.canonical(self.space.layers);
        while g.units.len() > self.space.max_segments {
            let i = self.rng.below(g.cuts.len() as u64) as usize;
            g.cuts.remove(i);
            // the merged segment keeps the left or the right unit
            let drop = if self.rng.below(2) == 0 { i } else { i + 1 };
            g.units.remove(drop);
            g = g.canonical(self.space.layers);
        }
        g
    }

    fn mutate_structure(&mut self, g: &Genome) -> Genome {
        let mut g = g.clone();
        let nl = self.space.layers;
        if nl < 2 {
            return g;
        }
        match self.rng.below(4) {
            3 => {
                // paint a range [a, b) with another unit (e.g. offload a block: A-B-A)
                let (x, y) = (self.cut_point(), self.cut_point());
                let (a, b) = (x.min(y) as usize, x.max(y) as usize);
                if a < b {
                    let mut assign = g.assignment(nl);
                    let u = self.unit_except(Some(assign[a] as u16), None) as usize;
                    assign[a..b].fill(u);
                    g = Genome::from_assignment(&assign);
                }
            }
            0 if g.units.len() < self.space.max_segments => {
                let c = self.cut_point();
                let pos = g.cuts.partition_point(|&x| x < c);
                if g.cuts.get(pos) != Some(&c) {
                    let left = g.units[pos];
                    let right = g.units.get(pos + 1).copied();
                    let u = self.unit_except(Some(left), right);
                    g.cuts.insert(pos, c);
                    g.units.insert(pos + 1, u);
                }
            }
            1 if !g.cuts.is_empty() => {
                let i = self.rng.below(g.cuts.len() as u64) as usize;
                g.cuts.remove(i);
                let drop = if self.rng.below(2) == 0 { i } else { i + 1 };
                g.units.remove(drop);
            }
            _ if !g.cuts.is_empty() => {
                let i = self.rng.below(g.cuts.len() as u64) as usize;
                let lo = if i == 0 { 1 } else { g.cuts[i - 1] + 1 };
                let hi = g.cuts.get(i + 1).map_or(nl as u32 - 1, |&c| c - 1);
                let clean: Vec<u32> = self
                    .space
                    .clean_cuts
                    .iter()
                    .copied()
                    .filter(|&c| c >= lo && c <= hi)
                    .collect();
                if !clean.is_empty() && self.rng.next_f64() < CLEAN_BIAS {
                    g.cuts[i] = clean[self.rng.below(clean.len() as u64) as usize];
                } else if hi >= lo {
                    g.cuts[i] = lo + self.rng.below((hi - lo + 1) as u64) as u32;
                }
            }
            _ => {
                return self.mutate_units(&g);
            }
        }
        self.fit(g)
    }

    fn mutate_units(&mut self, g: &Genome) -> Genome {
        let mut g = g.clone();
        let n = g.units.len();
        match self.rng.below(3) {
            0 if n >= 2 => {
                let a = self.rng.below(n as u64) as usize;
                let b = self.rng.below(n as u64) as usize;
                g.units.swap(a, b);
            }
            1 => {
                // the other unit of the same device (cpu <-> gpu)
                let s = self.rng.below(n as u64) as usize;
                let u = g.units[s] as usize;
                let dev = self.prep.platform.units[u].device;
                let other: Vec<usize> = self
                    .space
                    .units
                    .iter()
                    .copied()
                    .filter(|&v| v != u && self.prep.platform.units[v].device == dev)
                    .collect();
                g.units[s] = if other.is_empty() {
                    self.unit_except(Some(u as u16), None)
                } else {
                    other[self.rng.below(other.len() as u64) as usize] as u16
                };
            }
            _ => {
                let s = self.rng.below(n as u64) as usize;
                g.units[s] = self.unit_except(Some(g.units[s]), None);
            }
        }
        self.fit(g)
    }

    fn crossover_structure(&mut self, a: &Genome, b: &Genome) -> Genome {
        if self.space.layers < 2 {
            return a.clone();
        }
        let x = self.cut_point() as usize;
        let (aa, ab) = (
            a.assignment(self.space.layers),
            b.assignment(self.space.layers),
        );
        let child: Vec<usize> = aa[..x].iter().chain(&ab[x..]).copied().collect();
        let g = Genome::from_assignment(&child);
        self.fit(g)
    }

    fn crossover_units(&mut self, a: &Genome, b: &Genome) -> Genome {
        let mut g = a.clone();
        let ab = b.assignment(self.space.layers);
        for s in 0..g.units.len() {
            if self.rng.below(2) == 0 {
                let first = if s == 0 { 0 } else { g.cuts[s - 1] as usize };
                g.units[s] = ab[first] as u16;
            }
        }
        self.fit(g)
    }

    fn front_points(&self) -> Vec<[f64; 4]> {
        self.archive.iter().map(|&i| self.points[i].obj).collect()
    }
}

/// Non-dominated sorting with constraint domination; returns the rank of each point.
fn nd_ranks(pop: &[&Point]) -> Vec<usize> {
    let n = pop.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if c_dominates(pop[i], pop[j]) {
                dominates_list[i].push(j);
                dominated_by[j] += 1;
            } else if c_dominates(pop[j], pop[i]) {
                dominates_list[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut rank = vec![usize::MAX; n];
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    let mut r = 0;
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            rank[i] = r;
            for &j in &dominates_list[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        current = next;
        r += 1;
    }
    rank
}

/// Crowding distance of each member of one front.
fn crowding(pop: &[&Point], members: &[usize]) -> Vec<f64> {
    let mut d = vec![0.0; members.len()];
    if members.len() <= 2 {
        return vec![f64::INFINITY; members.len()];
    }
    for m in 0..4 {
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by(|&a, &b| {
            pop[members[a]].obj[m]
                .total_cmp(&pop[members[b]].obj[m])
                .then(pop[members[a]].eval.cmp(&pop[members[b]].eval))
        });
        let lo = pop[members[order[0]]].obj[m];
        let hi = pop[members[*order.last().expect("non-empty")]].obj[m];
        d[order[0]] = f64::INFINITY;
        d[*order.last().expect("non-empty")] = f64::INFINITY;
        let range = hi - lo;
        if range <= 0.0 || !range.is_finite() {
            continue;
        }
        for k in 1..order.len() - 1 {
            let gap = pop[members[order[k + 1]]].obj[m] - pop[members[order[k - 1]]].obj[m];
            d[order[k]] += gap / range;
        }
    }
    d
}

/// NSGA-II environmental selection of `n` point indices from `cands` (duplicates removed);
/// returns them with their (rank, crowding).
fn select(points: &[Point], cands: &[usize], n: usize) -> Vec<(usize, usize, f64)> {
    let mut c: Vec<usize> = cands.to_vec();
    c.sort_unstable();
    c.dedup();
    let pop: Vec<&Point> = c.iter().map(|&i| &points[i]).collect();
    let rank = nd_ranks(&pop);
    let maxr = rank.iter().copied().max().unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for r in 0..=maxr {
        let members: Vec<usize> = (0..pop.len()).filter(|&i| rank[i] == r).collect();
        let cd = crowding(&pop, &members);
        let mut m: Vec<(usize, f64)> = members.iter().copied().zip(cd).collect();
        if out.len() + m.len() > n {
            m.sort_by(|a, b| b.1.total_cmp(&a.1).then(c[a.0].cmp(&c[b.0])));
            m.truncate(n - out.len());
        }
        out.extend(m.into_iter().map(|(i, d)| (c[i], r, d)));
        if out.len() >= n {
            break;
        }
    }
    out
}

/// Runs the search on a loaded scenario.
pub fn explore(
    sc: &Scenario,
    opts: ExploreOptions,
    progress: Option<&mut dyn FnMut(Progress)>,
) -> Result<ExploreResult, SimError> {
    let prep = &sc.prep;
    let units = search_units(sc)?;
    if units.is_empty() || prep.graph.layers.is_empty() {
        return Err(SimError::Mapping(
            "the search space is empty (no compute unit or no layer to map)".into(),
        ));
    }
    let space = Space::new(prep, units.clone());
    let space_size = space.size();
    let nl = space.layers;
    let mut s = Search {
        prep,
        space,
        budget: opts.budget,
        cache: HashMap::new(),
        points: Vec::new(),
        cache_hits: 0,
        archive: Vec::new(),
        rng: Rng::new(opts.seed),
    };
    let mut progress = progress;
    let mut report = |s: &Search, stage: u8, bounds: &Option<Bounds>, force: bool| {
        if let Some(cb) = progress.as_mut() {
            let every = (s.budget / 50).max(1);
            if force || s.spent() % every < 64 {
                let hv = bounds.map_or(0.0, |b| b.hypervolume(s.front_points().iter()));
                cb(Progress {
                    evaluations: s.spent(),
                    budget: s.budget,
                    stage,
                    front: s.archive.len(),
                    hypervolume: hv,
                });
            }
        }
    };

    // ---- baselines (evaluated even past the budget) ----
    let mut named: Vec<(String, Genome)> = Vec::new();
    if let Ok(m) = strategy::single(prep, &units) {
        named.push((
            "single".into(),
            Genome::from_assignment(&prep.assignment(&m)?),
        ));
    }
    if let Ok(m) = strategy::even(prep, &units) {
        named.push((
            "even".into(),
            Genome::from_assignment(&prep.assignment(&m)?),
        ));
    }
    if let Ok(m) = strategy::pipeedge(prep, &units) {
        named.push((
            "pipeedge".into(),
            Genome::from_assignment(&prep.assignment(&m)?),
        ));
    }
    let mut twoway: Vec<Genome> = Vec::new();
    for c in 1..nl as u32 {
        for &a in &units {
            for &b in &units {
                if a != b {
                    twoway.push(Genome {
                        cuts: vec![c],
                        units: vec![a as u16, b as u16],
                    });
                }
            }
        }
    }
    let singles: Vec<Genome> = units
        .iter()
        .map(|&u| Genome {
            cuts: vec![],
            units: vec![u as u16],
        })
        .collect();
    let named_idx = s.eval_batch(named.iter().map(|(_, g)| g.clone()).collect(), true);
    s.eval_batch(singles, true);
    let two_idx = s.eval_batch(twoway, true);
    let mut baselines: Vec<Baseline> = named
        .iter()
        .zip(&named_idx)
        .map(|((k, _), &i)| Baseline {
            kind: k.clone(),
            point: s.points[i].clone(),
        })
        .collect();
    let best2 = two_idx
        .iter()
        .map(|&i| &s.points[i])
        .min_by(|a, b| {
            (!a.feasible(), a.violation)
                .partial_cmp(&(!b.feasible(), b.violation))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.obj[0].total_cmp(&b.obj[0]))
                .then(a.obj[2].total_cmp(&b.obj[2]))
                .then(a.eval.cmp(&b.eval))
        })
        .cloned();
    if let Some(p) = best2 {
        baselines.push(Baseline {
            kind: "2way".into(),
            point: p,
        });
    }

    // ---- stage 1: initial population ----
    let n = if opts.population > 0 {
        opts.population
    } else {
        (opts.budget / 80).clamp(12, 100) as usize
    };
    let init: Vec<Genome> = (0..n).map(|_| s.random_genome()).collect();
    s.eval_batch(init, false);
    let init_bounds = Bounds::of(s.front_points().iter());
    let all: Vec<usize> = (0..s.points.len()).collect();
    let mut pop = select(&s.points, &all, n);
    report(&s, 1, &init_bounds, true);

    let stage1_end = opts.budget * 30 / 100;
    let stage2_end = opts.budget * 60 / 100;
    let mut stalled = 0;
    let mut tried_refine: std::collections::HashSet<usize> = std::collections::HashSet::new();
    while s.spent() < s.budget && stalled < 50 {
        let before = s.spent();
        let stage = if s.spent() < stage1_end {
            1
        } else if s.spent() < stage2_end {
            2
        } else {
            3
        };
        let mut batch = Vec::with_capacity(n);
        if stage == 3 {
            // neighbours of front members not refined yet, in evaluation order
            // extremes first (the best member in each objective), then by crowding distance
            let mut front: Vec<usize> = s.archive.clone();
            front.sort_unstable();
            let members: Vec<&Point> = front.iter().map(|&i| &s.points[i]).collect();
            let cd = crowding(&members, &(0..members.len()).collect::<Vec<_>>());
            let mut order: Vec<(f64, usize)> = cd.into_iter().zip(front.iter().copied()).collect();
            order.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut front: Vec<usize> = order.into_iter().map(|o| o.1).collect();
            front.retain(|f| !tried_refine.contains(f));
            for f in front {
                if batch.len() >= n {
                    break;
                }
                tried_refine.insert(f);
                let g = s.points[f].genome.clone();
                for nb in neighbours(&s, &g) {
                    if !s.cache.contains_key(&nb) {
                        batch.push(nb);
                    }
                }
            }
        }
        if batch.is_empty() {
            // NSGA-II generation: binary tournaments on (rank, crowding)
            let structural = if stage == 1 { 0.8 } else { 0.25 };
            for _ in 0..n {
                let pa = tournament(&mut s.rng, &pop);
                let pb = tournament(&mut s.rng, &pop);
                let (ga, gb) = (s.points[pa].genome.clone(), s.points[pb].genome.clone());
                let structure = s.rng.next_f64() < structural;
                let mut child = if s.rng.next_f64() < 0.7 {
                    if structure {
                        s.crossover_structure(&ga, &gb)
                    } else {
                        s.crossover_units(&ga, &gb)
                    }
                } else {
                    ga
                };
                child = if structure {
                    s.mutate_structure(&child)
                } else {
                    s.mutate_units(&child)
                };
                batch.push(child);
            }
        }
        let idx = s.eval_batch(batch, false);
        let mut cands: Vec<usize> = pop.iter().map(|p| p.0).collect();
        cands.extend(idx);
        pop = select(&s.points, &cands, n);
        stalled = if s.spent() == before { stalled + 1 } else { 0 };
        report(&s, stage, &init_bounds, false);
    }
    report(&s, 3, &init_bounds, true);

    let mut front: Vec<Point> = s.archive.iter().map(|&i| s.points[i].clone()).collect();
    sort_front(&mut front);
    if front.is_empty() {
        let least = s
            .points
            .iter()
            .map(|p| p.violation)
            .fold(f64::INFINITY, f64::min);
        return Err(SimError::Mapping(format!(
            "no feasible mapping: all {} mappings evaluated (space of {} mappings) exceed a \
             device's memory (smallest overrun {:.1}% of a device's memory)",
            s.spent(),
            space_size,
            least * 100.0
        )));
    }
    let fb: Vec<[f64; 4]> = front
        .iter()
        .map(|p| p.obj)
        .chain(
            baselines
                .iter()
                .filter(|b| b.point.feasible())
                .map(|b| b.point.obj),
        )
        .collect();
    let bounds = Bounds::of(fb.iter()).expect("non-empty front");
    let hypervolume = bounds.hypervolume(front.iter().map(|p| &p.obj));

    let exhaustive = if opts.exhaustive_limit > 0 && space_size <= opts.exhaustive_limit as u128 {
        let mut cb = |e: u64| {
            if let Some(p) = progress.as_mut() {
                p(Progress {
                    evaluations: e,
                    budget: space_size as u64,
                    stage: 4,
                    front: 0,
                    hypervolume: 0.0,
                })
            }
        };
        Some(enumerate(prep, &s.space, &front, &mut cb))
    } else {
        None
    };
    Ok(ExploreResult {
        front,
        baselines,
        evaluations: s.spent(),
        cache_hits: s.cache_hits,
        space_size,
        hypervolume,
        exhaustive,
        units,
    })
}

fn sort_front(front: &mut [Point]) {
    front.sort_by(|a, b| {
        (0..4)
            .map(|i| a.obj[i].total_cmp(&b.obj[i]))
            .fold(std::cmp::Ordering::Equal, |o, x| o.then(x))
            .then(a.eval.cmp(&b.eval))
    });
}

fn tournament(rng: &mut Rng, pop: &[(usize, usize, f64)]) -> usize {
    let a = &pop[rng.below(pop.len() as u64) as usize];
    let b = &pop[rng.below(pop.len() as u64) as usize];
    // lower rank wins, then larger crowding distance, then the earlier evaluation
    let key = |p: &(usize, usize, f64)| (p.1, -p.2, p.0);
    let (ka, kb) = (key(a), key(b));
    let a_wins = ka.0 < kb.0 || (ka.0 == kb.0 && (ka.1 < kb.1 || (ka.1 == kb.1 && ka.2 <= kb.2)));
    if a_wins {
        a.0
    } else {
        b.0
    }
}

/// Local neighbours of a genome (stage 3), in a fixed order.
fn neighbours(s: &Search, g: &Genome) -> Vec<Genome> {
    let nl = s.space.layers as i64;
    let mut out = Vec::new();
    let mut push = |g: Genome| {
        let g = g.canonical(nl as usize);
        if g.units.len() <= s.space.max_segments {
            out.push(g);
        }
    };
    for i in 0..g.cuts.len() {
        for d in [-3i64, -2, -1, 1, 2, 3] {
            let c = g.cuts[i] as i64 + d;
            let lo = if i == 0 { 1 } else { g.cuts[i - 1] as i64 + 1 };
            let hi = g.cuts.get(i + 1).map_or(nl - 1, |&c| c as i64 - 1);
            if c >= lo && c <= hi {
                let mut h = g.clone();
                h.cuts[i] = c as u32;
                push(h);
            }
        }
    }
    // move a boundary to any clean cut point between its neighbours
    for i in 0..g.cuts.len() {
        let lo = if i == 0 { 1 } else { g.cuts[i - 1] + 1 };
        let hi = g.cuts.get(i + 1).map_or(nl as u32 - 1, |&c| c - 1);
        for &c in s.space.clean_cuts.iter().filter(|&&c| c >= lo && c <= hi) {
            if (c as i64 - g.cuts[i] as i64).abs() > 3 {
                let mut h = g.clone();
                h.cuts[i] = c;
                push(h);
            }
        }
    }
    // shift a whole inner segment (both of its boundaries) by up to 3 layers
    for i in 0..g.cuts.len().saturating_sub(1) {
        for d in [-3i64, -2, -1, 1, 2, 3] {
            let (a, b) = (g.cuts[i] as i64 + d, g.cuts[i + 1] as i64 + d);
            let lo = if i == 0 { 1 } else { g.cuts[i - 1] as i64 + 1 };
            let hi = g.cuts.get(i + 2).map_or(nl - 1, |&c| c as i64 - 1);
            if a >= lo && b <= hi {
                let mut h = g.clone();
                h.cuts[i] = a as u32;
                h.cuts[i + 1] = b as u32;
                push(h);
            }
        }
    }
    for a in 0..g.units.len() {
        for b in a + 1..g.units.len() {
            let mut h = g.clone();
            h.units.swap(a, b);
            push(h);
        }
        for &u in &s.space.units {
            if u as u16 != g.units[a] {
                let mut h = g.clone();
                h.units[a] = u as u16;
                push(h);
            }
        }
    }
    out
}

/// Enumerates the whole space in chunks (evaluated in parallel) and compares fronts.
fn enumerate(
    prep: &PreparedScenario,
    space: &Space,
    found: &[Point],
    progress: &mut dyn FnMut(u64),
) -> Exhaustive {
    let mut archive: Vec<Point> = Vec::new();
    let mut chunk: Vec<Genome> = Vec::with_capacity(8192);
    let mut count = 0u64;
    let mut flush = |chunk: &mut Vec<Genome>, archive: &mut Vec<Point>, count: &mut u64| {
        let base = *count as usize;
        let pts: Vec<Point> = chunk
            .par_iter()
            .enumerate()
            .map(|(k, g)| evaluate(prep, g, base + k))
            .collect();
        *count += chunk.len() as u64;
        chunk.clear();
        for p in pts {
            if !p.feasible()
                || archive
                    .iter()
                    .any(|a| a.obj == p.obj || dominates(&a.obj, &p.obj))
            {
                continue;
            }
            archive.retain(|a| !dominates(&p.obj, &a.obj));
            archive.push(p);
        }
        progress(*count);
    };
    let u = &space.units;
    for k in 1..=space.max_segments {
        // cuts: combinations of k-1 positions in 1..L; units: sequences without equal
        // neighbours
        let mut cuts: Vec<u32> = (1..k as u32).collect();
        if k > 1 && space.layers < k {
            break;
        }
        loop {
            let mut digits = vec![0usize; k];
            'units: loop {
                if digits.windows(2).all(|w| w[0] != w[1]) {
                    chunk.push(Genome {
                        cuts: cuts.clone(),
                        units: digits.iter().map(|&d| u[d] as u16).collect(),
                    });
                    if chunk.len() == chunk.capacity() {
                        flush(&mut chunk, &mut archive, &mut count);
                    }
                }
                for d in (0..k).rev() {
                    digits[d] += 1;
                    if digits[d] < u.len() {
                        continue 'units;
                    }
                    digits[d] = 0;
                }
                break;
            }
            // next combination
            let mut i = k as i64 - 2;
            while i >= 0 {
                let max = space.layers as u32 - 1 - (k as u32 - 2 - i as u32);
                if cuts[i as usize] < max {
                    break;
                }
                i -= 1;
            }
            if i < 0 {
                break;
            }
            cuts[i as usize] += 1;
            for j in i as usize + 1..k - 1 {
                cuts[j] = cuts[j - 1] + 1;
            }
        }
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut archive, &mut count);
    }
    sort_front(&mut archive);
    let ratio = match Bounds::of(archive.iter().chain(found).map(|p| &p.obj)) {
        Some(b) => {
            let he = b.hypervolume(archive.iter().map(|p| &p.obj));
            let hf = b.hypervolume(found.iter().map(|p| &p.obj));
            if he > 0.0 {
                hf / he
            } else {
                1.0
            }
        }
        None => 1.0,
    };
    Exhaustive {
        evaluated: count,
        front: archive,
        ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genome_round_trip_and_canonical() {
        let a = vec![2, 2, 0, 0, 0, 2, 1];
        let g = Genome::from_assignment(&a);
        assert_eq!(g.cuts, vec![2, 5, 6]);
        assert_eq!(g.assignment(7), a);
        let g2 = Genome {
            cuts: vec![2, 2, 4],
            units: vec![1, 3, 1, 1],
        }
        .canonical(7);
        assert_eq!(g2.assignment(7), vec![1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(g2.cuts, Vec::<u32>::new());
    }
}
