//! One `dicesim hil` run, phase by phase: place the partitions on workers, connect, ship
//! the sub-models, deploy them, run the reference, stream the frames ([`super::stream`],
//! re-planning after a lost worker: [`super::adapt`]), collect the workers' figures, and
//! build the report ([`super::summary`]).

use super::adapt::{self, Current};
use super::stream::Reference;
use super::summary;
use super::workers::Workers;
use super::{random_inputs, HilRun, Prepared};
use crate::engine::Tensor;
use crate::proto::{Dest, EdgeStat, Msg, Route, MODEL_CHUNK};
use crate::report::RunReport;
use anyhow::{anyhow, bail, Context, Result};
use dicesim_plan::split::sub_model;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Runs `prep` on the workers `run` names and reports what was measured.
pub(super) async fn execute(run: &HilRun, prep: &Prepared) -> Result<RunReport> {
    let place = Placement::resolve(run, prep)?;
    let mut workers = Workers::connect(&place.addrs, &run.token).await?;
    let mut s = Session {
        run,
        prep,
        place,
        workers: &mut workers,
    };
    let hashes = s.ship().await?;
    let loaded = s.deploy(&hashes).await?;
    let cur = Current {
        prep: Cow::Borrowed(prep),
        place: s.place,
        loaded,
    };
    let a = adapt::stream(run, cur, &mut workers).await?;
    let (cur, streamed) = (a.current, a.streamed);
    let mut s = Session {
        run,
        prep: &cur.prep,
        place: cur.place,
        workers: &mut workers,
    };
    let stats = s.collect(streamed.error.is_some(), &streamed.dead).await;
    let place = s.place;
    let mut report = summary::report(run, &cur.prep, &place, &cur.loaded, streamed, &stats);
    report.replans = a.replans;
    Ok(report)
}

/// Which worker runs what.
pub(super) struct Placement {
    /// Worker address of each connection.
    pub addrs: Vec<String>,
    /// Connection of each device that runs partitions.
    pub dev_conn: HashMap<usize, usize>,
    /// Connection of each partition.
    pub part_conn: Vec<usize>,
}

impl Placement {
    /// One connection per distinct worker address of the devices that run partitions.
    pub(super) fn resolve(run: &HilRun, prep: &Prepared) -> Result<Placement> {
        let pf = &prep.scenario.prep.platform;
        let mut place = Placement {
            addrs: Vec::new(),
            dev_conn: HashMap::new(),
            part_conn: Vec::new(),
        };
        for (p, &d) in prep.part_device.iter().enumerate() {
            let name = &pf.devices[d].name;
            let addr = run.workers.get(name).ok_or_else(|| {
                anyhow!(
                    "{}: [hil] has no worker address for device '{name}' (it runs partition {p})",
                    run.scenario.display()
                )
            })?;
            let c = match place.addrs.iter().position(|a| a == addr) {
                Some(c) => c,
                None => {
                    place.addrs.push(addr.clone());
                    place.addrs.len() - 1
                }
            };
            place.dev_conn.entry(d).or_insert(c);
            place.part_conn.push(place.dev_conn[&d]);
        }
        check_devices(run, prep)?;
        Ok(place)
    }
}

/// Every `[hil]` device key names a device of the platform.
fn check_devices(run: &HilRun, prep: &Prepared) -> Result<()> {
    let pf = &prep.scenario.prep.platform;
    for k in run.workers.keys() {
        if !pf.devices.iter().any(|d| &d.name == k) {
            bail!(
                "{}: key hil.{k}: no device '{k}' in platform {}",
                run.scenario.display(),
                pf.name
            );
        }
    }
    Ok(())
}

/// What a worker said when it loaded a partition.
pub(super) struct Loaded {
    /// Load time [ms].
    pub load_ms: f64,
    /// The backend that loaded it.
    pub backend: String,
}

/// A worker's answer to [`Msg::StatsRequest`].
pub(super) struct WorkerStats {
    /// Peak resident set [KiB].
    pub peak_rss_kb: u64,
    /// Energy sensor id and energy used [uJ].
    pub energy: Option<(String, u64)>,
    /// Per-edge receive figures.
    pub edges: Vec<EdgeStat>,
}

/// A run in progress: its inputs, placement and connections.
pub(super) struct Session<'a> {
    pub run: &'a HilRun,
    pub prep: &'a Prepared,
    pub place: Placement,
    pub workers: &'a mut Workers,
}

impl Session<'_> {
    /// Ships each partition's sub-model to its worker (unless cached there); their hashes.
    pub(super) async fn ship(&mut self) -> Result<Vec<[u8; 32]>> {
        let mut hashes = Vec::new();
        for p in 0..self.prep.plan.partitions.len() {
            let sub = sub_model(&self.prep.model, &self.prep.plan, p);
            let bytes = dicesim_plan::onnx::encode_model(&sub);
            hashes.push(self.ship_one(self.place.part_conn[p], &bytes).await?);
        }
        Ok(hashes)
    }

    async fn ship_one(&mut self, c: usize, bytes: &[u8]) -> Result<[u8; 32]> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        let possession = crate::conn::possession(self.workers.transcript(c), bytes);
        let query = Msg::ModelQuery { hash, possession };
        self.workers.send(c, &query).await?;
        let wait = Duration::from_secs(10);
        let have = self
            .workers
            .expect(c, wait, |m| match m {
                Msg::ModelHave { hash: h, have } if *h == hash => Some(*have),
                _ => None,
            })
            .await?;
        if have {
            return Ok(hash);
        }
        for (k, chunk) in bytes.chunks(MODEL_CHUNK).enumerate() {
            let m = Msg::ModelChunk {
                hash,
                total: bytes.len() as u64,
                offset: (k * MODEL_CHUNK) as u64,
                data: chunk.to_vec(),
            };
            self.workers.send(c, &m).await?;
        }
        let wait = Duration::from_secs(600);
        self.workers
            .expect(c, wait, |m| match m {
                Msg::ModelReady { hash: h } if *h == hash => Some(()),
                _ => None,
            })
            .await?;
        Ok(hash)
    }

    /// Deploys every partition, consumers first so that local routes find them.
    pub(super) async fn deploy(&mut self, hashes: &[[u8; 32]]) -> Result<Vec<Loaded>> {
        let mut loaded = Vec::new();
        for p in (0..hashes.len()).rev() {
            loaded.push(self.deploy_one(p, hashes[p]).await?);
        }
        loaded.reverse();
        Ok(loaded)
    }

    async fn deploy_one(&mut self, p: usize, hash: [u8; 32]) -> Result<Loaded> {
        let part = &self.prep.plan.partitions[p];
        let c = self.place.part_conn[p];
        let place = &self.prep.part_place[p];
        let map = self.run.cpu_map.get(&place.device).map(Vec::as_slice);
        let m = Msg::Deploy {
            part: p as u32,
            hash,
            threads: place.threads,
            cpus: crate::cores::host_cpus(place.cores, map),
            pace: self.pace(p),
            inputs: part.inputs.iter().map(|t| t.name.clone()).collect(),
            routes: self.routes(p),
        };
        self.workers.send(c, &m).await?;
        let wait = Duration::from_secs(600);
        let (us, backend) = self
            .workers
            .expect(c, wait, |m| match m {
                Msg::Deployed {
                    part,
                    load_us,
                    backend,
                } if *part as usize == p => Some((*load_us, backend.clone())),
                _ => None,
            })
            .await
            .with_context(|| format!("deploying partition {p}"))?;
        Ok(Loaded {
            load_ms: us as f64 / 1e3,
            backend,
        })
    }

    /// Partition `p`'s pacing factor in the rig (`D / share`, at least 1; see
    /// `crate::emulate`), 0 outside it.
    fn pace(&self, p: usize) -> f64 {
        let Some(host) = self.run.host_gflops else {
            return 0.0;
        };
        let pf = &self.prep.scenario.prep.platform;
        let share = crate::cores::share(pf, &self.prep.part_place[p], host);
        (self.run.dilation / share.max(1e-9)).max(1.0)
    }

    /// Where partition `p`'s outputs go: consumer partitions, and the coordinator for
    /// graph outputs.
    fn routes(&self, p: usize) -> Vec<Route> {
        let plan = &self.prep.plan;
        let mut routes = Vec::new();
        for t in &plan.partitions[p].outputs {
            for e in plan
                .edges
                .iter()
                .filter(|e| e.from == p && e.tensor == t.name)
            {
                let dest = self.dest(p, e.to);
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
        routes
    }

    /// How partition `p` reaches consumer partition `to`: in process on the same worker,
    /// otherwise at the consumer's peer address, shaped as the run says.
    fn dest(&self, p: usize, to: usize) -> Dest {
        let pc = &self.place.part_conn;
        if pc[to] == pc[p] {
            return Dest::Local { part: to as u32 };
        }
        let (dp, dc) = (self.prep.part_device[p], self.prep.part_device[to]);
        let sh = self.run.shaping.get(&(dp, dc)).copied().unwrap_or_default();
        let name = &self.prep.scenario.prep.platform.devices[dc].name;
        let addr = self.run.peer_addrs.get(name).cloned();
        Dest::Peer {
            addr: addr.unwrap_or_else(|| self.place.addrs[pc[to]].clone()),
            part: to as u32,
            delay_us: sh.delay_us,
            rate_bps: sh.rate_bps,
        }
    }

    /// Each worker's figures (best effort after a fault: a short wait, none from the dead),
    /// and its deployment reset.
    async fn collect(&mut self, failed: bool, dead: &HashSet<usize>) -> Vec<Option<WorkerStats>> {
        let wait = Duration::from_secs(if failed { 1 } else { 5 });
        let mut stats = Vec::new();
        for i in 0..self.workers.len() {
            let mut s = None;
            if !dead.contains(&i) && self.workers.send(i, &Msg::StatsRequest).await.is_ok() {
                s = self.workers.expect(i, wait, worker_stats).await.ok();
            }
            let _ = self.workers.send(i, &Msg::Reset).await;
            stats.push(s);
        }
        stats
    }
}

fn worker_stats(m: &Msg) -> Option<WorkerStats> {
    match m {
        Msg::Stats {
            peak_rss_kb,
            energy,
            edges,
        } => Some(WorkerStats {
            peak_rss_kb: *peak_rss_kb,
            energy: energy.clone(),
            edges: edges.clone(),
        }),
        _ => None,
    }
}

/// The whole model, run here on `frames` (those verified): their outputs by name.
pub(super) async fn reference_outputs(prep: &Prepared, frames: &[u64]) -> Result<Reference> {
    if frames.is_empty() {
        return Ok(Reference::new());
    }
    let seed = prep.scenario.seed;
    let model = prep.reference_model().clone();
    let frames = frames.to_vec();
    tokio::task::spawn_blocking(move || {
        let onnx = dicesim_plan::onnx::encode_model(&model.static_proto());
        let whole = dicesim_tract::Session::from_onnx_bytes(&onnx)
            .context("loading the whole model for verification")?;
        (frames.into_iter())
            .map(|f| {
                let ins = random_inputs(&model, seed.wrapping_add(f * 1000));
                let outs: HashMap<String, Tensor> = whole.run(&ins)?.into_iter().collect();
                Ok((f, outs))
            })
            .collect()
    })
    .await?
}
