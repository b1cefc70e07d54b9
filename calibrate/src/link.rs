//! The link probe: messages of several sizes cross the rig's shaped links, and a line
//! `t = o + bytes / bw` fitted to them calibrates each link's bandwidth and latency.

use anyhow::Result;
use dicesim_hil::emulate::Rig;
use std::collections::BTreeMap;

/// A route's fitted transfer model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RouteFit {
    /// Sending device.
    pub from: String,
    /// Receiving device.
    pub to: String,
    /// Messages timed.
    pub samples: usize,
    /// Fitted fixed cost per message, configured latency included [us].
    pub overhead_us: f64,
    /// Configured route latency [us].
    pub nominal_latency_us: f64,
    /// Fitted rate [Mbit/s].
    pub bandwidth_mbps: f64,
    /// Configured bottleneck [Mbit/s].
    pub nominal_mbps: f64,
    /// Median |fit - measured| / measured over the messages.
    pub fit_error: f64,
}

/// What the probe found: per route its fit, per platform link the ratios measured / nominal
/// bandwidth and the extra latency per hop [us] of the routes that cross it.
#[derive(Debug, Default)]
pub struct LinkProbe {
    /// One fit per probed route.
    pub routes: Vec<RouteFit>,
    /// Link index -> fitted bandwidth / route bottleneck, one per route crossing it.
    pub bandwidth_ratio: BTreeMap<usize, Vec<f64>>,
    /// Link index -> (fitted overhead - route latency) / hops [us], one per route.
    pub extra_latency_us: BTreeMap<usize, Vec<f64>>,
}

/// Least-squares fit of `t = o + bytes * k` minimising relative errors; returns (o, k,
/// median relative error).
pub fn fit_line(samples: &[(usize, f64)]) -> Option<(f64, f64, f64)> {
    let (mut sw, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(n, t) in samples {
        if t <= 0.0 {
            continue;
        }
        let (x, w) = (n as f64, 1.0 / (t * t));
        sw += w;
        sx += w * x;
        sy += w * t;
        sxx += w * x * x;
        sxy += w * x * t;
    }
    let det = sw * sxx - sx * sx;
    if sw == 0.0 || det.abs() < 1e-300 {
        return None;
    }
    let k = ((sw * sxy - sx * sy) / det).max(1e-15);
    let o = (sy - k * sx) / sw;
    let errs: Vec<f64> = samples
        .iter()
        .map(|&(n, t)| ((o + k * n as f64 - t) / t).abs())
        .collect();
    let median = dicesim_stats::median(&dicesim_stats::sorted(&errs)).unwrap_or(f64::NAN);
    Some((o, k, median))
}

/// Device pairs that partition edges connect, with the largest tensor on each [bytes].
fn device_pairs(rig: &Rig) -> BTreeMap<(usize, usize), usize> {
    let prep = &rig.prep;
    let mut pairs: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for e in &prep.plan.edges {
        let (da, db) = (prep.part_device[e.from], prep.part_device[e.to]);
        if da != db {
            let m = pairs.entry((da, db)).or_default();
            *m = (*m).max(e.bytes as usize);
        }
    }
    pairs
}

/// Message sizes probed on a pair whose largest tensor is `largest` bytes: six sizes from
/// 1 KiB up to twice the largest (4 KiB..8 MiB) on a log scale, and the largest itself.
fn probe_sizes(largest: usize) -> Vec<usize> {
    let hi = (2 * largest).clamp(4096, 8 << 20);
    let mut sizes: Vec<usize> = (0..6)
        .map(|i| (1024.0 * (hi as f64 / 1024.0).powf(i as f64 / 5.0)) as usize)
        .collect();
    sizes.push(largest.max(1));
    sizes
}

/// Times messages across every device pair that partition edges connect (one at a time,
/// 3 per size) and fits each route. Without the rig's namespaces (not root) nothing is
/// probed.
pub fn probe_links(rig: &Rig) -> Result<LinkProbe> {
    let pairs = device_pairs(rig);
    let mut probe = LinkProbe::default();
    if rig.host_gflops.is_none() {
        if !pairs.is_empty() {
            eprintln!("validate: links not calibrated (no rig namespaces without root)");
        }
        return Ok(probe);
    }
    for (&(a, b), &largest) in &pairs {
        let samples = match rig.prep.scenario.prep.network.route(a, b) {
            Some(_) => rig.probe(a, b, &probe_sizes(largest), 3)?,
            None => continue,
        };
        probe.add_route(rig, a, b, &samples);
    }
    Ok(probe)
}

impl LinkProbe {
    /// Fits the messages timed from device `a` to `b` and records the route and its links.
    fn add_route(&mut self, rig: &Rig, a: usize, b: usize, samples: &[(usize, f64)]) {
        let pf = &rig.prep.scenario.prep.platform;
        let Some(r) = rig.prep.scenario.prep.network.route(a, b) else {
            return;
        };
        let Some((o, k, err)) = fit_line(samples) else {
            return;
        };
        let bw = 1.0 / k; // bytes/s
        let nominal_bw = r.bottleneck * 1e9;
        let lat = r.latency_ns as f64 / 1e3;
        self.routes.push(RouteFit {
            from: pf.devices[a].name.clone(),
            to: pf.devices[b].name.clone(),
            samples: samples.len(),
            overhead_us: o * 1e6,
            nominal_latency_us: lat,
            bandwidth_mbps: bw * 8.0 / 1e6,
            nominal_mbps: nominal_bw * 8.0 / 1e6,
            fit_error: err,
        });
        let hops = r.links.len().max(1) as f64;
        for &l in &r.links {
            self.bandwidth_ratio
                .entry(l)
                .or_default()
                .push(bw / nominal_bw);
            let extra = (o * 1e6 - lat) / hops;
            self.extra_latency_us.entry(l).or_default().push(extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_fit_recovers_overhead_and_rate() {
        // 300 us + bytes / 12.5 MB/s (100 Mbit/s)
        let t = |n: usize| 300e-6 + n as f64 / 12.5e6;
        let s: Vec<(usize, f64)> = [1024, 8192, 65536, 524288].map(|n| (n, t(n))).into();
        let (o, k, err) = fit_line(&s).unwrap();
        assert!((o - 300e-6).abs() < 1e-9, "{o}");
        assert!((1.0 / k - 12.5e6).abs() < 1.0, "{k}");
        assert!(err < 1e-9);
        assert!(fit_line(&[]).is_none());
    }
}
