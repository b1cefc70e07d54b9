//! Token-less mode: only the worker's own user (or root) may use it (issue 19, item 7).
//!
//! Without `--token-file` the handshake's key is empty, so the handshake itself proves
//! nothing. Such a worker listens on loopback only, and both ends of a loopback TCP
//! connection are sockets of this host, listed with their owner's uid in `/proc/net/tcp`
//! and `/proc/net/tcp6` (of the caller's network namespace): the worker looks up the
//! caller's socket and closes the connection unless it belongs to the worker's user or to
//! root; a coordinator (or a worker connecting to a peer) looks up the listening worker's
//! end in the same way, so another user squatting the port is not taken for the worker.
//! This is the check a Unix socket's peer credentials would give, kept on TCP so that
//! every address and command stays as it is.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Why a token-less connection is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PeerCredError {
    /// The other end is not on loopback.
    #[error("without a token only loopback connections are allowed ({0} is not loopback); give a --token-file / token_file")]
    NotLoopback(SocketAddr),
    /// The other end's socket was not found (it closed, or another namespace).
    #[error(
        "without a token the owner of {0} must be known, and it is not listed in /proc/net/tcp"
    )]
    Unknown(SocketAddr),
    /// Another user's socket.
    #[error("without a token only the same user may connect: {addr} belongs to uid {uid}, this process runs as uid {me}")]
    OtherUser {
        /// The other end.
        addr: SocketAddr,
        /// Its owner.
        uid: u32,
        /// This process's effective uid.
        me: u32,
    },
}

/// Checks that the other end (`peer`) of this process's loopback connection from `local`
/// belongs to this process's user or to root.
pub fn check_same_user(local: SocketAddr, peer: SocketAddr) -> Result<(), PeerCredError> {
    if !peer.ip().to_canonical().is_loopback() {
        return Err(PeerCredError::NotLoopback(peer));
    }
    let uid = owner_of(peer, local).ok_or(PeerCredError::Unknown(peer))?;
    let me = crate::sys::geteuid();
    if uid == me || uid == 0 {
        return Ok(());
    }
    Err(PeerCredError::OtherUser {
        addr: peer,
        uid,
        me,
    })
}

/// The uid owning the TCP socket whose local address is `sock` and remote address `remote`.
pub fn owner_of(sock: SocketAddr, remote: SocketAddr) -> Option<u32> {
    let want = (canonical(sock), canonical(remote));
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|f| {
        let table = std::fs::read_to_string(f).ok()?;
        table.lines().skip(1).find_map(|l| {
            let (a, b, uid) = parse_line(l)?;
            ((canonical(a), canonical(b)) == want).then_some(uid)
        })
    })
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// (local address, remote address, uid) of one line of `/proc/net/tcp{,6}`.
fn parse_line(l: &str) -> Option<(SocketAddr, SocketAddr, u32)> {
    let f: Vec<&str> = l.split_whitespace().collect();
    Some((
        parse_addr(f.get(1)?)?,
        parse_addr(f.get(2)?)?,
        f.get(7)?.parse().ok()?,
    ))
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): the kernel prints each
/// 32-bit word of the address as a number in host byte order.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let w = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(w.to_ne_bytes())
    };
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_of_a_loopback_connection_are_this_user() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        // the worker's view of its caller, and the caller's view of the worker
        check_same_user(s.local_addr().unwrap(), s.peer_addr().unwrap()).unwrap();
        check_same_user(c.local_addr().unwrap(), c.peer_addr().unwrap()).unwrap();
        let far: SocketAddr = "192.0.2.1:9".parse().unwrap();
        assert_eq!(
            check_same_user(c.local_addr().unwrap(), far),
            Err(PeerCredError::NotLoopback(far))
        );
    }

    #[test]
    fn kernel_addresses_parse() {
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 12345";
        let (a, b, uid) = parse_line(line).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(a, "127.0.0.1:8080".parse().unwrap());
        }
        assert_eq!((b.port(), uid), (0, 1000));
    }
}
