//! The `ADDR[/PREFIX]... dev IFACE` words of every command, and `--label`, turned into validated
//! values before anything is touched. Pure.
//!
//! The syntax is `ip addr`'s: the addresses, then the keyword `dev` and the interface name.
//! Deliberately not here: resolving host names, guessing the interface from routes.

use std::net::IpAddr;

use common::config::{Cidr, IfName};

use crate::Error;

/// One address as written: with or without a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length, if given.
    pub prefix_len: Option<u8>,
}

impl Spec {
    /// The address with its prefix length; a usage error when there is none.
    pub fn cidr(&self) -> Result<Cidr, Error> {
        let len = self.prefix_len.ok_or_else(|| {
            let example = if self.addr.is_ipv4() { 24 } else { 64 };
            Error::Usage(format!(
                "{} needs a prefix length, e.g. {}/{example}",
                self.addr, self.addr
            ))
        })?;
        Cidr::new(self.addr, len).map_err(|e| Error::Usage(format!("{}: {e}", self.addr)))
    }
}

impl std::fmt::Display for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix_len {
            Some(p) => write!(f, "{}/{p}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// The addresses and the interface of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// At least one address, no duplicates.
    pub specs: Vec<Spec>,
    /// The interface name.
    pub iface: String,
}

/// What the command accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accept {
    /// More than one address.
    pub many: bool,
    /// A prefix length is required.
    pub prefix: bool,
}

/// Parses `ADDR[/PREFIX]... dev IFACE`.
pub fn parse(words: &[String], accept: Accept) -> Result<Target, Error> {
    let usage = |m: String| Err(Error::Usage(m));
    let what = if accept.many {
        "ADDR/PREFIX... dev IFACE"
    } else if accept.prefix {
        "ADDR/PREFIX dev IFACE"
    } else {
        "ADDR dev IFACE"
    };
    let Some(dev) = words.iter().position(|w| w == "dev") else {
        return usage(format!(
            "expected {what}, e.g. `192.0.2.100/24 dev eth0`: the keyword `dev` is missing"
        ));
    };
    let (addrs, rest) = (&words[..dev], &words[dev + 1..]);
    let iface = match rest {
        [one] => one
            .parse::<IfName>()
            .map_err(|e| Error::Usage(e.to_string()))?,
        [] => {
            return usage(format!(
                "expected {what}: the interface name after `dev` is missing"
            ));
        }
        [_, extra, ..] => {
            return usage(format!(
                "expected {what}: unexpected {extra:?} after the interface name"
            ));
        }
    };
    if addrs.is_empty() {
        return usage(format!("expected {what}: no address before `dev`"));
    }
    if addrs.len() > 1 && !accept.many {
        return usage(format!(
            "expected {what}: one address only, got {} (`fakeip hold` takes several)",
            addrs.len()
        ));
    }
    let mut specs: Vec<Spec> = Vec::new();
    for word in addrs {
        let spec = parse_spec(word)?;
        if accept.prefix {
            spec.cidr()?;
        }
        if specs.iter().any(|s| s.addr == spec.addr) {
            return usage(format!("{} is given twice", spec.addr));
        }
        specs.push(spec);
    }
    Ok(Target {
        specs,
        iface: iface.as_str().to_owned(),
    })
}

fn parse_spec(word: &str) -> Result<Spec, Error> {
    if word.contains('/') {
        let cidr: Cidr = word
            .parse()
            .map_err(|e| Error::Usage(format!("{word}: {e}")))?;
        return Ok(Spec {
            addr: cidr.addr(),
            prefix_len: Some(cidr.prefix_len()),
        });
    }
    let addr = word
        .parse::<common::config::IpAddr>()
        .map_err(|e| Error::Usage(e.to_string()))?;
    Ok(Spec {
        addr: addr.get(),
        prefix_len: None,
    })
}

/// Maximum interface-name length (`IFNAMSIZ` 16 with the NUL), which IPv4 labels share.
const LABEL_MAX: usize = 15;

/// The full IPv4 label for `--label L` on `iface`: `L` when it already starts with `IFACE:`,
/// else `IFACE:L` (heartbeat IPaddr2's `iflabel`). IPv6 addresses have no labels.
pub fn label(iface: &str, label: &str, specs: &[Spec]) -> Result<String, Error> {
    if let Some(v6) = specs.iter().find(|s| s.addr.is_ipv6()) {
        return Err(Error::Usage(format!(
            "--label: {} is IPv6, and IPv6 addresses have no labels",
            v6.addr
        )));
    }
    let full = if label.starts_with(&format!("{iface}:")) {
        label.to_owned()
    } else {
        format!("{iface}:{label}")
    };
    if full.len() > LABEL_MAX || full.len() == iface.len() + 1 {
        return Err(Error::Usage(format!(
            "--label: {full:?} must be IFACE:NAME with at most {LABEL_MAX} characters"
        )));
    }
    if full.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(Error::Usage(format!(
            "--label: {full:?} contains a space or '/'"
        )));
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    const ONE: Accept = Accept {
        many: false,
        prefix: false,
    };
    const UP: Accept = Accept {
        many: false,
        prefix: true,
    };
    const HOLD: Accept = Accept {
        many: true,
        prefix: true,
    };

    #[test]
    fn parses_the_ip_style_words() {
        let t = parse(&w("192.0.2.100/24 dev eth0"), UP).unwrap();
        assert_eq!(t.iface, "eth0");
        assert_eq!(t.specs[0].to_string(), "192.0.2.100/24");
        let t = parse(&w("192.0.2.100 dev eth0"), ONE).unwrap();
        assert_eq!(t.specs[0].prefix_len, None);
        let t = parse(&w("192.0.2.100/24 2001:db8::100/64 dev eth0"), HOLD).unwrap();
        assert_eq!(t.specs.len(), 2);
    }

    #[test]
    fn usage_errors_say_what_is_expected() {
        let cases = [
            ("192.0.2.100/24 eth0", UP, "the keyword `dev` is missing"),
            (
                "192.0.2.100/24 dev",
                UP,
                "the interface name after `dev` is missing",
            ),
            ("dev eth0", UP, "no address before `dev`"),
            (
                "192.0.2.100/24 dev eth0 up",
                UP,
                "unexpected \"up\" after the interface name",
            ),
            (
                "192.0.2.100 dev eth0",
                UP,
                "192.0.2.100 needs a prefix length, e.g. 192.0.2.100/24",
            ),
            ("2001:db8::1 dev eth0", UP, "e.g. 2001:db8::1/64"),
            (
                "192.0.2.100/33 dev eth0",
                UP,
                "prefix length must be 0..=32",
            ),
            (
                "192.0.2.1/24 192.0.2.2/24 dev eth0",
                UP,
                "one address only, got 2",
            ),
            (
                "192.0.2.1/24 192.0.2.1/32 dev eth0",
                HOLD,
                "192.0.2.1 is given twice",
            ),
            ("lb1.example dev eth0", ONE, "host names are not resolved"),
            ("192.0.2.1 dev a/b", ONE, "not a valid interface name"),
        ];
        for (words, accept, want) in cases {
            let err = parse(&w(words), accept).unwrap_err();
            assert!(matches!(err, Error::Usage(_)), "{words}: {err:?}");
            assert!(err.to_string().contains(want), "{words}: {err}");
        }
    }

    #[test]
    fn labels_follow_ipaddr2() {
        let v4 = parse(&w("192.0.2.100/24 dev eth0"), UP).unwrap().specs;
        let v6 = parse(&w("2001:db8::1/64 dev eth0"), UP).unwrap().specs;
        assert_eq!(label("eth0", "vip", &v4).unwrap(), "eth0:vip");
        assert_eq!(label("eth0", "eth0:web", &v4).unwrap(), "eth0:web");
        assert!(label("eth0", "a-very-long-label", &v4).is_err());
        assert!(label("eth0", "", &v4).is_err());
        assert!(label("eth0", "a b", &v4).is_err());
        assert!(
            label("eth0", "vip", &v6)
                .unwrap_err()
                .to_string()
                .contains("IPv6 addresses have no labels")
        );
    }
}
