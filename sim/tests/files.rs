//! The file model: template units merge by name, `[hil]` is typed and checked against the
//! platform, `[model]` gives one model source, unknown keys name the closest valid key.

use std::path::{Path, PathBuf};

use dicesim_sim::files::{HilTable, ModelSource, ScenarioFile};
use dicesim_sim::platform::{Platform, UnitKind};
use dicesim_sim::scenario::read_hil;
use dicesim_sim::{Scenario, SimError};

mod common;

/// A fresh temporary folder of this test with a `devices` folder in it, removed when the
/// test ends.
fn tmp(name: &str) -> common::TmpDir {
    let d = common::tmp("files", name);
    std::fs::create_dir_all(d.join("devices")).unwrap();
    d
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const TEMPLATE: &str = "name = \"board\"\nmemory_mb = 2048\nidle_w = 1.5\n\
    [[unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 4\ngflops = 10.0\nmem_gbps = 5.0\nbusy_w = 2.0\n\
    [[unit]]\nname = \"gpu\"\nkind = \"gpu\"\ngflops = 100.0\nmem_gbps = 20.0\nbusy_w = 5.0\n\
    layer_overhead_us = 30.0\n";

const TWO_BOARDS: &str = "[[device]]\nname = \"a\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflops = 1\nmem_gbps = 1\n\
    [[device]]\nname = \"b\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflops = 1\nmem_gbps = 1\n\
    [[link]]\nends = [\"a\", \"b\"]\nbandwidth_mbps = 100\n";

fn unit<'a>(p: &'a Platform, full: &str) -> &'a dicesim_sim::platform::Unit {
    &p.units[p
        .unit_index(full)
        .unwrap_or_else(|| panic!("no unit {full}"))]
}

#[test]
fn an_inline_unit_overrides_only_its_keys_of_the_template_unit_and_a_new_one_is_added() {
    let d = tmp("template");
    write(&d, "devices/board.toml", TEMPLATE);
    let p = write(
        &d,
        "p.toml",
        "[[device]]\ntemplate = \"devices/board.toml\"\nname = \"x\"\n\
         [[device.unit]]\nname = \"gpu\"\ngflops = 50.0\n\
         [[device.unit]]\nname = \"npu\"\nkind = \"gpu\"\ngflops = 7.0\nmem_gbps = 3.0\n\
         [[device]]\ntemplate = \"devices/board.toml\"\nname = \"y\"\n\
         [[link]]\nends = [\"x\", \"y\"]\nbandwidth_mbps = 100\n",
    );
    let p = Platform::load(&p).unwrap();
    assert_eq!(
        p.unit_names(),
        ["x.cpu", "x.gpu", "x.npu", "y.cpu", "y.gpu"],
        "template units kept in order, the new one added"
    );
    let gpu = unit(&p, "x.gpu");
    assert_eq!(gpu.gflops, 50.0, "the inline key overrides");
    assert_eq!(
        (gpu.kind, gpu.mem_gbps, gpu.busy_w, gpu.layer_overhead_us),
        (UnitKind::Gpu, 20.0, 5.0, 30.0),
        "the other keys stay the template's"
    );
    assert_eq!(unit(&p, "x.cpu").cores, 4);
    assert_eq!(unit(&p, "x.npu").gflops, 7.0);
    assert_eq!(
        unit(&p, "y.gpu").gflops,
        100.0,
        "the other device is untouched"
    );
    assert_eq!(p.devices[0].memory_mb, 2048.0);
}

#[test]
fn a_misspelt_key_in_a_template_names_the_template_and_the_closest_key() {
    let d = tmp("template-key");
    write(
        &d,
        "devices/board.toml",
        &TEMPLATE.replace("cores = 4", "corse = 4"),
    );
    let p = write(
        &d,
        "p.toml",
        "[[device]]\ntemplate = \"devices/board.toml\"\n",
    );
    let e = Platform::load(&p).unwrap_err().to_string();
    assert!(
        e.ends_with("board.toml: [unit[0]]: unknown key `corse` (did you mean `cores`?)"),
        "{e}"
    );
}

fn scenario(d: &Path, model: &str, extra: &str) -> PathBuf {
    write(d, "plat.toml", TWO_BOARDS);
    write(
        d,
        "s.toml",
        &format!(
            "[model]\n{model}\ninput_size = 32\n[platform]\nfile = \"plat.toml\"\n\
             [mapping]\nstrategy = \"even\"\n{extra}"
        ),
    )
}

#[test]
fn hil_is_a_typed_table_of_the_scenario_checked_against_the_platform() {
    let d = tmp("hil");
    let s = scenario(
        &d,
        "zoo = \"squeezenet1_1\"",
        "[hil]\na = \"127.0.0.1:7001\"\nb = \"127.0.0.1:7002\"\nwindow = 3\n\
         stall_timeout_s = 5\ntoken_file = \"tok\"\n",
    );
    let want = HilTable {
        token_file: Some("tok".into()),
        window: Some(3),
        stall_timeout_s: Some(5.0),
        workers: [("a", "127.0.0.1:7001"), ("b", "127.0.0.1:7002")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        not_addresses: Vec::new(),
    };
    assert_eq!(read_hil(&s).unwrap(), Some(want.clone()));
    assert_eq!(Scenario::load(&s).unwrap().hil, Some(want));

    let s = scenario(&d, "zoo = \"squeezenet1_1\"", "[hil]\nbb = \"h:1\"\n");
    let e = read_hil(&s).unwrap_err();
    assert!(matches!(e, SimError::UnknownKey { .. }), "{e:?}");
    let e = e.to_string();
    assert!(e.contains("s.toml: [hil]: unknown key `bb`"), "{e}");
    assert!(e.ends_with("did you mean `b`?)"), "{e}");
    let e = Scenario::load(&s).unwrap_err().to_string();
    assert!(
        e.contains("[hil]: unknown key `bb`"),
        "run refuses it too: {e}"
    );

    let s = scenario(&d, "zoo = \"squeezenet1_1\"", "[hil]\nwindw = 2\n");
    let e = read_hil(&s).unwrap_err().to_string();
    assert!(e.ends_with("did you mean `window`?)"), "{e}");

    let s = scenario(&d, "zoo = \"squeezenet1_1\"", "[hil]\nwindow = 0\n");
    let e = read_hil(&s).unwrap_err().to_string();
    assert!(e.contains("`hil.window`"), "{e}");

    let s = scenario(&d, "zoo = \"squeezenet1_1\"", "[hil]\na = 7001\n");
    let e = read_hil(&s).unwrap_err().to_string();
    assert!(
        e.ends_with("`hil.a`: expected a worker address \"host:port\""),
        "{e}"
    );

    let s = scenario(&d, "zoo = \"squeezenet1_1\"", "[hil]\nwindow = \"3\"\n");
    let e = read_hil(&s).unwrap_err().to_string();
    assert!(e.contains("line 9, column 10"), "{e}");

    let s = scenario(&d, "zoo = \"squeezenet1_1\"", "");
    assert_eq!(read_hil(&s).unwrap(), None);
}

#[test]
fn model_gives_exactly_one_source() {
    let d = tmp("model");
    let s = scenario(&d, "zoo = \"resnet18\"", "");
    assert_eq!(
        ScenarioFile::read(&s).unwrap().model.source(&s).unwrap(),
        ModelSource::Zoo {
            name: "resnet18".into(),
            input_size: 32
        }
    );
    let s = scenario(
        &d,
        "path = \"m.onnx\"\ninput_shapes = { x = [1, 3, 8, 8] }",
        "",
    );
    match ScenarioFile::read(&s).unwrap().model.source(&s).unwrap() {
        ModelSource::Onnx { path, input_shapes } => {
            assert_eq!(path, d.join("m.onnx"));
            assert_eq!(input_shapes["x"], [1, 3, 8, 8]);
        }
        m => panic!("{m:?}"),
    }
    let s = scenario(&d, "zoo = \"resnet18\"\npath = \"m.onnx\"", "");
    let e = ScenarioFile::read(&s)
        .unwrap()
        .model
        .source(&s)
        .unwrap_err();
    assert!(e.to_string().contains("exactly one of `zoo`"), "{e}");
}

#[test]
fn a_profile_layer_name_may_hold_a_comma_when_quoted() {
    let d = tmp("profile");
    let path = d.join("p.csv");
    std::fs::write(
        &path,
        "# dicesim profile\nlayer,time_us,op\n\"conv,1\",12.5,Conv\nrelu, 3 ,Relu\n",
    )
    .unwrap();
    let p = dicesim_sim::platform::load_profile(&path).unwrap();
    assert_eq!(p.get("conv,1"), Some(&12.5));
    assert_eq!(p.get("relu"), Some(&3.0));
    std::fs::write(&path, "layer,time_us\nconv1,fast\n").unwrap();
    let e = dicesim_sim::platform::load_profile(&path)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("not a number"), "{e}");
}
