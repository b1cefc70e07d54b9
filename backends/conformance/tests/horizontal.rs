//! Horizontal splits on every plugin under test (see the crate docs): for every zoo model
//! and every kind that applies (fused tiles over the longest tileable run from the first
//! layer; the filters of a plain convolution, of a grouped one and of the last Gemm; the
//! inputs of a plain convolution and of the last Gemm), the chained sub-models of the
//! rewritten model agree with the ORIGINAL whole model on the same plugin within 1e-4.

use dicesim_backend_conformance::*;
use dicesim_backend_loader::{Backend, Options, Tensor};
use dicesim_plan::horizontal::{apply, Hybrid, Shares, SplitKind, SplitSpec};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::{onnx, zoo, Model};
use std::collections::HashMap;

/// Operators a fused tile run may hold here (a subset of what the rewrite accepts).
const TILEABLE: &[&str] = &[
    "Conv",
    "MaxPool",
    "AveragePool",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "HardSwish",
    "BatchNormalization",
    "Add",
    "Mul",
    "Concat",
];

fn group(m: &Model, l: usize) -> i64 {
    (m.node(l).attribute.iter())
        .find(|a| a.name.as_deref() == Some("group"))
        .and_then(|a| a.i)
        .unwrap_or(1)
}

/// The first layers, tileable, whose results have at least 2 rows.
fn tileable_prefix(m: &Model) -> Vec<usize> {
    let g = &m.graph;
    (0..g.layers.len())
        .take_while(|&l| {
            let (op, sh) = (&g.layers[l].op, &g.layers[l].output_shape);
            TILEABLE.contains(&op.as_str()) && sh.len() == 4 && sh[2] >= 2
        })
        .collect()
}

/// Convolutions beyond the first layer, plain (`group == 1`) or grouped.
fn convs(m: &Model, grouped: bool) -> Vec<usize> {
    (1..m.graph.layers.len())
        .filter(|&l| m.graph.layers[l].op == "Conv" && (group(m, l) > 1) == grouped)
        .collect()
}

fn spec(l: Vec<usize>, kind: SplitKind, units: &[&str], shares: Shares) -> (String, SplitSpec) {
    let label = format!("{} of {} layer(s) from {}", kind.name(), l.len(), l[0]);
    let s = SplitSpec {
        layers: l,
        kind,
        units: units.iter().map(|u| u.to_string()).collect(),
        shares,
        grid: (units.len(), 1),
        label: String::new(),
    };
    (label, s)
}

/// The splits checked, in two mappings (no layer in two splits of one mapping).
fn mappings(m: &Model) -> Vec<Vec<(String, SplitSpec)>> {
    use SplitKind::*;
    let (two, three) = (["b.cpu", "c.cpu"], ["a.cpu", "b.cpu", "c.cpu"]);
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let run = tileable_prefix(m);
    if !run.is_empty() {
        first.push(spec(run, Spatial, &two, Shares::Speed));
    }
    let plain = convs(m, false);
    if let [a, b, ..] = plain[..] {
        second.push(spec(
            vec![a],
            OutChannels,
            &three,
            Shares::Ratios(vec![2.0, 1.0, 1.0]),
        ));
        second.push(spec(vec![b], InChannels, &two, Shares::Speed));
    }
    if let Some(&l) = convs(m, true).first() {
        second.push(spec(vec![l], OutChannels, &two, Shares::Speed));
    }
    let last = (0..m.graph.layers.len())
        .rev()
        .find(|&l| matches!(m.graph.layers[l].op.as_str(), "Gemm" | "MatMul"));
    if let Some(l) = last {
        first.push(spec(
            vec![l],
            OutChannels,
            &two,
            Shares::Ratios(vec![1.0, 3.0]),
        ));
        second.push(spec(vec![l], InChannels, &three, Shares::Speed));
    }
    [first, second]
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect()
}

/// The rewritten model and its plan: layers outside the splits on a.cpu.
fn rewrite(m: &Model, splits: Vec<SplitSpec>) -> (Model, Plan) {
    let mut units = vec!["a.cpu".to_string(); m.graph.layers.len()];
    for s in &splits {
        for &l in &s.layers {
            units[l] = s.units[0].clone();
        }
    }
    let base = Mapping::from_assignment(&units);
    let (new, mapping) = apply(m, &Hybrid { base, splits }).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::build(&new.graph, &mapping).unwrap_or_else(|e| panic!("{e}"));
    (new, plan)
}

fn assert_close(
    label: &str,
    want: &HashMap<String, Tensor>,
    got: &HashMap<String, Tensor>,
    outs: &[String],
) {
    for o in outs {
        let g = got
            .get(o)
            .unwrap_or_else(|| panic!("{label}: no output '{o}'"));
        let e = rel_error(&want[o], g);
        assert!(
            e <= TOLERANCE,
            "{label}: output '{o}' differs from the whole model by {e:.3e} (relative; tolerance {TOLERANCE:.0e})"
        );
    }
}

/// Every mapping of model `name` on every backend, against the whole original model there.
fn check_model(name: &str, backends: &[Backend]) -> usize {
    let m = Model::zoo(name, 32).unwrap_or_else(|e| panic!("{name}: {e}"));
    let rewritten: Vec<(String, Model, Plan)> = mappings(&m)
        .into_iter()
        .map(|cases| {
            let label = cases
                .iter()
                .map(|c| c.0.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let (new, plan) = rewrite(&m, cases.into_iter().map(|c| c.1).collect());
            (format!("{name} [{label}]"), new, plan)
        })
        .collect();
    let inputs = model_inputs(&m, 13);
    let bytes = onnx::encode_model(&m.proto);
    for b in backends {
        let whole = run_once(b, &bytes, &inputs, &Options::default())
            .unwrap_or_else(|e| panic!("{name} whole on {}: {e}", b.name()));
        for (label, new, plan) in &rewritten {
            let got = run_split(b, new, plan, &inputs)
                .unwrap_or_else(|e| panic!("{label} on {}: {e}", b.name()));
            assert_close(
                &format!("{label} on {}", b.name()),
                &whole,
                &got,
                &m.graph.outputs,
            );
            eprintln!("ok  {label} on {}", b.name());
        }
    }
    rewritten.len()
}

#[test]
fn zoo_models_split_horizontally_agree_with_the_whole_model() {
    let backends = backends();
    assert!(
        !backends.is_empty() || !required(),
        "no backend under test is usable"
    );
    if backends.is_empty() {
        eprintln!("\n*** SKIPPING horizontal conformance: no backend under test is usable\n");
        return;
    }
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    let mut checked = 0;
    for &name in zoo::names() {
        checked += check_model(name, &backends);
    }
    eprintln!(
        "{checked} horizontal mappings of {} zoo models agree on {names:?}",
        zoo::names().len()
    );
    assert!(checked >= 2 * zoo::names().len() - 2);
}

/// A run of awkward windows on an odd-sized input (strided, dilated and grouped
/// convolutions, ceil-mode pools with and without padding, a residual Add, a Concat).
fn odd_windows() -> Model {
    use dicesim_plan::zoo::builder::{Builder, Conv, Pool};
    let (mut b, x) = Builder::new("odd_windows", 37);
    let x = b.conv("c5", &x, Conv::new(8, 5).stride(2).pad(2).bias());
    let x = b.relu("r5", &x);
    let x = b.avgpool("ap", &x, Pool::new(3).stride(2).pad(1).ceil());
    let x = b.conv("dil", &x, Conv::new(8, 3).pad(2).dilation(2));
    let g = b.conv("grp", &x, Conv::new(8, 3).pad(1).groups(4));
    let one = b.conv("one", &x, Conv::new(8, 1));
    let x = b.add("res", &g, &one);
    let k3 = b.conv("k3", &x, Conv::new(4, 3).pad(1));
    let x = b.concat("cat", &[x, k3]);
    let x = b.maxpool("mp", &x, Pool::new(3).stride(2).ceil());
    let proto = b.finish(&[x]).unwrap();
    Model::analyse(proto, "odd_windows", &Default::default()).unwrap()
}

#[test]
fn tiles_through_awkward_windows_agree_with_the_whole_model() {
    let m = odd_windows();
    let all: Vec<usize> = (0..m.graph.layers.len()).collect();
    let (three, four) = (
        ["a.cpu", "b.cpu", "c.cpu"],
        ["a.cpu", "b.cpu", "c.cpu", "d.cpu"],
    );
    let mut grid = spec(all.clone(), SplitKind::Spatial, &four, Shares::Speed).1;
    grid.grid = (2, 2);
    let mut cols = spec(all.clone(), SplitKind::Spatial, &three, Shares::Speed).1;
    cols.grid = (1, 3);
    let rows = spec(
        all,
        SplitKind::Spatial,
        &three,
        Shares::Ratios(vec![1.0, 3.0, 1.0]),
    )
    .1;
    let inputs = model_inputs(&m, 17);
    let bytes = onnx::encode_model(&m.proto);
    for b in backends() {
        let whole = run_once(&b, &bytes, &inputs, &Options::default()).unwrap();
        for (label, s) in [("rows 1:3:1", &rows), ("columns", &cols), ("2x2", &grid)] {
            let (new, plan) = rewrite(&m, vec![s.clone()]);
            let got = run_split(&b, &new, &plan, &inputs)
                .unwrap_or_else(|e| panic!("odd windows {label} on {}: {e}", b.name()));
            assert_close(
                &format!("odd windows {label} on {}", b.name()),
                &whole,
                &got,
                &m.graph.outputs,
            );
        }
    }
}
