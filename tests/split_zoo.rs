//! `split --verify` over every zoo model under several mappings: the chained sub-models must
//! reproduce the whole model (tract) within 1e-5 relative error.

use dicesim::verify::verify_split;
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_plan::split::write_split;
use dicesim_plan::{zoo, Model};

fn check(model: &Model, mapping: &Mapping, label: &str) -> usize {
    let plan = Plan::build(&model.graph, mapping).unwrap_or_else(|e| panic!("{label}: {e}"));
    // Every layer in exactly one partition, on its unit; edges follow partition order.
    let mut seen = vec![0; model.graph.layers.len()];
    for p in &plan.partitions {
        for &l in &p.layers {
            seen[l] += 1;
            assert_eq!(
                mapping.unit_of(l),
                p.unit,
                "{label}: layer on the wrong unit"
            );
        }
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "{label}: a layer is not in exactly one partition"
    );
    for e in &plan.edges {
        assert!(
            e.from < e.to,
            "{label}: edge {} -> {} against topological order",
            e.from,
            e.to
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let pf = write_split(model, &plan, dir.path()).unwrap();
    let v = verify_split(model, &pf, dir.path(), 7).unwrap_or_else(|e| panic!("{label}: {e:#}"));
    assert_eq!(v.outputs.len(), model.graph.outputs.len());
    assert!(
        v.max_rel_error() <= 1e-5,
        "{label}: max relative error {:.3e}",
        v.max_rel_error()
    );
    plan.partitions.len()
}

/// Contiguous stages of equal layer counts.
fn contiguous(n_layers: usize, k: usize) -> Mapping {
    let units: Vec<String> = (0..n_layers)
        .map(|i| format!("d{}.cpu", i * k / n_layers))
        .collect();
    Mapping::from_assignment(&units)
}

/// Blocks of `b` layers alternating between two units: non-contiguous, with cuts inside
/// residual and parallel branches, so partitions must be split to avoid cycles.
fn interleaved(n_layers: usize, b: usize) -> Mapping {
    let units: Vec<String> = (0..n_layers)
        .map(|i| format!("d{}.cpu", (i / b) % 2))
        .collect();
    Mapping::from_assignment(&units)
}

#[test]
fn every_zoo_model_splits_and_verifies() {
    for &name in zoo::names() {
        let model = Model::zoo(name, 64).unwrap();
        let n = model.graph.layers.len();
        check(&model, &contiguous(n, 2), &format!("{name} 2-way"));
        check(&model, &contiguous(n, 4), &format!("{name} 4-way"));
        let parts = check(&model, &interleaved(n, 7), &format!("{name} interleaved"));
        assert!(
            parts >= 2,
            "{name}: interleaved mapping gave {parts} partitions"
        );
    }
}

#[test]
fn resnet_cut_inside_residual_blocks() {
    let model = Model::zoo("resnet18", 64).unwrap();
    let g = &model.graph;
    // Cut between bn1 and the rest of the block: the identity branch crosses the cut.
    let cut = g.layer_index("layer1.0.bn1").unwrap();
    let units: Vec<&str> = (0..g.layers.len())
        .map(|i| if i <= cut { "a.cpu" } else { "b.cpu" })
        .collect();
    check(
        &model,
        &Mapping::from_assignment(&units),
        "resnet18 mid-block",
    );
    // The second conv of every block offloaded: "a" holds non-adjacent layers.
    let units: Vec<&str> = g
        .layers
        .iter()
        .map(|l| {
            if l.name.contains("conv2") || l.name.contains("bn2") {
                "b.gpu"
            } else {
                "a.cpu"
            }
        })
        .collect();
    check(
        &model,
        &Mapping::from_assignment(&units),
        "resnet18 conv2 offload",
    );
    let mv2 = Model::zoo("mobilenet_v2", 64).unwrap();
    let units: Vec<&str> = (0..mv2.graph.layers.len())
        .map(|i| if i % 3 == 1 { "b.cpu" } else { "a.cpu" })
        .collect();
    check(
        &mv2,
        &Mapping::from_assignment(&units),
        "mobilenet_v2 every third layer",
    );
}

#[test]
fn googlenet_four_way_across_inception_branches() {
    let model = Model::zoo("googlenet", 64).unwrap();
    let units: Vec<String> = model
        .graph
        .layers
        .iter()
        .map(|l| {
            let b = ["branch1", "branch2", "branch3", "branch4"]
                .iter()
                .position(|b| l.name.split('.').any(|p| p == *b));
            format!("d{}.cpu", b.unwrap_or(0))
        })
        .collect();
    let m = Mapping::from_assignment(&units);
    assert_eq!(m.units.len(), 4, "every branch name should appear");
    let parts = check(&model, &m, "googlenet 4-way branches");
    assert!(
        parts > 4,
        "branches rejoin at every Concat: partitions must be split ({parts})"
    );
}

#[test]
fn yolov3_tiny_two_outputs_on_different_units() {
    let model = Model::zoo("yolov3_tiny", 64).unwrap();
    let g = &model.graph;
    assert_eq!(g.outputs.len(), 2);
    // Everything from the upsample on (the second head) on its own unit.
    let up = g
        .layers
        .iter()
        .position(|l| l.op == "Resize" || l.op == "Upsample")
        .unwrap();
    let units: Vec<&str> = (0..g.layers.len())
        .map(|i| if i >= up { "b.gpu" } else { "a.cpu" })
        .collect();
    check(
        &model,
        &Mapping::from_assignment(&units),
        "yolov3_tiny second head",
    );
}

#[test]
fn same_unit_layers_join_one_partition_when_no_cycle() {
    let model = Model::zoo("resnet18", 32).unwrap();
    let g = &model.graph;
    // Downsample branches on "b", all else on "a".
    let units: Vec<&str> = g
        .layers
        .iter()
        .map(|l| {
            if l.name.contains("downsample") {
                "b.cpu"
            } else {
                "a.cpu"
            }
        })
        .collect();
    let m = Mapping::from_assignment(&units);
    let plan = Plan::build(g, &m).unwrap();
    // Stage k+1's downsample reads what "a" computed after stage k's downsample came back,
    // so the three downsample branches cannot share a partition, and "a" is cut once after
    // each of them: b = 3 partitions, a = 4.
    let a_parts = plan.partitions.iter().filter(|p| p.unit == "a.cpu").count();
    let b_parts = plan.partitions.iter().filter(|p| p.unit == "b.cpu").count();
    assert_eq!((a_parts, b_parts), (4, 3));
    check(&model, &m, "resnet18 downsample offload");
    // A single unit gives a single partition without edges.
    let one = Plan::build(g, &Mapping::single(g, "a.cpu")).unwrap();
    assert_eq!(one.partitions.len(), 1);
    assert!(one.edges.is_empty());
}
