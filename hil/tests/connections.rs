//! Issue 17, item 3: a worker bounds its authenticated connections (`--max-connections`)
//! and drops a silent one at the idle timeout, while heartbeats keep a live one open.

use dicesim_hil::conn::{client_handshake, spawn_writer, Outgoing, Shaping};
use dicesim_hil::engine::TractEngine;
use dicesim_hil::proto::{Msg, ProtoError, Role, IDLE_TIMEOUT_MS, MAX_FRAME};
use dicesim_hil::seal::Opener;
use dicesim_hil::worker::{self, Limits};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef";

async fn start_worker(limits: Limits) -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(worker::serve_with(
        l,
        Arc::new(TractEngine),
        TOKEN.to_vec(),
        limits,
    ));
    addr
}

/// An authenticated coordinator connection whose writer sends heartbeats while `tx` lives.
struct Conn {
    r: OwnedReadHalf,
    open: Opener,
    tx: mpsc::Sender<Outgoing>,
}

async fn connect(addr: SocketAddr) -> Conn {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let keys = client_handshake(&mut s, TOKEN, Role::Coordinator)
        .await
        .unwrap();
    let (r, w) = s.into_split();
    let tx = spawn_writer(w, keys.send, Shaping::default(), 4, |_| {});
    Conn {
        r,
        open: keys.recv,
        tx,
    }
}

impl Conn {
    /// The worker's first message other than a heartbeat within `wait`, or why none came.
    async fn next(&mut self, wait: Duration) -> Result<Option<Msg>, ProtoError> {
        let until = Instant::now() + wait;
        while Instant::now() < until {
            let idle = Duration::from_millis(2 * IDLE_TIMEOUT_MS);
            match self.open.read(&mut self.r, MAX_FRAME, idle).await?.msg {
                Msg::Heartbeat => {}
                m => return Ok(Some(m)),
            }
        }
        Ok(None)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_until_one_closes() {
    let limits = Limits {
        max_connections: 3,
        ..Limits::default()
    };
    let addr = start_worker(limits).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(connect(addr).await);
    }
    // the fourth authenticates, then gets the refusal naming the flag, then the close
    let mut extra = connect(addr).await;
    let refusal = extra.next(Duration::from_secs(2)).await.unwrap();
    match refusal {
        Some(Msg::Error { msg }) => assert!(msg.contains("--max-connections"), "{msg}"),
        m => panic!("expected a refusal, got {m:?}"),
    }
    let end = extra.next(Duration::from_secs(2)).await;
    assert!(matches!(end, Err(ProtoError::Closed)), "{end:?}");
    // the three admitted ones are served: heartbeats, no refusal
    for c in &mut open {
        assert!(c.next(Duration::from_millis(500)).await.unwrap().is_none());
    }
    // one closes: its slot is free again (the worker sees the close at once; retry a little)
    drop(open.pop());
    let mut admitted = false;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut c = connect(addr).await;
        if c.next(Duration::from_millis(500))
            .await
            .is_ok_and(|m| m.is_none())
        {
            admitted = true;
            open.push(c);
            break;
        }
    }
    assert!(admitted, "no slot freed after a connection closed");
    drop(extra.tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_connection_is_dropped_and_a_heartbeating_one_stays() {
    let addr = start_worker(Limits::default()).await;
    // silent: authenticates, then sends nothing (not even heartbeats) but keeps its socket
    // open; the worker must close it within about 2 s
    let mut s = TcpStream::connect(addr).await.unwrap();
    client_handshake(&mut s, TOKEN, Role::Coordinator)
        .await
        .unwrap();
    let t = Instant::now();
    let live = connect(addr).await;
    let (mut r, _w) = s.into_split();
    let closed_after = loop {
        let mut b = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(3), r.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break t.elapsed(),
            Ok(Ok(_)) => assert!(t.elapsed() < Duration::from_secs(3), "never closed"),
            Err(_) => panic!("the worker kept a silent connection over 3 s"),
        }
    };
    assert!(
        closed_after >= Duration::from_millis(IDLE_TIMEOUT_MS - 100)
            && closed_after < Duration::from_secs(2),
        "closed after {closed_after:?}"
    );
    // heartbeating: still served well past the idle timeout (2.5 s, no refusal or close)
    let mut live = live;
    let got = live.next(Duration::from_millis(2500)).await;
    assert!(matches!(got, Ok(None)), "{got:?}");
}
