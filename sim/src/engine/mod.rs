//! The execution model: frames flowing through partitions on compute units, tensors flowing
//! over the network, power integrated at every state change.
//!
//! Semantics (docs/simulator.md has the full model):
//! - a partition runs its layers as one job per frame, frames in order, one at a time;
//! - a unit runs one job at a time without preemption; when it becomes free it takes, among
//!   the jobs whose inputs are all there, the one with the smallest (frame, partition), so a
//!   unit shared by several partitions serves them in frame order;
//! - a partition's outputs leave when the job ends; every (producer, consumer) pair of
//!   partitions is one connection whose per-frame transfers go one after another in frame
//!   order: latency of the route once, then a flow under the sharing model (max-min); between
//!   two units of one device a transfer is a memory copy at the device's copy bandwidth;
//!   within one unit it is free;
//! - frame inputs are present on the units of the partitions that read them; with a period
//!   frame `f` is available at `f * period`, with period 0 all frames are available at once
//!   and each enters as soon as its first partition can take it;
//! - a frame's latency runs from the start of its first job to the end of its last one (from
//!   its admission when the workload has a window).
//!
//! [`Engine`] holds the state of one run and has one method per kind of event: admission
//! ([`Engine::on_arrive`], `admit`), job start (`try_start`), job finish (`on_job_done`),
//! flow start (`on_latency_done`), flow finish (`on_flow_done`), re-share (`reshare`) and
//! a link's rate change (`on_rate`, in `events.rs` with the other pieces a run with platform
//! events needs).
//! The engine imports the kernel, the platform, the network's routes and the sharing model;
//! nothing that reads files or builds plans.

mod events;
mod memory;
mod outcome;
mod plan;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

pub use outcome::{JobRecord, Outcome, TransferRecord};
pub use plan::{SimConn, SimPart, SimPlan, Window, Workload, DEFAULT_WINDOW};

use crate::error::SimError;
use crate::kernel::{Clock, EventQueue, Time, TimerId};
use crate::network::{Network, Route};
use crate::platform::Platform;
use crate::sharing::{MaxMinSharing, SharingModel};
use memory::Memory;
use outcome::PowerMeter;

/// What a run simulates on: the platform, its network routes and the workload.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Devices, units and links.
    pub platform: &'a Platform,
    /// Resources and routes of the platform's network.
    pub network: &'a Network,
    /// How frames enter.
    pub workload: Workload,
}

#[derive(Debug, Clone, Copy)]
enum Event {
    /// Frame arrives (periodic workloads).
    Arrive(u32),
    /// The job running on a unit ends.
    JobDone(u32),
    /// (connection, frame): the route's latency is paid, the flow starts.
    LatencyDone(u32, u32),
    /// (connection, frame): a copy between two units of one device ends.
    CopyDone(u32, u32),
    /// The sharing model's next flow drains.
    FlowDone,
    /// The memory system's next job drains.
    MemDone,
    /// A link's rate changes (index into `Engine::rates`; see `events.rs`).
    Rate(u32),
}

#[derive(Debug, Clone, Copy)]
enum ConnKind<'a> {
    /// Producer and consumer on one unit: delivered at once.
    Local,
    /// Two units of one device: a copy taking this long.
    Copy(Time),
    /// Two devices: over this route.
    Net(&'a Route),
}

/// Frame admission: how many events each frame still waits for before it enters, and how
/// many of its partitions have run.
struct Admission {
    frames: usize,
    saturate: bool,
    window: Option<usize>,
    // admit_left[f] (with a window): events still missing before frame f is admitted (its
    // arrival unless saturating, and the completion of frame f - window)
    admit_left: Vec<u32>,
    parts_done: Vec<u32>,
}

impl Admission {
    fn new(w: &Workload, partitions: usize) -> Self {
        let frames = w.frames as usize;
        let saturate = w.period_ns == 0;
        let window = w.window.frames(partitions);
        let admit_left = match window {
            Some(w) => (0..frames)
                .map(|f| u32::from(!saturate) + u32::from(f >= w))
                .collect(),
            None => Vec::new(),
        };
        Admission {
            frames,
            saturate,
            window,
            admit_left,
            parts_done: vec![0; frames],
        }
    }

    /// Whether frame `f`'s source partitions wait for an admission event.
    fn waits_for_admission(&self, f: usize) -> bool {
        match self.window {
            Some(_) => self.admit_left[f] > 0,
            None => !self.saturate,
        }
    }

    /// One of frame `f`'s admission events happened; true when it is now admitted.
    fn count_down(&mut self, f: usize) -> bool {
        self.admit_left[f] -= 1;
        self.admit_left[f] == 0
    }
}

/// Compute units: jobs ready on each, the job running, the cores in use, busy devices and
/// power. A unit that is a core set of a CPU (see `Platform::resolve_unit`) runs one job at a
/// time like any unit, and only while none of its cores is used by another core set.
struct Units {
    ready: Vec<BinaryHeap<Reverse<(u32, u32)>>>,
    // (frame, partition, start)
    running: Vec<Option<(u32, u32, Time)>>,
    // busy_cores[parent]: cores of physical unit `parent` in use
    busy_cores: Vec<u64>,
    // siblings[parent]: the plan's units that are core sets of `parent` (or `parent` itself),
    // when there are two or more
    siblings: Vec<Vec<u32>>,
    dev_running: Vec<u32>,
    dev_busy_since: Vec<Time>,
    meters: Vec<PowerMeter>,
}

/// Connections between partitions: frames produced, the next one to send, whether one is
/// in transfer and since when.
struct Conns<'a> {
    kind: Vec<ConnKind<'a>>,
    out: Vec<Vec<u32>>,
    produced: Vec<u32>,
    next_send: Vec<u32>,
    busy: Vec<bool>,
    start: Vec<Time>,
}

/// Per link: flows active on it and since when it carries one.
struct Links {
    active: Vec<u32>,
    since: Vec<Time>,
}

/// One simulation run of a plan on a target.
pub struct Engine<'a, S: SharingModel<'a> = MaxMinSharing<'a>> {
    target: Target<'a>,
    plan: &'a SimPlan,
    record: bool,
    queue: EventQueue<Event>,
    admission: Admission,
    // pending[f * parts + p]: inputs job (f, p) still misses (connections, the frame's
    // admission for a source partition, and the partition's previous frame)
    pending: Vec<u32>,
    units: Units,
    conns: Conns<'a>,
    links: Links,
    sharing: S,
    // the sharing model's next completion (FlowDone)
    flow_timer: TimerId,
    // (connection, frame) deliveries still to process after an event
    deliveries: Vec<(u32, u32)>,
    drained: Vec<u64>,
    memory: Memory<'a>,
    out: Outcome,
    // (link, capacity in bytes/ns) of each scheduled rate change
    rates: Vec<(usize, f64)>,
    // frame f arrives at max(0, f * period + arrival_offset) (a run resumed mid-stream)
    arrival_offset: i64,
}

impl<'a> Engine<'a> {
    /// A run of `plan` on `target` with max-min sharing of the network; `record` keeps every
    /// job and transfer. Fails when two communicating devices have no route.
    pub fn new(target: Target<'a>, plan: &'a SimPlan, record: bool) -> Result<Self, SimError> {
        let capacity = target
            .network
            .resources
            .iter()
            .map(|r| r.capacity)
            .collect();
        Engine::with_sharing(target, plan, record, MaxMinSharing::new(capacity))
    }
}

impl<'a, S: SharingModel<'a>> Engine<'a, S> {
    /// A run with the given sharing model over the network's resources.
    pub fn with_sharing(
        target: Target<'a>,
        plan: &'a SimPlan,
        record: bool,
        sharing: S,
    ) -> Result<Self, SimError> {
        let p = target.platform;
        let np = plan.parts.len();
        let admission = Admission::new(&target.workload, np);
        let mut queue = EventQueue::new();
        let (flow_timer, memory_timer) = (queue.timer(), queue.timer());
        let mut engine = Engine {
            target,
            plan,
            record,
            queue,
            pending: Vec::new(),
            units: Units::new(p, plan),
            memory: Memory::new(p, &target.network.memory, plan, memory_timer),
            conns: Conns::new(target, plan)?,
            links: Links {
                active: vec![0; p.links.len()],
                since: vec![0; p.links.len()],
            },
            sharing,
            flow_timer,
            deliveries: Vec::new(),
            drained: Vec::new(),
            out: Outcome::sized(
                admission.frames,
                p.units.len(),
                p.devices.len(),
                p.links.len(),
                np,
            ),
            admission,
            rates: Vec::new(),
            arrival_offset: 0,
        };
        engine.init_pending();
        Ok(engine)
    }

    /// Runs to the end; `clock` paces simulated time. Fails when frames never complete.
    pub fn run<C: Clock + ?Sized>(mut self, clock: &mut C) -> Result<Outcome, SimError> {
        self.start();
        while let Some((now, ev)) = self.queue.pop() {
            clock.advance_to(now);
            self.handle(now, ev);
        }
        self.finish()
    }

    /// Puts the first jobs on their units (call once, before [`Engine::step`]).
    pub fn start(&mut self) {
        if self.admission.frames == 0 || self.plan.parts.is_empty() {
            return;
        }
        self.seed();
        for u in 0..self.target.platform.units.len() {
            self.try_start(u, 0);
        }
    }

    /// Processes the next event and the deliveries it causes; returns its time, or `None`
    /// when nothing is left to do.
    pub fn step(&mut self) -> Option<Time> {
        let (now, ev) = self.queue.pop()?;
        self.handle(now, ev);
        Some(now)
    }

    /// One event at `now`, then the deliveries it caused.
    fn handle(&mut self, now: Time, ev: Event) {
        match ev {
            Event::Arrive(f) => self.on_arrive(f as usize, now),
            Event::JobDone(u) => self.on_job_done(u as usize, now),
            Event::CopyDone(c, f) => self.deliveries.push((c, f)),
            Event::LatencyDone(c, f) => self.on_latency_done(c, f, now),
            Event::FlowDone => self.on_flow_done(now),
            Event::MemDone => self.on_mem_done(now),
            Event::Rate(i) => self.on_rate(i as usize, now),
        }
        self.deliver(now);
    }

    /// What has been measured so far.
    pub fn outcome(&self) -> &Outcome {
        &self.out
    }

    fn init_pending(&mut self) {
        let np = self.plan.parts.len();
        let in_count = self.plan.in_counts();
        self.pending = vec![0; self.admission.frames * np];
        for f in 0..self.admission.frames {
            let admission = self.admission.waits_for_admission(f);
            if self.admission.window.is_some() && !admission {
                self.out.entry_ns[f] = 0;
            }
            for (pi, part) in self.plan.parts.iter().enumerate() {
                self.pending[f * np + pi] =
                    in_count[pi] + u32::from(part.source && admission) + u32::from(f > 0);
            }
        }
    }

    /// The jobs ready at time 0 (every frame when saturating, else frame 0 and its arrival).
    fn seed(&mut self) {
        let frames = if self.admission.saturate {
            self.admission.frames
        } else {
            self.queue.schedule(self.arrival(0), Event::Arrive(0));
            1
        };
        let np = self.plan.parts.len();
        for f in 0..frames {
            for (pi, part) in self.plan.parts.iter().enumerate() {
                if self.pending[f * np + pi] == 0 {
                    self.units.ready[part.unit].push(Reverse((f as u32, pi as u32)));
                }
            }
        }
    }

    /// One input of job (frame `f`, partition `p`) is there; true when it became ready (it
    /// is then queued on its unit).
    fn satisfy(&mut self, f: usize, p: usize) -> bool {
        let k = f * self.plan.parts.len() + p;
        self.pending[k] -= 1;
        if self.pending[k] != 0 {
            return false;
        }
        let u = self.plan.parts[p].unit;
        self.units.ready[u].push(Reverse((f as u32, p as u32)));
        true
    }

    /// Admission event: frame `f` arrives (and enters unless the window is full).
    fn on_arrive(&mut self, f: usize, now: Time) {
        if self.admission.window.is_none() || self.admission.count_down(f) {
            self.admit(f, now);
        }
        if f + 1 < self.admission.frames {
            let at = self.arrival(f + 1);
            self.queue.schedule(at, Event::Arrive(f as u32 + 1));
        }
    }

    /// Frame `f` enters: its source partitions lose their admission input.
    fn admit(&mut self, f: usize, now: Time) {
        if self.admission.window.is_some() {
            self.out.entry_ns[f] = now;
        }
        let plan = self.plan;
        for (pi, part) in plan.parts.iter().enumerate() {
            if part.source && self.satisfy(f, pi) {
                self.try_start(part.unit, now);
            }
        }
    }

    /// Job start: unit `u`, if idle and its cores are free, takes its first ready job.
    fn try_start(&mut self, u: usize, now: Time) {
        let unit = &self.target.platform.units[u];
        let cores = unit.core_set.0;
        if self.units.running[u].is_some() || self.units.busy_cores[unit.parent] & cores != 0 {
            return;
        }
        let Some(Reverse((f, pi))) = self.units.ready[u].pop() else {
            return;
        };
        self.units.running[u] = Some((f, pi, now));
        self.units.busy_cores[unit.parent] |= cores;
        let entry = &mut self.out.entry_ns[f as usize];
        *entry = (*entry).min(now);
        self.units.meters[unit.device].change(now, unit.busy_w);
        if self.units.dev_running[unit.device] == 0 {
            self.units.dev_busy_since[unit.device] = now;
        }
        self.units.dev_running[unit.device] += 1;
        let part = &self.plan.parts[pi as usize];
        if self.memory.shares(unit.device, part) {
            self.memory.start(now, u, part);
            self.reshare_memory();
        } else {
            self.queue
                .schedule(now + part.compute_ns, Event::JobDone(u as u32));
        }
    }

    /// After a job on unit `u` ended: `u`, or the core sets of its CPU whose cores are free,
    /// take their next jobs, the smallest (frame, partition) first.
    fn start_next(&mut self, u: usize, now: Time) {
        let parent = self.target.platform.units[u].parent;
        if self.units.siblings[parent].is_empty() {
            self.try_start(u, now);
            return;
        }
        loop {
            let best = (self.units.siblings[parent].iter())
                .map(|&s| s as usize)
                .filter(|&s| self.can_start(s))
                .min_by_key(|&s| self.units.ready[s].peek().map(|r| r.0));
            let Some(s) = best else {
                return;
            };
            self.try_start(s, now);
        }
    }

    /// Whether unit `s` is idle, has a ready job and its cores are free.
    fn can_start(&self, s: usize) -> bool {
        let unit = &self.target.platform.units[s];
        self.units.running[s].is_none()
            && !self.units.ready[s].is_empty()
            && self.units.busy_cores[unit.parent] & unit.core_set.0 == 0
    }

    /// Memory completion: the jobs that drained end.
    fn on_mem_done(&mut self, now: Time) {
        let done = self.memory.finish_due(now);
        for &u in &done {
            self.on_job_done(u as usize, now);
        }
        self.memory.drained = done;
        self.reshare_memory();
    }

    /// The memory system's completion event moves to its next completion.
    fn reshare_memory(&mut self) {
        let next = self.memory.next_completion();
        self.queue
            .set_timer(self.memory.timer, next, Event::MemDone);
    }

    /// Job finish on unit `u`: account, complete the frame's partition, queue the
    /// partition's next frame, send its outputs, start the unit's next job.
    fn on_job_done(&mut self, u: usize, now: Time) {
        let (f, pi) = self.end_job(u, now);
        self.complete_part(f, now);
        if f + 1 < self.admission.frames {
            self.satisfy(f + 1, pi);
        }
        for k in 0..self.conns.out[pi].len() {
            let c = self.conns.out[pi][k] as usize;
            self.conns.produced[c] += 1;
            if let Some(df) = self.try_send(c, now) {
                self.deliveries.push((c as u32, df));
            }
        }
        self.start_next(u, now);
    }

    /// Stops the job running on unit `u` at `now`: power, busy times, record.
    fn end_job(&mut self, u: usize, now: Time) -> (usize, usize) {
        let (f, pi, start) = self.units.running[u]
            .take()
            .expect("JobDone is scheduled only for a running job");
        let unit = &self.target.platform.units[u];
        let d = unit.device;
        self.units.busy_cores[unit.parent] &= !unit.core_set.0;
        self.units.meters[d].change(now, -unit.busy_w);
        self.units.dev_running[d] -= 1;
        if self.units.dev_running[d] == 0 {
            self.out.device_busy_ns[d] += now - self.units.dev_busy_since[d];
        }
        self.out.unit_busy_ns[u] += now - start;
        self.out.part_busy_ns[pi as usize] += now - start;
        if self.record {
            self.out.jobs.push(JobRecord {
                unit: u,
                part: pi as usize,
                frame: f,
                start,
                end: now,
            });
        }
        (f as usize, pi as usize)
    }

    /// One more partition of frame `f` has run; when it was the last, the frame exits and
    /// frees its place in the window.
    fn complete_part(&mut self, f: usize, now: Time) {
        self.admission.parts_done[f] += 1;
        if self.admission.parts_done[f] as usize != self.plan.parts.len() {
            return;
        }
        self.out.exit_ns[f] = now;
        if let Some(w) = self.admission.window {
            if f + w < self.admission.frames && self.admission.count_down(f + w) {
                self.admit(f + w, now);
            }
        }
    }

    /// Starts the next transfer on connection `c` if it is idle and has a frame to send.
    /// Returns a frame delivered at once (a connection within one unit), if any.
    fn try_send(&mut self, c: usize, now: Time) -> Option<u32> {
        if self.conns.busy[c] || self.conns.next_send[c] >= self.conns.produced[c] {
            return None;
        }
        let f = self.conns.next_send[c];
        self.conns.next_send[c] += 1;
        self.conns.busy[c] = true;
        self.conns.start[c] = now;
        match self.conns.kind[c] {
            ConnKind::Local => return Some(f),
            ConnKind::Copy(ns) => {
                self.queue.schedule(now + ns, Event::CopyDone(c as u32, f));
            }
            ConnKind::Net(route) => {
                let at = now + route.latency_ns;
                self.queue.schedule(at, Event::LatencyDone(c as u32, f));
            }
        }
        None
    }

    /// Flow start: connection `c`'s frame `f` has paid the route latency and now flows.
    fn on_latency_done(&mut self, c: u32, f: u32, now: Time) {
        self.sharing.advance(now);
        let bytes = self.plan.conns[c as usize].bytes;
        let ConnKind::Net(route) = self.conns.kind[c as usize] else {
            unreachable!("only network connections pay a latency");
        };
        if bytes == 0 {
            self.deliveries.push((c, f));
            return;
        }
        for &l in &route.links {
            if self.links.active[l] == 0 {
                self.links.since[l] = now;
            }
            self.links.active[l] += 1;
        }
        let tag = (u64::from(c) << 32) | u64::from(f);
        self.sharing.start(now, tag, bytes as f64, &route.resources);
        self.reshare();
    }

    /// Flow finish: the flows that drained by `now` are delivered.
    fn on_flow_done(&mut self, now: Time) {
        self.sharing.advance(now);
        let mut drained = std::mem::take(&mut self.drained);
        drained.clear();
        self.sharing.finish_due(now, &mut drained);
        for &tag in &drained {
            let (c, f) = ((tag >> 32) as u32, tag as u32);
            self.finish_flow(c as usize, f, now);
            self.deliveries.push((c, f));
        }
        self.drained = drained;
        self.reshare();
    }

    /// Re-share: the sharing model's rates changed; the flow-completion event moves to its
    /// next completion.
    fn reshare(&mut self) {
        let next = self.sharing.next_completion();
        self.queue.set_timer(self.flow_timer, next, Event::FlowDone);
    }

    /// Link accounting for a drained flow of connection `c`.
    fn finish_flow(&mut self, c: usize, frame: u32, now: Time) {
        let bytes = self.plan.conns[c].bytes;
        let ConnKind::Net(route) = self.conns.kind[c] else {
            return;
        };
        for &l in &route.links {
            self.out.link_bytes[l] += bytes;
            self.links.active[l] -= 1;
            if self.links.active[l] == 0 {
                self.out.link_busy_ns[l] += now - self.links.since[l];
            }
        }
        if self.record {
            self.out.transfers.push(TransferRecord {
                conn: c,
                frame,
                bytes,
                start: self.conns.start[c],
                end: now,
                links: route.links.clone(),
            });
        }
    }

    /// Processes deliveries (last in, first out); they may start jobs and further
    /// deliveries on local connections.
    fn deliver(&mut self, now: Time) {
        while let Some((c, f)) = self.deliveries.pop() {
            let cu = c as usize;
            self.conns.busy[cu] = false;
            if self.record && !matches!(self.conns.kind[cu], ConnKind::Net(..)) {
                self.out.transfers.push(TransferRecord {
                    conn: cu,
                    frame: f,
                    bytes: self.plan.conns[cu].bytes,
                    start: self.conns.start[cu],
                    end: now,
                    links: Vec::new(),
                });
            }
            let to = self.plan.conns[cu].to;
            if self.satisfy(f as usize, to) {
                self.try_start(self.plan.parts[to].unit, now);
            }
            if let Some(df) = self.try_send(cu, now) {
                self.deliveries.push((c, df));
            }
        }
    }

    /// Final accounting: makespan and energy. Fails when some frames never completed.
    pub fn finish(mut self) -> Result<Outcome, SimError> {
        let np = self.plan.parts.len();
        let incomplete = self
            .admission
            .parts_done
            .iter()
            .filter(|&&d| d as usize != np)
            .count();
        if incomplete > 0 {
            return Err(SimError::Deadlock {
                incomplete,
                frames: self.admission.frames,
            });
        }
        let end = self.out.exit_ns.iter().copied().max().unwrap_or(0);
        self.out.makespan_ns = end;
        for (d, m) in self.units.meters.iter_mut().enumerate() {
            m.change(end.max(m.last), 0.0);
            self.out.device_energy_j[d] = m.energy_j;
        }
        for (l, link) in self.target.platform.links.iter().enumerate() {
            self.out.link_energy_j[l] =
                self.out.link_bytes[l] as f64 * link.energy_nj_per_byte * 1e-9;
        }
        Ok(self.out)
    }
}

impl Units {
    fn new(p: &Platform, plan: &SimPlan) -> Self {
        let (nu, nd) = (p.units.len(), p.devices.len());
        Units {
            ready: vec![BinaryHeap::new(); nu],
            running: vec![None; nu],
            busy_cores: vec![0; nu],
            siblings: siblings(p, plan),
            dev_running: vec![0; nd],
            dev_busy_since: vec![0; nd],
            meters: p
                .devices
                .iter()
                .map(|d| PowerMeter::new(d.idle_w))
                .collect(),
        }
    }
}

/// Per physical unit, the plan's units that are core sets of it, when there are two or more.
fn siblings(p: &Platform, plan: &SimPlan) -> Vec<Vec<u32>> {
    let mut out: Vec<Vec<u32>> = vec![Vec::new(); p.units.len()];
    for part in &plan.parts {
        let list = &mut out[p.units[part.unit].parent];
        if !list.contains(&(part.unit as u32)) {
            list.push(part.unit as u32);
        }
    }
    for list in &mut out {
        if list.len() < 2 {
            list.clear();
        }
        list.sort_unstable();
    }
    out
}

impl<'a> Conns<'a> {
    fn new(target: Target<'a>, plan: &SimPlan) -> Result<Self, SimError> {
        let kind = plan
            .conns
            .iter()
            .map(|c| {
                conn_kind(
                    target,
                    plan.parts[c.from].unit,
                    plan.parts[c.to].unit,
                    c.bytes,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let n = plan.conns.len();
        Ok(Conns {
            kind,
            out: plan.out_conns(),
            produced: vec![0; n],
            next_send: vec![0; n],
            busy: vec![false; n],
            start: vec![0; n],
        })
    }
}

/// How a connection from unit `ua` to unit `ub` carries `bytes` per frame.
fn conn_kind(
    target: Target<'_>,
    ua: usize,
    ub: usize,
    bytes: u64,
) -> Result<ConnKind<'_>, SimError> {
    let p = target.platform;
    let (da, db) = (p.units[ua].device, p.units[ub].device);
    if p.units[ua].parent == p.units[ub].parent {
        // one memory: core sets of one CPU hand tensors over in place
        Ok(ConnKind::Local)
    } else if da == db {
        let ns = (bytes as f64 / p.device_copy_gbps(da)).round() as Time;
        Ok(ConnKind::Copy(ns))
    } else {
        match target.network.route(da, db) {
            Some(route) => Ok(ConnKind::Net(route)),
            None => Err(SimError::NoRoute {
                from: p.devices[da].name.clone(),
                to: p.devices[db].name.clone(),
                platform: p.path.clone(),
            }),
        }
    }
}
