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
    let mut archive: Vec<Point> = Vec::new();
    let mut chunk: Vec<Genome> = Vec::with_capacity(ENUMERATION_CHUNK);
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
