//! Real server addresses as written: `192.0.2.13:80`, `192.0.2.13` (the virtual's port),
//! `[2001:db8::13]:80`, `2001:db8::13`, and ldirectord's ranges `192.0.2.20->192.0.2.29:80` (also
//! `[2001:db8::1]->[2001:db8::9]:80`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A run of consecutive addresses on one port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    first: IpAddr,
    count: u128,
    port: u16,
}

impl Range {
    /// The first address with the port.
    pub fn first(&self) -> SocketAddr {
        SocketAddr::new(self.first, self.port)
    }

    /// How many addresses.
    pub fn len(&self) -> u128 {
        self.count
    }

    /// Never: a range has at least one address.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every address, in order.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        (0..self.count).map(move |i| {
            let ip = match self.first {
                IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a).wrapping_add(i as u32))),
                IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a).wrapping_add(i))),
            };
            SocketAddr::new(ip, self.port)
        })
    }
}

/// One host without a port: `192.0.2.1`, `2001:db8::1` or `[2001:db8::1]`.
fn host(s: &str) -> Result<IpAddr, String> {
    let inner = s.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
    match inner {
        Some(v6) => v6
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("{s:?} is not an IPv6 address")),
        None => s.parse::<IpAddr>().map_err(|_| {
            format!("{s:?} is not an IP address (host names are not resolved: write the address)")
        }),
    }
}

/// Splits `HOST[:PORT]` where an IPv6 host with a port is in brackets.
fn host_port(s: &str, default_port: u16) -> Result<(IpAddr, u16), String> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some((h, after)) = rest.split_once(']') else {
            return Err(format!("{s:?}: a '[' without ']'"));
        };
        let port = match after {
            "" => default_port,
            p => port(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("{s:?}: expected ':PORT' after ']'"))?,
            )?,
        };
        return Ok((
            IpAddr::V6(
                h.parse()
                    .map_err(|_| format!("{h:?} is not an IPv6 address"))?,
            ),
            port,
        ));
    }
    if s.matches(':').count() > 1 {
        // A bare IPv6 address: no port.
        return Ok((host(s)?, default_port));
    }
    match s.split_once(':') {
        Some((h, p)) => Ok((host(h)?, port(p)?)),
        None => Ok((host(s)?, default_port)),
    }
}

fn port(p: &str) -> Result<u16, String> {
    p.parse::<u16>().map_err(|_| {
        format!("{p:?} is not a port number 0..=65535 (service names are not looked up)")
    })
}

/// Parses a real's address or range; a missing port is `default_port`.
pub fn parse_real(s: &str, default_port: u16) -> Result<Range, String> {
    let s = s.trim();
    // The usual `ADDRESS:PORT` in one pass: the general path cost 7 % of a 1,000-file load
    // (callgrind, 10.7 of 160 M instructions; now 4.8 M). A scope (`%`) is left to the general
    // path, which refuses it.
    if !s.contains('%')
        && let Ok(a) = s.parse::<SocketAddr>()
    {
        return Ok(Range {
            first: a.ip(),
            count: 1,
            port: a.port(),
        });
    }
    let Some((a, b)) = s.split_once("->") else {
        let (ip, port) = host_port(s, default_port)?;
        return Ok(Range {
            first: ip,
            count: 1,
            port,
        });
    };
    let first = host(a.trim())?;
    let (last, port) = host_port(b.trim(), default_port)?;
    let count = match (first, last) {
        (IpAddr::V4(x), IpAddr::V4(y)) if u32::from(y) >= u32::from(x) => {
            u128::from(u32::from(y) - u32::from(x)) + 1
        }
        (IpAddr::V6(x), IpAddr::V6(y)) if u128::from(y) >= u128::from(x) => {
            (u128::from(y) - u128::from(x)).saturating_add(1)
        }
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
            return Err(format!("the range {s:?} ends before it starts"));
        }
        _ => return Err(format!("the range {s:?} mixes IPv4 and IPv6")),
    };
    Ok(Range { first, count, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Vec<String> {
        parse_real(s, 80)
            .unwrap()
            .iter()
            .map(|a| a.to_string())
            .collect()
    }

    #[test]
    fn single_addresses_take_the_virtual_port_when_none_is_given() {
        assert_eq!(all("192.0.2.13:8080"), ["192.0.2.13:8080"]);
        assert_eq!(all("192.0.2.13"), ["192.0.2.13:80"]);
        assert_eq!(all("[2001:db8::13]:443"), ["[2001:db8::13]:443"]);
        assert_eq!(all("2001:db8::13"), ["[2001:db8::13]:80"]);
        assert_eq!(all("[2001:db8::13]"), ["[2001:db8::13]:80"]);
    }

    #[test]
    fn ldirectord_ranges_expand_in_order() {
        assert_eq!(
            all("192.0.2.20->192.0.2.22:81"),
            ["192.0.2.20:81", "192.0.2.21:81", "192.0.2.22:81"]
        );
        assert_eq!(
            all("192.0.2.255->192.0.3.0"),
            ["192.0.2.255:80", "192.0.3.0:80"]
        );
        assert_eq!(
            all("[2001:db8::ff]->[2001:db8::100]:53"),
            ["[2001:db8::ff]:53", "[2001:db8::100]:53"]
        );
        assert_eq!(
            parse_real("198.18.0.0->198.19.255.255:80", 0)
                .unwrap()
                .len(),
            131_072
        );
        assert_eq!(
            parse_real("2001:db8::->2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 0)
                .unwrap()
                .len(),
            1 << 96
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (s, words) in [
            ("web1:80", "host names are not resolved"),
            ("192.0.2.9->192.0.2.1:80", "ends before it starts"),
            ("192.0.2.1->[2001:db8::1]:80", "mixes IPv4 and IPv6"),
            ("192.0.2.1:http", "service names are not looked up"),
            ("192.0.2.1:70000", "not a port"),
            ("[2001:db8::1:80", "without ']'"),
            // std's socket address parser takes a scope; a real's address has none.
            ("[fe80::1%2]:80", "not an IPv6 address"),
            (" 192.0.2.1 : 80", "is not an IP address"),
        ] {
            let e = parse_real(s, 80).unwrap_err();
            assert!(e.contains(words), "{s}: {e}");
        }
    }
}
