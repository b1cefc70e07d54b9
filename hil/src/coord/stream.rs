//! The streaming phase: frames enter at the workload's period with at most `window` in
//! flight; graph outputs, compute timings, faults and losses come back as events. The first
//! frames' outputs are compared with the reference as they arrive.

use super::slow::{SlowWatch, POLL};
use super::workers::{Ev, Next, Workers};
use super::{random_inputs, HilRun, Prepared, VERIFY_FRAMES};
use crate::engine::Tensor;
use crate::proto::{mono_ns, EdgeStat, Msg, Received, FROM_COORDINATOR};
use dicesim_sim::engine::DEFAULT_WINDOW;
use dicesim_sim::events::OnDeviceLoss;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::pin::Pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a fault about a lost peer waits for the coordinator to see the loss itself: a
/// connection silent for `IDLE_TIMEOUT_MS` is dropped, so this covers a silent death too.
const LOSS_WAIT: Duration = Duration::from_millis(1000);

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
    pub verified: Vec<u64>,
    /// Largest relative error over the verified frames' outputs.
    pub max_err: f64,
    /// Outputs kept of verified frames without a reference yet (the first frames after a
    /// re-plan): compared once the stream is over, off the re-plan's critical path.
    pub captured: BTreeMap<u64, HashMap<String, Vec<f32>>>,
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
    /// Where the stream is: what to send next and what is awaited.
    pub cursor: Cursor,
}

/// The stream's position, kept across a re-plan.
pub(super) struct Cursor {
    /// Next new frame to send.
    pub next: u64,
    /// Frames sent and not completed.
    pub in_flight: usize,
    /// Frames to send again first (they were in flight on a lost plan).
    pub rerun: VecDeque<u64>,
    /// Outputs received of each incomplete frame, by name: a frame completes once, when
    /// its last distinct output arrives; a second copy (a re-run's) is not delivered.
    pub got: HashMap<u64, HashSet<String>>,
    /// When a frame last completed.
    pub last_progress: Instant,
    /// When each connection last sent a message (its last sign of life).
    pub last_heard: HashMap<usize, Instant>,
    /// The first frame completed since the last re-plan.
    pub first_exit: Option<Instant>,
    /// Frames completed while an earlier one had not (0 for an in-order stream).
    pub out_of_order: u64,
    /// The first frame not completed.
    first_open: u64,
    bar: indicatif::ProgressBar,
}

/// How a streaming pass ended.
pub(super) enum Outcome {
    /// Every frame completed, or the run stopped (its error set).
    Ended,
    /// These connections were lost; the run may go on without them (`[adapt]`).
    Lost(Vec<usize>),
    /// These links (platform indices) run slower than planned, at these rates [Mbit/s]
    /// (`[adapt] on_slowdown = "replan"`).
    Slow(Vec<(usize, f64)>),
}

/// The streaming phase's state.
pub(super) struct Streamer<'a> {
    prep: &'a Prepared,
    part_conn: &'a [usize],
    reference: &'a Reference,
    period: Duration,
    stall: Duration,
    /// Whether a lost worker ends the pass with [`Outcome::Lost`] rather than the run.
    replan: bool,
    /// Told when streaming starts.
    started: &'a OnceLock<Instant>,
    /// Transfer times watched for a slow link, and when to ask the workers next.
    watch: Option<(SlowWatch, Instant)>,
    /// Figures asked for and not answered yet.
    polls_out: HashSet<usize>,
    out: Streamed,
}

/// The whole model's outputs of the frames that are verified, by frame.
pub(super) type Reference = BTreeMap<u64, HashMap<String, Tensor>>;

impl Streamed {
    /// Nothing streamed yet: `frames` frames, at most `window` in flight.
    pub(super) fn new(run: &HilRun, prep: &Prepared) -> Streamed {
        let frames = prep.scenario.prep.workload.frames as u64;
        let n_parts = prep.plan.partitions.len();
        Streamed {
            frames,
            window: run
                .window
                .unwrap_or_else(|| default_window(n_parts))
                .clamp(1, MAX_WINDOW),
            t_start: Instant::now(),
            entry: vec![None; frames as usize],
            exit: vec![None; frames as usize],
            done: 0,
            verified: (0..frames.min(VERIFY_FRAMES)).collect(),
            max_err: 0.0,
            captured: BTreeMap::new(),
            compute: vec![Vec::new(); n_parts],
            out_edges: BTreeMap::new(),
            error: None,
            dead: HashSet::new(),
            host_energy_mj: None,
            cursor: Cursor {
                next: 0,
                in_flight: 0,
                rerun: VecDeque::new(),
                got: HashMap::new(),
                last_progress: Instant::now(),
                last_heard: HashMap::new(),
                first_exit: None,
                out_of_order: 0,
                first_open: 0,
                bar: progress_bar(run.progress, frames),
            },
        }
    }

    /// After a re-plan onto `n_parts` partitions: the frames in flight are sent again (in
    /// order), and the figures per partition start afresh (the report describes the plan
    /// in force at the end). Returns the frames to re-run.
    pub(super) fn rerun_in_flight(&mut self, n_parts: usize) -> Vec<u64> {
        let c = &mut self.cursor;
        let frames: Vec<u64> = (0..c.next)
            .filter(|&f| self.exit[f as usize].is_none())
            .collect();
        c.rerun = frames.iter().copied().collect();
        c.in_flight = 0;
        c.first_exit = None;
        c.last_progress = Instant::now();
        self.compute = vec![Vec::new(); n_parts];
        self.out_edges.clear();
        frames
    }

    /// Checks the first frames after a re-plan: their outputs are kept until the stream is
    /// over and compared with the whole model's then (the first `VERIFY_FRAMES` re-run
    /// or later frames not verified yet).
    pub(super) fn verify_after_switch(&mut self, rerun: &[u64]) {
        let next = self.cursor.next..self.frames;
        let fresh: Vec<u64> = (rerun.iter().copied().chain(next))
            .filter(|f| !self.verified.contains(f))
            .take(VERIFY_FRAMES as usize)
            .collect();
        for f in fresh {
            self.verified.push(f);
            self.captured.insert(f, HashMap::new());
        }
    }

    /// Compares the captured outputs with `reference` (the whole model's, by frame).
    pub(super) fn check_captured(&mut self, reference: &Reference) {
        for (f, outs) in std::mem::take(&mut self.captured) {
            for (name, data) in outs {
                let want = reference.get(&f).and_then(|r| r.get(&name));
                let e = want.map_or(f64::INFINITY, |w| dicesim_tract::rel_error(&w.data, &data));
                self.max_err = self.max_err.max(if e.is_nan() { f64::INFINITY } else { e });
            }
        }
    }

    /// The stream is over: the progress bar cleared, the frame times written.
    pub(super) fn finish(&self) {
        self.cursor.bar.finish_and_clear();
        write_frame_times(self);
    }
}

impl<'a> Streamer<'a> {
    /// Ready to stream `prep`'s workload from where `out` left it; partition `p` is fed
    /// through `part_conn[p]`.
    pub(super) fn new(
        run: &'a HilRun,
        prep: &'a Prepared,
        part_conn: &'a [usize],
        reference: &'a Reference,
        out: Streamed,
    ) -> Streamer<'a> {
        let w = &prep.scenario.prep.workload;
        Streamer {
            prep,
            part_conn,
            reference,
            period: Duration::from_nanos(w.period_ns),
            stall: run.stall_timeout,
            replan: prep.scenario.adapt.on_device_loss == OnDeviceLoss::Replan,
            started: &run.replayed.started,
            watch: None,
            polls_out: HashSet::new(),
            out,
        }
    }

    /// Also watches the plan's transfer times for a slow link ([`SlowWatch`]).
    pub(super) fn watching(mut self, watch: SlowWatch) -> Self {
        self.watch = Some((watch, Instant::now() + POLL));
        self
    }

    /// Asks the plan's workers for their transfer figures when it is time.
    async fn poll(&mut self, w: &Workers) {
        let Some((_, next)) = &mut self.watch else {
            return;
        };
        // one round at a time: a round is judged once all its answers are in
        if Instant::now() < *next || !self.polls_out.is_empty() {
            return;
        }
        *next = Instant::now() + POLL;
        let mut conns: Vec<usize> = self.part_conn.to_vec();
        conns.sort_unstable();
        conns.dedup();
        for c in conns {
            if w.send(c, &Msg::StatsRequest).await.is_ok() {
                self.polls_out.insert(c);
            }
        }
    }

    /// Waits (a short while at most) for the figures asked for, so that none is taken for
    /// the answer to a later request (the run's last, or a re-plan's barrier).
    async fn settle_polls(&mut self, w: &mut Workers) {
        let deadline = Instant::now() + Duration::from_millis(500);
        // a lost worker does not answer
        self.polls_out.retain(|c| !self.out.dead.contains(c));
        while !self.polls_out.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match w.next(left).await {
                Next::Event(Ev::Msg(i, r)) if matches!(r.msg, Msg::Stats { .. }) => {
                    self.polls_out.remove(&i);
                }
                Next::Event(_) => {}
                _ => return,
            }
        }
    }

    /// A worker's transfer figures: the pass ends when a poll round shows a slow link.
    fn on_stats(&mut self, i: usize, edges: &[EdgeStat]) -> ControlFlow<Outcome> {
        self.polls_out.remove(&i);
        let Some((watch, _)) = self.watch.as_mut() else {
            return ControlFlow::Continue(());
        };
        watch.update(i, edges);
        // judged on a whole round: a link is slow only if no route at its rate crosses it
        match watch.verdict().filter(|_| self.polls_out.is_empty()) {
            Some(slow) => ControlFlow::Break(Outcome::Slow(slow)),
            None => ControlFlow::Continue(()),
        }
    }

    /// Streams every frame, or until a fault, a loss, a stall or `interrupt` completes (Ctrl-C):
    /// each ends the run the same way, with its error set and what was measured so far;
    /// with `[adapt] on_device_loss = "replan"` a lost worker ends only this pass.
    pub(super) async fn run(
        mut self,
        w: &mut Workers,
        interrupt: impl Future<Output = ()>,
    ) -> (Streamed, Outcome) {
        let mut interrupt = std::pin::pin!(interrupt);
        let energy0 = crate::sensors::EnergyMeter::start();
        if self.out.cursor.next == 0 {
            self.out.t_start = Instant::now();
            let _ = self.started.set(self.out.t_start);
        }
        self.out.cursor.last_progress = Instant::now();
        let mut outcome = Outcome::Ended;
        while self.out.done < self.out.frames {
            self.send_due(w).await;
            if self.out.error.is_some() {
                break;
            }
            self.poll(w).await;
            let flow = match until_interrupted(self.receive(w), interrupt.as_mut()).await {
                Some(flow) => flow,
                None => self.stop("interrupted (Ctrl-C)".into()),
            };
            if let ControlFlow::Break(o) = flow {
                outcome = o;
                break;
            }
        }
        self.settle_polls(w).await;
        if let Some(e) = energy0 {
            let mj = e.used_uj() as f64 / 1e3;
            self.out.host_energy_mj = Some(self.out.host_energy_mj.unwrap_or(0.0) + mj);
        }
        (self.out, outcome)
    }

    /// Sends every frame that is due and fits in the window.
    async fn send_due(&mut self, w: &Workers) {
        while self.out.cursor.in_flight < self.out.window {
            let f = match self.out.cursor.rerun.pop_front() {
                // a late output of the lost plan may have completed it meanwhile
                Some(f) if self.out.exit[f as usize].is_some() => continue,
                Some(f) => f,
                None if self.out.cursor.next < self.out.frames && self.due() => {
                    self.out.cursor.next += 1;
                    self.out.cursor.next - 1
                }
                None => break,
            };
            self.send_frame(w, f).await;
            self.out.cursor.in_flight += 1;
        }
    }

    /// Whether frame `next` has reached its entry time.
    fn due(&self) -> bool {
        self.period.is_zero() || Instant::now() >= self.entry_time(self.out.cursor.next)
    }

    fn entry_time(&self, frame: u64) -> Instant {
        self.out.t_start + self.period * frame as u32
    }

    /// Sends frame `f`'s graph inputs to their consumers; a failed send is the run's error.
    async fn send_frame(&mut self, w: &Workers, f: u64) {
        let seed = self.prep.scenario.seed.wrapping_add(f * 1000);
        let ins = random_inputs(&self.prep.model, seed);
        // a re-run frame keeps its first entry: its latency includes the re-plan
        self.out.entry[f as usize].get_or_insert_with(Instant::now);
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
        let c = &self.out.cursor;
        let more = c.next < self.out.frames && c.in_flight < self.out.window;
        let wait = if more && !self.period.is_zero() {
            self.entry_time(c.next)
                .saturating_duration_since(Instant::now())
        } else {
            self.stall
                .saturating_sub(c.last_progress.elapsed())
                .max(Duration::from_millis(1))
        };
        match &self.watch {
            Some((_, poll)) => wait.min(poll.saturating_duration_since(Instant::now())),
            None => wait,
        }
    }

    /// Handles the next event; `Break` ends the pass (the run's error is set, or workers
    /// were lost and the run may re-plan).
    async fn receive(&mut self, w: &mut Workers) -> ControlFlow<Outcome> {
        let e = match w.next(self.wait()).await {
            Next::Event(e) => e,
            Next::Closed => return self.stop("all worker connections closed".into()),
            Next::TimedOut if self.out.cursor.last_progress.elapsed() >= self.stall => {
                let msg = format!("no frame completed for {:?} (stall timeout)", self.stall);
                return self.stop(msg);
            }
            Next::TimedOut => return ControlFlow::Continue(()),
        };
        match e {
            Ev::Lost(i, e) => {
                self.out.dead.insert(i);
                if self.replan {
                    return self.lost(w).await;
                }
                self.stop(format!("lost worker {}: {e}", w.addr(i)))
            }
            Ev::Msg(i, r) => {
                self.out.cursor.last_heard.insert(i, Instant::now());
                self.on_message(w, i, r).await
            }
        }
    }

    fn stop(&mut self, error: String) -> ControlFlow<Outcome> {
        self.out.error = Some(error);
        ControlFlow::Break(Outcome::Ended)
    }

    /// Workers were lost: the others' faults about them and further losses of the next
    /// moments are gathered, and the pass ends so that the run re-plans without them.
    async fn lost(&mut self, w: &mut Workers) -> ControlFlow<Outcome> {
        w.drain_losses(&mut self.out.dead).await;
        let mut lost: Vec<usize> = (self.out.dead.iter())
            .copied()
            .filter(|&i| !w.is_dead(i))
            .collect();
        lost.sort();
        ControlFlow::Break(Outcome::Lost(lost))
    }

    /// A worker's fault. With re-planning on, a fault caused by a lost peer (a killed
    /// worker's neighbours notice first) waits up to [`LOSS_WAIT`] for the loss itself.
    async fn fault(&mut self, w: &mut Workers, i: usize, msg: String) -> ControlFlow<Outcome> {
        let error = format!("worker {}: {msg}", w.addr(i));
        if self.replan {
            w.await_loss(&mut self.out.dead, LOSS_WAIT).await;
            if self.out.dead.iter().any(|&d| !w.is_dead(d)) {
                return self.lost(w).await;
            }
        }
        let flow = self.stop(error);
        w.drain_losses(&mut self.out.dead).await;
        flow
    }

    async fn on_message(&mut self, w: &mut Workers, i: usize, r: Received) -> ControlFlow<Outcome> {
        match r.msg {
            Msg::Fault { msg } | Msg::Error { msg } => return self.fault(w, i, msg).await,
            Msg::Stats { edges, .. } => return self.on_stats(i, &edges),
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
                self.on_output(frame, &name, &data);
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
        let Some(want) = self.reference.get(&frame) else {
            if let Some(c) = self.out.captured.get_mut(&frame) {
                c.insert(name.to_string(), data.to_vec());
            }
            return;
        };
        let e = match want.get(name) {
            Some(want) => dicesim_tract::rel_error(&want.data, data),
            None => f64::INFINITY,
        };
        self.out.max_err = self
            .out
            .max_err
            .max(if e.is_nan() { f64::INFINITY } else { e });
    }

    /// Takes output `name` of frame `f` (checked when the frame is verified); its last
    /// distinct output completes the frame, once: copies from a re-run are dropped.
    fn on_output(&mut self, f: u64, name: &str, data: &[f32]) {
        if self.out.exit[f as usize].is_some() {
            return;
        }
        let got = self.out.cursor.got.entry(f).or_default();
        if !got.insert(name.to_string()) {
            return;
        }
        let complete = got.len() == self.prep.plan.graph_outputs.len();
        self.verify(f, name, data);
        if complete {
            self.complete(f);
        }
    }

    /// Frame `f` has all its outputs.
    fn complete(&mut self, f: u64) {
        let now = Instant::now();
        let c = &mut self.out.cursor;
        c.got.remove(&f);
        c.in_flight = c.in_flight.saturating_sub(1);
        c.last_progress = now;
        c.first_exit.get_or_insert(now);
        c.bar.inc(1);
        self.out.exit[f as usize] = Some(now);
        self.out.done += 1;
        if f > c.first_open {
            c.out_of_order += 1;
        }
        while (self.out.exit.get(c.first_open as usize)).is_some_and(Option::is_some) {
            c.first_open += 1;
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
