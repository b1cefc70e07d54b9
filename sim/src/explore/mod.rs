//! `dicesim explore`: multi-stage, multi-objective search over mappings (NSGA-II with
//! constraint domination), driven by the fast evaluator ([`PreparedScenario`](crate::prepared::PreparedScenario)).
//!
//! # Objectives and constraint
//!
//! Four objectives, all minimised internally, each from a run made for it
//! ([`PreparedScenario::objectives`](crate::prepared::PreparedScenario::objectives)), so that
//! none depends on the scenario's frame count:
//! - **latency** [ms]: one frame through the otherwise idle plan when the workload saturates
//!   (`period_ms = 0`); with an offered rate (`period_ms > 0`), the median latency of the
//!   scenario's workload at that rate;
//! - **throughput** [fps] (maximised: minimised as its negative): the saturated rate, frames
//!   offered back to back under the scenario's window, measured in steady state;
//! - **energy** per frame [mJ]: at saturation, or at the offered rate;
//! - **memory**: the largest need of any device [MiB].
//!
//! A mapping whose memory need exceeds a device's memory, or that cannot sustain the offered
//! rate (`overload`), is infeasible; constraint domination (Deb): a feasible mapping beats
//! an infeasible one, two infeasible ones compare by their total violation (relative memory
//! overruns + the share of the offered rate missed), two feasible ones by Pareto dominance.
//! The returned front holds only feasible mappings.
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
//! **Core sets** (on by default, [`ExploreOptions::core_sets`], `--no-core-sets` off): every
//! allowed CPU unit of `c > 1` cores adds its aligned blocks of `c/2`, `c/3` and `c/4`
//! cores where they divide `c` ([`cores::blocks`]: 4 cores give `[0-1]`, `[2-3]`, `[0]` ..
//! `[3]`; 6 cores `[0-2]`, `[3-5]`, `[0-1]`, `[2-3]`, `[4-5]`) to the units, each a unit of
//! its own with fewer threads; neighbouring segments on disjoint core sets of one CPU run
//! at the same time (a pipeline inside the device), on overlapping ones in turns. `U` then
//! counts the core sets too, and `K` = the whole units + for each CPU the segments beyond
//! one it can run at once (3 for a 4-core CPU), so the formula above (and the enumeration)
//! still describe the space. Without core sets no core set enters the search: no core
//! allocation move, draw or seed.
//!
//! Cut points are not all alike: a cut inside a residual block or Inception module sends
//! several tensors (the branch and the skip). For every position the number of tensors
//! crossing it is counted; the **clean** cut points are those with the fewest crossing
//! tensors (the minimum over the graph, one more when that leaves fewer than 4).
//!
//! # Stages (one budget)
//!
//! Random unit draws are among the whole units only, so stages 1 and 3 search as without
//! core sets; core sets come in through stage 4, the first population (half of its random
//! mappings get one core allocation move), unit selection's pipelines inside a CPU,
//! crossover and refinement.
//!
//! 1. **Partitioning** (first 20% of the budget, [`tuning::PARTITIONING_END_PCT`]): NSGA-II whose variation acts mostly on the
//!    cut structure: add a cut (85% at a clean point), remove one, move one to another clean
//!    point, paint a range between two clean points with another unit (offloading a block:
//!    `A-B-A`), one-point crossover at a clean point. The initial population is random
//!    structures plus every baseline (below), so the front dominates or equals each baseline
//!    by construction.
//! 2. **Unit selection** (up to 30%, [`tuning::SELECTION_END_PCT`]): the same NSGA-II,
//!    unit variation mostly ([`tuning::SELECTION_RATE_STAGE`]; elsewhere
//!    [`tuning::SELECTION_RATE_LATER`]) deciding which units are used at all and their
//!    shares of the layers, from estimated stage times (compute per unit, transfers at the
//!    route's narrowest link): the longest segment shares its layers with a fast unused
//!    unit or with a disjoint core set, the slowest unit leaves or is replaced by a faster
//!    unused one, the cuts are balanced (see [`selection`]). The first population also holds
//!    balanced pipelines over the k fastest and the k most frugal units and over the core
//!    sets of the fastest devices, and, for the single-frame latency of models with
//!    parallel branches (a detector's heads), the fastest units with each layer on the
//!    unit of their device that runs it fastest (when that saves at least 0.2% of the
//!    whole model's time), alone and with a branch (a range the next
//!    layer does not read from) on another fast unit (`branch.rs`, at most 5% of the
//!    budget), and each of these seeds interleaved (`interleave.rs`): each device's
//!    layers spread over a group of its units that run at once (the GPU with the whole CPU
//!    or with the CPU's core blocks of one size), each layer where it relieves the busiest
//!    unit most, so that the CPU takes the layers it is relatively good at wherever they
//!    are; a seed of several devices gets every device so spread at once, each over its
//!    `k`-th group, and, for the same `k`, its **frugal** version: each device's layers
//!    moved one at a time to the unit of the group that spends the least busy energy on
//!    them (estimated time times the unit's busy power), as long as no unit's estimated
//!    load passes the seed's busiest (the same throughput for less energy). Many
//!    segments: the low-energy, high-throughput corner of a large platform, pipelines of
//!    several boards, each a pipeline of its GPU and CPU cores. (Each device spread alone
//!    is left to refinement's moves: a seed of many devices has many such variants, each a
//!    long pipeline, slow to simulate.)
//! 3. **Placement** (up to 45%, [`tuning::PLACEMENT_END_PCT`]; 40% with core sets,
//!    [`tuning::PLACEMENT_END_CORES_PCT`]): the same NSGA-II, variation mostly on the units
//!    of fixed segments: change one segment's unit, swap two segments' units, swap cpu/gpu
//!    on a device, uniform crossover of the unit lists.
//! 4. **Core allocation** (with core sets only, up to 60%,
//!    [`tuning::CORE_ALLOCATION_END_PCT`]): the same NSGA-II, unit variation mostly
//!    ([`tuning::CORE_RATE_ALLOCATION`]) on a segment running on a CPU: move it to another
//!    core set of the CPU or back to the whole CPU (its core count), split it in two at a
//!    (mostly clean) cut onto two disjoint core sets (a two-stage pipeline inside the CPU),
//!    or put a neighbouring segment on the cores it leaves free.
//! 5. **Refinement** (the rest): local search around the current front. A member's
//!    neighbours are of three kinds: *boundary moves* (a boundary by 1 to 3 layers, to any
//!    clean point, an inner segment shifted by 1 to 3 layers), *unit moves* (two
//!    partitions' units swapped, one partition on each other whole unit, on each core set
//!    of its CPU, on each other unit of its device) and *moves within a device* (its first
//!    or last layer on another unit of its device: a layer its GPU is slow at, handed to
//!    the CPU beside it; or the partition cut where its halves take about the same
//!    estimated time, one half on another unit of its device: a pipeline of the GPU and CPU
//!    cores of one board; or a device's layers, or every device's, interleaved over its
//!    units, or made frugal, as the seeds of stage 2 are). A visit evaluates a sample of
//!    at most [`tuning::REFINE_SAMPLE`] untried neighbours, smaller with the square of the
//!    segments for a member of more than [`tuning::REFINE_FULL_SAMPLE_SEGMENTS`] segments
//!    (at least [`tuning::REFINE_SAMPLE_MIN`]): a saturated run has frames in proportion
//!    to the segments, so a mapping takes about the square of its segments to simulate,
//!    and a visit costs about the same whatever the member's length. Half of the sample
//!    (rounded up) comes from the neighbours whose estimated objectives the member's
//!    estimate does not dominate (`screen.rs`: segment times, transfers, busy and idle
//!    power, weights per device, in microseconds where a simulation takes milliseconds;
//!    the others are likely dominated by the member), the rest from all those left (the
//!    estimate misses contention, parallel branches and activations: a search that only
//!    believed it did worse on yolov3_tiny); each part is taken from the kinds in turn
//!    (the few within-device moves are drawn as often as the many unit moves). Members
//!    visited least often go first, and among those the ones that alone dominate the most
//!    (exclusive hypervolume, estimated from [`tuning::CONTRIBUTION_SAMPLES`] random
//!    points, afresh for every batch: [`hv::sampled_contributions`]), then the newest: the
//!    corners of the front and the edges of its gaps, where a better neighbour adds the
//!    most volume, and where the search last made progress. A member is visited again
//!    while it has untried neighbours; when no member has any, NSGA-II generations resume
//!    (with core sets, a share [`tuning::CORE_RATE_REFINEMENT`] of their unit variation
//!    allocates cores).
//!
//! In every NSGA-II generation the population is the best `n` of parents and offspring by
//! rank; the last rank that fits only in part keeps its members of the largest estimated
//! exclusive hypervolume (ties: crowding distance). With four objectives and fronts of
//! hundreds, crowding distance alone keeps members beside one wide gap over those that
//! alone dominate a large region (SMS-EMOA's criterion, estimated instead of computed:
//! exact contributions cost a hypervolume per member).
//!
//! 6. **Horizontal splits** (`--horizontal` only: [`tuning::HORIZONTAL_PCT`] of the budget,
//!    at most [`tuning::HORIZONTAL_MAX`] evaluations, taken from the stages above): from the
//!    lowest-latency mapping of the front, fused spatial tiles over runs of layers and
//!    output-channel splits of heavy layers, each over the fastest units, by hill climbing
//!    after a DeepThings baseline (see [`horizontal`]). Its results are reported beside the
//!    front (`horizontal.csv`), not merged into it.
//!
//! A stage that evaluates nothing new for [`tuning::STALL_GENERATIONS`] generations ends
//! the search; with core sets it first hands over to core allocation, then to refinement
//! (one CPU alone has a single whole-unit mapping, all its other mappings use core sets).
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
//! (Neurosurgeon style), the best by latency (ties: energy) among those that fit; when every
//! cut times every pair is more than [`tuning::BASELINE_SHARE_PCT`] of the budget, a sample of
//! that size (cut points spread over the clean ones, pairs among the fastest units first).
//! They use whole units only (core sets or not, the same baselines).
//! All of them are in the encoding space and are evaluated (and counted) before the search;
//! with the single-unit mappings they use about a fifth of the budget plus one evaluation
//! per unit, so `--budget` holds on any platform (it is exceeded only when the units alone
//! outnumber it).
//!
//! # Exhaustive comparison
//!
//! When the space has at most [`ExploreOptions::exhaustive_limit`] mappings (default one
//! million) it is enumerated in full and the ratio of the found front's hypervolume to the
//! exhaustive front's is reported, both normalised with the bounds of their union
//! (see [`hv`]).

mod branch;
pub mod cores;
mod enumerate;
mod genome;
pub mod horizontal;
pub mod hv;
mod interleave;
mod nsga;
pub mod output;
mod screen;
mod search;
pub mod selection;
mod variation;

pub use genome::{Genome, Space, SpaceSize};
pub use nsga::dominates;

use crate::error::SimError;
use crate::scenario::Scenario;
use crate::strategy;

use hv::Bounds;
use search::Search;

/// The search's tuning numbers, named so that the docs and the code say the same thing.
pub mod tuning {
    /// Stage 1 (partitioning) runs until this share of the budget is spent [%].
    pub const PARTITIONING_END_PCT: u64 = 20;
    /// Stage 2 (unit selection) runs until this share of the budget is spent [%].
    pub const SELECTION_END_PCT: u64 = 30;
    /// Probability that a unit variation is a unit-selection move (grow, drop, swap in,
    /// balance: [`super::selection`]) in the unit selection stage...
    pub const SELECTION_RATE_STAGE: f64 = 0.8;
    /// ...and in the other stages.
    pub const SELECTION_RATE_LATER: f64 = 0.1;
    /// Unit selection runs (stage and moves) on spaces of at least this many whole units;
    /// on fewer, choosing units is what placement does anyway.
    pub const SELECTION_MIN_UNITS: usize = 2;
    /// Stage 2 (placement) runs until this share of the budget is spent [%] (without core
    /// allocation).
    pub const PLACEMENT_END_PCT: u64 = 45;
    /// With core allocation, stage 2 (placement) ends here [%]...
    pub const PLACEMENT_END_CORES_PCT: u64 = 40;
    /// ...and stage 3 (core allocation) here [%].
    pub const CORE_ALLOCATION_END_PCT: u64 = 60;
    /// With core allocation, the share of the random first population whose cores are
    /// allocated once (see `CORE_RATE_ALLOCATION`).
    pub const CORE_RATE_INITIAL: f64 = 0.5;
    /// Probability that a unit variation allocates cores (resize, split, pair with a
    /// neighbour) in the core allocation stage...
    pub const CORE_RATE_ALLOCATION: f64 = 0.8;
    /// ...and in the NSGA-II generations of refinement (0 in placement).
    pub const CORE_RATE_REFINEMENT: f64 = 0.3;
    /// Core sets tried on a CPU: aligned blocks of `cores / k` cores for `k` = 2 up to this
    /// (where `k` divides the core count), so a CPU runs at most this many segments at once.
    pub const MAX_CPU_STAGES: u32 = 4;
    /// Probability that an offspring is the crossover of its two parents (else a copy of the
    /// first), before mutation.
    pub const CROSSOVER_RATE: f64 = 0.7;
    /// Probability that variation acts on the cut structure (else on the units) in stage 1.
    pub const STRUCTURAL_RATE_PARTITIONING: f64 = 0.8;
    /// The same in stages 2 and 3.
    pub const STRUCTURAL_RATE_LATER: f64 = 0.25;
    /// Probability that a new cut is drawn among the clean cut points (else any position).
    pub const CLEAN_BIAS: f64 = 0.85;
    /// Without `--population`: the budget divided by this, clamped to
    /// [`POPULATION_MIN`]..=[`POPULATION_MAX`].
    pub const BUDGET_PER_INDIVIDUAL: u64 = 80;
    /// Smallest automatic population.
    pub const POPULATION_MIN: u64 = 12;
    /// Largest automatic population.
    pub const POPULATION_MAX: u64 = 100;
    /// The search stops after this many generations in a row that evaluated nothing new.
    pub const STALL_GENERATIONS: u32 = 50;
    /// Refinement moves a boundary or shifts a segment by at most this many layers.
    pub const MAX_SHIFT: i64 = 3;
    /// Most neighbours of one front member evaluated per refinement visit (a sample; a
    /// member is visited again while it has unevaluated neighbours).
    pub const REFINE_SAMPLE: usize = 48;
    /// A member of more segments than this gets a refinement sample smaller with the
    /// square of its segments (a pipeline of twice the segments takes about four times as
    /// long to simulate)...
    pub const REFINE_FULL_SAMPLE_SEGMENTS: usize = 12;
    /// ...of at least this many neighbours.
    pub const REFINE_SAMPLE_MIN: usize = 4;
    /// Samples of the Monte Carlo estimate of each front member's exclusive hypervolume
    /// ([`super::hv::sampled_contributions`]), which orders refinement's visits and
    /// NSGA-II's choice among the members of the last rank that fits the population only
    /// in part.
    pub const CONTRIBUTION_SAMPLES: usize = 4096;
    /// Progress is reported about this many times over the budget...
    pub const PROGRESS_REPORTS: u64 = 50;
    /// ...each time the evaluation count passes a multiple of budget / PROGRESS_REPORTS
    /// by less than this (a batch may step over the multiple itself).
    pub const PROGRESS_SLACK: u64 = 64;
    /// With `--horizontal`, the horizontal stage's share of the budget [%]...
    pub const HORIZONTAL_PCT: u64 = 20;
    /// ...and its largest number of evaluations (each rewrites and analyses the model).
    pub const HORIZONTAL_MAX: u64 = 2000;
    /// The `2way` baseline uses at most this share of the budget [%] (sampled beyond).
    pub const BASELINE_SHARE_PCT: u64 = 20;
    /// Exhaustive enumeration evaluates this many mappings per parallel chunk.
    pub const ENUMERATION_CHUNK: usize = 8192;
}

/// A stage of the search (ordered as they run).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// NSGA-II with variation mostly on the cuts.
    Partitioning,
    /// NSGA-II with variation mostly on which units are used and their shares of layers.
    Selection,
    /// NSGA-II with variation mostly on the units of the segments.
    Placement,
    /// NSGA-II with variation mostly on the cores of CPU segments (core sets on).
    CoreAllocation,
    /// Local search around the front, then NSGA-II again.
    Refinement,
    /// Enumeration of the whole space (small spaces only, after the search).
    Exhaustive,
}

impl Stage {
    /// The stage in which the evaluation after `spent` of `budget` falls (`cores`: the
    /// space allocates cores; `select`: it has enough units for a unit selection stage,
    /// else that share of the budget goes to placement).
    fn at(spent: u64, budget: u64, cores: bool, select: bool) -> Stage {
        let pct = |p: u64| budget * p / 100;
        if spent < pct(tuning::PARTITIONING_END_PCT) {
            Stage::Partitioning
        } else if select && spent < pct(tuning::SELECTION_END_PCT) {
            Stage::Selection
        } else if !cores && spent < pct(tuning::PLACEMENT_END_PCT) {
            Stage::Placement
        } else if !cores {
            Stage::Refinement
        } else if spent < pct(tuning::PLACEMENT_END_CORES_PCT) {
            Stage::Placement
        } else if spent < pct(tuning::CORE_ALLOCATION_END_PCT) {
            Stage::CoreAllocation
        } else {
            Stage::Refinement
        }
    }

    /// With core allocation, the stage a search stalled in `self` moves on to (so that a
    /// space whose whole units allow few mappings still reaches its core sets); `None`:
    /// the search ends.
    fn after_stall(self, cores: bool) -> Option<Stage> {
        match self {
            _ if !cores => None,
            Stage::Partitioning | Stage::Selection | Stage::Placement => {
                Some(Stage::CoreAllocation)
            }
            Stage::CoreAllocation => Some(Stage::Refinement),
            Stage::Refinement | Stage::Exhaustive => None,
        }
    }

    /// 1 to 6 in the order they run, as progress output prints it.
    pub fn number(self) -> u8 {
        match self {
            Stage::Partitioning => 1,
            Stage::Selection => 2,
            Stage::Placement => 3,
            Stage::CoreAllocation => 4,
            Stage::Refinement => 5,
            Stage::Exhaustive => 6,
        }
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
    /// Sum over devices of the relative memory overrun, plus the share of an offered rate
    /// the plan cannot sustain (0 when it fits and keeps up).
    pub violation: f64,
    /// Share of the offered rate (`period_ms > 0`) the plan cannot sustain (0: it keeps up).
    pub overload: f64,
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
    /// Search the core allocation: add the core sets of every allowed CPU (see
    /// [`cores::blocks`]) to the space (false: whole units only, as before core sets).
    pub core_sets: bool,
    /// Run the horizontal stage ([`horizontal`]) with [`tuning::HORIZONTAL_PCT`] of the
    /// budget (at most [`tuning::HORIZONTAL_MAX`]), the vertical stages with the rest.
    pub horizontal: bool,
}

impl Default for ExploreOptions {
    fn default() -> Self {
        ExploreOptions {
            budget: 5000,
            seed: 1,
            population: 0,
            exhaustive_limit: 1_000_000,
            core_sets: true,
            horizontal: false,
        }
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
    /// Stage.
    pub stage: Stage,
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
    /// Size of the encoding space.
    pub space_size: SpaceSize,
    /// Hypervolume of the front, normalised by the bounds of the front and the feasible
    /// baselines.
    pub hypervolume: f64,
    /// Present when the space was small enough to enumerate.
    pub exhaustive: Option<Exhaustive>,
    /// Units of the space: the allowed units, then the core sets the search added.
    pub units: Vec<usize>,
    /// How many of `units` are core sets the search added (0 without core allocation).
    pub core_set_units: usize,
    /// Full name of every platform unit index a [`Point`] may hold (`dev.cpu[0-1]` for a
    /// core set): the platform the search ran on.
    pub unit_names: Vec<String>,
    /// The horizontal stage's result (with [`ExploreOptions::horizontal`]).
    pub horizontal: Option<horizontal::HorizontalResult>,
}

/// Which platform units the search may use: the scenario's `mapping.units`, or all.
pub fn search_units(sc: &Scenario) -> Result<Vec<usize>, SimError> {
    strategy::allowed_units(&sc.prep, sc.units.as_deref())
}

/// Hands progress to the caller's callback, with hypervolumes normalised by the bounds of
/// the initial population's front.
pub(crate) struct Reporter<'p> {
    callback: Option<&'p mut dyn FnMut(Progress)>,
    bounds: Option<Bounds>,
}

impl Reporter<'_> {
    /// Reports the search's state (always with `force`, else about
    /// [`tuning::PROGRESS_REPORTS`] times per run).
    pub(crate) fn report(&mut self, s: &Search, stage: Stage, force: bool) {
        let Some(cb) = self.callback.as_mut() else {
            return;
        };
        let every = (s.budget / tuning::PROGRESS_REPORTS).max(1);
        if force || s.spent() % every < tuning::PROGRESS_SLACK {
            let hv = self
                .bounds
                .map_or(0.0, |b| b.hypervolume(s.front_points().iter()));
            cb(Progress {
                evaluations: s.spent(),
                budget: s.budget,
                stage,
                front: s.archive.len(),
                hypervolume: hv,
            });
        }
    }

    /// Reports enumeration progress: `done` of `total` mappings.
    fn enumerated(&mut self, done: u64, total: SpaceSize) {
        if let Some(cb) = self.callback.as_mut() {
            cb(Progress {
                evaluations: done,
                budget: total.as_u64().unwrap_or(u64::MAX),
                stage: Stage::Exhaustive,
                front: 0,
                hypervolume: 0.0,
            });
        }
    }
}

/// Population size: `opts.population`, or one from the budget.
fn population_size(opts: &ExploreOptions) -> usize {
    if opts.population > 0 {
        return opts.population;
    }
    (opts.budget / tuning::BUDGET_PER_INDIVIDUAL)
        .clamp(tuning::POPULATION_MIN, tuning::POPULATION_MAX) as usize
}

/// Runs the search on a loaded scenario.
pub fn explore(
    sc: &Scenario,
    opts: ExploreOptions,
    progress: Option<&mut dyn FnMut(Progress)>,
) -> Result<ExploreResult, SimError> {
    let units = search_units(sc)?;
    if units.is_empty() || sc.prep.graph.layers.is_empty() {
        return Err(SimError::EmptySearchSpace { what: "explore" });
    }
    let extended = opts
        .core_sets
        .then(|| cores::extend(&sc.prep, &units))
        .flatten();
    let (prep, space) = match &extended {
        Some((ext, all)) => (ext, Space::with_core_sets(ext, all.clone())),
        None => (&sc.prep, Space::new(&sc.prep, units.clone())),
    };
    let robust = crate::adapt::Robust::attach(sc, prep, &units);
    let prep = robust.as_ref().unwrap_or(prep);
    let space_size = space.size();
    let space_units = space.units.clone();
    let h_budget = horizontal_budget(&opts);
    let mut s = Search::new(prep, space, opts.budget - h_budget, opts.seed);
    let mut reporter = Reporter {
        callback: progress,
        bounds: None,
    };
    let baselines = s.baselines(&units)?;
    let n = population_size(&opts);
    let pop = s.initial_population(n);
    reporter.bounds = Bounds::of(s.front_points().iter());
    reporter.report(&s, Stage::Partitioning, true);
    s.evolve(pop, n, &mut reporter);
    reporter.report(&s, Stage::Refinement, true);
    let front = s.feasible_front(space_size)?;
    let core_set_units = space_units.len() - units.len();
    let hypervolume = front_hypervolume(&front, &baselines);
    let exhaustive =
        (opts.exhaustive_limit > 0 && space_size.at_most(opts.exhaustive_limit)).then(|| {
            let mut cb = |e: u64| reporter.enumerated(e, space_size);
            enumerate::enumerate(prep, &s.space, &front, &mut cb)
        });
    let unit_names = prep.platform.unit_names();
    let horizontal = (h_budget > 0)
        .then(|| horizontal::search(sc, &units, &front, &unit_names, h_budget))
        .transpose()?;
    Ok(ExploreResult {
        front,
        baselines,
        evaluations: s.spent(),
        cache_hits: s.cache_hits,
        space_size,
        hypervolume,
        exhaustive,
        units: space_units,
        core_set_units,
        unit_names,
        horizontal,
    })
}

/// The horizontal stage's evaluations out of the budget (0 without it).
fn horizontal_budget(opts: &ExploreOptions) -> u64 {
    if !opts.horizontal {
        return 0;
    }
    (opts.budget * tuning::HORIZONTAL_PCT / 100).min(tuning::HORIZONTAL_MAX)
}

/// Hypervolume of the front, normalised by the bounds of the front and the feasible
/// baselines.
fn front_hypervolume(front: &[Point], baselines: &[Baseline]) -> f64 {
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
    bounds.hypervolume(front.iter().map(|p| &p.obj))
}
