//! Going on after a lost worker (`[adapt] on_device_loss = "replan"`, docs/events.md).
//!
//! The stream ([`super::stream`]) ends a pass when a worker's connection closes or falls
//! silent (a worker's fault about a lost peer waits for that). The devices it served are
//! down; the simulator's re-planning function ([`dicesim_sim::events::replan`], the one
//! `dicesim run` calls, so both choose the same plan) maps the model onto what is left;
//! the workers left drop their deployment, receive only the sub-models they do not hold
//! (by hash, as at the start), and deploy the new plan; the frames that were in flight are
//! sent again, in order. A frame completes once, on its first full set of outputs: a late
//! copy from the lost plan or from the re-run is not delivered twice. The first frames out
//! of each new plan are checked against the whole model like the first frames of the run.
//!
//! With `on_slowdown = "replan"` the stream also watches the transfer times the workers
//! measure ([`super::slow`]); a link found slower than planned by `slowdown_factor` gets
//! its estimated rate in the platform state, and the run re-plans the same way (the workers
//! all live), unless the same plan comes out, when it goes on expecting the new rate.

use super::session::{reference_outputs, Loaded, Placement, Session};
use super::slow::SlowWatch;
use super::stream::{ctrl_c, Outcome, Reference, Streamed, Streamer};
use super::workers::{Ev, Next, Workers};
use super::{HilRun, Prepared, VERIFY_FRAMES};
use crate::proto::Msg;
use crate::report::ReplanM;
use anyhow::{anyhow, bail, Context, Result};
use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;
use dicesim_sim::events::{describe_mapping, OnSlowdown, PlatformState, ReplanReport};
use dicesim_sim::report::r6;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The most re-plans of one run (each loses a device, so a real platform runs out first).
const MAX_REPLANS: usize = 16;

/// How long the workers left get to drop their deployment and say so.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The plan in force: the scenario's at first, a re-plan's after a loss.
pub(super) struct Current<'a> {
    /// Scenario, model and partitions.
    pub prep: Cow<'a, Prepared>,
    /// Which connection runs what.
    pub place: Placement,
    /// What the workers said when they loaded the partitions.
    pub loaded: Vec<Loaded>,
}

/// What the streaming phase leaves.
pub(super) struct Adapted<'a> {
    /// What was measured.
    pub streamed: Streamed,
    /// The plan in force at the end.
    pub current: Current<'a>,
    /// The re-plans, in order.
    pub replans: Vec<ReplanM>,
}

/// What `emulate` tells the coordinator of the events it replays, so that a re-plan's
/// times start at the loss itself rather than at the lost worker's last message.
#[derive(Debug, Default)]
pub struct Replayed {
    /// When frames started streaming: the origin of the events' times.
    pub started: OnceLock<Instant>,
    /// When each device (platform index) was taken down: its worker killed.
    down: Mutex<BTreeMap<usize, Instant>>,
    /// When each link's rate (platform index) last changed.
    changed: Mutex<BTreeMap<usize, Instant>>,
}

impl Replayed {
    /// Device `d` went down at `t`.
    pub fn went_down(&self, d: usize, t: Instant) {
        self.down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(d, t);
    }

    /// Link `l`'s rate changed at `t`.
    pub fn rate_changed(&self, l: usize, t: Instant) {
        (self.changed.lock().unwrap_or_else(|e| e.into_inner())).insert(l, t);
    }

    /// When the first of `devices` went down, if the rig took it down.
    fn down_at(&self, devices: &[usize]) -> Option<Instant> {
        earliest(&self.down, devices)
    }

    /// When the rate of the first of `links` changed, if the rig changed it.
    fn changed_at(&self, links: &[usize]) -> Option<Instant> {
        earliest(&self.changed, links)
    }
}

/// The earliest instant `at` holds for any of `keys`.
fn earliest(at: &Mutex<BTreeMap<usize, Instant>>, keys: &[usize]) -> Option<Instant> {
    let at = at.lock().unwrap_or_else(|e| e.into_inner());
    keys.iter().filter_map(|k| at.get(k).copied()).min()
}

/// A re-plan's instants, for the figures measured after it.
struct Switch {
    /// The event: the loss (or the lost worker's last sign of life), the rate change.
    lost_at: Instant,
}

/// Why the plan must change.
enum Cause {
    /// These connections were lost.
    Lost(Vec<usize>),
    /// These links run at these rates [Mbit/s], slower than planned.
    Slow(Vec<(usize, f64)>),
}

/// What a pass of the stream asks of the run next.
fn cause(outcome: Outcome) -> Option<Cause> {
    match outcome {
        Outcome::Ended => None,
        Outcome::Lost(conns) => Some(Cause::Lost(conns)),
        Outcome::Slow(links) => Some(Cause::Slow(links)),
    }
}

/// Streams the workload on `cur`, re-planning after each lost worker or slow link when the
/// scenario says so; an error return means the verification reference could not be
/// computed.
pub(super) async fn stream<'a>(
    run: &HilRun,
    mut cur: Current<'a>,
    w: &mut Workers,
) -> Result<Adapted<'a>> {
    let first: Vec<u64> = (0..cur.prep.scenario.prep.workload.frames as u64)
        .take(VERIFY_FRAMES as usize)
        .collect();
    let reference = reference_outputs(&cur.prep, &first).await?;
    let mut out = Streamed::new(run, &cur.prep);
    let mut state = PlatformState::initial(&cur.prep.scenario.prep.platform);
    let mut replans: Vec<(ReplanM, Switch)> = Vec::new();
    loop {
        let (o, outcome) = pass(run, &cur, &reference, &state, out, w).await;
        out = o;
        if let Some((r, sw)) = replans.last_mut() {
            let since = |t: Instant| t.saturating_duration_since(sw.lost_at);
            r.recovery_ms = out.cursor.first_exit.map(|t| ms(since(t), run.dilation));
        }
        let Some(cause) = cause(outcome) else {
            break;
        };
        if replans.len() >= MAX_REPLANS {
            out.error = Some(format!("the platform changed after {MAX_REPLANS} re-plans"));
            break;
        }
        match replan(run, &cur, w, &cause, &mut out, &mut state).await {
            Ok(Some((next, rec))) => {
                cur = next;
                replans.push(rec);
            }
            Ok(None) => {}
            Err(e) => {
                out.error = Some(format!("re-planning: {e:#}"));
                break;
            }
        }
    }
    check_after_switch(&cur.prep, &mut out).await?;
    out.finish();
    Ok(Adapted {
        streamed: out,
        current: cur,
        replans: replans.into_iter().map(|(r, _)| r).collect(),
    })
}

/// Streams on `cur` until the run ends or its plan must change; watches transfer times
/// for a slow link when the scenario re-plans on one.
async fn pass(
    run: &HilRun,
    cur: &Current<'_>,
    reference: &Reference,
    state: &PlatformState,
    out: Streamed,
    w: &mut Workers,
) -> (Streamed, Outcome) {
    let prep = &cur.prep;
    let mut pass = Streamer::new(run, prep, &cur.place.part_conn, reference, out);
    if prep.scenario.adapt.on_slowdown == OnSlowdown::Replan {
        pass = pass.watching(SlowWatch::new(prep, state, run.dilation));
    }
    pass.run(w, ctrl_c()).await
}

/// Compares the outputs kept of the first frames after each re-plan with the whole model.
async fn check_after_switch(prep: &Prepared, out: &mut Streamed) -> Result<()> {
    let frames: Vec<u64> = out.captured.keys().copied().collect();
    let reference: Reference = reference_outputs(prep, &frames).await?;
    out.check_captured(&reference);
    Ok(())
}

/// Plans again for the platform as `cause` leaves it, deploys the new plan on the workers
/// left and queues the frames in flight again. None: a slow link changes nothing (the
/// same plan is chosen); the run goes on, expecting the new rates.
async fn replan<'a>(
    run: &HilRun,
    cur: &Current<'_>,
    w: &mut Workers,
    cause: &Cause,
    out: &mut Streamed,
    state: &mut PlatformState,
) -> Result<Option<(Current<'a>, (ReplanM, Switch))>> {
    let detected = Instant::now();
    let (lost_at, reason) = match cause {
        Cause::Lost(conns) => take_loss(run, cur, w, conns, out, state),
        Cause::Slow(links) => take_slowdown(run, &cur.prep, links, state),
    };
    let lost_at = lost_at.unwrap_or(detected).min(detected);
    let t_plan = Instant::now();
    let next = replanned(run, &cur.prep, state)?;
    let plan_time = t_plan.elapsed();
    if next.scenario.mapping == cur.prep.scenario.mapping {
        if let Cause::Slow(_) = cause {
            return Ok(None);
        }
    }
    let t_deploy = Instant::now();
    let (place, loaded) = deploy(run, &next, w).await?;
    let deploy_time = t_deploy.elapsed();
    let rerun = out.rerun_in_flight(next.plan.partitions.len());
    out.verify_after_switch(&rerun);
    let dil = run.dilation;
    let replan = ReplanReport {
        at_ms: ms(lost_at.saturating_duration_since(out.t_start), dil),
        reason,
        mapping_before: describe_mapping(&cur.prep.model.graph, &cur.prep.scenario.mapping),
        mapping_after: describe_mapping(&next.model.graph, &next.scenario.mapping),
        detect_ms: ms(detected.saturating_duration_since(lost_at), dil),
        plan_ms: ms(plan_time, dil),
        deploy_ms: ms(deploy_time, dil),
        frames_rerun: rerun.len() as u32,
    };
    let rec = ReplanM {
        replan,
        recovery_ms: None,
    };
    let next = Current {
        prep: Cow::Owned(next),
        place,
        loaded,
    };
    Ok(Some((next, (rec, Switch { lost_at }))))
}

/// A loss: its devices down in `state`, its connections given up. Returns when it
/// happened (the rig's kill time, else the lost workers' last message) and the reason.
fn take_loss(
    run: &HilRun,
    cur: &Current,
    w: &mut Workers,
    conns: &[usize],
    out: &Streamed,
    state: &mut PlatformState,
) -> (Option<Instant>, String) {
    let devices: Vec<usize> = (cur.place.dev_conn.iter())
        .filter(|(_, c)| conns.contains(c))
        .map(|(&d, _)| d)
        .collect();
    let heard = (conns.iter())
        .filter_map(|c| out.cursor.last_heard.get(c).copied())
        .max();
    let at = run.replayed.down_at(&devices).or(heard);
    let reason = lost_reason(cur, w, conns);
    state.down.extend(devices);
    conns.iter().for_each(|&c| w.mark_dead(c));
    (at, reason)
}

/// A slowdown: the links' estimated rates in `state`. Returns when the rig changed the
/// first of them (None outside the rig) and the reason.
fn take_slowdown(
    run: &HilRun,
    prep: &Prepared,
    links: &[(usize, f64)],
    state: &mut PlatformState,
) -> (Option<Instant>, String) {
    let pf = &prep.scenario.prep.platform;
    let mut words = Vec::new();
    for &(l, mbps) in links {
        let planned = state.bandwidth_mbps[l];
        words.push(format!(
            "link {} at {} Mbit/s (planned {planned})",
            pf.links[l].name,
            r6(mbps)
        ));
        state.bandwidth_mbps[l] = mbps;
    }
    let ids: Vec<usize> = links.iter().map(|&(l, _)| l).collect();
    (run.replayed.changed_at(&ids), words.join(", "))
}

/// `d` in platform milliseconds (host time / dilation), rounded like every report figure.
fn ms(d: Duration, dilation: f64) -> f64 {
    r6(d.as_secs_f64() * 1e3 / dilation)
}

/// "device c down (worker ADDR lost)", for each device of the lost connections (the
/// simulator says "device c down").
fn lost_reason(cur: &Current, w: &Workers, conns: &[usize]) -> String {
    let pf = &cur.prep.scenario.prep.platform;
    let lost: Vec<String> = (cur.place.dev_conn.iter())
        .filter(|(_, c)| conns.contains(c))
        .map(|(&d, &c)| (d, c))
        .collect::<BTreeMap<usize, usize>>()
        .into_iter()
        .map(|(d, c)| {
            format!(
                "device {} down (worker {} lost)",
                pf.devices[d].name,
                w.addr(c)
            )
        })
        .collect();
    lost.join(", ")
}

/// The plan chosen for the platform as `state` leaves it, by the simulator's re-planning
/// function. Devices without a worker in `[hil]` count as down (they cannot run anything).
fn replanned(run: &HilRun, prep: &Prepared, state: &PlatformState) -> Result<Prepared> {
    let pf = &prep.scenario.prep.platform;
    let mut state = state.clone();
    for (d, dev) in pf.devices.iter().enumerate() {
        if !run.workers.contains_key(&dev.name) {
            state.down.insert(d);
        }
    }
    let mapping =
        dicesim_sim::events::replan(&prep.scenario, &state).context("choosing a new mapping")?;
    with_mapping(prep, mapping)
}

/// `prep` with `mapping`: the model partitioned again, each partition placed.
fn with_mapping(prep: &Prepared, mapping: Mapping) -> Result<Prepared> {
    let plan = Plan::build(&prep.model.graph, &mapping).context("partitioning the new mapping")?;
    let pf = &prep.scenario.prep.platform;
    let part_place = (plan.partitions.iter())
        .map(|p| {
            crate::cores::resolve(pf, &p.unit)
                .ok_or_else(|| anyhow!("unit {} is not in the platform", p.unit))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut next = prep.clone();
    next.scenario.mapping = mapping;
    next.plan = plan;
    next.part_device = part_place.iter().map(|p| p.device).collect();
    next.part_place = part_place;
    Ok(next)
}

/// Clears the workers left, ships what they lack and deploys `next` on them.
async fn deploy(
    run: &HilRun,
    next: &Prepared,
    w: &mut Workers,
) -> Result<(Placement, Vec<Loaded>)> {
    settle(w).await?;
    let place = placement(run, next, w).await?;
    let mut s = Session {
        run,
        prep: next,
        place,
        workers: w,
    };
    let hashes = s.ship().await.context("shipping the new sub-models")?;
    let loaded = s.deploy(&hashes).await.context("deploying the new plan")?;
    Ok((s.place, loaded))
}

/// Every live worker drops its deployment; its `Stats` answer, sent after the `Reset`,
/// shows that everything the old deployment sent before has arrived (faults about the lost
/// peer included, which are dropped here).
async fn settle(w: &mut Workers) -> Result<()> {
    let live: Vec<usize> = (0..w.len()).filter(|&i| !w.is_dead(i)).collect();
    for &i in &live {
        w.send(i, &Msg::Reset).await?;
        w.send(i, &Msg::StatsRequest).await?;
    }
    let mut waiting: Vec<usize> = live;
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while !waiting.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        match w.next(left).await {
            Next::Event(Ev::Msg(i, r)) if matches!(r.msg, Msg::Stats { .. }) => {
                waiting.retain(|&j| j != i);
            }
            Next::Event(Ev::Msg(..)) => {}
            Next::Event(Ev::Lost(i, e)) => bail!("lost worker {} as well: {e}", w.addr(i)),
            Next::Closed => bail!("all worker connections closed"),
            Next::TimedOut => bail!("workers {waiting:?} did not drop their deployment in time"),
        }
    }
    Ok(())
}

/// Where `next` runs: each device's worker, on its live connection, or a new one for a
/// device the lost plan did not use.
async fn placement(run: &HilRun, next: &Prepared, w: &mut Workers) -> Result<Placement> {
    let pf = &next.scenario.prep.platform;
    let mut conn_of: HashMap<String, usize> = HashMap::new();
    for i in (0..w.len()).filter(|&i| !w.is_dead(i)) {
        conn_of.insert(w.addr(i).to_string(), i);
    }
    let mut place = Placement {
        addrs: Vec::new(),
        dev_conn: HashMap::new(),
        part_conn: Vec::new(),
    };
    for &d in &next.part_device {
        let name = &pf.devices[d].name;
        let addr = (run.workers.get(name))
            .ok_or_else(|| anyhow!("no worker address for device '{name}'"))?;
        let c = match conn_of.get(addr) {
            Some(&c) => c,
            None => w.add(addr, &run.token).await?,
        };
        conn_of.insert(addr.clone(), c);
        place.dev_conn.entry(d).or_insert(c);
        place.part_conn.push(place.dev_conn[&d]);
    }
    place.addrs = (0..w.len()).map(|i| w.addr(i).to_string()).collect();
    Ok(place)
}
