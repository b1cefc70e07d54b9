//! `dicesim run` of a scenario with platform events (`docs/events.md`): the run is a chain
//! of segments, one per plan. Each segment is one engine run of the frames not yet
//! completed, resumed at the segment's start; link rate changes happen inside it (the
//! engine re-shares the flows in progress). A device loss, or a slowdown the coordinator
//! would notice, ends the segment: with `fail` the frames not completed fail; with
//! `replan` a new plan is chosen with [`crate::events::replan`] (the coordinator's own
//! function), deployed, and the frames in flight are run again in the next segment, so
//! every frame completes exactly once.

use std::collections::BTreeSet;

use dicesim_plan::mapping::Mapping;
use dicesim_plan::partition::Plan;

use crate::engine::{Engine, Outcome};
use crate::error::SimError;
use crate::events::{
    self, describe_mapping, Action, OnDeviceLoss, OnSlowdown, PlatformState, ReplanReport,
};
use crate::kernel::Time;
use crate::prepared::{PreparedScenario, SimPlan, Workload};
use crate::report::{r6, Report};
use crate::scenario::{RunOptions, Scenario, ScenarioRun};

/// ms -> ns.
fn ns(ms: f64) -> Time {
    (ms * 1e6).round() as Time
}

/// ns -> ms, as reports round.
fn ms(ns: Time) -> f64 {
    r6(ns as f64 / 1e6)
}

/// The platform after every event at or before `t` [ns].
pub fn state_at(sc: &Scenario, t: Time) -> PlatformState {
    let mut s = PlatformState::initial(&sc.prep.platform);
    for e in sc.events.iter().filter(|e| ns(e.at_ms) <= t) {
        s.apply(&e.action);
    }
    s
}

/// One plan's share of the run.
#[derive(Debug, Clone)]
struct Segment {
    /// When it starts [ns].
    start: Time,
    /// The frames it runs (global numbers, ascending).
    frames: Vec<u32>,
    /// Its mapping.
    mapping: Mapping,
    /// The link rates the mapping was planned for.
    planned: Vec<f64>,
}

/// The events that can end a segment: the first loss of a device its plan uses, and the
/// first slowdown of a link it uses (event index, time [ns, segment time], link).
#[derive(Debug, Clone, Copy, Default)]
struct Triggers {
    loss: Option<(usize, Time)>,
    slow: Option<(usize, Time, usize)>,
}

/// The frames of a whole run, stitched from its segments.
struct Stitch<'s> {
    sc: &'s Scenario,
    entry: Vec<Option<Time>>,
    exit: Vec<Option<Time>>,
    total: Outcome,
    // (device, layers) of the sub-models each device holds
    cache: BTreeSet<(usize, Vec<usize>)>,
    handled: BTreeSet<usize>,
    replans: Vec<ReplanReport>,
    first: bool,
}

/// Simulates `sc` with its events (see the module's doc). Segments always record their
/// jobs and transfers (slowdown detection reads the transfers), so the options change
/// nothing; the first segment's records are kept.
pub(crate) fn run_with_events(sc: Scenario, _opts: RunOptions) -> Result<ScenarioRun, SimError> {
    let plan0 = sim_plan(&sc.prep, &sc.mapping, &sc)?;
    let mut st = Stitch::new(&sc, &plan0);
    let mut seg = Some(Segment {
        start: 0,
        frames: (0..sc.prep.workload.frames).collect(),
        mapping: sc.mapping.clone(),
        planned: PlatformState::initial(&sc.prep.platform).bandwidth_mbps,
    });
    while let Some(s) = seg {
        seg = st.run_segment(&s)?;
    }
    let (outcome, report) = st.report(&plan0)?;
    Ok(ScenarioRun {
        scenario: sc,
        plan: plan0,
        outcome,
        report,
    })
}

/// The engine's plan of `mapping` on `prep`.
fn sim_plan(
    prep: &PreparedScenario,
    mapping: &Mapping,
    sc: &Scenario,
) -> Result<SimPlan, SimError> {
    prep.assignment(mapping)?;
    let plan = Plan::build(&prep.graph, mapping).map_err(|error| SimError::Plan {
        path: sc.path.clone(),
        error,
    })?;
    prep.sim_plan_from(&plan)
}

/// Devices and links a plan uses.
fn used(prep: &PreparedScenario, plan: &SimPlan) -> (BTreeSet<usize>, BTreeSet<usize>) {
    let p = &prep.platform;
    let dev = |part: usize| p.units[plan.parts[part].unit].device;
    let devices = (0..plan.parts.len()).map(dev).collect();
    let mut links = BTreeSet::new();
    for c in &plan.conns {
        if let Some(r) = prep.network.route(dev(c.from), dev(c.to)) {
            links.extend(r.links.iter().copied());
        }
    }
    (devices, links)
}

impl<'s> Stitch<'s> {
    fn new(sc: &'s Scenario, plan0: &SimPlan) -> Self {
        let p = &sc.prep.platform;
        let n = sc.prep.workload.frames as usize;
        let mut st = Stitch {
            sc,
            entry: vec![None; n],
            exit: vec![None; n],
            total: Outcome::default(),
            cache: BTreeSet::new(),
            handled: BTreeSet::new(),
            replans: Vec::new(),
            first: true,
        };
        st.total.unit_busy_ns = vec![0; p.units.len()];
        st.total.device_busy_ns = vec![0; p.devices.len()];
        st.total.device_energy_j = vec![0.0; p.devices.len()];
        st.total.link_bytes = vec![0; p.links.len()];
        st.total.link_busy_ns = vec![0; p.links.len()];
        st.total.link_energy_j = vec![0.0; p.links.len()];
        st.total.part_busy_ns = vec![0; plan0.parts.len()];
        st.hold(&sc.prep, plan0);
        st
    }

    /// The devices of `plan` now hold its sub-models.
    fn hold(&mut self, prep: &PreparedScenario, plan: &SimPlan) {
        for part in &plan.parts {
            let d = prep.platform.units[part.unit].device;
            self.cache.insert((d, part.layers.clone()));
        }
    }

    /// Runs segment `seg` until its frames are done or an event ends it; returns the next
    /// segment, if any.
    fn run_segment(&mut self, seg: &Segment) -> Result<Option<Segment>, SimError> {
        let sc = self.sc;
        let prep = state_at(sc, seg.start).prepared(&sc.prep);
        let plan = sim_plan(&prep, &seg.mapping, sc)?;
        let workload = Workload {
            frames: seg.frames.len() as u32,
            ..prep.workload
        };
        let target = crate::engine::Target {
            workload,
            ..prep.target()
        };
        let mut eng = Engine::new(target, &plan, true)?;
        let period = prep.workload.period_ns as i64;
        eng.set_arrival_offset(seg.frames[0] as i64 * period - seg.start as i64);
        for e in &sc.events {
            if let Action::Bandwidth { link, mbps } = e.action {
                if ns(e.at_ms) > seg.start {
                    eng.schedule_rate(ns(e.at_ms) - seg.start, link, mbps);
                }
            }
        }
        let triggers = self.triggers(seg, &prep, &plan);
        eng.start();
        self.drive(seg, eng, triggers)
    }

    /// The earliest events (not yet handled) that end a segment of `plan`: a device it
    /// uses going down, and (with `on_slowdown = "replan"`) a link it uses falling below its
    /// planned rate / factor; one that happened before the segment started and still holds
    /// counts at the start.
    fn triggers(&self, seg: &Segment, prep: &PreparedScenario, plan: &SimPlan) -> Triggers {
        let sc = self.sc;
        let (devices, links) = used(prep, plan);
        let now = state_at(sc, seg.start);
        let factor = sc.adapt.slowdown_factor;
        let watch = sc.adapt.on_slowdown == OnSlowdown::Replan;
        let slow =
            |l: usize, mbps: f64| watch && links.contains(&l) && mbps < seg.planned[l] / factor;
        let mut t = Triggers::default();
        for (i, e) in sc.events.iter().enumerate() {
            let at = ns(e.at_ms);
            if self.handled.contains(&i) {
                continue;
            }
            let (past, rel) = (at < seg.start, at.saturating_sub(seg.start));
            match e.action {
                Action::Down { device }
                    if devices.contains(&device)
                        && t.loss.is_none()
                        && (!past || now.down.contains(&device)) =>
                {
                    t.loss = Some((i, rel));
                }
                Action::Bandwidth { link, mbps }
                    if slow(link, mbps)
                        && t.slow.is_none()
                        && (!past || slow(link, now.bandwidth_mbps[link])) =>
                {
                    t.slow = Some((i, rel, link));
                }
                _ => {}
            }
        }
        t
    }

    /// Steps the engine until the segment's frames are done, its trigger ends it, or (a
    /// slowdown) the new plan is deployed.
    fn drive(
        &mut self,
        seg: &Segment,
        mut eng: Engine<'_>,
        trig: Triggers,
    ) -> Result<Option<Segment>, SimError> {
        let mut seen = 0;
        let mut counted = 0;
        let mut switch: Option<(Time, Replanned)> = None;
        while let Some(t) = eng.next_time() {
            if let Some((i, at)) = trig.loss {
                if t > at {
                    return self.on_loss(seg, eng, i, at);
                }
            }
            if let Some((at, _)) = &switch {
                if t > *at {
                    let (at, r) = switch.take().expect("checked");
                    return self.next(seg, eng, at, at, r);
                }
            }
            eng.step();
            if let (Some((i, at, link)), None) = (trig.slow, &switch) {
                let tr = &eng.outcome().transfers[seen..];
                seen += tr.len();
                counted += tr
                    .iter()
                    .filter(|x| x.end >= at && x.links.contains(&link))
                    .count();
                if counted >= events::SLOWDOWN_DETECT_FRAMES as usize {
                    let r = self.replan(seg, i, at, t)?;
                    switch = Some((t + r.plan_ns + r.deploy_ns, r));
                }
            }
        }
        if let Some((_, r)) = switch {
            // decided, but the old plan served every frame before the new one was deployed
            self.replans.push(ReplanReport {
                reason: format!("{} (not deployed: the run ended first)", r.report.reason),
                ..r.report
            });
        }
        self.finish(seg, eng)?;
        Ok(None)
    }

    /// A device of the plan went down at `at`: the frames not completed then fail, or are
    /// run again on a new plan.
    fn on_loss(
        &mut self,
        seg: &Segment,
        eng: Engine<'_>,
        i: usize,
        at: Time,
    ) -> Result<Option<Segment>, SimError> {
        if self.sc.adapt.on_device_loss == OnDeviceLoss::Fail {
            self.absorb(seg, eng, at);
            return Ok(None);
        }
        let detected = at + ns(events::LOSS_DETECT_MS);
        let r = self.replan(seg, i, at, detected)?;
        let resume = detected + r.plan_ns + r.deploy_ns;
        self.next(seg, eng, at, resume, r)
    }

    /// Ends `seg` at `cut`, records the re-plan, and returns the segment of the new plan
    /// that starts at `resume` (both segment times) with the frames not completed.
    fn next(
        &mut self,
        seg: &Segment,
        eng: Engine<'_>,
        cut: Time,
        resume: Time,
        r: Replanned,
    ) -> Result<Option<Segment>, SimError> {
        let (rerun, left) = self.absorb(seg, eng, cut);
        self.idle_gap(seg.start + cut, seg.start + resume, &r.state);
        self.replans.push(ReplanReport {
            frames_rerun: rerun,
            ..r.report
        });
        self.hold(&r.prep, &r.plan);
        if left.is_empty() {
            return Ok(None);
        }
        Ok(Some(Segment {
            start: seg.start + resume,
            frames: left,
            mapping: r.mapping,
            planned: r.state.bandwidth_mbps,
        }))
    }
}

/// A new plan, chosen at detection.
struct Replanned {
    mapping: Mapping,
    prep: PreparedScenario,
    plan: SimPlan,
    state: PlatformState,
    plan_ns: Time,
    deploy_ns: Time,
    report: ReplanReport,
}

impl Stitch<'_> {
    /// The new plan for the platform as it is at `detected` (segment time), after event
    /// `i` at `at`.
    fn replan(
        &mut self,
        seg: &Segment,
        i: usize,
        at: Time,
        detected: Time,
    ) -> Result<Replanned, SimError> {
        let sc = self.sc;
        self.handled.insert(i);
        let state = state_at(sc, seg.start + detected);
        let mapping = events::replan(sc, &state)
            .map_err(|e| SimError::Mapping(format!("re-plan at {} ms: {e}", sc.events[i].at_ms)))?;
        let prep = state.prepared(&sc.prep);
        let plan = sim_plan(&prep, &mapping, sc)?;
        self.cache.retain(|(d, _)| !state.down.contains(d));
        let deploy_ns = self.deploy_ns(&prep, &plan, &state);
        let plan_ns = ns(events::plan_ms(&sc.adapt));
        let e = &sc.events[i];
        let mut reason = e.describe(&sc.prep.platform);
        if let Action::Bandwidth { link, .. } = e.action {
            reason += &format!(" (planned {})", seg.planned[link]);
        }
        let report = ReplanReport {
            at_ms: e.at_ms,
            reason,
            mapping_before: describe_mapping(&sc.prep.graph, &seg.mapping),
            mapping_after: describe_mapping(&sc.prep.graph, &mapping),
            detect_ms: ms(detected - at),
            plan_ms: ms(plan_ns),
            deploy_ms: ms(deploy_ns),
            frames_rerun: 0,
        };
        Ok(Replanned {
            mapping,
            prep,
            plan,
            state,
            plan_ns,
            deploy_ns,
            report,
        })
    }

    /// Time to ship the sub-models of `plan` that their devices do not hold: each device
    /// receives its missing weights over its slowest link at the current rate (latency
    /// included), all devices at once.
    fn deploy_ns(&self, prep: &PreparedScenario, plan: &SimPlan, state: &PlatformState) -> Time {
        let p = &prep.platform;
        let mut bytes = vec![0u64; p.devices.len()];
        for part in &plan.parts {
            let d = p.units[part.unit].device;
            if !self.cache.contains(&(d, part.layers.clone())) {
                bytes[d] += part
                    .layers
                    .iter()
                    .map(|&l| prep.graph.layers[l].params_bytes)
                    .sum::<u64>();
            }
        }
        let mut worst = 0;
        for (d, &b) in bytes.iter().enumerate().filter(|(_, &b)| b > 0) {
            let access = (p.links.iter().enumerate())
                .filter(|(_, l)| l.ends.contains(&d))
                .min_by(|a, b| state.bandwidth_mbps[a.0].total_cmp(&state.bandwidth_mbps[b.0]));
            if let Some((l, link)) = access {
                let rate = state.bandwidth_mbps[l] * 1e6 / 8.0 / 1e9;
                let t = ns(link.latency_us / 1e3) + (b as f64 / rate).ceil() as Time;
                worst = worst.max(t);
            }
        }
        worst
    }

    /// Devices up idle from `from` to `to` (global ns) while the new plan is made ready.
    fn idle_gap(&mut self, from: Time, to: Time, state: &PlatformState) {
        let secs = to.saturating_sub(from) as f64 * 1e-9;
        for (d, dev) in self.sc.prep.platform.devices.iter().enumerate() {
            if !state.down.contains(&d) {
                self.total.device_energy_j[d] += dev.idle_w * secs;
            }
        }
    }

    /// Adds a segment stopped at `cut` (segment time): its frames completed by then, its
    /// busy times, bytes and energy. Returns the frames run again (in flight at the cut) and
    /// the frames not completed.
    fn absorb(&mut self, seg: &Segment, eng: Engine<'_>, cut: Time) -> (u32, Vec<u32>) {
        let done: Vec<bool> = (0..seg.frames.len()).map(|k| eng.completed(k)).collect();
        let out = eng.cut(cut);
        self.add(seg, &out, &done)
    }

    /// Adds the last segment, run to its end.
    fn finish(&mut self, seg: &Segment, eng: Engine<'_>) -> Result<(), SimError> {
        let out = eng.finish()?;
        let done = vec![true; seg.frames.len()];
        self.add(seg, &out, &done);
        Ok(())
    }

    /// Adds a segment's outcome (`done[k]`: its frame `k` completed).
    fn add(&mut self, seg: &Segment, out: &Outcome, done: &[bool]) -> (u32, Vec<u32>) {
        let (mut rerun, mut left) = (0, Vec::new());
        for (k, &g) in seg.frames.iter().enumerate() {
            let g = g as usize;
            let entered = out.entry_ns[k] != Time::MAX;
            if entered && self.entry[g].is_none() {
                self.entry[g] = Some(seg.start + out.entry_ns[k]);
            }
            if done[k] {
                self.exit[g] = Some(seg.start + out.exit_ns[k]);
            } else {
                rerun += u32::from(entered);
                left.push(g as u32);
            }
        }
        self.add_totals(seg, out);
        (rerun, left)
    }

    /// Sums a segment's busy times, bytes and energy; keeps the first segment's records.
    fn add_totals(&mut self, seg: &Segment, out: &Outcome) {
        let t = &mut self.total;
        let add = |a: &mut Vec<Time>, b: &[Time]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut t.unit_busy_ns, &out.unit_busy_ns);
        add(&mut t.device_busy_ns, &out.device_busy_ns);
        add(&mut t.link_busy_ns, &out.link_busy_ns);
        t.link_bytes
            .iter_mut()
            .zip(&out.link_bytes)
            .for_each(|(x, y)| *x += y);
        let addf = |a: &mut Vec<f64>, b: &[f64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        addf(&mut t.device_energy_j, &out.device_energy_j);
        // the engine meters every device; one that was down all along drew nothing
        let secs = out.makespan_ns as f64 * 1e-9;
        let sc = self.sc;
        for d in state_at(sc, seg.start).down {
            t.device_energy_j[d] -= sc.prep.platform.devices[d].idle_w * secs;
        }
        addf(&mut t.link_energy_j, &out.link_energy_j);
        if self.first && seg.start == 0 {
            t.part_busy_ns = out.part_busy_ns.clone();
            t.jobs = out.jobs.clone();
            t.transfers = out.transfers.clone();
        }
        self.first = false;
    }

    /// The stitched outcome (completed frames only) and the report.
    fn report(mut self, plan0: &SimPlan) -> Result<(Outcome, Report), SimError> {
        let sc = self.sc;
        let mut out = std::mem::take(&mut self.total);
        for (e, x) in self.entry.iter().zip(&self.exit) {
            if let (Some(e), Some(x)) = (e, x) {
                out.entry_ns.push(*e);
                out.exit_ns.push(*x);
            }
        }
        out.makespan_ns = out.exit_ns.iter().copied().max().unwrap_or(0);
        let objectives = sc.prep.objectives(plan0)?;
        let mut report = Report::new(
            &sc.name,
            sc.strategy.name(),
            &sc.prep,
            plan0,
            &out,
            &objectives,
        );
        let n = sc.prep.workload.frames;
        report.frames = n;
        report.failed_frames = Some(n - out.exit_ns.len() as u32);
        report.replans = Some(self.replans);
        Ok((out, report))
    }
}

/// What `explore` needs to score a mapping by its p95 latency under the scenario's events
/// (`[adapt] explore_latency = "events_p95"`).
#[derive(Debug, Clone)]
pub(crate) struct Robust {
    /// The scenario, its units restricted to the search's (whole) units.
    scenario: Scenario,
}

impl Robust {
    /// `prep` (the search's) with the scoring attached, when `sc` asks for it and has events.
    pub(crate) fn attach(
        sc: &Scenario,
        prep: &PreparedScenario,
        units: &[usize],
    ) -> Option<PreparedScenario> {
        if sc.events.is_empty() || sc.adapt.explore_latency != events::ExploreLatency::EventsP95 {
            return None;
        }
        let mut scenario = sc.clone();
        let names = units
            .iter()
            .map(|&u| sc.prep.platform.units[u].full_name.clone());
        scenario.units = Some(names.collect());
        let mut p = prep.clone();
        p.robust = Some(std::sync::Arc::new(Robust { scenario }));
        Some(p)
    }

    /// The p95 latency [ns] of `assign` run with the events, and the share of frames lost.
    fn score(&self, prep: &PreparedScenario, assign: &[usize]) -> Result<(Time, f64), SimError> {
        let mut sc = self.scenario.clone();
        sc.prep = prep.clone();
        sc.prep.robust = None;
        sc.mapping = crate::strategy::mapping_from_assignment(prep, assign);
        let run = run_with_events(sc, RunOptions::default())?;
        let s = dicesim_stats::Summary::of(&run.outcome.latencies_ns()).unwrap_or_default();
        let frames = f64::from(run.report.frames.max(1));
        let lost = f64::from(run.report.failed_frames.unwrap_or(0)) / frames;
        Ok((s.p95, lost))
    }
}

/// `o` with its latency replaced by the p95 under the events when the search scores by it
/// (see [`Robust`]), and the share of frames the mapping then loses (0 otherwise).
pub(crate) fn with_events(
    prep: &PreparedScenario,
    assign: &[usize],
    mut o: crate::prepared::Objectives,
) -> Result<(crate::prepared::Objectives, f64), SimError> {
    let Some(r) = &prep.robust else {
        return Ok((o, 0.0));
    };
    let (p95, lost) = r.score(prep, assign)?;
    o.latency_ns = p95;
    Ok((o, lost))
}
