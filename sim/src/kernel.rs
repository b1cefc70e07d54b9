//! Discrete-event kernel: integer time, a reproducible event queue with cancellation and
//! timers (one pending event each, moved at will), a seeded random number generator and
//! clocks. It knows nothing about hosts, links or models; the resource models and the
//! engine are built on top of it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Simulated time in nanoseconds since the start of the simulation.
pub type Time = u64;

/// Handle of a scheduled event, used to cancel it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventId(u64);

/// Handle of a timer of an [`EventQueue`]: a slot that holds at most one pending event,
/// replaced each time it is set (a completion that moves whenever rates change). Timers
/// skip the heap: setting one costs no push, and the event it replaces leaves nothing
/// behind to pop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerId(usize);

/// A queue of timed events. Events pop in `(time, sequence)` order, where the sequence
/// number is the order of scheduling (or of setting a timer), so events at the same instant
/// are delivered in the order they were scheduled on every run and every machine.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Reverse<(Time, u64)>>,
    // the pending event of each timer: (time, sequence, event)
    timers: Vec<Option<(Time, u64, E)>>,
    // Payloads indexed by `seq - base`; `None` once popped or cancelled. Sequence numbers
    // grow monotonically so a deque-like vector with a moving base stays compact.
    payloads: std::collections::VecDeque<Option<E>>,
    base: u64,
    next_seq: u64,
    now: Time,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            timers: Vec::new(),
            payloads: std::collections::VecDeque::new(),
            base: 0,
            next_seq: 0,
            now: 0,
        }
    }

    /// Empties the queue (timers stay registered, with nothing pending) and resets time to
    /// 0, keeping allocations.
    pub fn clear(&mut self) {
        self.heap.clear();
        self.timers.iter_mut().for_each(|t| *t = None);
        self.payloads.clear();
        self.base = 0;
        self.next_seq = 0;
        self.now = 0;
    }

    /// The time of the last popped event (the current simulated time).
    pub fn now(&self) -> Time {
        self.now
    }

    /// Schedules `event` at absolute time `at` (clamped to now: the past cannot be scheduled).
    pub fn schedule(&mut self, at: Time, event: E) -> EventId {
        let at = at.max(self.now);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((at, seq)));
        self.payloads.push_back(Some(event));
        EventId(seq)
    }

    /// Schedules `event` `delay_ns` after now.
    pub fn schedule_in(&mut self, delay_ns: Time, event: E) -> EventId {
        self.schedule(self.now.saturating_add(delay_ns), event)
    }

    /// Cancels a pending event; returns whether it was still pending.
    pub fn cancel(&mut self, id: EventId) -> bool {
        if id.0 < self.base {
            return false;
        }
        match self.payloads.get_mut((id.0 - self.base) as usize) {
            Some(slot) => slot.take().is_some(),
            None => false,
        }
    }

    /// A new timer, with nothing pending.
    pub fn timer(&mut self) -> TimerId {
        self.timers.push(None);
        TimerId(self.timers.len() - 1)
    }

    /// Sets timer `t` to deliver `event` at `at` (clamped to now), or, with `None`, to hold
    /// nothing, in place of what it held: the same order as cancelling that and
    /// scheduling this.
    pub fn set_timer(&mut self, t: TimerId, at: Option<Time>, event: E) {
        self.timers[t.0] = at.map(|at| {
            let seq = self.next_seq;
            self.next_seq += 1;
            // every sequence number has its payload slot (heap events find theirs by it)
            self.payloads.push_back(None);
            (at.max(self.now), seq, event)
        });
    }

    /// The `(time, sequence)` of the next pending event in the heap (cancelled events at
    /// the head are dropped on the way).
    fn heap_head(&mut self) -> Option<(Time, u64)> {
        while let Some(&Reverse((t, seq))) = self.heap.peek() {
            let live = seq >= self.base
                && self
                    .payloads
                    .get((seq - self.base) as usize)
                    .is_some_and(Option::is_some);
            if live {
                return Some((t, seq));
            }
            self.heap.pop();
        }
        None
    }

    /// The timer whose event is due first, with its `(time, sequence)`.
    fn first_timer(&self) -> Option<(usize, (Time, u64))> {
        (self.timers.iter().enumerate())
            .filter_map(|(i, t)| t.as_ref().map(|&(at, seq, _)| (i, (at, seq))))
            .min_by_key(|&(_, key)| key)
    }

    /// The time of the next pending event, without popping it.
    pub fn peek_time(&mut self) -> Option<Time> {
        let heap = self.heap_head();
        let timer = self.first_timer().map(|(_, key)| key);
        [heap, timer].into_iter().flatten().min().map(|(t, _)| t)
    }

    /// Pops the next pending event, advancing time to it.
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let heap = self.heap_head();
        if let Some((i, key)) = self.first_timer() {
            if heap.is_none_or(|h| key < h) {
                let (t, _, e) = self.timers[i].take().expect("a pending timer");
                self.now = t;
                return Some((t, e));
            }
        }
        let Reverse((t, seq)) = self.heap.pop()?;
        let payload = self.payloads[(seq - self.base) as usize].take();
        // Drop the consumed prefix so the payload store does not grow without bound.
        while let Some(None) = self.payloads.front() {
            self.payloads.pop_front();
            self.base += 1;
        }
        self.now = t;
        payload.map(|e| (t, e))
    }

    /// Whether no event is pending (cancelled events excepted lazily).
    pub fn is_empty(&self) -> bool {
        self.payloads.iter().all(|p| p.is_none()) && self.timers.iter().all(Option::is_none)
    }
}

/// A small, fast, seeded pseudo-random generator (xoshiro256**, seeded by splitmix64).
/// Implemented here so that a seed gives the same stream on every machine and every
/// version of every dependency.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut sm = seed;
        let mut next = || {
            sm = sm.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = sm;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A uniform float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A uniform integer in `[0, n)`; `n` must be positive.
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift (Lemire) without rejection: bias is below 2^-32 for the small
        // ranges used by the search, and the result stays reproducible.
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// `v` in a uniformly random order (Fisher-Yates).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i as u64 + 1) as usize);
        }
    }
}

/// How simulated time relates to wall-clock time.
pub trait Clock {
    /// Called before an event at simulated time `t` is processed; may sleep.
    fn advance_to(&mut self, t: Time);
}

/// Runs the simulation as fast as possible (the default).
#[derive(Debug, Default, Clone, Copy)]
pub struct AsFastAsPossible;

impl Clock for AsFastAsPossible {
    fn advance_to(&mut self, _t: Time) {}
}

/// Paces the simulation so that simulated time follows wall-clock time, scaled by
/// `speed` (2.0: twice as fast as real time). Useful for live demonstrations.
#[derive(Debug, Clone)]
pub struct WallClock {
    start: std::time::Instant,
    speed: f64,
}

impl WallClock {
    /// A clock starting now, `speed` simulated seconds per wall-clock second.
    pub fn new(speed: f64) -> Self {
        WallClock {
            start: std::time::Instant::now(),
            speed: if speed > 0.0 { speed } else { 1.0 },
        }
    }
}

impl Clock for WallClock {
    fn advance_to(&mut self, t: Time) {
        let target = std::time::Duration::from_secs_f64(t as f64 / 1e9 / self.speed);
        let elapsed = self.start.elapsed();
        if target > elapsed {
            std::thread::sleep(target - elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shuffle_is_a_permutation_and_moves_things() {
        let mut rng = Rng::new(11);
        let mut v: Vec<u32> = (0..50).collect();
        rng.shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
        let mut one = vec![7];
        rng.shuffle(&mut one);
        assert_eq!(one, vec![7]);
        rng.shuffle::<u8>(&mut []);
    }

    #[test]
    fn ties_pop_in_schedule_order_and_cancel_works() {
        let mut q = EventQueue::new();
        q.schedule(10, "b");
        let c = q.schedule(5, "x");
        q.schedule(10, "c");
        q.schedule(5, "a");
        assert!(q.cancel(c));
        assert!(!q.cancel(c));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(5, "a"), (10, "b"), (10, "c")]);
        assert!(q.is_empty());
        // cancel the oldest, then pop past it: the trimmed slot must be skipped
        let a = q.schedule(20, "a");
        q.schedule(30, "b");
        q.cancel(a);
        q.schedule(25, "c");
        assert_eq!(q.pop(), Some((25, "c")));
        assert_eq!(q.pop(), Some((30, "b")));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn a_timer_holds_its_last_setting_in_schedule_order() {
        let mut q = EventQueue::new();
        let t = q.timer();
        q.set_timer(t, Some(10), "first setting, replaced");
        q.schedule(10, "a");
        q.set_timer(t, Some(10), "t");
        q.schedule(10, "b");
        q.schedule(5, "early");
        assert_eq!(q.peek_time(), Some(5));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(5, "early"), (10, "a"), (10, "t"), (10, "b")]);
        assert!(q.is_empty());
        q.set_timer(t, Some(3), "in the past");
        assert_eq!(q.pop(), Some((10, "in the past")), "clamped to now");
        q.set_timer(t, Some(20), "stopped");
        q.set_timer(t, None, "nothing");
        assert!(q.is_empty());
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn peek_skips_cancelled_events() {
        let mut q = EventQueue::new();
        let a = q.schedule(5, "a");
        q.schedule(7, "b");
        q.cancel(a);
        assert_eq!(q.peek_time(), Some(7));
        assert_eq!(q.pop(), Some((7, "b")));
        assert_eq!(q.peek_time(), None);
    }

    #[test]
    fn rng_is_reproducible() {
        let mut a = Rng::new(42);
        let mut b = Rng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let x = a.next_f64();
        assert!((0.0..1.0).contains(&x));
        assert!(a.below(7) < 7);
    }
}
