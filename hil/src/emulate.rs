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
//!   `bandwidth_mbps` divided by the time dilation, with a small bucket (200 us of traffic,
//!   at least 4 KiB) so that a message flows at the rate from its first byte. A shared
//!   medium is shaped per end and direction (its half-duplex sharing is not reproduced).
//! - **Latency.** No `netem`: the *sending worker* holds every message for the route's
//!   latency (sum of its links' `latency_us`, times the dilation) before writing it. TCP
//!   acknowledgements are not delayed, so window-limited TCP behaviour is not emulated.
//! - **Compute.** The host is calibrated by running the whole model in tract on one core:
//!   `host_gflops = model FLOPs / best of 3 runs`. A partition on `k` of its CPU unit's `n`
//!   cores computes at `g x k / n` (`g` the unit's GFLOP/s; a GPU unit at `g`), one engine
//!   thread (the rig runs the built-in tract engine), and needs `share = g x k / n /
//!   host_gflops` host cores to keep its platform speed.
//! - **Host CPUs** ([`layout`], deterministic). A device needs one host CPU per core its
//!   partitions use (the union of their core sets; a whole unit uses all its cores; at least
//!   1). If the needs fit in the root cpuset's CPUs (cgroup v1 `cpuset`), every device gets
//!   that many CPUs of its own, consecutive, in device order. If not, but there are at
//!   least as many CPUs as devices, every device still gets CPUs of its own: one each, then
//!   one at a time to the device missing the most. Only with more devices than CPUs do
//!   devices share: one CPU each, the device with the largest share first, each onto the
//!   CPU where it raises the worst-case cost below the least. A device's core `i` runs on
//!   its `cpus[i % len]`; its worker's cgroup holds exactly its CPUs, and each partition's
//!   thread is pinned to the CPUs of its cores (`sched_setaffinity`).
//! - **Time dilation.** Partitions that can compute at the same time on one host CPU share
//!   it equally (processor sharing): each gets `1/m` of it, `m` the number of such
//!   partitions (partitions of one device on the same cores take turns, so they count once).
//!   The bound: on every host CPU, `m x largest share <= 0.9 x D` ([`layout::LOAD_BOUND`],
//!   10% left to the workers' I/O threads, the coordinator and the kernel's shaping), so
//!   that even when all of them compute at once none runs slower than its paced rate.
//!   `D = max(1, largest such m x share / 0.9)`, rounded up to 6 digits. With dedicated
//!   CPUs `m = 1` and D only grows for a device faster than 0.9 host cores.
//! - **Pacing rule.** Each partition's deployment carries `pace F = D / share` (>= 1):
//!   after each run the worker sleeps until the run's wall time is `F x` the CPU time the
//!   run's thread used (`CLOCK_THREAD_CPUTIME_ID`), so a run of `c` host seconds takes `c x
//!   D / share` = `D x` its platform time, whatever its length. This replaces
//!   `cpu.cfs_quota_us` throttling: CFS enforces a quota per period and the quota cannot go
//!   below 1 ms, so jobs shorter than one quota ran at host speed. Pacing uses CPU time, not
//!   wall time, so a partition preempted by another one on the same CPU is not slowed twice,
//!   and by the bound above it is never preempted for longer than its pacing absorbs.
//!   Partitions of one worker whose CPUs overlap take turns (first come, first served;
//!   [`crate::turns`]), the run and its pacing sleep included, as the simulator has
//!   partitions on overlapping core sets take turns. Every device runs D times slower than
//!   the platform, links are D times slower too, and reported times are divided by D
//!   (throughput multiplied); the report's `time_dilation` is D.
//!   A paced device computes 1/F of the time, so its runs find colder caches than
//!   back-to-back runs (1.2-3x slower on this 2-core VM, from run to run): `dicesim
//!   validate` profiles each device on its CPU with the same duty cycle. (Pacing every run
//!   by one reference time measured once was tried: it moved the host's drift into a
//!   single measurement and validated worse.)
//! - **Calibration hook.** [`emulate_with`] runs a caller's step on the built rig before
//!   frames stream ([`Rig`]: devices, CPUs, pacing factors; [`Rig::probe`] times messages
//!   through the shaped links); `dicesim validate` calibrates the simulator there.
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

mod events;
mod layout;
mod loopback;
pub mod memlimit;
mod netns;
mod probe;

use crate::conn::Shaping;
use crate::coord::{self, HilRun};
use crate::report::RunReport;
use anyhow::{anyhow, bail, Context, Result};
use dicesim_sim::network::Route;
use std::io::BufRead;
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

use crate::sys::is_root;

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
            // a child we started and have not reaped: its id is still ours
            let _ = crate::sys::terminate(c.id());
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
    for ctl in ["cpu", "cpuset", "memory"] {
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
    let logf = crate::private::create_private_file(log)
        .with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(logf));
    // the thread starting it (this one) lives for the whole run
    crate::sys::kill_with_parent(&mut cmd);
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
    emulate_with(path, |_| Ok(())).map(|(r, ())| r)
}

/// One device of a built rig.
#[derive(Debug, Clone)]
pub struct RigDevice {
    /// Device index in the platform.
    pub device: usize,
    /// Its first host CPU (None without root: not pinned).
    pub cpu: Option<usize>,
    /// Its host CPUs: its core `i` runs on `cpus[i % len]` (empty without root).
    pub cpus: Vec<usize>,
    /// The pacing factor of its first partition's whole unit, all cores (1: none).
    pub pace: f64,
    netns: Option<String>,
}

/// The rig as built, handed to a calibration step that runs before frames stream.
pub struct Rig<'a> {
    /// The scenario, model and plan.
    pub prep: &'a coord::Prepared,
    /// Calibrated host speed on this model [GFLOP/s] (None without root: not scaled).
    pub host_gflops: Option<f64>,
    /// Time dilation.
    pub dilation: f64,
    /// Devices that run partitions.
    pub devices: Vec<RigDevice>,
    run: &'a coord::HilRun,
    coord_ns: Option<String>,
}

/// Port of the link probe's receiver (next to the worker's).
const PROBE_PORT: u16 = WORKER_PORT + 1;

impl Rig<'_> {
    /// Streams another scenario through this rig's workers (the same platform: its devices
    /// and links must be this rig's) and returns its measured report; used to calibrate on
    /// the rig before the scenario itself runs.
    pub fn stream(&self, scenario: &Path) -> Result<RunReport> {
        let mut run = self.run.clone();
        run.scenario = scenario.to_path_buf();
        run.progress = false;
        self.execute(&run)
    }

    /// Runs the coordinator on `run`, on a thread inside the rig's coordinator namespace
    /// where it has one (threads it starts inherit it).
    fn execute(&self, run: &HilRun) -> Result<RunReport> {
        std::thread::scope(|s| {
            s.spawn(|| -> Result<RunReport> {
                if let Some(ns) = &self.coord_ns {
                    enter_netns(ns)?;
                }
                coord::execute(run)
            })
            .join()
            .map_err(|_| anyhow!("the coordinator thread panicked"))?
        })
    }

    /// Sends one message of each size in `sizes` from device `a` to device `b` through the
    /// rig's shaped links, `reps` times each, one at a time (each waits for the receiver's
    /// acknowledgement), holding each for the route's latency first as workers do.
    /// Returns `(bytes, seconds)` per message in platform time (host time / dilation): from
    /// the hand-off to the last byte at the receiver, one host clock.
    pub fn probe(
        &self,
        a: usize,
        b: usize,
        sizes: &[usize],
        reps: usize,
    ) -> Result<Vec<(usize, f64)>> {
        let (nsa, nsb) = (self.probe_netns(a)?, self.probe_netns(b)?);
        let latency_ns = (self.prep.scenario.prep.network.route(a, b))
            .map(|r| r.latency_ns)
            .ok_or_else(|| anyhow!("link probe: no route from device {a} to device {b}"))?;
        let probe = probe::Probe {
            addr: format!("10.201.0.{}:{PROBE_PORT}", b + 1).parse()?,
            sizes,
            reps,
            delay: Duration::from_secs_f64(latency_ns as f64 / 1e9 * self.dilation),
            dilation: self.dilation,
        };
        probe.run(&nsa, &nsb)
    }

    /// The namespace of device `d`'s worker.
    fn probe_netns(&self, d: usize) -> Result<String> {
        (self.devices.iter())
            .find(|x| x.device == d)
            .and_then(|x| x.netns.clone())
            .ok_or_else(|| {
                anyhow!("link probe: device {d} has no namespace (needs the rig as root)")
            })
    }
}

/// Moves the calling thread into network namespace `ns`.
fn enter_netns(ns: &str) -> Result<()> {
    let path = format!("/run/netns/{ns}");
    let f = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    crate::sys::enter_netns(&f).with_context(|| format!("setns into {ns}"))
}

/// As [`emulate`], with `calibrate` run on the built rig (workers started, links shaped)
/// before frames stream; returns its result with the report.
pub fn emulate_with<T>(
    path: &Path,
    calibrate: impl FnOnce(&Rig) -> Result<T>,
) -> Result<(RunReport, T)> {
    install_signal_teardown();
    let _rig = TeardownGuard;
    emulate_inner(path, calibrate)
}

/// Removes the rig when dropped: on return, on error, and on a panic that unwinds, so
/// that no namespace, cgroup, worker or private directory outlives the run.
struct TeardownGuard;

impl Drop for TeardownGuard {
    fn drop(&mut self) {
        teardown();
    }
}

/// What a rig built: the figures [`Rig`] shows, where the coordinator runs, and what the
/// scenario's events act on.
struct Built {
    host_gflops: Option<f64>,
    dilation: f64,
    devices: Vec<RigDevice>,
    coord_ns: Option<String>,
    targets: events::Targets,
}

/// A way of hosting the platform's devices on this machine: the loopback rig
/// ([`loopback`]) or the namespace rig ([`netns`]).
trait Host {
    /// Starts one worker per device in `setup.used` (their cleanup registered) and sets
    /// `run`'s worker addresses, shaping, mode and dilation.
    fn build(&self, setup: &Setup, run: &mut HilRun) -> Result<Built>;
}

/// What every rig starts from: the plan, the devices that run partitions, and the run's
/// directory and token.
struct Setup {
    prep: coord::Prepared,
    /// Devices that get a worker, in platform order: those that run partitions, and the
    /// spares.
    used: Vec<usize>,
    /// When the run may re-plan after a lost device: the allowed units of the devices that
    /// run no partition, so that their workers are there for a new plan (the simulator's
    /// re-plan may use them).
    spare: Vec<crate::cores::Placement>,
    /// This process's id (in the rig's namespace and cgroup names).
    pid: u32,
    /// Logs and the token file.
    dir: PathBuf,
    /// The workers' token file.
    token: PathBuf,
}

impl Setup {
    /// Loads the plan and writes a fresh random token for the run's workers into `run`.
    fn new(path: &Path, run: &mut HilRun) -> Result<Setup> {
        let prep = coord::prepare(path)?;
        let spare = spare_units(&prep)?;
        let mut used: Vec<usize> = prep.part_device.clone();
        used.extend(spare.iter().map(|p| p.device));
        used.sort();
        used.dedup();
        let pid = std::process::id();
        // root writes here: a fresh random 0700 directory, never a predictable path
        let dir = crate::private::create_private_dir("dicesim-emulate")
            .context("creating the run's private directory")?;
        with_cleanup(|c| c.dir = Some(dir.clone()));
        let tok = dir.join("token");
        let token = crate::token::write_new_token(&tok)?;
        run.token = token.into_bytes();
        run.workers.clear();
        run.peer_addrs.clear();
        Ok(Setup {
            prep,
            used,
            spare,
            pid,
            dir,
            token: tok,
        })
    }

    /// Sets the sender-side shaping of every route between used devices.
    fn shape_routes(&self, run: &mut HilRun, of: impl Fn(&Route) -> Shaping) {
        let net = &self.prep.scenario.prep.network;
        for &a in &self.used {
            for &b in &self.used {
                if let Some(r) = net.route(a, b) {
                    run.shaping.insert((a, b), of(r));
                }
            }
        }
    }
}

/// The allowed units (`mapping.units`, or all) of the devices that run no partition, when
/// the scenario has events and re-plans after them; none otherwise.
fn spare_units(prep: &coord::Prepared) -> Result<Vec<crate::cores::Placement>> {
    let sc = &prep.scenario;
    use dicesim_sim::events::{OnDeviceLoss, OnSlowdown};
    let a = &sc.adapt;
    let replan = a.on_device_loss == OnDeviceLoss::Replan || a.on_slowdown == OnSlowdown::Replan;
    if sc.events.is_empty() || !replan {
        return Ok(Vec::new());
    }
    let pf = &sc.prep.platform;
    let units = dicesim_sim::strategy::allowed_units(&sc.prep, sc.units.as_deref())?;
    Ok((units.into_iter())
        .filter(|&u| !prep.part_device.contains(&pf.units[u].device))
        .filter_map(|u| crate::cores::resolve(pf, &pf.units[u].full_name))
        .collect())
}

fn emulate_inner<T>(
    path: &Path,
    calibrate: impl FnOnce(&Rig) -> Result<T>,
) -> Result<(RunReport, T)> {
    let mut run = coord::options(path, false)?;
    let setup = Setup::new(path, &mut run)?;
    memlimit::check_fits(&setup.prep)?;
    let host: &dyn Host = if is_root() {
        &netns::Namespaces
    } else {
        &loopback::Loopback
    };
    let mut built = host.build(&setup, &mut run)?;
    let targets = std::mem::take(&mut built.targets);
    let rig = Rig {
        prep: &setup.prep,
        host_gflops: built.host_gflops,
        dilation: built.dilation,
        devices: built.devices,
        run: &run,
        coord_ns: built.coord_ns,
    };
    let cal = calibrate(&rig)?;
    // the events' clock starts with this run's frames, not with a calibration's
    let mut last = run.clone();
    last.replayed = Default::default();
    let replay = events::Plan {
        events: setup.prep.scenario.events.clone(),
        platform: setup.prep.scenario.prep.platform.clone(),
        dilation: rig.dilation,
        replayed: last.replayed.clone(),
    };
    let _replay = events::start(replay, targets);
    Ok((rig.execute(&last)?, cal))
}

/// Kills (SIGKILL) the rig's worker with process id `pid`: a `device down` event.
fn kill_worker(pid: u32) -> Result<()> {
    let mut g = CLEANUP.lock().unwrap_or_else(|e| e.into_inner());
    let child = (g.as_mut())
        .and_then(|c| c.workers.iter_mut().find(|w| w.id() == pid))
        .ok_or_else(|| anyhow!("no worker with process id {pid}"))?;
    child
        .kill()
        .with_context(|| format!("killing worker {pid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_still_removes_the_rig() {
        let dir = crate::private::create_private_dir("dicesim-guard-test").unwrap();
        let d = dir.clone();
        let r = std::panic::catch_unwind(move || {
            let _rig = TeardownGuard;
            with_cleanup(|c| c.dir = Some(d));
            panic!("a bug while the rig is up");
        });
        assert!(r.is_err());
        assert!(!dir.exists());
    }
}
