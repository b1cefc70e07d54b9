//! Admission of connections: before they authenticate, a bound on handshakes in progress,
//! in all and per remote address, so that a flood of idle sockets (each waiting out the
//! handshake deadline) cannot starve a legitimate coordinator; after, a bound on
//! authenticated connections open at once ([`Slots`]), since each may buffer an upload
//! of up to `--max-model-mb` or a frame of up to 128 MiB.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Handshakes in progress at once, in all.
pub const MAX_HANDSHAKES: usize = 64;
/// Handshakes in progress at once from one address.
pub const MAX_HANDSHAKES_PER_ADDR: usize = 8;

/// Authenticated connections (coordinators and peer workers) open at once, by default
/// (`--max-connections`): a deployment over 16 workers needs at most 15 peers' connections
/// and its coordinator's on one worker.
pub const MAX_CONNECTIONS: usize = 16;

/// Counts handshakes in progress.
#[derive(Debug)]
pub struct Gate {
    total: usize,
    per_addr: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A place in the gate, given back when dropped (the handshake ended, either way).
#[derive(Debug)]
pub struct Pass {
    gate: Arc<Gate>,
    addr: IpAddr,
}

impl Gate {
    /// A gate admitting `total` handshakes at once, at most `per_addr` from one address.
    pub fn new(total: usize, per_addr: usize) -> Arc<Gate> {
        Arc::new(Gate {
            total,
            per_addr,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    /// A pass for a handshake from `addr`, or None when either bound is reached (then the
    /// connection is closed at once rather than queued).
    pub fn enter(self: &Arc<Self>, addr: IpAddr) -> Option<Pass> {
        let mut g = self.open.lock().unwrap();
        let mine = g.1.get(&addr).copied().unwrap_or(0);
        if g.0 >= self.total || mine >= self.per_addr {
            return None;
        }
        g.0 += 1;
        g.1.insert(addr, mine + 1);
        Some(Pass {
            gate: self.clone(),
            addr,
        })
    }

    /// Handshakes in progress.
    pub fn in_progress(&self) -> usize {
        self.open.lock().unwrap().0
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut g = self.gate.open.lock().unwrap();
        g.0 -= 1;
        if let Some(n) = g.1.get_mut(&self.addr) {
            *n -= 1;
            if *n == 0 {
                g.1.remove(&self.addr);
            }
        }
    }
}

/// Counts authenticated connections open, up to a bound.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    used: Mutex<usize>,
}

/// A connection's place among [`Slots`], given back when dropped (the connection ended).
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    /// Room for `max` connections at once.
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            used: Mutex::new(0),
        })
    }

    /// A slot, or None when `max` connections are open.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        let mut used = self.used.lock().unwrap();
        if *used >= self.max {
            return None;
        }
        *used += 1;
        Some(Slot(self.clone()))
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Connections holding a slot.
    pub fn in_use(&self) -> usize {
        *self.used.lock().unwrap()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *self.0.used.lock().unwrap() -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_in_all_and_per_address_and_passes_return() {
        let g = Gate::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let p1 = g.enter(a).unwrap();
        let _p2 = g.enter(a).unwrap();
        assert!(g.enter(a).is_none(), "per address");
        let _p3 = g.enter(b).unwrap();
        assert!(g.enter(b).is_none(), "in all");
        drop(p1);
        assert_eq!(g.in_progress(), 2);
        assert!(g.enter(b).is_some());
    }

    #[test]
    fn slots_bound_and_return() {
        let s = Slots::new(2);
        let a = s.take().unwrap();
        let _b = s.take().unwrap();
        assert!(s.take().is_none());
        drop(a);
        assert_eq!(s.in_use(), 1);
        assert!(s.take().is_some());
    }
}
