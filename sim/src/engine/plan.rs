//! What the engine simulates: partitions on units, the connections between them, and how
//! frames enter. Built by the prepared scenario (or by hand in tests); the engine owns these
//! types so that it depends on nothing above it.

use crate::kernel::Time;

/// How frames enter the pipeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    /// Number of frames.
    pub frames: u32,
    /// Interval between frame arrivals [ns]; 0 saturates (a frame enters as soon as the first
    /// partition can take it).
    pub period_ns: Time,
    /// How many frames may be in flight (admitted and not yet completed).
    pub window: Window,
}

/// The admission window: frame `f` is admitted once it has arrived and frame `f - window`
/// has completed, and its latency counts from its admission, as the coordinator of real runs
/// and of the emulation rig admits frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// The plan's partitions + this many: the coordinator's default (partitions + 2), so a
    /// saturated run keeps every partition busy without queues growing with the frame count.
    PartitionsPlus(u32),
    /// At most this many frames (at least 1).
    Frames(u32),
    /// No limit: a frame enters when its first partition can take it, and with period 0
    /// queues grow with the number of frames.
    #[default]
    Unlimited,
}

/// The coordinator's default window: partitions + 2.
pub const DEFAULT_WINDOW: Window = Window::PartitionsPlus(2);

impl Window {
    /// Frames in flight at most for a plan of `partitions` partitions (`None`: no limit).
    pub fn frames(self, partitions: usize) -> Option<usize> {
        match self {
            Window::PartitionsPlus(k) => Some(partitions + k as usize),
            Window::Frames(n) => Some((n as usize).max(1)),
            Window::Unlimited => None,
        }
    }
}

/// One partition as the engine sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimPart {
    /// Platform unit index.
    pub unit: usize,
    /// Layer indices, ascending.
    pub layers: Vec<usize>,
    /// Time to run all its layers once [ns], alone on its unit.
    pub compute_ns: Time,
    /// Bytes its layers move through memory per run (activations and weights): what it
    /// shares with the jobs running at once on its device.
    pub mem_bytes: u64,
    /// Whether it reads a graph input (frames enter through it).
    pub source: bool,
}

/// A connection: all tensors one partition sends to another, one transfer per frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConn {
    /// Producing partition.
    pub from: usize,
    /// Consuming partition.
    pub to: usize,
    /// Bytes per frame.
    pub bytes: u64,
}

/// Partitions and connections of a mapping, in the engine's compact form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimPlan {
    /// Partitions in a topological order.
    pub parts: Vec<SimPart>,
    /// Connections sorted by (from, to).
    pub conns: Vec<SimConn>,
}

impl SimPlan {
    /// Per partition, the connections it feeds (indices into `conns`).
    pub(crate) fn out_conns(&self) -> Vec<Vec<u32>> {
        let mut out = vec![Vec::new(); self.parts.len()];
        for (ci, c) in self.conns.iter().enumerate() {
            out[c.from].push(ci as u32);
        }
        out
    }

    /// Per partition, how many connections feed it.
    pub(crate) fn in_counts(&self) -> Vec<u32> {
        let mut n = vec![0u32; self.parts.len()];
        for c in &self.conns {
            n[c.to] += 1;
        }
        n
    }
}
