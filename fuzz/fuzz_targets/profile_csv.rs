//! A per-layer profile CSV (`layer,time_us`) as platforms and calibrations name it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = dicesim_fuzz::write_input("profile.csv", data);
    let _ = dicesim_sim::platform::load_profile(&path);
});
