//! A misspelt key in a scenario, platform, device template, calibration or mapping file
//! fails `dicesim run` with exit 1 and one line naming the file, the table, the key and the
//! closest valid key.

mod common;
use common::{bin, tmp};

use std::path::Path;

const PLATFORM: &str = r#"[[device]]
name = "a"
memory_mb = 1024
  [[device.unit]]
  name = "cpu"
  kind = "cpu"
  gflops = 10.0
  mem_gbps = 5.0
[[device]]
name = "b"
memory_mb = 1024
  [[device.unit]]
  name = "cpu"
  kind = "cpu"
  gflops = 10.0
  mem_gbps = 5.0
[[link]]
name = "ab"
ends = ["a", "b"]
bandwidth_mbps = 100.0
latency_us = 10.0
"#;

const SCENARIO: &str = "[model]\nzoo = \"squeezenet1_1\"\ninput_size = 32\n\
    [platform]\nfile = \"plat.toml\"\n[mapping]\nstrategy = \"even\"\n[workload]\nframes = 3\n";

/// `dicesim run` on `scenario` (in `dir`) fails with exit 1 and exactly the one line
/// `dicesim: error: <dir>/<message>`.
fn fails_with(dir: &Path, scenario: &str, message: &str) {
    let s = dir.join("s.toml");
    std::fs::write(&s, scenario).unwrap();
    let out = bin().arg("run").arg(&s).output().expect("binary runs");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    let want = format!("dicesim: error: {}/{message}", dir.display());
    assert_eq!(err.trim_end(), want);
}

#[test]
fn misspelt_keys_are_one_line_errors_with_the_closest_key() {
    let d = tmp("scenario-keys");
    let w = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    w("plat.toml", PLATFORM);
    w("ok.toml", SCENARIO);

    fails_with(
        &d,
        &SCENARIO.replace("frames = 3", "frame = 100"),
        "s.toml: [workload]: unknown key `frame` (did you mean `frames`?)",
    );
    fails_with(
        &d,
        &SCENARIO.replace("input_size", "input_sise"),
        "s.toml: [model]: unknown key `input_sise` (did you mean `input_size`?)",
    );
    fails_with(
        &d,
        &format!("{SCENARIO}[hill]\na = \"127.0.0.1:7070\"\n"),
        "s.toml: top level: unknown key `hill` (did you mean `hil`?)",
    );
    fails_with(
        &d,
        &format!("{SCENARIO}[hil]\nbb = \"127.0.0.1:7070\"\n"),
        "s.toml: [hil]: unknown key `bb` (not a device of the platform nor a reserved key; \
         did you mean `b`?)",
    );

    w(
        "plat-bad.toml",
        &PLATFORM.replace("latency_us", "latency_usec"),
    );
    fails_with(
        &d,
        &SCENARIO.replace("plat.toml", "plat-bad.toml"),
        "plat-bad.toml: [link[0]]: unknown key `latency_usec` (did you mean `latency_us`?)",
    );
    w(
        "plat-unit.toml",
        &PLATFORM.replacen("mem_gbps = 5.0", "mem_gbs = 5.0", 2),
    );
    fails_with(
        &d,
        &SCENARIO.replace("plat.toml", "plat-unit.toml"),
        "plat-unit.toml: [device[0].unit[0]]: unknown key `mem_gbs` (did you mean `mem_gbps`?)",
    );

    w("tpl.toml", "name = \"t\"\nmemory_mb = 64\n[[unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflop = 1.0\nmem_gbps = 1.0\n");
    w(
        "plat-tpl.toml",
        &format!("{PLATFORM}[[device]]\ntemplate = \"tpl.toml\"\n"),
    );
    fails_with(
        &d,
        &SCENARIO.replace("plat.toml", "plat-tpl.toml"),
        "tpl.toml: [unit[0]]: unknown key `gflop` (did you mean `gflops`?)",
    );

    w("cal.toml", "[[link]]\nname = \"ab\"\nbandwith_mbps = 5.0\n");
    fails_with(
        &d,
        &format!("{SCENARIO}[calibration]\nfile = \"cal.toml\"\n"),
        "cal.toml: [link[0]]: unknown key `bandwith_mbps` (did you mean `bandwidth_mbps`?)",
    );

    w(
        "map.toml",
        "[units]\n\"a.cpu\" = { from = \"features.0\", too = \"features.5\" }\n",
    );
    fails_with(
        &d,
        &SCENARIO.replace(
            "strategy = \"even\"",
            "strategy = \"explicit\"\nfile = \"map.toml\"",
        ),
        "map.toml: [units.\"a.cpu\"]: unknown key `too` (did you mean `to`?)",
    );
    w("map2.toml", "[unit]\n\"a.cpu\" = \"features.0\"\n");
    fails_with(
        &d,
        &SCENARIO.replace(
            "strategy = \"even\"",
            "strategy = \"explicit\"\nfile = \"map2.toml\"",
        ),
        "map2.toml: top level: unknown key `unit` (did you mean `units`?)",
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn type_errors_and_far_off_keys_keep_their_style() {
    let d = tmp("scenario-key-types");
    std::fs::write(d.join("plat.toml"), PLATFORM).unwrap();
    fails_with(
        &d,
        &SCENARIO.replace("frames = 3", "frames = \"many\""),
        "s.toml: TOML syntax or type error: line 9, column 10: invalid type: string \"many\", \
         expected u32",
    );
    fails_with(
        &d,
        &SCENARIO.replace("frames = 3", "colour = 3"),
        "s.toml: [workload]: unknown key `colour` (expected one of `frames`, `period_ms`, \
         `window`)",
    );
    fails_with(
        &d,
        &SCENARIO.replace("\"even\"", "\"evn\""),
        "s.toml: TOML syntax or type error: line 7, column 12: unknown variant `evn`, expected \
         one of `explicit`, `single`, `even`, `pipeedge` (did you mean `even`?)",
    );
    std::fs::write(d.join("map.toml"), "[units]\n\"a.cpu\" = 3\n").unwrap();
    fails_with(
        &d,
        &SCENARIO.replace(
            "strategy = \"even\"",
            "strategy = \"explicit\"\nfile = \"map.toml\"",
        ),
        "map.toml: line 2, column 11: invalid type: integer `3`, expected a list of layer \
         names or { from = \"..\", to = \"..\" }",
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_missing_file_names_the_key_that_named_it() {
    let d = tmp("scenario-missing");
    let w = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    w("plat.toml", PLATFORM);
    let missing = |key: &str, file: &str| {
        let p = d.join(file);
        format!(
            "{key}: cannot read {}: No such file or directory",
            p.display()
        )
    };
    fails_with(
        &d,
        &SCENARIO.replace("plat.toml", "nope.toml"),
        &format!("s.toml: {}", missing("[platform] file", "nope.toml")),
    );
    fails_with(
        &d,
        &format!("{SCENARIO}[calibration]\nfile = \"nocal.toml\"\n"),
        &format!("s.toml: {}", missing("[calibration] file", "nocal.toml")),
    );
    fails_with(
        &d,
        &SCENARIO.replace(
            "strategy = \"even\"",
            "strategy = \"explicit\"\nfile = \"nomap.toml\"",
        ),
        &format!("s.toml: {}", missing("[mapping] file", "nomap.toml")),
    );
    w(
        "plat-tpl.toml",
        &format!("{PLATFORM}[[device]]\nname = \"c\"\ntemplate = \"notpl.toml\"\n"),
    );
    fails_with(
        &d,
        &SCENARIO.replace("plat.toml", "plat-tpl.toml"),
        &format!(
            "plat-tpl.toml: {}",
            missing("device[2].template", "notpl.toml")
        ),
    );
    w(
        "plat-prof.toml",
        &PLATFORM.replacen(
            "mem_gbps = 5.0",
            "mem_gbps = 5.0\n  profile = \"noprof.csv\"",
            1,
        ),
    );
    fails_with(
        &d,
        &SCENARIO.replace("plat.toml", "plat-prof.toml"),
        &format!(
            "plat-prof.toml: {}",
            missing("device[0].unit[0].profile", "noprof.csv")
        ),
    );
    let _ = std::fs::remove_dir_all(&d);
}
