//! Issue 19, item 6: coordinators sharing a worker do not see each other. A second
//! coordinator cannot deploy while the first one's deployment is live (so it cannot take
//! over its frames), cannot feed or read the first one's deployment, and cannot learn
//! from `ModelQuery` what the first one uploaded unless it holds the bytes itself.
//! Item 2: a frame injected in clear into an authenticated connection ends it.

mod support;
use dicesim_hil::conn::possession;
use dicesim_hil::proto::{Dest, Msg};
use dicesim_hil::worker;
use std::sync::Arc;
use std::time::Duration;
use support::{is_error, Coord, Echo, TOKEN};
use tokio::io::AsyncWriteExt;

async fn start_worker() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap().to_string();
    tokio::spawn(worker::serve(l, Arc::new(Echo), TOKEN.to_vec()));
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_coordinator_neither_takes_over_nor_sees_the_first() {
    let addr = start_worker().await;
    let model_a = support::add_model(4, 1);
    let mut a = Coord::connect(&addr, TOKEN).await;
    let hash_a = a.upload_ready(&model_a).await;
    assert!(matches!(
        a.deploy(hash_a, Dest::Coordinator).await,
        Some(Msg::Deployed { .. })
    ));

    // B knows A's hash but not its bytes: the cache says nothing, and it may not deploy it
    let mut b = Coord::connect(&addr, TOKEN).await;
    assert!(!b.query_as(hash_a, b"guessed bytes").await);
    let got = b.deploy(hash_a, Dest::Coordinator).await;
    assert!(is_error(&got, "not uploaded on this connection"), "{got:?}");

    // B with its own model: refused while A's deployment is live
    let mut b = Coord::connect(&addr, TOKEN).await;
    let hash_b = b.upload_ready(&support::add_model(4, 2)).await;
    let got = b.deploy(hash_b, Dest::Coordinator).await;
    assert!(is_error(&got, "busy with another coordinator"), "{got:?}");

    // A's deployment still answers A
    a.send(&Msg::StatsRequest).await;
    assert!(matches!(a.recv().await, Some(Msg::Stats { .. })));

    // whoever holds the bytes still finds them cached (the cache survives runs)
    let mut c = Coord::connect(&addr, TOKEN).await;
    assert!(c.query_as(hash_a, &model_a).await);
    // once A resets, another coordinator may deploy
    a.send(&Msg::Reset).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(matches!(
        c.deploy(hash_a, Dest::Coordinator).await,
        Some(Msg::Deployed { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_without_a_deployment_cannot_feed_another() {
    let addr = start_worker().await;
    let m = support::add_model(4, 3);
    let mut a = Coord::connect(&addr, TOKEN).await;
    let h = a.upload_ready(&m).await;
    assert!(matches!(
        a.deploy(h, Dest::Coordinator).await,
        Some(Msg::Deployed { .. })
    ));
    let mut b = Coord::connect(&addr, TOKEN).await;
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
    let mut c = Coord::connect(&addr, TOKEN).await;
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
    let mut a = Coord::connect(&addr, TOKEN).await;
    let h = a.upload_ready(&m).await;
    // what an attacker on the path could add to the stream without the keys
    a.s.write_all(&Msg::Reset.encode()).await.unwrap();
    a.send(&Msg::ModelQuery {
        hash: h,
        possession: possession(&a.keys.transcript, &m),
    })
    .await;
    assert_eq!(a.recv().await, None);
}
