//! A platform file: parsing, validation, routes between every pair of devices, and the
//! core-set units a mapping may name.
#![no_main]


use dicesim_sim::network::Network;
use dicesim_sim::platform::Platform;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = dicesim_fuzz::scratch().join("platforms");
    let Ok(mut p) = Platform::from_str(&dir.join("fuzz.toml"), text) else {
        return;
    };
    let net = Network::new(&p);
    for a in 0..p.devices.len() {
        for b in 0..p.devices.len() {
            let _ = net.route(a, b);
        }
    }
    for name in p.unit_names() {
        let _ = p.resolve_unit(&format!("{name}[0]"));
        let _ = p.resolve_unit(&format!("{name}[1-2]"));
    }
});
