//! The `dicesim` command's library side: the pieces of the CLI that tests drive directly.
#![warn(missing_docs)]

pub mod commands;
pub mod device;
pub mod infer;
pub mod npy;
pub mod verify;
