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
//! [`Msg::Challenge`] (its version, its own nonce and a proof of the shared secret over both
//! nonces), or with [`Msg::Error`] naming both versions when they differ. The client checks
//! the server's proof and answers [`Msg::Auth`] with its own proof; the server answers
//! [`Msg::Welcome`] or [`Msg::Error`]. Proofs are HMAC-SHA256 keyed by the shared secret:
//! server `HMAC(k, "dsim-server" | client_nonce | server_nonce)`, client
//! `HMAC(k, "dsim-client" | server_nonce | client_nonce)`; the secret never crosses the wire
//! and neither side can replay an old exchange. A worker started without a token uses the
//! empty key and only listens on loopback. A new version changes [`VERSION`]; messages are
//! never reinterpreted silently.
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

/// Protocol version; both ends must speak the same.
pub const VERSION: u16 = 1;
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
    /// Server's challenge and proof.
    Challenge {
        /// Protocol version of the server.
        version: u16,
        /// Server nonce.
        nonce: [u8; 32],
        /// HMAC proof of the server.
        proof: [u8; 32],
    },
    /// Client proof.
    Auth {
        /// HMAC proof of the client.
        proof: [u8; 32],
    },
    /// Handshake accepted.
    Welcome,
    /// Refusal or failure with a reason; the sender closes afterwards.
    Error {
        /// Reason.
        msg: String,
    },
    /// Keep-alive.
    Heartbeat,
    /// Is this sub-model cached?
    ModelQuery {
        /// SHA-256 of the ONNX bytes.
        hash: [u8; 32],
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
        /// Engine threads.
        threads: u32,
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

mod tag {
    pub const HELLO: u8 = 1;
    pub const CHALLENGE: u8 = 2;
    pub const AUTH: u8 = 3;
    pub const WELCOME: u8 = 4;
    pub const ERROR: u8 = 5;
    pub const HEARTBEAT: u8 = 6;
    pub const MODEL_QUERY: u8 = 10;
    pub const MODEL_HAVE: u8 = 11;
    pub const MODEL_CHUNK: u8 = 12;
    pub const MODEL_READY: u8 = 13;
    pub const DEPLOY: u8 = 14;
    pub const DEPLOYED: u8 = 15;
    pub const TENSOR: u8 = 20;
    pub const TIMING: u8 = 21;
    pub const STATS_REQUEST: u8 = 30;
    pub const STATS: u8 = 31;
    pub const RESET: u8 = 32;
    pub const FAULT: u8 = 33;
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

impl Msg {
    /// Short name for messages in errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Hello { .. } => "Hello",
            Msg::Challenge { .. } => "Challenge",
            Msg::Auth { .. } => "Auth",
            Msg::Welcome => "Welcome",
            Msg::Error { .. } => "Error",
            Msg::Heartbeat => "Heartbeat",
            Msg::ModelQuery { .. } => "ModelQuery",
            Msg::ModelHave { .. } => "ModelHave",
            Msg::ModelChunk { .. } => "ModelChunk",
            Msg::ModelReady { .. } => "ModelReady",
            Msg::Deploy { .. } => "Deploy",
            Msg::Deployed { .. } => "Deployed",
            Msg::Tensor { .. } => "Tensor",
            Msg::Timing { .. } => "Timing",
            Msg::StatsRequest => "StatsRequest",
            Msg::Stats { .. } => "Stats",
            Msg::Reset => "Reset",
            Msg::Fault { .. } => "Fault",
        }
    }

    /// The whole frame: length prefix and body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = W(Vec::with_capacity(match self {
            Msg::Tensor { data, .. } => data.len() * 4 + 128,
            Msg::ModelChunk { data, .. } => data.len() + 96,
            _ => 64,
        }));
        w.u32(0);
        match self {
            Msg::Hello {
                version,
                role,
                nonce,
            } => {
                w.u8(tag::HELLO);
                w.0.extend_from_slice(&MAGIC);
                w.u16(*version);
                w.u8(*role as u8);
                w.b32(nonce);
            }
            Msg::Challenge {
                version,
                nonce,
                proof,
            } => {
                w.u8(tag::CHALLENGE);
                w.u16(*version);
                w.b32(nonce);
                w.b32(proof);
            }
            Msg::Auth { proof } => {
                w.u8(tag::AUTH);
                w.b32(proof);
            }
            Msg::Welcome => w.u8(tag::WELCOME),
            Msg::Error { msg } => {
                w.u8(tag::ERROR);
                // keep refusals small enough for a peer still in the handshake
                let mut end = msg.len().min(900);
                while !msg.is_char_boundary(end) {
                    end -= 1;
                }
                w.str(&msg[..end]);
            }
            Msg::Heartbeat => w.u8(tag::HEARTBEAT),
            Msg::ModelQuery { hash } => {
                w.u8(tag::MODEL_QUERY);
                w.b32(hash);
            }
            Msg::ModelHave { hash, have } => {
                w.u8(tag::MODEL_HAVE);
                w.b32(hash);
                w.u8(*have as u8);
            }
            Msg::ModelChunk {
                hash,
                total,
                offset,
                data,
            } => {
                w.u8(tag::MODEL_CHUNK);
                w.b32(hash);
                w.u64(*total);
                w.u64(*offset);
                w.bytes(data);
            }
            Msg::ModelReady { hash } => {
                w.u8(tag::MODEL_READY);
                w.b32(hash);
            }
            Msg::Deploy {
                part,
                hash,
                threads,
                inputs,
                routes,
            } => {
                w.u8(tag::DEPLOY);
                w.u32(*part);
                w.b32(hash);
                w.u32(*threads);
                w.u32(inputs.len() as u32);
                for i in inputs {
                    w.str(i);
                }
                w.u32(routes.len() as u32);
                for r in routes {
                    w.str(&r.tensor);
                    match &r.dest {
                        Dest::Coordinator => w.u8(0),
                        Dest::Local { part } => {
                            w.u8(1);
                            w.u32(*part);
                        }
                        Dest::Peer {
                            addr,
                            part,
                            delay_us,
                            rate_bps,
                        } => {
                            w.u8(2);
                            w.str(addr);
                            w.u32(*part);
                            w.u32(*delay_us);
                            w.u64(*rate_bps);
                        }
                    }
                }
            }
            Msg::Deployed { part, load_us } => {
                w.u8(tag::DEPLOYED);
                w.u32(*part);
                w.u64(*load_us);
            }
            Msg::Tensor {
                frame,
                from,
                to,
                name,
                shape,
                data,
                sent_ns,
            } => {
                w.u8(tag::TENSOR);
                w.u64(*frame);
                w.u32(*from);
                w.u32(*to);
                w.str(name);
                w.u32(shape.len() as u32);
                for &d in shape {
                    w.u32(d);
                }
                w.u32(data.len() as u32);
                f32s_to_le(data, &mut w.0);
                w.u64(*sent_ns);
            }
            Msg::Timing {
                frame,
                part,
                compute_us,
            } => {
                w.u8(tag::TIMING);
                w.u64(*frame);
                w.u32(*part);
                w.u64(*compute_us);
            }
            Msg::StatsRequest => w.u8(tag::STATS_REQUEST),
            Msg::Stats {
                peak_rss_kb,
                energy,
                edges,
            } => {
                w.u8(tag::STATS);
                w.u64(*peak_rss_kb);
                match energy {
                    None => w.u8(0),
                    Some((id, uj)) => {
                        w.u8(1);
                        w.str(id);
                        w.u64(*uj);
                    }
                }
                w.u32(edges.len() as u32);
                for e in edges {
                    w.u32(e.from);
                    w.u32(e.to);
                    w.str(&e.tensor);
                    w.u64(e.count);
                    w.u64(e.bytes);
                    w.u64(e.transfer_us);
                }
            }
            Msg::Reset => w.u8(tag::RESET),
            Msg::Fault { msg } => {
                w.u8(tag::FAULT);
                w.str(msg);
            }
        }
        let n = (w.0.len() - 4) as u32;
        w.0[..4].copy_from_slice(&n.to_le_bytes());
        w.0
    }

    /// Decodes a frame body (without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Msg, ProtoError> {
        let mut r = R(body);
        let t = r.u8()?;
        let m = match t {
            tag::HELLO => {
                if r.take(4)? != MAGIC {
                    return Err(bad("not a dicesim peer (bad magic)"));
                }
                let version = r.u16()?;
                let role = match r.u8()? {
                    0 => Role::Coordinator,
                    1 => Role::Peer,
                    x => return Err(bad(format!("unknown role {x}"))),
                };
                Msg::Hello {
                    version,
                    role,
                    nonce: r.b32()?,
                }
            }
            tag::CHALLENGE => Msg::Challenge {
                version: r.u16()?,
                nonce: r.b32()?,
                proof: r.b32()?,
            },
            tag::AUTH => Msg::Auth { proof: r.b32()? },
            tag::WELCOME => Msg::Welcome,
            tag::ERROR => Msg::Error { msg: r.str()? },
            tag::HEARTBEAT => Msg::Heartbeat,
            tag::MODEL_QUERY => Msg::ModelQuery { hash: r.b32()? },
            tag::MODEL_HAVE => Msg::ModelHave {
                hash: r.b32()?,
                have: r.u8()? != 0,
            },
            tag::MODEL_CHUNK => Msg::ModelChunk {
                hash: r.b32()?,
                total: r.u64()?,
                offset: r.u64()?,
                data: r.bytes()?.to_vec(),
            },
            tag::MODEL_READY => Msg::ModelReady { hash: r.b32()? },
            tag::DEPLOY => {
                let part = r.u32()?;
                let hash = r.b32()?;
                let threads = r.u32()?;
                let n = r.count(4)?;
                let mut inputs = Vec::with_capacity(n);
                for _ in 0..n {
                    inputs.push(r.str()?);
                }
                let n = r.count(5)?;
                let mut routes = Vec::with_capacity(n);
                for _ in 0..n {
                    let tensor = r.str()?;
                    let dest = match r.u8()? {
                        0 => Dest::Coordinator,
                        1 => Dest::Local { part: r.u32()? },
                        2 => Dest::Peer {
                            addr: r.str()?,
                            part: r.u32()?,
                            delay_us: r.u32()?,
                            rate_bps: r.u64()?,
                        },
                        x => return Err(bad(format!("unknown destination kind {x}"))),
                    };
                    routes.push(Route { tensor, dest });
                }
                Msg::Deploy {
                    part,
                    hash,
                    threads,
                    inputs,
                    routes,
                }
            }
            tag::DEPLOYED => Msg::Deployed {
                part: r.u32()?,
                load_us: r.u64()?,
            },
            tag::TENSOR => {
                let frame = r.u64()?;
                let from = r.u32()?;
                let to = r.u32()?;
                let name = r.str()?;
                let n = r.count(4)?;
                let mut shape = Vec::with_capacity(n);
                for _ in 0..n {
                    shape.push(r.u32()?);
                }
                let n = r.count(4)?;
                let raw = r.take(n * 4)?;
                let elems = shape
                    .iter()
                    .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
                    .ok_or_else(|| bad("tensor shape overflows"))?;
                if elems != n as u64 {
                    return Err(bad(format!(
                        "tensor '{name}' has shape {shape:?} but {n} values"
                    )));
                }
                let data = f32s_from_le(raw);
                let sent_ns = r.u64()?;
                Msg::Tensor {
                    frame,
                    from,
                    to,
                    name,
                    shape,
                    data,
                    sent_ns,
                }
            }
            tag::TIMING => Msg::Timing {
                frame: r.u64()?,
                part: r.u32()?,
                compute_us: r.u64()?,
            },
            tag::STATS_REQUEST => Msg::StatsRequest,
            tag::STATS => {
                let peak_rss_kb = r.u64()?;
                let energy = match r.u8()? {
                    0 => None,
                    1 => Some((r.str()?, r.u64()?)),
                    x => return Err(bad(format!("bad energy flag {x}"))),
                };
                let n = r.count(36)?;
                let mut edges = Vec::with_capacity(n);
                for _ in 0..n {
                    edges.push(EdgeStat {
                        from: r.u32()?,
                        to: r.u32()?,
                        tensor: r.str()?,
                        count: r.u64()?,
                        bytes: r.u64()?,
                        transfer_us: r.u64()?,
                    });
                }
                Msg::Stats {
                    peak_rss_kb,
                    energy,
                    edges,
                }
            }
            tag::RESET => Msg::Reset,
            tag::FAULT => Msg::Fault { msg: r.str()? },
            x => return Err(bad(format!("unknown message type {x}"))),
        };
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

/// CLOCK_MONOTONIC [ns]: one clock for every process on a host (and its network
/// namespaces), unlike [`Instant`], which cannot cross a process boundary.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Reads one frame. `idle` bounds every wait for bytes (a slow but moving transfer is fine,
/// a silent peer is not); `max` bounds the body before anything is allocated.
pub async fn read_msg<Rd: AsyncRead + Unpin>(
    r: &mut Rd,
    max: u32,
    idle: Duration,
) -> Result<Received, ProtoError> {
    let mut len = [0u8; 4];
    read_exact_progress(r, &mut len[..1], idle).await?;
    let t0 = Instant::now();
    read_exact_progress(r, &mut len[1..], idle).await?;
    let n = u32::from_le_bytes(len);
    if n == 0 || n > max {
        return Err(ProtoError::BadLength { len: n, max });
    }
    let mut body = vec![0u8; n as usize];
    read_exact_progress(r, &mut body, idle).await?;
    let mut transfer = t0.elapsed();
    let msg = Msg::decode(&body)?;
    if let Msg::Tensor { sent_ns, .. } = msg {
        if sent_ns > 0 {
            transfer = Duration::from_nanos(mono_ns().saturating_sub(sent_ns));
        }
    }
    Ok(Received {
        msg,
        bytes: n as u64 + 4,
        transfer,
    })
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

    fn samples() -> Vec<Msg> {
        vec![
            Msg::Hello {
                version: VERSION,
                role: Role::Peer,
                nonce: [7; 32],
            },
            Msg::Challenge {
                version: 1,
                nonce: [1; 32],
                proof: [2; 32],
            },
            Msg::Auth { proof: [3; 32] },
            Msg::Welcome,
            Msg::Error { msg: "nope".into() },
            Msg::Heartbeat,
            Msg::ModelQuery { hash: [4; 32] },
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
            Msg::Deploy {
                part: 2,
                hash: [6; 32],
                threads: 1,
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
            },
            Msg::Deployed {
                part: 2,
                load_us: 99,
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
        let mut b = vec![tag::TENSOR];
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
