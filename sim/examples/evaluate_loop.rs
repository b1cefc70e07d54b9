//! Evaluates one mapping many times, for counting instructions: a deterministic measure of
//! the evaluator's cost that a shared, noisy machine does not blur (criterion's timings do).
//!
//! ```text
//! cargo build --release -p dicesim-sim --example evaluate_loop
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null '--toggle-collect=*evaluate_assignment*' \
//!     target/release/examples/evaluate_loop r50 1     # or: r50 100, vgg 1, vgg 100
//! ```
//! `Collected` / 2000 is the instructions of one evaluation: resnet50 at 224 on the 3-device
//! Wi-Fi platform (`r50`) or vgg16 at 224 on the 4-device gigabit one (`vgg`), the `even`
//! mapping, the given number of frames, saturating, no window (the `evaluate` bench's cases).

use std::path::Path;

use dicesim_plan::model::zoo_graph;
use dicesim_sim::platform::Platform;
use dicesim_sim::{strategy, PreparedScenario, Window, Workload};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "r50".into());
    let frames: u32 = args.next().and_then(|f| f.parse().ok()).unwrap_or(1);
    let (model, platform) = match case.as_str() {
        "r50" => ("resnet50", "platforms/wifi5-mixed3.toml"),
        "vgg" => ("vgg16", "platforms/mixed4-gige.toml"),
        other => {
            eprintln!("unknown case `{other}` (expected r50 or vgg)");
            std::process::exit(2)
        }
    };
    let graph = zoo_graph(model, 224).expect("zoo model");
    let platform = Platform::load(&root.join(platform)).expect("platform");
    let workload = Workload {
        frames,
        period_ns: 0,
        window: Window::Unlimited,
    };
    let prep = PreparedScenario::new(graph, platform, workload);
    let units: Vec<usize> = (0..prep.platform.units.len()).collect();
    let mapping = strategy::even(&prep, &units).expect("even mapping");
    let assign = prep.assignment(&mapping).expect("assignment");
    let mut makespans = 0u64;
    for _ in 0..2000 {
        let m = prep.evaluate_assignment(std::hint::black_box(&assign));
        makespans += m.expect("evaluates").makespan_ns;
    }
    println!("{makespans}");
}
