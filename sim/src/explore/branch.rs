//! Branch offloading: the single-frame latency of a model with parallel branches (the two
//! heads of a detector, the shortcut of a residual block) falls when a branch runs on
//! another unit while the first unit goes on with the rest. In the topological order such a
//! branch is a range `a..b` of layers that the layer right after it, `b`, does not read
//! from ([`parallel_ranges`]); the search seeds mappings that keep the whole model on one
//! fast unit but such a range on another ([`Search::branch_seeds`]).

use super::search::Search;
use super::Genome;
use crate::prepared::PreparedScenario;

/// Fast units tried as the unit the model runs on.
const BRANCH_HOSTS: usize = 2;
/// Fast whole units tried as the unit a branch runs on (besides the host device's other
/// units).
const BRANCH_HELPERS: usize = 4;
/// Most seeds, as a share of the budget [%] (the first hosts and helpers first).
const BRANCH_BUDGET_PCT: u64 = 5;
/// A layer leaves the host for another unit of its device when that saves at least this
/// share of the host's time on the whole model [per mille] (on resnet50 over the 16-board
/// fleet, moving every layer that gains at all made a TX2 mapping of dozens of GPU/CPU
/// segments that took the search into plans 5-10x as costly to simulate).
const LOCAL_GAIN_PERMILLE: u64 = 2;
/// Most ranges seeded (the shortest first).
const BRANCH_RANGES: usize = 24;

/// The ranges `a..b` (`b` < the layer count) whose layers layer `b` does not read from,
/// shortest first: run elsewhere, they overlap with `b` and what follows it.
pub(crate) fn parallel_ranges(prep: &PreparedScenario) -> Vec<(usize, usize)> {
    ranges_before(&last_read(prep))
}

/// The last layer whose output each layer reads (`None`: graph inputs only).
fn last_read(prep: &PreparedScenario) -> Vec<Option<usize>> {
    let mut last: Vec<Option<usize>> = vec![None; prep.graph.layers.len()];
    for t in &prep.tensors {
        let Some(p) = t.producer else { continue };
        for &c in &t.consumers {
            let r = &mut last[c as usize];
            *r = Some(r.map_or(p as usize, |x| x.max(p as usize)));
        }
    }
    last
}

/// The ranges `a..b` after the last layer that layer `b` reads, for every `b`, shortest
/// first (then by start), at most [`BRANCH_RANGES`].
fn ranges_before(last_read: &[Option<usize>]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (b, read) in last_read.iter().enumerate().skip(1) {
        let first = read.map_or(0, |p| p + 1);
        out.extend((first..b).map(|a| (a, b)));
    }
    out.sort_by_key(|&(a, b)| (b - a, a));
    out.truncate(BRANCH_RANGES);
    out
}

impl Search<'_> {
    /// The whole model on one of the [`BRANCH_HOSTS`] fastest units, each layer moved to the
    /// unit of the host's device that runs it fastest ([`Self::local_best`]), alone and with
    /// a parallel range on one of the [`BRANCH_HELPERS`] fastest other whole units or
    /// another unit of the host's device; at most [`BRANCH_BUDGET_PCT`] of the budget.
    pub(crate) fn branch_seeds(&self) -> Vec<Genome> {
        let ranges = parallel_ranges(self.prep);
        let mut out = Vec::new();
        let mut push = |assign: &[usize]| {
            let g = Genome::from_assignment(assign);
            if g.units.len() <= self.space.max_segments && !out.contains(&g) {
                out.push(g);
            }
        };
        for &host in self.by_speed.iter().take(BRANCH_HOSTS) {
            let base = self.local_best(host);
            push(&base);
            for v in self.helpers(host) {
                for &(a, b) in &ranges {
                    let mut assign = base.clone();
                    assign[a..b].fill(v as usize);
                    push(&assign);
                }
            }
        }
        out.truncate((self.budget * BRANCH_BUDGET_PCT / 100) as usize);
        out
    }

    /// Each layer on the unit of `host`'s device that runs it fastest when that saves at
    /// least [`LOCAL_GAIN_PERMILLE`] of the host's time on the whole model (a GPU's device hands
    /// the layers it is slow at to its CPU; smaller gains are eaten by the copies and the
    /// extra partitions, and only make the plan costly to simulate).
    fn local_best(&self, host: u16) -> Vec<usize> {
        let local = self.local_units(host);
        let t = &self.prep.layer_ns;
        let worth = self.times.whole(host) * LOCAL_GAIN_PERMILLE / 1000;
        (0..self.space.layers)
            .map(|l| {
                let best = local.iter().copied().min_by_key(|&u| (t[u][l], u));
                match best {
                    Some(u) if t[u][l] + worth < t[host as usize][l] => u,
                    _ => host as usize,
                }
            })
            .collect()
    }

    /// The units a branch of a model on `host` may go to.
    fn helpers(&self, host: u16) -> Vec<u16> {
        let units = &self.prep.platform.units;
        let device = units[host as usize].device;
        let others = (self.by_speed.iter().copied())
            .filter(|&u| units[u as usize].device != device)
            .take(BRANCH_HELPERS);
        let local = self.local_units(host).into_iter().map(|u| u as u16);
        others.chain(local).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_those_the_next_layer_does_not_read() {
        // 0 -> 1 -> 2 (head one: 1, 2), 3 reads 0 (head two), 4 reads 3
        let last = [None, Some(0), Some(1), Some(0), Some(3)];
        assert_eq!(ranges_before(&last), vec![(2, 3), (1, 3)]);
        // a chain has none
        assert!(ranges_before(&[None, Some(0), Some(1)]).is_empty());
        // a layer reading only the graph input can follow any range
        assert_eq!(ranges_before(&[None, None]), vec![(0, 1)]);
    }
}
