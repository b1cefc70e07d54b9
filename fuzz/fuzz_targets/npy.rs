//! `.npy` images and `.npz` archives as `dicesim infer` reads them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dicesim::npy::parse_npy(data, "fuzz.npy");
    let path = dicesim_fuzz::write_input("fuzz.npz", data);
    let _ = dicesim::npy::read_tensors(&path, Some("input"));
});
