//! Shared resources: amounts of work (bytes of a transfer, bytes a job moves through memory)
//! that progress at rates set by sharing the capacity of the resources they cross.
//!
//! The engine talks to a [`SharingModel`] only: start a flow, ask when the next one drains,
//! take the drained ones (as dslab-network's `NetworkModel` does). [`MaxMinSharing`] is the
//! model of SimGrid's flow model with factors of 1: every flow gets its max-min fair share of
//! every resource on its route, re-shared whenever a flow starts or ends (unless that flow
//! is alone on its whole route: then no other flow's share changes). It knows nothing of
//! links or devices: a resource is a capacity, a route a list of resource indices. So the
//! network's link directions and shared media are one user of it, and a device's memory
//! bandwidth shared by jobs on several cores can be another, with its own capacities.

use crate::kernel::Time;

/// A model of flows sharing resources. Time is the engine's (integer ns); amounts and
/// capacities are in any one unit (bytes and bytes/ns for the network).
pub trait SharingModel<'r> {
    /// Brings every active flow's remaining amount up to `now` at its current rate.
    fn advance(&mut self, now: Time);

    /// Starts a flow of `amount` over `route` (resource indices) at `now` and re-shares.
    /// `tag` is the caller's name for the flow, handed back when it drains.
    fn start(&mut self, now: Time, tag: u64, amount: f64, route: &'r [usize]);

    /// Removes the flows that have drained by `now` (after [`SharingModel::advance`]), pushes
    /// their tags in start order onto `done`, and re-shares among the others.
    fn finish_due(&mut self, now: Time, done: &mut Vec<u64>);

    /// When the next active flow drains, as computed at the last re-share (`None`: idle).
    fn next_completion(&self) -> Option<Time>;

    /// Changes resource `r`'s capacity from `now` on and re-shares (a link's rate changing
    /// during a run).
    fn change_capacity(&mut self, now: Time, r: usize, capacity: f64);
}

/// One active flow.
#[derive(Debug, Clone)]
struct ActiveFlow {
    tag: u64,
    remaining: f64,
    rate: f64,
}

impl ActiveFlow {
    /// Time to drain at the current rate [ns] (0 once drained, even at a rate of 0).
    fn time_left(&self) -> f64 {
        if self.remaining <= 0.0 {
            return 0.0;
        }
        self.remaining / self.rate
    }
}

/// Max-min fair sharing of resources with fixed capacities (progressive filling).
#[derive(Debug, Clone)]
pub struct MaxMinSharing<'r> {
    capacity: Vec<f64>,
    flows: Vec<ActiveFlow>,
    // routes[i]: resources of flows[i] (kept apart so the solver reads them as one slice)
    routes: Vec<&'r [usize]>,
    rates: Vec<f64>,
    scratch: MaxMinScratch,
    // users[r]: the active flows crossing resource r
    users: Vec<u32>,
    // time up to which `remaining` is accounted
    updated: Time,
    next: Option<Time>,
}

/// A flow with at most this much time left at its rate is finished [ns]: the float error
/// of `remaining / rate` and of `rate * dt` carried over re-shares, far below the engine's
/// 1 ns step.
const DRAINED_NS: f64 = 1e-3;

impl<'r> MaxMinSharing<'r> {
    /// A model over resources of the given capacities (amount per ns).
    pub fn new(capacity: Vec<f64>) -> Self {
        MaxMinSharing {
            users: vec![0; capacity.len()],
            capacity,
            flows: Vec::new(),
            routes: Vec::new(),
            rates: Vec::new(),
            scratch: MaxMinScratch::default(),
            updated: 0,
            next: None,
        }
    }

    /// Changes resource `r`'s capacity from `now` on (a job's own rate limit when it
    /// starts), and re-shares.
    pub fn set_capacity(&mut self, now: Time, r: usize, capacity: f64) {
        self.advance(now);
        self.capacity[r] = capacity;
        self.reshare(now);
    }

    /// Starts a flow as [`SharingModel::start`] does, on a route whose resource `r` no
    /// active flow crosses (the new flow's own rate limit), with `r`'s capacity set to
    /// `capacity` first: at most one re-share where [`Self::set_capacity`] and then
    /// [`SharingModel::start`] take two, with the same rates.
    pub fn start_limited(
        &mut self,
        now: Time,
        (r, capacity): (usize, f64),
        tag: u64,
        amount: f64,
        route: &'r [usize],
    ) {
        debug_assert!(
            self.users[r] == 0,
            "resource {r} is a limit of its own flow only"
        );
        self.capacity[r] = capacity;
        self.start(now, tag, amount, route);
    }

    /// Re-solves the rates and the next completion time ([`Self::schedule_next`]).
    fn reshare(&mut self, now: Time) {
        if !self.flows.is_empty() {
            let flows = Flows {
                routes: &self.routes,
                users: &self.users,
            };
            max_min_rates_of(&self.capacity, flows, &mut self.rates, &mut self.scratch);
            for (fl, &r) in self.flows.iter_mut().zip(&self.rates) {
                fl.rate = r;
            }
        }
        self.schedule_next(now);
    }

    /// The next completion from the flows' current rates: the first whole ns at which a
    /// flow has at most [`DRAINED_NS`] left, the test `finish_due` applies then.
    /// (Rounding its time left up instead would turn a float error above a whole number
    /// into 1 ns more: a job alone would take its time alone or 1 ns more depending on how
    /// many re-shares happened meanwhile.)
    fn schedule_next(&mut self, now: Time) {
        let dt = (self.flows.iter()).fold(f64::INFINITY, |dt, fl| dt.min(fl.time_left()));
        self.next =
            (!self.flows.is_empty()).then(|| now + (dt - DRAINED_NS).max(0.0).ceil() as Time);
    }

    /// Counts a flow on `route`'s resources; returns whether it is alone on its whole route
    /// (no other flow, and no second crossing of its own, on any of them).
    fn join(&mut self, route: &[usize]) -> bool {
        let mut alone = true;
        for &r in route {
            alone &= self.users[r] == 0;
            self.users[r] += 1;
        }
        alone
    }

    /// Uncounts a flow on `route`'s resources; returns whether it was alone on its whole
    /// route (as [`Self::join`]).
    fn leave(&mut self, route: &[usize]) -> bool {
        let mut alone = true;
        for &r in route {
            self.users[r] -= 1;
            alone &= self.users[r] == 0;
        }
        alone
    }

    /// Removes flow `i`, pushes its tag onto `done`; returns whether it was alone on its
    /// whole route ([`Self::leave`]).
    fn remove(&mut self, i: usize, done: &mut Vec<u64>) -> bool {
        done.push(self.flows.remove(i).tag);
        let route = self.routes.remove(i);
        self.leave(route)
    }

    /// The flow closest to draining (the first of equals).
    fn closest(&self) -> Option<usize> {
        (self.flows.iter().enumerate())
            .min_by(|a, b| a.1.time_left().total_cmp(&b.1.time_left()))
            .map(|(i, _)| i)
    }
}

impl<'r> SharingModel<'r> for MaxMinSharing<'r> {
    fn advance(&mut self, now: Time) {
        let dt = (now - self.updated) as f64;
        for fl in self.flows.iter_mut() {
            fl.remaining -= fl.rate * dt;
        }
        self.updated = now;
    }

    /// A flow alone on its whole route changes no other flow's share (max-min sharing
    /// splits into the groups of flows linked by common resources): it takes its narrowest
    /// resource's capacity and the others keep their rates, which a re-share would give
    /// them again bit for bit; only a flow that meets others re-shares.
    fn start(&mut self, now: Time, tag: u64, amount: f64, route: &'r [usize]) {
        self.advance(now);
        let alone = self.join(route);
        self.flows.push(ActiveFlow {
            tag,
            remaining: amount,
            rate: narrowest(&self.capacity, route),
        });
        self.routes.push(route);
        if alone {
            self.schedule_next(now);
        } else {
            self.reshare(now);
        }
    }

    fn finish_due(&mut self, now: Time, done: &mut Vec<u64>) {
        let first = done.len();
        let mut alone = true;
        // removing from the back keeps the lower indices valid; tags are then put back in
        // start order
        for i in (0..self.flows.len()).rev() {
            if self.flows[i].time_left() <= DRAINED_NS {
                alone &= self.remove(i, done);
            }
        }
        done[first..].reverse();
        // if rounding left every flow a hair short, the one closest to draining is done
        if done.len() == first {
            if let Some(i) = self.closest() {
                alone &= self.remove(i, done);
            }
        }
        // flows that were alone on their routes leave the others' shares as they were
        if alone {
            self.schedule_next(now);
        } else {
            self.reshare(now);
        }
    }

    fn next_completion(&self) -> Option<Time> {
        self.next
    }

    fn change_capacity(&mut self, now: Time, r: usize, capacity: f64) {
        self.set_capacity(now, r, capacity);
    }
}

/// A flow's rate alone: the capacity of the narrowest resource on `route` (infinite on an
/// empty route).
fn narrowest(capacity: &[f64], route: &[usize]) -> f64 {
    (route.iter()).fold(f64::INFINITY, |rate, &r| rate.min(capacity[r].max(0.0)))
}

/// Max-min fair rates by progressive filling.
///
/// `flows[i]` lists the resources flow `i` crosses; `capacity[r]` is resource r's capacity.
/// Writes each flow's rate into `rates`. `scratch` buffers are reused between calls to
/// avoid allocation. Every flow with a non-empty route gets a positive rate.
pub fn max_min_rates(
    capacity: &[f64],
    flows: &[&[usize]],
    rates: &mut Vec<f64>,
    scratch: &mut MaxMinScratch,
) {
    let users = users_of(capacity.len(), flows);
    let flows = Flows {
        routes: flows,
        users: &users,
    };
    max_min_rates_of(capacity, flows, rates, scratch);
}

/// How many of `flows` cross each of `resources` resources.
fn users_of(resources: usize, flows: &[&[usize]]) -> Vec<u32> {
    let mut users = vec![0u32; resources];
    for &r in flows.iter().flat_map(|f| f.iter()) {
        users[r] += 1;
    }
    users
}

/// Flows and how many of them cross each resource (a route that crosses a resource twice
/// counts twice).
#[derive(Clone, Copy)]
struct Flows<'f, 'r> {
    routes: &'f [&'r [usize]],
    users: &'f [u32],
}

/// [`max_min_rates`] of flows already counted on their resources.
fn max_min_rates_of(
    capacity: &[f64],
    flows: Flows<'_, '_>,
    rates: &mut Vec<f64>,
    scratch: &mut MaxMinScratch,
) {
    rates.clear();
    if let [route] = flows.routes {
        // one flow: its narrowest resource (the common case of a job or a transfer alone)
        rates.push(narrowest(capacity, route));
        return;
    }
    if scratch.all_alone(capacity, flows, rates) {
        return;
    }
    progressive_filling(capacity, flows.routes, rates, scratch);
}

/// [`max_min_rates`] step by step: the most constrained resource (the smallest equal share
/// of what is left) fixes the rates of the flows crossing it, until every flow has one.
fn progressive_filling(
    capacity: &[f64],
    flows: &[&[usize]],
    rates: &mut Vec<f64>,
    scratch: &mut MaxMinScratch,
) {
    rates.clear();
    rates.resize(flows.len(), 0.0);
    scratch.reset(capacity, flows);
    // ties go to the lowest resource index ([`MaxMinScratch::most_constrained`])
    scratch.touched.sort_unstable();
    scratch.frozen.clear();
    scratch.frozen.resize(flows.len(), false);
    let mut left = flows.iter().filter(|f| !f.is_empty()).count();
    for (i, f) in flows.iter().enumerate() {
        if f.is_empty() {
            scratch.frozen[i] = true;
            rates[i] = f64::INFINITY;
        }
    }
    while left > 0 {
        let Some((best, share)) = scratch.most_constrained() else {
            break;
        };
        for (i, f) in flows.iter().enumerate() {
            if !scratch.frozen[i] && f.contains(&best) {
                scratch.frozen[i] = true;
                rates[i] = share;
                left -= 1;
                for &r in f.iter() {
                    scratch.remaining[r] -= share;
                    scratch.count[r] -= 1;
                }
            }
        }
    }
}

/// The share of a resource's capacity that must stay unused when every flow crossing it
/// runs at its rate alone, for [`MaxMinScratch::all_alone`] to apply (far above the rounding
/// of the sums, so that the shortcut gives what progressive filling gives, bit for bit).
const ALONE_MARGIN: f64 = 1e-9;

/// Reusable buffers for [`max_min_rates`].
#[derive(Debug, Default, Clone)]
pub struct MaxMinScratch {
    remaining: Vec<f64>,
    count: Vec<u32>,
    frozen: Vec<bool>,
    /// The resources some flow crosses (the only ones a share is computed for); ascending
    /// during progressive filling.
    touched: Vec<usize>,
    /// `stamp[r] == epoch`: `remaining[r]` was set in this call of `all_alone`.
    stamp: Vec<u64>,
    epoch: u64,
}

impl MaxMinScratch {
    /// Counts the flows on each resource and sets the touched resources' remaining
    /// capacity; only the touched entries are written (a memory system has a resource per
    /// unit and a few of them carry flows).
    fn reset(&mut self, capacity: &[f64], flows: &[&[usize]]) {
        if self.count.len() < capacity.len() {
            self.count.resize(capacity.len(), 0);
            self.remaining.resize(capacity.len(), 0.0);
        }
        for &r in &self.touched {
            self.count[r] = 0;
        }
        self.touched.clear();
        for f in flows {
            for &r in f.iter() {
                if self.count[r] == 0 {
                    self.touched.push(r);
                    self.remaining[r] = capacity[r];
                }
                self.count[r] += 1;
            }
        }
    }

    /// When every flow can have its narrowest resource's capacity (its rate alone: on
    /// every resource two or more flows cross, those rates add up to less than the
    /// capacity, by a margin of [`ALONE_MARGIN`]), writes those rates into `rates` and
    /// returns true; progressive filling would give each flow exactly that (the most
    /// constrained resource is always a flow's own narrowest one, crossed by it alone), so
    /// this only skips its steps. Only the shared resources are written, each set to its
    /// capacity at its first flow of this call (`stamp`).
    fn all_alone(&mut self, capacity: &[f64], flows: Flows<'_, '_>, rates: &mut Vec<f64>) -> bool {
        if self.stamp.len() < capacity.len() {
            self.stamp.resize(capacity.len(), 0);
            self.remaining.resize(capacity.len(), 0.0);
        }
        self.epoch += 1;
        let shared = |r: usize| flows.users[r] >= 2;
        for f in flows.routes {
            let rate = narrowest(capacity, f);
            rates.push(rate);
            for &r in f.iter().filter(|&&r| shared(r)) {
                if self.stamp[r] != self.epoch {
                    self.stamp[r] = self.epoch;
                    self.remaining[r] = capacity[r];
                }
                self.remaining[r] -= rate;
            }
        }
        let fits = |&r: &usize| !shared(r) || self.remaining[r] >= capacity[r] * ALONE_MARGIN;
        (flows.routes.iter()).all(|f| f.iter().all(fits)) && rates.iter().all(|r| r.is_finite())
    }

    /// The resource whose equal share is the smallest, and that share. It fixes the rate of
    /// every flow crossing it; ties go to the lowest index so the outcome never depends on
    /// iteration accidents.
    fn most_constrained(&self) -> Option<(usize, f64)> {
        let mut best = None;
        let mut share = f64::INFINITY;
        for &r in &self.touched {
            let n = self.count[r];
            if n > 0 {
                let x = self.remaining[r].max(0.0) / n as f64;
                if x < share {
                    share = x;
                    best = Some(r);
                }
            }
        }
        best.map(|r| (r, share))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reused_buffers_give_what_fresh_ones_give() {
        // the scratch keeps counts only for the resources the last call touched
        let cap = [1.0, 2.0, 4.0, 8.0];
        let calls: [Vec<&[usize]>; 4] = [
            vec![&[0, 1], &[1], &[2]],
            vec![&[3]],
            vec![&[2, 3], &[3], &[0]],
            vec![&[1, 2], &[0, 1], &[], &[2]],
        ];
        let mut scratch = MaxMinScratch::default();
        for flows in &calls {
            let (mut reused, mut fresh) = (Vec::new(), Vec::new());
            max_min_rates(&cap, flows, &mut reused, &mut scratch);
            max_min_rates(&cap, flows, &mut fresh, &mut MaxMinScratch::default());
            assert_eq!(reused, fresh, "{flows:?}");
        }
        let mut rates = Vec::new();
        max_min_rates(&cap, &calls[3], &mut rates, &mut scratch);
        // r0 (1 flow) and r1 (2 flows) both share 1: f1 gets 1 on r0, then f0 the 1 left on
        // r1, f3 the 3 left on r2
        assert_eq!(rates, vec![1.0, 1.0, f64::INFINITY, 3.0]);
    }

    #[test]
    fn flows_that_all_fit_alone_get_what_filling_gives_them_bit_for_bit() {
        // jobs as the memory system has them: each flow its own limit, a shared unit
        // bandwidth and a shared device bandwidth, limits drawn below or around the shares
        let mut rng = crate::kernel::Rng::new(7);
        let mut scratch = MaxMinScratch::default();
        let (mut cases, mut alone) = (0, 0);
        for _ in 0..5000 {
            let n = 2 + rng.below(5) as usize;
            let mut cap: Vec<f64> = (0..n).map(|_| 0.1 + 10.0 * rng.next_f64()).collect();
            cap.push(5.0 + 40.0 * rng.next_f64()); // unit
            cap.push(5.0 + 40.0 * rng.next_f64()); // device
            let routes: Vec<Vec<usize>> = (0..n)
                .map(|i| match rng.below(3) {
                    0 => vec![i, n + 1],
                    _ => vec![i, n, n + 1],
                })
                .collect();
            let flows: Vec<&[usize]> = routes.iter().map(|r| r.as_slice()).collect();
            let (mut fast, mut slow) = (Vec::new(), Vec::new());
            let users = users_of(cap.len(), &flows);
            let counted = Flows {
                routes: &flows,
                users: &users,
            };
            alone += usize::from(scratch.all_alone(&cap, counted, &mut fast));
            max_min_rates(&cap, &flows, &mut fast, &mut scratch);
            progressive_filling(&cap, &flows, &mut slow, &mut MaxMinScratch::default());
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&slow), "{cap:?} {routes:?}");
            cases += 1;
        }
        // both kinds of case were drawn
        assert!(alone > 500 && alone < cases - 500, "{alone} of {cases}");
    }

    #[test]
    fn rates_kept_for_flows_alone_on_their_routes_are_what_a_re_share_gives() {
        // after every start and every completion each flow's rate is, bit for bit, what
        // max-min sharing of all active flows gives; routes over 12 resources, some
        // meeting others, some alone
        let mut rng = crate::kernel::Rng::new(11);
        let cap: Vec<f64> = (0..12).map(|_| 0.5 + 4.0 * rng.next_f64()).collect();
        let routes: Vec<Vec<usize>> = (0..60)
            .map(|_| {
                (0..1 + rng.below(3))
                    .map(|_| rng.below(12) as usize)
                    .collect()
            })
            .collect();
        let mut m = MaxMinSharing::new(cap.clone());
        let (mut now, mut alone, mut done) = (0, 0, Vec::new());
        let check = |m: &MaxMinSharing| {
            let mut want = Vec::new();
            max_min_rates(&cap, &m.routes, &mut want, &mut MaxMinScratch::default());
            let have: Vec<u64> = m.flows.iter().map(|f| f.rate.to_bits()).collect();
            assert_eq!(have, want.iter().map(|r| r.to_bits()).collect::<Vec<_>>());
        };
        for (i, route) in routes.iter().enumerate() {
            alone += usize::from(route.iter().all(|&r| m.users[r] == 0));
            m.start(now, i as u64, 1.0 + 20.0 * rng.next_f64(), route);
            check(&m);
            now += rng.below(10);
            while m.next_completion().is_some_and(|t| t <= now) {
                let t = m.next_completion().expect("checked");
                m.advance(t);
                m.finish_due(t, &mut done);
                check(&m);
            }
        }
        while let Some(t) = m.next_completion() {
            m.advance(t);
            m.finish_due(t, &mut done);
            check(&m);
        }
        assert_eq!(done.len(), routes.len(), "every flow drained");
        // both kinds of start were drawn
        assert!(
            alone > 5 && alone < routes.len() - 5,
            "{alone} of {}",
            routes.len()
        );
    }

    /// When flow 0 (`amount` at its own limit `amount / alone` on resource 0) drains while
    /// other flows start on resource 1 at the given times and drain in between.
    fn drain_among_others(amount: f64, alone: Time, others: &[(Time, f64)]) -> Time {
        let (own, other) = ([0usize], [1usize]);
        let mut m = MaxMinSharing::new(vec![amount / alone as f64, 1.0]);
        m.start(0, 0, amount, &own);
        let (mut starts, mut done) = (others.iter().peekable(), Vec::new());
        loop {
            let next_start = starts.peek().map(|s| s.0);
            let next = m.next_completion().expect("flow 0 active");
            if next_start.is_some_and(|t| t < next) {
                let (t, bytes) = starts.next().copied().expect("peeked");
                m.start(t, 1, bytes, &other);
                continue;
            }
            m.advance(next);
            m.finish_due(next, &mut done);
            if done.contains(&0) {
                return next;
            }
        }
    }

    #[test]
    fn a_flow_alone_on_its_resource_ends_at_its_time_alone_whatever_else_happens() {
        // the float error of amount / (amount / alone), and of the remaining amount carried
        // over the re-shares that other flows cause, must not add a ns
        let mut rng = crate::kernel::Rng::new(11);
        for _ in 0..2000 {
            let amount = 1e3 + rng.below(2_000_000) as f64;
            let alone = 10_000 + rng.below(100_000_000);
            let mut others: Vec<(Time, f64)> = (0..1 + rng.below(30))
                .map(|_| (rng.below(alone), 1.0 + rng.below(1_000_000) as f64))
                .collect();
            others.sort_by_key(|o| o.0);
            assert_eq!(
                drain_among_others(amount, alone, &others),
                alone,
                "{amount} bytes, {alone} ns alone, others {others:?}"
            );
        }
    }

    #[test]
    fn max_min_classic() {
        // r0 cap 1, r1 cap 2; f0 on r0, f1 on r0+r1, f2 on r1
        let cap = [1.0, 2.0];
        let flows: Vec<&[usize]> = vec![&[0], &[0, 1], &[1]];
        let mut rates = Vec::new();
        max_min_rates(&cap, &flows, &mut rates, &mut MaxMinScratch::default());
        assert_eq!(rates, vec![0.5, 0.5, 1.5]);
    }

    #[test]
    fn flows_share_then_the_survivor_speeds_up() {
        // two flows of 100 on one resource of capacity 1: both at 0.5; the shorter (50)
        // drains at t = 100, then the other runs alone at 1.0 and drains at t = 150
        let route = [0usize];
        let mut m = MaxMinSharing::new(vec![1.0]);
        m.start(0, 7, 100.0, &route);
        m.start(0, 8, 50.0, &route);
        assert_eq!(m.next_completion(), Some(100));
        let mut done = Vec::new();
        m.advance(100);
        m.finish_due(100, &mut done);
        assert_eq!(done, vec![8]);
        assert_eq!(m.next_completion(), Some(150));
        m.advance(150);
        m.finish_due(150, &mut done);
        assert_eq!(done, vec![8, 7]);
        assert_eq!(m.next_completion(), None);
    }

    #[test]
    fn disjoint_resources_do_not_interfere() {
        // a memory-bandwidth-like use: two jobs on two resources, one job on both
        let (a, b, ab) = ([0usize], [1usize], [0usize, 1]);
        let mut m = MaxMinSharing::new(vec![2.0, 2.0]);
        m.start(0, 1, 10.0, &a);
        m.start(0, 2, 10.0, &b);
        m.start(0, 3, 10.0, &ab);
        // each resource: two flows at 1.0 -> every flow drains at t = 10
        assert_eq!(m.next_completion(), Some(10));
        let mut done = Vec::new();
        m.advance(10);
        m.finish_due(10, &mut done);
        assert_eq!(done, vec![1, 2, 3]);
    }
}
