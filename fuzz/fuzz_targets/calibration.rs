//! A calibration file applied to the docs/examples two-board platform (it may name the
//! example profile CSV).
#![no_main]

use dicesim_sim::platform::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = dicesim_fuzz::scratch();
    let Ok(mut p) = Platform::load(&dir.join("platforms/two-boards.toml")) else {
        return;
    };
    let path = dicesim_fuzz::write_input("calibration/fuzz.toml", data);
    let _ = p.apply_calibration(&path);
});
