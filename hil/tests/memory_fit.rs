//! `emulate` refuses, before anything starts, a plan that the simulator's memory model
//! predicts not to fit a device's `memory_mb` (docs/simulator.md#memory).

mod support;
use dicesim_hil::{coord, emulate::memlimit};
use std::path::{Path, PathBuf};

/// A 2-device scenario of squeezenet at 32 px in `d`; `keys` are the CPU units' memory keys.
fn scenario(d: &Path, memory_mb: u32, keys: &str) -> PathBuf {
    let dev = |n: &str| {
        format!(
            "[[device]]\nname = \"{n}\"\nmemory_mb = {memory_mb}\n[[device.unit]]\n\
             name = \"cpu\"\nkind = \"cpu\"\ngflops = 1\nmem_gbps = 1\n{keys}\n"
        )
    };
    let plat = format!(
        "{}{}[[link]]\nends = [\"a\", \"b\"]\nbandwidth_mbps = 100\n",
        dev("a"),
        dev("b")
    );
    std::fs::write(d.join("plat.toml"), plat).unwrap();
    let s = d.join("s.toml");
    std::fs::write(
        &s,
        "[model]\nzoo = \"squeezenet1_1\"\ninput_size = 32\n[platform]\nfile = \"plat.toml\"\n\
         [mapping]\nstrategy = \"even\"\n",
    )
    .unwrap();
    s
}

#[test]
fn a_plan_predicted_not_to_fit_is_refused_with_each_device() {
    let fits_dir = support::tmp("memfit", "fits");
    let fits = coord::prepare(&scenario(&fits_dir, 64, "")).unwrap();
    let need = fits.predicted_need_mb().unwrap();
    assert!(need.iter().all(|&n| n > 0.0 && n < 64.0), "{need:?}");
    memlimit::check_fits(&fits).unwrap();
    // the same plan with an engine base of 100 MiB per unit no longer fits 64 MiB
    let base_dir = support::tmp("memfit", "base");
    let big = coord::prepare(&scenario(&base_dir, 64, "memory_base_mb = 100")).unwrap();
    let with_base = big.predicted_need_mb().unwrap();
    for (a, b) in need.iter().zip(&with_base) {
        assert!((b - a - 100.0).abs() < 1e-9, "{a} {b}");
    }
    let e = format!("{:#}", memlimit::check_fits(&big).unwrap_err());
    assert!(
        e.contains("a needs") && e.contains("b needs") && e.contains("refused before starting"),
        "{e}"
    );
}
