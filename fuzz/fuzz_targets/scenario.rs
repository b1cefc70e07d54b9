//! A scenario file, loaded as `dicesim run` loads it (platform, model, mapping), next to
//! the docs/examples platform, mappings and calibration it may name.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = dicesim_fuzz::write_input("scenario.toml", data);
    let _ = dicesim_sim::Scenario::load(&path);
});
