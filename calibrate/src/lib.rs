//! Calibrating the simulator against measurements on this host: per-layer profiles
//! (`dicesim profile`), the emulation rig's link probe and rig correction, the calibration
//! file they produce, and the validation that compares simulator and rig
//! (`dicesim validate`, one scenario or a suite).
//!
//! Modules: [`profile`] (per-layer times; [`timing`] runs and paces them, [`chunks`] fits
//! them to sub-model runs, [`baseline`] fits the simulator's compute model, [`csv`] writes
//! them; [`scaling`] times them at several thread counts and [`scaling_fit`] fits the
//! per-class serial fractions), [`link`] (the link probe), [`calibration`] (profiles on the
//! rig, rig correction, `cal.toml`), [`validate`] and [`suite`] (the comparisons), [`memory`]
//! (`profile --memory`: an engine's memory model), [`cli`] (the two commands).
//! Statistics come from `dicesim_stats`; operating-system calls from `dicesim_hil::sys`.
#![warn(missing_docs)]

pub mod baseline;
pub mod calibration;
pub mod chunks;
pub mod cli;
pub mod csv;
pub mod link;
pub mod memory;
mod plot;
pub mod profile;
pub mod scaling;
pub mod scaling_fit;
pub mod suite;
pub mod timing;
pub mod validate;
