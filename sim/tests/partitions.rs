//! The evaluator's partitioning (`PreparedScenario::sim_plan`, index-only) forms exactly the
//! partitions of `dicesim_plan::partition::Plan::build` (what `dicesim split` writes and
//! `dicesim run` simulates), and so gives identical metrics.

use std::path::Path;

use dicesim_plan::model::zoo_graph;
use dicesim_plan::partition::Plan;
use dicesim_sim::platform::Platform;
use dicesim_sim::{strategy, PreparedScenario, Window, Workload};

/// A small deterministic generator (xorshift64*), so the test needs no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn prep(model: &str, size: usize, frames: u32) -> PreparedScenario {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let p = Platform::load(&root.join("platforms/mixed4-gige.toml")).unwrap();
    let g = zoo_graph(model, size).unwrap();
    PreparedScenario::new(
        g,
        p,
        Workload {
            frames,
            period_ns: 0,
            window: Window::Unlimited,
        },
    )
}

/// Random assignments: contiguous blocks with some layers scattered to other units, so that
/// branches of a DAG land on units that are not adjacent in the topological order.
fn random_assign(rng: &mut Rng, layers: usize, units: usize) -> Vec<usize> {
    let mut a = Vec::with_capacity(layers);
    let mut u = rng.below(units);
    for _ in 0..layers {
        match rng.below(20) {
            0..=1 => u = rng.below(units),
            2..=3 => {
                a.push(rng.below(units));
                continue;
            }
            _ => {}
        }
        a.push(u);
    }
    a
}

#[test]
fn evaluator_partitions_equal_plan_build_on_random_mappings() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for (model, size) in [
        ("resnet18", 64),
        ("resnet50", 64),
        ("googlenet", 64),
        ("squeezenet1_1", 64),
        ("mobilenet_v2", 64),
        ("yolov3_tiny", 64),
        ("vgg16", 32),
    ] {
        let ps = prep(model, size, 3);
        let nu = ps.platform.units.len();
        let nl = ps.graph.layers.len();
        for trial in 0..40 {
            let assign = random_assign(&mut rng, nl, nu);
            let m = strategy::mapping_from_assignment(&ps, &assign);
            let plan = Plan::build(&ps.graph, &m).unwrap();
            let from_plan = ps.sim_plan_from(&plan).unwrap();
            let fast = ps.sim_plan(&assign);
            assert_eq!(fast, from_plan, "{model} trial {trial}");
        }
    }
}

#[test]
fn contiguous_mappings_give_identical_metrics_both_ways() {
    // vgg16 is a chain: Plan::build's partitions are the contiguous runs
    let ps = prep("vgg16", 64, 20);
    let units: Vec<usize> = (0..ps.platform.units.len()).collect();
    for m in [
        strategy::even(&ps, &units).unwrap(),
        strategy::pipeedge(&ps, &units).unwrap(),
        strategy::single(&ps, &units).unwrap(),
    ] {
        let plan = Plan::build(&ps.graph, &m).unwrap();
        let sp = ps.sim_plan_from(&plan).unwrap();
        let assign = ps.assignment(&m).unwrap();
        // the partitions are the contiguous runs of the assignment
        let runs = 1 + assign.windows(2).filter(|w| w[0] != w[1]).count();
        assert_eq!(sp.parts.len(), runs);
        let out = ps.simulate(&sp, false).unwrap();
        let via_plan = ps.metrics(&sp, &out, &ps.memory_bytes(&sp));
        assert_eq!(ps.evaluate(&m).unwrap(), via_plan);
    }
}

#[test]
fn a_parallel_branch_joins_the_partition_it_reads_from() {
    // resnet18 with the main branch of layer2.0 (conv1..bn2) on another unit: the
    // downsample branch that follows it in topological order reads only from the first
    // partition and joins it (contiguous runs would have put it with the rest of the model).
    let ps = prep("resnet18", 64, 1);
    let idx = |n: &str| ps.graph.layers.iter().position(|l| l.name == n).unwrap();
    let (a, b, ds) = (
        idx("layer2.0.conv1"),
        idx("layer2.0.bn2"),
        idx("layer2.0.downsample.0"),
    );
    assert!(
        b < ds,
        "downsample follows the main branch in topological order"
    );
    let mut assign = vec![0usize; ps.graph.layers.len()];
    for u in &mut assign[a..=b] {
        *u = 1;
    }
    let sp = ps.sim_plan(&assign);
    assert_eq!(sp.parts.len(), 3, "{:?}", sp.parts);
    assert!(sp.parts[0].layers.contains(&0) && sp.parts[0].layers.contains(&ds));
    let m = strategy::mapping_from_assignment(&ps, &assign);
    let plan = Plan::build(&ps.graph, &m).unwrap();
    assert_eq!(ps.sim_plan_from(&plan).unwrap(), sp);
}
