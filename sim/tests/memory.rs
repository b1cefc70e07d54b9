//! The memory model of docs/simulator.md#memory against closed forms: an engine base once
//! per physical unit, weights and peak activations scaled by the unit's factors, receive
//! buffers and the input frame as they are.

mod common;

use std::path::Path;

use common::graph;
use dicesim_plan::graph::Graph;
use dicesim_plan::opclass::OpClass;
use dicesim_sim::platform::Platform;
use dicesim_sim::{PreparedScenario, Window, Workload};

const MIB: u64 = 1024 * 1024;

/// One device with a 2-core CPU; `keys` are the unit's memory keys.
fn platform(keys: &str) -> Platform {
    let text = format!(
        "name = \"t\"\n[[device]]\nname = \"d\"\nmemory_mb = 1024\n\
         [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 2\ngflops = 1.0\n\
         mem_gbps = 1.0\n{keys}\n"
    );
    Platform::from_str(Path::new("t.toml"), &text).expect("valid platform")
}

/// `a` (a convolution, 4000 B of weights) then `b` (fully connected, 6000 B), every tensor
/// 1000 B.
fn chain() -> Graph {
    let mut g = graph(
        &[("a", 1000, &["in"], &["x"]), ("b", 1000, &["x"], &["y"])],
        &["in"],
        1000,
    );
    g.layers[0].params_bytes = 4000;
    g.layers[1].params_bytes = 6000;
    g.layers[1].class = OpClass::Fc;
    g
}

/// Device memory [bytes] with `a` and `b` on units `ua` and `ub`.
fn need(keys: &str, ua: &str, ub: &str) -> u64 {
    let mut p = platform(keys);
    let ids = [p.resolve_unit(ua).unwrap(), p.resolve_unit(ub).unwrap()];
    let w = Workload {
        frames: 1,
        period_ns: 0,
        window: Window::Unlimited,
    };
    let ps = PreparedScenario::new(chain(), p, w);
    let plan = ps.sim_plan(&ids);
    ps.memory_bytes(&plan)[0]
}

const MODEL: &str = "memory_base_mb = 1.0\nweights_factor = 2.0\nactivations_factor = 3.0";

#[test]
fn defaults_are_the_plain_byte_counts() {
    // one partition: weights 10000 + peak live activations (x, y) 2000 + input 1000
    assert_eq!(need("", "d.cpu", "d.cpu"), 13_000);
    // two: weights 10000 + a peak of 1000 per core set + receive buffer 1000 + input 1000
    assert_eq!(need("", "d.cpu[0]", "d.cpu[1]"), 14_000);
}

#[test]
fn base_once_per_physical_unit_and_factors_scale() {
    // whole CPU: 1 MiB + 2 x 10000 + 3 x 2000 + input 1000
    assert_eq!(need(MODEL, "d.cpu", "d.cpu"), MIB + 20_000 + 6_000 + 1_000);
    // two core sets of the one CPU share its engine: still one base
    let split = MIB + 20_000 + 3 * 1_000 + 3 * 1_000 + 1_000 + 1_000;
    assert_eq!(need(MODEL, "d.cpu[0]", "d.cpu[1]"), split);
}

#[test]
fn a_class_weights_factor_scales_only_its_class() {
    // the fc layer's 6000 B by its class's 5, the convolution's 4000 B by the unit's 2
    let fc = format!("{MODEL}\n[device.unit.classes.fc]\nweights_factor = 5.0");
    let whole = MIB + 2 * 4_000 + 5 * 6_000 + 3 * 2_000 + 1_000;
    assert_eq!(need(&fc, "d.cpu", "d.cpu"), whole);
    // a class factor without a unit factor: the unit's default 1 for the rest
    let only = "[device.unit.classes.fc]\nweights_factor = 0.5";
    assert_eq!(need(only, "d.cpu", "d.cpu"), 4_000 + 3_000 + 2_000 + 1_000);
    // a class factor equal to the unit's changes nothing
    let same = format!("{MODEL}\n[device.unit.classes.fc]\nweights_factor = 2.0");
    assert_eq!(need(&same, "d.cpu", "d.cpu"), need(MODEL, "d.cpu", "d.cpu"));
    let bad = "[device.unit.classes.conv]\nweights_factor = -2";
    let text = format!(
        "name = \"t\"\n[[device]]\nname = \"d\"\nmemory_mb = 1\n[[device.unit]]\nname = \"cpu\"\n\
         kind = \"cpu\"\ngflops = 1.0\nmem_gbps = 1.0\n{bad}\n"
    );
    let e = Platform::from_str(Path::new("t.toml"), &text).unwrap_err();
    assert!(e.to_string().contains("classes.conv.weights_factor"), "{e}");
}

#[test]
fn a_calibration_sets_the_memory_keys() {
    let dir = common::tmp("memory-test", "calibration");
    let cal = dir.join("cal.toml");
    std::fs::write(
        &cal,
        "[[unit]]\nname = \"d.cpu\"\nmemory_base_mb = 2.5\nweights_factor = 1.5\n",
    )
    .unwrap();
    let mut p = platform("");
    p.apply_calibration(&cal).unwrap();
    let u = &p.units[0].memory;
    assert_eq!(
        (u.base_mb, u.weights_factor, u.activations_factor),
        (2.5, 1.5, 1.0)
    );
    std::fs::write(
        &cal,
        "[[unit]]\nname = \"d.cpu\"\n[unit.classes.fc]\nweights_factor = 3.5\n",
    )
    .unwrap();
    p.apply_calibration(&cal).unwrap();
    let u = &p.units[0].memory;
    assert_eq!(u.weights_factor_of(OpClass::Fc), 3.5);
    assert_eq!(u.weights_factor_of(OpClass::Conv), 1.5);
    std::fs::write(
        &cal,
        "[[unit]]\nname = \"d.cpu\"\n[unit.classes.fc]\ngflops = 3.5\n",
    )
    .unwrap();
    let e = p.apply_calibration(&cal).unwrap_err().to_string();
    assert!(e.contains("gflops"), "{e}");
    std::fs::write(
        &cal,
        "[[unit]]\nname = \"d.cpu\"\nactivations_factor = -1\n",
    )
    .unwrap();
    let e = platform("")
        .apply_calibration(&cal)
        .unwrap_err()
        .to_string();
    assert!(e.contains("unit[0].activations_factor"), "{e}");
}
