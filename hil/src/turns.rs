//! Turns on host CPUs: partitions of one worker whose CPUs overlap run one at a time, in
//! the order they asked (first come, first served), as the simulator has partitions on
//! overlapping core sets take turns.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// A first-come-first-served lock (a ticket lock on a condition variable): a partition
/// that ends a run and starts the next one goes behind those already waiting.
#[derive(Default)]
pub struct Turn {
    /// (next ticket to hand out, ticket being served).
    state: Mutex<(u64, u64)>,
    cv: Condvar,
}

impl Turn {
    fn lock(&self) -> MutexGuard<'_, (u64, u64)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for this caller's turn.
    fn acquire(&self) {
        let mut s = self.lock();
        let ticket = s.0;
        s.0 += 1;
        while s.1 != ticket {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Ends the current turn.
    fn release(&self) {
        self.lock().1 += 1;
        self.cv.notify_all();
    }
}

/// The turns of every host CPU a deployment pins partitions to.
#[derive(Default)]
pub struct Turns(Mutex<HashMap<u32, Arc<Turn>>>);

impl Turns {
    /// The turns of `cpus` (ascending, each once), taken in that order by [`Held::take`].
    pub fn of(&self, cpus: &[u32]) -> Vec<Arc<Turn>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (cpus.iter())
            .map(|c| m.entry(*c).or_default().clone())
            .collect()
    }
}

/// Turns held until dropped.
pub struct Held<'a>(&'a [Arc<Turn>]);

impl<'a> Held<'a> {
    /// Waits for every turn of `turns`, in order (every partition takes its CPUs in
    /// ascending order, so two partitions never wait on each other).
    pub fn take(turns: &'a [Arc<Turn>]) -> Held<'a> {
        for t in turns {
            t.acquire();
        }
        Held(turns)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        for t in self.0.iter().rev() {
            t.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn overlapping_cpus_take_turns_and_disjoint_ones_do_not() {
        let turns = Arc::new(Turns::default());
        let run = |cpus: Vec<u32>| {
            let t = turns.clone();
            std::thread::spawn(move || {
                let mine = t.of(&cpus);
                let _h = Held::take(&mine);
                std::thread::sleep(Duration::from_millis(100));
            })
        };
        let t0 = Instant::now();
        let (a, b) = (run(vec![0, 1]), run(vec![1]));
        a.join().unwrap();
        b.join().unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(200));
        let t0 = Instant::now();
        let (a, b) = (run(vec![0]), run(vec![1]));
        a.join().unwrap();
        b.join().unwrap();
        assert!(t0.elapsed() < Duration::from_millis(190));
    }
}
