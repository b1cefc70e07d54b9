//! Per-class time of zoo models on a device file's unit: where a prediction's time goes.
//! `cargo run --release -p dicesim-fit --example classes -- DEVICE.toml UNIT THREADS MODEL@INPUT...`

use std::collections::BTreeMap;
use std::path::Path;

use dicesim_fit::base::BaseDevice;
use dicesim_plan::coreset::CoreSet;
use dicesim_sim::compute::layer_time_ns;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut base = BaseDevice::load(Path::new(&args[1])).expect("device file");
    let threads: u32 = args[3].parse().expect("threads");
    let mut unit = base.unit_or_generic(&args[2], threads).clone();
    unit.core_set = CoreSet::first(threads.min(unit.cores));
    for spec in &args[4..] {
        let (model, input) = spec.split_once('@').expect("MODEL@INPUT");
        let g = dicesim_plan::model::zoo_graph(model, input.parse().expect("input")).expect("zoo");
        let mut by_class: BTreeMap<&str, (f64, f64, usize)> = BTreeMap::new();
        for l in &g.layers {
            let e = by_class.entry(l.class.name()).or_default();
            e.0 += layer_time_ns(l, &unit) as f64 / 1e6;
            e.1 += l.flops as f64 / 1e9;
            e.2 += 1;
        }
        let total: f64 = by_class.values().map(|v| v.0).sum();
        println!("{spec}: {total:.2} ms");
        for (c, (ms, gf, n)) in by_class {
            println!("  {c:>11} {n:4} layers {gf:8.3} GFLOP {ms:9.2} ms");
        }
    }
}
