//! The conformance suite, run against every plugin under test (see the crate docs): zoo
//! models whole and split agree across plugins within 1e-4; bad models and bad inputs are
//! errors, never crashes; sessions run in parallel threads.

use dicesim_backend_conformance::*;
use dicesim_backend_loader::{Backend, Options, Tensor, TensorData};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::{onnx, zoo, Model};
use std::collections::HashMap;

/// Contiguous stages of equal layer counts.
fn contiguous(n: usize, k: usize) -> Mapping {
    let units: Vec<String> = (0..n).map(|i| format!("d{}.cpu", i * k / n)).collect();
    Mapping::from_assignment(&units)
}

/// Blocks of `b` layers alternating between two units (cuts inside branches).
fn interleaved(n: usize, b: usize) -> Mapping {
    let units: Vec<String> = (0..n).map(|i| format!("d{}.cpu", (i / b) % 2)).collect();
    Mapping::from_assignment(&units)
}

fn zoo_model(name: &str) -> Model {
    Model::zoo(name, 32)
        .or_else(|_| Model::zoo(name, 64))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn assert_close(
    label: &str,
    want: &HashMap<String, Tensor>,
    got: &HashMap<String, Tensor>,
    outputs: &[String],
) {
    for o in outputs {
        let w = want
            .get(o)
            .unwrap_or_else(|| panic!("{label}: reference lacks '{o}'"));
        let g = got
            .get(o)
            .unwrap_or_else(|| panic!("{label}: no output '{o}'"));
        let e = rel_error(w, g);
        assert!(
            e <= TOLERANCE,
            "{label}: output '{o}' differs by {e:.3e} (relative; tolerance {TOLERANCE:.0e})"
        );
    }
}

#[test]
fn zoo_models_whole_and_split_agree_across_backends() {
    let backends = backends();
    assert!(
        !backends.is_empty() || !required(),
        "no backend under test is usable"
    );
    for &name in zoo::names() {
        let model = zoo_model(name);
        let bytes = onnx::encode_model(&model.proto);
        let inputs = model_inputs(&model, 11);
        let outs = &model.graph.outputs;
        let n = model.graph.layers.len();
        let plans: Vec<(String, Plan)> = [
            ("2-way", contiguous(n, 2)),
            ("4-way", contiguous(n, 4)),
            ("interleaved", interleaved(n, 7)),
        ]
        .into_iter()
        .map(|(l, m)| {
            let p = Plan::build(&model.graph, &m).unwrap_or_else(|e| panic!("{name} {l}: {e}"));
            (l.to_string(), p)
        })
        .collect();
        let mut reference: Option<(String, HashMap<String, Tensor>)> = None;
        for b in &backends {
            let whole = run_once(b, &bytes, &inputs, &Options::default())
                .unwrap_or_else(|e| panic!("{name} whole on {}: {e}", b.name()));
            match &reference {
                None => reference = Some((b.name().to_string(), whole.clone())),
                Some((rn, r)) => {
                    assert_close(&format!("{name}: {} vs {rn}", b.name()), r, &whole, outs)
                }
            }
            for (label, plan) in &plans {
                let got = run_split(b, &model, plan, &inputs)
                    .unwrap_or_else(|e| panic!("{name} {label} on {}: {e}", b.name()));
                assert_close(
                    &format!("{name} {label} on {} vs its whole model", b.name()),
                    &whole,
                    &got,
                    outs,
                );
            }
        }
        eprintln!("{name}: {} backends agree, whole and split", backends.len());
    }
}

fn resnet_bytes() -> (Model, Vec<u8>) {
    let m = Model::zoo("resnet18", 32).unwrap();
    let b = onnx::encode_model(&m.proto);
    (m, b)
}

#[test]
fn corrupt_models_are_errors() {
    let (_, good) = resnet_bytes();
    let mut flipped = good.clone();
    for i in (0..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "garbage",
            b"definitely not a protobuf \x00\xff\x13".to_vec(),
        ),
        ("truncated", good[..good.len() / 3].to_vec()),
        ("bytes flipped", flipped),
    ];
    for b in backends() {
        for (label, bytes) in &cases {
            // Loading must fail cleanly, or (for flips that keep the protobuf valid) running must
            // give an error or finite output: never a crash.
            if let Ok(mut s) = b.session(bytes, &Options::default()) {
                let x = random_f32(&[1, 3, 32, 32], 1);
                let _ = s.run(&[("input", &x)]);
            } else if *label == "bytes flipped" {
                continue;
            }
        }
        for (label, bytes) in &cases[..3] {
            let e = b
                .session(bytes, &Options::default())
                .err()
                .unwrap_or_else(|| panic!("{}: {label} model loaded", b.name()));
            assert!(!e.to_string().is_empty());
        }
    }
}

#[test]
fn wrong_inputs_are_errors() {
    let (m, bytes) = resnet_bytes();
    let input = &m.graph.inputs[0];
    let shape = m.graph.tensors[input].shape.clone();
    let good = random_f32(&shape, 3);
    let wrong_shape = random_f32(&[1, 3, 16, 16], 3);
    let ints = Tensor {
        shape: shape.clone(),
        data: TensorData::I64(vec![1; shape.iter().product()]),
    };
    for b in backends() {
        let mut s = b.session(&bytes, &Options::default()).unwrap();
        let name = b.name().to_string();
        let cases: Vec<(&str, Vec<(&str, &Tensor)>)> = vec![
            ("wrong name", vec![("nope", &good)]),
            ("no input", vec![]),
            ("wrong shape", vec![(input.as_str(), &wrong_shape)]),
            ("wrong dtype", vec![(input.as_str(), &ints)]),
            (
                "extra input",
                vec![(input.as_str(), &good), ("extra", &good)],
            ),
        ];
        for (label, ins) in cases {
            let e = s
                .run(&ins)
                .err()
                .unwrap_or_else(|| panic!("{name}: {label} was accepted"));
            eprintln!("{name} {label}: {e}");
        }
        // The session still works after errors.
        let out = s.run(&[(input.as_str(), &good)]).unwrap();
        assert_eq!(out.len(), m.graph.outputs.len());
    }
}

#[test]
fn parallel_sessions_in_threads() {
    let (m, bytes) = resnet_bytes();
    let inputs = model_inputs(&m, 5);
    for b in backends() {
        let want = run_once(&b, &bytes, &inputs, &Options::default()).unwrap();
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    let (b, bytes, inputs) = (b.clone(), &bytes, &inputs);
                    sc.spawn(move || {
                        let opts = Options {
                            intra_op_threads: 1 + t % 2,
                            ..Options::default()
                        };
                        let mut s = b.session(bytes, &opts).unwrap();
                        (0..3)
                            .map(|_| {
                                s.run_map(inputs)
                                    .unwrap()
                                    .into_iter()
                                    .collect::<HashMap<_, _>>()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in hs {
                for got in h.join().expect("a session thread panicked") {
                    assert_close(
                        &format!("{} parallel", b.name()),
                        &want,
                        &got,
                        &m.graph.outputs,
                    );
                }
            }
        });
    }
}

#[test]
fn sessions_move_between_threads_and_drop_anywhere() {
    let (m, bytes) = resnet_bytes();
    let inputs = model_inputs(&m, 9);
    for b in backends() {
        let mut s = b.session(&bytes, &Options::default()).unwrap();
        let first = s.run_map(&inputs).unwrap();
        let ins = inputs.clone();
        let second = std::thread::spawn(move || {
            let r = s.run_map(&ins).unwrap();
            drop(s);
            r
        })
        .join()
        .unwrap();
        assert_eq!(first, second);
    }
}

#[test]
fn unknown_backend_is_a_clear_error() {
    let e = Backend::load("no_such_engine").unwrap_err().to_string();
    assert!(e.contains("libdicesim_backend_no_such_engine.so"), "{e}");
    assert!(e.contains("DICESIM_PLUGIN_PATH"), "{e}");
}
