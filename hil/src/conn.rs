//! Connections: the authenticated handshake (both sides) and the writer task that owns a
//! socket's sending half (heartbeats, emulated link latency, user-space shaping).

use crate::proto::{self, read_msg, Msg, ProtoError, Role, MAX_HANDSHAKE_FRAME, VERSION};
use crate::seal::{derive_keys, Keys, Sealer, Side};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// The whole handshake must finish within this time: short, because each connection
/// still in its handshake holds a place in the worker's bounded admission
/// ([`crate::gate`]); two round trips fit with room on any emulated or real link.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(1500);

type HmacSha256 = Hmac<Sha256>;

/// Domain label of the transcript hash.
const TRANSCRIPT_LABEL: &[u8] = b"dicesim handshake v4";

/// The hash of the handshake's greeting and challenge, as encoded on the wire: binds the
/// proofs and the session keys to both nonces, both versions and the client's role.
fn transcript(hello: &Msg, challenge: &Msg) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(TRANSCRIPT_LABEL);
    h.update(hello.encode());
    h.update(challenge.encode());
    h.finalize().into()
}

fn mac(key: &[u8], label: &[u8], transcript: &[u8; 32]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(label);
    m.update(transcript);
    m
}

fn proof(key: &[u8], label: &[u8], transcript: &[u8; 32]) -> [u8; 32] {
    mac(key, label, transcript).finalize().into_bytes().into()
}

fn verify(key: &[u8], label: &[u8], transcript: &[u8; 32], got: &[u8; 32]) -> bool {
    mac(key, label, transcript).verify_slice(got).is_ok() // constant time
}

/// HMAC keyed by the connection's transcript hash over a sub-model's bytes themselves:
/// the hash alone (which another coordinator might know) is not enough to compute it.
fn possession_mac(transcript: &[u8; 32], bytes: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(transcript).expect("HMAC takes keys of any length");
    m.update(b"dsim-possession");
    m.update(bytes);
    m
}

/// Proof that the holder of connection `transcript` has the sub-model `bytes` (not only its
/// hash): goes with [`Msg::ModelQuery`].
pub fn possession(transcript: &[u8; 32], bytes: &[u8]) -> [u8; 32] {
    possession_mac(transcript, bytes)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks a [`possession`] proof in constant time.
pub fn verify_possession(transcript: &[u8; 32], bytes: &[u8], got: &[u8; 32]) -> bool {
    possession_mac(transcript, bytes).verify_slice(got).is_ok()
}

/// 32 random bytes from the kernel; an error rather than anything guessable.
pub fn nonce() -> std::io::Result<[u8; 32]> {
    let mut b = [0u8; 32];
    crate::sys::random_bytes(&mut b)?;
    Ok(b)
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
    /// No random nonce could be had.
    #[error("handshake: no random nonce: {0}")]
    Random(#[from] std::io::Error),
}

async fn send<Wr: AsyncWrite + Unpin>(w: &mut Wr, m: &Msg) -> Result<(), ProtoError> {
    w.write_all(&m.encode()).await?;
    w.flush().await?;
    Ok(())
}

fn unexpected(want: &str, m: Msg) -> HandshakeError {
    match m {
        Msg::Error { msg } => HandshakeError::Refused(msg),
        m => HandshakeError::Protocol(format!("expected {want}, got {}", m.kind())),
    }
}

fn timed_out() -> HandshakeError {
    HandshakeError::Proto(ProtoError::Timeout(HANDSHAKE_TIMEOUT.as_millis() as u64))
}

/// Client side: greets, proves the secret over the transcript, checks the server's proof.
/// Returns the connection's keys.
///
/// The client proves first, so that a listening worker gives an unauthenticated caller
/// nothing to test token guesses against; the server proves only in its `Welcome`.
pub async fn client_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &[u8],
    role: Role,
) -> Result<Keys, HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let hello = Msg::Hello {
            version: VERSION,
            role,
            nonce: nonce()?,
        };
        send(s, &hello).await?;
        let challenge = read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT)
            .await?
            .msg;
        match challenge {
            Msg::Challenge { version, .. } if version != VERSION => {
                return Err(HandshakeError::Protocol(format!(
                    "worker speaks protocol version {version}, this coordinator {VERSION}"
                )))
            }
            Msg::Challenge { .. } => {}
            m => return Err(unexpected("Challenge", m)),
        }
        let t = transcript(&hello, &challenge);
        let p = proof(key, b"dsim-client", &t);
        send(s, &Msg::Auth { proof: p }).await?;
        match read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT)
            .await?
            .msg
        {
            Msg::Welcome { proof: sp } if verify(key, b"dsim-server", &t, &sp) => {
                Ok(derive_keys(key, &t, Side::Client))
            }
            Msg::Welcome { .. } => Err(HandshakeError::Auth(
                "the worker does not hold the same token (check --token-file on both sides)".into(),
            )),
            m => Err(unexpected("Welcome", m)),
        }
    })
    .await
    .map_err(|_| timed_out())?
}

/// Reads the client's greeting; refuses another protocol version (naming both).
async fn read_hello<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<Msg, HandshakeError> {
    let hello = read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT)
        .await?
        .msg;
    match hello {
        Msg::Hello { version, .. } if version != VERSION => {
            let msg =
                format!("protocol version {version} not supported; this worker speaks {VERSION}");
            let _ = send(s, &Msg::Error { msg: msg.clone() }).await;
            Err(HandshakeError::Protocol(msg))
        }
        Msg::Hello { .. } => Ok(hello),
        m => Err(HandshakeError::Protocol(format!(
            "expected Hello, got {}",
            m.kind()
        ))),
    }
}

/// Server side: answers a greeting with a bare challenge, checks the client's proof, and
/// only then proves itself. Returns the client's role and the connection's keys.
pub async fn server_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    key: &[u8],
) -> Result<(Role, Keys), HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let hello = read_hello(s).await?;
        let Msg::Hello { role, .. } = hello else {
            unreachable!("read_hello returns a Hello")
        };
        let challenge = Msg::Challenge {
            version: VERSION,
            nonce: nonce()?,
        };
        send(s, &challenge).await?;
        let t = transcript(&hello, &challenge);
        match read_msg(s, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT)
            .await?
            .msg
        {
            Msg::Auth { proof: p } if verify(key, b"dsim-client", &t, &p) => {
                let sp = proof(key, b"dsim-server", &t);
                send(s, &Msg::Welcome { proof: sp }).await?;
                Ok((role, derive_keys(key, &t, Side::Server)))
            }
            Msg::Auth { .. } => {
                let msg = "authentication failed: wrong token".to_string();
                let _ = send(s, &Msg::Error { msg }).await;
                Err(HandshakeError::Auth("client proof does not match".into()))
            }
            m => Err(HandshakeError::Protocol(format!(
                "expected Auth, got {}",
                m.kind()
            ))),
        }
    })
    .await
    .map_err(|_| timed_out())?
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

/// Spawns the task owning `w`: seals queued frames with `seal` and writes them in order, a
/// heartbeat whenever the queue has been idle for [`proto::HEARTBEAT_MS`], each frame no
/// earlier than `delay_us` after it was queued, at no more than `rate_bps`. Returns the
/// queue (of frames in clear, as [`Msg::encode`] makes them); the task ends (and closes the
/// socket half) when every sender is dropped or a write fails, reporting the failure
/// through `on_error`.
pub fn spawn_writer<Wr: AsyncWrite + Unpin + Send + 'static>(
    mut w: Wr,
    mut seal: Sealer,
    shaping: Shaping,
    capacity: usize,
    on_error: impl FnOnce(String) + Send + 'static,
) -> mpsc::Sender<Outgoing> {
    let (tx, mut rx) = mpsc::channel::<Outgoing>(capacity);
    tokio::spawn(async move {
        let hb = Duration::from_millis(proto::HEARTBEAT_MS);
        // token bucket: `next` is when the bucket allows the next byte; burst of one chunk
        let mut next = Instant::now();
        let res: Result<(), String> = async {
            loop {
                let (queued, mut frame) = match tokio::time::timeout(hb, rx.recv()).await {
                    Ok(Some(item)) => item,
                    Ok(None) => return Ok(()),
                    Err(_) => (Instant::now(), Msg::Heartbeat.encode()),
                };
                seal.seal(&mut frame).map_err(|e| e.to_string())?;
                if shaping.delay_us > 0 {
                    // tokio's timer has a 1 ms granularity, too coarse for link latencies of
                    // tens of microseconds: sleep on a blocking thread (~60 us slack)
                    let due = queued + Duration::from_micros(shaping.delay_us as u64);
                    if let Some(rest) = due.checked_duration_since(Instant::now()) {
                        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
                    }
                }
                write_shaped(&mut w, &frame, shaping, &mut next).await?;
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

/// Writes one frame at no more than `shaping.rate_bps` (a token bucket whose next free
/// instant is `next`).
async fn write_shaped<Wr: AsyncWrite + Unpin>(
    w: &mut Wr,
    frame: &[u8],
    shaping: Shaping,
    next: &mut Instant,
) -> Result<(), String> {
    // shaped: token-bucket steps of WRITE_CHUNK; unshaped: larger writes, still small
    // enough that each finishes well within WRITE_STALL on a slow link
    let step = if shaping.rate_bps > 0 {
        WRITE_CHUNK
    } else {
        4 * WRITE_CHUNK
    };
    for chunk in frame.chunks(step) {
        if shaping.rate_bps > 0 {
            let now = Instant::now();
            if *next > now {
                tokio::time::sleep_until((*next).into()).await;
            }
            let cost = Duration::from_secs_f64(chunk.len() as f64 * 8.0 / shaping.rate_bps as f64);
            *next = (*next).max(now) + cost;
        }
        tokio::time::timeout(WRITE_STALL, w.write_all(chunk))
            .await
            .map_err(|_| "peer stopped reading (write stalled)".to_string())?
            .map_err(|e| format!("write failed: {e}"))?;
    }
    Ok(())
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
        let (mut c, (role, mut s)) = (c.unwrap(), s.unwrap());
        assert_eq!(role, Role::Coordinator);
        // the keys match: what one seals the other opens, both ways
        let f = c.send.seal_msg(&Msg::Reset).unwrap();
        assert_eq!(
            s.recv
                .read(&mut &f[..], 1024, HANDSHAKE_TIMEOUT)
                .await
                .unwrap()
                .msg,
            Msg::Reset
        );
        let f = s.send.seal_msg(&Msg::Heartbeat).unwrap();
        assert_eq!(
            c.recv
                .read(&mut &f[..], 1024, HANDSHAKE_TIMEOUT)
                .await
                .unwrap()
                .msg,
            Msg::Heartbeat
        );

        let (mut a, mut b) = tokio::io::duplex(4096);
        let (c, s) = tokio::join!(
            client_handshake(&mut a, b"k1", Role::Peer),
            server_handshake(&mut b, b"k2")
        );
        match c {
            Err(HandshakeError::Refused(m)) => assert!(m.contains("wrong token"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        }
        assert!(matches!(s, Err(HandshakeError::Auth(_))));
    }

    /// A caller without the token learns nothing keyed by it: the worker's answers before
    /// a valid proof are its version, a random nonce and a fixed refusal, whatever its token
    /// (so there is nothing to test guesses against offline).
    #[tokio::test]
    async fn an_unauthenticated_caller_gets_nothing_keyed() {
        let mut seen = Vec::new();
        for key in [&b"k1"[..], &b"a-completely-different-key"[..]] {
            let (mut a, mut b) = tokio::io::duplex(4096);
            let caller = async {
                let hello = Msg::Hello {
                    version: VERSION,
                    role: Role::Coordinator,
                    nonce: [9; 32],
                };
                send(&mut a, &hello).await.unwrap();
                let mut got = Vec::new();
                loop {
                    match read_msg(&mut a, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT).await {
                        Ok(r) => {
                            if matches!(r.msg, Msg::Challenge { .. }) {
                                send(&mut a, &Msg::Auth { proof: [0; 32] }).await.unwrap();
                            }
                            got.push(r.msg)
                        }
                        Err(_) => return got,
                    }
                }
            };
            let (got, s) = tokio::join!(caller, async {
                let r = server_handshake(&mut b, key).await;
                drop(b);
                r
            });
            assert!(s.is_err());
            match &got[..] {
                [Msg::Challenge { version, .. }, Msg::Error { msg }] => {
                    assert_eq!(*version, VERSION);
                    seen.push(msg.clone());
                }
                g => panic!("{g:?}"),
            }
        }
        assert_eq!(seen[0], seen[1]);
    }

    /// The role is in the transcript: a man in the middle who turns a peer's greeting into
    /// a coordinator's fails the handshake.
    #[tokio::test]
    async fn a_rewritten_role_fails_the_handshake() {
        let (mut a, mut a2) = tokio::io::duplex(4096);
        let (mut b, mut b2) = tokio::io::duplex(4096);
        let relay = async move {
            let mut hello = read_msg(&mut a2, MAX_HANDSHAKE_FRAME, HANDSHAKE_TIMEOUT)
                .await
                .unwrap()
                .msg;
            if let Msg::Hello { role, .. } = &mut hello {
                *role = Role::Coordinator;
            }
            send(&mut b2, &hello).await.unwrap();
            let _ = tokio::io::copy_bidirectional(&mut a2, &mut b2).await;
        };
        tokio::spawn(relay);
        let (c, s) = tokio::join!(
            client_handshake(&mut a, b"k1", Role::Peer),
            server_handshake(&mut b, b"k1")
        );
        assert!(c.is_err());
        assert!(matches!(s, Err(HandshakeError::Auth(_))), "{:?}", s.err());
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
