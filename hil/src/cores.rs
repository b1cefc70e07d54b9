//! Where a partition runs inside its device: its unit, its cores, its engine threads, and
//! the host CPUs those cores are on.
//!
//! A mapping's unit name is `"dev.unit"` (every core of the unit) or `"dev.unit[<cores>]"`
//! (a core set, [`dicesim_plan::coreset`]); AutoDiCE's per-core names (`lenovo.cpu0`) mean
//! core 0 of `lenovo.cpu` when the platform has no unit of that name. A partition runs with
//! one engine thread per core. On a board, core `i` is host CPU `i`; in the emulation rig a
//! device's cores are mapped onto the host CPUs the rig gave that device ([`host_cpus`]).

use dicesim_plan::coreset::{trailing_core, CoreSet, UnitRef};
use dicesim_sim::platform::{Platform, UnitKind};

/// A partition's place in the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Unit index in the platform.
    pub unit: usize,
    /// Device index in the platform.
    pub device: usize,
    /// The unit's cores it runs on (empty for a GPU unit: not pinned).
    pub cores: CoreSet,
    /// Engine intra-op threads (0: the engine's default, for GPU units).
    pub threads: u32,
}

/// Resolves unit name `name` (with or without a core set) against `pf`; `None` when the
/// name is malformed or names no unit of the platform.
pub fn resolve(pf: &Platform, name: &str) -> Option<Placement> {
    let (unit, cores) = unit_and_cores(pf, name)?;
    let u = &pf.units[unit];
    let (cores, threads) = match u.kind {
        UnitKind::Gpu => (CoreSet(0), 0),
        UnitKind::Cpu => {
            let c = cores.unwrap_or_else(|| CoreSet::first(u.cores.max(1)));
            (c, c.count())
        }
    };
    Some(Placement {
        unit,
        device: u.device,
        cores,
        threads,
    })
}

/// The index of the physical unit and the core set named (None: the whole unit). The
/// base unit is looked up by name, so a platform that lists core sets as units of their
/// own still resolves to the physical unit.
fn unit_and_cores(pf: &Platform, name: &str) -> Option<(usize, Option<CoreSet>)> {
    if let Ok(UnitRef {
        unit,
        cores: Some(c),
    }) = UnitRef::parse(name)
    {
        return Some((pf.unit_index(&unit)?, Some(c)));
    }
    if let Some(u) = pf.unit_index(name) {
        return Some((u, None));
    }
    let (base, core) = trailing_core(name)?;
    Some((pf.unit_index(base)?, Some(CoreSet(1 << core))))
}

/// The platform speed of a partition placed at `place` [GFLOP/s]: its unit's, in
/// proportion to the cores it holds (a GPU unit's whole).
pub fn speed(pf: &Platform, place: &Placement) -> f64 {
    let u = &pf.units[place.unit];
    match u.kind {
        UnitKind::Gpu => u.gflops,
        UnitKind::Cpu => u.gflops * place.cores.count() as f64 / u.cores.max(1) as f64,
    }
}

/// The host cores a partition at `place` needs to compute at its platform speed, on a
/// host of `host_gflops` per core (one engine thread; see `crate::emulate`).
pub fn share(pf: &Platform, place: &Placement, host_gflops: f64) -> f64 {
    speed(pf, place) / host_gflops.max(1e-9)
}

/// The full name of the physical unit that `name` (core set or not) runs on.
pub fn whole_unit(pf: &Platform, name: &str) -> Option<String> {
    resolve(pf, name).map(|p| pf.units[p.unit].full_name.clone())
}

/// The device index of the unit named `name`, core set or not.
pub fn device_of(pf: &Platform, name: &str) -> Option<usize> {
    resolve(pf, name).map(|p| p.device)
}

/// The host CPUs that `cores` run on, ascending and each once: core `i` is CPU `i` on a
/// board (`map` None), and `map[i % map.len()]` in the rig.
pub fn host_cpus(cores: CoreSet, map: Option<&[usize]>) -> Vec<u32> {
    let mut v: Vec<u32> = match map {
        Some(m) if !m.is_empty() => (cores.cores().iter())
            .map(|&i| m[i as usize % m.len()] as u32)
            .collect(),
        _ => cores.cores(),
    };
    v.sort_unstable();
    v.dedup();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpus_map_cores() {
        assert_eq!(host_cpus(CoreSet(0b101), None), vec![0, 2]);
        assert_eq!(host_cpus(CoreSet(0b11), Some(&[4, 5])), vec![4, 5]);
        // more cores than host CPUs: cores share them round-robin
        assert_eq!(host_cpus(CoreSet(0b111), Some(&[1, 3])), vec![1, 3]);
        assert_eq!(host_cpus(CoreSet(0b100), Some(&[1, 3])), vec![1]);
        assert_eq!(host_cpus(CoreSet(0), Some(&[1])), Vec::<u32>::new());
    }
}
