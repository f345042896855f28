//! Which socket peers are the reverse proxies in front, whose forwarding header names the
//! client, and the address a client counts against (an IPv6 client by its /64).

use std::{
    net::{IpAddr, Ipv6Addr},
    sync::atomic::{AtomicBool, Ordering},
};

use axum::http::HeaderMap;
use axum_client_ip::ClientIpSource;
use ipnet::IpNet;

/// Which socket peers are reverse proxies whose forwarding header names the client.
pub struct Proxies {
    source: ClientIpSource,
    trusted: Vec<IpNet>,
    /// Whether the warning about a forwarding header from an untrusted peer has been logged.
    warned: AtomicBool,
}

impl Proxies {
    /// Proxies at `trusted` naming their clients in the header `source` says.
    pub fn new(source: ClientIpSource, trusted: Vec<IpNet>) -> Self {
        Self {
            source,
            trusted,
            warned: AtomicBool::new(false),
        }
    }

    /// Where the client's address is read when a trusted proxy sends the request; the router
    /// hands it to `axum_client_ip` as an extension.
    pub fn source(&self) -> ClientIpSource {
        self.source.clone()
    }

    /// True when `peer` is in one of the trusted proxies' networks (an IPv4-mapped IPv6
    /// peer, as a dual-stack listener sees IPv4, counts as its IPv4 address).
    pub fn is_proxy(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        self.trusted.iter().any(|net| net.contains(&peer))
    }

    /// True when `peer` is a trusted proxy and a header names the client.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        !matches!(self.source, ClientIpSource::ConnectInfo) && self.is_proxy(peer)
    }

    /// Warns once when requests from untrusted peers carry a forwarding header while no proxy
    /// is trusted: behind a proxy that is a misconfiguration (every buyer counts as the proxy).
    pub(super) fn notice(&self, headers: &HeaderMap) {
        if self.trusted.is_empty()
            && headers.contains_key("x-forwarded-for")
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                "requests carry X-Forwarded-For but trusted_proxies is empty: the header is \
                 ignored and each request counts against its socket peer; behind a reverse \
                 proxy, set trusted_proxies (and client_ip_source)"
            );
        }
    }
}

/// The key an address counts against: an IPv4 address alone, an IPv6 address by its /64.
pub(super) fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !(u128::from(u64::MAX)))),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_peer_names_the_client() {
        let nets = vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap(),
        ];
        let proxies = Proxies::new(ClientIpSource::RightmostXForwardedFor, nets.clone());
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert!(proxies.trusts(ip("10.1.2.3")));
        assert!(proxies.trusts(ip("::ffff:10.1.2.3")));
        assert!(proxies.trusts(ip("192.0.2.7")));
        assert!(!proxies.trusts(ip("192.0.2.8")));
        // The socket peer is the address; no header counts whatever the list says.
        let direct = Proxies::new(ClientIpSource::ConnectInfo, nets);
        assert!(!direct.trusts(ip("10.1.2.3")));
        let nobody = Proxies::new(ClientIpSource::RightmostXForwardedFor, Vec::new());
        assert!(!nobody.trusts(ip("10.1.2.3")));
    }

    #[test]
    fn ipv6_counts_by_its_64_block() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:1:2:3".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(bucket(a), bucket(b));
        assert_ne!(bucket(a), bucket(other));
        let v4: IpAddr = "203.0.113.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(bucket(v4), v4);
        assert_eq!(bucket(mapped), v4);
    }
}
