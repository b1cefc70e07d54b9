//! Unit selection: which units a mapping uses at all. On a platform of many boards most
//! units belong in no good mapping (a slow board at the end of a pipeline sets its rate;
//! every extra board adds a hop and idle power), and the best pipelines use the fast units,
//! each with a share of the layers it runs in about the same time as the others. Random
//! unit draws rarely find such pipelines among 16 or 32 boards, so this stage decides which
//! units to use and balances the layers among them, from the prepared per-layer times
//! ([`SegmentTimes`]; transfers are left to the simulator that scores the result):
//!
//! - **grow**: the segment that takes longest gets a fast unused unit, which takes the share
//!   of its layers that balances the two, or, on a CPU, is split at that share onto two
//!   disjoint core sets (a pipeline inside the CPU);
//! - **drop**: the slowest unit used leaves, its layers go to the others;
//! - **swap in**: the slowest unit used is replaced by a faster unused one;
//! - **balance**: the cuts of a pipeline (each unit once) move so that its segments take
//!   about the same time, or, with a unit used twice, the cut between the longest segment
//!   and a neighbour does.
//!
//! The first population also gets balanced pipelines over the `k` fastest units, and over
//! the `k` units that spend the least busy energy on the whole model, for `k` = 1, 2, 3, 4,
//! 6, 9, 13, ... (about 1.5 times each step) up to the segment limit
//! ([`Search::selection_seeds`]).

use super::search::Search;
use super::Genome;
use crate::prepared::PreparedScenario;

/// Estimated stage times of a pipeline: the compute time of any layer range on any unit
/// (prefix sums of the prepared layer times plus the unit's run overhead) and the time to
/// send what crosses a cut between two units (the bytes of the tensors crossing it at the
/// route's narrowest link, plus its latency; nothing within one device). A pipeline runs at
/// the rate of its slowest stage, compute or transfer; contention is left to the simulator.
#[derive(Debug, Clone)]
pub(crate) struct SegmentTimes {
    /// `prefix[u][l]`: time of layers `0..l` on unit `u` [ns].
    prefix: Vec<Vec<u64>>,
    /// Run overhead of unit `u` [ns].
    overhead: Vec<u64>,
    /// `cross[c]`: bytes of the tensors produced before layer `c` and used from it on.
    cross: Vec<u64>,
    /// Device of each unit.
    device: Vec<usize>,
    /// Power of each unit above idle while busy [W].
    busy_w: Vec<f64>,
    /// `route[a][b]`: (bytes/ns at the narrowest link, latency [ns]) from device `a` to `b`
    /// (`None`: no route).
    route: Vec<Vec<Option<(f64, u64)>>>,
}

impl SegmentTimes {
    pub(crate) fn new(prep: &PreparedScenario) -> SegmentTimes {
        let prefix = prep.layer_ns.iter().map(|row| prefix_sums(row)).collect();
        let nd = prep.platform.devices.len();
        let route = (0..nd)
            .map(|a| {
                (0..nd)
                    .map(|b| (prep.network.route(a, b)).map(|r| (r.bottleneck, r.latency_ns)))
                    .collect()
            })
            .collect();
        SegmentTimes {
            prefix,
            overhead: prep.run_overhead_ns.clone(),
            cross: crossing_bytes(prep),
            device: prep.platform.units.iter().map(|u| u.device).collect(),
            busy_w: prep.platform.units.iter().map(|u| u.busy_w).collect(),
            route,
        }
    }

    /// Time of layers `a..b` on unit `u` [ns].
    pub(crate) fn time(&self, u: u16, a: usize, b: usize) -> u64 {
        let p = &self.prefix[u as usize];
        self.overhead[u as usize] + (p[b] - p[a])
    }

    /// Time of layer `l` on unit `u`, without the run overhead [ns].
    pub(crate) fn layer(&self, u: u16, l: usize) -> u64 {
        let p = &self.prefix[u as usize];
        p[l + 1] - p[l]
    }

    /// The device of unit `u`.
    pub(crate) fn device(&self, u: u16) -> usize {
        self.device[u as usize]
    }

    /// Power of unit `u` above idle while busy [W].
    pub(crate) fn busy_w(&self, u: u16) -> f64 {
        self.busy_w[u as usize]
    }

    /// Run overhead of unit `u` (once per segment) [ns].
    pub(crate) fn overhead(&self, u: u16) -> u64 {
        self.overhead[u as usize]
    }

    /// Time of the whole model on unit `u` [ns].
    pub(crate) fn whole(&self, u: u16) -> u64 {
        self.time(u, 0, self.layers())
    }

    fn layers(&self) -> usize {
        self.cross.len() - 1
    }

    /// The number of units.
    pub(crate) fn units(&self) -> usize {
        self.prefix.len()
    }

    /// Time to send what crosses cut `c` from unit `u` to unit `v` [ns].
    pub(crate) fn transfer(&self, u: u16, v: u16, c: usize) -> u64 {
        let (a, b) = (self.device[u as usize], self.device[v as usize]);
        if a == b || c == 0 || c >= self.layers() {
            return 0;
        }
        match self.route[a][b] {
            Some((rate, latency)) if rate > 0.0 => latency + (self.cross[c] as f64 / rate) as u64,
            _ => u64::MAX,
        }
    }

    /// The cut `c` in `a+1..b` that minimises the slowest stage of `left` on `a..c`, the
    /// transfer at `c` and `right` on `c..b` (`None` when the range has fewer than two
    /// layers).
    pub(crate) fn balance(&self, left: u16, right: u16, a: usize, b: usize) -> Option<usize> {
        (a + 1..b).min_by_key(|&c| self.split_cost(left, right, a, c, b))
    }

    /// The slowest stage when `left` runs `a..c` and `right` runs `c..b`.
    fn split_cost(&self, left: u16, right: u16, a: usize, c: usize, b: usize) -> u64 {
        (self.time(left, a, c))
            .max(self.time(right, c, b))
            .max(self.transfer(left, right, c))
    }

    /// The end `b` (the furthest) such that unit `u` runs `a..b` within `limit` and, unless
    /// `b` is the last layer, the transfer to `next` at `b` too (`a` when none).
    fn reach(&self, u: u16, next: Option<u16>, a: usize, limit: u64) -> usize {
        let n = self.layers();
        let (mut lo, mut hi) = (a, n);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if self.time(u, a, mid) <= limit {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        if lo == n {
            return n;
        }
        let next = next.unwrap_or(u);
        (a + 1..=lo)
            .rev()
            .find(|&c| self.transfer(u, next, c) <= limit)
            .unwrap_or(a)
    }

    /// Whether `units` in this order can run the model as a pipeline whose every stage
    /// takes at most `limit` (a unit may take no layer); the segment ends if so.
    fn fill(&self, units: &[u16], limit: u64) -> Option<Vec<usize>> {
        let mut ends = Vec::with_capacity(units.len());
        let mut a = 0;
        for (i, &u) in units.iter().enumerate() {
            a = self.reach(u, units.get(i + 1).copied(), a, limit);
            ends.push(a);
        }
        (a == self.layers()).then_some(ends)
    }

    /// The pipeline over `units` in this order with the smallest slowest stage (by
    /// bisection on that time); units left without layers drop out.
    pub(crate) fn balanced(&self, units: &[u16]) -> Genome {
        let slowest = units.iter().map(|&u| self.whole(u)).max().unwrap_or(0);
        let (mut lo, mut hi) = (0u64, slowest);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.fill(units, mid).is_some() {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        let ends = self.fill(units, hi).expect("the slowest whole model fits");
        let mut assign = Vec::with_capacity(self.layers());
        for (&u, &end) in units.iter().zip(&ends) {
            assign.resize(end, u as usize);
        }
        Genome::from_assignment(&assign)
    }
}

#[cfg(test)]
impl SegmentTimes {
    /// Layer times per unit (`rows[u][l]`), the device and run overhead of each unit, links
    /// of 1 byte/ns between all devices and 1 byte crossing every cut (for tests).
    pub(crate) fn from_rows(rows: &[&[u64]], device: Vec<usize>, overhead: Vec<u64>) -> Self {
        let prefix = rows.iter().map(|r| prefix_sums(r)).collect();
        let devices = device.iter().max().map_or(0, |&d| d + 1);
        SegmentTimes {
            prefix,
            overhead,
            cross: vec![1; rows[0].len() + 1],
            busy_w: vec![1.0; device.len()],
            device,
            route: vec![vec![Some((1.0, 0)); devices]; devices],
        }
    }
}

#[cfg(test)]
impl SegmentTimes {
    /// These times with the busy power of each unit `busy_w` [W] (for tests).
    pub(crate) fn with_busy_w(mut self, busy_w: Vec<f64>) -> Self {
        self.busy_w = busy_w;
        self
    }
}

/// `p[l]`: the sum of `xs[..l]` (saturating), for `l` in `0..=xs.len()`.
pub(crate) fn prefix_sums(xs: &[u64]) -> Vec<u64> {
    let mut p = Vec::with_capacity(xs.len() + 1);
    p.push(0u64);
    for &x in xs {
        p.push(p.last().expect("non-empty").saturating_add(x));
    }
    p
}

/// Bytes crossing each cut position `0..=L` (tensors produced before it and used from it
/// on; graph inputs are sent by the source, not across a cut).
fn crossing_bytes(prep: &PreparedScenario) -> Vec<u64> {
    let nl = prep.graph.layers.len();
    let mut cross = vec![0u64; nl + 1];
    for t in &prep.tensors {
        if let (Some(p), Some(&last)) = (t.producer, t.consumers.iter().max()) {
            for c in cross
                .iter_mut()
                .take(last as usize + 1)
                .skip(p as usize + 1)
            {
                *c = c.saturating_add(t.bytes);
            }
        }
    }
    cross
}

/// The most devices a seed pipeline of [`Search::device_pipelines`] spans.
const DEVICE_PIPELINE_DEVICES: usize = 4;

/// Whether no unit appears twice.
fn distinct(units: &[u16]) -> bool {
    let mut v = units.to_vec();
    v.sort_unstable();
    v.dedup();
    v.len() == units.len()
}

/// `k` = 1, 2, 3, 4, 6, 8, 12, 16, ... up to `most`.
fn seed_sizes(most: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut k = 1;
    while k <= most {
        out.push(k);
        let step = if k < 4 { 1 } else { k / 2 };
        k += step;
    }
    out
}

impl Search<'_> {
    /// Segment bounds `(start, end)` of segment `s` of `g`.
    pub(crate) fn bounds(&self, g: &Genome, s: usize) -> (usize, usize) {
        g.bounds(s, self.space.layers)
    }

    /// Estimated time of each segment of `g`.
    fn segment_times(&self, g: &Genome) -> Vec<u64> {
        (0..g.units.len())
            .map(|s| {
                let (a, b) = self.bounds(g, s);
                self.times.time(g.units[s], a, b)
            })
            .collect()
    }

    /// Whether `g` uses whole unit `u`, itself or one of its core sets.
    fn uses(&self, g: &Genome, u: usize) -> bool {
        let units = &self.prep.platform.units;
        g.units
            .iter()
            .any(|&v| v as usize == u || units[v as usize].parent == u)
    }

    /// The whole units `g` does not use, fastest first.
    fn unused(&self, g: &Genome) -> Vec<u16> {
        (self.by_speed.iter().copied())
            .filter(|&u| !self.uses(g, u as usize))
            .collect()
    }

    /// One of the (up to) three fastest units `g` does not use.
    fn fast_unused(&mut self, g: &Genome) -> Option<u16> {
        let free = self.unused(g);
        let pick = free.len().min(3) as u64;
        (pick > 0).then(|| free[self.rng.below(pick) as usize])
    }

    /// The units of the space on `u`'s device other than `u` (its GPU, its CPU and the
    /// CPU's core sets).
    pub(crate) fn local_units(&self, u: u16) -> Vec<usize> {
        let units = &self.prep.platform.units;
        let d = units[u as usize].device;
        (self.space.units.iter().copied())
            .filter(|&v| v != u as usize && units[v].device == d)
            .collect()
    }

    /// Whether the space has units enough for unit selection
    /// ([`SELECTION_MIN_UNITS`](super::tuning::SELECTION_MIN_UNITS) whole units).
    pub(crate) fn selects(&self) -> bool {
        self.space.whole.len() >= super::tuning::SELECTION_MIN_UNITS
    }

    /// A unit-selection move on `g` (see the module docs); a unit mutation when none
    /// applies.
    pub(crate) fn mutate_selection(&mut self, g: &Genome) -> Genome {
        let moved = match self.rng.below(4) {
            0 => self.grow(g),
            1 => self.drop_slowest(g),
            2 => self.swap_in(g),
            _ => self.balance(g),
        };
        match moved {
            Some(h) => self.fit(h),
            None => self.mutate_units(g),
        }
    }

    /// The longest segment shares its layers with a fast unused unit.
    fn grow(&mut self, g: &Genome) -> Option<Genome> {
        if g.units.len() >= self.space.max_segments {
            return None;
        }
        let t = self.segment_times(g);
        let s = (0..t.len()).max_by_key(|&s| (t[s], std::cmp::Reverse(s)))?;
        if self.rng.below(2) == 0 {
            if let Some(h) = self.split_on_cores(g, s) {
                return Some(h);
            }
        }
        let v = self.fast_unused(g)?;
        let (a, b) = self.bounds(g, s);
        let u = g.units[s];
        let after = self.times.balance(u, v, a, b)?;
        let before = self.times.balance(v, u, a, b)?;
        let span = |l: u16, r: u16, c: usize| self.times.split_cost(l, r, a, c, b);
        let mut h = g.clone();
        if span(u, v, after) <= span(v, u, before) {
            h.cuts.insert(s, after as u32);
            h.units.insert(s + 1, v);
        } else {
            h.cuts.insert(s, before as u32);
            h.units.insert(s, v);
        }
        Some(h)
    }

    /// Segment `s`, when it runs on a CPU whose core sets are in the space, split at the
    /// balancing cut onto the disjoint pair of its core sets that runs it fastest (a
    /// pipeline inside the CPU).
    fn split_on_cores(&self, g: &Genome, s: usize) -> Option<Genome> {
        let fam = self.space.family(g.units[s])?;
        let (a, b) = self.bounds(g, s);
        let (c, l, r) = (fam.disjoint.iter())
            .filter_map(|&(l, r)| Some((self.times.balance(l, r, a, b)?, l, r)))
            .min_by_key(|&(c, l, r)| (self.times.split_cost(l, r, a, c, b), l, r))?;
        let mut h = g.clone();
        h.cuts.insert(s, c as u32);
        h.units[s] = l;
        h.units.insert(s + 1, r);
        Some(h)
    }

    /// The slowest unit used leaves and the others, when each is left once, are balanced
    /// as a pipeline; when one is left twice (`A-B-A`), the cut next to the longest segment
    /// of `g` is balanced instead (measured on the fleet scenarios, merging the leaving
    /// unit's segments into a neighbour there did worse).
    fn drop_slowest(&mut self, g: &Genome) -> Option<Genome> {
        if g.units.len() < 2 {
            return None;
        }
        let slowest = *g.units.iter().max_by_key(|&&u| self.times.whole(u))?;
        let rest: Vec<u16> = g.units.iter().copied().filter(|&u| u != slowest).collect();
        Some(self.pipeline_or_local(g, &rest))
    }

    /// `units` balanced as a pipeline when each appears once, else `g` balanced locally.
    fn pipeline_or_local(&mut self, g: &Genome, units: &[u16]) -> Genome {
        if distinct(units) {
            self.times.balanced(units)
        } else {
            self.local_balance(g)
        }
    }

    /// The slowest unit used is replaced by a faster unused one and the pipeline balanced
    /// (with a unit used twice: as [`Self::drop_slowest`]).
    fn swap_in(&mut self, g: &Genome) -> Option<Genome> {
        let slowest = *g.units.iter().max_by_key(|&&u| self.times.whole(u))?;
        let v = self.fast_unused(g)?;
        if self.times.whole(v) >= self.times.whole(slowest) {
            return None;
        }
        let units: Vec<u16> = (g.units.iter())
            .map(|&u| if u == slowest { v } else { u })
            .collect();
        Some(self.pipeline_or_local(g, &units))
    }

    /// The cuts moved so that the segments take about the same time (a pipeline of distinct
    /// units), or the cut next to the longest segment (a unit used twice).
    fn balance(&mut self, g: &Genome) -> Option<Genome> {
        if g.units.len() < 2 {
            return None;
        }
        Some(self.pipeline_or_local(g, &g.units))
    }

    /// `g` with the cut between its longest segment and a neighbour balanced.
    fn local_balance(&mut self, g: &Genome) -> Genome {
        let t = self.segment_times(g);
        let s = (0..t.len()).max_by_key(|&s| t[s]).unwrap_or(0);
        let n = g.units.len();
        let left = if s + 1 == n || (s > 0 && self.rng.below(2) == 0) {
            s - 1
        } else {
            s
        };
        let (a, _) = self.bounds(g, left);
        let (_, b) = self.bounds(g, left + 1);
        let mut h = g.clone();
        if let Some(c) = self.times.balance(g.units[left], g.units[left + 1], a, b) {
            h.cuts[left] = c as u32;
        }
        h
    }

    /// Balanced pipelines over the `k` fastest units and over the `k` units that spend the
    /// least busy energy on the whole model, for the sizes of [`seed_sizes`].
    pub(crate) fn selection_seeds(&self) -> Vec<Genome> {
        let most = self.space.whole.len().min(self.space.max_segments);
        let mut frugal = self.by_speed.clone();
        frugal.sort_by(|&a, &b| {
            let e = |u: u16| self.times.whole(u) as f64 * self.times.busy_w(u);
            e(a).total_cmp(&e(b)).then(a.cmp(&b))
        });
        let mut orders: Vec<Vec<u16>> = Vec::new();
        for k in seed_sizes(most) {
            orders.push(self.by_speed[..k].to_vec());
            orders.push(frugal[..k].to_vec());
        }
        orders.extend(self.device_pipelines());
        let mut out = Vec::new();
        for order in orders {
            let g = self.times.balanced(&order);
            if g.units.len() <= self.space.max_segments && !out.contains(&g) {
                out.push(g);
            }
        }
        out
    }

    /// Pipelines inside and across the fastest devices: each device's units, its CPU as
    /// its finest disjoint core sets (one stage per set), over the 1 to
    /// [`DEVICE_PIPELINE_DEVICES`] devices whose fastest unit is fastest.
    fn device_pipelines(&self) -> Vec<Vec<u16>> {
        if !self.space.has_core_sets() {
            return Vec::new();
        }
        let units = &self.prep.platform.units;
        let mut devices: Vec<usize> = Vec::new();
        for &u in &self.by_speed {
            let d = units[u as usize].device;
            if !devices.contains(&d) {
                devices.push(d);
            }
        }
        let mut out = Vec::new();
        let mut stages: Vec<u16> = Vec::new();
        for &d in devices.iter().take(DEVICE_PIPELINE_DEVICES) {
            for &u in self
                .by_speed
                .iter()
                .filter(|&&u| units[u as usize].device == d)
            {
                stages.extend(self.finest_sets(u));
            }
            out.push(stages.clone());
        }
        out
    }

    /// Unit `u` as stages: the smallest core sets of its CPU family (pairwise disjoint
    /// aligned blocks), or `u` itself.
    fn finest_sets(&self, u: u16) -> Vec<u16> {
        let units = &self.prep.platform.units;
        let Some(fam) = self.space.family(u) else {
            return vec![u];
        };
        let count = |v: u16| units[v as usize].core_set.count();
        let Some(min) = fam.sets.iter().map(|&v| count(v)).min() else {
            return vec![u];
        };
        fam.sets
            .iter()
            .copied()
            .filter(|&v| count(v) == min)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unit `u` on device `u`, links of 1 byte/ns, 1 byte crossing every cut.
    fn times(rows: &[&[u64]]) -> SegmentTimes {
        SegmentTimes::from_rows(rows, (0..rows.len()).collect(), vec![0; rows.len()])
    }

    #[test]
    fn balance_finds_the_cut_that_evens_two_units() {
        // unit 0 twice as fast as unit 1 on every layer: 6 layers of 1 vs 2
        let t = times(&[&[1, 1, 1, 1, 1, 1], &[2, 2, 2, 2, 2, 2]]);
        // left unit 0 on 0..c (c), right unit 1 on c..6 (2 (6 - c)): best c = 4 (4 vs 4)
        assert_eq!(t.balance(0, 1, 0, 6), Some(4));
        // the other way round: unit 1 on 0..c (2c), unit 0 on c..6 (6 - c): c = 2 (4 vs 4)
        assert_eq!(t.balance(1, 0, 0, 6), Some(2));
        assert_eq!(t.balance(0, 1, 3, 4), None);
    }

    #[test]
    fn balanced_pipeline_has_the_smallest_bottleneck() {
        let t = times(&[
            &[1, 1, 1, 1, 1, 1],
            &[1, 1, 1, 1, 1, 1],
            &[1, 1, 1, 1, 1, 1],
        ]);
        let g = t.balanced(&[0, 1, 2]);
        assert_eq!(g.cuts, vec![2, 4]);
        assert_eq!(g.units, vec![0, 1, 2]);
        // a unit too slow for any layer within the bottleneck drops out
        let t = times(&[&[1, 1, 1, 1], &[100, 100, 100, 100], &[1, 1, 1, 1]]);
        let g = t.balanced(&[0, 1, 2]);
        assert_eq!((g.cuts, g.units), (vec![2], vec![0, 2]));
    }

    #[test]
    fn a_costly_transfer_moves_the_cut() {
        let mut t = times(&[&[1, 1, 1, 1, 1, 1], &[1, 1, 1, 1, 1, 1]]);
        assert_eq!(t.balance(0, 1, 0, 6), Some(3));
        // 10 bytes cross every cut but the one before layer 5: the cut goes there
        t.cross = vec![0, 10, 10, 10, 10, 1, 0];
        assert_eq!(t.balance(0, 1, 0, 6), Some(5));
        let g = t.balanced(&[0, 1]);
        assert_eq!((g.cuts, g.units), (vec![5], vec![0, 1]));
        // on one device the transfer is free
        t.device = vec![0, 0];
        assert_eq!(t.balance(0, 1, 0, 6), Some(3));
    }

    #[test]
    fn seed_sizes_grow_geometrically() {
        assert_eq!(seed_sizes(20), vec![1, 2, 3, 4, 6, 9, 13, 19]);
        assert_eq!(seed_sizes(1), vec![1]);
    }
}
