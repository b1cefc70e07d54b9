//! The wire protocol between the coordinator and workers, and between workers.
//!
//! # Framing
//!
//! Every message is one frame: a 4-byte little-endian body length `n`, then `n` body bytes.
//! The body is a 1-byte message type followed by the type's payload (below). A reader checks
//! `n` against a maximum *before* allocating anything: [`MAX_HANDSHAKE_FRAME`] until the peer
//! has authenticated, [`MAX_FRAME`] after. A length of 0, a length above the maximum, an
//! unknown type, a payload that ends early or has bytes left over, a count larger than the
//! bytes that could hold it, or invalid UTF-8 is a [`ProtoError`]: the connection is closed,
//! the process goes on. All integers are little-endian; a string or byte string is a `u32`
//! length then the bytes; a list is a `u32` count then the items.
//!
//! # Versioning and handshake
//!
//! The client (coordinator or peer worker) opens with [`Msg::Hello`]: the magic `DSIM`, the
//! protocol [`VERSION`], its role and a 32-byte random nonce. The server answers with
//! [`Msg::Challenge`] (its version and its own nonce, nothing keyed by the secret), or with
//! [`Msg::Error`] naming both versions when they differ. The client answers [`Msg::Auth`]
//! with its proof; the server checks it and only then answers [`Msg::Welcome`] with its own
//! proof (or [`Msg::Error`]), which the client checks. Proofs are HMAC-SHA256 keyed by the
//! shared secret over the transcript hash `T = SHA-256("dicesim handshake v4" | Hello frame
//! | Challenge frame)`: client `HMAC(k, "dsim-client" | T)`, server `HMAC(k, "dsim-server" |
//! T)`. The secret never crosses the wire, neither side can replay an old exchange, the
//! role and versions are bound, and a caller without the secret gets nothing to test
//! guesses against. A worker started without a token uses the empty key and only listens on
//! loopback. A new version changes [`VERSION`]; messages are never reinterpreted silently.
//!
//! After `Welcome` every frame is sealed (AES-256-GCM, keys from the secret and `T`,
//! per-direction counters as nonces): see [`crate::seal`].
//!
//! # Messages after the handshake
//!
//! Coordinator -> worker: [`Msg::ModelQuery`] (is a sub-model with this SHA-256 cached?),
//! [`Msg::ModelChunk`] (its bytes, in order, at most [`MODEL_CHUNK`] each),
//! [`Msg::Deploy`] (run a partition from a cached model, with its inputs and where each
//! output goes), [`Msg::Tensor`] (graph inputs of a frame), [`Msg::StatsRequest`],
//! [`Msg::Reset`] (drop the deployment; the model cache stays).
//! Worker -> coordinator: [`Msg::ModelHave`], [`Msg::ModelReady`], [`Msg::Deployed`],
//! [`Msg::Tensor`] (graph outputs), [`Msg::Timing`] (one per partition per frame),
//! [`Msg::Stats`], [`Msg::Fault`] (something failed: a peer lost, a run error).
//! Worker -> worker: [`Msg::Tensor`] (a partition's output for a consumer partition).
//! Both ways, any time: [`Msg::Heartbeat`], sent when a connection has been idle for
//! [`HEARTBEAT_MS`]; a reader that hears nothing for [`IDLE_TIMEOUT_MS`] drops the peer.

use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Protocol version; both ends must speak the same. 2: [`Msg::Deployed`] names the
/// worker's backend. 3: [`Msg::Deploy`] carries the partition's host CPUs and pacing.
/// 4: the client proves the secret first, proofs and keys cover the handshake transcript,
/// and every frame after it is sealed ([`crate::seal`]).
pub const VERSION: u16 = 4;
/// First bytes of a [`Msg::Hello`] payload.
pub const MAGIC: [u8; 4] = *b"DSIM";
/// Largest frame body accepted before authentication [bytes].
pub const MAX_HANDSHAKE_FRAME: u32 = 1024;
/// Largest frame body accepted after authentication [bytes].
pub const MAX_FRAME: u32 = 128 << 20;
/// Largest sub-model a worker accepts [bytes].
pub const MAX_MODEL_BYTES: u64 = 4 << 30;
/// Size of model chunks sent by the coordinator [bytes].
pub const MODEL_CHUNK: usize = 8 << 20;
/// A connection idle this long sends a heartbeat [ms].
pub const HEARTBEAT_MS: u64 = 200;
/// A reader that receives nothing (not one byte) for this long drops the connection [ms].
pub const IDLE_TIMEOUT_MS: u64 = 900;
/// Partition id used as `from` for tensors sent by the coordinator (graph inputs).
pub const FROM_COORDINATOR: u32 = u32::MAX;

/// Why a frame could not be read or decoded.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The socket failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection between frames: the normal end of a connection.
    #[error("connection: peer closed the connection")]
    Closed,
    /// Nothing arrived in time.
    #[error("peer silent for more than {0} ms")]
    Timeout(u64),
    /// The length prefix is zero or above the limit.
    #[error("frame of {len} bytes refused (limit {max})")]
    BadLength {
        /// Announced length.
        len: u32,
        /// Limit in force.
        max: u32,
    },
    /// The body does not decode.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A sealed frame does not open with this connection's keys in this place of the
    /// sequence (see [`crate::seal`]).
    #[error("rejected frame: {0}")]
    Tampered(String),
}

fn bad(s: impl Into<String>) -> ProtoError {
    ProtoError::Malformed(s.into())
}

/// Who opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The coordinator (deploys, streams, collects).
    Coordinator = 0,
    /// Another worker sending tensors.
    Peer = 1,
}

/// Where a partition output goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Dest {
    /// To the coordinator (a graph output).
    Coordinator,
    /// To a partition on the same worker.
    Local {
        /// Consumer partition.
        part: u32,
    },
    /// To a partition on another worker.
    Peer {
        /// The worker's address (`host:port`).
        addr: String,
        /// Consumer partition.
        part: u32,
        /// Emulated link latency, applied by the sender to every message [us].
        delay_us: u32,
        /// User-space shaping rate (token bucket in the sender) [bit/s]; 0: none.
        rate_bps: u64,
    },
}

/// One output routing entry of a deployed partition.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Output tensor name.
    pub tensor: String,
    /// Destination.
    pub dest: Dest,
}

/// Transfer figures of one edge, measured by the receiver.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EdgeStat {
    /// Producer partition ([`FROM_COORDINATOR`] for graph inputs).
    pub from: u32,
    /// Consumer partition.
    pub to: u32,
    /// Tensor name.
    pub tensor: String,
    /// Messages received.
    pub count: u64,
    /// Frame bytes received (header included).
    pub bytes: u64,
    /// Sum over messages of the time from the length prefix's arrival to the last byte [us].
    pub transfer_us: u64,
}

/// A protocol message. See the module docs for who sends which.
#[derive(Debug, Clone, PartialEq)]
pub enum Msg {
    /// Client greeting.
    Hello {
        /// Protocol version of the client.
        version: u16,
        /// Role of the client.
        role: Role,
        /// Client nonce.
        nonce: [u8; 32],
    },
    /// Server's challenge: its nonce only, nothing keyed by the token (so that one greeting
    /// gives an unauthenticated client nothing to test token guesses against).
    Challenge {
        /// Protocol version of the server.
        version: u16,
        /// Server nonce.
        nonce: [u8; 32],
    },
    /// Client proof.
    Auth {
        /// HMAC proof of the client.
        proof: [u8; 32],
    },
    /// Handshake accepted, with the server's proof (sent only once the client has proven
    /// the token).
    Welcome {
        /// HMAC proof of the server.
        proof: [u8; 32],
    },
    /// Refusal or failure with a reason; the sender closes afterwards.
    Error {
        /// Reason.
        msg: String,
    },
    /// Keep-alive.
    Heartbeat,
    /// Is this sub-model cached? Answered yes only to a connection that proves it holds
    /// the bytes, so that one coordinator cannot probe what another uploaded.
    ModelQuery {
        /// SHA-256 of the ONNX bytes.
        hash: [u8; 32],
        /// Proof of possession: HMAC-SHA256 keyed by this connection's transcript hash
        /// over the ONNX bytes (see [`crate::conn::possession`]).
        possession: [u8; 32],
    },
    /// Answer to [`Msg::ModelQuery`].
    ModelHave {
        /// The model.
        hash: [u8; 32],
        /// Whether it is cached.
        have: bool,
    },
    /// A piece of a sub-model.
    ModelChunk {
        /// The model.
        hash: [u8; 32],
        /// Total size [bytes].
        total: u64,
        /// Offset of this chunk.
        offset: u64,
        /// Bytes.
        data: Vec<u8>,
    },
    /// A sub-model is complete and its hash checked.
    ModelReady {
        /// The model.
        hash: [u8; 32],
    },
    /// Run a partition.
    Deploy {
        /// Partition id.
        part: u32,
        /// Its cached sub-model.
        hash: [u8; 32],
        /// Engine intra-op threads (0: the engine's default).
        threads: u32,
        /// Host CPUs the partition's threads are pinned to, ascending (empty: not pinned).
        /// Partitions of one worker that share a CPU take turns.
        cpus: Vec<u32>,
        /// Emulation pacing factor of this partition (0: the worker's `--pace`, if any).
        pace: f64,
        /// Input tensor names the partition waits for per frame.
        inputs: Vec<String>,
        /// Where its outputs go.
        routes: Vec<Route>,
    },
    /// A partition is loaded and ready.
    Deployed {
        /// Partition id.
        part: u32,
        /// Load time [us].
        load_us: u64,
        /// The backend that loaded it (`tract`, `ort`, ...).
        backend: String,
    },
    /// A tensor of one frame.
    Tensor {
        /// Frame number.
        frame: u64,
        /// Producer partition, or [`FROM_COORDINATOR`].
        from: u32,
        /// Consumer partition (for graph outputs sent to the coordinator: the producer).
        to: u32,
        /// Tensor name.
        name: String,
        /// Shape.
        shape: Vec<u32>,
        /// Values, row-major.
        data: Vec<f32>,
        /// When the sender handed the tensor to its transport, [`mono_ns`] (0: unknown).
        /// Sender and receiver share the clock on one host (the emulation rig); the
        /// receiver's transfer time is then send-to-receive.
        sent_ns: u64,
    },
    /// Compute time of one partition for one frame.
    Timing {
        /// Frame number.
        frame: u64,
        /// Partition id.
        part: u32,
        /// Engine run time [us].
        compute_us: u64,
    },
    /// Ask for [`Msg::Stats`].
    StatsRequest,
    /// Worker measurements.
    Stats {
        /// Peak resident set of the worker process (VmHWM) [KiB].
        peak_rss_kb: u64,
        /// Energy sensor id (`host:path`) and the energy used since the deployment [uJ],
        /// where the board has a sensor.
        energy: Option<(String, u64)>,
        /// Per-edge receive figures.
        edges: Vec<EdgeStat>,
    },
    /// Drop the deployment (models stay cached).
    Reset,
    /// Something failed on the worker.
    Fault {
        /// What.
        msg: String,
    },
}

/// The message types with their wire tags (the byte that opens a frame body): the one list
/// of them. [`Msg::kind`], [`Msg::encode`] and [`Msg::decode`] all go through it, and
/// the compiler checks that each handles every kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// [`Msg::Hello`].
    Hello = 1,
    /// [`Msg::Challenge`].
    Challenge = 2,
    /// [`Msg::Auth`].
    Auth = 3,
    /// [`Msg::Welcome`].
    Welcome = 4,
    /// [`Msg::Error`].
    Error = 5,
    /// [`Msg::Heartbeat`].
    Heartbeat = 6,
    /// [`Msg::ModelQuery`].
    ModelQuery = 10,
    /// [`Msg::ModelHave`].
    ModelHave = 11,
    /// [`Msg::ModelChunk`].
    ModelChunk = 12,
    /// [`Msg::ModelReady`].
    ModelReady = 13,
    /// [`Msg::Deploy`].
    Deploy = 14,
    /// [`Msg::Deployed`].
    Deployed = 15,
    /// [`Msg::Tensor`].
    Tensor = 20,
    /// [`Msg::Timing`].
    Timing = 21,
    /// [`Msg::StatsRequest`].
    StatsRequest = 30,
    /// [`Msg::Stats`].
    Stats = 31,
    /// [`Msg::Reset`].
    Reset = 32,
    /// [`Msg::Fault`].
    Fault = 33,
}

impl Kind {
    /// Every kind, in tag order (decoding looks tags up here).
    pub const ALL: [Kind; 18] = [
        Kind::Hello,
        Kind::Challenge,
        Kind::Auth,
        Kind::Welcome,
        Kind::Error,
        Kind::Heartbeat,
        Kind::ModelQuery,
        Kind::ModelHave,
        Kind::ModelChunk,
        Kind::ModelReady,
        Kind::Deploy,
        Kind::Deployed,
        Kind::Tensor,
        Kind::Timing,
        Kind::StatsRequest,
        Kind::Stats,
        Kind::Reset,
        Kind::Fault,
    ];

    /// The wire tag.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The kind a wire tag names, if any.
    pub fn from_tag(tag: u8) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.tag() == tag)
    }
}

impl std::fmt::Display for Kind {
    /// The message's name, as in [`Msg`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Appends `data` as little-endian bytes (one copy on little-endian hosts).
fn f32s_to_le(data: &[f32], out: &mut Vec<u8>) {
    if cfg!(target_endian = "little") {
        // SAFETY: f32 has no padding and any byte pattern is a valid u8; the slice covers
        // exactly the floats' memory.
        let b = unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), data.len() * 4) };
        out.extend_from_slice(b);
    } else {
        for x in data {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
}

/// Floats from little-endian bytes (`raw.len()` is a multiple of 4).
fn f32s_from_le(raw: &[u8]) -> Vec<f32> {
    let n = raw.len() / 4;
    if cfg!(target_endian = "little") {
        let mut v = vec![0f32; n];
        // SAFETY: the destination holds exactly n * 4 bytes; any bit pattern is a valid f32.
        unsafe {
            std::ptr::copy_nonoverlapping(raw.as_ptr(), v.as_mut_ptr().cast::<u8>(), n * 4);
        }
        v
    } else {
        raw.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }
}

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, x: u8) {
        self.0.push(x);
    }
    fn u16(&mut self, x: u16) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u32(&mut self, x: u32) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn u64(&mut self, x: u64) {
        self.0.extend_from_slice(&x.to_le_bytes());
    }
    fn b32(&mut self, x: &[u8; 32]) {
        self.0.extend_from_slice(x);
    }
    fn bytes(&mut self, x: &[u8]) {
        self.u32(x.len() as u32);
        self.0.extend_from_slice(x);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.0.len() < n {
            return Err(bad("message ends early"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn b32(&mut self) -> Result<[u8; 32], ProtoError> {
        Ok(self.take(32)?.try_into().unwrap())
    }
    fn bytes(&mut self) -> Result<&'a [u8], ProtoError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    fn str(&mut self) -> Result<String, ProtoError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| bad("string is not UTF-8"))
    }
    /// A list count, checked against the bytes left (each item takes at least `min` bytes),
    /// so a hostile count cannot make the reader reserve memory.
    fn count(&mut self, min: usize) -> Result<usize, ProtoError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min.max(1)) > self.0.len() {
            return Err(bad(format!(
                "list of {n} items does not fit in the message"
            )));
        }
        Ok(n)
    }
    fn end(&self) -> Result<(), ProtoError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(bad(format!("{} bytes left over", self.0.len())))
        }
    }
}

/// Payload writers shared by several messages.
impl W {
    /// A `u32` count, then each item.
    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut W, &T)) {
        self.u32(items.len() as u32);
        for x in items {
            item(self, x);
        }
    }
    fn route(&mut self, r: &Route) {
        self.str(&r.tensor);
        match &r.dest {
            Dest::Coordinator => self.u8(0),
            Dest::Local { part } => {
                self.u8(1);
                self.u32(*part);
            }
            Dest::Peer {
                addr,
                part,
                delay_us,
                rate_bps,
            } => {
                self.u8(2);
                self.str(addr);
                self.u32(*part);
                self.u32(*delay_us);
                self.u64(*rate_bps);
            }
        }
    }
    fn edge(&mut self, e: &EdgeStat) {
        self.u32(e.from);
        self.u32(e.to);
        self.str(&e.tensor);
        self.u64(e.count);
        self.u64(e.bytes);
        self.u64(e.transfer_us);
    }
    fn energy(&mut self, energy: &Option<(String, u64)>) {
        match energy {
            None => self.u8(0),
            Some((id, uj)) => {
                self.u8(1);
                self.str(id);
                self.u64(*uj);
            }
        }
    }
}

/// Keeps refusals small enough for a peer still in the handshake.
fn clip(msg: &str) -> &str {
    let mut end = msg.len().min(900);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    &msg[..end]
}

/// Payload readers, one per message with a structured payload.
impl R<'_> {
    /// A `u32` count (each item at least `min` bytes), then each item.
    fn list<T>(
        &mut self,
        min: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, ProtoError>,
    ) -> Result<Vec<T>, ProtoError> {
        let n = self.count(min)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(item(self)?);
        }
        Ok(v)
    }
    fn hello(&mut self) -> Result<Msg, ProtoError> {
        if self.take(4)? != MAGIC {
            return Err(bad("not a dicesim peer (bad magic)"));
        }
        let version = self.u16()?;
        let role = match self.u8()? {
            0 => Role::Coordinator,
            1 => Role::Peer,
            x => return Err(bad(format!("unknown role {x}"))),
        };
        let nonce = self.b32()?;
        Ok(Msg::Hello {
            version,
            role,
            nonce,
        })
    }
    fn route(&mut self) -> Result<Route, ProtoError> {
        let tensor = self.str()?;
        let dest = match self.u8()? {
            0 => Dest::Coordinator,
            1 => Dest::Local { part: self.u32()? },
            2 => Dest::Peer {
                addr: self.str()?,
                part: self.u32()?,
                delay_us: self.u32()?,
                rate_bps: self.u64()?,
            },
            x => return Err(bad(format!("unknown destination kind {x}"))),
        };
        Ok(Route { tensor, dest })
    }
    fn deploy(&mut self) -> Result<Msg, ProtoError> {
        Ok(Msg::Deploy {
            part: self.u32()?,
            hash: self.b32()?,
            threads: self.u32()?,
            cpus: self.list(4, R::u32)?,
            pace: f64::from_bits(self.u64()?),
            inputs: self.list(4, R::str)?,
            routes: self.list(5, R::route)?,
        })
    }
    fn tensor(&mut self) -> Result<Msg, ProtoError> {
        let frame = self.u64()?;
        let from = self.u32()?;
        let to = self.u32()?;
        let name = self.str()?;
        let shape = self.list(4, R::u32)?;
        let n = self.count(4)?;
        let raw = self.take(n * 4)?;
        let elems = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(|| bad("tensor shape overflows"))?;
        if elems != n as u64 {
            return Err(bad(format!(
                "tensor '{name}' has shape {shape:?} but {n} values"
            )));
        }
        Ok(Msg::Tensor {
            frame,
            from,
            to,
            name,
            shape,
            data: f32s_from_le(raw),
            sent_ns: self.u64()?,
        })
    }
    fn edge(&mut self) -> Result<EdgeStat, ProtoError> {
        Ok(EdgeStat {
            from: self.u32()?,
            to: self.u32()?,
            tensor: self.str()?,
            count: self.u64()?,
            bytes: self.u64()?,
            transfer_us: self.u64()?,
        })
    }
    fn stats(&mut self) -> Result<Msg, ProtoError> {
        let peak_rss_kb = self.u64()?;
        let energy = match self.u8()? {
            0 => None,
            1 => Some((self.str()?, self.u64()?)),
            x => return Err(bad(format!("bad energy flag {x}"))),
        };
        Ok(Msg::Stats {
            peak_rss_kb,
            energy,
            edges: self.list(36, R::edge)?,
        })
    }
    /// The payload of a `kind` message.
    fn payload(&mut self, kind: Kind) -> Result<Msg, ProtoError> {
        Ok(match kind {
            Kind::Hello => self.hello()?,
            Kind::Challenge => Msg::Challenge {
                version: self.u16()?,
                nonce: self.b32()?,
            },
            Kind::Auth => Msg::Auth { proof: self.b32()? },
            Kind::Welcome => Msg::Welcome { proof: self.b32()? },
            Kind::Error => Msg::Error { msg: self.str()? },
            Kind::Heartbeat => Msg::Heartbeat,
            Kind::ModelQuery => Msg::ModelQuery {
                hash: self.b32()?,
                possession: self.b32()?,
            },
            Kind::ModelHave => Msg::ModelHave {
                hash: self.b32()?,
                have: self.u8()? != 0,
            },
            Kind::ModelChunk => Msg::ModelChunk {
                hash: self.b32()?,
                total: self.u64()?,
                offset: self.u64()?,
                data: self.bytes()?.to_vec(),
            },
            Kind::ModelReady => Msg::ModelReady { hash: self.b32()? },
            Kind::Deploy => self.deploy()?,
            Kind::Deployed => Msg::Deployed {
                part: self.u32()?,
                load_us: self.u64()?,
                backend: self.str()?,
            },
            Kind::Tensor => self.tensor()?,
            Kind::Timing => Msg::Timing {
                frame: self.u64()?,
                part: self.u32()?,
                compute_us: self.u64()?,
            },
            Kind::StatsRequest => Msg::StatsRequest,
            Kind::Stats => self.stats()?,
            Kind::Reset => Msg::Reset,
            Kind::Fault => Msg::Fault { msg: self.str()? },
        })
    }
}

impl Msg {
    /// The message's type: its name in errors, its tag on the wire.
    pub fn kind(&self) -> Kind {
        match self {
            Msg::Hello { .. } => Kind::Hello,
            Msg::Challenge { .. } => Kind::Challenge,
            Msg::Auth { .. } => Kind::Auth,
            Msg::Welcome { .. } => Kind::Welcome,
            Msg::Error { .. } => Kind::Error,
            Msg::Heartbeat => Kind::Heartbeat,
            Msg::ModelQuery { .. } => Kind::ModelQuery,
            Msg::ModelHave { .. } => Kind::ModelHave,
            Msg::ModelChunk { .. } => Kind::ModelChunk,
            Msg::ModelReady { .. } => Kind::ModelReady,
            Msg::Deploy { .. } => Kind::Deploy,
            Msg::Deployed { .. } => Kind::Deployed,
            Msg::Tensor { .. } => Kind::Tensor,
            Msg::Timing { .. } => Kind::Timing,
            Msg::StatsRequest => Kind::StatsRequest,
            Msg::Stats { .. } => Kind::Stats,
            Msg::Reset => Kind::Reset,
            Msg::Fault { .. } => Kind::Fault,
        }
    }

    /// The whole frame: length prefix and body (tag, then payload).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(match self {
            Msg::Tensor { data, .. } => data.len() * 4 + 128,
            Msg::ModelChunk { data, .. } => data.len() + 96,
            _ => 64,
        }));
        w.u32(0); // the body length, set below
        w.u8(self.kind().tag());
        self.encode_payload(&mut w);
        let n = (w.0.len() - 4) as u32;
        w.0[..4].copy_from_slice(&n.to_le_bytes());
        w.0
    }

    /// Writes the payload (nothing for the kinds without one).
    fn encode_payload(&self, w: &mut W) {
        match self {
            Msg::Hello { .. } | Msg::Challenge { .. } => self.encode_greeting(w),
            Msg::Auth { proof: h } | Msg::Welcome { proof: h } | Msg::ModelReady { hash: h } => {
                w.b32(h)
            }
            Msg::Error { msg } => w.str(clip(msg)),
            Msg::Fault { msg } => w.str(msg),
            Msg::ModelQuery { hash, possession } => {
                w.b32(hash);
                w.b32(possession);
            }
            Msg::ModelHave { hash, have } => {
                w.b32(hash);
                w.u8(*have as u8);
            }
            Msg::ModelChunk {
                hash,
                total,
                offset,
                data,
            } => {
                w.b32(hash);
                w.u64(*total);
                w.u64(*offset);
                w.bytes(data);
            }
            Msg::Deploy { .. } => self.encode_deploy(w),
            Msg::Deployed {
                part,
                load_us,
                backend,
            } => {
                w.u32(*part);
                w.u64(*load_us);
                w.str(backend);
            }
            Msg::Tensor { .. } => self.encode_tensor(w),
            Msg::Timing {
                frame,
                part,
                compute_us,
            } => {
                w.u64(*frame);
                w.u32(*part);
                w.u64(*compute_us);
            }
            Msg::Stats {
                peak_rss_kb,
                energy,
                edges,
            } => {
                w.u64(*peak_rss_kb);
                w.energy(energy);
                w.list(edges, W::edge);
            }
            Msg::Heartbeat | Msg::StatsRequest | Msg::Reset => {}
        }
    }

    /// The handshake's opening messages.
    fn encode_greeting(&self, w: &mut W) {
        match self {
            Msg::Hello {
                version,
                role,
                nonce,
            } => {
                w.0.extend_from_slice(&MAGIC);
                w.u16(*version);
                w.u8(*role as u8);
                w.b32(nonce);
            }
            Msg::Challenge { version, nonce } => {
                w.u16(*version);
                w.b32(nonce);
            }
            _ => {}
        }
    }

    fn encode_deploy(&self, w: &mut W) {
        if let Msg::Deploy {
            part,
            hash,
            threads,
            cpus,
            pace,
            inputs,
            routes,
        } = self
        {
            w.u32(*part);
            w.b32(hash);
            w.u32(*threads);
            w.list(cpus, |w, c| w.u32(*c));
            w.u64(pace.to_bits());
            w.list(inputs, |w, s| w.str(s));
            w.list(routes, W::route);
        }
    }

    fn encode_tensor(&self, w: &mut W) {
        if let Msg::Tensor {
            frame,
            from,
            to,
            name,
            shape,
            data,
            sent_ns,
        } = self
        {
            w.u64(*frame);
            w.u32(*from);
            w.u32(*to);
            w.str(name);
            w.list(shape, |w, &d| w.u32(d));
            w.u32(data.len() as u32);
            f32s_to_le(data, &mut w.0);
            w.u64(*sent_ns);
        }
    }

    /// Decodes a frame body (without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Msg, ProtoError> {
        let mut r = R(body);
        let t = r.u8()?;
        let kind = Kind::from_tag(t).ok_or_else(|| bad(format!("unknown message type {t}")))?;
        let m = r.payload(kind)?;
        r.end()?;
        Ok(m)
    }
}

/// A message read from a socket, with when its first byte arrived.
#[derive(Debug)]
pub struct Received {
    /// The message.
    pub msg: Msg,
    /// Frame size including the prefix [bytes].
    pub bytes: u64,
    /// For a tensor with a sender timestamp: from its hand-off to the sender's transport
    /// to its last body byte here (same host clock); otherwise from the length prefix to
    /// the last body byte.
    pub transfer: Duration,
}

async fn read_exact_progress<Rd: AsyncRead + Unpin>(
    r: &mut Rd,
    buf: &mut [u8],
    idle: Duration,
) -> Result<(), ProtoError> {
    let mut got = 0;
    while got < buf.len() {
        let n = tokio::time::timeout(idle, r.read(&mut buf[got..]))
            .await
            .map_err(|_| ProtoError::Timeout(idle.as_millis() as u64))??;
        if n == 0 {
            return Err(ProtoError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            )));
        }
        got += n;
    }
    Ok(())
}

pub use crate::sys::mono_ns;

/// Reads one frame's body (`max` bounds it before anything is allocated) and the time from
/// its length prefix's arrival to its last byte. `idle` bounds every wait for bytes (a slow
/// but moving transfer is fine, a silent peer is not).
pub(crate) async fn read_frame<Rd: AsyncRead + Unpin>(
    r: &mut Rd,
    max: u32,
    idle: Duration,
) -> Result<(Vec<u8>, Duration), ProtoError> {
    let mut len = [0u8; 4];
    // end of stream before a frame starts is a close, not a truncated frame
    read_exact_progress(r, &mut len[..1], idle)
        .await
        .map_err(|e| match e {
            ProtoError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                ProtoError::Closed
            }
            e => e,
        })?;
    let t0 = Instant::now();
    read_exact_progress(r, &mut len[1..], idle).await?;
    let n = u32::from_le_bytes(len);
    if n == 0 || n > max {
        return Err(ProtoError::BadLength { len: n, max });
    }
    let mut body = vec![0u8; n as usize];
    read_exact_progress(r, &mut body, idle).await?;
    Ok((body, t0.elapsed()))
}

/// A decoded message of `n` body bytes that took `transfer` to arrive; a tensor with a
/// sender timestamp counts its transfer from the hand-off instead.
pub(crate) fn received(msg: Msg, n: u32, transfer: Duration) -> Result<Received, ProtoError> {
    let transfer = match msg {
        Msg::Tensor { sent_ns, .. } if sent_ns > 0 => {
            Duration::from_nanos(mono_ns().saturating_sub(sent_ns))
        }
        _ => transfer,
    };
    Ok(Received {
        msg,
        bytes: n as u64 + 4,
        transfer,
    })
}

/// Reads one frame in clear (the handshake's; afterwards frames are sealed, see
/// [`crate::seal::Opener::read`]). `idle` bounds every wait for bytes (a slow but moving
/// transfer is fine, a silent peer is not); `max` bounds the body before anything is
/// allocated.
pub async fn read_msg<Rd: AsyncRead + Unpin>(
    r: &mut Rd,
    max: u32,
    idle: Duration,
) -> Result<Received, ProtoError> {
    let (body, transfer) = read_frame(r, max, idle).await?;
    received(Msg::decode(&body)?, body.len() as u32, transfer)
}

#[cfg(test)]
mod tests {

    use super::*;

    fn roundtrip(m: Msg) {
        let f = m.encode();
        let n = u32::from_le_bytes(f[..4].try_into().unwrap()) as usize;
        assert_eq!(n, f.len() - 4);
        assert_eq!(Msg::decode(&f[4..]).unwrap(), m);
    }

    /// One of each message, in tag order.
    fn samples() -> Vec<Msg> {
        let mut v = handshake_and_model_samples();
        v.push(deploy_sample());
        v.extend(run_samples());
        v
    }

    fn handshake_and_model_samples() -> Vec<Msg> {
        vec![
            Msg::Hello {
                version: VERSION,
                role: Role::Peer,
                nonce: [7; 32],
            },
            Msg::Challenge {
                version: 1,
                nonce: [1; 32],
            },
            Msg::Auth { proof: [3; 32] },
            Msg::Welcome { proof: [2; 32] },
            Msg::Error { msg: "nope".into() },
            Msg::Heartbeat,
            Msg::ModelQuery {
                hash: [4; 32],
                possession: [6; 32],
            },
            Msg::ModelHave {
                hash: [4; 32],
                have: true,
            },
            Msg::ModelChunk {
                hash: [5; 32],
                total: 10,
                offset: 0,
                data: vec![1, 2, 3],
            },
            Msg::ModelReady { hash: [5; 32] },
        ]
    }

    /// A Deploy with a route of each kind.
    fn deploy_sample() -> Msg {
        Msg::Deploy {
            part: 2,
            hash: [6; 32],
            threads: 1,
            cpus: vec![0, 3],
            pace: 2.5,
            inputs: vec!["a".into(), "b".into()],
            routes: vec![
                Route {
                    tensor: "x".into(),
                    dest: Dest::Coordinator,
                },
                Route {
                    tensor: "y".into(),
                    dest: Dest::Local { part: 3 },
                },
                Route {
                    tensor: "y".into(),
                    dest: Dest::Peer {
                        addr: "127.0.0.1:9".into(),
                        part: 4,
                        delay_us: 50,
                        rate_bps: 1_000_000,
                    },
                },
            ],
        }
    }

    fn run_samples() -> Vec<Msg> {
        vec![
            Msg::Deployed {
                part: 2,
                load_us: 99,
                backend: "tract".into(),
            },
            Msg::Tensor {
                frame: 3,
                from: FROM_COORDINATOR,
                to: 0,
                name: "input".into(),
                shape: vec![1, 2, 2],
                data: vec![0.5, -1.0, 2.0, 3.25],
                sent_ns: 42,
            },
            Msg::Timing {
                frame: 1,
                part: 0,
                compute_us: 123,
            },
            Msg::StatsRequest,
            Msg::Stats {
                peak_rss_kb: 1000,
                energy: Some(("h:/x".into(), 5)),
                edges: vec![EdgeStat {
                    from: 0,
                    to: 1,
                    tensor: "t".into(),
                    count: 2,
                    bytes: 100,
                    transfer_us: 7,
                }],
            },
            Msg::Reset,
            Msg::Fault { msg: "boom".into() },
        ]
    }

    #[test]
    fn every_message_roundtrips() {
        for m in samples() {
            roundtrip(m);
        }
    }

    #[test]
    fn kinds_are_declared_once_with_distinct_tags() {
        // one sample per kind, in tag order: a new message type needs a sample
        let kinds: Vec<Kind> = samples().iter().map(Msg::kind).collect();
        assert_eq!(kinds, Kind::ALL);
        assert!(Kind::ALL.windows(2).all(|w| w[0].tag() < w[1].tag()));
        for k in Kind::ALL {
            assert_eq!(Kind::from_tag(k.tag()), Some(k));
        }
        assert_eq!(Kind::from_tag(0), None);
        assert_eq!(Kind::ModelQuery.to_string(), "ModelQuery");
    }

    #[test]
    fn truncated_and_padded_bodies_are_refused() {
        for m in samples() {
            let f = m.encode();
            let body = &f[4..];
            for cut in 0..body.len() {
                assert!(
                    Msg::decode(&body[..cut]).is_err(),
                    "{} cut at {cut}",
                    m.kind()
                );
            }
            let mut long = body.to_vec();
            long.push(0);
            assert!(
                Msg::decode(&long).is_err(),
                "{} with a trailing byte",
                m.kind()
            );
        }
    }

    #[test]
    fn unknown_type_bad_magic_and_bad_utf8_are_refused() {
        assert!(Msg::decode(&[200]).is_err());
        let mut h = Msg::Hello {
            version: 1,
            role: Role::Coordinator,
            nonce: [0; 32],
        }
        .encode();
        h[5] = b'X';
        assert!(Msg::decode(&h[4..]).is_err());
        let mut e = Msg::Error { msg: "ab".into() }.encode();
        let n = e.len();
        e[n - 1] = 0xff;
        assert!(Msg::decode(&e[4..]).is_err());
    }

    #[test]
    fn hostile_counts_do_not_allocate() {
        // a Tensor whose shape count claims 2^32-1 items
        let mut b = vec![Kind::Tensor.tag()];
        b.extend_from_slice(&0u64.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes()); // empty name
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Msg::decode(&b), Err(ProtoError::Malformed(_))));
        // shape and data disagree
        let m = Msg::Tensor {
            frame: 0,
            from: 0,
            to: 0,
            name: "t".into(),
            shape: vec![2, 2],
            data: vec![1.0; 4],
            sent_ns: 0,
        };
        let mut f = m.encode();
        // patch the second dim to 3
        let pos = 4 + 1 + 8 + 4 + 4 + 4 + 1 + 4 + 4;
        f[pos..pos + 4].copy_from_slice(&3u32.to_le_bytes());
        assert!(Msg::decode(&f[4..]).is_err());
    }

    #[tokio::test]
    async fn oversized_and_zero_lengths_are_refused_before_allocating() {
        let mut src: &[u8] = &[0xff, 0xff, 0xff, 0xff, 1, 2, 3];
        let e = read_msg(&mut src, MAX_FRAME, Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ProtoError::BadLength { len: u32::MAX, .. }),
            "{e}"
        );
        let mut src: &[u8] = &[0, 0, 0, 0];
        assert!(matches!(
            read_msg(&mut src, MAX_FRAME, Duration::from_millis(100)).await,
            Err(ProtoError::BadLength { len: 0, .. })
        ));
        let big = Msg::Error {
            msg: "x".repeat(2000),
        }
        .encode();
        // Error messages are clipped to fit the handshake limit
        let mut src: &[u8] = &big;
        assert!(
            read_msg(&mut src, MAX_HANDSHAKE_FRAME, Duration::from_millis(100))
                .await
                .is_ok()
        );
        let chunk = Msg::ModelChunk {
            hash: [0; 32],
            total: 2000,
            offset: 0,
            data: vec![0; 2000],
        }
        .encode();
        let mut src: &[u8] = &chunk;
        assert!(matches!(
            read_msg(&mut src, MAX_HANDSHAKE_FRAME, Duration::from_millis(100)).await,
            Err(ProtoError::BadLength { .. })
        ));
    }

    #[tokio::test]
    async fn half_frames_end_in_eof_or_timeout() {
        let f = Msg::Heartbeat.encode();
        let mut src: &[u8] = &f[..3];
        assert!(matches!(
            read_msg(&mut src, MAX_FRAME, Duration::from_millis(100)).await,
            Err(ProtoError::Io(_))
        ));
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, &[5, 0, 0, 0, 6])
            .await
            .unwrap();
        let mut b = b;
        let t = Instant::now();
        let e = read_msg(&mut b, MAX_FRAME, Duration::from_millis(150))
            .await
            .unwrap_err();
        assert!(matches!(e, ProtoError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(1));
        drop(a);
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut s = 0x1234_5678_9abc_def0u64;
        for _ in 0..20000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let len = (s % 64) as usize;
            let body: Vec<u8> = (0..len)
                .map(|i| (s.rotate_left(i as u32 * 8) & 0xff) as u8)
                .collect();
            let _ = Msg::decode(&body);
        }
    }
}
