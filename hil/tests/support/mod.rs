//! Shared by the worker tests: small ONNX models, an engine that loads anything, a
//! coordinator spoken by hand, loopback workers on threads and temporary folders, both
//! removed when the test ends.
#![allow(dead_code)]

use dicesim_hil::conn::{client_handshake, possession};
use dicesim_hil::engine::{Engine, EngineSession, Tensor};
use dicesim_hil::proto::{Dest, Msg, Role, Route, MAX_FRAME};
use dicesim_hil::seal::Keys;
use dicesim_hil::worker;
use dicesim_plan::onnx::{
    dtype, encode_model, tensor_value_info, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// The shared secret of these tests.
pub const TOKEN: &[u8] = b"0123456789abcdef0123456789abcdef";

fn model(
    nodes: Vec<NodeProto>,
    init: Vec<TensorProto>,
    graph_io: (Vec<&str>, &str, Vec<usize>),
) -> Vec<u8> {
    let (inputs, out, out_shape) = graph_io;
    let m = ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(13),
        }],
        graph: Some(GraphProto {
            name: Some("g".into()),
            node: nodes,
            input: (inputs.iter())
                .map(|i| tensor_value_info(i, &out_shape, dtype::FLOAT))
                .collect(),
            output: vec![tensor_value_info(out, &out_shape, dtype::FLOAT)],
            initializer: init,
            ..Default::default()
        }),
        ..Default::default()
    };
    encode_model(&m)
}

fn node(op: &str, inputs: &[&str], out: &str) -> NodeProto {
    NodeProto {
        op_type: Some(op.into()),
        name: Some(format!("{op}0")),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    }
}

/// `y = x + w` with `n` float weights filled from `seed` (distinct seeds, distinct models).
pub fn add_model(n: usize, seed: u64) -> Vec<u8> {
    let mut raw = Vec::with_capacity(n * 4);
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for _ in 0..n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        raw.extend_from_slice(&((s >> 40) as f32).to_le_bytes());
    }
    let w = TensorProto {
        name: Some("w".into()),
        dims: vec![n as i64],
        data_type: Some(dtype::FLOAT),
        raw_data: Some(raw.into()),
        ..Default::default()
    };
    model(
        vec![node("Add", &["x", "w"], "y")],
        vec![w],
        (vec!["x"], "y", vec![n]),
    )
}

/// The bomb: about 150 bytes asking for ConstantOfShape `rows` x `cols` (16384 x
/// 32768: 2 GiB of float zeros), added to a one-element input.
pub fn constant_of_shape_bomb(rows: usize, cols: usize) -> Vec<u8> {
    let dims: Vec<u8> = [rows as i64, cols as i64]
        .iter()
        .flat_map(|d| d.to_le_bytes())
        .collect();
    let shape = TensorProto {
        name: Some("s".into()),
        dims: vec![2],
        data_type: Some(dtype::INT64),
        raw_data: Some(dims.into()),
        ..Default::default()
    };
    let mut m = model(
        vec![
            node("ConstantOfShape", &["s"], "c"),
            node("Add", &["x", "c"], "y"),
        ],
        vec![shape],
        (vec!["x"], "y", vec![rows, cols]),
    );
    // the input is one element, broadcast
    let x = tensor_value_info("x", &[1], dtype::FLOAT);
    let mut p = dicesim_plan::onnx::decode_model(m.into(), std::path::Path::new("bomb")).unwrap();
    p.graph.as_mut().unwrap().input = vec![x];
    m = encode_model(&p);
    m
}

/// An engine that loads any bytes and echoes its inputs.
pub struct Echo;

struct EchoSession;

impl Engine for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn load(&self, _onnx: &[u8], _threads: usize) -> anyhow::Result<Box<dyn EngineSession>> {
        Ok(Box::new(EchoSession))
    }
}

impl EngineSession for EchoSession {
    fn run(&mut self, inputs: &HashMap<String, Tensor>) -> anyhow::Result<Vec<(String, Tensor)>> {
        Ok(inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

/// A coordinator's connection, spoken by hand.
pub struct Coord {
    pub s: TcpStream,
    pub keys: Keys,
}

impl Coord {
    pub async fn connect(addr: &str, token: &[u8]) -> Coord {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let keys = client_handshake(&mut s, token, Role::Coordinator)
            .await
            .unwrap();
        Coord { s, keys }
    }

    pub async fn send(&mut self, m: &Msg) {
        let f = self.keys.send.seal_msg(m).unwrap();
        self.s.write_all(&f).await.unwrap();
    }

    /// The next message other than a heartbeat; None once the connection has ended.
    pub async fn recv(&mut self) -> Option<Msg> {
        loop {
            let idle = Duration::from_secs(2);
            match self.keys.recv.read(&mut self.s, MAX_FRAME, idle).await {
                Ok(r) if r.msg == Msg::Heartbeat => {}
                Ok(r) => return Some(r.msg),
                Err(_) => return None,
            }
        }
    }

    pub async fn query(&mut self, bytes: &[u8]) -> bool {
        self.query_as(Sha256::digest(bytes).into(), bytes).await
    }

    /// Asks for model `hash`, proving possession of `bytes` (which need not be its bytes).
    pub async fn query_as(&mut self, hash: [u8; 32], bytes: &[u8]) -> bool {
        let possession = possession(&self.keys.transcript, bytes);
        self.send(&Msg::ModelQuery { hash, possession }).await;
        match self.recv().await {
            Some(Msg::ModelHave { have, .. }) => have,
            m => panic!("{m:?}"),
        }
    }

    /// Ships `bytes` in one chunk; the worker's answer.
    pub async fn upload(&mut self, bytes: &[u8]) -> Option<Msg> {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        let chunk = Msg::ModelChunk {
            hash,
            total: bytes.len() as u64,
            offset: 0,
            data: bytes.to_vec(),
        };
        self.send(&chunk).await;
        self.recv().await
    }

    /// Ships `bytes`, which the worker must accept; their hash.
    pub async fn upload_ready(&mut self, bytes: &[u8]) -> [u8; 32] {
        let hash: [u8; 32] = Sha256::digest(bytes).into();
        assert_eq!(self.upload(bytes).await, Some(Msg::ModelReady { hash }));
        hash
    }

    /// Deploys partition 0 of `hash` with its output to `dest`; the worker's answer.
    pub async fn deploy(&mut self, hash: [u8; 32], dest: Dest) -> Option<Msg> {
        self.send(&Msg::Deploy {
            part: 0,
            hash,
            threads: 1,
            cpus: vec![],
            pace: 0.0,
            inputs: vec!["x".into()],
            routes: vec![Route {
                tensor: "x".into(),
                dest,
            }],
        })
        .await;
        self.recv().await
    }
}

/// Whether `m` is an `Error` containing `needle`.
pub fn is_error(m: &Option<Msg>, needle: &str) -> bool {
    matches!(m, Some(Msg::Error { msg }) if msg.contains(needle))
}

/// This process's resident set [KiB].
pub fn rss_kb() -> u64 {
    status_kb("VmRSS:")
}

/// This process's peak resident set [KiB].
pub fn peak_rss_kb() -> u64 {
    status_kb("VmHWM:")
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[path = "../../../tests/common/tmp_dir.rs"]
mod tmp_dir;
pub use tmp_dir::TmpDir;

/// A fresh, empty temporary folder `dicesim-<suite>-<name>-` (and a random suffix) for one
/// test, removed with what it holds when the test ends (passed or failed).
pub fn tmp(suite: &str, name: &str) -> TmpDir {
    tmp_dir::with_prefix(&format!("dicesim-{suite}-{name}-"))
}

/// A token-less loopback worker on a runtime of its own thread, serving until dropped.
/// Dropping it ends the runtime and waits for that, so that the worker's sub-model store
/// removes its folder: a worker left serving until the test process exits never does
/// (`dicesim-worker-models-*`, megabytes a test).
pub struct ThreadWorker {
    /// Its address.
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ThreadWorker {
    /// Starts one; `die` (if any) ends its runtime early, dropping every connection of the
    /// worker at once, as when its process is killed.
    pub fn start(engine: Arc<dyn Engine>, die: Option<oneshot::Receiver<()>>) -> ThreadWorker {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap().to_string()).unwrap();
                let die = async {
                    match die {
                        Some(d) => {
                            let _ = d.await;
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = worker::serve(l, engine, Vec::new()) => {}
                    _ = die => {}
                    _ = stopped => {}
                }
            });
            // every task (and with the last one the store) is dropped at once; this
            // thread alone waits for the runtime's threads to end
            rt.shutdown_timeout(Duration::from_secs(10));
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        ThreadWorker {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ThreadWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
