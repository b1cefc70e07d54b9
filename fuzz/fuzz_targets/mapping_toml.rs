//! A mapping TOML file (`[units]` ranges or per-layer tables) over alexnet at 64 px.
#![no_main]

use dicesim_plan::mapping::Mapping;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let g = dicesim_fuzz::alexnet();
    if let Ok(m) = Mapping::from_toml_str(text, g, "fuzz.toml") {
        let _ = m.validate_units(&["a.cpu".into(), "b.cpu".into()]);
        let _ = m.to_toml(g);
    }
});
