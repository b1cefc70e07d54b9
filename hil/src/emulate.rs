//! `dicesim emulate`: builds the scenario's platform on this host, starts one worker per
//! device inside it, and runs [`crate::coord`] on it.
//!
//! # The rig (as root)
//!
//! - **Namespaces.** One network namespace per device, per switch and per shared medium, and
//!   one for the coordinator, all named `ds<pid><kind><index>` (`<pid>` is this process's, so
//!   concurrent runs never collide; a later run removes those of a dead process).
//! - **Links.** Every node has a Linux bridge; every link is a veth pair between its two
//!   ends' bridges (a shared medium with more ends is a namespace with a bridge, one veth
//!   per end). Each device has one address, `10.201.0.<i+1>/16` on its bridge, so the
//!   platform is one layer-2 domain and frames follow the only path a tree has: the links
//!   must form a tree (a cycle is refused with the link's name).
//! - **Bandwidth.** `tbf` on both ends of every veth (both directions), at the link's
//!   `bandwidth_mbps` divided by the time dilation. A shared medium is shaped per end and
//!   direction (its half-duplex sharing is not reproduced).
//! - **Latency.** No `netem`: the *sending worker* holds every message for the route's
//!   latency (sum of its links' `latency_us`, times the dilation) before writing it. TCP
//!   acknowledgements are not delayed, so window-limited TCP behaviour is not emulated.
//! - **Compute.** The host is calibrated by running the whole model in tract on one core:
//!   `host_gflops = model FLOPs / best of 3 runs`. A device whose partitions run on units
//!   of at most `g` GFLOP/s needs `share = g / host_gflops` cores. Devices are pinned
//!   round-robin to the CPUs of the root cpuset (cgroup v1 `cpuset`), and the time dilation
//!   is `D = max(1, largest share, largest sum of shares pinned to one CPU)`.
//! - **Pacing rule.** Each device's worker gets `--pace F` with `F = D / share` (>= 1): after
//!   each partition run it sleeps until the run's wall time is `F x` the CPU time the run's
//!   thread used (`CLOCK_THREAD_CPUTIME_ID`), so a run of `c` host seconds takes `c x D / share`
//!   = `D x` its platform time, whatever its length. This replaces `cpu.cfs_quota_us`
//!   throttling: CFS enforces a quota per period and the quota cannot go below 1 ms, so jobs
//!   shorter than one quota ran at host speed. Pacing uses CPU time, not wall time, so a
//!   device preempted by another one pinned to the same CPU is not slowed twice; a CPU is
//!   never over-committed because the shares pinned to it sum to at most `D`. Every device
//!   runs D times slower than the platform, links are D times slower too, and reported
//!   times are divided by D (throughput multiplied); the report's `time_dilation` is D.
//! - **Coordinator.** Its own namespace, joined to each device by an unshaped management
//!   veth (`10.202.<i>.0/24`): frames enter and leave outside the platform's links, as the
//!   simulator assumes. Workers authenticate with a random token written for the run.
//! - **Teardown.** Workers (killed if the coordinator dies: `PR_SET_PDEATHSIG`), cgroups and
//!   namespaces (with their veths, bridges and qdiscs) are removed on success, on failure and
//!   on SIGINT/SIGTERM.
//!
//! # Without root
//!
//! Workers listen on loopback ports; links are shaped in user space (a token bucket in each
//! sending worker at the route's bottleneck bandwidth, plus the route latency); compute is
//! not scaled (time dilation 1). The report's `mode` says `emulate-loopback`.

use crate::conn::Shaping;
use crate::coord;
use crate::report::RunReport;
use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WORKER_PORT: u16 = 7070;

/// CLI entry of `dicesim emulate`.
pub fn run_cli(path: &Path, json: bool) -> Result<()> {
    let report = emulate(path)?;
    coord::print_and_judge(&report, json)
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Everything the rig created, removed by [`Cleanup::run`] exactly once.
#[derive(Default)]
struct Cleanup {
    workers: Vec<Child>,
    cgroups: Vec<PathBuf>,
    netns: Vec<String>,
    dir: Option<PathBuf>,
}

static CLEANUP: Mutex<Option<Cleanup>> = Mutex::new(None);

impl Cleanup {
    fn run(mut self) {
        for c in &self.workers {
            // SAFETY: signalling a child we started and have not reaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
        }
        let t = Instant::now();
        for c in &mut self.workers {
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if t.elapsed() > Duration::from_secs(1) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
        for cg in &self.cgroups {
            for _ in 0..50 {
                if std::fs::remove_dir(cg).is_ok() || !cg.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        for ns in &self.netns {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn with_cleanup(f: impl FnOnce(&mut Cleanup)) {
    let mut g = CLEANUP.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Cleanup::default));
}

fn teardown() {
    let c = CLEANUP.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(c) = c {
        c.run();
    }
}

/// Removes the rig on SIGINT / SIGTERM, then exits 130.
fn install_signal_teardown() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::thread::spawn(|| {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut i), Ok(mut t)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                tokio::select! { _ = i.recv() => {}, _ = t.recv() => {} }
                eprintln!("dicesim emulate: interrupted; removing the rig");
                teardown();
                std::process::exit(130);
            });
        });
    });
}

fn sh(args: &[&str]) -> Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", args[0]))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn nsx(ns: &str, args: &[&str]) -> Result<()> {
    let mut v = vec!["ip", "netns", "exec", ns];
    v.extend_from_slice(args);
    sh(&v)
}

/// Removes namespaces and cgroups left by emulation runs whose process is gone.
fn sweep_stale() {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let names: Vec<String> = out
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let dead = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix("ds") else {
            return false;
        };
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let tail = &rest[digits.len()..];
        !digits.is_empty()
            && tail.starts_with(['c', 'd', 's', 'w'])
            && tail[1..].chars().all(|c| c.is_ascii_digit())
            && !Path::new(&format!("/proc/{digits}")).exists()
    };
    for n in names.iter().filter(|n| dead(n)) {
        let _ = sh(&["ip", "netns", "del", n]);
    }
    for ctl in ["cpu", "cpuset"] {
        let root = Path::new("/sys/fs/cgroup").join(ctl);
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if dead(&n) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

fn cpus() -> Vec<usize> {
    let s = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.cpus").unwrap_or_default();
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    v.extend(a..=b);
                }
            }
            None => v.extend(part.parse::<usize>().ok()),
        }
    }
    if v.is_empty() {
        v.push(0);
    }
    v
}

/// Host speed on this model in tract, one core [GFLOP/s].
pub fn calibrate(model: &dicesim_plan::Model) -> Result<f64> {
    let s = dicesim_tract::Session::from_onnx_bytes(&dicesim_plan::onnx::encode_model(
        &model.static_proto(),
    ))
    .context("calibration: loading the whole model")?;
    let ins = coord::random_inputs(model, 1);
    s.run(&ins)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        s.run(&ins)?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(model.graph.total_flops() as f64 / best.max(1e-9) / 1e9)
}

fn spawn_worker(
    ns: Option<&str>,
    listen: &str,
    token: Option<&Path>,
    pace: Option<f64>,
    log: &Path,
) -> Result<(Child, String)> {
    let exe = std::env::current_exe().context("locating the dicesim binary")?;
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args(["worker", "--listen", listen, "--backend", "tract"]);
    if let Some(t) = token {
        cmd.arg("--token-file").arg(t);
    }
    if let Some(p) = pace {
        cmd.arg("--pace").arg(p.to_string());
    }
    let logf = std::fs::File::create(log)?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(logf));
    // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the worker when
    // the thread that started it (this one, alive for the whole run) exits.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting a worker")?;
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(out);
        let mut line = String::new();
        let _ = r.read_line(&mut line);
        let _ = tx.send(line);
        // keep draining so the worker never blocks on a full pipe
        let _ = std::io::copy(&mut r, &mut std::io::sink());
    });
    let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
    match line.trim().strip_prefix("dicesim worker listening on ") {
        Some(a) => Ok((child, a.to_string())),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "a worker did not start: {}",
                std::fs::read_to_string(log).unwrap_or_default().trim()
            )
        }
    }
}

/// Runs the emulation of the scenario at `path` and returns the measured report.
pub fn emulate(path: &Path) -> Result<RunReport> {
    install_signal_teardown();
    let res = emulate_inner(path);
    teardown();
    res
}

fn emulate_inner(path: &Path) -> Result<RunReport> {
    let mut run = coord::options(path, false)?;
    let prep = coord::prepare(path)?;
    let pf = &prep.scenario.prep.platform;
    let net = &prep.scenario.prep.network;
    let mut used: Vec<usize> = prep.part_device.clone();
    used.sort();
    used.dedup();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("dicesim-emulate-{pid}"));
    std::fs::create_dir_all(&dir)?;
    with_cleanup(|c| c.dir = Some(dir.clone()));
    let token: String = crate::conn::nonce()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let tok = dir.join("token");
    std::fs::write(&tok, &token)?;
    run.token = token.into_bytes();
    run.workers.clear();
    run.peer_addrs.clear();

    if !is_root() {
        if std::env::var_os("CI").is_some() {
            bail!("dicesim emulate needs root for namespaces, tc and cgroups (CI is set, so the loopback fallback is not used)");
        }
        eprintln!(
            "dicesim emulate: not root: loopback workers, user-space shaping, compute not scaled"
        );
        run.mode = "emulate-loopback".into();
        for &d in &used {
            let (child, addr) = spawn_worker(
                None,
                "127.0.0.1:0",
                Some(&tok),
                None,
                &dir.join(format!("worker{d}.log")),
            )?;
            with_cleanup(|c| c.workers.push(child));
            run.workers.insert(pf.devices[d].name.clone(), addr);
        }
        for &a in &used {
            for &b in &used {
                if let Some(r) = net.route(a, b) {
                    run.shaping.insert(
                        (a, b),
                        Shaping {
                            delay_us: (r.latency_ns / 1000) as u32,
                            rate_bps: (r.bottleneck * 8e9) as u64,
                        },
                    );
                }
            }
        }
        return coord::execute(&run);
    }

    sweep_stale();
    // compute scaling
    let host_gflops = calibrate(&prep.model)?;
    let cpu_list = cpus();
    let mut share = BTreeMap::new();
    let mut load = vec![0f64; cpu_list.len()];
    for (k, &d) in used.iter().enumerate() {
        let g = prep
            .plan
            .partitions
            .iter()
            .zip(&prep.part_device)
            .filter(|(_, &pd)| pd == d)
            .filter_map(|(p, _)| pf.unit_index(&p.unit).map(|u| pf.units[u].gflops))
            .fold(0.0, f64::max);
        let s = g / host_gflops;
        load[k % cpu_list.len()] += s;
        share.insert(d, (s, cpu_list[k % cpu_list.len()]));
    }
    let dil = dicesim_sim::report::r6(
        load.iter()
            .chain(share.values().map(|(s, _)| s))
            .fold(1.0f64, |a, &b| a.max(b)),
    );
    run.dilation = dil;
    run.host_gflops = Some(host_gflops);
    run.mode = "emulate".into();
    eprintln!(
        "dicesim emulate: host {host_gflops:.2} GFLOP/s per core on this model; time dilation {:.3}",
        run.dilation
    );

    // namespaces
    let nd = pf.devices.len();
    let node_ns = |n: usize| {
        if n < nd {
            format!("ds{pid}d{n}")
        } else {
            format!("ds{pid}s{}", n - nd)
        }
    };
    let coord_ns = format!("ds{pid}c");
    let mut all_ns: Vec<String> = (0..nd + pf.switches.len()).map(node_ns).collect();
    for (l, link) in pf.links.iter().enumerate() {
        if link.ends.len() > 2 {
            all_ns.push(format!("ds{pid}w{l}"));
        }
    }
    all_ns.push(coord_ns.clone());
    // the links must form a tree (one layer-2 domain without loops)
    let mut parent: Vec<usize> = (0..all_ns.len()).collect();
    fn find(p: &mut [usize], x: usize) -> usize {
        let mut x = x;
        while p[x] != x {
            p[x] = p[p[x]];
            x = p[x];
        }
        x
    }
    let mut medium_ns = BTreeMap::new();
    let mut medium_i = nd + pf.switches.len();
    for (l, link) in pf.links.iter().enumerate() {
        let pairs: Vec<(usize, usize)> = if link.ends.len() > 2 {
            medium_ns.insert(l, medium_i);
            medium_i += 1;
            link.ends.iter().map(|&e| (e, medium_i - 1)).collect()
        } else {
            vec![(link.ends[0], link.ends[1])]
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
    for ns in &all_ns {
        sh(&["ip", "netns", "add", ns])?;
        with_cleanup(|c| c.netns.push(ns.clone()));
        nsx(ns, &["ip", "link", "set", "lo", "up"])?;
        if ns != &coord_ns {
            nsx(ns, &["ip", "link", "add", "br0", "type", "bridge"])?;
            nsx(ns, &["ip", "link", "set", "br0", "up"])?;
        }
    }
    for d in 0..nd {
        nsx(
            &node_ns(d),
            &[
                "ip",
                "addr",
                "add",
                &format!("10.201.0.{}/16", d + 1),
                "dev",
                "br0",
            ],
        )?;
    }
    let shape = |ns: &str, dev: &str, mbps: f64| -> Result<()> {
        let rate = (mbps * 1e6 / dil).max(8000.0) as u64;
        let burst = (rate / 8 / 100).max(16 * 1024);
        nsx(
            ns,
            &[
                "tc",
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "tbf",
                "rate",
                &format!("{rate}bit"),
                "burst",
                &burst.to_string(),
                "latency",
                "200ms",
            ],
        )
    };
    let veth = |nsa: &str, a: &str, nsb: &str, b: &str| -> Result<()> {
        sh(&[
            "ip", "link", "add", a, "netns", nsa, "type", "veth", "peer", "name", b, "netns", nsb,
        ])
    };
    for (l, link) in pf.links.iter().enumerate() {
        let ends: Vec<(String, String, String, String)> = match medium_ns.get(&l) {
            Some(&m) => link
                .ends
                .iter()
                .enumerate()
                .map(|(k, &e)| {
                    (
                        node_ns(e),
                        format!("w{l}e{k}"),
                        all_ns[m].clone(),
                        format!("w{l}p{k}"),
                    )
                })
                .collect(),
            None => vec![(
                node_ns(link.ends[0]),
                format!("l{l}a"),
                node_ns(link.ends[1]),
                format!("l{l}b"),
            )],
        };
        for (nsa, a, nsb, b) in ends {
            veth(&nsa, &a, &nsb, &b)?;
            for (ns, dev) in [(&nsa, &a), (&nsb, &b)] {
                nsx(ns, &["ip", "link", "set", dev, "master", "br0"])?;
                nsx(ns, &["ip", "link", "set", dev, "up"])?;
                shape(ns, dev, link.bandwidth_mbps)?;
            }
        }
    }
    // management network and workers
    for &d in &used {
        let ns = node_ns(d);
        let m = format!("m{d}");
        veth(&coord_ns, &m, &ns, "mgmt")?;
        nsx(
            &coord_ns,
            &["ip", "addr", "add", &format!("10.202.{d}.1/24"), "dev", &m],
        )?;
        nsx(&coord_ns, &["ip", "link", "set", &m, "up"])?;
        nsx(
            &ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("10.202.{d}.2/24"),
                "dev",
                "mgmt",
            ],
        )?;
        nsx(&ns, &["ip", "link", "set", "mgmt", "up"])?;
        let (s, cpu) = share[&d];
        let pace = dil / s.max(1e-9);
        let (child, _) = spawn_worker(
            Some(&ns),
            &format!("0.0.0.0:{WORKER_PORT}"),
            Some(&tok),
            Some(pace),
            &dir.join(format!("worker{d}.log")),
        )?;
        let wpid = child.id();
        with_cleanup(|c| c.workers.push(child));
        // compute speed: pacing in the worker (see the module docs); the cgroup only pins
        let cg_set = PathBuf::from(format!("/sys/fs/cgroup/cpuset/ds{pid}d{d}"));
        std::fs::create_dir(&cg_set)
            .with_context(|| format!("creating cgroup {}", cg_set.display()))?;
        with_cleanup(|c| c.cgroups.push(cg_set.clone()));
        let w = |p: PathBuf, v: String| {
            std::fs::write(&p, &v).with_context(|| format!("writing {v} to {}", p.display()))
        };
        w(cg_set.join("cpuset.cpus"), cpu.to_string())?;
        let mems = std::fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.mems")
            .unwrap_or_else(|_| "0".into());
        w(cg_set.join("cpuset.mems"), mems.trim().to_string())?;
        w(cg_set.join("cgroup.procs"), wpid.to_string())?;
        run.workers.insert(
            pf.devices[d].name.clone(),
            format!("10.202.{d}.2:{WORKER_PORT}"),
        );
        run.peer_addrs.insert(
            pf.devices[d].name.clone(),
            format!("10.201.0.{}:{WORKER_PORT}", d + 1),
        );
    }
    for &a in &used {
        for &b in &used {
            if let Some(r) = net.route(a, b) {
                run.shaping.insert(
                    (a, b),
                    Shaping {
                        delay_us: (r.latency_ns as f64 / 1000.0 * dil) as u32,
                        rate_bps: 0,
                    },
                );
            }
        }
    }
    // the coordinator runs on a thread inside its namespace (threads it starts inherit it)
    let ns_path = format!("/run/netns/{coord_ns}");
    std::thread::scope(|s| {
        s.spawn(|| -> Result<RunReport> {
            let f = std::fs::File::open(&ns_path).with_context(|| format!("opening {ns_path}"))?;
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd affects only this thread.
            if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!("setns into {coord_ns}: {}", std::io::Error::last_os_error());
            }
            coord::execute(&run)
        })
        .join()
        .map_err(|_| anyhow!("the coordinator thread panicked"))?
    })
}
