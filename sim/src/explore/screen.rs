//! Refinement's screen: estimated objectives of a mapping from the prepared per-layer
//! times ([`SegmentTimes`]) and weights, in microseconds where a simulation takes
//! milliseconds, so that a visit evaluates first the neighbours whose estimate the
//! visited member's estimate does not dominate (the others are likely dominated by the
//! member itself).
//!
//! The estimate of a mapping, each minimised like the objectives it stands for:
//! - latency: the segments' times and the transfers between them, one after the other;
//! - period (the inverse of throughput): the busiest unit's summed segment times or the
//!   longest transfer;
//! - energy per frame: each segment's time at its unit's busy power, plus the whole
//!   platform's idle power over one period;
//! - memory: the largest sum of weights on a device.
//!
//! Contention, activations and runtime overheads are left to the simulator.

use super::selection::{prefix_sums, SegmentTimes};
use super::Genome;
use crate::prepared::PreparedScenario;

/// What the estimate needs beyond [`SegmentTimes`].
#[derive(Debug, Clone)]
pub(crate) struct Screen {
    /// `params[l]`: weight bytes of layers `0..l`.
    params: Vec<u64>,
    /// Idle power of every device of the platform together [W].
    idle_w: f64,
    devices: usize,
}

impl Screen {
    pub(crate) fn new(prep: &PreparedScenario) -> Screen {
        let devices = &prep.platform.devices;
        Screen {
            params: prefix_sums(&prep.layer_params),
            idle_w: devices.iter().map(|d| d.idle_w).sum(),
            devices: devices.len(),
        }
    }

    /// The estimated `[latency, period, energy, memory]` of `g` ([ns], [ns], [nJ],
    /// [bytes]).
    pub(crate) fn estimate(&self, times: &SegmentTimes, g: &Genome) -> [f64; 4] {
        let layers = self.params.len() - 1;
        let mut load = vec![0u64; times.units()];
        let mut memory = vec![0u64; self.devices];
        let (mut latency, mut link, mut busy_nj) = (0u64, 0u64, 0.0);
        for (s, &u) in g.units.iter().enumerate() {
            let (a, b) = g.bounds(s, layers);
            let t = times.time(u, a, b);
            if s > 0 {
                let x = times.transfer(g.units[s - 1], u, a);
                latency = latency.saturating_add(x);
                link = link.max(x);
            }
            latency = latency.saturating_add(t);
            load[u as usize] += t;
            busy_nj += t as f64 * times.busy_w(u);
            memory[times.device(u)] += self.params[b] - self.params[a];
        }
        let period = load.iter().copied().max().unwrap_or(0).max(link) as f64;
        let memory = memory.iter().copied().max().unwrap_or(0);
        [
            latency as f64,
            period,
            busy_nj + self.idle_w * period,
            memory as f64,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_add_up_segments_transfers_busy_energy_and_weights() {
        // two units on two devices, 1 ns to send what crosses any cut
        let times = SegmentTimes::from_rows(&[&[2, 2, 2], &[3, 3, 3]], vec![0, 1], vec![0, 0])
            .with_busy_w(vec![1.0, 2.0]);
        let screen = Screen {
            params: vec![0, 10, 30, 60],
            idle_w: 0.5,
            devices: 2,
        };
        let pipeline = Genome {
            cuts: vec![1],
            units: vec![0, 1],
        };
        // latency 2 + 1 + 6, period 6, energy 2 x 1 W + 6 x 2 W + 6 x 0.5 W, memory 50
        assert_eq!(screen.estimate(&times, &pipeline), [9.0, 6.0, 17.0, 50.0]);
        let twice = Genome {
            cuts: vec![1, 2],
            units: vec![0, 1, 0],
        };
        // unit 0 runs two segments (period 4), device 0 holds two layers' weights
        assert_eq!(screen.estimate(&times, &twice), [9.0, 4.0, 12.0, 40.0]);
    }
}
