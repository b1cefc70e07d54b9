//! The coordinator's connections to its workers: one authenticated connection per worker
//! address, a writer task per connection, and one event channel that every reader feeds.

use crate::conn::{client_handshake, spawn_writer, Outgoing, Shaping};
use crate::proto::{Msg, Received, Role, IDLE_TIMEOUT_MS, MAX_FRAME};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What the readers report: a message from connection `i`, or its loss.
pub(super) enum Ev {
    /// A message (heartbeats are not reported).
    Msg(usize, Received),
    /// The connection failed or closed.
    Lost(usize, String),
}

/// What [`Workers::next`] found.
pub(super) enum Next {
    /// An event.
    Event(Ev),
    /// Every connection has closed.
    Closed,
    /// Nothing within the wait.
    TimedOut,
}

struct WorkerConn {
    addr: String,
    tx: mpsc::Sender<Outgoing>,
    /// The handshake transcript's hash (keys proofs of sub-model possession).
    transcript: [u8; 32],
}

/// The connected workers, by connection index, and the events their readers report.
pub(super) struct Workers {
    conns: Vec<WorkerConn>,
    ev: mpsc::UnboundedReceiver<Ev>,
    /// Feeds `ev` (kept to connect more workers after a re-plan).
    ev_tx: mpsc::UnboundedSender<Ev>,
    /// Connections given up as lost: their late events are dropped.
    dead: HashSet<usize>,
}

impl Workers {
    /// Connects and authenticates to every address (index `i` is `addrs[i]`).
    pub(super) async fn connect(addrs: &[String], key: &[u8]) -> Result<Workers> {
        let (ev_tx, ev) = mpsc::unbounded_channel();
        let mut conns = Vec::new();
        for (i, a) in addrs.iter().enumerate() {
            conns.push(connect(i, a, key, ev_tx.clone()).await?);
        }
        Ok(Workers {
            conns,
            ev,
            ev_tx,
            dead: HashSet::new(),
        })
    }

    /// Connects to one more worker; its connection index.
    pub(super) async fn add(&mut self, addr: &str, key: &[u8]) -> Result<usize> {
        let i = self.conns.len();
        let c = connect(i, addr, key, self.ev_tx.clone()).await?;
        self.conns.push(c);
        Ok(i)
    }

    /// Gives connection `i` up as lost: its writer stops (no more heartbeats into a dead
    /// socket) and its later events are dropped.
    pub(super) fn mark_dead(&mut self, i: usize) {
        if self.dead.insert(i) {
            // the writer task ends once its only sender is gone
            self.conns[i].tx = mpsc::channel(1).0;
        }
    }

    /// Whether connection `i` was given up as lost.
    pub(super) fn is_dead(&self, i: usize) -> bool {
        self.dead.contains(&i)
    }

    /// Number of connections.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Address of connection `i`.
    pub(super) fn addr(&self, i: usize) -> &str {
        &self.conns[i].addr
    }

    /// The handshake transcript hash of connection `i`.
    pub(super) fn transcript(&self, i: usize) -> &[u8; 32] {
        &self.conns[i].transcript
    }

    /// Queues `m` on connection `i` (waits while its writer's queue is full).
    pub(super) async fn send(&self, i: usize, m: &Msg) -> Result<()> {
        let w = &self.conns[i];
        w.tx.send((Instant::now(), m.encode()))
            .await
            .map_err(|_| anyhow!("worker {}: connection closed", w.addr))
    }

    /// The next event within `wait` (none from connections given up as lost).
    pub(super) async fn next(&mut self, wait: Duration) -> Next {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.ev.recv()).await {
                Ok(Some(e)) if self.dead.contains(&ev_conn(&e)) => {}
                Ok(Some(e)) => return Next::Event(e),
                Ok(None) => return Next::Closed,
                Err(_) => return Next::TimedOut,
            }
        }
    }

    /// After a fault: a worker reporting a lost peer may be followed by the loss itself;
    /// adds the connections lost in the next moments to `dead`.
    pub(super) async fn drain_losses(&mut self, dead: &mut HashSet<usize>) {
        while let Next::Event(e) = self.next(Duration::from_millis(20)).await {
            if let Ev::Lost(j, _) = e {
                dead.insert(j);
            }
        }
    }

    /// After a fault about a lost peer: waits up to `max` for a connection to be lost
    /// (then gathers the losses of the next moments); adds them to `dead`. Other events of
    /// that wait are dropped.
    pub(super) async fn await_loss(&mut self, dead: &mut HashSet<usize>, max: Duration) {
        let deadline = Instant::now() + max;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Next::Event(Ev::Lost(j, _)) => {
                    dead.insert(j);
                    return self.drain_losses(dead).await;
                }
                Next::Event(Ev::Msg(..)) if !left.is_zero() => {}
                _ => return,
            }
        }
    }

    /// Waits for a message from connection `from` accepted by `want`; faults and losses
    /// (from any worker) are errors.
    pub(super) async fn expect<T>(
        &mut self,
        from: usize,
        timeout: Duration,
        mut want: impl FnMut(&Msg) -> Option<T>,
    ) -> Result<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let e = tokio::time::timeout_at(deadline, self.ev.recv())
                .await
                .map_err(|_| anyhow!("worker {}: no answer in {timeout:?}", self.addr(from)))?
                .ok_or_else(|| anyhow!("all connections closed"))?;
            if self.dead.contains(&ev_conn(&e)) {
                continue;
            }
            match e {
                Ev::Lost(i, e) => bail!("lost worker {}: {e}", self.addr(i)),
                Ev::Msg(i, r) => match r.msg {
                    Msg::Fault { msg } | Msg::Error { msg } => {
                        bail!("worker {}: {msg}", self.addr(i))
                    }
                    m if i == from => {
                        if let Some(t) = want(&m) {
                            return Ok(t);
                        }
                    }
                    _ => {}
                },
            }
        }
    }
}

/// The connection an event comes from.
fn ev_conn(e: &Ev) -> usize {
    match e {
        Ev::Msg(i, _) | Ev::Lost(i, _) => *i,
    }
}

/// Connects to worker `addr` as connection `i`; its reader reports to `ev`.
async fn connect(
    i: usize,
    addr: &str,
    key: &[u8],
    ev: mpsc::UnboundedSender<Ev>,
) -> Result<WorkerConn> {
    let mut s = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
        .await
        .map_err(|_| anyhow!("connecting to worker {addr}: timed out"))?
        .with_context(|| format!("connecting to worker {addr}"))?;
    s.set_nodelay(true)?;
    if key.is_empty() {
        // token-less: the worker must be this user's, not another user's squatter
        crate::peercred::check_same_user(s.local_addr()?, s.peer_addr()?)
            .with_context(|| format!("worker {addr}"))?;
    }
    let keys = client_handshake(&mut s, key, Role::Coordinator)
        .await
        .with_context(|| format!("worker {addr}"))?;
    let (mut r, w) = s.into_split();
    let ev2 = ev.clone();
    let mut open = keys.recv;
    let tx = spawn_writer(w, keys.send, Shaping::default(), 64, move |e| {
        let _ = ev2.send(Ev::Lost(i, e));
    });
    tokio::spawn(async move {
        let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
        loop {
            match open.read(&mut r, MAX_FRAME, idle).await {
                Ok(Received {
                    msg: Msg::Heartbeat,
                    ..
                }) => {}
                Ok(m) => {
                    if ev.send(Ev::Msg(i, m)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = ev.send(Ev::Lost(i, e.to_string()));
                    return;
                }
            }
        }
    });
    Ok(WorkerConn {
        addr: addr.to_string(),
        tx,
        transcript: keys.transcript,
    })
}
