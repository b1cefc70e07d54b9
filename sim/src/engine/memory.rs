//! Jobs that share a device's memory bandwidth: on a device where the plan runs jobs at
//! once that may compete for memory (two core sets of one CPU, or units whose bandwidths add
//! up to more than the device's), a job is a flow of the bytes it moves, limited to the rate
//! at which it moves them alone (bytes / time alone) and max-min shared with the other jobs
//! on its unit's and its device's bandwidth. Alone, it ends at its time alone; two
//! memory-bound jobs on one bandwidth take twice as long; compute-bound jobs whose limits
//! add up to less than the bandwidth do not slow each other down.

use crate::kernel::{Time, TimerId};
use crate::network::MemorySystem;
use crate::platform::Platform;
use crate::sharing::{MaxMinSharing, SharingModel};

use super::plan::{SimPart, SimPlan};

/// The memory system of one run.
pub(super) struct Memory<'a> {
    sharing: MaxMinSharing<'a>,
    routes: &'a [[usize; 3]],
    /// Per device: whether its jobs go through the sharing model.
    contended: Vec<bool>,
    /// The timer of the sharing model's next completion (MemDone).
    pub(super) timer: TimerId,
    pub(super) drained: Vec<u64>,
}

impl<'a> Memory<'a> {
    pub(super) fn new(p: &Platform, mem: &'a MemorySystem, plan: &SimPlan, timer: TimerId) -> Self {
        Memory {
            sharing: MaxMinSharing::new(mem.capacity.clone()),
            routes: &mem.routes,
            contended: contended_devices(p, plan),
            timer,
            drained: Vec::new(),
        }
    }

    /// Whether a job of `part` on unit `u` of device `d` shares memory bandwidth (else it
    /// simply takes its time alone).
    pub(super) fn shares(&self, d: usize, part: &SimPart) -> bool {
        self.contended[d] && part.mem_bytes > 0 && part.compute_ns > 0
    }

    /// Starts the job of `part` on unit `u` at `now` (tagged `u`: a unit runs one job at a
    /// time).
    pub(super) fn start(&mut self, now: Time, u: usize, part: &SimPart) {
        let bytes = part.mem_bytes as f64;
        let limit = bytes / part.compute_ns as f64;
        let route = &self.routes[u];
        (self.sharing).start_limited(now, (route[0], limit), u as u64, bytes, route);
    }

    /// The units whose jobs have drained by `now`.
    pub(super) fn finish_due(&mut self, now: Time) -> Vec<u64> {
        self.sharing.advance(now);
        let mut done = std::mem::take(&mut self.drained);
        done.clear();
        self.sharing.finish_due(now, &mut done);
        done
    }

    /// When the next job drains.
    pub(super) fn next_completion(&self) -> Option<Time> {
        self.sharing.next_completion()
    }
}

/// Devices on which the plan may run jobs at once that compete for memory: two of its units
/// that are core sets of one CPU, or units whose bandwidths add up to more than the device's.
fn contended_devices(p: &Platform, plan: &SimPlan) -> Vec<bool> {
    let mut used = vec![false; p.units.len()];
    for part in &plan.parts {
        used[part.unit] = true;
    }
    let mut parents_used = vec![0u32; p.units.len()];
    let mut places = vec![0u32; p.devices.len()];
    let mut gbps = vec![0.0; p.devices.len()];
    for (unit, _) in p.units.iter().zip(&used).filter(|(_, &u)| u) {
        places[unit.device] += 1;
        if parents_used[unit.parent] == 0 {
            gbps[unit.device] += unit.mem_gbps;
        }
        parents_used[unit.parent] += 1;
    }
    let shared_parent = |d: usize| {
        (p.units.iter().enumerate()).any(|(i, un)| un.device == d && parents_used[i] > 1)
    };
    (0..p.devices.len())
        .map(|d| {
            places[d] > 1 && (shared_parent(d) || gbps[d] > p.devices[d].mem_gbps * (1.0 + 1e-9))
        })
        .collect()
}
