//! NSGA-II's parts: Pareto and constraint domination, non-dominated sorting, crowding
//! distance, environmental selection and binary tournaments.

use crate::kernel::Rng;

use super::hv::sampled_contributions;
use super::tuning::CONTRIBUTION_SAMPLES;
use super::Point;

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
pub(crate) fn c_dominates(a: &Point, b: &Point) -> bool {
    match (a.feasible(), b.feasible()) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a.violation < b.violation,
        (true, true) => dominates(&a.obj, &b.obj),
    }
}

/// Non-dominated sorting with constraint domination, front by front until the fronts
/// ranked hold at least `need` points; returns the rank of each point (`usize::MAX` for
/// the points left unranked). Memory stays linear in the number of points (the
/// first population is selected from every evaluation so far, tens of thousands).
pub(crate) fn nd_ranks(pop: &[&Point], need: usize) -> Vec<usize> {
    let mut rank = vec![usize::MAX; pop.len()];
    let mut left: Vec<usize> = (0..pop.len()).collect();
    let mut ranked = 0;
    let mut r = 0;
    while ranked < need && !left.is_empty() {
        let front: Vec<usize> = (left.iter().copied())
            .filter(|&i| !left.iter().any(|&j| c_dominates(pop[j], pop[i])))
            .collect();
        for &i in &front {
            rank[i] = r;
        }
        ranked += front.len();
        left.retain(|&i| rank[i] == usize::MAX);
        r += 1;
    }
    rank
}

/// Crowding distance of each member of one front.
pub(crate) fn crowding(pop: &[&Point], members: &[usize]) -> Vec<f64> {
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
/// returns them with their (rank, crowding). The last front that fits only in part keeps
/// its members of the largest (sampled) exclusive hypervolume, ties by crowding distance:
/// in four objectives crowding distance keeps members beside one wide gap over members
/// that alone dominate a large region.
pub(crate) fn select(points: &[Point], cands: &[usize], n: usize) -> Vec<(usize, usize, f64)> {
    let mut c: Vec<usize> = cands.to_vec();
    c.sort_unstable();
    c.dedup();
    let pop: Vec<&Point> = c.iter().map(|&i| &points[i]).collect();
    let rank = nd_ranks(&pop, n);
    let maxr = (rank.iter().copied())
        .filter(|&r| r != usize::MAX)
        .max()
        .unwrap_or(0);
    let mut out = Vec::with_capacity(n);
    for r in 0..=maxr {
        let members: Vec<usize> = (0..pop.len()).filter(|&i| rank[i] == r).collect();
        let cd = crowding(&pop, &members);
        let mut m: Vec<(usize, f64)> = members.iter().copied().zip(cd).collect();
        if out.len() + m.len() > n {
            m = most_exclusive(&pop, &c, m, n - out.len());
        }
        out.extend(m.into_iter().map(|(i, d)| (c[i], r, d)));
        if out.len() >= n {
            break;
        }
    }
    out
}

/// The `keep` members of one front of the largest sampled exclusive hypervolume, ties by
/// crowding distance, then by point index; `m` holds each member's index into `pop` and
/// its crowding distance, `ids[i]` is the point index of `pop[i]`. The sample is seeded by
/// the front's size (the same candidates give the same choice).
fn most_exclusive(
    pop: &[&Point],
    ids: &[usize],
    m: Vec<(usize, f64)>,
    keep: usize,
) -> Vec<(usize, f64)> {
    let objs: Vec<[f64; 4]> = m.iter().map(|&(i, _)| pop[i].obj).collect();
    let hv = sampled_contributions(&objs, CONTRIBUTION_SAMPLES, m.len() as u64);
    let mut order: Vec<usize> = (0..m.len()).collect();
    order.sort_by(|&a, &b| {
        (hv[b].cmp(&hv[a]))
            .then(m[b].1.total_cmp(&m[a].1))
            .then(ids[m[a].0].cmp(&ids[m[b].0]))
    });
    order.into_iter().take(keep).map(|k| m[k]).collect()
}

pub(crate) fn sort_front(front: &mut [Point]) {
    front.sort_by(|a, b| {
        (0..4)
            .map(|i| a.obj[i].total_cmp(&b.obj[i]))
            .fold(std::cmp::Ordering::Equal, |o, x| o.then(x))
            .then(a.eval.cmp(&b.eval))
    });
}

pub(crate) fn tournament(rng: &mut Rng, pop: &[(usize, usize, f64)]) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::explore::Genome;

    fn point(eval: usize, obj: [f64; 4], violation: f64) -> Point {
        Point {
            eval,
            genome: Genome {
                cuts: Vec::new(),
                units: vec![0],
            },
            obj,
            violation,
            overload: 0.0,
            partitions: 1,
            part_units: vec![0],
        }
    }

    /// Rank by definition: the length of the longest chain of points dominating it.
    fn depth(pop: &[&Point], i: usize, memo: &mut Vec<Option<usize>>) -> usize {
        if let Some(d) = memo[i] {
            return d;
        }
        let d = (0..pop.len())
            .filter(|&j| c_dominates(pop[j], pop[i]))
            .map(|j| depth(pop, j, memo) + 1)
            .max()
            .unwrap_or(0);
        memo[i] = Some(d);
        d
    }

    #[test]
    fn ranks_are_the_longest_dominating_chain_and_stop_when_enough_are_ranked() {
        let mut rng = Rng::new(5);
        let pts: Vec<Point> = (0..200)
            .map(|i| {
                let obj = [0.0; 4].map(|_: f64| rng.below(8) as f64);
                let violation = if rng.below(5) == 0 {
                    rng.below(3) as f64 + 0.5
                } else {
                    0.0
                };
                point(i, obj, violation)
            })
            .collect();
        let pop: Vec<&Point> = pts.iter().collect();
        let mut memo = vec![None; pop.len()];
        let want: Vec<usize> = (0..pop.len()).map(|i| depth(&pop, i, &mut memo)).collect();
        assert_eq!(nd_ranks(&pop, pop.len()), want);
        let some = nd_ranks(&pop, 30);
        // the fronts up to the first that brings the count to 30
        let last = (0..).find(|&r| want.iter().filter(|&&w| w <= r).count() >= 30);
        for (s, w) in some.iter().zip(&want) {
            if Some(*w) <= last {
                assert_eq!(s, w);
            } else {
                assert_eq!(*s, usize::MAX, "ranked past the fronts needed");
            }
        }
    }

    #[test]
    fn a_front_cut_short_keeps_the_members_that_alone_dominate_most() {
        // a front in two objectives (the others equal) on the line x + y = 1; the member at
        // 0.6 has the widest gap beside it (largest crowding distance, 1.22 against the
        // member at 0.81's 0.78) but the smaller exclusive area (0.6 x 0.01 = 0.006 against
        // 0.2 x 0.19 = 0.038); the extreme at x = 1 has 0.1 x 0.19 = 0.019
        let xs = [0.0, 0.6, 0.61, 0.81, 1.0];
        let pts: Vec<Point> = (xs.iter().enumerate())
            .map(|(i, &x)| point(i, [x, 0.0, 1.0 - x, 0.0], 0.0))
            .collect();
        let mut kept: Vec<usize> = select(&pts, &[0, 1, 2, 3, 4], 3)
            .into_iter()
            .map(|k| k.0)
            .collect();
        kept.sort_unstable();
        assert_eq!(
            kept,
            vec![0, 3, 4],
            "crowding distance alone keeps 0, 1 and 4"
        );
    }
}
