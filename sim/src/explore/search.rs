//! The search's state (evaluations, cache, front archive, budget, generator) and the stages
//! that spend the budget: baselines, the initial population, NSGA-II generations and
//! refinement around the front.

use std::collections::HashMap;

use rayon::prelude::*;

use super::hv::sampled_contributions;
use super::interleave::interleaved_together;
use super::nsga::{dominates, select, sort_front, tournament};
use super::screen::Screen;
use super::selection::SegmentTimes;
use super::tuning::{
    BASELINE_SHARE_PCT, CONTRIBUTION_SAMPLES, CORE_RATE_ALLOCATION, CORE_RATE_INITIAL,
    CORE_RATE_REFINEMENT, CROSSOVER_RATE, REFINE_FULL_SAMPLE_SEGMENTS, REFINE_SAMPLE,
    REFINE_SAMPLE_MIN, SELECTION_RATE_LATER, SELECTION_RATE_STAGE, STALL_GENERATIONS,
    STRUCTURAL_RATE_LATER, STRUCTURAL_RATE_PARTITIONING,
};
use super::variation::neighbours;
use super::{Baseline, Genome, Point, Reporter, Space, SpaceSize, Stage};
use crate::error::SimError;
use crate::kernel::Rng;
use crate::prepared::PreparedScenario;
use crate::strategy;

/// A population: (point index, rank, crowding distance) of each member.
pub(crate) type Population = Vec<(usize, usize, f64)>;

/// The evaluator shared by all stages: evaluation, cache, archive, budget.
pub(crate) struct Search<'a> {
    pub(crate) prep: &'a PreparedScenario,
    pub(crate) space: Space,
    pub(crate) budget: u64,
    pub(crate) cache: HashMap<Genome, usize>,
    pub(crate) points: Vec<Point>,
    pub(crate) cache_hits: u64,
    /// Indices into `points` of the feasible non-dominated ones.
    pub(crate) archive: Vec<usize>,
    pub(crate) rng: Rng,
    /// Estimated segment times, for unit selection.
    pub(crate) times: SegmentTimes,
    /// Estimated objectives, for refinement's order of neighbours.
    screen: Screen,
    /// The whole units of the space, fastest first (whole model alone; ties by index).
    pub(crate) by_speed: Vec<u16>,
}

/// Simulates one encoding and scores it: the objectives of [`PreparedScenario::objectives`]
/// and the memory need; the violation sums each device's relative memory overrun and the
/// share of an offered rate the plan cannot sustain.
pub(crate) fn evaluate(prep: &PreparedScenario, g: &Genome, eval: usize) -> Point {
    let assign = g.assignment(prep.graph.layers.len());
    let plan = prep.sim_plan(&assign);
    let part_units: Vec<usize> = plan.parts.iter().map(|p| p.unit).collect();
    let scored = (prep.objectives(&plan)).and_then(|o| crate::adapt::with_events(prep, &assign, o));
    let (o, lost) = match scored {
        Ok(o) => o,
        Err(_) => {
            // e.g. two devices without a route: as bad as it gets
            return Point {
                eval,
                genome: g.clone(),
                obj: [f64::MAX; 4],
                violation: 1e12,
                overload: 0.0,
                partitions: plan.parts.len(),
                part_units,
            };
        }
    };
    let (max_mb, memory_violation) = memory_need(prep, &prep.memory_bytes(&plan));
    Point {
        eval,
        genome: g.clone(),
        obj: [
            o.latency_ns as f64 / 1e6,
            -o.throughput_fps,
            o.energy_mj_per_frame,
            max_mb,
        ],
        violation: memory_violation + o.overload + lost,
        overload: o.overload,
        partitions: plan.parts.len(),
        part_units,
    }
}

/// The largest memory need of a device [MiB] and the sum of the devices' relative overruns.
pub(crate) fn memory_need(prep: &PreparedScenario, mem: &[u64]) -> (f64, f64) {
    let mib = 1024.0 * 1024.0;
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
    (max_mb, violation)
}

impl<'a> Search<'a> {
    /// A search over `space` with `budget` evaluations, seeded by `seed`.
    pub(crate) fn new(prep: &'a PreparedScenario, space: Space, budget: u64, seed: u64) -> Self {
        let times = SegmentTimes::new(prep);
        let mut by_speed: Vec<u16> = space.whole.iter().map(|&u| u as u16).collect();
        by_speed.sort_by_key(|&u| (times.whole(u), u));
        Search {
            prep,
            space,
            budget,
            cache: HashMap::new(),
            points: Vec::new(),
            cache_hits: 0,
            archive: Vec::new(),
            rng: Rng::new(seed),
            times,
            screen: Screen::new(prep),
            by_speed,
        }
    }

    /// Unique evaluations so far.
    pub(crate) fn spent(&self) -> u64 {
        self.points.len() as u64
    }

    /// Evaluates the new genomes of `batch` (in parallel, results in order) and returns the
    /// point index of every genome of the batch (cached or new). With `force`, genomes are
    /// evaluated even past the budget (baselines).
    pub(crate) fn eval_batch(&mut self, batch: Vec<Genome>, force: bool) -> Vec<usize> {
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

    /// Objectives of the current feasible front.
    pub(crate) fn front_points(&self) -> Vec<[f64; 4]> {
        self.archive.iter().map(|&i| self.points[i].obj).collect()
    }
}

impl Search<'_> {
    /// Evaluates the baselines (even past the budget) and returns them: `single`, `even`,
    /// `pipeedge` where the strategy applies, and the best `2way` cut; every single-unit
    /// mapping is evaluated too.
    pub(crate) fn baselines(&mut self, units: &[usize]) -> Result<Vec<Baseline>, SimError> {
        let named = self.strategy_genomes(units)?;
        let named_idx = self.eval_batch(named.iter().map(|(_, g)| g.clone()).collect(), true);
        let singles = units
            .iter()
            .map(|&u| Genome {
                cuts: vec![],
                units: vec![u as u16],
            })
            .collect();
        self.eval_batch(singles, true);
        let two_idx = self.eval_batch(self.two_way_genomes(units), true);
        let mut baselines: Vec<Baseline> = named
            .iter()
            .zip(&named_idx)
            .map(|((k, _), &i)| Baseline {
                kind: k.to_string(),
                point: self.points[i].clone(),
            })
            .collect();
        if let Some(p) = self.best_by_latency(&two_idx) {
            baselines.push(Baseline {
                kind: "2way".into(),
                point: p,
            });
        }
        Ok(baselines)
    }

    /// The `2way` candidates (Neurosurgeon style): every cut point times every ordered pair
    /// of distinct units; when that is more than [`BASELINE_SHARE_PCT`] of the budget, a
    /// sample of that size: cut points spread over the clean ones (then over the others),
    /// unit pairs among the fastest units first.
    fn two_way_genomes(&self, units: &[usize]) -> Vec<Genome> {
        let cap = ((self.budget * BASELINE_SHARE_PCT / 100) as usize).max(1);
        let all_cuts: Vec<u32> = (1..self.space.layers as u32).collect();
        let n_pairs = units.len() * units.len().saturating_sub(1);
        if all_cuts.len() * n_pairs <= cap {
            return two_way(&all_cuts, &ordered_pairs(units));
        }
        let n_cuts = (cap / n_pairs.max(1)).clamp(1, all_cuts.len().max(1));
        let cuts = self.spread_cuts(n_cuts);
        let mut pairs = ordered_pairs(&self.fastest_first(units));
        pairs.sort_by_key(|&(a, b, ra, rb)| (ra.max(rb), ra, rb, a, b));
        pairs.truncate((cap / cuts.len().max(1)).max(1));
        two_way(&cuts, &pairs)
    }

    /// `n` cut points: spread over the clean ones, then over the others, ascending.
    fn spread_cuts(&self, n: usize) -> Vec<u32> {
        let clean = &self.space.clean_cuts;
        let mut cuts = spread(clean, n);
        if cuts.len() < n {
            let others: Vec<u32> = (1..self.space.layers as u32)
                .filter(|c| clean.binary_search(c).is_err())
                .collect();
            cuts.extend(spread(&others, n - cuts.len()));
        }
        cuts.sort_unstable();
        cuts
    }

    /// `units` by the time the whole model takes on each, fastest first (ties: index).
    fn fastest_first(&self, units: &[usize]) -> Vec<usize> {
        let mut v = units.to_vec();
        v.sort_by_key(|&u| (self.prep.layer_ns[u].iter().sum::<u64>(), u));
        v
    }

    /// The encodings the `single`, `even` and `pipeedge` strategies choose.
    fn strategy_genomes(&self, units: &[usize]) -> Result<Vec<(&'static str, Genome)>, SimError> {
        let prep = self.prep;
        let mut named = Vec::new();
        let strategies: [(&'static str, StrategyFn); 3] = [
            ("single", strategy::single),
            ("even", strategy::even),
            ("pipeedge", strategy::pipeedge),
        ];
        for (name, f) in strategies {
            if let Ok(m) = f(prep, units) {
                named.push((name, Genome::from_assignment(&prep.assignment(&m)?)));
            }
        }
        Ok(named)
    }

    /// Among `idx`, the feasible (else least violating) point of lowest latency, ties by
    /// energy, then evaluation order.
    fn best_by_latency(&self, idx: &[usize]) -> Option<Point> {
        idx.iter()
            .map(|&i| &self.points[i])
            .min_by(|a, b| {
                (!a.feasible(), a.violation)
                    .partial_cmp(&(!b.feasible(), b.violation))
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.obj[0].total_cmp(&b.obj[0]))
                    .then(a.obj[2].total_cmp(&b.obj[2]))
                    .then(a.eval.cmp(&b.eval))
            })
            .cloned()
    }

    /// Evaluates the unit-selection seeds and `n` random encodings, and selects the first
    /// population from everything evaluated so far (baselines included).
    pub(crate) fn initial_population(&mut self, n: usize) -> Population {
        let mut init = self.selection_seeds();
        init.extend(self.branch_seeds());
        let interleaved: Vec<Vec<Genome>> = (init.par_iter())
            .map(|g| interleaved_together(self, g))
            .collect();
        init.extend(interleaved.into_iter().flatten());
        init.extend((0..n).map(|_| self.random_initial()));
        self.eval_batch(init, false);
        let all: Vec<usize> = (0..self.points.len()).collect();
        select(&self.points, &all, n)
    }

    /// A random encoding; with core sets, its cores allocated once in a share
    /// [`CORE_RATE_INITIAL`] of draws.
    fn random_initial(&mut self) -> Genome {
        let g = self.random_genome();
        if self.space.has_core_sets() && self.rng.next_f64() < CORE_RATE_INITIAL {
            return self.mutate_cores(&g);
        }
        g
    }

    /// Spends the budget: generations of population size `n` until the budget is spent or
    /// nothing new was evaluated for [`STALL_GENERATIONS`] generations (with core sets, a
    /// stalled stage moves on to the next one first: [`Stage::after_stall`]).
    pub(crate) fn evolve(&mut self, mut pop: Population, n: usize, reporter: &mut Reporter<'_>) {
        let mut stalled = 0;
        let mut visits: HashMap<usize, u32> = HashMap::new();
        let cores = self.space.has_core_sets();
        let mut floor = Stage::Partitioning;
        while self.spent() < self.budget {
            let stage = Stage::at(self.spent(), self.budget, cores, self.selects()).max(floor);
            if stalled >= STALL_GENERATIONS {
                match stage.after_stall(cores) {
                    Some(next) => (floor, stalled) = (next, 0),
                    None => break,
                }
                continue;
            }
            let before = self.spent();
            let mut batch = Vec::new();
            if stage == Stage::Refinement {
                batch = self.refinement_batch(n, &mut visits);
            }
            if batch.is_empty() {
                batch = self.generation(&pop, n, stage);
            }
            let idx = self.eval_batch(batch, false);
            let mut cands: Vec<usize> = pop.iter().map(|p| p.0).collect();
            cands.extend(idx);
            pop = select(&self.points, &cands, n);
            stalled = if self.spent() == before {
                stalled + 1
            } else {
                0
            };
            reporter.report(self, stage, false);
        }
    }

    /// Refinement: a sample of at most [`REFINE_SAMPLE`] unevaluated neighbours of each of
    /// the front members visited least often, those that alone dominate the most first
    /// (sampled exclusive hypervolume: [`visit_order`]),
    /// until the batch holds `n`; a member whose neighbours are all evaluated is not visited
    /// again; a member of many segments gets a smaller sample ([`refine_sample`]).
    fn refinement_batch(&mut self, n: usize, visits: &mut HashMap<usize, u32>) -> Vec<Genome> {
        let mut front: Vec<usize> = self.archive.clone();
        front.sort_unstable();
        let objs: Vec<[f64; 4]> = front.iter().map(|&i| self.points[i].obj).collect();
        let hv = sampled_contributions(&objs, CONTRIBUTION_SAMPLES, self.spent());
        let mut batch = Vec::new();
        let order = visit_order(&front, &hv, visits);
        for chunk in order.chunks(rayon::current_num_threads().max(1)) {
            if batch.len() >= n {
                break;
            }
            // the neighbours of a few members at once (the moves within a device take
            // time to build), then sampled in order, as one by one
            let found: Vec<[Vec<Genome>; 3]> = (chunk.par_iter())
                .map(|&(_, f)| neighbours(self, &self.points[f].genome))
                .collect();
            for (&(seen, f), kinds) in chunk.iter().zip(found) {
                if batch.len() >= n {
                    break;
                }
                let kinds = kinds.map(|k| {
                    k.into_iter()
                        .filter(|nb| !self.cache.contains_key(nb))
                        .collect()
                });
                let k = refine_sample(self.points[f].genome.units.len());
                let (promising, rest) = self.screened(&self.points[f].genome, kinds);
                let (fresh, left) = screened_sample(&mut self.rng, promising, rest, k);
                visits.insert(f, if left { seen + 1 } else { u32::MAX });
                batch.extend(fresh);
            }
        }
        batch
    }

    /// `kinds` split into the neighbours whose estimated objectives ([`Screen`]) those of
    /// `member` do not dominate and the others.
    fn screened(
        &self,
        member: &Genome,
        kinds: [Vec<Genome>; 3],
    ) -> ([Vec<Genome>; 3], [Vec<Genome>; 3]) {
        let own = self.screen.estimate(&self.times, member);
        let split = |kind: Vec<Genome>| -> (Vec<Genome>, Vec<Genome>) {
            let estimate = |nb: &Genome| self.screen.estimate(&self.times, nb);
            (kind.into_iter()).partition(|nb| !dominates(&own, &estimate(nb)))
        };
        let [a, b, c] = kinds.map(split);
        ([a.0, b.0, c.0], [a.1, b.1, c.1])
    }

    /// One NSGA-II generation of `n` offspring: binary tournaments on (rank, crowding),
    /// crossover, mutation, acting on the cut structure mostly in the partitioning stage,
    /// on the units mostly afterwards, and there on the cores of CPU segments mostly in the
    /// core allocation stage.
    fn generation(&mut self, pop: &Population, n: usize, stage: Stage) -> Vec<Genome> {
        let structural = if stage == Stage::Partitioning {
            STRUCTURAL_RATE_PARTITIONING
        } else {
            STRUCTURAL_RATE_LATER
        };
        let mut batch = Vec::with_capacity(n);
        for _ in 0..n {
            let pa = tournament(&mut self.rng, pop);
            let pb = tournament(&mut self.rng, pop);
            let (ga, gb) = (
                self.points[pa].genome.clone(),
                self.points[pb].genome.clone(),
            );
            let structure = self.rng.next_f64() < structural;
            let child = if self.rng.next_f64() < CROSSOVER_RATE {
                if structure {
                    self.crossover_structure(&ga, &gb)
                } else {
                    self.crossover_units(&ga, &gb)
                }
            } else {
                ga
            };
            // no core draw without core sets
            let cores =
                !structure && self.space.has_core_sets() && self.rng.next_f64() < core_rate(stage);
            let select = !structure
                && !cores
                && self.selects()
                && self.rng.next_f64() < selection_rate(stage);
            batch.push(if structure {
                self.mutate_structure(&child)
            } else if select {
                self.mutate_selection(&child)
            } else if cores {
                self.mutate_cores(&child)
            } else {
                self.mutate_units(&child)
            });
        }
        batch
    }

    /// The feasible front, sorted; an error when nothing evaluated fits the devices.
    pub(crate) fn feasible_front(&self, space_size: SpaceSize) -> Result<Vec<Point>, SimError> {
        let mut front: Vec<Point> = self
            .archive
            .iter()
            .map(|&i| self.points[i].clone())
            .collect();
        sort_front(&mut front);
        if !front.is_empty() {
            return Ok(front);
        }
        let least = self
            .points
            .iter()
            .map(|p| p.violation)
            .fold(f64::INFINITY, f64::min);
        Err(SimError::Mapping(format!(
            "no feasible mapping: all {} mappings evaluated (space of {} mappings) exceed a \
             device's memory (smallest overrun {:.1}% of a device's memory)",
            self.spent(),
            space_size,
            least * 100.0
        )))
    }
}

/// The order of refinement's visits to the members `front` (ascending point indices) of
/// sampled exclusive hypervolumes `hv`: least visited first, then the largest
/// contribution, then the latest found (most members of a large front get no sample: the
/// newest are where the search is making progress); with each member's visit count.
/// Members with nothing left to try (`u32::MAX` visits) are left out.
fn visit_order(front: &[usize], hv: &[u32], visits: &HashMap<usize, u32>) -> Vec<(u32, usize)> {
    let mut order: Vec<(u32, u32, usize)> = (front.iter().zip(hv))
        .map(|(&f, &c)| (visits.get(&f).copied().unwrap_or(0), c, f))
        .filter(|v| v.0 != u32::MAX)
        .collect();
    order.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    order.into_iter().map(|(seen, _, f)| (seen, f)).collect()
}

/// At most `k` of `kinds`, taken out of them (each kind shuffled, then one of each taken
/// in turn, so that a kind of few moves is sampled as often as one of many).
fn take_kinds(rng: &mut Rng, kinds: &mut [Vec<Genome>; 3], k: usize) -> Vec<Genome> {
    let total: usize = kinds.iter().map(Vec::len).sum();
    for kind in kinds.iter_mut() {
        rng.shuffle(kind);
    }
    let mut out = Vec::with_capacity(total.min(k));
    while out.len() < total.min(k) {
        for kind in kinds.iter_mut() {
            if out.len() < k {
                out.extend(kind.pop());
            }
        }
    }
    out
}

/// A visit's sample of at most `k` neighbours: up to half of it (rounded up) from the
/// `promising` ones ([`Search::screened`]), the rest from all the neighbours still left,
/// promising or not (the estimate misses what contention, parallel branches and
/// activations do), each part taken as [`take_kinds`] does; and whether some were left
/// out.
fn screened_sample(
    rng: &mut Rng,
    mut promising: [Vec<Genome>; 3],
    mut rest: [Vec<Genome>; 3],
    k: usize,
) -> (Vec<Genome>, bool) {
    let mut out = take_kinds(rng, &mut promising, k.div_ceil(2));
    for (kind, more) in rest.iter_mut().zip(promising) {
        kind.extend(more);
    }
    out.extend(take_kinds(rng, &mut rest, k - out.len()));
    (out, rest.iter().any(|kind| !kind.is_empty()))
}

/// The most neighbours a refinement visit evaluates for a member of `segments` segments:
/// [`REFINE_SAMPLE`], smaller with the square of the segments beyond
/// [`REFINE_FULL_SAMPLE_SEGMENTS`] (at least [`REFINE_SAMPLE_MIN`]): a mapping takes about
/// the square of its segments to simulate (its saturated run has frames in proportion to
/// its segments), so that a visit to a long pipeline costs about as much as one to a short
/// one.
fn refine_sample(segments: usize) -> usize {
    if segments <= REFINE_FULL_SAMPLE_SEGMENTS {
        return REFINE_SAMPLE;
    }
    let full = REFINE_FULL_SAMPLE_SEGMENTS * REFINE_FULL_SAMPLE_SEGMENTS;
    (REFINE_SAMPLE * full / (segments * segments)).max(REFINE_SAMPLE_MIN)
}

/// Probability that a unit variation of `stage` is a unit-selection move.
fn selection_rate(stage: Stage) -> f64 {
    if stage == Stage::Selection {
        SELECTION_RATE_STAGE
    } else {
        SELECTION_RATE_LATER
    }
}

/// Probability that a unit variation of `stage` allocates cores (with core sets).
fn core_rate(stage: Stage) -> f64 {
    match stage {
        Stage::CoreAllocation => CORE_RATE_ALLOCATION,
        Stage::Refinement => CORE_RATE_REFINEMENT,
        _ => 0.0,
    }
}

/// A strategy of [`crate::strategy`] as the baselines call it.
type StrategyFn =
    fn(&PreparedScenario, &[usize]) -> Result<dicesim_plan::mapping::Mapping, SimError>;

/// Ordered pairs of distinct units, with each one's position in `units`.
fn ordered_pairs(units: &[usize]) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    for (ra, &a) in units.iter().enumerate() {
        for (rb, &b) in units.iter().enumerate() {
            if a != b {
                out.push((a, b, ra, rb));
            }
        }
    }
    out
}

/// Every cut in `cuts` times every pair in `pairs`, cuts outermost.
fn two_way(cuts: &[u32], pairs: &[(usize, usize, usize, usize)]) -> Vec<Genome> {
    let mut out = Vec::with_capacity(cuts.len() * pairs.len());
    for &c in cuts {
        for &(a, b, _, _) in pairs {
            out.push(Genome {
                cuts: vec![c],
                units: vec![a as u16, b as u16],
            });
        }
    }
    out
}

/// At most `n` elements of `v`, evenly spaced.
fn spread(v: &[u32], n: usize) -> Vec<u32> {
    let k = n.min(v.len());
    (0..k).map(|i| v[i * v.len() / k]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genomes(tag: u16, n: usize) -> Vec<Genome> {
        (0..n)
            .map(|i| Genome {
                cuts: vec![i as u32 + 1],
                units: vec![tag, tag + 1],
            })
            .collect()
    }

    #[test]
    fn a_sample_takes_as_many_of_a_small_kind_as_of_a_large_one() {
        let mut rng = Rng::new(3);
        let mut kinds = [genomes(0, 100), genomes(10, 2), genomes(20, 30)];
        let out = take_kinds(&mut rng, &mut kinds, 12);
        assert_eq!(kinds.iter().map(Vec::len).sum::<usize>(), 132 - 12);
        let of = |tag: u16| out.iter().filter(|g| g.units[0] == tag).count();
        assert_eq!((of(0), of(10), of(20)), (5, 2, 5));
        let mut unique = out.clone();
        unique.sort_by(|a, b| (&a.units, &a.cuts).cmp(&(&b.units, &b.cuts)));
        unique.dedup();
        assert_eq!(unique.len(), 12, "no genome taken twice");
    }

    #[test]
    fn visits_go_to_the_least_visited_then_the_largest_contribution_then_the_newest() {
        let front = [3, 8, 10, 20, 42];
        let hv = [0, 5, 9, 0, 9];
        let visits = HashMap::from([(10, 1), (8, 0), (42, u32::MAX)]);
        let order = visit_order(&front, &hv, &visits);
        assert_eq!(order, vec![(0, 8), (0, 20), (0, 3), (1, 10)]);
    }

    #[test]
    fn long_members_get_samples_smaller_with_the_square_of_their_segments() {
        assert_eq!(refine_sample(1), REFINE_SAMPLE);
        assert_eq!(refine_sample(REFINE_FULL_SAMPLE_SEGMENTS), REFINE_SAMPLE);
        // a visit to a member of twice the segments costs about as much: a quarter of
        // the neighbours, each four times as long to simulate
        assert_eq!(
            refine_sample(2 * REFINE_FULL_SAMPLE_SEGMENTS),
            REFINE_SAMPLE / 4
        );
        assert_eq!(refine_sample(1000), REFINE_SAMPLE_MIN);
    }

    #[test]
    fn a_sample_of_few_neighbours_takes_them_all() {
        let mut rng = Rng::new(3);
        let kinds = [genomes(0, 3), Vec::new(), genomes(20, 4)];
        let (out, left) = screened_sample(&mut rng, kinds, Default::default(), 12);
        assert!(!left);
        assert_eq!(out.len(), 7);
    }

    #[test]
    fn half_a_sample_is_promising_the_rest_drawn_from_all_that_is_left() {
        let mut rng = Rng::new(5);
        let promising = [genomes(0, 10), genomes(10, 10), Vec::new()];
        let rest = [genomes(20, 40), Vec::new(), Vec::new()];
        let (out, left) = screened_sample(&mut rng, promising, rest, 9);
        assert!(left);
        assert_eq!(out.len(), 9);
        let from_promising = |g: &&Genome| g.units[0] < 20;
        // the first five from the promising ones; the last four from all that is left
        assert!(out[..5].iter().all(|g| from_promising(&g)));
        // few promising ones: all of them first, then the others
        let few = [genomes(0, 2), Vec::new(), Vec::new()];
        let rest = [genomes(20, 40), Vec::new(), Vec::new()];
        let (out, _) = screened_sample(&mut rng, few, rest, 9);
        assert_eq!(out.len(), 9);
        assert!(out[..2].iter().all(|g| from_promising(&g)));
        assert!(!out[2..].iter().any(|g| from_promising(&g)));
        // promising ones alone, when they fill the sample
        let many = [genomes(0, 30), Vec::new(), Vec::new()];
        let (out, left) = screened_sample(&mut rng, many, Default::default(), 4);
        assert!(left);
        assert_eq!(out.len(), 4);
    }
}
