//! `dicesim worker`: serves sub-models on one board.
//!
//! A worker accepts authenticated connections (see [`crate::proto`]). The coordinator's
//! connection ships sub-models (cached by SHA-256 for the life of the process), deploys
//! partitions and feeds graph inputs; other workers' connections carry tensors between
//! partitions, peer to peer. Each deployed partition runs on its own thread; it waits for all
//! its inputs of a frame, runs the engine, and sends every output straight to its consumers
//! (local partition, peer worker, or the coordinator for graph outputs), then a
//! [`Msg::Timing`]. A coordinator that goes away takes its deployment with it; the worker
//! keeps serving. No peer, however broken, stops the worker: every read is bounded in size
//! and time, and every failure ends only the connection it happened on.

use crate::cache::{ModelCache, DEFAULT_CACHE_MB};
use crate::conn::{client_handshake, server_handshake, spawn_writer, Outgoing, Shaping};
use crate::engine::{Engine, EngineSession, Tensor};
use crate::gate::{Gate, Pass, Slots, MAX_CONNECTIONS, MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDR};
use crate::peers::PeerList;
use crate::proto::{
    Dest, EdgeStat, Msg, ProtoError, Role, IDLE_TIMEOUT_MS, MAX_FRAME, MAX_MODEL_BYTES,
};
use crate::seal::{Keys, Opener};
use crate::sensors::{peak_rss_kb, EnergyMeter};
use crate::turns::{Held, Turn, Turns};
use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Frames a partition may hold waiting for missing inputs before the deployment fails.
const MAX_PENDING_FRAMES: usize = 256;
/// Queue length of a connection writer [frames].
const WRITER_QUEUE: usize = 64;

/// Reads a token file (see [`crate::token::read_token`]: at least 128 bits, private mode).
pub fn read_token(path: &Path) -> Result<Vec<u8>> {
    Ok(crate::token::read_token(path)?)
}

/// Resolves `listen`; without a token only loopback addresses are allowed.
pub fn check_listen(listen: &str, has_token: bool) -> Result<SocketAddr> {
    let addr = listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {listen}: expected HOST:PORT"))?
        .next()
        .ok_or_else(|| anyhow!("--listen {listen}: the address does not resolve"))?;
    if !has_token && !addr.ip().is_loopback() {
        bail!(
            "--listen {listen}: without --token-file a worker only listens on loopback \
             (127.0.0.1 or ::1); give --token-file FILE (the same secret as the coordinator's) \
             to listen on {}",
            addr.ip()
        );
    }
    Ok(addr)
}

type PartTx = mpsc::Sender<(u64, String, Tensor)>;

struct Deployment {
    coord: mpsc::Sender<Outgoing>,
    parts: Mutex<HashMap<u32, PartTx>>,
    peers: tokio::sync::Mutex<HashMap<String, mpsc::Sender<Outgoing>>>,
    edges: Mutex<BTreeMap<(u32, u32, String), EdgeStat>>,
    /// Sub-models it runs (the cache keeps them).
    hashes: Mutex<HashSet<[u8; 32]>>,
    energy: Option<EnergyMeter>,
    /// Turns on host CPUs shared by partitions.
    turns: Turns,
}

impl Deployment {
    fn fault(&self, msg: String) {
        let _ = self
            .coord
            .try_send((Instant::now(), Msg::Fault { msg }.encode()));
    }
}

/// Slow-down factor of this worker's partitions (set once by [`run`]).
static PACE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

use crate::sys::thread_cpu_time;

/// What a worker accepts from its coordinators (issue 19): `dicesim worker`'s limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest sub-model [bytes]: its upload, and its weights + largest activation
    /// as analysed (`--max-model-mb`; default [`MAX_MODEL_BYTES`], the protocol's limit).
    pub max_model_bytes: u64,
    /// Cap of the sub-model cache [bytes] (`--cache-mb`).
    pub cache_bytes: u64,
    /// Where a `Deploy` may make the worker connect (`--peers`).
    pub peers: PeerList,
    /// Authenticated connections open at once, coordinators and peers (`--max-connections`).
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_model_bytes: MAX_MODEL_BYTES,
            cache_bytes: DEFAULT_CACHE_MB << 20,
            peers: PeerList::default(),
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// `dicesim worker`'s optional flags.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--pace`.
    pub pace: Option<f64>,
    /// `--max-model-mb`.
    pub max_model_mb: Option<u64>,
    /// `--cache-mb`.
    pub cache_mb: Option<u64>,
    /// `--peers`.
    pub peers: Option<String>,
    /// `--max-connections`.
    pub max_connections: Option<usize>,
}

impl Options {
    /// The limits these flags set; an error names the flag out of range.
    pub fn limits(&self) -> Result<Limits> {
        let mut l = Limits::default();
        let cap = MAX_MODEL_BYTES >> 20;
        if let Some(mb) = self.max_model_mb {
            if !(1..=cap).contains(&mb) {
                bail!("--max-model-mb must be 1 to {cap} (the protocol's limit), got {mb}");
            }
            l.max_model_bytes = mb << 20;
        }
        if let Some(mb) = self.cache_mb {
            if mb > 1 << 30 {
                bail!("--cache-mb must be at most {}, got {mb}", 1u64 << 30);
            }
            l.cache_bytes = mb << 20;
        }
        if let Some(p) = &self.peers {
            l.peers = PeerList::parse(p).map_err(|e| anyhow!(e))?;
        }
        if let Some(n) = self.max_connections {
            if !(1..=4096).contains(&n) {
                bail!("--max-connections must be 1 to 4096, got {n}");
            }
            l.max_connections = n;
        }
        Ok(l)
    }
}

struct State {
    key: Vec<u8>,
    engine: Arc<dyn Engine>,
    limits: Limits,
    /// Shipped sub-models (a bounded LRU of private files: see [`crate::cache`]).
    models: Mutex<ModelCache>,
    current: Mutex<Option<Arc<Deployment>>>,
    /// Authenticated connections open (`--max-connections`).
    conns: Arc<Slots>,
}

/// Runs a worker until SIGINT or SIGTERM. Prints `dicesim worker listening on ADDR` on
/// stdout once bound (port 0 picks a free port).
///
/// `pace`: the emulation rig's slow-down factor for this device (see `crate::emulate`):
/// after each partition run the worker sleeps until the run's wall time is at least
/// `pace` x the CPU time the run's thread used. `None` or 1: no pacing.
pub fn run(listen: &str, backend: &str, token_file: Option<&Path>, opts: &Options) -> Result<()> {
    if let Some(p) = opts.pace {
        if !(p.is_finite() && p >= 1.0) {
            bail!("--pace must be a finite factor >= 1, got {p}");
        }
        let _ = PACE.set(p);
    }
    let limits = opts.limits()?;
    let key = match token_file {
        Some(p) => read_token(p)?,
        None => Vec::new(),
    };
    let addr = check_listen(listen, !key.is_empty())?;
    crate::spill::lean_allocator();
    let engine = crate::engine::by_name(backend)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let l = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        println!("dicesim worker listening on {}", l.local_addr()?);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = serve_with(l, engine, key, limits) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
        }
    })
}

/// Accepts connections on `l` forever, with the default [`Limits`].
pub async fn serve(l: TcpListener, engine: Arc<dyn Engine>, key: Vec<u8>) -> Result<()> {
    serve_with(l, engine, key, Limits::default()).await
}

/// Accepts connections on `l` forever. An empty `key` is the token-less mode: only
/// loopback callers of this process's user (or root) are served ([`crate::peercred`]).
pub async fn serve_with(
    l: TcpListener,
    engine: Arc<dyn Engine>,
    key: Vec<u8>,
    limits: Limits,
) -> Result<()> {
    let st = Arc::new(State {
        key,
        engine,
        models: Mutex::new(ModelCache::new(limits.cache_bytes)),
        conns: Slots::new(limits.max_connections),
        limits,
        current: Mutex::new(None),
    });
    let gate = Gate::new(MAX_HANDSHAKES, MAX_HANDSHAKES_PER_ADDR);
    loop {
        let (s, peer) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                // out of descriptors and the like: wait, do not die
                eprintln!("worker: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // too many handshakes in progress (from this address): close at once (issue 19)
        let Some(pass) = gate.enter(peer.ip()) else {
            continue;
        };
        let st = st.clone();
        tokio::spawn(async move {
            match handle(st, s, pass).await {
                Err(e) if !is_normal_end(&e) => eprintln!("worker: connection from {peer}: {e:#}"),
                _ => {}
            }
        });
    }
}

/// Whether a connection ended because its peer closed it between messages: how every
/// coordinator ends its run and every peer its deployment, so not worth a log line.
fn is_normal_end(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<ProtoError>(), Some(ProtoError::Closed))
}

async fn handle(st: Arc<State>, mut s: TcpStream, pass: Pass) -> Result<()> {
    s.set_nodelay(true)?;
    if st.key.is_empty() {
        // token-less: the handshake proves nothing, the caller's uid must
        crate::peercred::check_same_user(s.local_addr()?, s.peer_addr()?)?;
    }
    let (role, keys) = server_handshake(&mut s, &st.key).await?;
    drop(pass);
    let Keys {
        send: seal,
        recv: mut open,
        transcript,
    } = keys;
    let (mut r, w) = s.into_split();
    // held until the connection ends
    let Some(_slot) = st.conns.take() else {
        let msg = format!(
            "worker busy: {} authenticated connections are open (its --max-connections); \
             try again when one closes",
            st.conns.max()
        );
        let tx = spawn_writer(w, seal, Shaping::default(), 1, |_| {});
        let _ = send(&tx, &Msg::Error { msg: msg.clone() }).await;
        bail!("{msg}");
    };
    let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
    match role {
        Role::Peer => {
            // the writer only sends heartbeats, so that the peer can tell we are alive
            let _hb = spawn_writer(w, seal, Shaping::default(), 1, |_| {});
            // A tensor's transfer time is its service time on this connection: from when the
            // sender handed it over, or from when the previous message on the connection had
            // fully arrived if that is later, to its last byte. Time spent queued behind
            // earlier frames is not transfer time (the simulator counts it the same way).
            let mut prev_done: Option<Instant> = None;
            loop {
                let mut rcv = open.read(&mut r, MAX_FRAME, idle).await?;
                let now = Instant::now();
                if let Some(p) = prev_done {
                    rcv.transfer = rcv.transfer.min(now - p);
                }
                prev_done = Some(now);
                match rcv.msg {
                    Msg::Heartbeat => {}
                    Msg::Tensor { .. } => deliver(&st, rcv).await?,
                    m => bail!("a peer sent {}", m.kind()),
                }
            }
        }
        Role::Coordinator => {
            let (ftx, mut frx) = mpsc::unbounded_channel::<String>();
            let coord = spawn_writer(w, seal, Shaping::default(), WRITER_QUEUE, move |e| {
                let _ = ftx.send(e);
            });
            let mut session = CoordSession::new(transcript);
            let res =
                coordinator_loop(&st, (&mut r, &mut open), &coord, &mut frx, &mut session).await;
            // the coordinator is gone: so is its deployment
            drop_deployment(&st, &coord);
            res
        }
    }
}

fn send(tx: &mpsc::Sender<Outgoing>, m: &Msg) -> impl std::future::Future<Output = Result<()>> {
    let tx = tx.clone();
    let f = m.encode();
    async move {
        tx.send((Instant::now(), f))
            .await
            .map_err(|_| anyhow!("connection closed"))
    }
}

/// Serves the coordinator's connection: sub-model shipping, deployment, graph inputs,
/// statistics and reset, until the connection ends or a request is refused.
async fn coordinator_loop(
    st: &Arc<State>,
    (r, open): (&mut tokio::net::tcp::OwnedReadHalf, &mut Opener),
    coord: &mpsc::Sender<Outgoing>,
    write_err: &mut mpsc::UnboundedReceiver<String>,
    session: &mut CoordSession,
) -> Result<()> {
    let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
    loop {
        let rcv = tokio::select! {
            r = open.read(r, MAX_FRAME, idle) => r?,
            e = write_err.recv() => bail!("{}", e.unwrap_or_default()),
        };
        match rcv.msg {
            Msg::Heartbeat => {}
            Msg::ModelQuery { hash, possession } => {
                let have = session.query(st, hash, &possession);
                send(coord, &Msg::ModelHave { hash, have }).await?;
            }
            Msg::ModelChunk {
                hash,
                total,
                offset,
                data,
            } => on_chunk(st, coord, session, (hash, total), offset, &data).await?,
            Msg::Deploy {
                part,
                hash,
                threads,
                cpus,
                pace,
                inputs,
                routes,
            } => {
                if let Err(msg) = session.may_deploy(st, coord, hash) {
                    return refuse(coord, format!("deploying partition {part}: {msg}")).await;
                }
                let dep = deployment_for(st, coord);
                let exec = Exec {
                    threads: clamp_threads(threads),
                    cpus,
                    pace,
                };
                let res = deploy(st, &dep, part, hash, exec, inputs, routes).await;
                answer_deploy(st, coord, part, res).await?;
            }
            Msg::Tensor { .. } => {
                // a coordinator feeds only its own deployment
                if !owns_deployment(st, coord) {
                    return refuse(coord, "tensor but this connection deployed nothing".into())
                        .await;
                }
                deliver(st, rcv).await?
            }
            Msg::StatsRequest => send(coord, &stats(st, coord)).await?,
            Msg::Reset => drop_deployment(st, coord),
            m => bail!("the coordinator sent {}", m.kind()),
        }
    }
}

/// Takes one `ModelChunk`; once the sub-model is complete, checks and caches it and
/// answers `ModelReady`, or refuses it (which ends the connection).
async fn on_chunk(
    st: &State,
    coord: &mpsc::Sender<Outgoing>,
    session: &mut CoordSession,
    (hash, total): ([u8; 32], u64),
    offset: u64,
    data: &[u8],
) -> Result<()> {
    // the last chunk hashes the whole sub-model: keep the runtime's other tasks
    // (heartbeats) running meanwhile
    let cap = st.limits.max_model_bytes;
    let done = tokio::task::block_in_place(|| {
        accept_chunk(&mut session.upload, (hash, total, cap), offset, data)
    });
    match done {
        Err(msg) => refuse(coord, msg).await,
        Ok(None) => Ok(()),
        Ok(Some(up)) => {
            // analysing and writing a large sub-model may take a while
            if let Err(e) = tokio::task::block_in_place(|| admit(st, up)) {
                return refuse(coord, e.to_string()).await;
            }
            session.known.insert(hash);
            send(coord, &Msg::ModelReady { hash }).await
        }
    }
}

/// What the worker knows of one coordinator connection.
struct CoordSession {
    /// The connection's handshake transcript hash (keys possession proofs).
    transcript: [u8; 32],
    /// The sub-model being shipped.
    upload: Option<Upload>,
    /// Sub-models this connection uploaded or proved it holds: the only ones it may see
    /// or deploy.
    known: HashSet<[u8; 32]>,
}

impl CoordSession {
    fn new(transcript: [u8; 32]) -> CoordSession {
        CoordSession {
            transcript,
            upload: None,
            known: HashSet::new(),
        }
    }

    /// Answers a `ModelQuery`: cached, and the connection proved it holds the bytes (so
    /// one coordinator cannot probe what another uploaded by its hash).
    fn query(&mut self, st: &State, hash: [u8; 32], possession: &[u8; 32]) -> bool {
        // a spilled sub-model is read back to check the proof (re-deploys only); an
        // evicted one is missing, and the coordinator ships it again
        let stored = st.models.lock().unwrap().get(&hash);
        let cached = stored.and_then(|s| s.bytes().ok());
        let have = cached
            .is_some_and(|b| crate::conn::verify_possession(&self.transcript, &b, possession));
        if have {
            self.known.insert(hash);
        }
        have
    }

    /// Whether this connection may deploy sub-model `hash` now: it must know the model,
    /// and no other connection's deployment may be live (one deployment at a time, so that
    /// no coordinator's frames reach another's).
    fn may_deploy(
        &self,
        st: &State,
        coord: &mpsc::Sender<Outgoing>,
        hash: [u8; 32],
    ) -> std::result::Result<(), String> {
        if !self.known.contains(&hash) {
            return Err("sub-model not uploaded on this connection".into());
        }
        let cur = st.current.lock().unwrap();
        match &*cur {
            Some(d) if !d.coord.same_channel(coord) && !d.coord.is_closed() => {
                Err("the worker is busy with another coordinator's deployment".into())
            }
            _ => Ok(()),
        }
    }
}

/// A `Deploy`'s engine thread count, at most this machine's CPU count (0 stays the
/// engine's default): a peer cannot make the worker start thousands of threads.
fn clamp_threads(threads: u32) -> u32 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    threads.min(u32::try_from(cpus).unwrap_or(u32::MAX))
}

/// Whether the live deployment is this coordinator's.
fn owns_deployment(st: &State, coord: &mpsc::Sender<Outgoing>) -> bool {
    let cur = st.current.lock().unwrap();
    cur.as_ref().is_some_and(|d| d.coord.same_channel(coord))
}

/// Tells the coordinator why its request is refused, then fails the connection with the
/// same reason (or with the send's error if the coordinator has gone).
async fn refuse(coord: &mpsc::Sender<Outgoing>, msg: String) -> Result<()> {
    send(coord, &Msg::Error { msg: msg.clone() }).await?;
    Err(anyhow!(msg))
}

/// Checks a complete upload ([`crate::vet`]: ONNX, and weights + largest activation
/// within `--max-model-mb`) and caches it, keeping the live deployment's models.
fn admit(st: &State, up: Upload) -> std::result::Result<(), crate::vet::VetError> {
    crate::vet::vet(&up.bytes, st.limits.max_model_bytes)?;
    let in_use = (st.current.lock().unwrap().as_ref())
        .map(|d| d.hashes.lock().unwrap().clone())
        .unwrap_or_default();
    let mut models = st.models.lock().unwrap();
    models.insert(up.hash, up.bytes, &in_use);
    Ok(())
}

/// A sub-model being shipped in chunks.
struct Upload {
    hash: [u8; 32],
    /// Announced size [bytes].
    total: u64,
    /// The bytes so far.
    bytes: Vec<u8>,
}

/// Takes one chunk of the sub-model being shipped (`upload`). Returns the whole upload
/// once its last chunk has arrived and its bytes match the hash, or why the chunk is
/// refused.
/// `model` is (hash, announced size, this worker's cap on sizes).
fn accept_chunk(
    upload: &mut Option<Upload>,
    model: ([u8; 32], u64, u64),
    offset: u64,
    data: &[u8],
) -> std::result::Result<Option<Upload>, String> {
    let (hash, total, cap) = model;
    if total > cap {
        return Err(format!(
            "model of {total} bytes refused (this worker's limit: {cap} bytes, --max-model-mb)"
        ));
    }
    let up = match upload {
        Some(u) if u.hash == hash => u,
        _ => upload.insert(Upload {
            hash,
            total,
            bytes: Vec::new(),
        }),
    };
    let have = up.bytes.len() as u64;
    if up.total != total || offset != have || offset + data.len() as u64 > total {
        return Err("model chunk out of order".to_string());
    }
    // a failed allocation is this upload's refusal, not the worker's abort
    up.bytes
        .try_reserve(data.len())
        .map_err(|_| format!("no memory left for a model of {total} bytes"))?;
    up.bytes.extend_from_slice(data);
    if up.bytes.len() as u64 != total {
        return Ok(None);
    }
    let done = upload.take().expect("set above");
    let got: [u8; 32] = Sha256::digest(&done.bytes).into();
    if got != done.hash {
        return Err("model bytes do not match their hash".to_string());
    }
    Ok(Some(done))
}

/// The deployment of this coordinator: the current one if it is this coordinator's,
/// otherwise a new one that replaces it.
fn deployment_for(st: &State, coord: &mpsc::Sender<Outgoing>) -> Arc<Deployment> {
    let mut cur = st.current.lock().unwrap();
    match &*cur {
        Some(d) if d.coord.same_channel(coord) => d.clone(),
        _ => {
            let d = Arc::new(Deployment {
                coord: coord.clone(),
                parts: Mutex::new(HashMap::new()),
                peers: tokio::sync::Mutex::new(HashMap::new()),
                edges: Mutex::new(BTreeMap::new()),
                hashes: Mutex::new(HashSet::new()),
                energy: EnergyMeter::start(),
                turns: Turns::default(),
            });
            *cur = Some(d.clone());
            d
        }
    }
}

/// Drops the current deployment if it is this coordinator's.
fn drop_deployment(st: &State, coord: &mpsc::Sender<Outgoing>) {
    let mut cur = st.current.lock().unwrap();
    if cur.as_ref().is_some_and(|d| d.coord.same_channel(coord)) {
        *cur = None;
    }
}

/// Answers a `Deploy`: `Deployed` with the load time and this worker's backend, or the
/// refusal.
async fn answer_deploy(
    st: &State,
    coord: &mpsc::Sender<Outgoing>,
    part: u32,
    res: Result<u64>,
) -> Result<()> {
    match res {
        Ok(load_us) => {
            let backend = st.engine.name().to_string();
            let m = Msg::Deployed {
                part,
                load_us,
                backend,
            };
            send(coord, &m).await
        }
        Err(e) => refuse(coord, format!("deploying partition {part}: {e:#}")).await,
    }
}

/// The `Stats` answer: peak memory, and the energy and edges of the current deployment if
/// it is this coordinator's.
fn stats(st: &State, coord: &mpsc::Sender<Outgoing>) -> Msg {
    let cur = st.current.lock().unwrap().clone();
    let cur = cur.filter(|d| d.coord.same_channel(coord));
    let (energy, edges) = match cur {
        Some(d) => (
            d.energy.as_ref().map(|e| (e.id().to_string(), e.used_uj())),
            d.edges.lock().unwrap().values().cloned().collect(),
        ),
        None => (None, Vec::new()),
    };
    Msg::Stats {
        peak_rss_kb: peak_rss_kb(),
        energy,
        edges,
    }
}

/// Hands a received tensor to its partition.
async fn deliver(st: &Arc<State>, rcv: crate::proto::Received) -> Result<()> {
    let Msg::Tensor {
        frame,
        from,
        to,
        name,
        shape,
        data,
        ..
    } = rcv.msg
    else {
        unreachable!("deliver is called on tensors")
    };
    let Some(dep) = st.current.lock().unwrap().clone() else {
        bail!("tensor for partition {to} but nothing is deployed");
    };
    {
        let mut e = dep.edges.lock().unwrap();
        let s = e
            .entry((from, to, name.clone()))
            .or_insert_with(|| EdgeStat {
                from,
                to,
                tensor: name.clone(),
                ..EdgeStat::default()
            });
        s.count += 1;
        s.bytes += rcv.bytes;
        s.transfer_us += rcv.transfer.as_micros() as u64;
    }
    let tx = dep.parts.lock().unwrap().get(&to).cloned();
    let Some(tx) = tx else {
        dep.fault(format!(
            "tensor '{name}' for partition {to}, which is not deployed here"
        ));
        bail!("tensor for unknown partition {to}");
    };
    let t = Tensor {
        shape: shape.iter().map(|&d| d as usize).collect(),
        data,
    };
    tx.send((frame, name, t))
        .await
        .map_err(|_| anyhow!("partition {to} has stopped"))
}

enum Out {
    Coord,
    Local(u32),
    Peer(mpsc::Sender<Outgoing>, u32),
}

async fn peer_sender(
    dep: &Arc<Deployment>,
    st: &Arc<State>,
    addr: &str,
    sh: Shaping,
) -> Result<mpsc::Sender<Outgoing>> {
    let mut peers = dep.peers.lock().await;
    if let Some(tx) = peers.get(addr) {
        return Ok(tx.clone());
    }
    let to = allowed_peer(st, addr).await?;
    let mut s = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(to))
        .await
        .map_err(|_| anyhow!("connecting to peer {addr}: timed out"))?
        .with_context(|| format!("connecting to peer {addr}"))?;
    s.set_nodelay(true)?;
    if st.key.is_empty() {
        // token-less: the peer must be a worker of this user, not a squatter
        crate::peercred::check_same_user(s.local_addr()?, s.peer_addr()?)
            .with_context(|| format!("peer {addr}"))?;
    }
    let keys = client_handshake(&mut s, &st.key, Role::Peer)
        .await
        .with_context(|| format!("peer {addr}"))?;
    let (mut r, w) = s.into_split();
    let d1 = Arc::downgrade(dep);
    let a1 = addr.to_string();
    let mut open = keys.recv;
    let tx = spawn_writer(w, keys.send, sh, WRITER_QUEUE, move |e| {
        if let Some(d) = d1.upgrade() {
            d.fault(format!("lost peer {a1}: {e}"));
        }
    });
    // the peer only sends heartbeats back; silence or a close means it is gone
    let d2 = Arc::downgrade(dep);
    let a2 = addr.to_string();
    let alive = tx.downgrade();
    tokio::spawn(async move {
        let idle = Duration::from_millis(IDLE_TIMEOUT_MS);
        let e = loop {
            match open.read(&mut r, 1024, idle).await {
                // a refusal (such as --max-connections), then the close
                Ok(rcv) => {
                    if let Msg::Error { msg } = rcv.msg {
                        break msg;
                    }
                }
                Err(e) => break e.to_string(),
            }
        };
        // a deployment torn down on purpose drops its writers first: stay quiet then
        if alive.upgrade().is_some() {
            if let Some(d) = d2.upgrade() {
                d.fault(format!("lost peer {a2}: {e}"));
            }
        }
    });
    peers.insert(addr.to_string(), tx.clone());
    Ok(tx)
}

/// Resolves a route's peer `addr` to the first of its addresses this worker may connect to
/// (`--peers`; loopback only without a token), or refuses it.
async fn allowed_peer(st: &State, addr: &str) -> Result<SocketAddr> {
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("peer {addr}: expected HOST:PORT"))?
        .collect();
    let ok = |a: &SocketAddr| {
        st.limits.peers.allows(a.ip()) && (!st.key.is_empty() || a.ip().is_loopback())
    };
    match resolved.iter().find(|a| ok(a)) {
        Some(a) => Ok(*a),
        None if st.key.is_empty() => {
            bail!("peer {addr} refused: a worker without a token connects only to loopback")
        }
        None => bail!("peer {addr} refused: not in this worker's --peers allow-list"),
    }
}

/// How a partition executes: engine threads, host CPUs, pacing (as [`Msg::Deploy`] says).
struct Exec {
    threads: u32,
    cpus: Vec<u32>,
    pace: f64,
}

impl Exec {
    /// The pacing factor: the deployment's, else the worker's `--pace`; None: not paced.
    fn pace(&self) -> Option<f64> {
        let p = if self.pace > 0.0 {
            self.pace
        } else {
            *PACE.get()?
        };
        (p.is_finite() && p > 1.0).then_some(p)
    }
}

/// Deploys partition `part` of `dep`: its sub-model (already shipped, `hash`) loaded on a
/// thread of its own pinned to its CPUs, which then serves its frames; its outputs routed.
/// Returns the load time [us].
async fn deploy(
    st: &Arc<State>,
    dep: &Arc<Deployment>,
    part: u32,
    hash: [u8; 32],
    exec: Exec,
    inputs: Vec<String>,
    routes: Vec<crate::proto::Route>,
) -> Result<u64> {
    // in use from now on: the cache no longer evicts it
    dep.hashes.lock().unwrap().insert(hash);
    let stored = st
        .models
        .lock()
        .unwrap()
        .get(&hash)
        .ok_or_else(|| anyhow!("its sub-model was not shipped (or was evicted)"))?;
    let outs = route_outs(st, dep, routes).await?;
    let (tx, rx) = mpsc::channel(WRITER_QUEUE);
    let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
    let engine = st.engine.clone();
    let turns = dep.turns.of(&exec.cpus);
    let d = Arc::downgrade(dep);
    std::thread::Builder::new()
        .name(format!("part{part}"))
        .spawn(move || {
            let session = match load_pinned(engine.as_ref(), part, &stored, &exec) {
                Ok((s, us)) => {
                    let _ = loaded_tx.send(Ok(us));
                    s
                }
                Err(e) => {
                    let _ = loaded_tx.send(Err(e));
                    return;
                }
            };
            let run = PartRun {
                part,
                pace: exec.pace(),
                turns,
                inputs,
                outs,
            };
            if let Err(e) = run.serve(session, rx, &d) {
                if let Some(d) = d.upgrade() {
                    d.fault(format!("partition {part}: {e:#}"));
                }
            }
        })?;
    let load_us = (loaded_rx.await).map_err(|_| anyhow!("the partition's thread ended"))??;
    dep.parts.lock().unwrap().insert(part, tx);
    Ok(load_us)
}

/// Where a partition's outputs go, per tensor: the coordinator, a partition of this
/// worker, or a peer's partition (the connection to that peer opened or shared).
async fn route_outs(
    st: &Arc<State>,
    dep: &Arc<Deployment>,
    routes: Vec<crate::proto::Route>,
) -> Result<Vec<(String, Out)>> {
    let mut outs = Vec::new();
    for r in routes {
        let o = match r.dest {
            Dest::Coordinator => Out::Coord,
            Dest::Local { part } => Out::Local(part),
            Dest::Peer {
                addr,
                part,
                delay_us,
                rate_bps,
            } => Out::Peer(
                peer_sender(dep, st, &addr, Shaping { delay_us, rate_bps }).await?,
                part,
            ),
        };
        outs.push((r.tensor, o));
    }
    Ok(outs)
}

/// On the partition's own thread: pins it to the partition's CPUs, so that the threads the
/// engine starts while loading inherit them, then loads the sub-model. Returns the session
/// and the load time [us].
fn load_pinned(
    engine: &dyn Engine,
    part: u32,
    stored: &crate::spill::Stored,
    exec: &Exec,
) -> Result<(Box<dyn EngineSession>, u64)> {
    let cpus: Vec<usize> = exec.cpus.iter().map(|&c| c as usize).collect();
    let pinned = if cpus.is_empty() {
        "not pinned".to_string()
    } else {
        match crate::sys::pin_to_cpus(&cpus) {
            Ok(()) => format!("pinned to CPUs {cpus:?}"),
            // a platform with more cores than this board: run unpinned rather than fail
            Err(e) => format!("not pinned (CPUs {cpus:?}: {e})"),
        }
    };
    let note = engine.thread_note(exec.threads as usize);
    eprintln!(
        "worker: partition {part}: {} intra-op thread(s) in {}, {pinned}{}",
        exec.threads,
        engine.name(),
        note.map(|n| format!("; {n}")).unwrap_or_default()
    );
    let t0 = Instant::now();
    let bytes = stored
        .owned_bytes()
        .context("reading the shipped sub-model")?;
    // the engine frees the ONNX bytes (a spilled file's copy) once it no longer needs them
    // and keeps its own form of the weights; what the load freed goes back to the kernel
    let session = engine.load_owned(bytes, exec.threads as usize)?;
    crate::spill::release_freed_memory();
    Ok((session, t0.elapsed().as_micros() as u64))
}

/// A deployed partition's loop: what it waits for, how it runs, where its outputs go.
struct PartRun {
    part: u32,
    /// Pacing factor (None: not paced).
    pace: Option<f64>,
    /// Turns on its CPUs, held for each run (pacing included).
    turns: Vec<Arc<Turn>>,
    inputs: Vec<String>,
    outs: Vec<(String, Out)>,
}

impl PartRun {
    /// For each frame whose inputs have all arrived: runs the engine (paced, on its turn),
    /// sends every output to its consumers and the run's `Timing` to the coordinator.
    fn serve(
        &self,
        mut session: Box<dyn EngineSession>,
        mut rx: mpsc::Receiver<(u64, String, Tensor)>,
        dep: &std::sync::Weak<Deployment>,
    ) -> Result<()> {
        let mut pending: Pending = BTreeMap::new();
        while let Some((frame, name, t)) = rx.blocking_recv() {
            let Some(ins) = gather(&mut pending, &self.inputs, frame, name, t)? else {
                continue;
            };
            let ready = crate::proto::mono_ns();
            let (outputs, compute_us, start, cpu) = {
                let _turn = Held::take(&self.turns);
                let start = crate::proto::mono_ns();
                let c0 = thread_cpu_time();
                let (o, us) = run_paced(session.as_mut(), &ins, self.pace)?;
                (o, us, start, thread_cpu_time().saturating_sub(c0))
            };
            let end = crate::proto::mono_ns();
            let Some(d) = dep.upgrade() else {
                return Ok(());
            };
            for (name, t) in &outputs {
                for (_, o) in self.outs.iter().filter(|(n, _)| n == name) {
                    send_output(&d, o, self.part, frame, name, t)?;
                }
            }
            log_run(
                frame,
                self.part,
                [
                    ready,
                    start,
                    end,
                    crate::proto::mono_ns(),
                    cpu.as_nanos() as u64,
                ],
            );
            let timing = Msg::Timing {
                frame,
                part: self.part,
                compute_us,
            };
            let _ = d.coord.blocking_send((Instant::now(), timing.encode()));
        }
        Ok(())
    }
}

/// The per-run timeline file named by `DICESIM_WORKER_TIMES` (read once), if any.
fn timeline() -> Option<&'static Mutex<std::fs::File>> {
    static T: std::sync::OnceLock<Option<Mutex<std::fs::File>>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let p = std::env::var_os("DICESIM_WORKER_TIMES")?;
        let f = (std::fs::OpenOptions::new().create(true).append(true))
            .open(&p)
            .map_err(|e| eprintln!("worker: DICESIM_WORKER_TIMES {p:?}: {e}"))
            .ok()?;
        Some(Mutex::new(f))
    })
    .as_ref()
}

/// Appends one run to the timeline (a diagnostic for soak runs: where a stall happens):
/// `frame,part,ready_ns,start_ns,end_ns,sent_ns,cpu_ns`, monotonic clock (the same for
/// every process of the host): all inputs in, turn taken, engine done, outputs handed
/// over; and the CPU time the run's thread used (a run much longer than its CPU time was
/// descheduled).
fn log_run(frame: u64, part: u32, t: [u64; 5]) {
    if let Some(f) = timeline() {
        use std::io::Write;
        let [a, b, c, d, e] = t;
        let line = format!("{frame},{part},{a},{b},{c},{d},{e}\n");
        // one write per line, so that lines of several partitions do not interleave
        let _ = f.lock().unwrap().write_all(line.as_bytes());
    }
}

/// Inputs received per frame, for frames still missing some.
type Pending = BTreeMap<u64, HashMap<String, Tensor>>;

/// Files input `name` of `frame`; returns the frame's inputs once all have arrived.
fn gather(
    pending: &mut Pending,
    inputs: &[String],
    frame: u64,
    name: String,
    t: Tensor,
) -> Result<Option<HashMap<String, Tensor>>> {
    if !inputs.contains(&name) {
        bail!("received '{name}', which is not one of its inputs {inputs:?}");
    }
    let slot = pending.entry(frame).or_default();
    slot.insert(name, t);
    if slot.len() < inputs.len() {
        if pending.len() > MAX_PENDING_FRAMES {
            bail!("more than {MAX_PENDING_FRAMES} frames wait for inputs");
        }
        return Ok(None);
    }
    Ok(pending.remove(&frame))
}

/// Runs the engine, then sleeps as the pacing factor asks (see [`run`]). Returns the
/// outputs and the paced run time [us].
fn run_paced(
    session: &mut dyn EngineSession,
    ins: &HashMap<String, Tensor>,
    pace: Option<f64>,
) -> Result<(Vec<(String, Tensor)>, u64)> {
    let t0 = Instant::now();
    let c0 = thread_cpu_time();
    let outputs = session.run(ins)?;
    if let Some(pace) = pace {
        // the run took `cpu` on the host; the emulated device needs `pace` x that
        let target = (thread_cpu_time().saturating_sub(c0)).mul_f64(pace);
        if let Some(rest) = target.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok((outputs, t0.elapsed().as_micros() as u64))
}

/// Sends output `name` of `frame` to one consumer: the coordinator, a peer worker or a
/// partition of this worker.
fn send_output(
    d: &Deployment,
    o: &Out,
    part: u32,
    frame: u64,
    name: &str,
    t: &Tensor,
) -> Result<()> {
    let msg = |to: u32| Msg::Tensor {
        frame,
        from: part,
        to,
        name: name.to_string(),
        shape: t.shape.iter().map(|&x| x as u32).collect(),
        data: t.data.clone(),
        sent_ns: crate::proto::mono_ns(),
    };
    let ok = match o {
        Out::Coord => d
            .coord
            .blocking_send((Instant::now(), msg(part).encode()))
            .is_ok(),
        Out::Peer(tx, to) => tx
            .blocking_send((Instant::now(), msg(*to).encode()))
            .is_ok(),
        Out::Local(to) => {
            let tx = d.parts.lock().unwrap().get(to).cloned();
            match tx {
                Some(tx) => tx
                    .blocking_send((frame, name.to_string(), t.clone()))
                    .is_ok(),
                None => bail!("local consumer partition {to} is not deployed"),
            }
        }
    };
    if !ok {
        bail!("the consumer of '{name}' has gone");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn deploy_threads_are_clamped_to_the_cpus() {
        let cpus = std::thread::available_parallelism().unwrap().get() as u32;
        assert_eq!(clamp_threads(0), 0);
        assert_eq!(clamp_threads(1), 1);
        assert_eq!(clamp_threads(u32::MAX), cpus);
    }

    #[test]
    fn chunks_in_order_make_the_sub_model() {
        let body = b"0123456789";
        let h = hash_of(body);
        let mut up = None;
        assert!(
            accept_chunk(&mut up, (h, 10, MAX_MODEL_BYTES), 0, &body[..4])
                .unwrap()
                .is_none()
        );
        let done = accept_chunk(&mut up, (h, 10, MAX_MODEL_BYTES), 4, &body[4..])
            .unwrap()
            .unwrap();
        assert_eq!((done.hash, done.bytes.as_slice()), (h, &body[..]));
        assert!(up.is_none());
    }

    #[test]
    fn bad_chunks_are_refused() {
        let h = hash_of(b"abcd");
        let over = accept_chunk(&mut None, (h, MAX_MODEL_BYTES + 1, MAX_MODEL_BYTES), 0, b"");
        assert!(over.err().unwrap().contains("refused"));
        let mut up = None;
        let gap = accept_chunk(&mut up, (h, 4, MAX_MODEL_BYTES), 2, b"cd");
        assert_eq!(gap.err().unwrap(), "model chunk out of order");
        let wrong = accept_chunk(&mut None, (h, 4, MAX_MODEL_BYTES), 0, b"abce");
        assert_eq!(wrong.err().unwrap(), "model bytes do not match their hash");
        // a worker's own cap (--max-model-mb) refuses a model the protocol would allow
        let capped = accept_chunk(&mut None, (h, 2 << 20, 1 << 20), 0, b"");
        assert!(capped.err().unwrap().contains("--max-model-mb"));
    }
}
