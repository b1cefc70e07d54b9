//! dicesim real execution: the wire protocol, the worker, the coordinator (`hil`) and the
//! emulation rig (`emulate`).
#![warn(missing_docs)]

pub mod cache;
pub mod conn;
pub mod coord;
pub mod cores;
pub mod emulate;
pub mod engine;
pub mod gate;
pub mod peercred;
pub mod peers;
pub mod private;
pub mod proto;
pub mod report;
pub mod seal;
pub mod sensors;
pub mod spill;
pub mod sys;
pub mod token;
pub mod turns;
pub mod vet;
pub mod worker;
