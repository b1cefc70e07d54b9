//! The LibTorch backend plugin (`libdicesim_backend_tch.so`): exports the engine of the
//! `dicesim-tch` crate through the plugin ABI. The engine lives in its own crate so that
//! benchmarks can call it directly without linking a second plugin entry symbol.

dicesim_backend_api::export_backend!(dicesim_tch::Torch);
