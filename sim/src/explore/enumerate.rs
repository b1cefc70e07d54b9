//! Exhaustive enumeration of a small space, to measure how much of the true front the
//! search found.

use rayon::prelude::*;

use super::hv::Bounds;
use super::nsga::{dominates, sort_front};
use super::search::evaluate;
use super::tuning::ENUMERATION_CHUNK;
use super::{Exhaustive, Genome, Point, Space};
use crate::prepared::PreparedScenario;

/// Enumerates the whole space in chunks (evaluated in parallel) and compares fronts.
pub(crate) fn enumerate(
    prep: &PreparedScenario,
    space: &Space,
    found: &[Point],
    progress: &mut dyn FnMut(u64),
) -> Exhaustive {
    let mut acc = Enumeration {
        prep,
        archive: Vec::new(),
        chunk: Vec::with_capacity(ENUMERATION_CHUNK),
        count: 0,
        progress,
    };
    for_each_genome(space, &mut |g| acc.push(g));
    acc.flush();
    let mut archive = acc.archive;
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
        evaluated: acc.count,
        front: archive,
        ratio,
    }
}

/// Evaluates genomes in chunks and keeps the feasible non-dominated ones.
struct Enumeration<'a, 'p> {
    prep: &'a PreparedScenario,
    archive: Vec<Point>,
    chunk: Vec<Genome>,
    count: u64,
    progress: &'p mut dyn FnMut(u64),
}

impl Enumeration<'_, '_> {
    fn push(&mut self, g: Genome) {
        self.chunk.push(g);
        if self.chunk.len() == self.chunk.capacity() {
            self.flush();
        }
    }

    /// Evaluates the chunk (in parallel, results in order) into the archive.
    fn flush(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        let (base, prep) = (self.count as usize, self.prep);
        let pts: Vec<Point> = self
            .chunk
            .par_iter()
            .enumerate()
            .map(|(k, g)| evaluate(prep, g, base + k))
            .collect();
        self.count += self.chunk.len() as u64;
        self.chunk.clear();
        for p in pts {
            self.add(p);
        }
        (self.progress)(self.count);
    }

    /// Keeps `p` when it is feasible and no kept point dominates or equals it.
    fn add(&mut self, p: Point) {
        let a = &mut self.archive;
        if !p.feasible()
            || a.iter()
                .any(|x| x.obj == p.obj || dominates(&x.obj, &p.obj))
        {
            return;
        }
        a.retain(|x| !dominates(&p.obj, &x.obj));
        a.push(p);
    }
}

/// Calls `f` on every encoding of the space: for k = 1.. segments, every combination of
/// k - 1 cut positions, every unit sequence without equal neighbours.
fn for_each_genome(space: &Space, f: &mut dyn FnMut(Genome)) {
    let u = &space.units;
    for k in 1..=space.max_segments {
        if k > 1 && space.layers < k {
            break;
        }
        let mut cuts: Vec<u32> = (1..k as u32).collect();
        loop {
            let mut digits = vec![0usize; k];
            loop {
                if digits.windows(2).all(|w| w[0] != w[1]) {
                    f(Genome {
                        cuts: cuts.clone(),
                        units: digits.iter().map(|&d| u[d] as u16).collect(),
                    });
                }
                if !next_digits(&mut digits, u.len()) {
                    break;
                }
            }
            if !next_combination(&mut cuts, space.layers as u32) {
                break;
            }
        }
    }
}

/// The next number in base `base` (last digit fastest); false after the last.
fn next_digits(digits: &mut [usize], base: usize) -> bool {
    for d in digits.iter_mut().rev() {
        *d += 1;
        if *d < base {
            return true;
        }
        *d = 0;
    }
    false
}

/// The next ascending combination of cut positions in `1..layers`; false after the last.
fn next_combination(cuts: &mut [u32], layers: u32) -> bool {
    let m = cuts.len();
    let mut i = m as i64 - 1;
    while i >= 0 {
        let max = layers - 1 - (m as u32 - 1 - i as u32);
        if cuts[i as usize] < max {
            break;
        }
        i -= 1;
    }
    if i < 0 {
        return false;
    }
    cuts[i as usize] += 1;
    for j in i as usize + 1..m {
        cuts[j] = cuts[j - 1] + 1;
    }
    true
}
