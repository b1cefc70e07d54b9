//! The execution model: frames flowing through partitions on compute units, tensors flowing
//! over the network, power integrated at every state change.
//!
//! Semantics (see also `design.md`):
//! - a partition runs its layers as one job per frame, frames in order, one at a time;
//! - a unit runs one job at a time without preemption; when it becomes free it takes, among
//!   the jobs whose inputs are all there, the one with the smallest (frame, partition), so a
//!   unit shared by several partitions serves them in frame order;
//! - a partition's outputs leave when the job ends; every (producer, consumer) pair of
//!   partitions is one connection whose per-frame transfers go one after another in frame
//!   order: latency of the route once, then a flow under max-min sharing; between two units
//!   of one device a transfer is a memory copy at the device's copy bandwidth; within one
//!   unit it is free;
//! - frame inputs are present on the units of the partitions that read them; with a period
//!   frame `f` is available at `f * period`, with period 0 all frames are available at once
//!   and each enters as soon as its first partition can take it;
//! - a frame's latency runs from the start of its first job to the end of its last one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::error::SimError;
use crate::kernel::{Clock, EventId, EventQueue, Time};
use crate::network::{max_min_rates, MaxMinScratch};
use crate::prepared::{PreparedScenario, SimPlan};

/// One job (a partition running one frame), recorded when tracing.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Unit index.
    pub unit: usize,
    /// Partition index.
    pub part: usize,
    /// Frame.
    pub frame: u32,
    /// Start [ns].
    pub start: Time,
    /// End [ns].
    pub end: Time,
}

/// One transfer, recorded when tracing.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferRecord {
    /// Connection index.
    pub conn: usize,
    /// Frame.
    pub frame: u32,
    /// Bytes.
    pub bytes: u64,
    /// Start (production, or end of the previous transfer on the connection) [ns].
    pub start: Time,
    /// End of the flow (delivery) [ns].
    pub end: Time,
    /// Links crossed (empty for a copy within a device).
    pub links: Vec<usize>,
}

/// Everything measured in one simulation.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Entry time of each frame [ns].
    pub entry_ns: Vec<Time>,
    /// Exit time of each frame [ns].
    pub exit_ns: Vec<Time>,
    /// Time of the last exit [ns].
    pub makespan_ns: Time,
    /// Busy time of each unit [ns].
    pub unit_busy_ns: Vec<Time>,
    /// Time at least one unit of each device was busy [ns].
    pub device_busy_ns: Vec<Time>,
    /// Energy of each device over the makespan [J].
    pub device_energy_j: Vec<f64>,
    /// Bytes carried by each link.
    pub link_bytes: Vec<u64>,
    /// Time each link carried at least one flow [ns].
    pub link_busy_ns: Vec<Time>,
    /// Energy of each link [J].
    pub link_energy_j: Vec<f64>,
    /// Busy time of each partition [ns].
    pub part_busy_ns: Vec<Time>,
    /// Jobs (when recording).
    pub jobs: Vec<JobRecord>,
    /// Transfers (when recording).
    pub transfers: Vec<TransferRecord>,
}

impl Outcome {
    /// Per-frame latencies [ns].
    pub fn latencies_ns(&self) -> Vec<Time> {
        self.entry_ns
            .iter()
            .zip(&self.exit_ns)
            .map(|(a, b)| b - a)
            .collect()
    }

    /// Frames / (last exit - first entry).
    pub fn throughput_fps(&self) -> f64 {
        let first = self.entry_ns.iter().copied().min().unwrap_or(0);
        let span = self.makespan_ns.saturating_sub(first);
        if span == 0 {
            0.0
        } else {
            self.entry_ns.len() as f64 / (span as f64 * 1e-9)
        }
    }

    /// Energy of devices and links [mJ].
    pub fn total_energy_mj(&self) -> f64 {
        (self.device_energy_j.iter().sum::<f64>() + self.link_energy_j.iter().sum::<f64>()) * 1e3
    }
}

/// Integrates power over time; updated at every state change.
#[derive(Debug, Clone, Copy, Default)]
struct PowerMeter {
    power_w: f64,
    last: Time,
    energy_j: f64,
}

impl PowerMeter {
    fn change(&mut self, now: Time, delta_w: f64) {
        self.energy_j += self.power_w * (now - self.last) as f64 * 1e-9;
        self.last = now;
        self.power_w += delta_w;
    }
}

#[derive(Debug, Clone, Copy)]
enum Ev {
    Arrive(u32),
    JobDone(u32),
    LatencyDone(u32, u32),
    CopyDone(u32, u32),
    FlowDone,
}

#[derive(Debug, Clone, Copy)]
enum ConnKind {
    Local,
    Copy(Time),
    Net(usize, usize),
}

struct St<'a> {
    prep: &'a PreparedScenario,
    plan: &'a SimPlan,
    record: bool,
}

#[derive(Debug, Clone)]
struct Flow {
    conn: u32,
    frame: u32,
    remaining: f64,
    rate: f64,
}

/// Simulates `plan` on `prep` under its workload.
pub fn simulate<C: Clock + ?Sized>(
    prep: &PreparedScenario,
    plan: &SimPlan,
    record: bool,
    clock: &mut C,
) -> Result<Outcome, SimError> {
    let p = &prep.platform;
    let frames = prep.workload.frames as usize;
    let np = plan.parts.len();
    let nu = p.units.len();
    let nd = p.devices.len();
    let nl = p.links.len();

    let conn_kind: Vec<ConnKind> = plan
        .conns
        .iter()
        .map(|c| {
            let (ua, ub) = (plan.parts[c.from].unit, plan.parts[c.to].unit);
            let (da, db) = (p.units[ua].device, p.units[ub].device);
            if ua == ub {
                Ok(ConnKind::Local)
            } else if da == db {
                Ok(ConnKind::Copy(
                    (c.bytes as f64 / p.device_copy_gbps(da)).round() as Time,
                ))
            } else if prep.network.route(da, db).is_some() {
                Ok(ConnKind::Net(da, db))
            } else {
                Err(SimError::Mapping(format!(
                    "no network route from device `{}` to device `{}` in platform `{}`",
                    p.devices[da].name,
                    p.devices[db].name,
                    p.path.display()
                )))
            }
        })
        .collect::<Result<_, _>>()?;
    let mut out_conns: Vec<Vec<u32>> = vec![Vec::new(); np];
    let mut in_count = vec![0u32; np];
    for (ci, c) in plan.conns.iter().enumerate() {
        out_conns[c.from].push(ci as u32);
        in_count[c.to] += 1;
    }

    let mut out = Outcome {
        entry_ns: vec![Time::MAX; frames],
        exit_ns: vec![0; frames],
        unit_busy_ns: vec![0; nu],
        device_busy_ns: vec![0; nd],
        device_energy_j: vec![0.0; nd],
        link_bytes: vec![0; nl],
        link_busy_ns: vec![0; nl],
        link_energy_j: vec![0.0; nl],
        part_busy_ns: vec![0; np],
        ..Outcome::default()
    };
    if frames == 0 || np == 0 {
        return Ok(out);
    }

    let saturate = prep.workload.period_ns == 0;
    let window = prep.workload.window.map(|w| (w as usize).max(1));
    // admit_left[f] (with a window): events still missing before frame f is admitted (its
    // arrival unless saturating, and the completion of frame f - window)
    let mut admit_left: Vec<u32> = match window {
        Some(w) => (0..frames)
            .map(|f| u32::from(!saturate) + u32::from(f >= w))
            .collect(),
        None => Vec::new(),
    };
    // pending[f * np + part]: inputs still missing (connections, the frame's arrival or
    // admission for a source partition, and the partition's previous frame)
    let mut pending = vec![0u32; frames * np];
    for f in 0..frames {
        let admission = match window {
            Some(_) => admit_left[f] > 0,
            None => !saturate,
        };
        if window.is_some() && !admission {
            out.entry_ns[f] = 0;
        }
        for (pi, part) in plan.parts.iter().enumerate() {
            pending[f * np + pi] =
                in_count[pi] + u32::from(part.source && admission) + u32::from(f > 0);
        }
    }
    let mut parts_done = vec![0u32; frames];
    let mut ready: Vec<BinaryHeap<Reverse<(u32, u32)>>> = vec![BinaryHeap::new(); nu];
    let mut running: Vec<Option<(u32, u32, Time)>> = vec![None; nu];
    let mut dev_running = vec![0u32; nd];
    let mut dev_busy_since = vec![0 as Time; nd];
    let mut meters: Vec<PowerMeter> = p
        .devices
        .iter()
        .map(|d| PowerMeter {
            power_w: d.idle_w,
            ..PowerMeter::default()
        })
        .collect();
    let nc = plan.conns.len();
    let mut produced = vec![0u32; nc];
    let mut next_send = vec![0u32; nc];
    let mut conn_busy = vec![false; nc];
    let mut conn_start = vec![0 as Time; nc];
    let mut flows: Vec<Flow> = Vec::new();
    let mut flows_t: Time = 0;
    let mut flow_event: Option<EventId> = None;
    let capacity: Vec<f64> = prep.network.resources.iter().map(|r| r.capacity).collect();
    let mut scratch = MaxMinScratch::default();
    let mut rates = Vec::new();
    let mut link_active = vec![0u32; nl];
    let mut link_since = vec![0 as Time; nl];

    let mut q: EventQueue<Ev> = EventQueue::new();
    if saturate {
        for f in 0..frames {
            for (pi, part) in plan.parts.iter().enumerate() {
                if pending[f * np + pi] == 0 {
                    ready[part.unit].push(Reverse((f as u32, pi as u32)));
                }
            }
        }
    } else {
        q.schedule(0, Ev::Arrive(0));
        for (pi, part) in plan.parts.iter().enumerate() {
            if pending[pi] == 0 {
                ready[part.unit].push(Reverse((0, pi as u32)));
            }
        }
    }

    let st = St { prep, plan, record };

    #[allow(clippy::too_many_arguments)]
    fn try_start(
        st: &St,
        u: usize,
        now: Time,
        q: &mut EventQueue<Ev>,
        ready: &mut [BinaryHeap<Reverse<(u32, u32)>>],
        running: &mut [Option<(u32, u32, Time)>],
        entry: &mut [Time],
        meters: &mut [PowerMeter],
        dev_running: &mut [u32],
        dev_busy_since: &mut [Time],
    ) {
        if running[u].is_some() {
            return;
        }
        if let Some(Reverse((f, pi))) = ready[u].pop() {
            let unit = &st.prep.platform.units[u];
            running[u] = Some((f, pi, now));
            entry[f as usize] = entry[f as usize].min(now);
            meters[unit.device].change(now, unit.busy_w);
            if dev_running[unit.device] == 0 {
                dev_busy_since[unit.device] = now;
            }
            dev_running[unit.device] += 1;
            q.schedule(
                now + st.plan.parts[pi as usize].compute_ns,
                Ev::JobDone(u as u32),
            );
        }
    }

    macro_rules! start_unit {
        ($u:expr, $now:expr) => {
            try_start(
                &st,
                $u,
                $now,
                &mut q,
                &mut ready,
                &mut running,
                &mut out.entry_ns,
                &mut meters,
                &mut dev_running,
                &mut dev_busy_since,
            )
        };
    }

    // Frame `$f` enters: its source partitions lose their admission input.
    macro_rules! admit {
        ($f:expr, $now:expr) => {{
            let (fu, now): (usize, Time) = ($f, $now);
            if window.is_some() {
                out.entry_ns[fu] = now;
            }
            for (pi, part) in plan.parts.iter().enumerate() {
                if part.source {
                    let k = fu * np + pi;
                    pending[k] -= 1;
                    if pending[k] == 0 {
                        ready[part.unit].push(Reverse((fu as u32, pi as u32)));
                        start_unit!(part.unit, now);
                    }
                }
            }
        }};
    }

    // Re-shares bandwidth among active flows and reschedules the next flow completion.
    macro_rules! reshare {
        ($now:expr) => {{
            let now: Time = $now;
            if let Some(id) = flow_event.take() {
                q.cancel(id);
            }
            if !flows.is_empty() {
                let routes: Vec<&[usize]> = flows
                    .iter()
                    .map(|fl| match conn_kind[fl.conn as usize] {
                        ConnKind::Net(a, b) => {
                            &prep
                                .network
                                .route(a, b)
                                .expect("checked when building conn_kind")
                                .resources[..]
                        }
                        _ => &[][..],
                    })
                    .collect();
                max_min_rates(&capacity, &routes, &mut rates, &mut scratch);
                let mut dt = f64::INFINITY;
                for (fl, &r) in flows.iter_mut().zip(&rates) {
                    fl.rate = r;
                    dt = dt.min(fl.remaining.max(0.0) / r);
                }
                flow_event = Some(q.schedule(now + dt.ceil() as Time, Ev::FlowDone));
            }
        }};
    }

    macro_rules! advance_flows {
        ($now:expr) => {{
            let now: Time = $now;
            let dt = (now - flows_t) as f64;
            for fl in flows.iter_mut() {
                fl.remaining -= fl.rate * dt;
            }
            flows_t = now;
        }};
    }

    // Starts the next transfer on connection `c` if it is idle and has a frame to send.
    // Returns a frame delivered at once (local connections), if any.
    macro_rules! try_send {
        ($c:expr, $now:expr) => {{
            let c: usize = $c;
            let now: Time = $now;
            let mut delivered: Option<u32> = None;
            if !conn_busy[c] && next_send[c] < produced[c] {
                let f = next_send[c];
                next_send[c] += 1;
                conn_busy[c] = true;
                conn_start[c] = now;
                match conn_kind[c] {
                    ConnKind::Local => delivered = Some(f),
                    ConnKind::Copy(ns) => {
                        q.schedule(now + ns, Ev::CopyDone(c as u32, f));
                    }
                    ConnKind::Net(a, b) => {
                        let lat = prep.network.route(a, b).expect("checked").latency_ns;
                        q.schedule(now + lat, Ev::LatencyDone(c as u32, f));
                    }
                }
            }
            delivered
        }};
    }

    // Work list of (connection, frame) deliveries to process, to avoid recursion.
    let mut deliveries: Vec<(u32, u32)> = Vec::new();
    for u in 0..nu {
        start_unit!(u, 0);
    }

    while let Some((now, ev)) = q.pop() {
        clock.advance_to(now);
        match ev {
            Ev::Arrive(f) => {
                let fu = f as usize;
                if window.is_some() {
                    admit_left[fu] -= 1;
                    if admit_left[fu] == 0 {
                        admit!(fu, now);
                    }
                } else {
                    admit!(fu, now);
                }
                if fu + 1 < frames {
                    q.schedule(
                        (fu as Time + 1) * prep.workload.period_ns,
                        Ev::Arrive(f + 1),
                    );
                }
            }
            Ev::JobDone(u) => {
                let u = u as usize;
                let (f, pi, start) = running[u].take().expect("a job was running");
                let unit = &p.units[u];
                let d = unit.device;
                meters[d].change(now, -unit.busy_w);
                dev_running[d] -= 1;
                if dev_running[d] == 0 {
                    out.device_busy_ns[d] += now - dev_busy_since[d];
                }
                out.unit_busy_ns[u] += now - start;
                out.part_busy_ns[pi as usize] += now - start;
                if st.record {
                    out.jobs.push(JobRecord {
                        unit: u,
                        part: pi as usize,
                        frame: f,
                        start,
                        end: now,
                    });
                }
                let (fu, piu) = (f as usize, pi as usize);
                parts_done[fu] += 1;
                if parts_done[fu] as usize == np {
                    out.exit_ns[fu] = now;
                    if let Some(w) = window {
                        if fu + w < frames {
                            admit_left[fu + w] -= 1;
                            if admit_left[fu + w] == 0 {
                                admit!(fu + w, now);
                            }
                        }
                    }
                }
                if fu + 1 < frames {
                    let k = (fu + 1) * np + piu;
                    pending[k] -= 1;
                    if pending[k] == 0 {
                        ready[u].push(Reverse((f + 1, pi)));
                    }
                }
                for &c in &out_conns[piu] {
                    produced[c as usize] += 1;
                    if let Some(df) = try_send!(c as usize, now) {
                        deliveries.push((c, df));
                    }
                }
                start_unit!(u, now);
            }
            Ev::CopyDone(c, f) => deliveries.push((c, f)),
            Ev::LatencyDone(c, f) => {
                advance_flows!(now);
                let bytes = plan.conns[c as usize].bytes;
                if bytes == 0 {
                    deliveries.push((c, f));
                } else {
                    if let ConnKind::Net(a, b) = conn_kind[c as usize] {
                        for &l in &prep.network.route(a, b).expect("checked").links {
                            if link_active[l] == 0 {
                                link_since[l] = now;
                            }
                            link_active[l] += 1;
                        }
                    }
                    flows.push(Flow {
                        conn: c,
                        frame: f,
                        remaining: bytes as f64,
                        rate: 0.0,
                    });
                    reshare!(now);
                }
            }
            Ev::FlowDone => {
                flow_event = None;
                advance_flows!(now);
                // Flows that have drained; if rounding left every flow a hair short, the
                // closest one. Finished in index order.
                let mut done: Vec<usize> = (0..flows.len())
                    .filter(|&i| flows[i].remaining <= 1e-3)
                    .collect();
                if done.is_empty() {
                    if let Some((i, _)) = flows.iter().enumerate().min_by(|a, b| {
                        (a.1.remaining / a.1.rate).total_cmp(&(b.1.remaining / b.1.rate))
                    }) {
                        done.push(i);
                    }
                }
                let mut finished: Vec<_> = done.iter().rev().map(|&i| flows.remove(i)).collect();
                finished.reverse();
                for fl in finished {
                    finish_flow(
                        &st,
                        &fl,
                        now,
                        &conn_kind,
                        &conn_start,
                        &mut link_active,
                        &mut link_since,
                        &mut out,
                    );
                    deliveries.push((fl.conn, fl.frame));
                }
                reshare!(now);
            }
        }
        // Deliveries may start jobs and further (local) deliveries.
        while let Some((c, f)) = deliveries.pop() {
            let cu = c as usize;
            conn_busy[cu] = false;
            if st.record && !matches!(conn_kind[cu], ConnKind::Net(..)) {
                out.transfers.push(TransferRecord {
                    conn: cu,
                    frame: f,
                    bytes: plan.conns[cu].bytes,
                    start: conn_start[cu],
                    end: now,
                    links: Vec::new(),
                });
            }
            let to = plan.conns[cu].to;
            let k = f as usize * np + to;
            pending[k] -= 1;
            if pending[k] == 0 {
                let u = plan.parts[to].unit;
                ready[u].push(Reverse((f, to as u32)));
                start_unit!(u, now);
            }
            if let Some(df) = try_send!(cu, now) {
                deliveries.push((c, df));
            }
        }
    }

    if parts_done.iter().any(|&d| d as usize != np) {
        return Err(SimError::Mapping(
            "the partitions wait on each other: some frames never complete".into(),
        ));
    }
    let end = out.exit_ns.iter().copied().max().unwrap_or(0);
    out.makespan_ns = end;
    for (d, m) in meters.iter_mut().enumerate() {
        m.change(end.max(m.last), 0.0);
        out.device_energy_j[d] = m.energy_j;
    }
    for (l, link) in p.links.iter().enumerate() {
        out.link_energy_j[l] = out.link_bytes[l] as f64 * link.energy_nj_per_byte * 1e-9;
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn finish_flow(
    st: &St,
    fl: &Flow,
    now: Time,
    conn_kind: &[ConnKind],
    conn_start: &[Time],
    link_active: &mut [u32],
    link_since: &mut [Time],
    out: &mut Outcome,
) {
    let c = fl.conn as usize;
    let bytes = st.plan.conns[c].bytes;
    if let ConnKind::Net(a, b) = conn_kind[c] {
        let route = st.prep.network.route(a, b).expect("checked");
        for &l in &route.links {
            out.link_bytes[l] += bytes;
            link_active[l] -= 1;
            if link_active[l] == 0 {
                out.link_busy_ns[l] += now - link_since[l];
            }
        }
        if st.record {
            out.transfers.push(TransferRecord {
                conn: c,
                frame: fl.frame,
                bytes,
                start: conn_start[c],
                end: now,
                links: route.links.clone(),
            });
        }
    }
}
