//! Horizontal splits (`[[split]]` tables, AutoDiCE `horizontal.json`): every mistake a user
//! can make is one line naming the file, the split, the key or the layer; and the rewrite of
//! zoo models has the layers, units, partition groups and weights it should.

use dicesim_plan::horizontal::{apply, Hybrid, Shares, SplitKind};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::Model;
use std::collections::HashSet;

fn zoo(name: &str, size: usize) -> Model {
    Model::zoo(name, size).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The error of reading `toml` as a mapping of `model` and applying it, checked to be one
/// line that starts with the file name.
fn error(model: &Model, toml: &str) -> String {
    let e = match Hybrid::from_toml_str(toml, &model.graph, "m.toml") {
        Err(e) => e.to_string(),
        Ok(h) => match apply(model, &h) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted:\n{toml}"),
        },
    };
    assert!(!e.contains('\n'), "not one line: {e}");
    assert!(e.starts_with("m.toml: "), "does not name the file: {e}");
    e
}

fn assert_has(e: &str, parts: &[&str]) {
    for p in parts {
        assert!(e.contains(p), "'{p}' missing from: {e}");
    }
}

/// vgg16: features.0 .. features.30 on a.cpu except what the split holds, the classifier on
/// d.cpu; `split` is the body of one `[[split]]` table.
fn vgg_mapping(units_a: &str, split: &str) -> String {
    format!(
        "[units]\n\"a.cpu\" = {units_a}\n\"d.cpu\" = {{ from = \"avgpool\", to = \"classifier.6\" }}\n\n[[split]]\n{split}\n"
    )
}

const VGG_REST: &str = "{ from = \"features.5\", to = \"features.30\" }";

#[test]
fn split_table_errors_name_the_split_and_the_key() {
    let m = zoo("vgg16", 32);
    let layers = "layers = { from = \"features.0\", to = \"features.4\" }";
    let two = "units = [\"b.cpu\", \"c.cpu\"]";
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            format!("{layers}\nkind = \"rows\"\n{two}"),
            vec!["[[split]] 1", "kind = \"rows\"", "\"spatial\""],
        ),
        (
            format!("{layers}\n{two}"),
            vec!["[[split]] 1", "missing key `kind`"],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\nunits = [\"b.cpu\"]"),
            vec!["[[split]] 1", "units", "at least 2 units, got 1"],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\nunits = [\"b.cpu\", \"b.cpu\"]"),
            vec!["[[split]] 1", "units", "\"b.cpu\" is listed twice"],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\nunits = [\"b\", \"c.cpu\"]"),
            vec!["[[split]] 1", "units", "\"b\"", "<device>.<unit>"],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\n{two}\nratios = [1.0, 2.0, 3.0]"),
            vec!["[[split]] 1", "ratios", "3 numbers for 2 units"],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\n{two}\nratios = [1.0, -2.0]"),
            vec!["[[split]] 1", "ratios", "positive"],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\n{two}\nratios = [1.0, 0.0]"),
            vec!["[[split]] 1", "ratios", "positive"],
        ),
        (
            format!("layers = \"features.2\"\nkind = \"out_channels\"\n{two}\ngrid = [2, 1]"),
            vec![
                "[[split]] 1",
                "grid",
                "only a spatial split",
                "out_channels",
            ],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\n{two}\ngrid = [2, 2]"),
            vec!["[[split]] 1", "grid = [2, 2]", "rows x columns = 2"],
        ),
        (
            format!("{layers}\nkind = \"spatial\"\n{two}\ngrid = [2]"),
            vec!["[[split]] 1", "grid = [2]", "[rows, columns]"],
        ),
        (
            format!("kind = \"spatial\"\n{two}"),
            vec!["[[split]] 1", "missing key `layers`"],
        ),
        (
            format!("layers = []\nkind = \"spatial\"\n{two}"),
            vec!["[[split]] 1", "layers = []", "at least one layer"],
        ),
        (
            format!("{layers}\nkind = \"spatial\""),
            vec!["[[split]] 1", "missing key `units`"],
        ),
        (
            format!("layers = \"features.O\"\nkind = \"spatial\"\n{two}"),
            vec!["[[split]] 1", "layers", "unknown layer 'features.O'"],
        ),
    ];
    for (split, want) in cases {
        let e = error(&m, &vg(&split));
        eprintln!("{e}");
        assert_has(&e, &want);
    }
}

/// The vgg16 mapping with `split` over the layers before features.5.
fn vg(split: &str) -> String {
    vgg_mapping(VGG_REST, split)
}

#[test]
fn a_misspelled_split_key_suggests_the_closest() {
    let m = zoo("vgg16", 32);
    let split = "layers = \"features.2\"\nkind = \"out_channels\"\nunits = [\"b.cpu\", \"c.cpu\"]\nratio = [1.0, 2.0]";
    let toml = vgg_mapping(
        "[{ from = \"features.0\", to = \"features.1\" }, { from = \"features.3\", to = \"features.30\" }]",
        split,
    );
    let e = error(&m, &toml);
    assert_has(
        &e,
        &["split", "unknown key `ratio`", "did you mean `ratios`?"],
    );
}

#[test]
fn every_layer_is_mapped_once() {
    let m = zoo("vgg16", 32);
    let two = "kind = \"out_channels\"\nunits = [\"b.cpu\", \"c.cpu\"]";
    // features.2 in [units] (a.cpu holds features.0 .. features.30) and in the split
    let all = "{ from = \"features.0\", to = \"features.30\" }";
    let e = error(
        &m,
        &vgg_mapping(all, &format!("layers = \"features.2\"\n{two}")),
    );
    assert_has(
        &e,
        &[
            "layer 'features.2'",
            "[[split]] 1",
            "\"a.cpu\"",
            "mapped once",
        ],
    );
    // features.2 in two splits
    let rest = "[\"features.0\", \"features.1\", { from = \"features.3\", to = \"features.30\" }]";
    let toml = format!(
        "{}\n[[split]]\nlayers = [\"features.2\"]\nkind = \"in_channels\"\nunits = [\"b.cpu\", \"c.cpu\"]\n",
        vgg_mapping(rest, &format!("layers = \"features.2\"\n{two}"))
    );
    let e = error(&m, &toml);
    assert_has(
        &e,
        &[
            "layer 'features.2' is in two splits",
            "[[split]] 1",
            "[[split]] 2",
        ],
    );
    // a layer in neither
    let rest = "[\"features.0\", { from = \"features.3\", to = \"features.30\" }]";
    let e = error(
        &m,
        &vgg_mapping(rest, &format!("layers = \"features.2\"\n{two}")),
    );
    assert_has(&e, &["features.1"]);
}

#[test]
fn what_cannot_be_tiled_is_named_with_the_reason() {
    let vgg = zoo("vgg16", 32);
    let units = "kind = \"spatial\"\nunits = [\"b.cpu\", \"c.cpu\"]";
    // a run through the classifier: the first layer that cannot be tiled is named (at 32,
    // the adaptive pool is a Resize)
    let toml = format!(
        "[units]\n\"a.cpu\" = {{ from = \"features.0\", to = \"features.27\" }}\n\"d.cpu\" = {{ from = \"classifier.1\", to = \"classifier.6\" }}\n[[split]]\nlayers = {{ from = \"features.28\", to = \"classifier.0\" }}\n{units}\n"
    );
    let e = error(&vgg, &toml);
    assert_has(
        &e,
        &[
            "[[split]] 1",
            "layer 'avgpool' (Resize)",
            "whole feature map",
        ],
    );
    // Flatten
    let toml = format!(
        "[units]\n\"a.cpu\" = {{ from = \"features.0\", to = \"avgpool\" }}\n\"d.cpu\" = {{ from = \"classifier.0\", to = \"classifier.6\" }}\n[[split]]\nlayers = \"flatten\"\n{units}\n"
    );
    let e = error(&vgg, &toml);
    assert_has(&e, &["[[split]] 1", "layer 'flatten' (Flatten)", "4-D"]);
    // Gemm alone
    let toml = format!(
        "[units]\n\"a.cpu\" = {{ from = \"features.0\", to = \"flatten\" }}\n\"d.cpu\" = {{ from = \"classifier.1\", to = \"classifier.6\" }}\n[[split]]\nlayers = \"classifier.0\"\n{units}\n"
    );
    let e = error(&vgg, &toml);
    assert_has(&e, &["[[split]] 1", "layer 'classifier.0' (Gemm)", "4-D"]);
    // a global pool needs the whole map
    let r = zoo("resnet18", 32);
    let gap = (r.graph.layers.iter())
        .position(|l| l.op == "GlobalAveragePool")
        .expect("resnet18 has a global pool");
    let name = &r.graph.layers[gap].name;
    let toml = format!(
        "[units]\n\"a.cpu\" = {{ from = \"conv1\", to = \"layer4.1.relu_1\" }}\n\"d.cpu\" = {{ from = \"flatten\", to = \"fc\" }}\n[[split]]\nlayers = \"{name}\"\n{units}\n"
    );
    let toml = toml.replace(
        "\"flatten\"",
        &format!("\"{}\"", r.graph.layers[gap + 1].name),
    );
    let e = error(&r, &toml);
    assert_has(
        &e,
        &[
            "[[split]] 1",
            &format!("layer '{name}' (GlobalAveragePool)"),
            "needs the whole feature map",
        ],
    );
}

#[test]
fn in_channels_of_a_depthwise_convolution_is_refused() {
    let m = zoo("mobilenet_v2", 32);
    let dw = "features.1.conv.0.0";
    let l = m.graph.layer_index(dw).unwrap();
    let last = &m.graph.layers.last().unwrap().name;
    let toml = format!(
        "[units]\n\"a.cpu\" = [{{ from = \"features.0.0\", to = \"features.0.2\" }}, {{ from = \"{}\", to = \"{last}\" }}]\n[[split]]\nlayers = \"{dw}\"\nkind = \"in_channels\"\nunits = [\"b.cpu\", \"c.cpu\"]\n",
        m.graph.layers[l + 1].name
    );
    let e = error(&m, &toml);
    assert_has(
        &e,
        &[
            "[[split]] 1",
            "features.1.conv.0.0",
            "in_channels",
            "depthwise",
        ],
    );
    // out_channels of the same layer is fine (cut between groups)
    let ok = toml.replace("in_channels", "out_channels");
    let h = Hybrid::from_toml_str(&ok, &m.graph, "m.toml").unwrap();
    apply(&m, &h).unwrap();
}

#[test]
fn too_many_tiles_for_a_small_map_is_an_empty_tile() {
    // at 32 x 32, features.30's result is 1 x 1: no row for a second tile
    let m = zoo("vgg16", 32);
    let toml = "[units]\n\"d.cpu\" = { from = \"avgpool\", to = \"classifier.6\" }\n[[split]]\nlayers = { from = \"features.0\", to = \"features.30\" }\nkind = \"spatial\"\nunits = [\"a.cpu\", \"b.cpu\"]\n";
    let e = error(&m, toml);
    assert_has(&e, &["[[split]] 1", "rows of", "part 1 would be empty"]);
    // out_channels with more parts than filters' groups allows
    let s = "layers = \"features.2\"\nkind = \"out_channels\"\nunits = [\"b.cpu\", \"c.cpu\"]\nratios = [1000.0, 1.0]";
    let rest = "[\"features.0\", \"features.1\", { from = \"features.3\", to = \"features.30\" }]";
    let e = error(&m, &vgg_mapping(rest, s));
    assert_has(&e, &["[[split]] 1", "features.2", "would be empty"]);
}

/// AutoDiCE's files: mapping.json (each host_unit with its layers) and horizontal.json.
fn autodice(model: &Model, horizontal: &str) -> Result<Hybrid, String> {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<&str> = (model.graph.layers.iter())
        .map(|l| l.name.as_str())
        .collect();
    let mapping = format!("{{\"a_cpu\": {names:?}}}");
    let (mp, hp) = (
        dir.path().join("mapping.json"),
        dir.path().join("horizontal.json"),
    );
    std::fs::write(&mp, mapping).unwrap();
    std::fs::write(&hp, horizontal).unwrap();
    let h = Hybrid::from_file(&mp, &model.graph, Some(&hp)).map_err(|e| e.to_string())?;
    apply(model, &h).map_err(|e| e.to_string())?;
    Ok(h)
}

#[test]
fn autodice_horizontal_json_kinds() {
    let m = zoo("vgg16", 32);
    // features.2 has 64 filters: the first 48 on lenovo, the rest on nano
    let h = autodice(
        &m,
        r#"{"features.2": ["lop", [48, 65535], ["lenovo_cpu0", "nano_cpu"]]}"#,
    )
    .unwrap();
    let s = &h.splits[0];
    assert_eq!(s.kind, SplitKind::OutChannels);
    assert_eq!(s.units, ["lenovo.cpu0", "nano.cpu"]);
    assert_eq!(s.shares, Shares::Ends(vec![48, 65535]));
    let (new, _) = apply(&m, &h).unwrap();
    let w = |part: &str| {
        let l = new.graph.layer_index(part).unwrap();
        new.consts[&new.node(l).input[1]].shape[0]
    };
    assert_eq!((w("features.2.part0"), w("features.2.part1")), (48, 16));
    let h = autodice(
        &m,
        r#"{"features.2": ["lip", [16, 65535], ["a_cpu", "b_cpu"]]}"#,
    )
    .unwrap();
    assert_eq!(h.splits[0].kind, SplitKind::InChannels);
    let h = autodice(
        &m,
        r#"{"features.2": ["height", [10, 65535], ["a_cpu", "b_cpu"]]}"#,
    )
    .unwrap();
    assert_eq!(
        (h.splits[0].kind, h.splits[0].grid),
        (SplitKind::Spatial, (2, 1))
    );
    let h = autodice(
        &m,
        r#"{"features.2": ["width", [10, 65535], ["a_cpu", "b_cpu"]]}"#,
    )
    .unwrap();
    assert_eq!(h.splits[0].grid, (1, 2));
}

#[test]
fn autodice_horizontal_json_errors_name_the_file_and_the_key() {
    let m = zoo("vgg16", 32);
    let bad: &[(&str, &[&str])] = &[
        (
            r#"{"features.2": ["rows", [10, 65535], ["a_cpu", "b_cpu"]]}"#,
            &["horizontal.json", "features.2", "\"lop\""],
        ),
        (
            r#"{"features.2": ["lop", [10], ["a_cpu", "b_cpu"]]}"#,
            &["horizontal.json", "features.2", "1 ends for 2 units"],
        ),
        (
            r#"{"features.2": ["lop", [-1, 65535], ["a_cpu", "b_cpu"]]}"#,
            &["horizontal.json", "features.2", "ends"],
        ),
        (
            r#"{"features.2": ["lop", [10, 65535]]}"#,
            &["horizontal.json", "features.2", "[kind, [ends], [units]]"],
        ),
        (
            r#"{"features.2": ["lop", [10, 65535], ["a_cpu", "a_cpu"]]}"#,
            &["horizontal.json", "features.2", "listed twice"],
        ),
        (
            r#"{"features.22x": ["lop", [10, 65535], ["a_cpu", "b_cpu"]]}"#,
            &["horizontal.json", "unknown layer 'features.22x'"],
        ),
        (
            r#"{"features.2": ["lop", [64, 65535], ["a_cpu", "b_cpu"]]}"#,
            &[
                "horizontal.json",
                "key \"features.2\"",
                "part 1 would be empty",
            ],
        ),
        (r#"["lop"]"#, &["horizontal.json", "JSON object"]),
        (
            r#"{"features.2": "#,
            &["horizontal.json", "JSON syntax error"],
        ),
    ];
    for (text, want) in bad {
        let e = autodice(&m, text).unwrap_err();
        eprintln!("{e}");
        assert!(!e.contains('\n'), "{e}");
        assert_has(&e, want);
    }
}

/// Reads and applies `toml` (which must be valid) to `model`.
fn rewrite(model: &Model, toml: &str) -> (Model, Mapping) {
    let h = Hybrid::from_toml_str(toml, &model.graph, "m.toml").unwrap_or_else(|e| panic!("{e}"));
    apply(model, &h).unwrap_or_else(|e| panic!("{e}"))
}

/// Every tensor read by a layer outside the splits, and every graph output, is still
/// produced under its original name (a fused run's inner tensors exist only as tiles).
fn assert_outputs_kept(old: &Model, new: &Model) {
    let kept = (old.graph.layers.iter()).filter(|l| new.graph.layer_index(&l.name).is_some());
    let read = kept.flat_map(|l| l.inputs.iter());
    for t in read.chain(&old.graph.outputs) {
        if old.graph.tensors[t].producer.is_some() {
            let info = new.graph.tensors.get(t);
            assert!(
                info.and_then(|i| i.producer).is_some(),
                "'{t}' is no longer produced"
            );
        }
    }
    assert_eq!(old.graph.outputs, new.graph.outputs);
}

fn index(m: &Model, name: &str) -> usize {
    (m.graph.layer_index(name)).unwrap_or_else(|| panic!("no layer '{name}'"))
}

/// The partition of layer `name`.
fn partition_of(plan: &Plan, m: &Model, name: &str) -> usize {
    let l = index(m, name);
    (plan.partitions.iter())
        .position(|p| p.layers.contains(&l))
        .unwrap()
}

#[test]
fn spatial_rows_rewrite() {
    let m = zoo("vgg16", 32);
    // features.0 .. features.4 (Conv Relu Conv Relu MaxPool) in 2 row tiles, a.cpu (the
    // reader of the result) holding the first tile too
    let toml = "[units]\n\"a.cpu\" = { from = \"features.5\", to = \"classifier.6\" }\n[[split]]\nlayers = { from = \"features.0\", to = \"features.4\" }\nkind = \"spatial\"\nunits = [\"a.cpu\", \"b.cpu\"]\n";
    let (new, map) = rewrite(&m, toml);
    // 5 layers replaced by 2 x 5 tile layers, a scatter slice of the input per tile and
    // one Concat gather
    assert_eq!(
        new.graph.layers.len(),
        m.graph.layers.len() - 5 + 10 + 2 + 1
    );
    assert_outputs_kept(&m, &new);
    let unit = |n: &str| map.unit_of(index(&new, n)).to_string();
    let group = |n: &str| map.group_of(index(&new, n));
    for l in 0..5 {
        assert_eq!(unit(&format!("features.{l}.tile0")), "a.cpu");
        assert_eq!(unit(&format!("features.{l}.tile1")), "b.cpu");
    }
    let out = &m.graph.layers[4].outputs[0];
    let gather = format!("{out}.gather");
    // the graph input's slices on each tile's own unit, the gather where it is read
    assert_eq!(unit("input.scatter0"), "a.cpu");
    assert_eq!(unit("input.scatter1"), "b.cpu");
    assert_eq!(unit(&gather), "a.cpu");
    assert_eq!(new.graph.layers[index(&new, &gather)].op, "Concat");
    // each tile a partition group of its own; scatters and gathers with the layers
    // around them (group 0)
    let (g0, g1) = (group("features.0.tile0"), group("features.0.tile1"));
    assert!(g0 != g1 && g0 != 0 && g1 != 0);
    assert_eq!(
        (group(&gather), group("input.scatter0"), group("features.5")),
        (0, 0, 0)
    );
    assert_eq!(group("features.5"), 0);
    // halo: tile 0 reads rows 0..17 of the 32 input rows (two 3x3 convs and a 2x2 pool
    // for output rows 0..8)
    let tile_in = &new.graph.tensors[&new.graph.layers[index(&new, "features.0.tile0")].inputs[0]];
    assert_eq!(tile_in.shape, [1, 3, 18, 32]);
    let plan = Plan::build(&new.graph, &map).unwrap();
    let (pt, pg) = (
        partition_of(&plan, &new, "features.4.tile0"),
        partition_of(&plan, &new, &gather),
    );
    assert_eq!(plan.partitions[pt].unit, plan.partitions[pg].unit);
    assert_ne!(pt, pg, "a.cpu's tile and the gather share a partition");
}

#[test]
fn spatial_grid_rewrite() {
    let m = zoo("resnet18", 32);
    // conv1 .. layer1.0.relu_1 (a residual block) in a 2 x 2 grid
    let toml = "[units]\n\"a.cpu\" = { from = \"layer1.1.conv1\", to = \"fc\" }\n[[split]]\nlayers = { from = \"conv1\", to = \"layer1.0.relu_1\" }\nkind = \"spatial\"\nunits = [\"a.cpu\", \"b.cpu\", \"c.cpu\", \"d.cpu\"]\ngrid = [2, 2]\n";
    let (new, map) = rewrite(&m, toml);
    assert_outputs_kept(&m, &new);
    for (t, u) in ["a.cpu", "b.cpu", "c.cpu", "d.cpu"].iter().enumerate() {
        let l = index(&new, &format!("layer1.0.add.tile{t}"));
        assert_eq!(map.unit_of(l), *u);
    }
    let out = &m.graph.layers[index(&m, "layer1.0.relu_1")].outputs[0];
    // rows of columns: two row Concats and one of the rows
    let gather = index(&new, &format!("{out}.gather"));
    assert_eq!(new.graph.layers[gather].inputs.len(), 2);
    assert_eq!(map.unit_of(gather), "a.cpu");
    let plan = Plan::build(&new.graph, &map).unwrap();
    assert_ne!(
        partition_of(&plan, &new, "layer1.0.relu_1.tile0"),
        partition_of(&plan, &new, &format!("{out}.gather"))
    );
}

/// The raw bytes of weight input `i` of layer `name`.
fn weight_bytes(m: &Model, name: &str, i: usize) -> Vec<u8> {
    let c = &m.consts[&m.node(index(m, name)).input[i]];
    c.proto
        .raw_data
        .as_ref()
        .expect("zoo weights are raw")
        .to_vec()
}

#[test]
fn out_channels_rewrite_cuts_the_weights() {
    let m = zoo("vgg16", 32);
    let rest = "[\"features.0\", \"features.1\", { from = \"features.3\", to = \"features.30\" }]";
    let s = "layers = \"features.2\"\nkind = \"out_channels\"\nunits = [\"a.cpu\", \"b.cpu\", \"c.cpu\"]\nratios = [2.0, 1.0, 1.0]";
    let (new, map) = rewrite(&m, &vgg_mapping(rest, s));
    assert_eq!(new.graph.layers.len(), m.graph.layers.len() - 1 + 3 + 1);
    assert_outputs_kept(&m, &new);
    let parts = ["features.2.part0", "features.2.part1", "features.2.part2"];
    let filters: Vec<usize> = (parts.iter())
        .map(|p| new.consts[&new.node(index(&new, p)).input[1]].shape[0])
        .collect();
    assert_eq!(filters, [32, 16, 16]);
    for i in [1, 2] {
        let joined: Vec<u8> = parts
            .iter()
            .flat_map(|p| weight_bytes(&new, p, i))
            .collect();
        assert_eq!(joined, weight_bytes(&m, "features.2", i), "input {i}");
    }
    let params: u64 = (parts.iter())
        .map(|p| new.graph.layers[index(&new, p)].params_bytes)
        .sum();
    assert_eq!(params, m.graph.layers[index(&m, "features.2")].params_bytes);
    let units: Vec<&str> = parts.iter().map(|p| map.unit_of(index(&new, p))).collect();
    assert_eq!(units, ["a.cpu", "b.cpu", "c.cpu"]);
    let gather = format!(
        "{}.gather",
        m.graph.layers[index(&m, "features.2")].outputs[0]
    );
    assert_eq!(map.unit_of(index(&new, &gather)), "a.cpu");
    let plan = Plan::build(&new.graph, &map).unwrap();
    assert_ne!(
        partition_of(&plan, &new, "features.2.part0"),
        partition_of(&plan, &new, &gather)
    );
}

#[test]
fn in_channels_rewrite_adds_partial_sums() {
    let m = zoo("vgg16", 32);
    let toml = "[units]\n\"a.cpu\" = { from = \"features.0\", to = \"classifier.1\" }\n\"d.cpu\" = { from = \"classifier.4\", to = \"classifier.6\" }\n[[split]]\nlayers = \"classifier.3\"\nkind = \"in_channels\"\nunits = [\"b.cpu\", \"c.cpu\"]\n";
    let (new, map) = rewrite(&m, toml);
    // 2 parts, a scatter slice per part, one Sum
    assert_eq!(new.graph.layers.len(), m.graph.layers.len() - 1 + 2 + 2 + 1);
    assert_outputs_kept(&m, &new);
    let out = &m.graph.layers[index(&m, "classifier.3")].outputs[0];
    let gather = index(&new, &format!("{out}.gather"));
    assert_eq!(new.graph.layers[gather].op, "Sum");
    assert_eq!(map.unit_of(gather), "d.cpu", "gathered where it is read");
    // the scatter slices run where the input is made
    for i in 0..2 {
        assert_eq!(
            map.unit_of(index(&new, &format!("classifier.3.scatter{i}"))),
            "a.cpu"
        );
    }
    // the bias once: in part 0 only
    let inputs = |p: &str| new.node(index(&new, p)).input.len();
    assert_eq!(
        (inputs("classifier.3.part0"), inputs("classifier.3.part1")),
        (3, 2)
    );
    let params: u64 = (0..2)
        .map(|i| new.graph.layers[index(&new, &format!("classifier.3.part{i}"))].params_bytes)
        .sum();
    assert_eq!(
        params,
        m.graph.layers[index(&m, "classifier.3")].params_bytes
    );
}

#[test]
fn a_mapping_without_splits_is_unchanged() {
    let m = zoo("resnet18", 32);
    let h = Hybrid::vertical(Mapping::single(&m.graph, "a.cpu"));
    let (new, map) = apply(&m, &h).unwrap();
    assert_eq!(new.graph.layers.len(), m.graph.layers.len());
    assert_eq!(map, Mapping::single(&m.graph, "a.cpu"));
    let names: HashSet<&str> = new.graph.layers.iter().map(|l| l.name.as_str()).collect();
    assert!(m
        .graph
        .layers
        .iter()
        .all(|l| names.contains(l.name.as_str())));
}

#[test]
fn a_split_reading_another_splits_result_scatters_where_it_is_gathered() {
    let m = zoo("vgg16", 32);
    // tiles over features.0 .. features.4, whose result features.5 (split by in_channels on
    // d and e) reads: gathered on d.cpu, so sliced there too
    let toml = "[units]\n\"a.cpu\" = { from = \"features.6\", to = \"classifier.6\" }\n[[split]]\nlayers = { from = \"features.0\", to = \"features.4\" }\nkind = \"spatial\"\nunits = [\"b.cpu\", \"c.cpu\"]\n[[split]]\nlayers = \"features.5\"\nkind = \"in_channels\"\nunits = [\"d.cpu\", \"e.cpu\"]\n";
    let (new, map) = rewrite(&m, toml);
    let unit = |n: &str| map.unit_of(index(&new, n)).to_string();
    let t = &m.graph.layers[index(&m, "features.4")].outputs[0];
    assert_eq!(unit(&format!("{t}.gather")), "d.cpu");
    for i in 0..2 {
        assert_eq!(unit(&format!("features.5.scatter{i}")), "d.cpu");
    }
    // and the other way round: a channel split's result read by a spatial split
    let toml = "[units]\n\"a.cpu\" = [\"features.0\", \"features.1\", { from = \"features.5\", to = \"classifier.6\" }]\n[[split]]\nlayers = { from = \"features.3\", to = \"features.4\" }\nkind = \"spatial\"\nunits = [\"b.cpu\", \"c.cpu\"]\n[[split]]\nlayers = \"features.2\"\nkind = \"out_channels\"\nunits = [\"d.cpu\", \"e.cpu\"]\n";
    let (new, map) = rewrite(&m, toml);
    let unit = |n: &str| map.unit_of(index(&new, n)).to_string();
    let t = &m.graph.layers[index(&m, "features.2")].outputs[0];
    assert_eq!(unit(&format!("{t}.gather")), "b.cpu");
    for i in 0..2 {
        assert_eq!(unit(&format!("{t}.scatter{i}")), "b.cpu");
    }
}

#[test]
fn a_hybrid_written_as_toml_reads_back_the_same() {
    let m = zoo("resnet18", 32);
    let toml = "[units]\n\"a.cpu\" = [\"conv1\", { from = \"layer1.1.conv1\", to = \"layer4.1.relu_1\" }, \"avgpool\", \"flatten\"]\n[[split]]\nlayers = { from = \"bn1\", to = \"layer1.0.relu_1\" }\nkind = \"spatial\"\nunits = [\"a.cpu\", \"b.cpu\", \"c.cpu\", \"d.cpu\"]\ngrid = [2, 2]\nratios = [1.0, 2.5, 1.0, 1.0]\n[[split]]\nlayers = \"fc\"\nkind = \"in_channels\"\nunits = [\"b.cpu\", \"c.cpu\"]\n";
    let h = Hybrid::from_toml_str(toml, &m.graph, "m.toml").unwrap();
    let written = h.to_toml(&m.graph);
    let back = Hybrid::from_toml_str(&written, &m.graph, "m.toml")
        .unwrap_or_else(|e| panic!("{e}\n{written}"));
    assert_eq!(back, h, "{written}");
}
