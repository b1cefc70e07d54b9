//! NSGA-II's parts: Pareto and constraint domination, non-dominated sorting, crowding
//! distance, environmental selection and binary tournaments.

use crate::kernel::Rng;

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

/// Non-dominated sorting with constraint domination; returns the rank of each point.
pub(crate) fn nd_ranks(pop: &[&Point]) -> Vec<usize> {
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
/// returns them with their (rank, crowding).
pub(crate) fn select(points: &[Point], cands: &[usize], n: usize) -> Vec<(usize, usize, f64)> {
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
