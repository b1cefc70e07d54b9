//! Connections: the authenticated handshake (both sides) and the writer task that owns a
//! socket's sending half (heartbeats, emulated link latency, user-space shaping).

use crate::proto::{self, read_msg, Msg, ProtoError, Role, MAX_HANDSHAKE_FRAME, VERSION};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The whole handshake must finish within this time.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

type HmacSha256 = Hmac<Sha256>;

fn proof(key: &[u8], label: &[u8], a: &[u8; 32], b: &[u8; 32]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(label);
    m.update(a);
    m.update(b);
    m.finalize().into_bytes().into()
}

fn verify(key: &[u8], label: &[u8], a: &[u8; 32], b: &[u8; 32], got: &[u8; 32]) -> bool {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(label);
    m.update(a);
    m.update(b);
    m.verify_slice(got).is_ok() // constant time
}

/// 32 random bytes from the kernel.
pub fn nonce() -> [u8; 32] {
    let mut b = [0u8; 32];
    if !crate::sys::fill_random(&mut b) {
        // fall back on a time-derived value; the nonce only needs to be unique
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..24].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
    }
    b
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// Wire-level failure.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The other side refused, with its reason.
    #[error("refused by the peer: {0}")]
    Refused(String),
    /// The peer could not prove the shared secret.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// Anything else out of order.
    #[error("handshake: {0}")]
    Protocol(String),
}

async fn send<Wr: AsyncWrite + Unpin>(w: &mut Wr, m: &Msg) -> Result<(), ProtoError> {
    w.write_all(&m.encode()).await?;
    w.flush().await?;
    Ok(())
}

/// Client side: greets, checks the server's proof, proves the secret.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &[u8],
    role: Role,
) -> Result<(), HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let cn = nonce();
        send(
            s,
            &Msg::Hello {
                version: VERSION,
                role,
                nonce: cn,
            },
        )
        .await?;
        let r = read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT).await?;
        let (sv, sn, sp) = match r.msg {
            Msg::Challenge {
                version,
                nonce,
                proof,
            } => (version, nonce, proof),
            Msg::Error { msg } => return Err(HandshakeError::Refused(msg)),
            m => {
                return Err(HandshakeError::Protocol(format!(
                    "expected Challenge, got {}",
                    m.kind()
                )))
            }
        };
        if sv != VERSION {
            return Err(HandshakeError::Protocol(format!(
                "worker speaks protocol version {sv}, this coordinator {VERSION}"
            )));
        }
        if !verify(key, b"dsim-server", &cn, &sn, &sp) {
            return Err(HandshakeError::Auth(
                "the worker does not hold the same token (check --token-file on both sides)".into(),
            ));
        }
        send(
            s,
            &Msg::Auth {
                proof: proof(key, b"dsim-client", &sn, &cn),
            },
        )
        .await?;
        match read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT)
            .await?
            .msg
        {
            Msg::Welcome => Ok(()),
            Msg::Error { msg } => Err(HandshakeError::Refused(msg)),
            m => Err(HandshakeError::Protocol(format!(
                "expected Welcome, got {}",
                m.kind()
            ))),
        }
    })
    .await
    .map_err(|_| HandshakeError::Proto(ProtoError::Timeout(HANDSHAKE_TIMEOUT.as_millis() as u64)))?
}

/// Server side: answers a greeting, checks the client's proof. Returns the client's role.
pub async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &[u8],
) -> Result<Role, HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let r = read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT).await?;
        let (cv, role, cn) = match r.msg {
            Msg::Hello {
                version,
                role,
                nonce,
            } => (version, role, nonce),
            m => {
                return Err(HandshakeError::Protocol(format!(
                    "expected Hello, got {}",
                    m.kind()
                )))
            }
        };
        if cv != VERSION {
            let msg = format!("protocol version {cv} not supported; this worker speaks {VERSION}");
            let _ = send(s, &Msg::Error { msg: msg.clone() }).await;
            return Err(HandshakeError::Protocol(msg));
        }
        let sn = nonce();
        send(
            s,
            &Msg::Challenge {
                version: VERSION,
                nonce: sn,
                proof: proof(key, b"dsim-server", &cn, &sn),
            },
        )
        .await?;
        let r = read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT).await?;
        match r.msg {
            Msg::Auth { proof: p } if verify(key, b"dsim-client", &sn, &cn, &p) => {
                send(s, &Msg::Welcome).await?;
                Ok(role)
            }
            Msg::Auth { .. } => {
                let _ = send(
                    s,
                    &Msg::Error {
                        msg: "authentication failed: wrong token".into(),
                    },
                )
                .await;
                Err(HandshakeError::Auth("client proof does not match".into()))
            }
            m => Err(HandshakeError::Protocol(format!(
                "expected Auth, got {}",
                m.kind()
            ))),
        }
    })
    .await
    .map_err(|_| HandshakeError::Proto(ProtoError::Timeout(HANDSHAKE_TIMEOUT.as_millis() as u64)))?
}

/// How a writer shapes its traffic (emulated links).
#[derive(Debug, Clone, Copy, Default)]
pub struct Shaping {
    /// Every message leaves this long after it was queued [us].
    pub delay_us: u32,
    /// Token-bucket rate [bit/s]; 0: unshaped.
    pub rate_bps: u64,
}

/// An encoded frame queued for a writer, stamped with when it was queued.
pub type Outgoing = (Instant, Vec<u8>);

/// Bytes written per socket write (and per token-bucket step).
const WRITE_CHUNK: usize = 64 * 1024;
/// A write that does not finish for this long fails the connection (the peer stopped
/// reading).
const WRITE_STALL: Duration = Duration::from_secs(10);

/// Spawns the task owning `w`: writes queued frames in order, a heartbeat whenever the queue
/// has been idle for [`proto::HEARTBEAT_MS`], each frame no earlier than `delay_us` after it
/// was queued, at no more than `rate_bps`. Returns the queue; the task ends (and closes the
/// socket half) when every sender is dropped or a write fails, reporting the failure through
/// `on_error`.
pub fn spawn_writer<Wr: AsyncWrite + Unpin + Send + 'static>(
    mut w: Wr,
    shaping: Shaping,
    capacity: usize,
    on_error: impl FnOnce(String) + Send + 'static,
) -> mpsc::Sender<Outgoing> {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(capacity);
    tokio::spawn(async move {
        let hb = Duration::from_millis(proto::HEARTBEAT_MS);
        let heartbeat = Msg::Heartbeat.encode();
        // token bucket: `next` is when the bucket allows the next byte; burst of one chunk
        let mut next = Instant::now();
        let res: Result<(), String> = async {
            loop {
                let item = match tokio::time::timeout(hb, rx.recv()).await {
                    Ok(Some(item)) => Some(item),
                    Ok(None) => return Ok(()),
                    Err(_) => None,
                };
                let (queued, frame) = match &item {
                    Some((q, f)) => (*q, f.as_slice()),
                    None => (Instant::now(), heartbeat.as_slice()),
                };
                if shaping.delay_us > 0 {
                    // tokio's timer has a 1 ms granularity, too coarse for link latencies of
                    // tens of microseconds: sleep on a blocking thread (~60 us slack)
                    let due = queued + Duration::from_micros(shaping.delay_us as u64);
                    if let Some(rest) = due.checked_duration_since(Instant::now()) {
                        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
                    }
                }
                // shaped: token-bucket steps of WRITE_CHUNK; unshaped: larger writes, still
                // small enough that each finishes well within WRITE_STALL on a slow link
                let step = if shaping.rate_bps > 0 {
                    WRITE_CHUNK
                } else {
                    4 * WRITE_CHUNK
                };
                for chunk in frame.chunks(step) {
                    if shaping.rate_bps > 0 {
                        let now = Instant::now();
                        if next > now {
                            tokio::time::sleep_until(next.into()).await;
                        }
                        let cost = Duration::from_secs_f64(
                            chunk.len() as f64 * 8.0 / shaping.rate_bps as f64,
                        );
                        next = next.max(now) + cost;
                    }
                    tokio::time::timeout(WRITE_STALL, w.write_all(chunk))
                        .await
                        .map_err(|_| "peer stopped reading (write stalled)".to_string())?
                        .map_err(|e| format!("write failed: {e}"))?;
                }
            }
        }
        .await;
        let _ = w.shutdown().await;
        if let Err(e) = res {
            on_error(e);
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_passes_wrong_key_fails_both_ways() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let (c, s) = tokio::join!(
            client_handshake(&mut a, b"k1", Role::Coordinator),
            server_handshake(&mut b, b"k1")
        );
        c.unwrap();
        assert_eq!(s.unwrap(), Role::Coordinator);

        let (mut a, mut b) = tokio::io::duplex(4096);
        let (c, s) = tokio::join!(
            client_handshake(&mut a, b"k1", Role::Peer),
            server_handshake(&mut b, b"k2")
        );
        assert!(matches!(c, Err(HandshakeError::Auth(_))), "{c:?}");
        assert!(s.is_err());
    }

    #[tokio::test]
    async fn wrong_version_is_named() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let client = async {
            send(
                &mut a,
                &Msg::Hello {
                    version: 99,
                    role: Role::Peer,
                    nonce: [0; 32],
                },
            )
            .await
            .unwrap();
            read_msg(&mut a, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT)
                .await
                .unwrap()
                .msg
        };
        let (m, s) = tokio::join!(client, server_handshake(&mut b, b""));
        assert!(s.is_err());
        match m {
            Msg::Error { msg } => assert!(msg.contains("version 99"), "{msg}"),
            m => panic!("{m:?}"),
        }
    }
}
