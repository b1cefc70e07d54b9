//! Mapping strategies on small hand-made graphs with known optima.

use std::collections::BTreeMap;
use std::path::Path;

use dicesim_plan::graph::{Graph, Layer, TensorInfo};
use dicesim_sim::platform::Platform;
use dicesim_sim::strategy;
use dicesim_sim::{PreparedScenario, Window, Workload};

const MS: u64 = 1_000_000;

/// A chain of layers with the given FLOPs, every activation `bytes` big.
fn chain(flops: &[u64], bytes: u64) -> Graph {
    let mut tensors = BTreeMap::new();
    let mut layers = Vec::new();
    let name = |i: usize| format!("t{i}");
    for i in 0..=flops.len() {
        tensors.insert(
            name(i),
            TensorInfo {
                name: name(i),
                shape: vec![1],
                dtype: 1,
                bytes,
                producer: i.checked_sub(1),
                consumers: if i < flops.len() { vec![i] } else { vec![] },
            },
        );
    }
    for (i, &f) in flops.iter().enumerate() {
        layers.push(Layer {
            name: format!("l{i}"),
            op: "Conv".into(),
            class: dicesim_plan::opclass::OpClass::Conv,
            inputs: vec![name(i)],
            outputs: vec![name(i + 1)],
            output_shape: vec![1],
            flops: f,
            params_bytes: 0,
            output_bytes: bytes,
            input_bytes: bytes,
        });
    }
    Graph {
        name: "chain".into(),
        layers,
        tensors,
        inputs: vec![name(0)],
        outputs: vec![name(flops.len())],
    }
}

fn platform(gflops: &[f64]) -> Platform {
    let mut s = String::from("[[switch]]\nname = \"sw\"\n");
    for (i, g) in gflops.iter().enumerate() {
        s += &format!(
            "[[device]]\nname = \"d{i}\"\nmemory_mb = 1024\n[[device.unit]]\nname = \"cpu\"\n\
             kind = \"cpu\"\ngflops = {g}\nmem_gbps = 1e9\n\
             [[link]]\nends = [\"d{i}\", \"sw\"]\nbandwidth_mbps = 8000\nlatency_us = 1\n"
        );
    }
    Platform::from_str(Path::new("p.toml"), &s).unwrap()
}

fn prep(flops: &[u64], gflops: &[f64]) -> PreparedScenario {
    PreparedScenario::new(
        chain(flops, 1000),
        platform(gflops),
        Workload {
            frames: 1,
            period_ns: 0,
            window: Window::Unlimited,
        },
    )
}

#[test]
fn single_picks_the_fastest_unit() {
    let p = prep(&[MS, MS], &[1.0, 4.0, 2.0]);
    let m = strategy::single(&p, &[0, 1, 2]).unwrap();
    assert_eq!(m.units, vec!["d1.cpu"]);
}

#[test]
fn even_cuts_equal_flops_in_platform_order() {
    let p = prep(&[MS, MS, MS, MS, MS, MS], &[1.0, 1.0, 1.0]);
    let m = strategy::even(&p, &[0, 1, 2]).unwrap();
    assert_eq!(m.units, vec!["d0.cpu", "d1.cpu", "d2.cpu"]);
    assert_eq!(m.layer_unit, vec![0, 0, 1, 1, 2, 2]);
}

#[test]
fn pipeedge_balances_the_slowest_stage() {
    // 4 equal layers on two equal devices: two stages of two layers (bottleneck 2 ms)
    let p = prep(&[MS, MS, MS, MS], &[1.0, 1.0]);
    let m = strategy::pipeedge(&p, &[0, 1]).unwrap();
    assert_eq!(m.layer_unit, vec![0, 0, 1, 1]);
    // a device 3x faster takes three layers
    let p = prep(&[MS, MS, MS, MS], &[1.0, 3.0]);
    let m = strategy::pipeedge(&p, &[0, 1]).unwrap();
    let a = p.assignment(&m).unwrap();
    assert_eq!(a.iter().filter(|&&u| u == 1).count(), 3);
    // a slow link makes one stage best
    let mut p = prep(&[MS, MS, MS, MS], &[1.0, 1.0]);
    p = PreparedScenario::new(
        chain(&[MS, MS, MS, MS], 100_000_000),
        p.platform.clone(),
        p.workload,
    );
    let m = strategy::pipeedge(&p, &[0, 1]).unwrap();
    assert_eq!(m.units.len(), 1);
}
