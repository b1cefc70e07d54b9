//! The streaming phase: frames enter at the workload's period with at most `window` in
//! flight; graph outputs, compute timings, faults and losses come back as events. The first
//! frames' outputs are compared with the reference as they arrive.

use super::workers::{Ev, Next, Workers};
use super::{random_inputs, HilRun, Prepared, VERIFY_FRAMES};
use crate::engine::Tensor;
use crate::proto::{mono_ns, EdgeStat, Msg, Received, FROM_COORDINATOR};
use dicesim_sim::engine::DEFAULT_WINDOW;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// Frames in flight at most: a partition's input queue holds 64 frames.
const MAX_WINDOW: usize = 48;

/// Frames in flight without `[hil] window`: the simulator's default (partitions + 2), so a
/// simulated and a measured run admit frames alike.
fn default_window(partitions: usize) -> usize {
    DEFAULT_WINDOW
        .frames(partitions)
        .expect("the default window is a number of frames")
}

/// What the streaming phase measured.
pub(super) struct Streamed {
    /// Frames requested.
    pub frames: u64,
    /// Frames in flight at most.
    pub window: usize,
    /// When streaming began.
    pub t_start: Instant,
    /// Per frame: when its first input was sent.
    pub entry: Vec<Option<Instant>>,
    /// Per frame: when its last output arrived.
    pub exit: Vec<Option<Instant>>,
    /// Frames whose outputs all arrived.
    pub done: u64,
    /// Frames verified against the reference (when they complete).
    pub n_verify: u64,
    /// Largest relative error over the verified frames' outputs.
    pub max_err: f64,
    /// Per partition: compute time of each frame [ms].
    pub compute: Vec<Vec<f64>>,
    /// Graph outputs received here, per (producer, tensor).
    pub out_edges: BTreeMap<(u32, String), EdgeStat>,
    /// The fault that ended the run early.
    pub error: Option<String>,
    /// Connections known lost.
    pub dead: HashSet<usize>,
    /// Host energy over the streaming [mJ], where the host has a sensor.
    pub host_energy_mj: Option<f64>,
}

/// The streaming phase's state.
pub(super) struct Streamer<'a> {
    prep: &'a Prepared,
    part_conn: &'a [usize],
    reference: &'a [HashMap<String, Tensor>],
    period: Duration,
    stall: Duration,
    next: u64,
    in_flight: usize,
    got_outputs: Vec<usize>,
    last_progress: Instant,
    bar: indicatif::ProgressBar,
    out: Streamed,
}

impl<'a> Streamer<'a> {
    /// Ready to stream `prep`'s workload; partition `p` is fed through `part_conn[p]`.
    pub(super) fn new(
        run: &HilRun,
        prep: &'a Prepared,
        part_conn: &'a [usize],
        reference: &'a [HashMap<String, Tensor>],
    ) -> Streamer<'a> {
        let w = &prep.scenario.prep.workload;
        let frames = w.frames as u64;
        let n_parts = prep.plan.partitions.len();
        let bar = progress_bar(run.progress, frames);
        Streamer {
            prep,
            part_conn,
            reference,
            period: Duration::from_nanos(w.period_ns),
            stall: run.stall_timeout,
            next: 0,
            in_flight: 0,
            got_outputs: vec![0; frames as usize],
            last_progress: Instant::now(),
            bar,
            out: Streamed {
                frames,
                window: run
                    .window
                    .unwrap_or_else(|| default_window(n_parts))
                    .clamp(1, MAX_WINDOW),
                t_start: Instant::now(),
                entry: vec![None; frames as usize],
                exit: vec![None; frames as usize],
                done: 0,
                n_verify: frames.min(VERIFY_FRAMES),
                max_err: 0.0,
                compute: vec![Vec::new(); n_parts],
                out_edges: BTreeMap::new(),
                error: None,
                dead: HashSet::new(),
                host_energy_mj: None,
            },
        }
    }

    /// Streams every frame, or until a fault, a loss, a stall or `interrupt` completes (Ctrl-C):
    /// each ends the run the same way, with its error set and what was measured so far.
    pub(super) async fn run(
        mut self,
        w: &mut Workers,
        interrupt: impl Future<Output = ()>,
    ) -> Streamed {
        let mut interrupt = std::pin::pin!(interrupt);
        let energy0 = crate::sensors::EnergyMeter::start();
        self.out.t_start = Instant::now();
        self.last_progress = Instant::now();
        while self.out.done < self.out.frames {
            self.send_due(w).await;
            if self.out.error.is_some() {
                break;
            }
            let flow = match until_interrupted(self.receive(w), interrupt.as_mut()).await {
                Some(flow) => flow,
                None => self.stop("interrupted (Ctrl-C)".into()),
            };
            if flow.is_break() {
                break;
            }
        }
        self.bar.finish_and_clear();
        self.out.host_energy_mj = energy0.map(|e| e.used_uj() as f64 / 1e3);
        write_frame_times(&self.out);
        self.out
    }

    /// Sends every frame that is due and fits in the window.
    async fn send_due(&mut self, w: &Workers) {
        while self.next < self.out.frames && self.in_flight < self.out.window && self.due() {
            self.send_frame(w, self.next).await;
            self.next += 1;
            self.in_flight += 1;
        }
    }

    /// Whether frame `next` has reached its entry time.
    fn due(&self) -> bool {
        self.period.is_zero() || Instant::now() >= self.entry_time(self.next)
    }

    fn entry_time(&self, frame: u64) -> Instant {
        self.out.t_start + self.period * frame as u32
    }

    /// Sends frame `f`'s graph inputs to their consumers; a failed send is the run's error.
    async fn send_frame(&mut self, w: &Workers, f: u64) {
        let seed = self.prep.scenario.seed.wrapping_add(f * 1000);
        let ins = random_inputs(&self.prep.model, seed);
        self.out.entry[f as usize] = Some(Instant::now());
        for (t, consumers) in &self.prep.plan.graph_inputs {
            let x = &ins[&t.name];
            for &c in consumers {
                let m = Msg::Tensor {
                    frame: f,
                    from: FROM_COORDINATOR,
                    to: c as u32,
                    name: t.name.clone(),
                    shape: x.shape.iter().map(|&d| d as u32).collect(),
                    data: x.data.clone(),
                    sent_ns: mono_ns(),
                };
                if let Err(e) = w.send(self.part_conn[c], &m).await {
                    self.out.error.get_or_insert(e.to_string());
                }
            }
        }
    }

    /// How long to wait for an event: until the next frame is due, or the stall timeout.
    fn wait(&self) -> Duration {
        let more = self.next < self.out.frames && self.in_flight < self.out.window;
        if more && !self.period.is_zero() {
            self.entry_time(self.next)
                .saturating_duration_since(Instant::now())
        } else {
            self.stall
                .saturating_sub(self.last_progress.elapsed())
                .max(Duration::from_millis(1))
        }
    }

    /// Handles the next event; `Break` ends the run (its error is set).
    async fn receive(&mut self, w: &mut Workers) -> ControlFlow<()> {
        let e = match w.next(self.wait()).await {
            Next::Event(e) => e,
            Next::Closed => return self.stop("all worker connections closed".into()),
            Next::TimedOut if self.last_progress.elapsed() >= self.stall => {
                let msg = format!("no frame completed for {:?} (stall timeout)", self.stall);
                return self.stop(msg);
            }
            Next::TimedOut => return ControlFlow::Continue(()),
        };
        match e {
            Ev::Lost(i, e) => {
                self.out.dead.insert(i);
                self.stop(format!("lost worker {}: {e}", w.addr(i)))
            }
            Ev::Msg(i, r) => self.on_message(w, i, r).await,
        }
    }

    fn stop(&mut self, error: String) -> ControlFlow<()> {
        self.out.error = Some(error);
        ControlFlow::Break(())
    }

    async fn on_message(&mut self, w: &mut Workers, i: usize, r: Received) -> ControlFlow<()> {
        match r.msg {
            Msg::Fault { msg } | Msg::Error { msg } => {
                let flow = self.stop(format!("worker {}: {msg}", w.addr(i)));
                w.drain_losses(&mut self.out.dead).await;
                return flow;
            }
            Msg::Timing {
                part, compute_us, ..
            } if (part as usize) < self.out.compute.len() => {
                self.out.compute[part as usize].push(compute_us as f64 / 1e3);
            }
            Msg::Tensor {
                frame,
                from,
                name,
                data,
                ..
            } if frame < self.out.frames => {
                self.count_output(from, &name, r.bytes, r.transfer);
                self.verify(frame, &name, &data);
                self.on_output(frame as usize);
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    /// Adds a graph output to the coordinator's receive figures.
    fn count_output(&mut self, from: u32, name: &str, bytes: u64, transfer: Duration) {
        let s = self
            .out
            .out_edges
            .entry((from, name.to_string()))
            .or_insert_with(|| EdgeStat {
                from,
                to: FROM_COORDINATOR,
                tensor: name.to_string(),
                ..EdgeStat::default()
            });
        s.count += 1;
        s.bytes += bytes;
        s.transfer_us += transfer.as_micros() as u64;
    }

    /// Compares a verified frame's output with the reference.
    fn verify(&mut self, frame: u64, name: &str, data: &[f32]) {
        if frame >= self.out.n_verify {
            return;
        }
        let e = match self.reference[frame as usize].get(name) {
            Some(want) => dicesim_tract::rel_error(&want.data, data),
            None => f64::INFINITY,
        };
        self.out.max_err = self
            .out
            .max_err
            .max(if e.is_nan() { f64::INFINITY } else { e });
    }

    /// Counts an output of frame `f`; its last output completes it.
    fn on_output(&mut self, f: usize) {
        self.got_outputs[f] += 1;
        let n_outputs = self.prep.plan.graph_outputs.len();
        if self.got_outputs[f] == n_outputs && self.out.exit[f].is_none() {
            self.out.exit[f] = Some(Instant::now());
            self.out.done += 1;
            self.in_flight -= 1;
            self.last_progress = Instant::now();
            self.bar.inc(1);
        }
    }
}

/// Writes every frame's entry and exit [us from the start of streaming] as CSV to the file
/// named by `DICESIM_FRAME_TIMES`, when set: the per-frame timeline a soak run needs for its
/// stall and steadiness figures (scripts/soak.sh), which the report's summaries hide.
fn write_frame_times(out: &Streamed) {
    let Some(path) = std::env::var_os("DICESIM_FRAME_TIMES") else {
        return;
    };
    let us = |t: &Option<Instant>| {
        t.map(|t| {
            t.saturating_duration_since(out.t_start)
                .as_micros()
                .to_string()
        })
        .unwrap_or_default()
    };
    let mut text = String::from("frame,entry_us,exit_us\n");
    for (f, (a, b)) in out.entry.iter().zip(&out.exit).enumerate() {
        text += &format!("{f},{},{}\n", us(a), us(b));
    }
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!(
            "dicesim: warning: DICESIM_FRAME_TIMES {}: {e}",
            path.to_string_lossy()
        );
    }
}

/// `f`'s output, or None if `interrupt` completes first (then `f` is dropped unfinished).
async fn until_interrupted<T>(
    f: impl Future<Output = T>,
    interrupt: Pin<&mut impl Future<Output = ()>>,
) -> Option<T> {
    tokio::select! {
        biased;
        _ = interrupt => None,
        t = f => Some(t),
    }
}

/// Completes on the first Ctrl-C; never if Ctrl-C cannot be caught (the default action,
/// ending the process, then still applies).
pub(super) async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// A progress bar on stderr, drawn only on a terminal.
fn progress_bar(wanted: bool, frames: u64) -> indicatif::ProgressBar {
    let bar = if wanted && std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(frames)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} frames {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_interrupt_ends_the_wait_for_events() {
        let never = std::future::pending::<u32>();
        let now = std::pin::pin!(std::future::ready(()));
        assert_eq!(until_interrupted(never, now).await, None);
    }

    #[tokio::test]
    async fn without_an_interrupt_the_event_arrives() {
        let later = std::pin::pin!(std::future::pending::<()>());
        assert_eq!(
            until_interrupted(std::future::ready(7), later).await,
            Some(7)
        );
    }
}
