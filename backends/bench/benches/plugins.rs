//! Per plugin: resnet18 and mobilenet_v2 at 224 on 1 and 2 threads, through the plugin
//! (loader -> C ABI -> engine) and through the engine's Rust API directly. The difference is
//! the cost of the plugin path (one copy in, one copy out, the C calls).
//!
//! `DICESIM_BENCH_BACKENDS` (comma-separated) picks the plugins; default: all three.

use criterion::{criterion_group, Criterion};
use dicesim_backend_api::{DType, TensorView};
use dicesim_backend_loader::Options;
use dicesim_plan::{onnx, Model};
use std::time::Duration;

fn bench(c: &mut Criterion) {
    let names: Vec<String> = std::env::var("DICESIM_BENCH_BACKENDS")
        .unwrap_or_else(|_| "tract,ort,tch".into())
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    for model_name in ["resnet18", "mobilenet_v2"] {
        let model = Model::zoo(model_name, 224).unwrap();
        let bytes = onnx::encode_model(&model.proto);
        let input = &model.graph.inputs[0];
        let shape = model.graph.tensors[input].shape.clone();
        let x = dicesim_backend_conformance::random_f32(&shape, 1);
        let xs = x.as_f32().unwrap().to_vec();
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        // SAFETY: f32 as bytes.
        let xb: &[u8] = unsafe { std::slice::from_raw_parts(xs.as_ptr().cast(), xs.len() * 4) };
        let view = [TensorView {
            name: input,
            dtype: DType::F32,
            shape: &dims,
            data: xb,
        }];
        for name in &names {
            let Some(b) = dicesim_backend_conformance::load(name) else {
                continue;
            };
            for threads in [1usize, 2] {
                let mut g = c.benchmark_group(format!("{model_name}/{name}/{threads}t"));
                g.sample_size(20)
                    .warm_up_time(Duration::from_secs(2))
                    .measurement_time(Duration::from_secs(8));
                let opts = Options {
                    intra_op_threads: threads,
                    ..Options::default()
                };
                let mut s = b.session(&bytes, &opts).unwrap();
                g.bench_function("plugin", |bch| {
                    bch.iter(|| s.run(&[(input.as_str(), &x)]).unwrap())
                });
                drop(s);
                direct(&mut g, name, &bytes, &view, threads);
                g.finish();
            }
        }
    }
}

fn sink(_: &str, _: DType, _: &[u64], d: &[u8]) {
    std::hint::black_box(d);
}

fn direct(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    bytes: &[u8],
    view: &[TensorView<'_>],
    threads: usize,
) {
    match name {
        "tract" => {
            let s = dicesim_tract::Session::from_onnx_bytes(bytes).unwrap();
            let dims: Vec<usize> = view[0].dims();
            let data = view[0].f32s();
            g.bench_function("direct", |bch| {
                bch.iter(|| {
                    s.run_borrowed(&[(view[0].name, &dims, &data)], threads, &mut |_, _, d| {
                        std::hint::black_box(d);
                    })
                    .unwrap()
                })
            });
        }
        "ort" => {
            let mut s = dicesim_ort::OrtSession::new(bytes, threads).unwrap();
            g.bench_function("direct", |bch| bch.iter(|| s.run(view, &mut sink).unwrap()));
        }
        "tch" => {
            let s = dicesim_tch::TchSession::new(bytes, threads).unwrap();
            g.bench_function("direct", |bch| bch.iter(|| s.run(view, &mut sink).unwrap()));
        }
        _ => {}
    }
}

/// With `DICESIM_BENCH_PAIRED=N`: N alternating plugin/direct runs per case, median of the
/// per-pair ratios. Robust to load that drifts during a run (a shared machine), unlike
/// criterion's back-to-back groups.
fn paired(n: usize) {
    let names = ["tract", "ort", "tch"];
    for model_name in ["resnet18", "mobilenet_v2"] {
        let model = Model::zoo(model_name, 224).unwrap();
        let bytes = onnx::encode_model(&model.proto);
        let input = &model.graph.inputs[0];
        let shape = model.graph.tensors[input].shape.clone();
        let x = dicesim_backend_conformance::random_f32(&shape, 1);
        let xs = x.as_f32().unwrap().to_vec();
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        // SAFETY: f32 as bytes.
        let xb: &[u8] = unsafe { std::slice::from_raw_parts(xs.as_ptr().cast(), xs.len() * 4) };
        let view = [TensorView {
            name: input,
            dtype: DType::F32,
            shape: &dims,
            data: xb,
        }];
        for name in names {
            let Some(b) = dicesim_backend_conformance::load(name) else {
                continue;
            };
            for threads in [1usize, 2] {
                let opts = Options {
                    intra_op_threads: threads,
                    ..Options::default()
                };
                let mut s = b.session(&bytes, &opts).unwrap();
                let mut direct: Box<dyn FnMut()> = match name {
                    "tract" => {
                        let d = dicesim_tract::Session::from_onnx_bytes(&bytes).unwrap();
                        let dd: Vec<usize> = view[0].dims();
                        let data = view[0].f32s().into_owned();
                        let nm = input.clone();
                        Box::new(move || {
                            d.run_borrowed(&[(&nm, &dd, &data)], threads, &mut |_, _, o| {
                                std::hint::black_box(o);
                            })
                            .unwrap()
                        })
                    }
                    "ort" => {
                        let mut d = dicesim_ort::OrtSession::new(&bytes, threads).unwrap();
                        Box::new(move || d.run(&view, &mut sink).unwrap())
                    }
                    _ => {
                        let d = dicesim_tch::TchSession::new(&bytes, threads).unwrap();
                        Box::new(move || d.run(&view, &mut sink).unwrap())
                    }
                };
                for _ in 0..3 {
                    s.run(&[(input.as_str(), &x)]).unwrap();
                    direct();
                }
                let (mut ratios, mut tp, mut td) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..n {
                    let t0 = std::time::Instant::now();
                    s.run(&[(input.as_str(), &x)]).unwrap();
                    let p = t0.elapsed().as_secs_f64();
                    let t0 = std::time::Instant::now();
                    direct();
                    let d = t0.elapsed().as_secs_f64();
                    ratios.push(p / d);
                    tp.push(p);
                    td.push(d);
                }
                let med = |v: &mut Vec<f64>| {
                    v.sort_by(|a, b| a.total_cmp(b));
                    v[v.len() / 2]
                };
                println!(
                    "paired {model_name:12} {name:5} {threads}t  plugin {:8.2} ms  direct {:8.2} ms  median ratio {:.4}",
                    med(&mut tp) * 1e3,
                    med(&mut td) * 1e3,
                    med(&mut ratios)
                );
            }
        }
    }
}

fn main() {
    if let Some(n) = std::env::var("DICESIM_BENCH_PAIRED")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        paired(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

criterion_group!(benches, bench);
