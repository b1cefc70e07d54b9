//! Splitting vgg16 at 224 (~553 MB of weights) into 4 sub-models: load (mmap) + analyse +
//! map + partition + write, as `dicesim split` does. Target: <= 1.5 s.

use criterion::{criterion_group, criterion_main, Criterion};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::model::InputShapes;
use dicesim_plan::partition::Plan;
use dicesim_plan::{onnx, split, zoo, Model};

fn bench_split(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("vgg16.onnx");
    onnx::save_model(&zoo::build("vgg16", 224).unwrap(), &src).unwrap();
    let out = dir.path().join("out");
    let mut g = c.benchmark_group("split");
    g.sample_size(10);
    g.bench_function("vgg16_224_4way", |b| {
        b.iter(|| {
            let model = Model::load(&src, &InputShapes::new()).unwrap();
            let n = model.graph.layers.len();
            let units: Vec<String> = (0..n).map(|i| format!("d{}.cpu", i * 4 / n)).collect();
            let plan = Plan::build(&model.graph, &Mapping::from_assignment(&units)).unwrap();
            split::write_split(&model, &plan, &out).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, bench_split);
criterion_main!(benches);
