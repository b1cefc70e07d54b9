//! The rig as root: network namespaces bridged by shaped veths, workers pinned and paced
//! (see the parent module's docs for the model).

use super::events::Targets;
use super::layout::{layout, Demand, Layout};
use super::{
    calibrate, cpus, nsx, sh, spawn_worker, sweep_stale, with_cleanup, Built, Host, RigDevice,
    Setup, WORKER_PORT,
};
use crate::conn::Shaping;
use crate::coord::HilRun;
use anyhow::{bail, Context, Result};
use dicesim_sim::platform::Platform;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One namespace per node, shaped veths for links, a management network.
pub(super) struct Namespaces;

impl Host for Namespaces {
    fn build(&self, setup: &Setup, run: &mut HilRun) -> Result<Built> {
        sweep_stale();
        let sc = Scaling::of(setup)?;
        run.dilation = sc.layout.dilation;
        run.host_gflops = Some(sc.host_gflops);
        run.cpu_map = sc.layout.cpus.clone();
        run.mode = "emulate".into();
        eprintln!(
            "dicesim emulate: host {:.2} GFLOP/s per core on this model; {} host CPUs {:?}; time dilation {:.3}",
            sc.host_gflops,
            if sc.layout.dedicated { "dedicated" } else { "shared" },
            sc.layout.cpus,
            run.dilation
        );
        let pf = &setup.prep.scenario.prep.platform;
        let names = Names::new(pf, setup.pid);
        check_tree(pf, &names)?;
        create_namespaces(pf, &names)?;
        let mut targets = wire_links(pf, &names, sc.layout.dilation)?;
        for &d in &setup.used {
            let pid = start_device(setup, &names, &sc, d, run)?;
            targets.workers.insert(d, pid);
        }
        // latency held by the sending worker; bandwidth shaped by tc
        setup.shape_routes(run, |r| Shaping {
            delay_us: (r.latency_ns as f64 / 1000.0 * sc.layout.dilation) as u32,
            rate_bps: 0,
        });
        let devices = (setup.used.iter())
            .map(|&d| RigDevice {
                device: d,
                cpu: sc.cpus(d).first().copied(),
                cpus: sc.cpus(d).to_vec(),
                pace: sc.pace[&d],
                netns: Some(names.node(d)),
            })
            .collect();
        Ok(Built {
            host_gflops: Some(sc.host_gflops),
            dilation: sc.layout.dilation,
            devices,
            coord_ns: Some(names.coord.clone()),
            targets,
        })
    }
}

/// Compute scaling: the host's speed, each device's host CPUs, and the time dilation.
struct Scaling {
    host_gflops: f64,
    layout: Layout,
    /// Device -> the pacing factor of its first partition's whole unit (what calibration
    /// profiles with).
    pace: BTreeMap<usize, f64>,
}

impl Scaling {
    fn of(setup: &Setup) -> Result<Scaling> {
        let prep = &setup.prep;
        let pf = &prep.scenario.prep.platform;
        let host_gflops = calibrate(&prep.model)?;
        // a spare device's units count as partitions: a new plan may put one there
        let demands: Vec<Demand> = (prep.part_place.iter().chain(&setup.spare))
            .map(|pl| Demand {
                device: pl.device,
                cores: pl.cores,
                share: crate::cores::share(pf, pl, host_gflops),
            })
            .collect();
        let layout = layout(&cpus(), &demands);
        let mut pace = BTreeMap::new();
        for pl in prep.part_place.iter().chain(&setup.spare).rev() {
            // the whole unit's: calibration profiles (and the simulator reads) a unit's
            // profile as run on all its cores, core sets scaled from it; at least 1 (a unit
            // only ever used by core sets may be faster than D)
            let whole = pf.units[pl.unit].gflops / host_gflops.max(1e-9);
            pace.insert(pl.device, (layout.dilation / whole.max(1e-9)).max(1.0));
        }
        Ok(Scaling {
            host_gflops,
            layout,
            pace,
        })
    }

    /// Device `d`'s host CPUs.
    fn cpus(&self, d: usize) -> &[usize] {
        &self.layout.cpus[&d]
    }
}

/// The rig's namespace names: nodes (devices, then switches), shared media, coordinator.
struct Names {
    pid: u32,
    n_devices: usize,
    /// Every namespace: nodes, shared media, then the coordinator's.
    all: Vec<String>,
    /// Link index -> index in `all` of its shared medium's namespace.
    medium: BTreeMap<usize, usize>,
    coord: String,
}

impl Names {
    fn new(pf: &Platform, pid: u32) -> Names {
        let nd = pf.devices.len();
        let mut names = Names {
            pid,
            n_devices: nd,
            all: Vec::new(),
            medium: BTreeMap::new(),
            coord: format!("ds{pid}c"),
        };
        names.all = (0..nd + pf.switches.len()).map(|n| names.node(n)).collect();
        for (l, link) in pf.links.iter().enumerate() {
            if link.ends.len() > 2 {
                names.medium.insert(l, names.all.len());
                names.all.push(format!("ds{pid}w{l}"));
            }
        }
        names.all.push(names.coord.clone());
        names
    }

    /// Namespace of node `n` (a device, or switch `n - devices`).
    fn node(&self, n: usize) -> String {
        let (pid, nd) = (self.pid, self.n_devices);
        if n < nd {
            format!("ds{pid}d{n}")
        } else {
            format!("ds{pid}s{}", n - nd)
        }
    }

    /// The veths of link `l`: (namespace, name) at each end of each pair.
    fn veths(&self, pf: &Platform, l: usize) -> Vec<(String, String, String, String)> {
        let link = &pf.links[l];
        match self.medium.get(&l) {
            Some(&m) => (link.ends.iter().enumerate())
                .map(|(k, &e)| {
                    let (a, b) = (format!("w{l}e{k}"), format!("w{l}p{k}"));
                    (self.node(e), a, self.all[m].clone(), b)
                })
                .collect(),
            None => vec![(
                self.node(link.ends[0]),
                format!("l{l}a"),
                self.node(link.ends[1]),
                format!("l{l}b"),
            )],
        }
    }
}

/// The links must form a tree (one layer-2 domain without loops).
fn check_tree(pf: &Platform, names: &Names) -> Result<()> {
    let mut parent: Vec<usize> = (0..names.all.len()).collect();
    fn find(p: &mut [usize], mut x: usize) -> usize {
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    for (l, link) in pf.links.iter().enumerate() {
        let pairs: Vec<(usize, usize)> = match names.medium.get(&l) {
            Some(&m) => link.ends.iter().map(|&e| (e, m)).collect(),
            None => vec![(link.ends[0], link.ends[1])],
        };
        for (a, b) in pairs {
            let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
            if ra == rb {
                bail!(
                    "emulate: link '{}' closes a cycle in platform {}; the rig bridges links at layer 2 and needs them to form a tree",
                    link.name,
                    pf.name
                );
            }
            parent[ra] = rb;
        }
    }
    Ok(())
}

/// Every namespace with its loopback up and (except the coordinator's) a bridge; each
/// device's platform address on its bridge.
fn create_namespaces(pf: &Platform, names: &Names) -> Result<()> {
    for ns in &names.all {
        sh(&["ip", "netns", "add", ns])?;
        with_cleanup(|c| c.netns.push(ns.clone()));
        nsx(ns, &["ip", "link", "set", "lo", "up"])?;
        if ns != &names.coord {
            nsx(ns, &["ip", "link", "add", "br0", "type", "bridge"])?;
            nsx(ns, &["ip", "link", "set", "br0", "up"])?;
        }
    }
    for d in 0..pf.devices.len() {
        let addr = format!("10.201.0.{}/16", d + 1);
        nsx(&names.node(d), &["ip", "addr", "add", &addr, "dev", "br0"])?;
    }
    Ok(())
}

/// A veth pair `a` in namespace `nsa`, `b` in `nsb`.
fn veth(nsa: &str, a: &str, nsb: &str, b: &str) -> Result<()> {
    sh(&[
        "ip", "link", "add", a, "netns", nsa, "type", "veth", "peer", "name", b, "netns", nsb,
    ])
}

/// `tbf` at `mbps` / dilation on `dev`, with a small bucket (200 us of traffic, at least
/// 4 KiB) so that a message takes about bytes / rate from its first byte, as the
/// simulator's flow model has it.
fn shape(ns: &str, dev: &str, mbps: f64, dilation: f64) -> Result<()> {
    tbf(ns, dev, "add", mbps, dilation)
}

/// A link end's new rate (a `[[event]]` or `[[trace]]` line): its `tbf` changed in place.
pub(super) fn reshape(ns: &str, dev: &str, mbps: f64, dilation: f64) -> Result<()> {
    tbf(ns, dev, "change", mbps, dilation)
}

/// `tc qdisc VERB dev DEV root tbf ...` in namespace `ns`.
fn tbf(ns: &str, dev: &str, verb: &str, mbps: f64, dilation: f64) -> Result<()> {
    let rate = (mbps * 1e6 / dilation).max(8000.0) as u64;
    let burst = (rate / 8 / 5000).max(4096);
    let (rate, burst) = (format!("{rate}bit"), burst.to_string());
    let tbf = ["tbf", "rate", &rate, "burst", &burst, "latency", "200ms"];
    let mut args = vec!["tc", "qdisc", verb, "dev", dev, "root"];
    args.extend_from_slice(&tbf);
    nsx(ns, &args)
}

/// Every link: its veths on their ends' bridges, shaped both ways. Returns each link's
/// shaped interfaces as (namespace, name), for the events that change its rate.
fn wire_links(pf: &Platform, names: &Names, dilation: f64) -> Result<Targets> {
    let mut shaped = Targets::default();
    for (l, link) in pf.links.iter().enumerate() {
        for (nsa, a, nsb, b) in names.veths(pf, l) {
            veth(&nsa, &a, &nsb, &b)?;
            for (ns, dev) in [(&nsa, &a), (&nsb, &b)] {
                nsx(ns, &["ip", "link", "set", dev, "master", "br0"])?;
                nsx(ns, &["ip", "link", "set", dev, "up"])?;
                shape(ns, dev, link.bandwidth_mbps, dilation)?;
                let end = (ns.clone(), dev.clone());
                shaped.veths.entry(l).or_default().push(end);
            }
        }
    }
    Ok(shaped)
}

/// Device `d`: its management veth, its worker (paced, pinned to its CPU), and its
/// addresses in `run`. Returns the worker's process id.
fn start_device(
    setup: &Setup,
    names: &Names,
    sc: &Scaling,
    d: usize,
    run: &mut HilRun,
) -> Result<u32> {
    let ns = names.node(d);
    let m = format!("m{d}");
    veth(&names.coord, &m, &ns, "mgmt")?;
    let coord_addr = format!("10.202.{d}.1/24");
    nsx(&names.coord, &["ip", "addr", "add", &coord_addr, "dev", &m])?;
    nsx(&names.coord, &["ip", "link", "set", &m, "up"])?;
    let addr = format!("10.202.{d}.2/24");
    nsx(&ns, &["ip", "addr", "add", &addr, "dev", "mgmt"])?;
    nsx(&ns, &["ip", "link", "set", "mgmt", "up"])?;
    let listen = format!("0.0.0.0:{WORKER_PORT}");
    let log = setup.dir.join(format!("worker{d}.log"));
    let tok = Some(setup.token.as_path());
    // each partition's pacing comes with its deployment
    let (child, _) = spawn_worker(Some(&ns), &listen, tok, None, &log)?;
    let wpid = child.id();
    with_cleanup(|c| c.workers.push(child));
    pin(setup.pid, d, sc.cpus(d), wpid)?;
    let dev = &setup.prep.scenario.prep.platform.devices[d];
    if let Some(cg) = super::memlimit::limit(setup.pid, d, dev.memory_mb, wpid)? {
        with_cleanup(|c| c.cgroups.push(cg));
    }
    let name = &dev.name;
    let mgmt = format!("10.202.{d}.2:{WORKER_PORT}");
    run.workers.insert(name.clone(), mgmt);
    let peer = format!("10.201.0.{}:{WORKER_PORT}", d + 1);
    run.peer_addrs.insert(name.clone(), peer);
    Ok(wpid)
}

/// Confines worker process `wpid` of device `d` to its host CPUs with a cpuset cgroup
/// (compute speed comes from pacing in the worker; each partition's thread is pinned inside
/// these by the worker).
fn pin(pid: u32, d: usize, cpus: &[usize], wpid: u32) -> Result<()> {
    let cg = PathBuf::from(format!("/sys/fs/cgroup/cpuset/ds{pid}d{d}"));
    std::fs::create_dir(&cg).with_context(|| format!("creating cgroup {}", cg.display()))?;
    with_cleanup(|c| c.cgroups.push(cg.clone()));
    let w = |p: PathBuf, v: String| {
        std::fs::write(&p, &v).with_context(|| format!("writing {v} to {}", p.display()))
    };
    let list: Vec<String> = cpus.iter().map(usize::to_string).collect();
    w(cg.join("cpuset.cpus"), list.join(","))?;
    let mems =
        std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.mems").unwrap_or_else(|_| "0".into());
    w(cg.join("cpuset.mems"), mems.trim().to_string())?;
    w(cg.join("cgroup.procs"), wpid.to_string())
}
