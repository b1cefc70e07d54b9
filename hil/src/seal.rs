//! The encrypted, authenticated transport after the handshake (protocol 4).
//!
//! Every frame after [`crate::proto::Msg::Welcome`] is sealed with AES-256-GCM (the `ring`
//! crate): the 4-byte length prefix stays in clear and is the associated data, the body
//! becomes ciphertext followed by a 16-byte tag. Each direction has its own key, derived
//! with HKDF-SHA256 from the shared token and the SHA-256 hash of the handshake transcript
//! (both nonces, the version and the client's role), so frames of one connection mean
//! nothing on another. The nonce is a per-direction frame counter that both ends keep, so a
//! frame replayed, dropped, reordered or injected without the keys fails to open, and the
//! reader ends the connection.

use crate::proto::{Msg, ProtoError, Received};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use std::time::Duration;
use tokio::io::AsyncRead;

/// Bytes a sealed frame adds to its body (the AEAD tag).
pub const TAG_LEN: usize = 16;

/// Which end of a connection derives its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The end that connected (coordinator or peer worker).
    Client,
    /// The end that accepted (the worker).
    Server,
}

/// A connection's two directions after the handshake, and the transcript hash they are
/// bound to.
pub struct Keys {
    /// The handshake transcript's hash (unique to the connection).
    pub transcript: [u8; 32],
    /// Seals what this end sends.
    pub send: Sealer,
    /// Opens what this end receives.
    pub recv: Opener,
}

/// Seals outgoing frames, numbering them.
pub struct Sealer {
    key: LessSafeKey,
    seq: u64,
}

/// Opens incoming frames, expecting them in order.
pub struct Opener {
    key: LessSafeKey,
    seq: u64,
}

fn direction_key(prk: &ring::hkdf::Prk, label: &[u8]) -> LessSafeKey {
    let info = [label];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .expect("32 bytes are within HKDF-SHA256's output limit");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// Derives `side`'s keys from the token and the handshake transcript's hash.
pub fn derive_keys(token: &[u8], transcript: &[u8; 32], side: Side) -> Keys {
    let prk = Salt::new(HKDF_SHA256, transcript).extract(token);
    let c2s = || direction_key(&prk, b"dicesim v4 client to server");
    let s2c = || direction_key(&prk, b"dicesim v4 server to client");
    let (send, recv) = match side {
        Side::Client => (c2s(), s2c()),
        Side::Server => (s2c(), c2s()),
    };
    Keys {
        transcript: *transcript,
        send: Sealer { key: send, seq: 0 },
        recv: Opener { key: recv, seq: 0 },
    }
}

/// The nonce of frame `seq`, or an error once the counter would wrap (never in practice:
/// 2^64 frames).
fn nonce(seq: &mut u64) -> Result<Nonce, ProtoError> {
    let s = *seq;
    *seq = s
        .checked_add(1)
        .ok_or_else(|| ProtoError::Tampered("frame counter exhausted".into()))?;
    let mut n = [0u8; NONCE_LEN];
    n[NONCE_LEN - 8..].copy_from_slice(&s.to_be_bytes());
    Ok(Nonce::assume_unique_for_key(n))
}

impl Sealer {
    /// Seals an encoded frame (`len | body`, as [`Msg::encode`] makes it) in place: it
    /// becomes `len + 16 | ciphertext | tag`.
    pub fn seal(&mut self, frame: &mut Vec<u8>) -> Result<(), ProtoError> {
        if frame.len() < 4 {
            return Err(ProtoError::Malformed("frame without a length".into()));
        }
        let n = u32::try_from(frame.len() - 4 + TAG_LEN)
            .map_err(|_| ProtoError::Malformed("frame too long to seal".into()))?;
        frame[..4].copy_from_slice(&n.to_le_bytes());
        let prefix: [u8; 4] = n.to_le_bytes();
        let nonce = nonce(&mut self.seq)?;
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(prefix), &mut frame[4..])
            .map_err(|_| ProtoError::Malformed("frame too long to seal".into()))?;
        frame.extend_from_slice(tag.as_ref());
        Ok(())
    }

    /// `m`, encoded and sealed.
    pub fn seal_msg(&mut self, m: &Msg) -> Result<Vec<u8>, ProtoError> {
        let mut f = m.encode();
        self.seal(&mut f)?;
        Ok(f)
    }
}

impl Opener {
    /// Opens a sealed body (ciphertext and tag) that arrived under length `prefix`; the
    /// plaintext body is the returned slice of `body`.
    pub fn open<'a>(
        &mut self,
        prefix: [u8; 4],
        body: &'a mut [u8],
    ) -> Result<&'a [u8], ProtoError> {
        if body.len() <= TAG_LEN {
            return Err(ProtoError::Tampered(
                "sealed frame shorter than its tag".into(),
            ));
        }
        let nonce = nonce(&mut self.seq)?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(prefix), body)
            .map_err(|_| {
                ProtoError::Tampered(
                    "frame failed authentication (tampered, replayed, reordered or injected)"
                        .into(),
                )
            })?;
        Ok(plain)
    }

    /// Reads, opens and decodes one sealed frame: as [`crate::proto::read_msg`], with
    /// `max` bounding the plaintext body.
    pub async fn read<Rd: AsyncRead + Unpin>(
        &mut self,
        r: &mut Rd,
        max: u32,
        idle: Duration,
    ) -> Result<Received, ProtoError> {
        let sealed_max = max.saturating_add(TAG_LEN as u32);
        let (mut body, transfer) = crate::proto::read_frame(r, sealed_max, idle).await?;
        let n = body.len() as u32;
        let plain = self.open(n.to_le_bytes(), &mut body)?;
        crate::proto::received(Msg::decode(plain)?, n, transfer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::MAX_FRAME;

    fn pair() -> (Keys, Keys) {
        let h = [7u8; 32];
        (
            derive_keys(b"token", &h, Side::Client),
            derive_keys(b"token", &h, Side::Server),
        )
    }

    fn tensor(frame: u64) -> Msg {
        Msg::Tensor {
            frame,
            from: 0,
            to: 1,
            name: "x".into(),
            shape: vec![2],
            data: vec![1.0, 2.0],
            sent_ns: 0,
        }
    }

    async fn read(o: &mut Opener, wire: &[u8]) -> Result<Msg, ProtoError> {
        let mut r = wire;
        o.read(&mut r, MAX_FRAME, Duration::from_millis(100))
            .await
            .map(|x| x.msg)
    }

    #[tokio::test]
    async fn frames_open_in_order_only() {
        let (mut c, mut s) = pair();
        let f0 = c.send.seal_msg(&tensor(0)).unwrap();
        let f1 = c.send.seal_msg(&tensor(1)).unwrap();
        // the body is not in clear
        assert!(!f0.windows(4).any(|w| w == 1.0f32.to_le_bytes()));
        // reordered: frame 1 first fails, and so the connection ends
        let mut s2 = pair().1;
        assert!(matches!(
            read(&mut s2.recv, &f1).await,
            Err(ProtoError::Tampered(_))
        ));
        assert_eq!(read(&mut s.recv, &f0).await.unwrap(), tensor(0));
        // replayed
        let mut s3 = pair().1;
        read(&mut s3.recv, &f0).await.unwrap();
        assert!(read(&mut s3.recv, &f0).await.is_err());
        assert_eq!(read(&mut s.recv, &f1).await.unwrap(), tensor(1));
    }

    #[tokio::test]
    async fn tampered_injected_and_cross_direction_frames_fail() {
        let (mut c, _) = pair();
        let f = c.send.seal_msg(&tensor(0)).unwrap();
        for i in [0, 4, 10, f.len() - 1] {
            let mut t = f.clone();
            t[i] ^= 1;
            let mut s = pair().1;
            assert!(read(&mut s.recv, &t).await.is_err(), "byte {i} flipped");
        }
        // injected in clear, as before protocol 4
        let mut s = pair().1;
        assert!(read(&mut s.recv, &Msg::Reset.encode()).await.is_err());
        // sealed with another transcript's keys
        let mut other = derive_keys(b"token", &[8u8; 32], Side::Client);
        let g = other.send.seal_msg(&Msg::Reset).unwrap();
        assert!(read(&mut s.recv, &g).await.is_err());
        // a client's frame reflected back to it
        let (mut c, _) = pair();
        let h = c.send.seal_msg(&Msg::Reset).unwrap();
        assert!(read(&mut c.recv, &h).await.is_err());
    }
}
