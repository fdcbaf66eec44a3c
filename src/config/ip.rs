//! IP allow and deny lists of addresses and CIDR ranges.

use ipnet::IpNet;
use std::net::IpAddr;

use crate::error::Error;

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (meaning /32 or /128).
pub(crate) fn parse_net(field: &str, s: &str) -> Result<IpNet, Error> {
    let s = s.trim();
    if let Ok(net) = s.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        Error::invalid(
            field.to_owned(),
            format!(
                "`{}` is not an IP address or CIDR; use forms like 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32",
                s.chars().take(64).collect::<String>()
            ),
        )
    })
}

/// Parses a list of nets, naming the entry that is wrong.
pub(crate) fn parse_nets<S: AsRef<str>>(field: &str, items: &[S]) -> Result<Vec<IpNet>, Error> {
    if items.len() > 10_000 {
        return Err(Error::invalid(
            field.to_owned(),
            "give at most 10000 entries",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| parse_net(&format!("{field}[{i}]"), s.as_ref()))
        .collect()
}

/// An allow list and a deny list. Deny wins; an empty allow list allows everyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct IpRules {
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
}

impl IpRules {
    /// Whether `ip` passes these rules.
    #[inline]
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        !self.deny.iter().any(|n| n.contains(&ip))
            && (self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip)))
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are checked as the IPv4 address.
#[inline]
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &[&str], deny: &[&str]) -> IpRules {
        IpRules {
            allow: parse_nets("a", allow).unwrap(),
            deny: parse_nets("d", deny).unwrap(),
        }
    }

    #[test]
    fn deny_wins_and_empty_allow_means_all() {
        let r = rules(&[], &["10.0.0.5"]);
        assert!(r.allows("10.0.0.4".parse().unwrap()));
        assert!(!r.allows("10.0.0.5".parse().unwrap()));
        let r = rules(&["10.0.0.0/8", "2001:db8::/32"], &["10.1.0.0/16"]);
        assert!(r.allows("10.2.3.4".parse().unwrap()));
        assert!(!r.allows("10.1.3.4".parse().unwrap()));
        assert!(!r.allows("11.0.0.1".parse().unwrap()));
        assert!(r.allows("2001:db8::1".parse().unwrap()));
        assert!(r.allows("::ffff:10.2.3.4".parse().unwrap()));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = parse_nets("ip_acl.allow", &["10.0.0.0/8", "10.0.0.300"]).unwrap_err();
        assert_eq!(e.field(), "ip_acl.allow[1]");
        assert!(parse_net("x", "10.0.0.0/33").is_err());
    }
}
