//! Overhead per hop: a 1 MB tensor through the worker transport path (encode, seal, framed
//! write with the writer task, bounded framed read, open, decode; both ways) against raw TCP
//! echo of the same bytes on loopback. Prints median round-trip times and the per-hop overhead.
//!
//! `cargo bench -p dicesim-hil --bench hop`

use dicesim_hil::conn::{spawn_writer, Shaping};
use dicesim_hil::proto::{Msg, MAX_FRAME};
use dicesim_hil::seal::{derive_keys, Keys, Side};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const N: usize = 1 << 20;
const ROUNDS: usize = 60;

fn median(v: Vec<f64>) -> f64 {
    dicesim_stats::median(&dicesim_stats::sorted(&v)).expect("ROUNDS > 0 round trips")
}

async fn raw() -> f64 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let mut b = vec![0u8; N];
        for _ in 0..ROUNDS {
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b).await.unwrap();
        }
    });
    let mut s = TcpStream::connect(a).await.unwrap();
    s.set_nodelay(true).unwrap();
    let out = vec![1u8; N];
    let mut back = vec![0u8; N];
    let mut t = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        s.write_all(&out).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    median(t)
}

/// Both ends' keys, as a handshake over some transcript derives them.
fn keys(side: Side) -> Keys {
    derive_keys(b"0123456789abcdef0123456789abcdef", &[5u8; 32], side)
}

async fn framed() -> f64 {
    let idle = Duration::from_secs(2);
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let (mut r, w) = s.into_split();
        let Keys { send, mut recv, .. } = keys(Side::Server);
        let tx = spawn_writer(w, send, Shaping::default(), 4, |_| {});
        for _ in 0..ROUNDS {
            let m = recv.read(&mut r, MAX_FRAME, idle).await.unwrap().msg;
            // as a worker relays an output: decode, then encode a new message
            let Msg::Tensor {
                frame,
                name,
                shape,
                data,
                ..
            } = m
            else {
                panic!()
            };
            let back = Msg::Tensor {
                frame,
                from: 1,
                to: 2,
                name,
                shape,
                data,
                sent_ns: 0,
            };
            tx.send((Instant::now(), back.encode())).await.unwrap();
        }
    });
    let s = TcpStream::connect(a).await.unwrap();
    s.set_nodelay(true).unwrap();
    let (mut r, w) = s.into_split();
    let Keys { send, mut recv, .. } = keys(Side::Client);
    let tx = spawn_writer(w, send, Shaping::default(), 4, |_| {});
    let data = vec![0.5f32; N / 4];
    let mut t = Vec::new();
    for f in 0..ROUNDS {
        let t0 = Instant::now();
        let m = Msg::Tensor {
            frame: f as u64,
            from: 0,
            to: 1,
            name: "x".into(),
            shape: vec![1, (N / 4) as u32],
            data: data.clone(),
            sent_ns: 0,
        };
        tx.send((Instant::now(), m.encode())).await.unwrap();
        let _ = recv.read(&mut r, MAX_FRAME, idle).await.unwrap();
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    median(t)
}

/// Median time to seal and open one 1 MiB tensor frame (the transport's own cost per hop).
fn seal_open() -> f64 {
    let (mut c, mut s) = (keys(Side::Client), keys(Side::Server));
    let m = Msg::Tensor {
        frame: 0,
        from: 0,
        to: 1,
        name: "x".into(),
        shape: vec![1, (N / 4) as u32],
        data: vec![0.5f32; N / 4],
        sent_ns: 0,
    };
    let mut t = Vec::new();
    for _ in 0..ROUNDS {
        let mut f = m.encode();
        let t0 = Instant::now();
        c.send.seal(&mut f).unwrap();
        let prefix: [u8; 4] = f[..4].try_into().unwrap();
        s.recv.open(prefix, &mut f[4..]).unwrap();
        t.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    median(t)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(raw());
    let f = rt.block_on(framed());
    println!("1 MiB round trip on loopback (median of {ROUNDS}): raw TCP {r:.3} ms, worker transport {f:.3} ms");
    println!(
        "overhead per hop: {:.3} ms ({:.0}% of a raw hop)",
        (f - r) / 2.0,
        (f - r) / r * 100.0
    );
    println!(
        "of which sealing and opening 1 MiB (AES-256-GCM): {:.3} ms",
        seal_open()
    );
}
