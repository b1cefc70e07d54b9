//! The memory model of a unit's inference engine (docs/simulator.md#memory).
//!
//! What a device needs to serve its partitions is, per physical unit it uses,
//!
//! ```text
//! memory_base_mb                                   (the engine loaded, once per physical unit)
//! + sum over classes c of the weights of class c
//!   x weights_factor_c                             (the engine's packed or converted copies,
//!                                                   and what a load holds at its peak)
//! + peak live activations x activations_factor    (the engine's arenas and scratch buffers)
//! ```
//!
//! plus one receive buffer per incoming connection and the input frame of source
//! partitions. `weights_factor_c` is the class's `[unit.classes.<c>] weights_factor`, or the
//! unit's `weights_factor` (engines pack convolution and fully connected weights differently).
//! The defaults (0, 1, 1) are the plain byte counts of the model; measured figures per engine
//! come from `dicesim profile --memory` (`docs/simulator.md#memory`).

use std::path::Path;

use dicesim_plan::opclass::OpClass;

use crate::error::SimError;
use crate::platform::Platform;
use crate::prepared::{PreparedScenario, SimPlan};

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// Number of operator classes ([`OpClass::ALL`]).
const CLASSES: usize = OpClass::ALL.len();

/// A figure per operator class, indexed in the order of [`OpClass::ALL`].
pub type PerClass<T> = [T; CLASSES];

/// Index of `c` in [`OpClass::ALL`] (the declaration order).
pub fn class_index(c: OpClass) -> usize {
    c as usize
}

/// How one unit's engine turns weights and activations into resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitMemory {
    /// Resident memory of the engine loaded and idle [MiB], counted once per physical unit
    /// used (core sets share their CPU's).
    pub base_mb: f64,
    /// Resident bytes per byte of weights served (classes without their own factor).
    pub weights_factor: f64,
    /// Resident bytes per byte of peak live activations.
    pub activations_factor: f64,
    /// A class's own weights factor (`[unit.classes.<c>] weights_factor`), if any.
    pub class_weights: PerClass<Option<f64>>,
}

impl Default for UnitMemory {
    fn default() -> Self {
        UnitMemory {
            base_mb: 0.0,
            weights_factor: 1.0,
            activations_factor: 1.0,
            class_weights: [None; CLASSES],
        }
    }
}

/// The memory keys of a unit (platform, device template or calibration file).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MemoryKeys {
    pub memory_base_mb: Option<f64>,
    pub weights_factor: Option<f64>,
    pub activations_factor: Option<f64>,
    /// `[unit.classes.<c>] weights_factor`.
    pub class_weights: PerClass<Option<f64>>,
}

impl MemoryKeys {
    /// The class weights factors of `classes` (class, factor) pairs.
    pub(crate) fn with_classes(
        mut self,
        classes: impl Iterator<Item = (OpClass, Option<f64>)>,
    ) -> MemoryKeys {
        for (c, f) in classes {
            self.class_weights[class_index(c)] = f.or(self.class_weights[class_index(c)]);
        }
        self
    }
}

impl UnitMemory {
    /// `self` with the keys that `k` gives, each checked (finite, >= 0); `key` names them
    /// in errors.
    pub(crate) fn with_keys(
        self,
        path: &Path,
        key: &dyn Fn(&str) -> String,
        k: MemoryKeys,
    ) -> Result<UnitMemory, SimError> {
        let check = |name: &str, v: Option<f64>, old: f64| match v {
            None => Ok(old),
            Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
            Some(v) => Err(SimError::invalid(
                path,
                key(name),
                format!("expected a finite number >= 0, found {v}"),
            )),
        };
        let mut class_weights = self.class_weights;
        for (i, c) in OpClass::ALL.iter().enumerate() {
            let name = format!("classes.{}.weights_factor", c.name());
            if let Some(v) = k.class_weights[i] {
                class_weights[i] = Some(check(&name, Some(v), 0.0)?);
            }
        }
        Ok(UnitMemory {
            base_mb: check("memory_base_mb", k.memory_base_mb, self.base_mb)?,
            weights_factor: check("weights_factor", k.weights_factor, self.weights_factor)?,
            activations_factor: check(
                "activations_factor",
                k.activations_factor,
                self.activations_factor,
            )?,
            class_weights,
        })
    }

    /// The engine's fixed base [bytes].
    pub fn base_bytes(&self) -> u64 {
        (self.base_mb * MIB).round() as u64
    }

    /// The weights factor of class `c`: its own, or the unit's.
    pub fn weights_factor_of(&self, c: OpClass) -> f64 {
        self.class_weights[class_index(c)].unwrap_or(self.weights_factor)
    }

    /// Resident bytes for `bytes` of weights (of classes without their own factor).
    pub fn weights(&self, bytes: u64) -> u64 {
        scale(bytes, self.weights_factor)
    }

    /// Resident bytes for weights of `bytes[c]` bytes per class: each class by its factor.
    pub fn weights_by_class(&self, bytes: &PerClass<u64>) -> u64 {
        let total = bytes.iter().sum::<u64>();
        if self.class_weights.iter().all(Option::is_none) {
            // one factor: the same figure, to the byte, as before classes had their own
            return self.weights(total);
        }
        let scaled: f64 = (OpClass::ALL.iter().zip(bytes))
            .map(|(&c, &b)| b as f64 * self.weights_factor_of(c))
            .sum();
        scaled.round() as u64
    }

    /// Resident bytes for a peak of `bytes` of live activations.
    pub fn activations(&self, bytes: u64) -> u64 {
        scale(bytes, self.activations_factor)
    }
}

/// `bytes x f`, exact for the default factor 1 (so that plain platforms keep their figures
/// to the byte).
fn scale(bytes: u64, f: f64) -> u64 {
    if f == 1.0 {
        bytes
    } else {
        (bytes as f64 * f).round() as u64
    }
}

/// What one partition needs before its unit's factors apply.
#[derive(Debug, Clone, PartialEq)]
pub struct PartTerms {
    /// The unit it runs on (index into [`Platform::units`]).
    pub unit: usize,
    /// Its weights per operator class [bytes].
    pub weights: PerClass<u64>,
    /// Its peak of live activations [bytes].
    pub activations: u64,
    /// The graph inputs it reads (source partitions) [bytes].
    pub inputs: u64,
}

/// The terms of every device's memory need for a plan: what the factors multiply and what
/// they do not.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryTerms {
    /// One per partition of the plan.
    pub parts: Vec<PartTerms>,
    /// Receive buffers of each device (one per incoming connection) [bytes].
    pub receive: Vec<u64>,
    /// Physical units that run a partition (each counts its engine's base once).
    pub engines: Vec<usize>,
}

impl MemoryTerms {
    /// Each device's need [bytes] with its units' memory models (see the module docs).
    pub fn device_bytes(&self, platform: &Platform) -> Vec<u64> {
        let units = &platform.units;
        let mut dev = self.receive.clone();
        let mut unit_act = vec![0u64; units.len()];
        for p in &self.parts {
            let unit = &units[p.unit];
            dev[unit.device] += unit.memory.weights_by_class(&p.weights) + p.inputs;
            // a unit runs one partition at a time: its largest peak counts
            unit_act[p.unit] = unit_act[p.unit].max(p.activations);
        }
        for (u, a) in unit_act.iter().enumerate() {
            dev[units[u].device] += units[u].memory.activations(*a);
        }
        for &u in &self.engines {
            dev[units[u].device] += units[u].memory.base_bytes();
        }
        dev
    }
}

impl PreparedScenario {
    /// The memory terms of `plan` (see [`MemoryTerms`]).
    pub fn memory_terms(&self, plan: &SimPlan) -> MemoryTerms {
        let mut part_of = vec![u32::MAX; self.graph.layers.len()];
        for (pi, p) in plan.parts.iter().enumerate() {
            for &l in &p.layers {
                part_of[l] = pi as u32;
            }
        }
        let parts = (0..plan.parts.len())
            .map(|pi| self.part_terms(plan, pi, &part_of))
            .collect();
        let mut receive = vec![0u64; self.platform.devices.len()];
        for c in &plan.conns {
            receive[self.platform.units[plan.parts[c.to].unit].device] += c.bytes;
        }
        let units = &self.platform.units;
        let mut engines: Vec<usize> = plan.parts.iter().map(|p| units[p.unit].parent).collect();
        engines.sort_unstable();
        engines.dedup();
        MemoryTerms {
            parts,
            receive,
            engines,
        }
    }

    /// The terms of partition `pi`; `part_of[l]` is the partition of layer `l`.
    fn part_terms(&self, plan: &SimPlan, pi: usize, part_of: &[u32]) -> PartTerms {
        let p = &plan.parts[pi];
        let mut weights = [0u64; CLASSES];
        for &l in &p.layers {
            weights[class_index(self.graph.layers[l].class)] += self.layer_params[l];
        }
        let mut inputs = 0;
        if p.source {
            let reads = |t: &crate::prepared::CTensor| {
                t.producer.is_none()
                    && t.consumers
                        .iter()
                        .any(|&c| part_of[c as usize] == pi as u32)
            };
            inputs = self
                .tensors
                .iter()
                .filter(|t| reads(t))
                .map(|t| t.bytes)
                .sum();
        }
        PartTerms {
            unit: p.unit,
            weights,
            activations: self.peak_activations(plan, pi, part_of),
            inputs,
        }
    }

    /// Peak live activations of partition `pi`: an output is allocated at its layer and
    /// freed after its last consumer when every consumer is inside the partition.
    fn peak_activations(&self, plan: &SimPlan, pi: usize, part_of: &[u32]) -> u64 {
        let p = &plan.parts[pi];
        let mut free_at = vec![0u64; p.layers.len()];
        let (mut live, mut peak) = (0u64, 0u64);
        for (k, &l) in p.layers.iter().enumerate() {
            for &t in &self.layer_outputs[l] {
                let t = &self.tensors[t as usize];
                live += t.bytes;
                let inside = !t.graph_output
                    && !t.consumers.is_empty()
                    && t.consumers
                        .iter()
                        .all(|&c| part_of[c as usize] == pi as u32);
                if inside {
                    let last = *t.consumers.last().expect("non-empty");
                    let pos = p.layers.binary_search(&(last as usize)).unwrap_or(k);
                    free_at[pos.max(k)] += t.bytes;
                }
            }
            peak = peak.max(live);
            live -= free_at[k];
        }
        peak
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_keep_byte_counts() {
        let m = UnitMemory::default();
        assert_eq!(m.base_bytes(), 0);
        assert_eq!(m.weights(u64::MAX / 3), u64::MAX / 3);
        assert_eq!(m.activations(12_345), 12_345);
    }

    #[test]
    fn factors_and_base_in_closed_form() {
        let m = UnitMemory {
            base_mb: 10.0,
            weights_factor: 1.5,
            activations_factor: 2.0,
            ..UnitMemory::default()
        };
        assert_eq!(m.base_bytes(), 10 * 1024 * 1024);
        assert_eq!(m.weights(1000), 1500);
        assert_eq!(m.activations(333), 666);
    }

    #[test]
    fn keys_override_and_are_checked() {
        let key = |k: &str| format!("unit.{k}");
        let k = MemoryKeys {
            memory_base_mb: Some(12.5),
            weights_factor: None,
            activations_factor: Some(3.0),
            ..MemoryKeys::default()
        };
        let m = UnitMemory::default()
            .with_keys(Path::new("p.toml"), &key, k)
            .unwrap();
        assert_eq!(m.base_mb, 12.5);
        assert_eq!(m.weights_factor, 1.0);
        assert_eq!(m.activations_factor, 3.0);
        let bad = MemoryKeys {
            weights_factor: Some(-1.0),
            ..MemoryKeys::default()
        };
        let e = UnitMemory::default()
            .with_keys(Path::new("p.toml"), &key, bad)
            .unwrap_err();
        assert!(e.to_string().contains("unit.weights_factor"), "{e}");
    }
}
