//! Variation: random encodings, mutation and crossover of the cut structure and of the
//! units, core allocation on CPU segments, and the local neighbours refinement tries. Every
//! random choice comes from the search's seeded generator, in a fixed order. Random units
//! are drawn among the whole units ([`super::Space::whole`]); core sets enter through
//! [`Search::mutate_cores`], crossover and refinement.

use super::interleave::interleaved;
use super::search::Search;
use super::tuning::{CLEAN_BIAS, MAX_SHIFT};
use super::Genome;

impl Search<'_> {
    fn unit(&mut self) -> u16 {
        self.space.whole[self.rng.below(self.space.whole.len() as u64) as usize] as u16
    }

    fn unit_except(&mut self, a: Option<u16>, b: Option<u16>) -> u16 {
        let cands: Vec<u16> = self
            .space
            .whole
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

    pub(crate) fn random_genome(&mut self) -> Genome {
        let most = self.space.whole.len().min(self.space.max_segments);
        let k = 1 + self.rng.below(most as u64) as usize;
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
    pub(crate) fn fit(&mut self, g: Genome) -> Genome {
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

    pub(crate) fn mutate_structure(&mut self, g: &Genome) -> Genome {
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

    pub(crate) fn mutate_units(&mut self, g: &Genome) -> Genome {
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
                    .whole
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

    /// Core allocation on a segment that runs on a CPU of the space: move it to another
    /// core set of the CPU or back to the whole CPU, split it in two on disjoint core sets
    /// (a pipeline inside the CPU), or give a neighbour the cores it does not use. Without
    /// such a segment, a unit mutation.
    pub(crate) fn mutate_cores(&mut self, g: &Genome) -> Genome {
        let on_cpu: Vec<(usize, usize)> = (0..g.units.len())
            .filter_map(|s| self.family_index(g.units[s]).map(|f| (s, f)))
            .collect();
        if on_cpu.is_empty() {
            return self.mutate_units(g);
        }
        let (s, f) = on_cpu[self.rng.below(on_cpu.len() as u64) as usize];
        let mut g = g.clone();
        let op = self.rng.below(3);
        let pairs = !self.space.families[f].disjoint.is_empty();
        if op == 1 && pairs && self.split(&mut g, s, f) {
            // split done
        } else if op != 0 && pairs && g.units.len() >= 2 {
            self.share(&mut g, s, f);
        } else {
            self.resize(&mut g, s, f);
        }
        self.fit(g)
    }

    fn family_index(&self, u: u16) -> Option<usize> {
        self.space.families.iter().position(|f| f.contains(u))
    }

    /// Segment `s` on another core set of CPU family `f`, or on the whole CPU.
    fn resize(&mut self, g: &mut Genome, s: usize, f: usize) {
        let fam = &self.space.families[f];
        let options: Vec<u16> = std::iter::once(fam.cpu)
            .chain(fam.sets.iter().copied())
            .filter(|&u| u != g.units[s])
            .collect();
        g.units[s] = options[self.rng.below(options.len() as u64) as usize];
    }

    /// Segment `s` cut in two (a clean cut inside it when there is one, mostly) on a
    /// disjoint pair of core sets of family `f`; false when it has one layer or the genome
    /// has the most segments.
    fn split(&mut self, g: &mut Genome, s: usize, f: usize) -> bool {
        let start = if s == 0 { 0 } else { g.cuts[s - 1] };
        let end = g.cuts.get(s).copied().unwrap_or(self.space.layers as u32);
        if end - start < 2 || g.units.len() >= self.space.max_segments {
            return false;
        }
        let clean: Vec<u32> = (self.space.clean_cuts.iter().copied())
            .filter(|&c| c > start && c < end)
            .collect();
        let c = if !clean.is_empty() && self.rng.next_f64() < CLEAN_BIAS {
            clean[self.rng.below(clean.len() as u64) as usize]
        } else {
            start + 1 + self.rng.below(u64::from(end - start - 1)) as u32
        };
        let pairs = &self.space.families[f].disjoint;
        let (a, b) = pairs[self.rng.below(pairs.len() as u64) as usize];
        g.cuts.insert(s, c);
        g.units[s] = a;
        g.units.insert(s + 1, b);
        true
    }

    /// Segment `s` and a neighbour on a disjoint pair of core sets of family `f`: `s` keeps
    /// its core set when it has one and the neighbour takes cores it leaves free.
    fn share(&mut self, g: &mut Genome, s: usize, f: usize) {
        let n = g.units.len();
        let t = match s {
            0 => 1,
            _ if s == n - 1 => s - 1,
            _ if self.rng.below(2) == 0 => s - 1,
            _ => s + 1,
        };
        let all = &self.space.families[f].disjoint;
        let keep: Vec<(u16, u16)> = (all.iter().copied())
            .filter(|&(a, _)| a == g.units[s])
            .collect();
        let pairs = if keep.is_empty() { all.clone() } else { keep };
        let (a, b) = pairs[self.rng.below(pairs.len() as u64) as usize];
        g.units[s] = a;
        g.units[t] = b;
    }

    pub(crate) fn crossover_structure(&mut self, a: &Genome, b: &Genome) -> Genome {
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

    pub(crate) fn crossover_units(&mut self, a: &Genome, b: &Genome) -> Genome {
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
}

/// Local neighbours of a genome (refinement), by kind, each in a fixed order: boundary
/// moves, unit moves (swaps and moves to other units), and moves within a device (a
/// segment's first or last layer, or one of its halves, on another unit of its device; a
/// device's layers, or every device's, interleaved over its units, or every device's
/// moved to the units that spend the least energy on them: [`interleaved`]).
pub(crate) fn neighbours(s: &Search, g: &Genome) -> [Vec<Genome>; 3] {
    let fit = |all: Vec<Genome>| -> Vec<Genome> {
        (all.into_iter())
            .map(|h| h.canonical(s.space.layers))
            .filter(|h| h.units.len() <= s.space.max_segments)
            .collect()
    };
    let (units, mut local) = unit_neighbours(s, g);
    local.extend(interleaved(s, g));
    [fit(cut_neighbours(s, g)), fit(units), fit(local)]
}

/// A boundary moved by 1 to [`MAX_SHIFT`] layers or to any clean cut point between its
/// neighbours, an inner segment shifted by 1 to [`MAX_SHIFT`] layers.
fn cut_neighbours(s: &Search, g: &Genome) -> Vec<Genome> {
    let nl = s.space.layers as i64;
    let mut out = Vec::new();
    let n = g.cuts.len();
    // boundary `i` at `c`, when `c` stays between its neighbours
    let mut moved = |i: usize, c: i64| {
        let lo = if i == 0 { 1 } else { g.cuts[i - 1] as i64 + 1 };
        let hi = g.cuts.get(i + 1).map_or(nl - 1, |&c| c as i64 - 1);
        if c >= lo && c <= hi {
            let mut h = g.clone();
            h.cuts[i] = c as u32;
            out.push(h);
        }
    };
    for i in 0..n {
        shifts().for_each(|d| moved(i, g.cuts[i] as i64 + d));
    }
    for i in 0..n {
        for &c in &s.space.clean_cuts {
            if (c as i64 - g.cuts[i] as i64).abs() > MAX_SHIFT {
                moved(i, c as i64);
            }
        }
    }
    for i in 0..n.saturating_sub(1) {
        for d in shifts() {
            let (a, b) = (g.cuts[i] as i64 + d, g.cuts[i + 1] as i64 + d);
            let lo = if i == 0 { 1 } else { g.cuts[i - 1] as i64 + 1 };
            let hi = g.cuts.get(i + 2).map_or(nl - 1, |&c| c as i64 - 1);
            if a >= lo && b <= hi {
                let mut h = g.clone();
                h.cuts[i] = a as u32;
                h.cuts[i + 1] = b as u32;
                out.push(h);
            }
        }
    }
    out
}

/// Two segments' units swapped, a segment on each other whole unit, core set of its CPU or
/// unit of its device; and apart, the moves within a device: a segment's first or last
/// layer, or one of its halves, on another unit of its device.
fn unit_neighbours(s: &Search, g: &Genome) -> (Vec<Genome>, Vec<Genome>) {
    let (mut out, mut within) = (Vec::new(), Vec::new());
    for a in 0..g.units.len() {
        for b in a + 1..g.units.len() {
            let mut h = g.clone();
            h.units.swap(a, b);
            out.push(h);
        }
        let local = s.local_units(g.units[a]);
        let mut moves = s.space.moves_from(g.units[a]);
        for &u in &local {
            if !moves.contains(&u) {
                moves.push(u);
            }
        }
        for u in moves.into_iter().filter(|&u| u as u16 != g.units[a]) {
            let mut h = g.clone();
            h.units[a] = u as u16;
            out.push(h);
        }
        within.extend(peeled(s, g, a, &local));
        within.extend(halved(s, g, a, &local));
    }
    (out, within)
}

/// `g` with segment `a` cut where its two parts take about the same time, one of them on
/// one of `local` (a pipeline inside the device: its GPU and CPU cores run at once).
fn halved(s: &Search, g: &Genome, a: usize, local: &[usize]) -> Vec<Genome> {
    let (start, end) = s.bounds(g, a);
    let mut out = Vec::new();
    for &u in local {
        let u = u as u16;
        for (left, right) in [(g.units[a], u), (u, g.units[a])] {
            let Some(c) = s.times.balance(left, right, start, end) else {
                return out;
            };
            let mut h = g.clone();
            h.cuts.insert(a, c as u32);
            h.units[a] = left;
            h.units.insert(a + 1, right);
            out.push(h);
        }
    }
    out
}

/// `g` with the first or the last layer of segment `a` moved to one of `local` (the other
/// units of its device: a layer a GPU is slow at, handed to its device's CPU cores).
fn peeled(s: &Search, g: &Genome, a: usize, local: &[usize]) -> Vec<Genome> {
    let (start, end) = s.bounds(g, a);
    if end - start < 2 {
        return Vec::new();
    }
    let assign = g.assignment(s.space.layers);
    let mut out = Vec::new();
    for l in [start, end - 1] {
        for &u in local {
            let mut v = assign.clone();
            v[l] = u;
            out.push(Genome::from_assignment(&v));
        }
    }
    out
}

/// Boundary shifts tried by refinement: -MAX_SHIFT..=MAX_SHIFT without 0.
fn shifts() -> impl Iterator<Item = i64> {
    (-MAX_SHIFT..=MAX_SHIFT).filter(|&d| d != 0)
}
