//! Issue 19, item 5: a token holder flooding a worker with distinct sub-models. The cache
//! is a byte-bounded LRU (`--cache-mb`): evicted models' files are deleted, the worker's
//! resident set stays flat, and an evicted model is reported missing by `ModelQuery` (so
//! a coordinator ships it again). Alone in its file: it measures this process's memory.

mod support;
use dicesim_hil::proto::Msg;
use dicesim_hil::worker::{self, Limits};
use std::sync::Arc;
use support::{add_model, is_error, rss_kb, Coord, Echo, TOKEN};

const MIB: u64 = 1 << 20;

/// Bytes and count of the spilled sub-model files of this process's workers.
fn spilled() -> (u64, usize) {
    let prefix = format!("dicesim-worker-models-{}-", std::process::id());
    let mut total = (0, 0);
    for d in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if !d.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        for f in std::fs::read_dir(d.path()).unwrap().flatten() {
            total.0 += f.metadata().unwrap().len();
            total.1 += 1;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_models_stays_within_the_cache_cap() {
    dicesim_hil::spill::lean_allocator();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let limits = Limits {
        max_model_bytes: 64 * MIB,
        cache_bytes: 64 * MIB,
        ..Limits::default()
    };
    tokio::spawn(worker::serve_with(
        l,
        Arc::new(Echo),
        TOKEN.to_vec(),
        limits,
    ));
    let mut c = Coord::connect(&addr, TOKEN).await;
    let rss0 = rss_kb();
    // 40 distinct models of 8 MiB of weights each: 320 MiB shipped
    let n = (8 * MIB / 4) as usize;
    let mut max_disk = 0;
    for seed in 0..40 {
        let m = add_model(n, seed);
        assert!(matches!(c.upload(&m).await, Some(Msg::ModelReady { .. })));
        max_disk = max_disk.max(spilled().0);
    }
    let rss1 = rss_kb();
    let (disk, files) = spilled();
    eprintln!(
        "40 x 8 MiB models, cache 64 MiB: disk max {} MiB, now {} MiB in {files} files; \
         RSS {} -> {} MiB",
        max_disk / MIB,
        disk / MIB,
        rss0 / 1024,
        rss1 / 1024
    );
    assert!(max_disk <= 64 * MIB + MIB, "{max_disk}");
    assert!(files <= 8, "{files}");
    assert!(rss1 < rss0 + 96 * 1024, "RSS {rss0} -> {rss1} KiB");
    // the oldest was evicted: reported missing, so the coordinator ships it again
    assert!(!c.query(&add_model(n, 0)).await);
    assert!(c.query(&add_model(n, 39)).await);
    assert!(matches!(
        c.upload(&add_model(n, 0)).await,
        Some(Msg::ModelReady { .. })
    ));
    assert!(c.query(&add_model(n, 0)).await);
    // random bytes are refused before they reach the cache, and memory stays flat
    for seed in 0..5u8 {
        let mut c = Coord::connect(&addr, TOKEN).await;
        let blob: Vec<u8> = (0..8 * MIB as usize)
            .map(|i| (i as u8) ^ seed.wrapping_mul(31) ^ (i >> 9) as u8)
            .collect();
        let got = c.upload(&blob).await;
        assert!(is_error(&got, "not ONNX"), "{got:?}");
    }
    assert!(spilled().1 <= 8);
    assert!(rss_kb() < rss0 + 96 * 1024);
}
