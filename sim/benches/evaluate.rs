//! Evaluator throughput on real zoo graphs: a prepared scenario evaluates mappings without
//! re-reading the model (what the explorer does thousands of times).
//!
//! `cargo bench -p dicesim-sim --bench evaluate -- --warm-up-time 1 --measurement-time 3`

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
