//! Interleaving inside a device: the layers a mapping gives one device, spread over units of
//! that device that run at once (its GPU and disjoint core sets of its CPU), each layer
//! where it relieves the device's busiest unit most.
//!
//! Layers are not alike: in the Jetson TX2's device model the GPU runs resnet50's 1x1
//! convolutions about 10 times faster than the CPU, its 3x3 ones only about 4 times faster.
//! A contiguous cut between the GPU and the CPU can only hand the CPU a range of both kinds;
//! handing it the layers it is relatively good at, wherever they are, evens the device's
//! units better, at the price of more segments (each one a run overhead; transfers inside a
//! device cost nothing in the estimate, the simulator scores them). Such plans are the
//! low-energy, high-throughput corner of a large platform's front, and neither random draws
//! nor one-segment moves find them in a short search: the first population holds the
//! interleaved versions of the unit-selection and branch seeds ([`interleaved_together`]),
//! and refinement offers [`interleaved`] mappings among its moves within a device.
//!
//! Balancing evens a device's units; where another device sets the pipeline's rate, that
//! can spend energy for nothing (a layer on CPU cores where the GPU beside them, idle part
//! of the time, would spend less).
//! The **frugal** version of a mapping moves layers, one at a time, to the unit of their
//! device that spends the least busy energy on them (estimated time times busy power),
//! the largest saving first, as long as no unit's estimated load passes the mapping's
//! busiest one: the same estimated throughput for less energy. On resnet50 over 16
//! boards it is what brings the front's low-energy corner within a short search.

use super::cores::Family;
use super::search::Search;
use super::selection::SegmentTimes;
use super::Genome;
use crate::platform::UnitKind;

/// The interleavings of `g` that refinement offers among its moves within a device: for
/// each device `g` uses and each group of its units that run at once (its units other than
/// its CPU, with the whole CPU or with one size of the CPU's aligned core blocks), `g` with
/// that device's layers balanced over the group ([`balance_device`]); then those of
/// [`interleaved_together`]. Only mappings that differ from `g` and keep to the segment
/// limit.
pub(crate) fn interleaved(s: &Search, g: &Genome) -> Vec<Genome> {
    let mut out = Interleaving::of(s, g);
    out.each_device();
    out.every_device();
    out.found
}

/// The interleavings of `g` the first population gets: with several devices, for each
/// `k`, `g` with the layers on its devices moved, one at a time, to the unit of its `k`-th
/// group that spends the least busy energy on them while no unit's estimated load passes
/// the busiest one of `g` ([`frugal_devices`]: the same throughput for less energy), and
/// `g` with every device's layers balanced over its `k`-th group (its last one when it has
/// fewer): each device a pipeline inside itself at once, the plans of the front's
/// low-energy corner on a large platform, which single-device moves reach only one device
/// at a time; with one device, each of its groups ([`interleaved`]). Each device alone is
/// left to refinement: a seed of many devices has many such variants, each a long
/// pipeline, slow to simulate.
pub(crate) fn interleaved_together(s: &Search, g: &Genome) -> Vec<Genome> {
    let mut out = Interleaving::of(s, g);
    if out.devices.len() == 1 {
        out.each_device();
    }
    out.every_device();
    out.found
}

/// The interleavings of one mapping, as they are found.
struct Interleaving<'a> {
    times: &'a SegmentTimes,
    limit: usize,
    g: &'a Genome,
    assign: Vec<usize>,
    /// The devices `g` uses, in the order of its segments.
    devices: Vec<usize>,
    /// Each device's groups of units that run at once ([`concurrent_groups`]).
    groups: Vec<Vec<Vec<u16>>>,
    found: Vec<Genome>,
}

impl<'a> Interleaving<'a> {
    fn of(s: &'a Search, g: &'a Genome) -> Self {
        let mut devices: Vec<usize> = Vec::new();
        for &u in &g.units {
            let d = s.times.device(u);
            if !devices.contains(&d) {
                devices.push(d);
            }
        }
        let groups = devices.iter().map(|&d| concurrent_groups(s, d)).collect();
        Interleaving {
            times: &s.times,
            limit: s.space.max_segments,
            g,
            assign: g.assignment(s.space.layers),
            devices,
            groups,
            found: Vec::new(),
        }
    }

    /// Keeps `a` when it differs from `g`, keeps to the segment limit and is new.
    fn keep(&mut self, a: Vec<usize>) {
        let h = Genome::from_assignment(&a);
        if h.units.len() <= self.limit && &h != self.g && !self.found.contains(&h) {
            self.found.push(h);
        }
    }

    /// Each device's layers balanced over each of its groups, one device at a time.
    fn each_device(&mut self) {
        let balanced: Vec<Vec<usize>> = (self.groups.iter().flatten())
            .map(|group| balance_device(self.times, self.limit, &self.assign, group))
            .collect();
        for a in balanced {
            self.keep(a);
        }
    }

    /// With several devices, for each `k`: the frugal and the balanced mapping of every
    /// device over its `k`-th group at once.
    fn every_device(&mut self) {
        if self.devices.len() < 2 {
            return;
        }
        let bound = busiest_load(self.times, &self.assign);
        for k in 0..self.groups.iter().map(Vec::len).max().unwrap_or(0) {
            let kth: Vec<&[u16]> = (self.groups.iter())
                .filter_map(|gs| gs.get(k).or(gs.last()))
                .map(Vec::as_slice)
                .collect();
            let frugal = frugal_devices(self.times, self.limit, &self.assign, &kth, bound);
            let balanced = balance_devices(self.times, self.limit, &self.assign, &kth);
            self.keep(frugal);
            self.keep(balanced);
        }
    }
}

/// The estimated load of each unit under `assign` (indexed by unit, up to the highest one
/// used): its layers' times plus its run overhead per segment [ns] (core sets of one CPU
/// counted apart, links left out).
fn unit_loads(times: &SegmentTimes, assign: &[usize]) -> Vec<u64> {
    let mut load: Vec<u64> = Vec::new();
    for (l, &u) in assign.iter().enumerate() {
        if load.len() <= u {
            load.resize(u + 1, 0);
        }
        load[u] += times.layer(u as u16, l);
        if l == 0 || assign[l - 1] != u {
            load[u] += times.overhead(u as u16);
        }
    }
    load
}

/// The largest estimated load of a unit under `assign` ([`unit_loads`]).
fn busiest_load(times: &SegmentTimes, assign: &[usize]) -> u64 {
    unit_loads(times, assign).into_iter().max().unwrap_or(0)
}

/// `assign` with the layers of each group's device moved, one at a time, to another unit
/// of the group, the move that saves the most busy energy (estimated load times busy
/// power), while no unit's load passes `bound` and the segments stay within
/// `max_segments`. A device with layers on units outside its group keeps them all.
fn frugal_devices(
    times: &SegmentTimes,
    max_segments: usize,
    assign: &[usize],
    groups: &[&[u16]],
    bound: u64,
) -> Vec<usize> {
    (groups.iter()).fold(assign.to_vec(), |a, group| {
        let d = times.device(group[0]);
        let mine: Vec<usize> = (0..a.len())
            .filter(|&l| times.device(a[l] as u16) == d)
            .collect();
        if !mine.iter().all(|&l| group.contains(&(a[l] as u16))) {
            return a;
        }
        let mut b = Balance::new(times, max_segments, a, group);
        b.count();
        for _ in 0..2 * mine.len() {
            let Some((l, v)) = b.cheapest_move(&mine, bound) else {
                break;
            };
            b.apply(l, v);
        }
        b.assign
    })
}

/// `assign` with each group's device balanced over the group ([`balance_device`]), one
/// device after the other (groups of distinct devices).
fn balance_devices(
    times: &SegmentTimes,
    max_segments: usize,
    assign: &[usize],
    groups: &[&[u16]],
) -> Vec<usize> {
    (groups.iter()).fold(assign.to_vec(), |a, group| {
        balance_device(times, max_segments, &a, group)
    })
}

/// The groups of units of device `d` in the space that run at once: the units that are
/// not its CPU (GPUs), with the whole CPU, or with the CPU's core sets of one size (aligned
/// blocks, pairwise disjoint); groups of fewer than two units are left out.
fn concurrent_groups(s: &Search, d: usize) -> Vec<Vec<u16>> {
    let units = &s.prep.platform.units;
    let on_d = |u: &usize| units[*u].device == d;
    let others: Vec<u16> = (s.space.whole.iter().filter(|u| on_d(u)))
        .filter(|&&u| units[u].kind != UnitKind::Cpu)
        .map(|&u| u as u16)
        .collect();
    let mut cpu_parts: Vec<Vec<u16>> = (s.space.whole.iter().filter(|u| on_d(u)))
        .filter(|&&u| units[u].kind == UnitKind::Cpu)
        .map(|&u| vec![u as u16])
        .collect();
    for f in (s.space.families.iter()).filter(|f| units[f.cpu as usize].device == d) {
        cpu_parts.extend(core_partitions(s, f));
    }
    if cpu_parts.is_empty() {
        cpu_parts.push(Vec::new());
    }
    (cpu_parts.into_iter())
        .map(|p| others.iter().copied().chain(p).collect::<Vec<u16>>())
        .filter(|g| g.len() >= 2)
        .collect()
}

/// The CPU of family `f` as its core sets of one size, for each size whose sets are
/// pairwise disjoint (aligned blocks: halves, thirds, ...).
fn core_partitions(s: &Search, f: &Family) -> Vec<Vec<u16>> {
    let units = &s.prep.platform.units;
    let size = |v: u16| units[v as usize].core_set.count();
    let mut sizes: Vec<u32> = f.sets.iter().map(|&v| size(v)).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let disjoint = |part: &[u16]| {
        (part.iter()).all(|&a| {
            (part.iter())
                .filter(|&&b| b != a)
                .all(|&b| f.disjoint.contains(&(a, b)))
        })
    };
    (sizes.into_iter())
        .map(|k| {
            f.sets
                .iter()
                .copied()
                .filter(|&v| size(v) == k)
                .collect::<Vec<u16>>()
        })
        .filter(|part| disjoint(part))
        .collect()
}

/// `assign` with the layers on the device of `group` (units of one device that run at
/// once) spread over `group`: each first on the unit of the group that runs it fastest (a
/// layer no slower on the previous layer's unit stays with it), then, while that lowers
/// the larger of the two loads, the busiest unit hands one layer to another unit of the
/// group, the move that leaves the larger of the two loads smallest; a unit's load is its
/// layers' times plus its run overhead per segment. The moves keep the mapping within
/// `max_segments` (when the fastest unit per layer makes more, all start on the unit that
/// runs them fastest together); a mapping over the limit to begin with stays over it.
pub(crate) fn balance_device(
    times: &SegmentTimes,
    max_segments: usize,
    assign: &[usize],
    group: &[u16],
) -> Vec<usize> {
    let d = times.device(group[0]);
    let mine: Vec<usize> = (0..assign.len())
        .filter(|&l| times.device(assign[l] as u16) == d)
        .collect();
    let mut b = Balance::new(times, max_segments, assign.to_vec(), group);
    for &l in &mine {
        b.place_fastest(l);
    }
    b.count();
    if b.segments > b.limit {
        b.place_all(&mine);
    }
    for _ in 0..2 * mine.len() {
        let Some((l, v)) = b.best_move(&mine) else {
            break;
        };
        b.apply(l, v);
    }
    b.assign
}

/// The state of [`balance_device`]: the assignment, the load of each unit of the group and
/// the segments in all.
struct Balance<'a> {
    times: &'a SegmentTimes,
    limit: i64,
    assign: Vec<usize>,
    group: &'a [u16],
    load: Vec<u64>,
    segments: i64,
}

impl<'a> Balance<'a> {
    /// The state of `assign`, its loads and segments not yet counted ([`Self::count`]).
    fn new(
        times: &'a SegmentTimes,
        max_segments: usize,
        assign: Vec<usize>,
        group: &'a [u16],
    ) -> Self {
        Balance {
            times,
            limit: max_segments as i64,
            assign,
            group,
            load: vec![0; group.len()],
            segments: 0,
        }
    }

    /// Layer `l` on the unit of the group that runs it fastest, or on the previous layer's
    /// unit when that is in the group and no slower.
    fn place_fastest(&mut self, l: usize) {
        let t = |u: u16| self.times.layer(u, l);
        let best = (self.group.iter().copied())
            .min_by_key(|&u| (t(u), u))
            .expect("a group has units");
        let prev = (l > 0).then(|| self.assign[l - 1] as u16);
        self.assign[l] = match prev {
            Some(p) if self.group.contains(&p) && t(p) <= t(best) => p as usize,
            _ => best as usize,
        };
    }

    /// All the layers `mine` on the unit of the group that runs them fastest together
    /// (when the fastest unit per layer makes too many segments).
    fn place_all(&mut self, mine: &[usize]) {
        let t = |u: u16| mine.iter().map(|&l| self.times.layer(u, l)).sum::<u64>();
        let best = (self.group.iter().copied())
            .min_by_key(|&u| (t(u), u))
            .expect("a group has units");
        for &l in mine {
            self.assign[l] = best as usize;
        }
        self.count();
    }

    /// Loads of the units of the group and segments in all, from the assignment.
    fn count(&mut self) {
        let a = &self.assign;
        self.segments = (0..a.len()).filter(|&l| l == 0 || a[l] != a[l - 1]).count() as i64;
        let loads = unit_loads(self.times, a);
        for (i, &u) in self.group.iter().enumerate() {
            self.load[i] = loads.get(u as usize).copied().unwrap_or(0);
        }
    }

    /// The change in the segments of unit `u` when layer `l` joins it (`joins`) or leaves
    /// it.
    fn run_change(&self, l: usize, u: usize, joins: bool) -> i64 {
        let a = &self.assign;
        let prev = l > 0 && a[l - 1] == u;
        let next = a.get(l + 1) == Some(&u);
        let change = match (prev, next) {
            (true, true) => -1,
            (false, false) => 1,
            _ => 0,
        };
        if joins {
            change
        } else {
            -change
        }
    }

    /// The loads of unit `m` (index in the group, the unit of layer `l`) and of unit `v`
    /// after layer `l` moves from `m` to `v`, and the segments in all then.
    fn after(&self, l: usize, m: usize, v: usize) -> (u64, u64, i64) {
        let (um, uv) = (self.group[m], self.group[v]);
        let t = self.times;
        let dm = self.run_change(l, um as usize, false);
        let dv = self.run_change(l, uv as usize, true);
        let lm = self.load[m] as i64 - t.layer(um, l) as i64 + dm * t.overhead(um) as i64;
        let lv = self.load[v] as i64 + t.layer(uv, l) as i64 + dv * t.overhead(uv) as i64;
        let a = &self.assign;
        let differs = |x: usize, y: usize| (a[x] != a[y]) as i64;
        let mut segments = self.segments;
        if l > 0 {
            segments += (a[l - 1] != uv as usize) as i64 - differs(l - 1, l);
        }
        if l + 1 < a.len() {
            segments += (a[l + 1] != uv as usize) as i64 - differs(l, l + 1);
        }
        (lm.max(0) as u64, lv.max(0) as u64, segments)
    }

    /// The move (layer, index in the group of its new unit) off the busiest unit that
    /// leaves the larger of the two loads smallest, if that is below the busiest load and
    /// the segments stay within the limit.
    fn best_move(&self, mine: &[usize]) -> Option<(usize, usize)> {
        let m = (0..self.group.len()).max_by_key(|&i| (self.load[i], std::cmp::Reverse(i)))?;
        let um = self.group[m] as usize;
        let mut best: Option<(u64, usize, usize)> = None;
        for &l in mine.iter().filter(|&&l| self.assign[l] == um) {
            for v in (0..self.group.len()).filter(|&v| v != m) {
                let (lm, lv, segments) = self.after(l, m, v);
                let worse = lm.max(lv);
                let better = best.is_none_or(|b| worse < b.0);
                if segments <= self.limit && worse < self.load[m] && better {
                    best = Some((worse, l, v));
                }
            }
        }
        best.map(|(_, l, v)| (l, v))
    }

    /// The move (layer of `mine`, index in the group of its new unit) that saves the most
    /// busy energy (the two units' loads times their busy power) while both loads stay
    /// within `bound` and the segments within the limit.
    fn cheapest_move(&self, mine: &[usize], bound: u64) -> Option<(usize, usize)> {
        let w = |i: usize| self.times.busy_w(self.group[i]);
        let mut best: Option<(f64, usize, usize)> = None;
        for &l in mine {
            let Some(m) = (self.group.iter()).position(|&u| u as usize == self.assign[l]) else {
                continue;
            };
            for v in (0..self.group.len()).filter(|&v| v != m) {
                let (lm, lv, segments) = self.after(l, m, v);
                if segments > self.limit || lm > bound || lv > bound {
                    continue;
                }
                let saved = (self.load[m] as f64 - lm as f64) * w(m)
                    - (lv as f64 - self.load[v] as f64) * w(v);
                if saved > 0.0 && best.is_none_or(|b| saved > b.0) {
                    best = Some((saved, l, v));
                }
            }
        }
        best.map(|(_, l, v)| (l, v))
    }

    /// Moves layer `l` to the unit of index `v` in the group.
    fn apply(&mut self, l: usize, v: usize) {
        let m = (self.group.iter())
            .position(|&u| u as usize == self.assign[l])
            .expect("a move leaves a unit of the group");
        let (lm, lv, segments) = self.after(l, m, v);
        self.load[m] = lm;
        self.load[v] = lv;
        self.segments = segments;
        self.assign[l] = self.group[v] as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units 0 (a GPU) and 1 (a CPU) on device 0, unit 2 on device 1; the CPU's run
    /// overhead `cpu_overhead`, none elsewhere.
    fn times(rows: &[&[u64]], cpu_overhead: u64) -> SegmentTimes {
        SegmentTimes::from_rows(rows, vec![0, 0, 1], vec![0, cpu_overhead, 0])
    }

    /// The larger load of units 0 and 1 under `a`.
    fn busiest(t: &SegmentTimes, a: &[usize]) -> u64 {
        busiest_of(t, a, [0, 1])
    }

    /// The larger load of units `pair` under `a`.
    fn busiest_of(t: &SegmentTimes, a: &[usize], pair: [usize; 2]) -> u64 {
        let load = |u: usize| -> u64 {
            let on = (0..a.len()).filter(|&l| a[l] == u);
            on.map(|l| t.layer(u as u16, l)).sum()
        };
        load(pair[0]).max(load(pair[1]))
    }

    #[test]
    fn the_cpu_takes_the_layers_it_is_relatively_good_at() {
        // the GPU is 10x faster on even layers, 1.5x on odd ones
        let t = times(&[&[2; 6], &[20, 3, 20, 3, 20, 3], &[9; 6]], 0);
        let a = balance_device(&t, 10, &[0; 6], &[0, 1]);
        // all on the GPU takes 12; the odd layers moved one by one: 10 / 3, 8 / 6, then
        // 6 / 9 would be worse than 8
        assert_eq!(busiest(&t, &a), 8);
        assert!((0..6).step_by(2).all(|l| a[l] == 0), "{a:?}");
        assert_eq!(a.iter().filter(|&&u| u == 1).count(), 2, "{a:?}");
        // no contiguous cut does as well: the CPU's best range costs it more
        let best_cut = (0..=6)
            .map(|c| busiest(&t, &(0..6).map(|l| usize::from(l >= c)).collect::<Vec<_>>()))
            .min()
            .unwrap();
        assert!(best_cut > 8, "{best_cut}");
    }

    #[test]
    fn other_devices_keep_their_layers_and_the_segment_limit_holds() {
        let t = times(&[&[2; 8], &[20, 3, 20, 3, 20, 3, 20, 3], &[9; 8]], 0);
        let start = [0, 0, 0, 0, 0, 0, 2, 2];
        let a = balance_device(&t, 3, &start, &[0, 1]);
        assert_eq!(&a[6..], &[2, 2], "{a:?}");
        let segments = 1 + (1..a.len()).filter(|&l| a[l] != a[l - 1]).count();
        assert!(segments <= 3, "{a:?}");
        // one move fits the limit: a CPU layer next to device 1's segment
        assert_eq!(a, [0, 0, 0, 0, 0, 1, 2, 2]);
    }

    #[test]
    fn every_device_of_a_pipeline_is_balanced_over_its_own_units() {
        // two boards alike: a GPU (units 0, 2) 10x faster than its CPU (units 1, 3) on
        // even layers, 1.5x on odd ones; the pipeline runs layers 0-5 on board 0's GPU
        // and 6-11 on board 1's
        let gpu = [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2];
        let cpu = [20, 3, 20, 3, 20, 3, 20, 3, 20, 3, 20, 3];
        let rows: [&[u64]; 4] = [&gpu, &cpu, &gpu, &cpu];
        let t = SegmentTimes::from_rows(&rows, vec![0, 0, 1, 1], vec![0; 4]);
        let start = [0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2];
        let a = balance_devices(&t, 20, &start, &[&[0, 1], &[2, 3]]);
        // each board as balanced as it is alone: 12 on its GPU -> 8 (two odd layers on
        // its CPU), and each board keeps its own layers
        let alone = balance_device(&t, 20, &start, &[0, 1]);
        assert_eq!(busiest_of(&t, &alone, [0, 1]), 8);
        assert_eq!(busiest_of(&t, &a, [0, 1]), 8, "{a:?}");
        assert_eq!(busiest_of(&t, &a, [2, 3]), 8, "{a:?}");
        assert!(
            (0..6).all(|l| a[l] < 2) && (6..12).all(|l| a[l] >= 2),
            "{a:?}"
        );
        // one board at a time leaves the other on its GPU alone
        assert_eq!(busiest_of(&t, &alone, [2, 3]), 12);
    }

    #[test]
    fn frugal_moves_save_busy_energy_without_passing_the_bound() {
        // a GPU of 2 ns per layer at 10 W (20 nJ a layer) and a CPU of 3 ns at 1 W (3 nJ)
        // beside it; board 1 (unit 2) runs the last two layers in 9 ns each
        let t = SegmentTimes::from_rows(&[&[2; 8], &[3; 8], &[9; 8]], vec![0, 0, 1], vec![0; 3])
            .with_busy_w(vec![10.0, 1.0, 1.0]);
        let start = [0, 0, 0, 0, 0, 0, 2, 2];
        let bound = busiest_load(&t, &start);
        assert_eq!(bound, 18, "board 1's two layers");
        let a = frugal_devices(&t, 8, &start, &[&[0, 1]], bound);
        // all six GPU layers fit the CPU within 18 ns: 6 x 3 = 18
        assert_eq!(a, [1, 1, 1, 1, 1, 1, 2, 2]);
        // a tighter bound keeps as many on the GPU as the CPU cannot take
        let a = frugal_devices(&t, 8, &start, &[&[0, 1]], 12);
        assert_eq!(a.iter().filter(|&&u| u == 1).count(), 4, "{a:?}");
        assert_eq!(&a[6..], &[2, 2], "board 1 keeps its layers: {a:?}");
        let load = |u: usize| (0..6).filter(|&l| a[l] == u).count() as u64;
        assert!(2 * load(0) <= 12 && 3 * load(1) <= 12, "{a:?}");
        // the segment limit holds: with 3 segments at most the CPU takes one run
        let a = frugal_devices(&t, 3, &start, &[&[0, 1]], 12);
        let segments = 1 + (1..a.len()).filter(|&l| a[l] != a[l - 1]).count();
        assert!(segments <= 3 && a.contains(&1), "{a:?}");
        // no saving, no move: a CPU at the GPU's power, slower, spends more on each layer
        let t = t.with_busy_w(vec![10.0, 10.0, 1.0]);
        assert_eq!(frugal_devices(&t, 8, &start, &[&[0, 1]], bound), start);
    }

    #[test]
    fn too_many_segments_start_from_one_unit() {
        // the fastest unit per layer alternates (4 segments); with a limit of 2 all start
        // on the GPU (12 either way, the lower index) and the moves keep to 2 segments
        let t = times(&[&[1, 5, 1, 5], &[5, 1, 5, 1], &[9; 4]], 0);
        assert_eq!(balance_device(&t, 2, &[0; 4], &[0, 1]), [0, 0, 1, 1]);
        assert_eq!(balance_device(&t, 4, &[0; 4], &[0, 1]), [0, 1, 0, 1]);
    }

    #[test]
    fn a_run_overhead_keeps_small_moves_out() {
        // a layer moved to the CPU saves the GPU 2 of its 6 and costs the CPU 3
        let t = times(&[&[2; 3], &[3; 3], &[9; 3]], 0);
        assert_ne!(balance_device(&t, 10, &[0; 3], &[0, 1]), [0; 3]);
        // ...plus a segment's overhead of 5: 8, more than the GPU's 6 alone
        let t = times(&[&[2; 3], &[3; 3], &[9; 3]], 5);
        assert_eq!(balance_device(&t, 10, &[0; 3], &[0, 1]), [0; 3]);
    }
}
