//! Where a `Deploy` may make the worker connect (`dicesim worker --peers`; issue 19,
//! item 7). A deployment's routes name peer workers by `host:port`; without a check a
//! token holder could make the worker open connections to any host it can reach (probing
//! ports, or a service behind the board's firewall, from the board's position).
//!
//! The default, `local`, allows loopback and the networks of this host's interfaces (read
//! when the `Deploy` arrives, so it follows the interfaces of a network namespace set up
//! after the worker started): the boards of one LAN, the emulation rig (peers on its
//! 10.201/16 network) and loopback runs all fit. Boards that reach each other through a
//! router need `--peers` naming their addresses or networks. Whatever the list, a peer
//! must still complete the handshake with the worker's token before it is sent anything.

use std::net::{IpAddr, ToSocketAddrs};

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// An address and prefix length.
    Net(IpAddr, u8),
    /// Loopback and this host's interface networks.
    Local,
    /// Any address.
    Any,
}

/// The addresses a worker may connect to as a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerList {
    rules: Vec<Rule>,
}

impl Default for PeerList {
    fn default() -> Self {
        PeerList {
            rules: vec![Rule::Local],
        }
    }
}

impl PeerList {
    /// Parses `--peers`: comma-separated `local`, `any`, IP addresses, networks in CIDR
    /// notation (`10.0.0.0/24`) and host names (resolved now).
    pub fn parse(spec: &str) -> Result<PeerList, String> {
        let mut rules = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            rules.extend(parse_item(item)?);
        }
        if rules.is_empty() {
            return Err(format!("--peers {spec:?}: no entry"));
        }
        Ok(PeerList { rules })
    }

    /// Whether the worker may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.rules.iter().any(|r| match r {
            Rule::Any => true,
            Rule::Local => ip.is_loopback() || interface_nets().iter().any(|n| in_net(ip, *n)),
            Rule::Net(a, p) => in_net(ip, (*a, *p)),
        })
    }
}

fn parse_item(item: &str) -> Result<Vec<Rule>, String> {
    match item {
        "local" => return Ok(vec![Rule::Local]),
        "any" => return Ok(vec![Rule::Any]),
        _ => {}
    }
    if let Some((a, p)) = item.split_once('/') {
        let a: IpAddr = a
            .parse()
            .map_err(|_| format!("--peers: {item:?} is not a network (ADDRESS/PREFIX)"))?;
        let max = if a.is_ipv4() { 32 } else { 128 };
        let p: u8 = (p.parse().ok())
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("--peers: {item:?}: prefix must be 0 to {max}"))?;
        return Ok(vec![Rule::Net(a.to_canonical(), p)]);
    }
    if let Ok(a) = item.parse::<IpAddr>() {
        return Ok(vec![host_rule(a)]);
    }
    let addrs = (item, 0)
        .to_socket_addrs()
        .map_err(|e| format!("--peers: {item:?} does not resolve ({e})"))?;
    Ok(addrs.map(|a| host_rule(a.ip())).collect())
}

fn host_rule(a: IpAddr) -> Rule {
    let a = a.to_canonical();
    Rule::Net(a, if a.is_ipv4() { 32 } else { 128 })
}

/// Whether `ip` lies in network `(addr, prefix)`.
fn in_net(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The networks of this host's interfaces (address, prefix length), loopback included.
pub fn interface_nets() -> Vec<(IpAddr, u8)> {
    let mut out = Vec::new();
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs allocates a list that freeifaddrs releases below; every node is
    // read only while the list lives.
    unsafe {
        if libc::getifaddrs(&mut head) != 0 {
            return out;
        }
        let mut p = head;
        while !p.is_null() {
            let ifa = &*p;
            if let (Some(a), Some(m)) = (sock_ip(ifa.ifa_addr), sock_ip(ifa.ifa_netmask)) {
                out.push((a, prefix_len(m)));
            }
            p = ifa.ifa_next;
        }
        libc::freeifaddrs(head);
    }
    out
}

/// The IP address in a socket address, if it is IPv4 or IPv6.
///
/// # Safety
/// `sa` is null or points to a socket address of its family's size.
unsafe fn sock_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let s = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::from(u32::from_be(s.sin_addr.s_addr).to_be_bytes()))
        }
        libc::AF_INET6 => {
            let s = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::from(s.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

fn prefix_len(mask: IpAddr) -> u8 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones() as u8,
        IpAddr::V6(m) => u128::from(m).leading_ones() as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn lists_parse_and_match() {
        let l = PeerList::parse("10.0.0.0/24, 192.168.1.7,::1").unwrap();
        assert!(l.allows(ip("10.0.0.200")) && !l.allows(ip("10.0.1.1")));
        assert!(l.allows(ip("192.168.1.7")) && !l.allows(ip("192.168.1.8")));
        assert!(l.allows(ip("::1")) && !l.allows(ip("127.0.0.1")));
        assert!(l.allows(ip("::ffff:10.0.0.3")), "v4-mapped is v4");
        assert!(PeerList::parse("any").unwrap().allows(ip("8.8.8.8")));
        assert!(PeerList::parse("localhost")
            .unwrap()
            .allows(ip("127.0.0.1")));
        for bad in ["", "10.0.0.0/33", "x/8", "no-such-host.invalid"] {
            assert!(PeerList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_is_loopback_and_this_hosts_networks() {
        let l = PeerList::default();
        assert!(l.allows(ip("127.0.0.1")) && l.allows(ip("::1")));
        // an address of no interface's network (documentation ranges, one may be in use)
        let far = ["192.0.2.77", "198.51.100.77", "203.0.113.77"]
            .map(ip)
            .into_iter()
            .find(|a| !interface_nets().iter().any(|n| in_net(*a, *n)))
            .unwrap();
        assert!(!l.allows(far), "{far}");
        for (a, _) in interface_nets() {
            assert!(l.allows(a), "{a}");
        }
    }
}
