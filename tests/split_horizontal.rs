//! `split --verify` with horizontal splits over every zoo model: for every kind that applies
//! (fused tiles over the longest tileable run from the first layer, the filters of a plain,
//! a grouped and the last matrix layer, the inputs of a plain convolution and of the last
//! matrix layer), the chained sub-models of the rewritten model reproduce the ORIGINAL
//! model (tract) within 1e-5 relative error.

mod common;
use common::{assert_ok, bin, root};

use dicesim::verify::verify_split;
use dicesim_plan::horizontal::{apply, Hybrid, Shares, SplitKind, SplitSpec};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::split::write_split;
use dicesim_plan::{zoo, Model};

/// Input size of the checks: small, so that the whole file runs in seconds.
const SIZE: usize = 32;

/// Operators a fused tile run may hold (a subset of what the rewrite accepts).
const TILEABLE: &[&str] = &[
    "Conv",
    "MaxPool",
    "AveragePool",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "BatchNormalization",
    "Add",
    "Mul",
    "Concat",
];

/// The convolution's `group` attribute.
fn group(m: &Model, l: usize) -> i64 {
    (m.node(l).attribute.iter())
        .find(|a| a.name.as_deref() == Some("group"))
        .and_then(|a| a.i)
        .unwrap_or(1)
}

/// The layers from the first on whose operators can be tiled and whose results have at
/// least `tiles` rows.
fn tileable_prefix(m: &Model, tiles: usize) -> Vec<usize> {
    let g = &m.graph;
    (0..g.layers.len())
        .take_while(|&l| {
            let (op, sh) = (&g.layers[l].op, &g.layers[l].output_shape);
            TILEABLE.contains(&op.as_str()) && sh.len() == 4 && sh[2] >= tiles
        })
        .collect()
}

/// Convolutions with constant weights and `group == 1` (plain) or `> 1` (grouped), beyond
/// the first layer.
fn convs(m: &Model, grouped: bool) -> impl Iterator<Item = usize> + '_ {
    (1..m.graph.layers.len())
        .filter(move |&l| m.graph.layers[l].op == "Conv" && (group(m, l) > 1) == grouped)
}

fn last_matrix(m: &Model) -> Option<usize> {
    (0..m.graph.layers.len())
        .rev()
        .find(|&l| matches!(m.graph.layers[l].op.as_str(), "Gemm" | "MatMul"))
}

fn spec(layers: Vec<usize>, kind: SplitKind, units: &[&str], shares: Shares) -> SplitSpec {
    let n = units.len();
    SplitSpec {
        layers,
        kind,
        units: units.iter().map(|u| u.to_string()).collect(),
        shares,
        grid: (n, 1),
        label: String::new(),
    }
}

/// Every split of `m` this file checks, labelled, in two mappings (each layer in one split
/// at most): fused tiles and the last matrix layer's filters; the filters of the first plain
/// and of the first grouped convolution, the inputs of the second plain convolution and of
/// the last matrix layer. Two verifications per model keep the file fast.
fn cases(m: &Model) -> [Vec<(String, SplitSpec)>; 2] {
    use SplitKind::*;
    let two = ["b.cpu", "c.cpu"];
    let three = ["a.cpu", "b.cpu", "c.cpu"];
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let run = tileable_prefix(m, 2);
    if !run.is_empty() {
        let label = format!("spatial x2 over {} layers", run.len());
        first.push((label, spec(run, Spatial, &two, Shares::Speed)));
    }
    let plain: Vec<usize> = convs(m, false).take(2).collect();
    if let [a, b] = plain[..] {
        let r = Shares::Ratios(vec![2.0, 1.0, 1.0]);
        second.push((
            "out_channels of a conv".into(),
            spec(vec![a], OutChannels, &three, r),
        ));
        second.push((
            "in_channels of a conv".into(),
            spec(vec![b], InChannels, &two, Shares::Speed),
        ));
    }
    if let Some(l) = convs(m, true).find(|l| !plain.contains(l)) {
        let label = format!("out_channels of a conv of {} groups", group(m, l));
        second.push((label, spec(vec![l], OutChannels, &two, Shares::Speed)));
    }
    if let Some(l) = last_matrix(m) {
        let r = Shares::Ratios(vec![1.0, 3.0]);
        first.push((
            "out_channels of the last Gemm".into(),
            spec(vec![l], OutChannels, &two, r),
        ));
        second.push((
            "in_channels of the last Gemm".into(),
            spec(vec![l], InChannels, &three, Shares::Speed),
        ));
    }
    [first, second]
}

/// The layers outside the splits on a.cpu, each split's on its first unit.
fn hybrid(m: &Model, splits: Vec<SplitSpec>) -> Hybrid {
    let mut units = vec!["a.cpu".to_string(); m.graph.layers.len()];
    for s in &splits {
        for &l in &s.layers {
            units[l] = s.units[0].clone();
        }
    }
    Hybrid {
        base: Mapping::from_assignment(&units),
        splits,
    }
}

/// Rewrites, splits and verifies against the original model; returns the partition count.
fn check(m: &Model, h: &Hybrid, label: &str) -> usize {
    let (new, mapping) = apply(m, h).unwrap_or_else(|e| panic!("{label}: {e}"));
    let plan = Plan::build(&new.graph, &mapping).unwrap_or_else(|e| panic!("{label}: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let pf = write_split(&new, &plan, dir.path()).unwrap();
    let v = verify_split(m, &pf, dir.path(), 3).unwrap_or_else(|e| panic!("{label}: {e:#}"));
    assert_eq!(v.outputs.len(), m.graph.outputs.len(), "{label}");
    assert!(
        v.max_rel_error() <= 1e-5,
        "{label}: max relative error {:.3e}",
        v.max_rel_error()
    );
    plan.partitions.len()
}

/// Checks the cases of zoo model `name`; returns their labels.
fn check_model(name: &str) -> Vec<String> {
    let m = Model::zoo(name, SIZE).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut done = Vec::new();
    for cases in cases(&m).into_iter().filter(|c| !c.is_empty()) {
        let labels: Vec<String> = cases.iter().map(|c| format!("{name}: {}", c.0)).collect();
        let label = labels.join(", ");
        let splits: Vec<SplitSpec> = cases.into_iter().map(|c| c.1).collect();
        let t0 = std::time::Instant::now();
        let parts = check(&m, &hybrid(&m, splits), &label);
        eprintln!(
            "ok  {label}: {parts} partitions, {:.2} s",
            t0.elapsed().as_secs_f64()
        );
        assert!(parts >= 3, "{label}: {parts} partitions");
        done.extend(labels);
    }
    done
}

#[test]
fn every_zoo_model_splits_horizontally_and_verifies() {
    let names = zoo::names();
    // two threads (CI has 2 cores), the large models shared between them
    let half = |odd: usize| {
        (names.iter().skip(odd).step_by(2))
            .flat_map(|n| check_model(n))
            .collect::<Vec<_>>()
    };
    let done: Vec<String> = std::thread::scope(|sc| {
        let (a, b) = (sc.spawn(|| half(0)), sc.spawn(|| half(1)));
        let mut done = a.join().unwrap();
        done.extend(b.join().unwrap());
        done
    });
    // every model has a spatial run and plain convolutions; those with a classifier a Gemm
    for name in names {
        let has = |k: &str| done.iter().any(|d| d.starts_with(&format!("{name}: {k}")));
        for k in ["spatial", "out_channels of a conv", "in_channels of a conv"] {
            assert!(has(k), "{name}: no case {k}");
        }
    }
    let grouped = done.iter().filter(|d| d.contains("groups")).count();
    assert!(
        grouped >= 2,
        "mobilenet_v2 and efficientnet_b0 have depthwise convolutions"
    );
    let gemm = done.iter().filter(|d| d.contains("last Gemm")).count();
    assert!(gemm >= 2 * 8, "{gemm} matrix cases");
}

#[test]
fn a_two_by_two_grid_of_tiles_with_unequal_shares_verifies() {
    let m = Model::zoo("resnet18", 64).unwrap();
    let run = tileable_prefix(&m, 2);
    let units = ["a.cpu", "b.cpu", "c.cpu", "d.cpu"];
    let mut s = spec(
        run,
        SplitKind::Spatial,
        &units,
        Shares::Ratios(vec![1.0, 2.0, 3.0, 1.0]),
    );
    s.grid = (2, 2);
    check(&m, &hybrid(&m, vec![s]), "resnet18: spatial 2x2");
}

/// `dicesim split --verify` of `model` with the docs' example mapping `mapping` (and
/// AutoDiCE `horizontal`); returns what it printed.
fn split_docs_example(model: &std::path::Path, mapping: &str, horizontal: Option<&str>) -> String {
    let dir = root().join("docs/examples/mappings");
    let mut cmd = bin();
    cmd.arg("split")
        .arg(model)
        .arg("--mapping")
        .arg(dir.join(mapping));
    if let Some(h) = horizontal {
        cmd.arg("--horizontal").arg(dir.join(h));
    }
    let out = model.with_extension(mapping.replace('.', "-"));
    let o = cmd.arg("--out").arg(out).arg("--verify").output().unwrap();
    assert_ok(&o);
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn the_docs_example_mappings_split_and_verify() {
    // AutoDiCE's files through the command line, verified
    let dir = common::tmp("split-horizontal-docs");
    let o = bin()
        .args(["zoo", "build", "alexnet", "--input-size", "64", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_ok(&o);
    let lop = split_docs_example(
        &dir.join("alexnet.onnx"),
        "alexnet-2way.json",
        Some("alexnet-lop.horizontal.json"),
    );
    assert!(lop.contains("features.3_out.part1"), "{lop}");
    assert!(lop.contains("verify: max relative error"), "{lop}");
    let _ = std::fs::remove_dir_all(&dir);
    // vgg16's tiles (verified above on its convolutions at 32 px): at 128 px its last map
    // has 4 rows, one per tile, each tile a partition on its board
    let m = Model::zoo_for_analysis("vgg16", 128).unwrap();
    let path = root().join("docs/examples/mappings/vgg16-tiles.toml");
    let h = Hybrid::from_file(&path, &m.graph, None).unwrap_or_else(|e| panic!("{e}"));
    let (new, mapping) = apply(&m, &h).unwrap_or_else(|e| panic!("{e}"));
    let plan = Plan::build(&new.graph, &mapping).unwrap();
    for t in 0..4 {
        let l = (new.graph.layer_index(&format!("features.30.tile{t}"))).unwrap();
        let p = plan
            .partitions
            .iter()
            .find(|p| p.layers.contains(&l))
            .unwrap();
        assert_eq!(p.unit, format!("rpi4-{t}.cpu"));
    }
}

/// A run of awkward windows on an odd-sized input: a strided 5x5 convolution, a ceil-mode
/// average pool with padding, a dilated convolution, a grouped one, a residual Add of a
/// 1x1 and a 3x3 branch, a channel Concat and a ceil-mode max pool.
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
    let k3 = b.conv("k3", &x, Conv::new(4, 3).stride(1).pad(1));
    let x = b.concat("cat", &[x, k3]);
    let x = b.maxpool("mp", &x, Pool::new(3).stride(2).ceil());
    let proto = b.finish(&[x]).unwrap();
    Model::analyse(proto, "odd_windows", &Default::default()).unwrap()
}

#[test]
fn tiles_through_strides_dilations_groups_and_ceil_mode_pools_verify() {
    let m = odd_windows();
    let all: Vec<usize> = (0..m.graph.layers.len()).collect();
    let three = ["a.cpu", "b.cpu", "c.cpu"];
    let cases = [
        ("rows 1:3:1", (3, 1), Shares::Ratios(vec![1.0, 3.0, 1.0])),
        ("columns", (1, 3), Shares::Speed),
    ];
    for (label, grid, shares) in cases {
        let mut s = spec(all.clone(), SplitKind::Spatial, &three, shares);
        s.grid = grid;
        check(&m, &hybrid(&m, vec![s]), &format!("odd windows: {label}"));
    }
    let four = ["a.cpu", "b.cpu", "c.cpu", "d.cpu"];
    let mut s = spec(all, SplitKind::Spatial, &four, Shares::Speed);
    s.grid = (2, 2);
    check(&m, &hybrid(&m, vec![s]), "odd windows: 2x2");
}

/// `dicesim run --json SCENARIO [more args]`, parsed.
fn run_json(scenario: &std::path::Path, more: &[&std::ffi::OsStr]) -> serde_json::Value {
    let o = bin()
        .args(["run", "--json"])
        .arg(scenario)
        .args(more)
        .output()
        .unwrap();
    assert_ok(&o);
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn an_exported_hybrid_mapping_runs_as_the_same_plan() {
    let dir = common::tmp("split-horizontal-export");
    let platform = root().join("docs/examples/platforms/two-boards.toml");
    let scenario = |mapping: &str| {
        format!(
            "name = \"hybrid\"\n[model]\nzoo = \"alexnet\"\ninput_size = 64\n[platform]\nfile = {:?}\n[mapping]\nstrategy = \"explicit\"\nfile = \"{mapping}\"\n[workload]\nframes = 3\n",
            platform.display().to_string()
        )
    };
    let hybrid = "[units]\n\"a.cpu\" = { from = \"features.0\", to = \"features.2\" }\n\"b.cpu\" = { from = \"features.4\", to = \"classifier.6\" }\n[[split]]\nlayers = \"features.3\"\nkind = \"out_channels\"\nunits = [\"a.cpu\", \"b.cpu\"]\n";
    std::fs::write(dir.join("hybrid.toml"), hybrid).unwrap();
    std::fs::write(dir.join("s.toml"), scenario("hybrid.toml")).unwrap();
    std::fs::write(dir.join("e.toml"), scenario("exported.toml")).unwrap();
    let exported = dir.join("exported.toml");
    let first = run_json(
        &dir.join("s.toml"),
        &["--export-mapping".as_ref(), exported.as_os_str()],
    );
    let text = std::fs::read_to_string(&exported).unwrap();
    // the scenario's own layer names and the split, not the rewritten model's
    assert!(
        text.contains("[[split]]") && !text.contains(".part0"),
        "{text}"
    );
    assert!(first["partitions"].as_array().unwrap().len() > 3, "{first}");
    let again = run_json(&dir.join("e.toml"), &[]);
    for key in ["latency_ms", "throughput_fps", "partitions"] {
        assert_eq!(first[key], again[key], "{key}\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
