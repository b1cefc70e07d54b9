//! Core allocation: the core sets of a CPU the search may put segments on ([`blocks`]), the
//! prepared scenario extended with them ([`extend`]), and the groups of units that share one
//! CPU ([`Family`]).
//!
//! A segment on a core set runs with that many threads (slower than on the whole CPU, see
//! [`crate::compute`]); two neighbouring segments on disjoint core sets of one CPU run at
//! the same time, a pipeline inside the device.

use dicesim_plan::coreset::CoreSet;

use super::tuning::MAX_CPU_STAGES;
use crate::platform::{Platform, UnitKind};
use crate::prepared::PreparedScenario;

/// The core sets searched on a CPU of `cores` cores: the aligned blocks of `cores / k`
/// cores for `k` = 2 ..= [`MAX_CPU_STAGES`] where `k` divides `cores` (4 cores: halves and
/// single cores; 6 cores: halves and thirds; 8 cores: halves and quarters). Unequal splits
/// (3 + 1 cores) are left out to keep the space small.
pub fn blocks(cores: u32) -> Vec<CoreSet> {
    let mut out = Vec::new();
    for k in 2..=MAX_CPU_STAGES {
        if cores >= k && cores.is_multiple_of(k) {
            let size = cores / k;
            out.extend((0..k).map(|i| CoreSet::block(i * size, size)));
        }
    }
    out
}

/// The scenario prepared again on a platform with the [`blocks`] of every whole CPU unit
/// among `units` added, and the allowed units followed by the added ones; `None` when no
/// allowed unit is a CPU of several cores.
pub(crate) fn extend(
    prep: &PreparedScenario,
    units: &[usize],
) -> Option<(PreparedScenario, Vec<usize>)> {
    let mut platform = prep.platform.clone();
    let mut all = units.to_vec();
    for &u in units {
        for v in add_blocks(&mut platform, u) {
            if !all.contains(&v) {
                all.push(v);
            }
        }
    }
    if all.len() == units.len() {
        return None;
    }
    let ext = PreparedScenario::new(prep.graph.clone(), platform, prep.workload);
    Some((ext, all))
}

/// Adds the core-set units of unit `u` when it is a whole CPU of several cores.
fn add_blocks(platform: &mut Platform, u: usize) -> Vec<usize> {
    let unit = &platform.units[u];
    if unit.kind != UnitKind::Cpu || unit.parent != u || unit.cores < 2 {
        return Vec::new();
    }
    blocks(unit.cores)
        .into_iter()
        .filter_map(|cs| platform.core_set_unit(u, cs).ok())
        .collect()
}

/// A CPU of the space with the core sets of it the space holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The whole CPU's unit index.
    pub cpu: u16,
    /// The core-set units (not the whole CPU), in space order.
    pub sets: Vec<u16>,
    /// Ordered pairs of core-set units whose cores are disjoint (they run at once).
    pub disjoint: Vec<(u16, u16)>,
    /// The most segments the CPU can run at once (pairwise disjoint core sets).
    pub stages: usize,
}

impl Family {
    /// The family of whole CPU `cpu` among `units` (`None` without core sets of it).
    pub(crate) fn of(platform: &Platform, cpu: usize, units: &[usize]) -> Option<Family> {
        let p = &platform.units;
        if p[cpu].parent != cpu {
            return None;
        }
        let sets: Vec<u16> = (units.iter())
            .filter(|&&v| v != cpu && p[v].parent == cpu)
            .map(|&v| v as u16)
            .collect();
        if sets.is_empty() {
            return None;
        }
        let cores = |v: u16| p[v as usize].core_set;
        let mut disjoint = Vec::new();
        for &a in &sets {
            for &b in &sets {
                if !cores(a).overlaps(cores(b)) {
                    disjoint.push((a, b));
                }
            }
        }
        Some(Family {
            cpu: cpu as u16,
            stages: most_disjoint(sets.iter().map(|&v| cores(v)).collect()),
            sets,
            disjoint,
        })
    }

    /// Whether unit `u` is this CPU or one of its core sets.
    pub fn contains(&self, u: u16) -> bool {
        u == self.cpu || self.sets.contains(&u)
    }
}

/// How many of `sets` can be picked pairwise disjoint: greedily, smallest first (exact for
/// aligned blocks, a lower bound otherwise).
fn most_disjoint(mut sets: Vec<CoreSet>) -> usize {
    sets.sort_by_key(|s| (s.count(), s.0));
    let mut used = CoreSet(0);
    let mut n = 0;
    for s in sets {
        if !s.overlaps(used) {
            used = CoreSet(used.0 | s.0);
            n += 1;
        }
    }
    n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_divide_the_cpu() {
        let names = |c| blocks(c).iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(names(4), ["0-1", "2-3", "0", "1", "2", "3"]);
        assert_eq!(names(6), ["0-2", "3-5", "0-1", "2-3", "4-5"]);
        assert_eq!(names(2), ["0", "1"]);
        assert!(blocks(1).is_empty());
        assert_eq!(most_disjoint(blocks(4)), 4);
        assert_eq!(most_disjoint(blocks(6)), 3);
    }
}
