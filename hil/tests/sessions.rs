//! Issue 19, item 6: coordinators sharing a worker do not see each other. A second
//! coordinator cannot deploy while the first one's deployment is live (so it cannot take
//! over its frames), cannot feed or read the first one's deployment, and cannot learn
//! from `ModelQuery` what the first one uploaded unless it holds the bytes itself.
//! Item 2: a frame injected in clear into an authenticated connection ends it.

mod support;
use dicesim_hil::conn::{client_handshake, possession};
use dicesim_hil::proto::{Dest, Msg, Role, Route, MAX_FRAME};
use dicesim_hil::seal::Keys;
use dicesim_hil::worker;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use support::{is_error, Echo, TOKEN};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn start_worker() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap().to_string();
    tokio::spawn(worker::serve(l, Arc::new(Echo), TOKEN.to_vec()));
    a
}

/// A coordinator's connection, spoken by hand.
struct Coord {
    s: TcpStream,
    keys: Keys,
}

impl Coord {
    async fn connect(addr: &str) -> Coord {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let keys = client_handshake(&mut s, TOKEN, Role::Coordinator)
            .await
            .unwrap();
        Coord { s, keys }
    }

    async fn send(&mut self, m: &Msg) {
        let f = self.keys.send.seal_msg(m).unwrap();
        self.s.write_all(&f).await.unwrap();
    }

    /// The next message other than a heartbeat; None once the connection has ended.
    async fn recv(&mut self) -> Option<Msg> {
        loop {
            let idle = Duration::from_secs(2);
            match self.keys.recv.read(&mut self.s, MAX_FRAME, idle).await {
                Ok(r) if r.msg == Msg::Heartbeat => {}
                Ok(r) => return Some(r.msg),
                Err(_) => return None,
            }
        }
    }

    async fn query(&mut self, hash: [u8; 32], bytes: &[u8]) -> bool {
        let possession = possession(&self.keys.transcript, bytes);
        self.send(&Msg::ModelQuery { hash, possession }).await;
        match self.recv().await {
            Some(Msg::ModelHave { have, .. }) => have,
            m => panic!("{m:?}"),
        }
    }

    async fn upload(&mut self, bytes: &[u8]) -> [u8; 32] {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        let chunk = Msg::ModelChunk {
            hash,
            total: bytes.len() as u64,
            offset: 0,
            data: bytes.to_vec(),
        };
        self.send(&chunk).await;
        assert_eq!(self.recv().await, Some(Msg::ModelReady { hash }));
        hash
    }

    /// Deploys partition 0 of `hash`; the worker's answer.
    async fn deploy(&mut self, hash: [u8; 32]) -> Option<Msg> {
        self.send(&Msg::Deploy {
            part: 0,
            hash,
            threads: 1,
            cpus: vec![],
            pace: 0.0,
            inputs: vec!["x".into()],
            routes: vec![Route {
                tensor: "x".into(),
                dest: Dest::Coordinator,
            }],
        })
        .await;
        self.recv().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_coordinator_neither_takes_over_nor_sees_the_first() {
    let addr = start_worker().await;
    let model_a = support::add_model(4, 1);
    let mut a = Coord::connect(&addr).await;
    let hash_a = a.upload(&model_a).await;
    assert!(matches!(a.deploy(hash_a).await, Some(Msg::Deployed { .. })));

    // B knows A's hash but not its bytes: the cache says nothing, and it may not deploy it
    let mut b = Coord::connect(&addr).await;
    assert!(!b.query(hash_a, b"guessed bytes").await);
    let got = b.deploy(hash_a).await;
    assert!(is_error(&got, "not uploaded on this connection"), "{got:?}");

    // B with its own model: refused while A's deployment is live
    let mut b = Coord::connect(&addr).await;
    let hash_b = b.upload(&support::add_model(4, 2)).await;
    let got = b.deploy(hash_b).await;
    assert!(is_error(&got, "busy with another coordinator"), "{got:?}");

    // A's deployment still answers A
    a.send(&Msg::StatsRequest).await;
    assert!(matches!(a.recv().await, Some(Msg::Stats { .. })));

    // whoever holds the bytes still finds them cached (the cache survives runs)
    let mut c = Coord::connect(&addr).await;
    assert!(c.query(hash_a, &model_a).await);
    // once A resets, another coordinator may deploy
    a.send(&Msg::Reset).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(c.deploy(hash_a).await, Some(Msg::Deployed { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_without_a_deployment_cannot_feed_another() {
    let addr = start_worker().await;
    let m = support::add_model(4, 3);
    let mut a = Coord::connect(&addr).await;
    let h = a.upload(&m).await;
    assert!(matches!(a.deploy(h).await, Some(Msg::Deployed { .. })));
    let mut b = Coord::connect(&addr).await;
    b.send(&Msg::Tensor {
        frame: 0,
        from: u32::MAX,
        to: 0,
        name: "x".into(),
        shape: vec![1],
        data: vec![1.0],
        sent_ns: 0,
    })
    .await;
    let got = b.recv().await;
    assert!(is_error(&got, "deployed nothing"), "{got:?}");
    // nor read its figures
    let mut c = Coord::connect(&addr).await;
    c.send(&Msg::StatsRequest).await;
    match c.recv().await {
        Some(Msg::Stats { edges, energy, .. }) => assert!(edges.is_empty() && energy.is_none()),
        m => panic!("{m:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_injected_in_clear_ends_the_connection() {
    let addr = start_worker().await;
    let m = support::add_model(4, 3);
    let mut a = Coord::connect(&addr).await;
    let h = a.upload(&m).await;
    // what an attacker on the path could add to the stream without the keys
    a.s.write_all(&Msg::Reset.encode()).await.unwrap();
    a.send(&Msg::ModelQuery {
        hash: h,
        possession: possession(&a.keys.transcript, &m),
    })
    .await;
    assert_eq!(a.recv().await, None);
}
