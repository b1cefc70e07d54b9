//! The link probe behind [`super::Rig::probe`]: a receiver in one device's namespace and a
//! sender in another's exchange length-prefixed messages, one at a time, each acknowledged
//! by one byte, and the sender times each from its hand-off to its last byte's arrival.

use super::enter_netns;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender};
use std::time::{Duration, Instant};

/// How long either side waits for the other to show up, and for each message.
const START_WAIT: Duration = Duration::from_secs(10);
const CONNECT_WAIT: Duration = Duration::from_secs(5);
const MESSAGE_WAIT: Duration = Duration::from_secs(30);

/// One probe run between two devices.
pub(super) struct Probe<'a> {
    /// The receiver's address (on the receiving device).
    pub addr: SocketAddr,
    /// Message sizes [bytes], each sent `reps` times.
    pub sizes: &'a [usize],
    pub reps: usize,
    /// The route's latency in host time: the sender holds each message for it first, as
    /// workers do.
    pub delay: Duration,
    /// Time dilation: host times are divided by it.
    pub dilation: f64,
}

impl Probe<'_> {
    /// Runs the receiver in namespace `nsb` and the sender in `nsa`; returns
    /// `(bytes, seconds)` per message in platform time.
    pub fn run(&self, nsa: &str, nsb: &str) -> Result<Vec<(usize, f64)>> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let (recv_tx, recv_rx) = std::sync::mpsc::channel::<Instant>();
        std::thread::scope(|s| -> Result<Vec<(usize, f64)>> {
            let receiver = s.spawn(move || self.receive(nsb, ready_tx, recv_tx));
            let sender = s.spawn(move || self.send(nsa, ready_rx, recv_rx));
            let out = sender
                .join()
                .map_err(|_| anyhow!("link probe: the sender panicked"))?;
            let r = receiver
                .join()
                .map_err(|_| anyhow!("link probe: the receiver panicked"))?;
            let out = out?;
            r?;
            Ok(out)
        })
    }

    /// The largest message.
    fn max(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    /// Receiver: reports on `ready` whether it listens (a failure to listen is the
    /// sender's error), then notes each message's arrival time on `arrived` and
    /// acknowledges it.
    fn receive(&self, ns: &str, ready: Sender<Result<()>>, arrived: Sender<Instant>) -> Result<()> {
        let listener = match listen_in(ns, self.addr) {
            Ok(l) => {
                let _ = ready.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready.send(Err(anyhow!("{e:#}")));
                return Ok(());
            }
        };
        let mut conn = accept_within(&listener, START_WAIT)?;
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(MESSAGE_WAIT))?;
        let max = self.max();
        let mut buf = vec![0u8; max];
        for _ in 0..self.sizes.len() * self.reps {
            let mut len = [0u8; 4];
            conn.read_exact(&mut len)?;
            let n = u32::from_le_bytes(len) as usize;
            if n > max {
                bail!("link probe: message of {n} bytes, at most {max} expected");
            }
            conn.read_exact(&mut buf[..n])?;
            let _ = arrived.send(Instant::now());
            conn.write_all(&[1])?;
        }
        Ok(())
    }

    /// Sender: once the receiver listens, sends every message and times it.
    fn send(
        &self,
        ns: &str,
        ready: Receiver<Result<()>>,
        arrived: Receiver<Instant>,
    ) -> Result<Vec<(usize, f64)>> {
        ready
            .recv_timeout(START_WAIT)
            .map_err(|_| anyhow!("link probe: the receiver did not start"))??;
        enter_netns(ns)?;
        let mut conn = TcpStream::connect_timeout(&self.addr, CONNECT_WAIT)
            .with_context(|| format!("link probe: connecting to {}", self.addr))?;
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(MESSAGE_WAIT))?;
        let payload = vec![0x5au8; self.max() + 4];
        let mut out = Vec::new();
        for &n in self.sizes {
            for _ in 0..self.reps {
                let s = self.time_one(&mut conn, &payload[..n + 4], &arrived)?;
                out.push((n, s));
                // let the queues drain, as between frames
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(out)
    }

    /// Sends one message (`msg`: 4 length bytes, then the body) after the route's
    /// latency; returns its transfer time in platform seconds.
    fn time_one(
        &self,
        conn: &mut TcpStream,
        msg: &[u8],
        arrived: &Receiver<Instant>,
    ) -> Result<f64> {
        let n = (msg.len() - 4) as u32;
        let mut msg = msg.to_vec();
        msg[..4].copy_from_slice(&n.to_le_bytes());
        let t0 = Instant::now();
        std::thread::sleep(self.delay);
        conn.write_all(&msg)?;
        let mut ack = [0u8; 1];
        conn.read_exact(&mut ack)?;
        let t1 = arrived
            .recv_timeout(MESSAGE_WAIT)
            .map_err(|_| anyhow!("link probe: the receiver stopped"))?;
        Ok(t1.duration_since(t0).as_secs_f64() / self.dilation)
    }
}

/// Binds a non-blocking listener on `addr` from inside namespace `ns` (the calling
/// thread stays there).
fn listen_in(ns: &str, addr: SocketAddr) -> Result<TcpListener> {
    enter_netns(ns)?;
    let l = TcpListener::bind(addr).with_context(|| format!("link probe: binding {addr}"))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// Accepts one connection on the non-blocking `listener`, waiting at most `wait`.
fn accept_within(listener: &TcpListener, wait: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + wait;
    loop {
        match listener.accept() {
            Ok((c, _)) => return Ok(c),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    bail!("link probe: no connection within {} s", wait.as_secs());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}
