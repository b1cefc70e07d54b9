//! Issue 19, item 4: a flood of idle connections before authentication does not keep a
//! legitimate coordinator out. Handshakes in progress are bounded per address (and in all),
//! connections beyond the bound are closed at once, and the deadline is short.

use dicesim_hil::conn::client_handshake;
use dicesim_hil::engine::TractEngine;
use dicesim_hil::proto::Role;
use dicesim_hil::worker;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpSocket, TcpStream};

const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef";

async fn idle_from(src: &str, to: std::net::SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{src}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_keep_a_coordinator_out() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(worker::serve(l, Arc::new(TractEngine), TOKEN.to_vec()));
    // 300 connections that never say a word, from another loopback address
    let mut flood = Vec::new();
    for _ in 0..300 {
        flood.push(idle_from("127.0.0.2", addr).await);
    }
    // the worker closes those beyond the per-address bound at once
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut closed = 0;
    for s in &mut flood {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(5), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 300 - dicesim_hil::gate::MAX_HANDSHAKES_PER_ADDR,
        "{closed}"
    );
    // meanwhile a coordinator gets in, promptly
    let t = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    client_handshake(&mut s, TOKEN, Role::Coordinator)
        .await
        .unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // and the flood's survivors are dropped at the handshake deadline
    tokio::time::sleep(dicesim_hil::conn::HANDSHAKE_TIMEOUT + Duration::from_millis(300)).await;
    for s in &mut flood {
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(50), s.read(&mut b)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    }
}
