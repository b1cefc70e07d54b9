//! Noticing a link slower than planned (`[adapt] on_slowdown = "replan"`), from the transfer
//! times the workers measure. While frames stream, the coordinator asks every worker of
//! the plan for its figures ([`POLL`]); each answer holds, per tensor edge, the messages
//! received and the sum of their transfer times. Per edge between two devices, the mean
//! time per message since the previous answer (platform time: host / dilation) is compared
//! with what the plan expects on its route, the route's latency plus the bytes at its
//! slowest link's rate as the platform state has it. A route is slow once
//! [`SLOWDOWN_DETECT_FRAMES`] messages in a row took more than `slowdown_factor` times
//! that. A slow route's rate is estimated from its messages (bytes / (time - latency)); the
//! links it crosses that no route measured at its rate also crosses get that estimate
//! (the largest when several slow routes cross a link). A route crosses several links, so
//! this may call a link slow that is not: the simulator, which knows which link changed,
//! can choose another plan.

use super::Prepared;
use crate::proto::{EdgeStat, FROM_COORDINATOR};
use dicesim_sim::events::{PlatformState, SLOWDOWN_DETECT_FRAMES};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// What a message costs besides its bytes at the link's rate [us]: framing, sealing and
/// copying take 0.4-0.6 ms per MiB here (protocol.md); without it a small tensor on a fast
/// link would look slow.
const MESSAGE_OVERHEAD_US: f64 = 1000.0;

/// How often the coordinator asks the plan's workers for their transfer figures.
pub(super) const POLL: Duration = Duration::from_millis(200);

/// An edge: producer partition, consumer partition, tensor.
type Key = (u32, u32, String);

/// What the plan expects of one edge's route.
struct Expect {
    links: Vec<usize>,
    latency_us: f64,
    /// The route's slowest link at the rates the plan was chosen with [bit/s].
    rate_bps: f64,
}

/// The edges watched and what they showed so far.
pub(super) struct SlowWatch {
    factor: f64,
    dilation: f64,
    expect: HashMap<Key, Expect>,
    /// Per edge and worker connection: the last figures (count, bytes, transfer [us]).
    last: HashMap<(usize, Key), (u64, u64, u64)>,
    /// Per edge: messages in a row slower than the factor allows.
    slow_run: HashMap<Key, u64>,
    /// Edges whose last messages ran at their route's rate (from any worker's answer).
    fast: HashSet<Key>,
    /// Edges found slow, with their measured rate [Mbit/s].
    slow: HashMap<Key, f64>,
}

/// One poll's view of an edge: messages, bytes per message, platform time per message [us].
struct Delta {
    count: u64,
    bytes: f64,
    us: f64,
}

impl SlowWatch {
    /// Watches the edges of `prep`'s plan that cross devices, against `state`'s rates.
    pub(super) fn new(prep: &Prepared, state: &PlatformState, dilation: f64) -> SlowWatch {
        let net = &prep.scenario.prep.network;
        let mut expect = HashMap::new();
        for e in &prep.plan.edges {
            let (a, b) = (prep.part_device[e.from], prep.part_device[e.to]);
            let Some(r) = net.route(a, b).filter(|r| a != b && !r.links.is_empty()) else {
                continue;
            };
            let mbps = (r.links.iter())
                .map(|&l| state.bandwidth_mbps[l])
                .fold(f64::INFINITY, f64::min);
            let key = (e.from as u32, e.to as u32, e.tensor.clone());
            let exp = Expect {
                links: r.links.clone(),
                latency_us: r.latency_ns as f64 / 1e3,
                rate_bps: mbps * 1e6,
            };
            expect.insert(key, exp);
        }
        SlowWatch {
            factor: prep.scenario.adapt.slowdown_factor,
            dilation,
            expect,
            last: HashMap::new(),
            slow_run: HashMap::new(),
            fast: HashSet::new(),
            slow: HashMap::new(),
        }
    }

    /// Takes connection `conn`'s cumulative edge figures (one answer of a poll round).
    pub(super) fn update(&mut self, conn: usize, edges: &[EdgeStat]) {
        for e in edges.iter().filter(|e| e.from != FROM_COORDINATOR) {
            let key = (e.from, e.to, e.tensor.clone());
            let Some(d) = self.delta(conn, &key, e) else {
                continue;
            };
            let Some(exp) = self.expect.get(&key) else {
                continue;
            };
            let want_us = exp.latency_us + d.bytes * 8.0 / exp.rate_bps * 1e6 + MESSAGE_OVERHEAD_US;
            let run = self.slow_run.entry(key.clone()).or_default();
            if d.us <= self.factor * want_us {
                *run = 0;
                self.slow.remove(&key);
                self.fast.insert(key);
                continue;
            }
            *run += d.count;
            self.fast.remove(&key);
            let busy_us = d.us - exp.latency_us - MESSAGE_OVERHEAD_US;
            if *run >= SLOWDOWN_DETECT_FRAMES as u64 && busy_us > 0.0 {
                // bits per us: Mbit/s
                self.slow.insert(key, d.bytes * 8.0 / busy_us);
            }
        }
    }

    /// After a poll round (every answer in): the links estimated slow with their rates
    /// [Mbit/s], if a route is slow.
    pub(super) fn verdict(&self) -> Option<Vec<(usize, f64)>> {
        let links = |k: &Key| self.expect.get(k).map(|e| e.links.clone());
        let slow: Vec<(Vec<usize>, f64)> = (self.slow.iter())
            .filter_map(|(k, &mbps)| Some((links(k)?, mbps)))
            .collect();
        let fast: BTreeSet<usize> = self.fast.iter().filter_map(links).flatten().collect();
        estimate(&slow, &fast)
    }

    /// Edge `key`'s figures on connection `conn` since the previous answer (None without
    /// a new message).
    fn delta(&mut self, conn: usize, key: &Key, e: &EdgeStat) -> Option<Delta> {
        let now = (e.count, e.bytes, e.transfer_us);
        let (c0, b0, t0) = self
            .last
            .insert((conn, key.clone()), now)
            .unwrap_or_default();
        let count = e.count.checked_sub(c0).filter(|&c| c > 0)?;
        Some(Delta {
            count,
            bytes: e.bytes.saturating_sub(b0) as f64 / count as f64,
            us: e.transfer_us.saturating_sub(t0) as f64 / count as f64 / self.dilation,
        })
    }
}

/// The slow links and their estimated rates [Mbit/s]: the links of slow routes (`slow`:
/// each route's links with its measured rate [Mbit/s]) that no route at its rate crosses
/// (`fast`).
fn estimate(slow: &[(Vec<usize>, f64)], fast: &BTreeSet<usize>) -> Option<Vec<(usize, f64)>> {
    let mut rates: BTreeMap<usize, f64> = BTreeMap::new();
    for (links, mbps) in slow {
        for l in links.iter().filter(|l| !fast.contains(l)) {
            let r = rates.entry(*l).or_insert(0.0);
            *r = r.max(*mbps);
        }
    }
    (!rates.is_empty()).then(|| rates.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(links: &[usize], rate_mbps: f64) -> SlowWatch {
        let mut expect = HashMap::new();
        let exp = Expect {
            links: links.to_vec(),
            latency_us: 50.0,
            rate_bps: rate_mbps * 1e6,
        };
        expect.insert((0, 1, "t".to_string()), exp);
        SlowWatch {
            factor: 2.0,
            dilation: 1.0,
            expect,
            last: HashMap::new(),
            slow_run: HashMap::new(),
            fast: HashSet::new(),
            slow: HashMap::new(),
        }
    }

    fn edge(count: u64, bytes_each: u64, us_each: u64) -> EdgeStat {
        EdgeStat {
            from: 0,
            to: 1,
            tensor: "t".into(),
            count,
            bytes: count * bytes_each,
            transfer_us: count * us_each,
        }
    }

    #[test]
    fn a_route_at_a_tenth_of_its_rate_is_found_after_three_messages() {
        // 100 kB at 100 Mbit/s: 8 ms + 50 us (+ 1 ms); at 10 Mbit/s: 80 ms
        let mut w = watch(&[0, 1], 100.0);
        for (n, us) in [(5, 8_100), (7, 8_100), (9, 81_050)] {
            w.update(0, &[edge(n, 100_000, us)]);
            assert_eq!(w.verdict(), None);
        }
        w.update(0, &[edge(10, 100_000, 81_050)]);
        let got = w.verdict().expect("slow");
        assert_eq!(got.len(), 2);
        assert!(
            got.iter().all(|&(_, mbps)| (mbps - 10.0).abs() < 0.1),
            "{got:?}"
        );
    }

    #[test]
    fn a_route_within_the_factor_is_not_slow() {
        let mut w = watch(&[0], 100.0);
        for n in 1..20 {
            w.update(0, &[edge(n, 100_000, 17_000)]);
            assert_eq!(w.verdict(), None);
        }
        // a small tensor on a fast link: its cost is the message's, not the bytes'
        let mut w = watch(&[0], 1000.0);
        for n in 1..20 {
            w.update(0, &[edge(n, 4_000, 900)]);
            assert_eq!(w.verdict(), None);
        }
    }

    #[test]
    fn a_link_that_a_fast_route_crosses_is_not_called_slow() {
        let fast: BTreeSet<usize> = [1].into();
        assert_eq!(
            estimate(&[(vec![0, 1], 10.0)], &fast),
            Some(vec![(0, 10.0)])
        );
    }
}
