//! The memory model of a unit's inference engine (docs/simulator.md#memory).
//!
//! What a device needs to serve its partitions is, per physical unit it uses,
//!
//! ```text
//! memory_base_mb                                   (the engine loaded, once per physical unit)
//! + weights of its partitions x weights_factor     (the engine's packed or converted copies,
//!                                                   and what a load holds at its peak)
//! + peak live activations x activations_factor    (the engine's arenas and scratch buffers)
//! ```
//!
//! plus one receive buffer per incoming connection and the input frame of source
//! partitions. The defaults (0, 1, 1) are the plain byte counts of the model; measured
//! figures per engine come from the rig (`docs/simulator.md#memory` says how).

use std::path::Path;

use crate::error::SimError;

/// Bytes in a MiB.
const MIB: f64 = 1024.0 * 1024.0;

/// How one unit's engine turns weights and activations into resident memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitMemory {
    /// Resident memory of the engine loaded and idle [MiB], counted once per physical unit
    /// used (core sets share their CPU's).
    pub base_mb: f64,
    /// Resident bytes per byte of weights served.
    pub weights_factor: f64,
    /// Resident bytes per byte of peak live activations.
    pub activations_factor: f64,
}

impl Default for UnitMemory {
    fn default() -> Self {
        UnitMemory {
            base_mb: 0.0,
            weights_factor: 1.0,
            activations_factor: 1.0,
        }
    }
}

/// The memory keys of a unit (platform, device template or calibration file).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MemoryKeys {
    pub memory_base_mb: Option<f64>,
    pub weights_factor: Option<f64>,
    pub activations_factor: Option<f64>,
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
        Ok(UnitMemory {
            base_mb: check("memory_base_mb", k.memory_base_mb, self.base_mb)?,
            weights_factor: check("weights_factor", k.weights_factor, self.weights_factor)?,
            activations_factor: check(
                "activations_factor",
                k.activations_factor,
                self.activations_factor,
            )?,
        })
    }

    /// The engine's fixed base [bytes].
    pub fn base_bytes(&self) -> u64 {
        (self.base_mb * MIB).round() as u64
    }

    /// Resident bytes for `bytes` of weights.
    pub fn weights(&self, bytes: u64) -> u64 {
        scale(bytes, self.weights_factor)
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
