//! `dicesim hil`: the coordinator. Loads a scenario (model, platform, mapping by the
//! simulator's strategies), splits the model, ships the sub-models to the workers named by
//! the scenario's `[hil]` table, deploys the partitions with their peer-to-peer routes,
//! streams the workload's frames with a bounded window in flight, checks the first frames'
//! outputs against the whole model run here, and reports what it measured.
//!
//! `[hil]` keys: a device name maps to its worker's `host:port`; reserved keys are
//! `token_file` (shared secret, relative to the scenario; `DICESIM_TOKEN_FILE` otherwise),
//! `window` (frames in flight, default partitions + 2) and `stall_timeout_s` (default 60:
//! a run in which nothing completes for that long fails).

use crate::conn::{client_handshake, spawn_writer, Outgoing, Shaping};
use crate::proto::{
    read_msg, Dest, EdgeStat, Msg, Received, Role, Route, FROM_COORDINATOR, IDLE_TIMEOUT_MS,
    MAX_FRAME, MODEL_CHUNK,
};
use crate::report::{DeviceM, EdgeM, LinkM, PartitionM, RunReport, Stats, VerifyM};
use anyhow::{anyhow, bail, Context, Result};
use dicesim_plan::partition::Plan;
use dicesim_plan::split::sub_model;
use dicesim_plan::Model;
use dicesim_sim::report::{r6, LatencyMs};
use dicesim_sim::files::{HilTable, ModelSource, ScenarioFile};
use dicesim_sim::Scenario;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// Frames whose outputs are compared with the whole model's.
pub const VERIFY_FRAMES: u64 = 2;
/// Verification tolerance (as `split --verify`).
pub const TOLERANCE: f64 = 1e-5;

/// What to run and how.
#[derive(Debug, Clone)]
pub struct HilRun {
    /// Scenario file.
    pub scenario: PathBuf,
    /// Device name -> worker address.
    pub workers: BTreeMap<String, String>,
    /// Device name -> the address other workers use to reach it (emulation: the platform
    /// network's address; the coordinator uses `workers`, a management network). Devices
    /// not listed are reached at their `workers` address.
    pub peer_addrs: BTreeMap<String, String>,
    /// Shared secret (empty: loopback workers without a token).
    pub token: Vec<u8>,
    /// Frames in flight at most (None: partitions + 2).
    pub window: Option<usize>,
    /// Per (producer device, consumer device) index pair: shaping applied by the sender.
    pub shaping: HashMap<(usize, usize), Shaping>,
    /// `hil` or `emulate`.
    pub mode: String,
    /// Emulation time dilation (1: none).
    pub dilation: f64,
    /// Emulation only: the host's calibrated GFLOP/s on this model (one core).
    pub host_gflops: Option<f64>,
    /// A run in which nothing arrives for this long fails.
    pub stall_timeout: Duration,
    /// Show a progress bar on stderr (only drawn on a terminal).
    pub progress: bool,
}

/// Reads the scenario's `[hil]` table into a [`HilRun`].
pub fn from_scenario(path: &Path) -> Result<HilRun> {
    options(path, true)
}

/// Reads the scenario's `[hil]` table (which may be absent unless `required`). The
/// simulator's scenario model reads it and checks its device keys against the platform.
pub fn options(path: &Path, required: bool) -> Result<HilRun> {
    let hil = match dicesim_sim::scenario::read_hil(path)? {
        Some(h) => h,
        None if !required => HilTable::default(),
        None => bail!(
            "{}: no [hil] table; add one naming each device's worker, e.g. [hil] nx1 = \"127.0.0.1:7070\"",
            path.display()
        ),
    };
    let mut run = HilRun {
        scenario: path.to_path_buf(),
        workers: hil.workers,
        peer_addrs: BTreeMap::new(),
        token: Vec::new(),
        window: hil.window.map(|w| w as usize),
        shaping: HashMap::new(),
        mode: "hil".into(),
        dilation: 1.0,
        host_gflops: None,
        stall_timeout: Duration::from_secs_f64(hil.stall_timeout_s.unwrap_or(60.0)),
        progress: true,
    };
    if let Some(f) = &hil.token_file {
        let p = path.parent().unwrap_or(Path::new(".")).join(f);
        run.token = crate::worker::read_token(&p)?;
    }
    if run.token.is_empty() {
        if let Ok(f) = std::env::var("DICESIM_TOKEN_FILE") {
            run.token = crate::worker::read_token(Path::new(&f))?;
        }
    }
    Ok(run)
}

/// Loads the scenario's model as an ONNX [`Model`] (the simulator keeps only its graph),
/// from the `[model]` table as the simulator's scenario model reads it.
pub fn load_model(path: &Path) -> Result<Model> {
    let file = ScenarioFile::read(path)?;
    Ok(match file.model.source(path)? {
        ModelSource::Zoo { name, input_size } => Model::zoo(&name, input_size)?,
        ModelSource::Onnx { path, input_shapes } => Model::load(&path, &input_shapes)?,
    })
}

/// The loaded plan: scenario, model, partitions, and where each partition runs.
pub struct Prepared {
    /// The scenario (platform, mapping, workload).
    pub scenario: Scenario,
    /// The model.
    pub model: Model,
    /// Partitions.
    pub plan: Plan,
    /// Device index of each partition.
    pub part_device: Vec<usize>,
}

/// Loads scenario, model and plan.
pub fn prepare(path: &Path) -> Result<Prepared> {
    let scenario = Scenario::load(path)?;
    let model = load_model(path)?;
    let plan = Plan::build(&model.graph, &scenario.mapping)
        .with_context(|| format!("{}: partitioning", path.display()))?;
    let pf = &scenario.prep.platform;
    let part_device = plan
        .partitions
        .iter()
        .map(|p| {
            pf.unit_index(&p.unit)
                .map(|u| pf.units[u].device)
                .ok_or_else(|| anyhow!("unit {} is not in the platform", p.unit))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Prepared {
        scenario,
        model,
        plan,
        part_device,
    })
}

/// A worker's answer to [`Msg::StatsRequest`]: peak RSS [KiB], energy, edges.
type WorkerStats = (u64, Option<(String, u64)>, Vec<EdgeStat>);

enum Ev {
    Msg(usize, Received),
    Lost(usize, String),
}

struct WorkerConn {
    addr: String,
    tx: mpsc::Sender<Outgoing>,
}

async fn connect(
    i: usize,
    addr: &str,
    key: &[u8],
    ev: mpsc::UnboundedSender<Ev>,
) -> Result<WorkerConn> {
    let mut s = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connecting to worker {addr}: timed out"))?
        .with_context(|| format!("connecting to worker {addr}"))?;
    s.set_nodelay(true)?;
    client_handshake(&mut s, key, Role::Coordinator)
        .await
        .with_context(|| format!("worker {addr}"))?;
    let (mut r, w) = s.into_split();
    let ev2 = ev.clone();
    let tx = spawn_writer(w, Shaping::default(), 64, move |e| {
        let _ = ev2.send(Ev::Lost(i, e));
    });
    tokio::spawn(async move {
        let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
        loop {
            match read_msg(&mut r, MAX_FRAME, idle).await {
                Ok(Received {
                    msg: Msg::Heartbeat,
                    ..
                }) => {}
                Ok(m) => {
                    if ev.send(Ev::Msg(i, m)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = ev.send(Ev::Lost(i, e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(WorkerConn {
        addr: addr.to_string(),
        tx,
    })
}

async fn send(w: &WorkerConn, m: &Msg) -> Result<()> {
    w.tx.send((Instant::now(), m.encode()))
        .await
        .map_err(|_| anyhow!("worker {}: connection closed", w.addr))
}

/// Waits for a message from worker `from` accepted by `want`; faults and losses are errors.
async fn expect<T>(
    ev: &mut mpsc::UnboundedReceiver<Ev>,
    conns: &[WorkerConn],
    from: usize,
    timeout: Duration,
    mut want: impl FnMut(&Msg) -> Option<T>,
) -> Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let e = tokio::time::timeout_at(deadline, ev.recv())
            .await
            .map_err(|_| anyhow!("worker {}: no answer in {timeout:?}", conns[from].addr))?
            .ok_or_else(|| anyhow!("all connections closed"))?;
        match e {
            Ev::Lost(i, e) => bail!("lost worker {}: {e}", conns[i].addr),
            Ev::Msg(i, r) => match r.msg {
                Msg::Fault { msg } | Msg::Error { msg } => {
                    bail!("worker {}: {msg}", conns[i].addr)
                }
                m if i == from => {
                    if let Some(t) = want(&m) {
                        return Ok(t);
                    }
                }
                _ => {}
            },
        }
    }
}

/// Runs a scenario on workers; the CLI entry of `dicesim hil`. Prints the report (JSON or
/// text) and fails when frames did not complete or outputs do not match.
pub fn run_cli(path: &Path, json: bool) -> Result<()> {
    let run = from_scenario(path)?;
    let report = execute(&run)?;
    print_and_judge(&report, json)
}

/// Prints a report and turns a fault or a failed verification into an error.
pub fn print_and_judge(report: &RunReport, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report.text());
    }
    if let Some(e) = &report.error {
        bail!(
            "{} of {} frames did not complete: {e}",
            report.failed_frames.len(),
            report.frames
        );
    }
    if let Some(v) = &report.verification {
        if !v.ok {
            bail!(
                "outputs differ from the whole model: max relative error {:.3e} exceeds {TOLERANCE:e}",
                v.max_rel_error
            );
        }
    }
    Ok(())
}

/// Runs `run` and returns the measured report (with `error` set when the run failed midway;
/// an error return means nothing ran: bad scenario, unreachable worker, failed deployment).
pub fn execute(run: &HilRun) -> Result<RunReport> {
    let prep = prepare(&run.scenario)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(execute_async(run, prep))
}

async fn execute_async(run: &HilRun, prep: Prepared) -> Result<RunReport> {
    let sc = &prep.scenario;
    let pf = &sc.prep.platform;
    let plan = &prep.plan;
    let n_parts = plan.partitions.len();
    // device -> connection index
    let mut dev_conn: HashMap<usize, usize> = HashMap::new();
    let mut addrs: Vec<String> = Vec::new();
    for (p, &d) in prep.part_device.iter().enumerate() {
        let name = &pf.devices[d].name;
        let addr = run.workers.get(name).ok_or_else(|| {
            anyhow!(
                "{}: [hil] has no worker address for device '{name}' (it runs partition {p})",
                run.scenario.display()
            )
        })?;
        if let std::collections::hash_map::Entry::Vacant(v) = dev_conn.entry(d) {
            let i = addrs.iter().position(|a| a == addr).unwrap_or_else(|| {
                addrs.push(addr.clone());
                addrs.len() - 1
            });
            v.insert(i);
        }
    }
    for k in run.workers.keys() {
        if !pf.devices.iter().any(|d| &d.name == k) {
            bail!(
                "{}: key hil.{k}: no device '{k}' in platform {}",
                run.scenario.display(),
                pf.name
            );
        }
    }
    let (ev_tx, mut ev) = mpsc::unbounded_channel();
    let mut conns = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        conns.push(connect(i, a, &run.token, ev_tx.clone()).await?);
    }
    drop(ev_tx);
    let conn_of = |p: usize| dev_conn[&prep.part_device[p]];

    // ship sub-models
    let mut hashes = Vec::new();
    for p in 0..n_parts {
        let bytes = dicesim_plan::onnx::encode_model(&sub_model(&prep.model, plan, p));
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        let c = conn_of(p);
        send(&conns[c], &Msg::ModelQuery { hash }).await?;
        let have = expect(&mut ev, &conns, c, Duration::from_secs(10), |m| match m {
            Msg::ModelHave { hash: h, have } if *h == hash => Some(*have),
            _ => None,
        })
        .await?;
        if !have {
            let total = bytes.len() as u64;
            for (k, chunk) in bytes.chunks(MODEL_CHUNK).enumerate() {
                send(
                    &conns[c],
                    &Msg::ModelChunk {
                        hash,
                        total,
                        offset: (k * MODEL_CHUNK) as u64,
                        data: chunk.to_vec(),
                    },
                )
                .await?;
            }
            expect(&mut ev, &conns, c, Duration::from_secs(600), |m| match m {
                Msg::ModelReady { hash: h } if *h == hash => Some(()),
                _ => None,
            })
            .await?;
        }
        hashes.push(hash);
    }
    // deploy, consumers first so that local routes find them
    let mut load_ms = vec![0.0; n_parts];
    for p in (0..n_parts).rev() {
        let part = &plan.partitions[p];
        let mut routes = Vec::new();
        for t in &part.outputs {
            for e in plan
                .edges
                .iter()
                .filter(|e| e.from == p && e.tensor == t.name)
            {
                let (dp, dc) = (prep.part_device[p], prep.part_device[e.to]);
                let dest = if conn_of(e.to) == conn_of(p) {
                    Dest::Local { part: e.to as u32 }
                } else {
                    let sh = run.shaping.get(&(dp, dc)).copied().unwrap_or_default();
                    Dest::Peer {
                        addr: run
                            .peer_addrs
                            .get(&pf.devices[dc].name)
                            .cloned()
                            .unwrap_or_else(|| addrs[conn_of(e.to)].clone()),
                        part: e.to as u32,
                        delay_us: sh.delay_us,
                        rate_bps: sh.rate_bps,
                    }
                };
                routes.push(Route {
                    tensor: t.name.clone(),
                    dest,
                });
            }
            if plan
                .graph_outputs
                .iter()
                .any(|(g, q)| *q == p && g.name == t.name)
            {
                routes.push(Route {
                    tensor: t.name.clone(),
                    dest: Dest::Coordinator,
                });
            }
        }
        let c = conn_of(p);
        send(
            &conns[c],
            &Msg::Deploy {
                part: p as u32,
                hash: hashes[p],
                threads: 1,
                inputs: part.inputs.iter().map(|t| t.name.clone()).collect(),
                routes,
            },
        )
        .await?;
        let us = expect(&mut ev, &conns, c, Duration::from_secs(600), |m| match m {
            Msg::Deployed { part, load_us } if *part as usize == p => Some(*load_us),
            _ => None,
        })
        .await
        .with_context(|| format!("deploying partition {p}"))?;
        load_ms[p] = us as f64 / 1e3;
    }

    // the reference: the whole model, run here, on the frames that are verified
    let frames = sc.prep.workload.frames as u64;
    let seed = sc.seed;
    let n_verify = frames.min(VERIFY_FRAMES);
    let model = prep.model.clone();
    let reference = tokio::task::spawn_blocking(move || -> Result<Vec<HashMap<String, _>>> {
        let whole = dicesim_tract::Session::from_onnx_bytes(&dicesim_plan::onnx::encode_model(
            &model.static_proto(),
        ))
        .context("loading the whole model for verification")?;
        (0..n_verify)
            .map(|f| {
                let ins = random_inputs(&model, seed.wrapping_add(f * 1000));
                Ok(whole.run(&ins)?.into_iter().collect())
            })
            .collect()
    })
    .await??;

    // stream
    // at most 48 in flight: a partition's input queue holds 64 frames
    let window = run.window.unwrap_or(n_parts + 2).clamp(1, 48);
    let period = Duration::from_nanos(sc.prep.workload.period_ns);
    let n_outputs = plan.graph_outputs.len();
    let bar = if run.progress && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(frames)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} frames {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let energy0 = crate::sensors::EnergyMeter::start();
    let mut entry: Vec<Option<Instant>> = vec![None; frames as usize];
    let mut exit: Vec<Option<Instant>> = vec![None; frames as usize];
    let mut got_outputs = vec![0usize; frames as usize];
    let mut max_err = 0f64;
    let mut compute: Vec<Vec<f64>> = vec![Vec::new(); n_parts];
    let mut out_edges: BTreeMap<(u32, String), EdgeStat> = BTreeMap::new();
    let mut next = 0u64;
    let mut done = 0u64;
    let mut in_flight = 0usize;
    let t_start = Instant::now();
    let mut last_progress = Instant::now();
    let mut error: Option<String> = None;
    let mut dead = std::collections::HashSet::new();
    while done < frames {
        while next < frames
            && in_flight < window
            && (period.is_zero() || Instant::now() >= t_start + period * next as u32)
        {
            let ins = random_inputs(&prep.model, seed.wrapping_add(next * 1000));
            entry[next as usize] = Some(Instant::now());
            for (t, consumers) in &plan.graph_inputs {
                let x = &ins[&t.name];
                for &c in consumers {
                    let m = Msg::Tensor {
                        frame: next,
                        from: FROM_COORDINATOR,
                        to: c as u32,
                        name: t.name.clone(),
                        shape: x.shape.iter().map(|&d| d as u32).collect(),
                        data: x.data.clone(),
                        sent_ns: crate::proto::mono_ns(),
                    };
                    if let Err(e) = send(&conns[conn_of(c)], &m).await {
                        error.get_or_insert(e.to_string());
                    }
                }
            }
            next += 1;
            in_flight += 1;
        }
        if error.is_some() {
            break;
        }
        let wait = if next < frames && in_flight < window && !period.is_zero() {
            (t_start + period * next as u32).saturating_duration_since(Instant::now())
        } else {
            run.stall_timeout
                .saturating_sub(last_progress.elapsed())
                .max(Duration::from_millis(1))
        };
        let e = match tokio::time::timeout(wait, ev.recv()).await {
            Ok(Some(e)) => e,
            Ok(None) => {
                error = Some("all worker connections closed".into());
                break;
            }
            Err(_) => {
                if last_progress.elapsed() >= run.stall_timeout {
                    error = Some(format!(
                        "no frame completed for {:?} (stall timeout)",
                        run.stall_timeout
                    ));
                    break;
                }
                continue;
            }
        };
        match e {
            Ev::Lost(i, e) => {
                dead.insert(i);
                error = Some(format!("lost worker {}: {e}", conns[i].addr));
                break;
            }
            Ev::Msg(i, r) => match r.msg {
                Msg::Fault { msg } | Msg::Error { msg } => {
                    error = Some(format!("worker {}: {msg}", conns[i].addr));
                    // a worker reporting a lost peer may be followed by the loss itself
                    while let Ok(Some(e)) =
                        tokio::time::timeout(Duration::from_millis(20), ev.recv()).await
                    {
                        if let Ev::Lost(j, _) = e {
                            dead.insert(j);
                        }
                    }
                    break;
                }
                Msg::Timing {
                    part, compute_us, ..
                } if (part as usize) < n_parts => {
                    compute[part as usize].push(compute_us as f64 / 1e3);
                }
                Msg::Tensor {
                    frame,
                    from,
                    name,
                    data,
                    ..
                } if frame < frames => {
                    let s = out_edges
                        .entry((from, name.clone()))
                        .or_insert_with(|| EdgeStat {
                            from,
                            to: FROM_COORDINATOR,
                            tensor: name.clone(),
                            ..EdgeStat::default()
                        });
                    s.count += 1;
                    s.bytes += r.bytes;
                    s.transfer_us += r.transfer.as_micros() as u64;
                    if frame < n_verify {
                        let e = match reference[frame as usize].get(&name) {
                            Some(want) => dicesim_tract::rel_error(&want.data, &data),
                            None => f64::INFINITY,
                        };
                        max_err = max_err.max(if e.is_nan() { f64::INFINITY } else { e });
                    }
                    let f = frame as usize;
                    got_outputs[f] += 1;
                    if got_outputs[f] == n_outputs && exit[f].is_none() {
                        exit[f] = Some(Instant::now());
                        done += 1;
                        in_flight -= 1;
                        last_progress = Instant::now();
                        bar.inc(1);
                    }
                }
                _ => {}
            },
        }
    }
    bar.finish_and_clear();
    let host_energy_mj = energy0.map(|e| e.used_uj() as f64 / 1e3);

    // worker figures (best effort after a fault)
    let mut stats: Vec<Option<WorkerStats>> = Vec::new();
    for (i, c) in conns.iter().enumerate() {
        let s = if !dead.contains(&i) && send(c, &Msg::StatsRequest).await.is_ok() {
            let wait = if error.is_some() { 1 } else { 5 };
            expect(&mut ev, &conns, i, Duration::from_secs(wait), |m| match m {
                Msg::Stats {
                    peak_rss_kb,
                    energy,
                    edges,
                } => Some((*peak_rss_kb, energy.clone(), edges.clone())),
                _ => None,
            })
            .await
            .ok()
        } else {
            None
        };
        let _ = send(c, &Msg::Reset).await;
        stats.push(s);
    }
    drop(conns);

    // the report
    let dil = run.dilation;
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / dil;
    let lat: Vec<f64> = (0..frames as usize)
        .filter_map(|f| Some(ms(exit[f]? - entry[f]?)))
        .collect();
    let first = entry.iter().flatten().min().copied();
    let last = exit.iter().flatten().max().copied();
    let span_ms = match (first, last) {
        (Some(a), Some(b)) if b > a => ms(b - a),
        _ => 0.0,
    };
    let throughput = if span_ms > 0.0 {
        done as f64 / (span_ms / 1e3)
    } else {
        0.0
    };
    let makespan_ms = last.map(|l| ms(l - t_start)).unwrap_or(0.0);
    let ls = Stats::of(&lat);
    let compute_d: Vec<Vec<f64>> = compute
        .iter()
        .map(|v| v.iter().map(|x| x / dil).collect())
        .collect();
    let mut edges = Vec::new();
    let mut all_edges: Vec<EdgeStat> = stats
        .iter()
        .flatten()
        .flat_map(|s| s.2.iter().cloned())
        .collect();
    all_edges.extend(out_edges.into_values());
    let endp = |x: u32| (x != FROM_COORDINATOR).then_some(x as usize);
    let mut link_bytes = vec![0u64; pf.links.len()];
    let mut link_busy_ms = vec![0f64; pf.links.len()];
    for e in &all_edges {
        let tm = e.transfer_us as f64 / 1e3 / dil;
        if let (Some(a), Some(b)) = (endp(e.from), endp(e.to)) {
            if a < n_parts && b < n_parts {
                let (da, db) = (prep.part_device[a], prep.part_device[b]);
                if let Some(route) = sc.prep.network.route(da, db) {
                    for &l in &route.links {
                        link_bytes[l] += e.bytes;
                        link_busy_ms[l] += tm;
                    }
                }
            }
        }
        edges.push(EdgeM {
            from: endp(e.from),
            to: endp(e.to),
            tensor: e.tensor.clone(),
            count: e.count,
            bytes: e.bytes,
            transfer_ms_mean: r6(tm / e.count.max(1) as f64),
        });
    }
    edges.sort_by_key(|e| (e.from.map_or(0, |x| x + 1), e.to.map_or(usize::MAX, |x| x)));
    // pipeline stages: each partition's compute, and for each ordered pair of partitions
    // the total transfer time per frame of all tensors between them
    let mut pair_ms: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for e in &edges {
        if let (Some(a), Some(b)) = (e.from, e.to) {
            let per_frame = e.count as f64 / done.max(1) as f64;
            *pair_ms.entry((a, b)).or_default() += e.transfer_ms_mean * per_frame;
        }
    }
    let slowest = compute_d
        .iter()
        .map(|v| Stats::of(v).mean)
        .chain(pair_ms.values().copied())
        .fold(0.0, f64::max);
    // energy: a device's own sensor only; a sensor shared by several workers is not theirs
    let mut sensor_users: HashMap<String, usize> = HashMap::new();
    for (_, e, _) in stats.iter().flatten() {
        if let Some((id, _)) = e {
            *sensor_users.entry(id.clone()).or_default() += 1;
        }
    }
    let mut devices = Vec::new();
    let mut used: Vec<usize> = prep.part_device.clone();
    used.sort();
    used.dedup();
    for d in used {
        let c = dev_conn[&d];
        let busy: f64 = (0..n_parts)
            .filter(|&p| prep.part_device[p] == d)
            .map(|p| compute_d[p].iter().sum::<f64>())
            .sum();
        let st = stats[c].as_ref();
        let energy_mj = st
            .and_then(|s| s.1.as_ref())
            .filter(|(id, _)| sensor_users.get(id) == Some(&1))
            .map(|(_, uj)| r6(*uj as f64 / 1e3));
        devices.push(DeviceM {
            name: pf.devices[d].name.clone(),
            busy_frac: if makespan_ms > 0.0 {
                r6(busy / makespan_ms)
            } else {
                0.0
            },
            energy_mj,
            memory_peak_mb: st.map(|s| r6(s.0 as f64 / 1024.0)).unwrap_or(0.0),
            worker: addrs[c].clone(),
        });
    }
    let energy_mj_per_frame = if done > 0 && devices.iter().all(|d| d.energy_mj.is_some()) {
        Some(r6(
            devices.iter().filter_map(|d| d.energy_mj).sum::<f64>() / done as f64
        ))
    } else {
        None
    };
    let failed_frames: Vec<u64> = (0..frames)
        .filter(|&f| exit[f as usize].is_none())
        .collect();
    Ok(RunReport {
        scenario: sc.name.clone(),
        frames: frames as u32,
        latency_ms: LatencyMs {
            mean: ls.mean,
            p50: ls.p50,
            p95: ls.p95,
            max: ls.max,
        },
        throughput_fps: r6(throughput),
        makespan_ms: r6(makespan_ms),
        energy_mj_per_frame,
        devices,
        links: pf
            .links
            .iter()
            .enumerate()
            .map(|(l, link)| LinkM {
                name: link.name.clone(),
                bytes: link_bytes[l],
                busy_frac: if makespan_ms > 0.0 {
                    r6((link_busy_ms[l] / makespan_ms).min(1.0))
                } else {
                    0.0
                },
            })
            .collect(),
        mode: run.mode.clone(),
        backend: "tract".into(),
        model: prep.model.graph.name.clone(),
        platform: pf.name.clone(),
        strategy: sc.strategy.name().into(),
        window,
        frames_completed: done as u32,
        failed_frames,
        error,
        verification: (n_verify > 0 && (0..n_verify as usize).all(|f| exit[f].is_some()))
            .then_some(VerifyM {
                frames: n_verify as u32,
                max_rel_error: max_err,
                ok: max_err <= TOLERANCE,
            }),
        partitions: plan
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionM {
                id: i,
                unit: p.unit.clone(),
                layers: p.layers.len(),
                compute_ms: Stats::of(&compute_d[i]),
                load_ms: r6(load_ms[i]),
            })
            .collect(),
        edges,
        pipeline_efficiency: r6(throughput * slowest / 1e3),
        time_dilation: dil,
        host_gflops: run.host_gflops.map(r6),
        host_energy_mj: host_energy_mj.map(r6),
    })
}

/// Seeded inputs for every graph input of `model`.
pub fn random_inputs(model: &Model, seed: u64) -> HashMap<String, crate::engine::Tensor> {
    model
        .graph
        .inputs
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let shape = &model.graph.tensors[name].shape;
            (
                name.clone(),
                crate::engine::Tensor::random(shape, seed.wrapping_add(i as u64)),
            )
        })
        .collect()
}
