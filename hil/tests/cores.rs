//! Unit names with core sets resolve to the unit, its cores and the engine threads, and map
//! onto host CPUs (identity on a board, the rig's CPUs in emulation).

use dicesim_hil::cores::{host_cpus, resolve, share, speed};
use dicesim_plan::coreset::CoreSet;
use dicesim_sim::platform::Platform;
use std::path::Path;

const PLATFORM: &str = "[[device]]\nname = \"a\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ncores = 4\ngflops = 8\nmem_gbps = 1\n\
    [[device.unit]]\nname = \"gpu\"\nkind = \"gpu\"\ngflops = 100\nmem_gbps = 10\n\
    [[device]]\nname = \"b\"\nmemory_mb = 64\n\
    [[device.unit]]\nname = \"cpu\"\nkind = \"cpu\"\ngflops = 2\nmem_gbps = 1\n\
    [[link]]\nends = [\"a\", \"b\"]\nbandwidth_mbps = 100\n";

fn platform() -> Platform {
    Platform::from_str(Path::new("p.toml"), PLATFORM).unwrap()
}

#[test]
fn whole_units_use_every_core() {
    let pf = platform();
    let p = resolve(&pf, "a.cpu").unwrap();
    assert_eq!((p.device, p.cores, p.threads), (0, CoreSet(0b1111), 4));
    assert_eq!(speed(&pf, &p), 8.0);
    // cores not given: one
    let b = resolve(&pf, "b.cpu").unwrap();
    assert_eq!((b.device, b.cores, b.threads), (1, CoreSet(1), 1));
    // a GPU: the engine's default threads, not pinned
    let g = resolve(&pf, "a.gpu").unwrap();
    assert_eq!((g.cores, g.threads), (CoreSet(0), 0));
    assert_eq!(speed(&pf, &g), 100.0);
}

#[test]
fn core_sets_and_autodice_names() {
    let pf = platform();
    let p = resolve(&pf, "a.cpu[1-2]").unwrap();
    assert_eq!((p.device, p.cores, p.threads), (0, CoreSet(0b110), 2));
    assert_eq!(p.unit, resolve(&pf, "a.cpu").unwrap().unit);
    assert_eq!(speed(&pf, &p), 4.0);
    assert!((share(&pf, &p, 2.0) - 2.0).abs() < 1e-12);
    let q = resolve(&pf, "a.cpu3").unwrap();
    assert_eq!((q.cores, q.threads), (CoreSet(0b1000), 1));
    assert!(resolve(&pf, "a.cpu[").is_none());
    assert!(resolve(&pf, "c.cpu[0]").is_none());
    assert!(resolve(&pf, "a.npu").is_none());
}

#[test]
fn cores_map_to_host_cpus() {
    // a board: core i is CPU i
    assert_eq!(host_cpus(CoreSet(0b110), None), vec![1, 2]);
    // the rig gave the device CPUs 6 and 7
    assert_eq!(host_cpus(CoreSet(0b110), Some(&[6, 7])), vec![6, 7]);
    assert_eq!(host_cpus(CoreSet(0b100), Some(&[6, 7])), vec![6]);
}
