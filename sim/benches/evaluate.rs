//! Evaluator throughput on real zoo graphs: a prepared scenario evaluates mappings without
//! re-reading the model (what the explorer does thousands of times).
//!
//! `cargo bench -p dicesim-sim --bench evaluate -- --warm-up-time 1 --measurement-time 3`

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use dicesim_plan::coreset::CoreSet;
use dicesim_plan::model::zoo_graph;
use dicesim_plan::partition::Plan;
use dicesim_sim::platform::Platform;
use dicesim_sim::{strategy, PreparedScenario, Window, Workload};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bench(c: &mut Criterion) {
    let mixed4 = Platform::load(&root().join("platforms/mixed4-gige.toml")).unwrap();
    let wifi = Platform::load(&root().join("platforms/wifi5-mixed3.toml")).unwrap();
    let vgg16 = zoo_graph("vgg16", 224).unwrap();
    let resnet50 = zoo_graph("resnet50", 224).unwrap();
    let cases = [
        ("vgg16_4dev_1frame", &vgg16, &mixed4, 1),
        ("vgg16_4dev_100frames", &vgg16, &mixed4, 100),
        ("resnet50_3dev_wifi_1frame", &resnet50, &wifi, 1),
        ("resnet50_3dev_wifi_100frames", &resnet50, &wifi, 100),
    ];
    for (name, g, p, frames) in cases {
        let prep = PreparedScenario::new(
            g.clone(),
            p.clone(),
            Workload {
                frames,
                period_ns: 0,
                window: Window::Unlimited,
            },
        );
        let units: Vec<usize> = (0..prep.platform.units.len()).collect();
        let m = strategy::even(&prep, &units).unwrap();
        let assign = prep.assignment(&m).unwrap();
        c.bench_function(name, |b| {
            b.iter(|| {
                prep.evaluate_assignment(std::hint::black_box(&assign))
                    .unwrap()
            })
        });
        if frames == 1 {
            // the partitioning alone: the evaluator's index port vs the plan crate's builder
            c.bench_function(&format!("{name}_partition_index"), |b| {
                b.iter(|| prep.sim_plan(std::hint::black_box(&assign)))
            });
            c.bench_function(&format!("{name}_partition_plan_build"), |b| {
                b.iter(|| {
                    let plan = Plan::build(&prep.graph, std::hint::black_box(&m)).unwrap();
                    prep.sim_plan_from(&plan).unwrap()
                })
            });
        }
    }
}

/// The objectives the explorer computes (a single frame, a saturated run) of a long plan
/// inside one Jetson Xavier NX: resnet50 in segments of 3 layers, in turn on the GPU and on
/// the two halves of the CPU (jobs that share the device's memory bandwidth): the kind of
/// plan refinement's interleaving reaches, about 60 segments.
fn bench_interleaved(c: &mut Criterion) {
    let mut nx2 = Platform::load(&root().join("platforms/nx2-gige.toml")).unwrap();
    let cpu = nx2
        .units
        .iter()
        .position(|u| u.full_name == "nx1.cpu")
        .unwrap();
    let gpu = nx2
        .units
        .iter()
        .position(|u| u.full_name == "nx1.gpu")
        .unwrap();
    let halves = [CoreSet::block(0, 3), CoreSet::block(3, 3)];
    let sets: Vec<usize> = (halves.iter())
        .map(|&cs| nx2.core_set_unit(cpu, cs).unwrap())
        .collect();
    let resnet50 = zoo_graph("resnet50", 224).unwrap();
    let workload = Workload {
        frames: 20,
        period_ns: 0,
        window: Window::PartitionsPlus(2),
    };
    let prep = PreparedScenario::new(resnet50, nx2, workload);
    let turn = [gpu, sets[0], sets[1]];
    let assign: Vec<usize> = (0..prep.graph.layers.len())
        .map(|l| turn[(l / 3) % turn.len()])
        .collect();
    let plan = prep.sim_plan(&assign);
    c.bench_function("resnet50_nx_interleaved_objectives", |b| {
        b.iter(|| prep.objectives(std::hint::black_box(&plan)).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench, bench_interleaved
}
criterion_main!(benches);
