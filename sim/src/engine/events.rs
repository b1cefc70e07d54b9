//! What a run needs to follow a changing platform (`crate::adapt` drives it): link rates
//! that change at given times, a run resumed mid-stream (frames that arrived before it
//! began), and a run stopped at a given time (the plan broken or replaced there) with its
//! accounting up to then.

use super::{Engine, Event};
use crate::engine::Outcome;
use crate::kernel::Time;
use crate::sharing::SharingModel;

impl<'a, S: SharingModel<'a>> Engine<'a, S> {
    /// From `at` on, link `link` carries `mbps` (both directions, or the shared medium):
    /// flows in progress then move at their new max-min shares.
    pub fn schedule_rate(&mut self, at: Time, link: usize, mbps: f64) {
        let i = self.rates.len() as u32;
        // Mbit/s -> bytes/ns, as `Network::new`
        self.rates.push((link, mbps * 1e6 / 8.0 / 1e9));
        self.queue.schedule(at, Event::Rate(i));
    }

    /// Frame `f` arrives at `max(0, f x period + offset_ns)` instead of `f x period` (call
    /// before [`Engine::start`]): a run that resumes a stream whose first frames arrived
    /// before it began. No effect on a saturating workload.
    pub fn set_arrival_offset(&mut self, offset_ns: i64) {
        self.arrival_offset = offset_ns;
    }

    /// When frame `f` arrives.
    pub(super) fn arrival(&self, f: usize) -> Time {
        let at = f as i128 * self.target.workload.period_ns as i128 + self.arrival_offset as i128;
        at.max(0) as Time
    }

    /// Rate change `i`: the link's resources take their new capacity.
    pub(super) fn on_rate(&mut self, i: usize, now: Time) {
        let (link, capacity) = self.rates[i];
        for (r, res) in self.target.network.resources.iter().enumerate() {
            if res.link == link {
                self.sharing.change_capacity(now, r, capacity);
            }
        }
        self.reshare();
    }

    /// The time of the next event (`None`: nothing left to do).
    pub fn next_time(&mut self) -> Option<Time> {
        self.queue.peek_time()
    }

    /// Whether frame `f` has completed (all its partitions ran).
    pub fn completed(&self, f: usize) -> bool {
        self.admission.parts_done[f] as usize == self.plan.parts.len()
    }

    /// Stops the run at `now` (after every event up to `now` was handled): jobs running then
    /// count as busy until `now`, power is integrated until `now`, and frames that did not
    /// complete keep exit time 0 (the caller tells them apart with [`Engine::completed`]).
    pub fn cut(mut self, now: Time) -> Outcome {
        for u in 0..self.units.running.len() {
            if let Some((_, pi, start)) = self.units.running[u] {
                self.out.unit_busy_ns[u] += now - start;
                self.out.part_busy_ns[pi as usize] += now - start;
            }
        }
        for d in 0..self.units.dev_running.len() {
            if self.units.dev_running[d] > 0 {
                self.out.device_busy_ns[d] += now - self.units.dev_busy_since[d];
            }
        }
        self.out.makespan_ns = now;
        for (d, m) in self.units.meters.iter_mut().enumerate() {
            m.change(now.max(m.last), 0.0);
            self.out.device_energy_j[d] = m.energy_j;
        }
        for (l, link) in self.target.platform.links.iter().enumerate() {
            self.out.link_energy_j[l] =
                self.out.link_bytes[l] as f64 * link.energy_nj_per_byte * 1e-9;
        }
        self.out
    }
}
