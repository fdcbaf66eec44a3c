//! IP allow and deny lists of addresses and CIDR ranges.

use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;

use crate::error::Error;

/// How strictly rules are read: new input refuses forms that stored data written by
/// earlier versions may still hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rules {
    /// New input: every form with an unclear meaning is refused.
    New,
    /// A stored config version: it was validated when written and keeps its meaning.
    Stored,
}

/// Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (meaning /32 or /128).
///
/// An IPv4-mapped IPv6 rule (`::ffff:10.0.0.1`, `::ffff:10.0.0.0/104`) becomes the IPv4
/// rule it stands for (`10.0.0.1/32`, `10.0.0.0/8`), because client addresses are checked
/// the same way: a mapped client address is checked as its IPv4 address. A mapped range
/// shorter than /96 also covers addresses that are not IPv4-mapped and is refused.
pub(crate) fn parse_net(field: &str, s: &str, rules: Rules) -> Result<IpNet, Error> {
    let s = s.trim();
    let quoted = || s.chars().take(64).collect::<String>();
    let net = match s.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => s.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            Error::invalid(
                field.to_owned(),
                format!(
                    "`{}` is not an IP address or CIDR; use forms like 203.0.113.7, 10.0.0.0/8 or 2001:db8::/32",
                    quoted()
                ),
            )
        })?,
    };
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
    {
        match v6.prefix_len().checked_sub(96) {
            Some(len) => {
                if let Ok(n) = Ipv4Net::new(v4, len) {
                    return Ok(IpNet::V4(n.trunc()));
                }
            }
            None if rules == Rules::New => {
                return Err(Error::invalid(
                    field.to_owned(),
                    format!(
                        "`{}` is an IPv4-mapped range shorter than /96, so it also covers addresses that are not IPv4; write the IPv4 range instead (::ffff:10.0.0.0/104 is 10.0.0.0/8), or a plain IPv6 range",
                        quoted()
                    ),
                ));
            }
            None => {}
        }
    }
    Ok(net.trunc())
}

/// Parses a list of nets, naming the entry that is wrong.
pub(crate) fn parse_nets<S: AsRef<str>>(field: &str, items: &[S]) -> Result<Vec<IpNet>, Error> {
    parse_nets_as(field, items, Rules::New)
}

/// [`parse_nets`] with the given strictness.
pub(crate) fn parse_nets_as<S: AsRef<str>>(
    field: &str,
    items: &[S],
    rules: Rules,
) -> Result<Vec<IpNet>, Error> {
    if items.len() > 10_000 {
        return Err(Error::invalid(
            field.to_owned(),
            "give at most 10000 entries",
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, s)| parse_net(&format!("{field}[{i}]"), s.as_ref(), rules))
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
    fn mapped_rules_are_their_ipv4_rules() {
        for (mapped, v4) in [
            ("::ffff:10.0.0.1", "10.0.0.1/32"),
            ("::ffff:10.0.0.0/104", "10.0.0.0/8"),
            ("::ffff:10.9.8.7/112", "10.9.0.0/16"),
            ("::ffff:0:0/96", "0.0.0.0/0"),
        ] {
            let got = parse_net("x", mapped, Rules::New).unwrap();
            assert_eq!(got, v4.parse::<IpNet>().unwrap(), "{mapped}");
        }
        let e = parse_net("x", "::ffff:10.0.0.0/95", Rules::New).unwrap_err();
        assert!(e.message().contains("/96"), "{e}");
        let legacy = parse_net("x", "::ffff:10.0.0.0/95", Rules::Stored).unwrap();
        assert_eq!(legacy, "::fffe:0:0/95".parse::<IpNet>().unwrap());
        // Plain IPv6 stays IPv6.
        assert_eq!(
            parse_net("x", "2001:db8::1/64", Rules::New).unwrap(),
            "2001:db8::/64".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn bad_entries_are_named() {
        let e = parse_nets("ip_acl.allow", &["10.0.0.0/8", "10.0.0.300"]).unwrap_err();
        assert_eq!(e.field(), "ip_acl.allow[1]");
        assert!(parse_net("x", "10.0.0.0/33", Rules::New).is_err());
    }
}
