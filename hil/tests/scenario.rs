//! The coordinator reads `[hil]` and `[model]` through the simulator's scenario model, so
//! it refuses what `dicesim run` refuses.

use std::path::PathBuf;
use std::time::Duration;

use dicesim_hil::coord;

mod support;
use support::TmpDir;

const PLATFORM: &str = "[[device]]\nname = \"a\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflops = 1\nmem_gbps = 1\n\
    [[device]]\nname = \"b\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflops = 1\nmem_gbps = 1\n\
    [[link]]\nends = [\"a\", \"b\"]\nbandwidth_mbps = 100\n";

/// A scenario in a folder of its own, removed when the returned guard is dropped.
fn scenario(name: &str, model: &str, hil: &str) -> (TmpDir, PathBuf) {
    let d = support::tmp("hil-sc", name);
    std::fs::write(d.join("plat.toml"), PLATFORM).unwrap();
    dicesim_hil::token::write_new_token(&d.join("tok")).unwrap();
    let s = d.join("s.toml");
    std::fs::write(
        &s,
        format!(
            "[model]\n{model}\ninput_size = 32\n[platform]\nfile = \"plat.toml\"\n\
             [mapping]\nstrategy = \"even\"\n[hil]\n{hil}"
        ),
    )
    .unwrap();
    (d, s)
}

fn error(r: anyhow::Result<impl std::fmt::Debug>) -> String {
    format!("{:#}", r.unwrap_err())
}

#[test]
fn hil_options_come_from_the_scenario_model() {
    let (_options, s) = scenario(
        "options",
        "zoo = \"squeezenet1_1\"",
        "a = \"127.0.0.1:7001\"\nb = \"127.0.0.1:7002\"\nwindow = 4\nstall_timeout_s = 2.5\ntoken_file = \"tok\"\n",
    );
    let run = coord::from_scenario(&s).unwrap();
    assert_eq!(run.workers["a"], "127.0.0.1:7001");
    assert_eq!(run.workers["b"], "127.0.0.1:7002");
    assert_eq!(run.window, Some(4));
    assert_eq!(run.stall_timeout, Duration::from_secs_f64(2.5));
    let tok = std::fs::read_to_string(s.parent().unwrap().join("tok")).unwrap();
    assert_eq!(run.token, tok.trim().as_bytes());

    let (_device, s) = scenario("device", "zoo = \"squeezenet1_1\"", "aa = \"h:1\"\n");
    let e = error(coord::from_scenario(&s));
    assert!(
        e.contains("[hil]: unknown key `aa`") && e.contains("did you mean `a`?"),
        "{e}"
    );
}

#[test]
fn zoo_and_path_together_are_refused_by_hil_as_by_run() {
    let (_both, s) = scenario("both", "zoo = \"squeezenet1_1\"\npath = \"m.onnx\"", "");
    let e = error(coord::load_model(&s));
    assert!(e.contains("`model`: expected exactly one of `zoo`"), "{e}");
    let e = error(coord::prepare(&s).map(|_| ()));
    assert!(e.contains("`model`: expected exactly one of `zoo`"), "{e}");
    let (_zoo, s) = scenario("zoo", "zoo = \"squeezenet1_1\"", "");
    let m = coord::load_model(&s).unwrap();
    assert!(!m.graph.layers.is_empty());
}
