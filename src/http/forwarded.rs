//! The client address behind trusted proxies (`X-Forwarded-For`, `Forwarded`).

use std::fmt;
use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// A trusted-proxy rule that is not an IP address or CIDR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidProxy {
    rule: String,
}

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trusted proxy {:?} is not an IP address or CIDR: write e.g. `10.0.0.1` or `10.0.0.0/8`",
            self.rule
        )
    }
}

impl std::error::Error for InvalidProxy {}

/// The proxies whose forwarding headers are believed; empty by default.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    pub(crate) fn parse<I, S>(rules: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nets = Vec::new();
        for rule in rules {
            let text = rule.as_ref().trim();
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(|ip| IpNet::from(canonical(ip))))
                .map_err(|_| InvalidProxy {
                    rule: rule.as_ref().to_owned(),
                })?;
            nets.push(net);
        }
        Ok(Self { nets })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client: the peer, unless the peer is a trusted proxy; then the rightmost hop of
    /// `Forwarded` (or, without it, `X-Forwarded-For`) that is not a trusted proxy. A hop
    /// that is not an address ends the walk at the last trusted hop before it (a trusted
    /// proxy wrote everything to its right; what is left of a garbled entry is not
    /// believed), and so does a list made only of trusted proxies.
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if self.nets.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let forwarded = headers.get_all(http::header::FORWARDED);
        if forwarded.iter().next().is_some() {
            return self.walk(
                peer,
                forwarded.iter().rev().flat_map(|v| {
                    let v = v.to_str().unwrap_or("\u{0}");
                    v.rsplit(',').map(forwarded_for)
                }),
            );
        }
        let xff = headers.get_all("x-forwarded-for");
        self.walk(
            peer,
            xff.iter().rev().flat_map(|v| {
                let v = v.to_str().unwrap_or("\u{0}");
                v.rsplit(',').map(|hop| parse_hop(hop.trim()))
            }),
        )
    }

    fn walk(&self, peer: IpAddr, hops: impl Iterator<Item = Option<IpAddr>>) -> IpAddr {
        let mut client = peer;
        for hop in hops {
            match hop {
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return ip,
                None => return client,
            }
        }
        client
    }
}

/// The `for=` address of one `Forwarded` element (RFC 7239), `None` when absent or not an
/// address (`unknown`, obfuscated identifiers).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("for") {
            return None;
        }
        parse_hop(value.trim().trim_matches('"'))
    })
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
/// `[2001:db8::1]:443`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return ip.parse().ok();
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    ip.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_headers_say() {
        let none = TrustedProxies::default();
        let h = headers(&[("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(none.client(ip("203.0.113.5"), &h), ip("203.0.113.5"));
        let t = TrustedProxies::parse(["127.0.0.1"]).unwrap();
        assert_eq!(t.client(ip("203.0.113.5"), &h), ip("203.0.113.5"));
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let t = TrustedProxies::parse(["127.0.0.0/8", "10.0.0.0/8"]).unwrap();
        // The client forged the first entry; the proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 198.51.100.7, 10.0.0.9")]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("198.51.100.7"));
        // Several header lines are one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "198.51.100.8:4321"),
        ]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("198.51.100.8"));
        // Only trusted hops: the leftmost of them.
        let h = headers(&[("x-forwarded-for", "10.1.1.1, 10.0.0.9")]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("10.1.1.1"));
        // No header: the proxy itself.
        assert_eq!(
            t.client(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
        // Garbage stops the walk at the last trusted hop.
        let h = headers(&[("x-forwarded-for", "198.51.100.7, nonsense, 10.0.0.9")]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("10.0.0.9"));
        // IPv4-mapped proxies are their IPv4 addresses.
        assert_eq!(
            t.client(
                ip("::ffff:127.0.0.1"),
                &headers(&[("x-forwarded-for", "192.0.2.1")])
            ),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn forwarded_header_is_read_and_preferred() {
        let t = TrustedProxies::parse(["127.0.0.1"]).unwrap();
        let h = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8::17]:4711\"",
            ),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("2001:db8::17"));
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(t.client(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn bad_rules_are_refused_by_name() {
        let err = TrustedProxies::parse(["10.0.0.0/8", "localhost"]).unwrap_err();
        assert!(err.to_string().contains("\"localhost\""), "{err}");
    }
}
