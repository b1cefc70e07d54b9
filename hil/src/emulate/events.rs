//! Replays the scenario's platform events (`[[event]]`, `[[trace]]`: docs/events.md) on the
//! rig while frames stream, from the moment the coordinator starts streaming, at `at_ms x
//! D` host time (D the time dilation): a device going down has its worker killed (SIGKILL,
//! as a board losing power takes its process with it; the coordinator notices the closed
//! connections); a link's new rate re-shapes both ends of its veths (`tc qdisc change` of
//! their `tbf`, at the rate / D). A device coming back up is not replayed (its worker is
//! not restarted; the run says so), nor is a rate change without root (the loopback rig
//! shapes in the sending workers, fixed at deployment).

use crate::coord::Replayed;
use anyhow::Result;
use dicesim_sim::events::{Action, Event};
use dicesim_sim::platform::Platform;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest wait between two looks at the clock and the stop flag.
const TICK: Duration = Duration::from_millis(5);

/// What the replay acts on.
#[derive(Debug, Clone, Default)]
pub(super) struct Targets {
    /// Device index -> its worker's process id.
    pub workers: BTreeMap<usize, u32>,
    /// Link index -> its veths as (namespace, interface); empty without root.
    pub veths: BTreeMap<usize, Vec<(String, String)>>,
}

/// A replay in progress; stopped (and joined) when dropped.
pub(super) struct Replay {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the replay needs besides its targets.
pub(super) struct Plan {
    /// Events by time.
    pub events: Vec<Event>,
    /// The platform (names for the log, rates).
    pub platform: Platform,
    /// Time dilation D.
    pub dilation: f64,
    /// The coordinator's clock: when streaming started; when devices went down.
    pub replayed: Arc<Replayed>,
}

/// Starts replaying `plan`'s events on a thread of its own; None when there are none.
pub(super) fn start(plan: Plan, targets: Targets) -> Option<Replay> {
    if plan.events.is_empty() {
        return None;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || replay(&plan, &targets, &flag));
    Some(Replay {
        stop,
        thread: Some(thread),
    })
}

/// Applies each event at its time, until the events run out or `stop` is set.
fn replay(plan: &Plan, targets: &Targets, stop: &AtomicBool) {
    let Some(t0) = wait_for(|| plan.replayed.started.get().copied(), stop) else {
        return;
    };
    for e in &plan.events {
        let at = t0 + Duration::from_secs_f64(e.at_ms.max(0.0) / 1e3 * plan.dilation);
        if wait_for(|| (Instant::now() >= at).then_some(()), stop).is_none() {
            return;
        }
        let what = e.describe(&plan.platform);
        let ms = t0.elapsed().as_secs_f64() * 1e3 / plan.dilation;
        match apply(plan, targets, &e.action) {
            Ok(done) => eprintln!("dicesim emulate: {ms:.1} ms: {what}: {done}"),
            Err(err) => eprintln!("dicesim emulate: {ms:.1} ms: {what}: not replayed: {err:#}"),
        }
    }
}

/// Polls `ready` every [`TICK`] until it gives a value, or None once `stop` is set.
fn wait_for<T>(mut ready: impl FnMut() -> Option<T>, stop: &AtomicBool) -> Option<T> {
    loop {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        if let Some(t) = ready() {
            return Some(t);
        }
        std::thread::sleep(TICK);
    }
}

/// Applies one event; what was done, in words.
fn apply(plan: &Plan, targets: &Targets, a: &Action) -> Result<String> {
    match *a {
        Action::Down { device } => {
            let pid = (targets.workers.get(&device).copied())
                .ok_or_else(|| anyhow::anyhow!("the device runs no worker in this rig"))?;
            super::kill_worker(pid)?;
            plan.replayed.went_down(device, Instant::now());
            Ok(format!("worker {pid} killed"))
        }
        Action::Up { .. } => anyhow::bail!("restarting a worker is not supported"),
        Action::Bandwidth { link, mbps } => {
            let veths = (targets.veths.get(&link))
                .filter(|v| !v.is_empty())
                .ok_or_else(|| anyhow::anyhow!("links are shaped by tc only as root"))?;
            for (ns, dev) in veths {
                super::netns::reshape(ns, dev, mbps, plan.dilation)?;
            }
            plan.replayed.rate_changed(link, Instant::now());
            Ok(format!("{} veth ends re-shaped", veths.len()))
        }
    }
}
