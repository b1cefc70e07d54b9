//! Exact hypervolume of a set of 4-objective points (all minimised), and the normalisation
//! the explorer uses.
//!
//! Method: slicing along the 4th objective (HSO): points sorted by `w` ascending; between two
//! consecutive `w` values the dominated region is the 3-D hypervolume of the points seen so
//! far, computed by a sweep along `z` over a 2-D staircase kept in a `BTreeMap` (Beume et
//! al.'s O(n log n) 3-D algorithm). Total cost O(n² log n): a few ms for fronts of a few
//! hundred points, about a second for several thousand. Every sum runs in a fixed order, so
//! the value is bit-for-bit reproducible.
//!
//! Normalisation: each objective is mapped linearly by `(f - lo) / (hi - lo)` with `lo`/`hi`
//! the smallest and largest value over a reference set of points (the explorer uses the
//! union of the fronts being compared, plus feasible baselines); the reference point is 1.1
//! in every normalised coordinate, so extreme points still add volume. Points at or beyond
//! the reference point in any coordinate add nothing.

use std::collections::BTreeMap;

use rayon::prelude::*;

/// Objective bounds for normalisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Smallest value per objective.
    pub lo: [f64; 4],
    /// Largest value per objective.
    pub hi: [f64; 4],
}

/// The reference point in normalised coordinates.
pub const REFERENCE: f64 = 1.1;

impl Bounds {
    /// Bounds of a set of points (`None` when it is empty).
    pub fn of<'a>(points: impl IntoIterator<Item = &'a [f64; 4]>) -> Option<Bounds> {
        let mut b: Option<Bounds> = None;
        for p in points {
            let e = b.get_or_insert(Bounds { lo: *p, hi: *p });
            for (i, &v) in p.iter().enumerate() {
                e.lo[i] = e.lo[i].min(v);
                e.hi[i] = e.hi[i].max(v);
            }
        }
        b
    }

    /// `p` normalised: 0 at `lo`, 1 at `hi` (a degenerate range maps to 0).
    pub fn normalise(&self, p: &[f64; 4]) -> [f64; 4] {
        let mut q = [0.0; 4];
        for i in 0..4 {
            let r = self.hi[i] - self.lo[i];
            q[i] = if r > 0.0 {
                ((p[i] - self.lo[i]) / r).max(0.0)
            } else {
                0.0
            };
        }
        q
    }

    /// Hypervolume of `points` normalised by these bounds, reference point [`REFERENCE`].
    pub fn hypervolume<'a>(&self, points: impl IntoIterator<Item = &'a [f64; 4]>) -> f64 {
        let pts: Vec<[f64; 4]> = points.into_iter().map(|p| self.normalise(p)).collect();
        hypervolume4(&pts, [REFERENCE; 4])
    }
}

/// Monte Carlo estimate of each point's exclusive hypervolume (the volume it dominates and
/// no other point does), the points normalised by their own [`Bounds`], reference point
/// [`REFERENCE`]: `samples` points drawn uniformly in `[0, REFERENCE]^4` from a generator
/// seeded by `seed`, each dominated (weakly) by exactly one point counting for that point.
/// Returns the counts; a point's volume is about `count / samples * REFERENCE^4`. Exact
/// contributions cost a hypervolume per point (about a second for a front of hundreds);
/// this costs `samples` times the points, and ranks well the points that stand out (a
/// corner, the edge of a gap), which is what choosing among them needs. The samples are drawn
/// in order and tested in parallel, so the counts do not depend on the threads.
pub fn sampled_contributions(points: &[[f64; 4]], samples: usize, seed: u64) -> Vec<u32> {
    let mut counts = vec![0u32; points.len()];
    let Some(bounds) = Bounds::of(points) else {
        return counts;
    };
    let norm: Vec<[f64; 4]> = points.iter().map(|p| bounds.normalise(p)).collect();
    let mut rng = crate::kernel::Rng::new(seed);
    let xs: Vec<[f64; 4]> = (0..samples)
        .map(|_| std::array::from_fn(|_| rng.next_f64() * REFERENCE))
        .collect();
    let sole: Vec<Option<usize>> = (xs.par_iter()).map(|x| sole_dominator(&norm, x)).collect();
    for i in sole.into_iter().flatten() {
        counts[i] += 1;
    }
    counts
}

/// The index of the only point of `points` that weakly dominates `x` (`None`: none or
/// several).
fn sole_dominator(points: &[[f64; 4]], x: &[f64; 4]) -> Option<usize> {
    let mut found = None;
    for (i, q) in points.iter().enumerate() {
        if (0..4).all(|d| q[d] <= x[d]) {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    found
}

/// Exact hypervolume dominated by `points` (minimisation) up to `reference`.
pub fn hypervolume4(points: &[[f64; 4]], reference: [f64; 4]) -> f64 {
    let mut pts: Vec<[f64; 4]> = points
        .iter()
        .filter(|p| (0..4).all(|i| p[i] < reference[i]))
        .copied()
        .collect();
    pts.sort_by(|a, b| {
        a[3].total_cmp(&b[3])
            .then(a[2].total_cmp(&b[2]))
            .then(a[1].total_cmp(&b[1]))
            .then(a[0].total_cmp(&b[0]))
    });
    let mut total = 0.0;
    for i in 0..pts.len() {
        let next_w = pts.get(i + 1).map_or(reference[3], |p| p[3]);
        let width = next_w - pts[i][3];
        if width > 0.0 {
            let slice: Vec<[f64; 3]> = pts[..=i].iter().map(|p| [p[0], p[1], p[2]]).collect();
            total += hypervolume3(&slice, [reference[0], reference[1], reference[2]]) * width;
        }
    }
    total
}

/// Exact 3-D hypervolume (minimisation) of points strictly inside `reference`.
pub fn hypervolume3(points: &[[f64; 3]], reference: [f64; 3]) -> f64 {
    let mut pts: Vec<[f64; 3]> = points
        .iter()
        .filter(|p| (0..3).all(|i| p[i] < reference[i]))
        .copied()
        .collect();
    pts.sort_by(|a, b| {
        a[2].total_cmp(&b[2])
            .then(a[1].total_cmp(&b[1]))
            .then(a[0].total_cmp(&b[0]))
    });
    // staircase: x -> y, x ascending, y strictly descending; keys are non-negative-safe via
    // total-order bits
    let mut stair: BTreeMap<Key, f64> = BTreeMap::new();
    let (rx, ry) = (reference[0], reference[1]);
    let mut area = 0.0;
    let mut volume = 0.0;
    let mut prev_z = pts.first().map_or(0.0, |p| p[2]);
    for p in &pts {
        volume += area * (p[2] - prev_z);
        prev_z = p[2];
        let (px, py) = (p[0], p[1]);
        // dominated by a point with x <= px and y <= py?
        if let Some((_, &y)) = stair.range(..=Key(px)).next_back() {
            if y <= py {
                continue;
            }
        }
        let mut level = stair.range(..Key(px)).next_back().map_or(ry, |(_, &y)| y);
        let mut x = px;
        let mut remove = Vec::new();
        let mut open = true;
        for (k, &y) in stair.range(Key(px)..) {
            area += (k.0 - x) * (level - py);
            if y >= py {
                remove.push(*k);
                level = y;
                x = k.0;
            } else {
                open = false;
                break;
            }
        }
        if open {
            area += (rx - x) * (level - py);
        }
        for k in remove {
            stair.remove(&k);
        }
        stair.insert(Key(px), py);
    }
    volume += area * (reference[2] - prev_z);
    volume
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Key(f64);
impl Eq for Key {}
impl PartialOrd for Key {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Key {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inclusion-exclusion over all subsets: exact for tiny sets.
    fn brute(points: &[[f64; 4]], r: [f64; 4]) -> f64 {
        let n = points.len();
        let mut total = 0.0;
        for mask in 1u32..(1 << n) {
            let mut corner = [f64::MIN; 4];
            for (i, p) in points.iter().enumerate() {
                if mask & (1 << i) != 0 {
                    for d in 0..4 {
                        corner[d] = corner[d].max(p[d]);
                    }
                }
            }
            let v: f64 = (0..4).map(|d| (r[d] - corner[d]).max(0.0)).product();
            total += if mask.count_ones() % 2 == 1 { v } else { -v };
        }
        total
    }

    #[test]
    fn matches_inclusion_exclusion() {
        let mut rng = crate::kernel::Rng::new(7);
        for n in 1..=10 {
            for _ in 0..20 {
                let pts: Vec<[f64; 4]> = (0..n)
                    .map(|_| {
                        let mut p = [0.0; 4];
                        for x in &mut p {
                            // coarse grid: ties and duplicates happen
                            *x = (rng.below(6) as f64) / 5.0;
                        }
                        p
                    })
                    .collect();
                let a = hypervolume4(&pts, [1.1; 4]);
                let b = brute(&pts, [1.1; 4]);
                assert!((a - b).abs() < 1e-9, "n={n} {a} vs {b} for {pts:?}");
            }
        }
    }

    /// Exact exclusive hypervolume of each point: the whole set's minus the set's without it.
    fn exact_contributions(pts: &[[f64; 4]]) -> Vec<f64> {
        let all = hypervolume4(pts, [REFERENCE; 4]);
        (0..pts.len())
            .map(|i| {
                let rest: Vec<[f64; 4]> = (pts.iter().enumerate())
                    .filter(|&(j, _)| j != i)
                    .map(|(_, p)| *p)
                    .collect();
                all - hypervolume4(&rest, [REFERENCE; 4])
            })
            .collect()
    }

    #[test]
    fn sampled_contributions_estimate_the_exclusive_volumes() {
        let mut rng = crate::kernel::Rng::new(11);
        // points already spanning [0, 1] in every objective, so normalising leaves them be
        let mut pts = vec![[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]];
        pts.extend((0..8).map(|_| std::array::from_fn(|_| rng.next_f64())));
        let samples = 200_000;
        let counts = sampled_contributions(&pts, samples, 5);
        let box_volume = REFERENCE.powi(4);
        for (c, exact) in counts.iter().zip(exact_contributions(&pts)) {
            let estimate = *c as f64 / samples as f64 * box_volume;
            assert!((estimate - exact).abs() < 0.003, "{estimate} vs {exact}");
        }
    }

    #[test]
    fn a_dominated_point_or_a_duplicate_contributes_nothing() {
        let pts = [
            [0.0, 0.0, 0.5, 1.0],
            [0.5, 0.5, 0.6, 1.0], // dominated by the first
            [1.0, 1.0, 0.0, 0.0],
            [1.0, 1.0, 0.0, 0.0], // the third again
        ];
        let counts = sampled_contributions(&pts, 10_000, 1);
        assert!(counts[0] > 0);
        assert_eq!(&counts[1..], &[0, 0, 0]);
        assert_eq!(sampled_contributions(&[], 10, 1), Vec::<u32>::new());
    }

    #[test]
    fn single_point_and_empty() {
        assert_eq!(hypervolume4(&[], [1.0; 4]), 0.0);
        let v = hypervolume4(&[[0.5; 4]], [1.0; 4]);
        assert!((v - 0.0625).abs() < 1e-12);
    }
}
