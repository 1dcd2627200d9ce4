//! Value types shared by the tools' configurations, parsed from TOML strings with precise messages.
//!
//! Each type implements `FromStr`, `Display` (the canonical form, which parses back to the same
//! value), and serde's `Deserialize` (from a string) and `Serialize` (to its `Display` form).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A value that does not parse; the message says what is wrong and how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(String);

impl ValueError {
    fn new(message: impl Into<String>) -> Self {
        ValueError(message.into())
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// Deserialize from a string via `FromStr`, serialize via `Display`.
macro_rules! string_serde {
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct StrVisitor;
                impl Visitor<'_> for StrVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(StrVisitor)
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Duration

/// A span of time written with units: `"20ms"`, `"2s"`, `"1m"`, `"1h"`, `"1m30s"`, `"1.5s"`.
///
/// Units are `ns`, `us` (or `µs`), `ms`, `s`, `m` and `h`. Several components may follow each
/// other from the largest unit to the smallest, each unit at most once (`"1h30m"`, `"1s500ms"`).
/// A component may have a decimal fraction (`"1.5s"`, `"0.25ms"`) as long as the result is a
/// whole number of nanoseconds. Rejected: a number without unit (`"2"`, or a TOML integer `2`),
/// negative values, spaces, empty strings, and values above `std::time::Duration::MAX`.
/// `Display` writes the canonical form, e.g. `1s500ms` for `"1.5s"`, and `0s` for zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(std::time::Duration);

const UNITS: [(&str, u128); 7] = [
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("µs", 1_000),
    ("ns", 1),
];

const DURATION_EXAMPLE: &str = "write e.g. \"2s\", \"500ms\" or \"1m30s\"";

impl Duration {
    /// Wraps a `std::time::Duration`.
    pub const fn from_std(duration: std::time::Duration) -> Self {
        Duration(duration)
    }

    /// The `std::time::Duration`.
    pub const fn as_std(&self) -> std::time::Duration {
        self.0
    }
}

impl From<std::time::Duration> for Duration {
    fn from(duration: std::time::Duration) -> Self {
        Duration(duration)
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0.as_nanos();
        if rest == 0 {
            return f.write_str("0s");
        }
        for (unit, nanos) in UNITS {
            if unit == "µs" {
                continue;
            }
            let count = rest / nanos;
            if count > 0 {
                write!(f, "{count}{unit}")?;
                rest %= nanos;
            }
        }
        Ok(())
    }
}

impl FromStr for Duration {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        if s.is_empty() {
            return Err(ValueError::new(format!(
                "empty duration; {DURATION_EXAMPLE}"
            )));
        }
        if s.starts_with('-') {
            return Err(ValueError::new(format!(
                "durations cannot be negative, got {s:?}"
            )));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(ValueError::new(format!(
                "unexpected space in duration {s:?}; write it without spaces, e.g. \"1m30s\""
            )));
        }
        if is_plain_number(s) {
            return Err(no_unit(&format!("{s:?}"), s));
        }
        let not_a_duration =
            || ValueError::new(format!("{s:?} is not a duration; {DURATION_EXAMPLE}"));
        let too_large = || {
            ValueError::new(format!(
                "duration {s:?} is too large (at most {} seconds)",
                u64::MAX
            ))
        };

        let mut total: u128 = 0;
        let mut rest = s;
        let mut previous_rank = None;
        while !rest.is_empty() {
            let int_len = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            let int_digits = &rest[..int_len];
            rest = &rest[int_len..];
            let mut frac_digits = "";
            if let Some(after_dot) = rest.strip_prefix('.') {
                let frac_len = after_dot
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(after_dot.len());
                frac_digits = &after_dot[..frac_len];
                rest = &after_dot[frac_len..];
                if frac_digits.is_empty() {
                    return Err(not_a_duration());
                }
            }
            if int_digits.is_empty() {
                return Err(not_a_duration());
            }
            let unit_len = rest
                .find(|c: char| !c.is_alphabetic())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            if unit.is_empty() {
                return Err(not_a_duration());
            }
            let Some(rank) = UNITS.iter().position(|(u, _)| *u == unit) else {
                return Err(ValueError::new(format!(
                    "unknown unit {unit:?} in duration {s:?}; use h, m, s, ms, us or ns"
                )));
            };
            let unit_nanos = UNITS[rank].1;
            let rank = if unit == "µs" { rank - 1 } else { rank };
            if previous_rank.is_some_and(|p| p >= rank) {
                return Err(ValueError::new(format!(
                    "in duration {s:?}, write each unit once, from the largest to the smallest, \
                     e.g. \"1m30s\""
                )));
            }
            previous_rank = Some(rank);

            // More than 39 digits overflow u128 anyway; the limit keeps the arithmetic checked.
            if int_digits.len() > 30 {
                return Err(too_large());
            }
            let int: u128 = int_digits.parse().map_err(|_| not_a_duration())?;
            let mut nanos = int.checked_mul(unit_nanos).ok_or_else(too_large)?;
            if !frac_digits.is_empty() {
                let frac_digits = frac_digits.trim_end_matches('0');
                if frac_digits.len() > 13 {
                    return Err(finer_than_ns(s));
                }
                let frac: u128 = if frac_digits.is_empty() {
                    0
                } else {
                    frac_digits.parse().map_err(|_| not_a_duration())?
                };
                let scale = 10u128.pow(frac_digits.len() as u32);
                let scaled = frac * unit_nanos;
                if !scaled.is_multiple_of(scale) {
                    return Err(finer_than_ns(s));
                }
                nanos += scaled / scale;
            }
            total = total.checked_add(nanos).ok_or_else(too_large)?;
        }
        let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_large())?;
        let subsec = (total % 1_000_000_000) as u32;
        Ok(Duration(std::time::Duration::new(secs, subsec)))
    }
}

fn is_plain_number(s: &str) -> bool {
    let s = s.strip_prefix('+').unwrap_or(s);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// `shown` is how the value appears in the file (`"2"` for a string, `2` for a number).
fn no_unit(shown: &str, number: &str) -> ValueError {
    ValueError::new(format!(
        "durations need a unit: write \"{number}s\" or \"{number}ms\", not {shown}"
    ))
}

fn finer_than_ns(s: &str) -> ValueError {
    ValueError::new(format!("duration {s:?} is more precise than a nanosecond"))
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"2s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
                if n < 0 {
                    return Err(E::custom(format!("durations cannot be negative, got {n}")));
                }
                Err(E::custom(no_unit(&n.to_string(), &n.to_string())))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
                Err(E::custom(no_unit(&n.to_string(), &n.to_string())))
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
                if !n.is_finite() {
                    return Err(E::custom(format!(
                        "{n} is not a duration; {DURATION_EXAMPLE}"
                    )));
                }
                if n < 0.0 {
                    return Err(E::custom(format!("durations cannot be negative, got {n}")));
                }
                Err(E::custom(no_unit(&n.to_string(), &n.to_string())))
            }
        }
        deserializer.deserialize_any(DurationVisitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// ---------------------------------------------------------------------------------------------
// IpAddr

/// An IPv4 or IPv6 address, `"192.0.2.1"` or `"2001:db8::1"`, without prefix length or port.
/// Host names are not accepted (nothing is resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpAddr(std::net::IpAddr);

impl IpAddr {
    /// The `std::net::IpAddr`.
    pub const fn get(&self) -> std::net::IpAddr {
        self.0
    }
}

impl From<std::net::IpAddr> for IpAddr {
    fn from(addr: std::net::IpAddr) -> Self {
        IpAddr(addr)
    }
}

impl From<IpAddr> for std::net::IpAddr {
    fn from(addr: IpAddr) -> Self {
        addr.0
    }
}

impl fmt::Display for IpAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for IpAddr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        parse_ip(s).map(IpAddr)
    }
}

string_serde!(
    IpAddr,
    "an IP address such as \"192.0.2.1\" or \"2001:db8::1\""
);

const IP_EXAMPLE: &str = "write e.g. \"192.0.2.1\" or \"2001:db8::1\"";

fn parse_ip(s: &str) -> Result<std::net::IpAddr, ValueError> {
    if let Ok(ip) = s.parse() {
        return Ok(ip);
    }
    if s.is_empty() {
        return Err(ValueError::new(format!("empty address; {IP_EXAMPLE}")));
    }
    if let Some((addr, _)) = s.split_once('/') {
        return Err(ValueError::new(format!(
            "{s:?} has a prefix length; write the address alone, e.g. {addr:?}"
        )));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Err(ValueError::new(format!(
            "{s:?} has a port; write the address alone, e.g. \"{}\"",
            sa.ip()
        )));
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
        && inner.parse::<Ipv6Addr>().is_ok()
    {
        return Err(ValueError::new(format!(
            "write an IPv6 address without brackets here: {inner:?}"
        )));
    }
    if s.contains(':') {
        return Err(ValueError::new(format!(
            "{s:?} is not a valid IPv6 address; write e.g. \"2001:db8::1\""
        )));
    }
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let parts: Vec<&str> = s.split('.').collect();
        let not_v4 = |why: String| ValueError::new(format!("{s:?} is not an IPv4 address: {why}"));
        if parts.len() != 4 {
            return Err(not_v4(format!(
                "it needs 4 numbers separated by dots, got {}",
                parts.len()
            )));
        }
        for part in parts {
            if part.is_empty() {
                return Err(not_v4("a number between two dots is missing".to_owned()));
            }
            if part.len() > 1 && part.starts_with('0') {
                return Err(not_v4(format!(
                    "{part:?} has a leading zero, which some tools read as octal"
                )));
            }
            if part.len() > 3 || part.parse::<u16>().is_ok_and(|n| n > 255) {
                return Err(not_v4(format!("each number must be 0..=255, got {part}")));
            }
        }
    }
    if s.chars().any(|c| c.is_ascii_alphabetic()) && !s.contains(':') {
        return Err(ValueError::new(format!(
            "{s:?} is not an IP address (host names are not resolved); {IP_EXAMPLE}"
        )));
    }
    Err(ValueError::new(format!(
        "{s:?} is not an IP address; {IP_EXAMPLE}"
    )))
}

// ---------------------------------------------------------------------------------------------
// Cidr

/// An interface address with its prefix length, `"192.0.2.100/24"` or `"2001:db8::1/64"`.
///
/// The host bits are kept: this is the address to put on an interface, not only a network.
/// The prefix length must be 0..=32 for IPv4 and 0..=128 for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cidr {
    addr: std::net::IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// An address with a prefix length; fails if the length is too long for the family.
    pub fn new(addr: std::net::IpAddr, prefix_len: u8) -> Result<Self, ValueError> {
        let max = max_prefix_len(addr);
        if prefix_len > max {
            return Err(ValueError::new(format!(
                "prefix length must be 0..={max} for an {} address, got {prefix_len}",
                family(addr)
            )));
        }
        Ok(Cidr { addr, prefix_len })
    }

    /// The address, host bits included.
    pub const fn addr(&self) -> std::net::IpAddr {
        self.addr
    }

    /// The prefix length.
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The network address: the address with the host bits cleared.
    pub fn network(&self) -> std::net::IpAddr {
        match self.addr {
            std::net::IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                std::net::IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            std::net::IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                std::net::IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        }
    }

    /// True if `addr` is in this prefix (same family, same network bits).
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        addr.is_ipv4() == self.addr.is_ipv4()
            && Cidr {
                addr,
                prefix_len: self.prefix_len,
            }
            .network()
                == self.network()
    }
}

fn max_prefix_len(addr: std::net::IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn family(addr: std::net::IpAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for Cidr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let Some((addr, len)) = s.split_once('/') else {
            let example = match s.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V6(_)) => format!("\"{s}/64\""),
                _ => format!("\"{s}/24\""),
            };
            return Err(ValueError::new(format!(
                "{s:?} needs a prefix length, e.g. {example}"
            )));
        };
        let addr = parse_ip(addr)?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::new(format!(
                "prefix length must be a number 0..={}, got {len:?}",
                max_prefix_len(addr)
            )));
        }
        let prefix_len = len.parse::<u8>().unwrap_or(u8::MAX);
        Cidr::new(addr, prefix_len).map_err(|e| {
            if len.parse::<u8>().is_err() {
                ValueError::new(format!(
                    "prefix length must be 0..={} for an {} address, got {len}",
                    max_prefix_len(addr),
                    family(addr)
                ))
            } else {
                e
            }
        })
    }
}

string_serde!(
    Cidr,
    "an address with prefix length such as \"192.0.2.100/24\""
);

// ---------------------------------------------------------------------------------------------
// SocketAddr

/// An address and port, `"192.0.2.13:80"` or `"[2001:db8::13]:80"`; the port is 0..=65535.
///
/// An IPv6 address needs brackets: `"2001:db8::13:80"` is rejected with a hint, since it is
/// also a valid IPv6 address without port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketAddr(std::net::SocketAddr);

impl SocketAddr {
    /// The `std::net::SocketAddr`.
    pub const fn get(&self) -> std::net::SocketAddr {
        self.0
    }

    /// The address.
    pub const fn ip(&self) -> std::net::IpAddr {
        self.0.ip()
    }

    /// The port.
    pub const fn port(&self) -> u16 {
        self.0.port()
    }
}

impl From<std::net::SocketAddr> for SocketAddr {
    fn from(addr: std::net::SocketAddr) -> Self {
        SocketAddr(addr)
    }
}

impl From<SocketAddr> for std::net::SocketAddr {
    fn from(addr: SocketAddr) -> Self {
        addr.0
    }
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Without the IPv6 scope and flow info, which this type never parses.
        write!(f, "{}", self.0)
    }
}

impl FromStr for SocketAddr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        const EXAMPLE: &str = "write e.g. \"192.0.2.13:80\" or \"[2001:db8::13]:80\"";
        if s.is_empty() {
            return Err(ValueError::new(format!("empty address; {EXAMPLE}")));
        }
        if let Some(after) = s.strip_prefix('[') {
            let Some((host, rest)) = after.split_once(']') else {
                return Err(ValueError::new(format!(
                    "{s:?} lacks the closing ']'; {EXAMPLE}"
                )));
            };
            let Some(port) = rest.strip_prefix(':') else {
                return Err(ValueError::new(format!(
                    "{s:?} needs a port after the brackets, e.g. \"[{host}]:80\""
                )));
            };
            let ip = match host.parse::<Ipv6Addr>() {
                Ok(ip) => ip,
                Err(_) if host.parse::<Ipv4Addr>().is_ok() => {
                    return Err(ValueError::new(format!(
                        "brackets are only for IPv6 addresses; write \"{host}:{port}\""
                    )));
                }
                Err(_) => {
                    return Err(parse_ip(host).err().unwrap_or_else(|| {
                        ValueError::new(format!("{host:?} is not an IPv6 address"))
                    }));
                }
            };
            let port = parse_port(port)?;
            return Ok(SocketAddr(std::net::SocketAddr::new(ip.into(), port)));
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            let ip = parse_ip(s)?;
            return Err(ValueError::new(format!(
                "{s:?} needs a port, e.g. \"{ip}:80\""
            )));
        };
        if host.contains(':') {
            if host.parse::<Ipv6Addr>().is_ok() {
                return Err(ValueError::new(format!(
                    "an IPv6 address needs brackets before the port: write \"[{host}]:{port}\""
                )));
            }
            if s.parse::<Ipv6Addr>().is_ok() {
                return Err(ValueError::new(format!(
                    "{s:?} needs a port, e.g. \"[{s}]:80\""
                )));
            }
            return Err(parse_ip(s)
                .err()
                .unwrap_or_else(|| ValueError::new(EXAMPLE)));
        }
        let ip = parse_ip(host)?;
        let port = parse_port(port)?;
        Ok(SocketAddr(std::net::SocketAddr::new(ip, port)))
    }
}

fn parse_port(port: &str) -> Result<u16, ValueError> {
    if port.is_empty() {
        return Err(ValueError::new("the port number after ':' is missing"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ValueError::new(format!(
            "port must be a number 0..=65535, got {port:?}"
        )));
    }
    port.parse()
        .map_err(|_| ValueError::new(format!("port must be 0..=65535, got {port}")))
}

string_serde!(
    SocketAddr,
    "an address and port such as \"192.0.2.13:80\" or \"[2001:db8::13]:80\""
);

// ---------------------------------------------------------------------------------------------
// IfName

/// A network interface name such as `"eth0"` or `"bond0.42"`.
///
/// Follows the kernel's `dev_valid_name()` (net/core/dev.c): 1..=15 bytes (`IFNAMSIZ` - 1), not
/// `.` or `..`, no `/`, no `:` and no whitespace. The kernel rejects `:` because `eth0:1` is a
/// legacy alias *label* of an address on `eth0`, not an interface; such labels are therefore
/// rejected here too, with a hint. Stricter than the kernel, control characters are also
/// rejected. The name is not checked against the interfaces that exist.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IfName(String);

/// `IFNAMSIZ` (include/uapi/linux/if.h) counts the terminating NUL.
const IFNAMSIZ: usize = 16;

impl IfName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for IfName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for IfName {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let bad =
            |why: &str| ValueError::new(format!("{s:?} is not a valid interface name: {why}"));
        if s.is_empty() {
            return Err(ValueError::new("empty interface name; write e.g. \"eth0\""));
        }
        if s == "." || s == ".." {
            return Err(bad("\".\" and \"..\" are reserved"));
        }
        if s.contains('/') {
            return Err(bad("'/' is not allowed"));
        }
        if let Some((device, _)) = s.split_once(':') {
            if device.is_empty() {
                return Err(bad("':' is not allowed"));
            }
            return Err(bad(&format!(
                "':' is not allowed; {s:?} looks like an alias label, use the interface {device:?}"
            )));
        }
        if s.chars().any(char::is_whitespace) {
            return Err(bad("whitespace is not allowed"));
        }
        if s.chars().any(char::is_control) {
            return Err(bad("control characters are not allowed"));
        }
        if s.len() >= IFNAMSIZ {
            return Err(bad(&format!(
                "it is {} bytes long, at most {} are allowed",
                s.len(),
                IFNAMSIZ - 1
            )));
        }
        Ok(IfName(s.to_owned()))
    }
}

string_serde!(IfName, "an interface name such as \"eth0\"");

#[cfg(test)]
mod tests {
    use super::*;

    fn err<T: FromStr<Err = ValueError> + fmt::Debug>(s: &str) -> String {
        match s.parse::<T>() {
            Ok(v) => panic!("{s:?} parsed as {v:?}, expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn round_trip<T: FromStr<Err = ValueError> + fmt::Display + fmt::Debug + PartialEq>(
        s: &str,
        canonical: &str,
    ) {
        let v: T = s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(v.to_string(), canonical, "display of {s:?}");
        assert_eq!(
            canonical.parse::<T>().as_ref(),
            Ok(&v),
            "reparse of {canonical:?}"
        );
    }

    #[test]
    fn duration_good() {
        let ms = |n| Duration::from_std(std::time::Duration::from_millis(n));
        for (s, want, canonical) in [
            ("20ms", ms(20), "20ms"),
            ("2s", ms(2000), "2s"),
            ("1m", ms(60_000), "1m"),
            ("1h", ms(3_600_000), "1h"),
            ("1m30s", ms(90_000), "1m30s"),
            ("90s", ms(90_000), "1m30s"),
            ("1.5s", ms(1500), "1s500ms"),
            (
                "0.25ms",
                Duration::from_std(std::time::Duration::from_micros(250)),
                "250us",
            ),
            (
                "250µs",
                Duration::from_std(std::time::Duration::from_micros(250)),
                "250us",
            ),
            (
                "7ns",
                Duration::from_std(std::time::Duration::from_nanos(7)),
                "7ns",
            ),
            ("0s", ms(0), "0s"),
            ("0ms", ms(0), "0s"),
            ("1.000s", ms(1000), "1s"),
            (
                "1h2m3s4ms5us6ns",
                Duration::from_std(std::time::Duration::new(3723, 4_005_006)),
                "1h2m3s4ms5us6ns",
            ),
        ] {
            assert_eq!(s.parse::<Duration>(), Ok(want), "{s:?}");
            round_trip::<Duration>(s, canonical);
        }
        let max = Duration::from_std(std::time::Duration::MAX);
        round_trip::<Duration>(&max.to_string(), &max.to_string());
    }

    #[test]
    fn duration_bad() {
        for (s, want) in [
            (
                "",
                "empty duration; write e.g. \"2s\", \"500ms\" or \"1m30s\"",
            ),
            (
                "2",
                "durations need a unit: write \"2s\" or \"2ms\", not \"2\"",
            ),
            (
                "1.5",
                "durations need a unit: write \"1.5s\" or \"1.5ms\", not \"1.5\"",
            ),
            ("-1s", "durations cannot be negative, got \"-1s\""),
            (
                "2 s",
                "unexpected space in duration \"2 s\"; write it without spaces, e.g. \"1m30s\"",
            ),
            (
                "2sec",
                "unknown unit \"sec\" in duration \"2sec\"; use h, m, s, ms, us or ns",
            ),
            (
                "2d",
                "unknown unit \"d\" in duration \"2d\"; use h, m, s, ms, us or ns",
            ),
            (
                "s",
                "\"s\" is not a duration; write e.g. \"2s\", \"500ms\" or \"1m30s\"",
            ),
            (
                ".5s",
                "\".5s\" is not a duration; write e.g. \"2s\", \"500ms\" or \"1m30s\"",
            ),
            (
                "1.s",
                "\"1.s\" is not a duration; write e.g. \"2s\", \"500ms\" or \"1m30s\"",
            ),
            (
                "1s2",
                "\"1s2\" is not a duration; write e.g. \"2s\", \"500ms\" or \"1m30s\"",
            ),
            (
                "1s+2s",
                "\"1s+2s\" is not a duration; write e.g. \"2s\", \"500ms\" or \"1m30s\"",
            ),
            (
                "30s1m",
                "in duration \"30s1m\", write each unit once, from the largest to the smallest, e.g. \"1m30s\"",
            ),
            (
                "1s1s",
                "in duration \"1s1s\", write each unit once, from the largest to the smallest, e.g. \"1m30s\"",
            ),
            (
                "1us1µs",
                "in duration \"1us1µs\", write each unit once, from the largest to the smallest, e.g. \"1m30s\"",
            ),
            (
                "1.5ns",
                "duration \"1.5ns\" is more precise than a nanosecond",
            ),
            (
                "99999999999999999999h",
                "duration \"99999999999999999999h\" is too large (at most 18446744073709551615 seconds)",
            ),
            (
                "18446744073709551616s",
                "duration \"18446744073709551616s\" is too large (at most 18446744073709551615 seconds)",
            ),
            (
                "9999999999999999999999999999999999999999s",
                "duration \"9999999999999999999999999999999999999999s\" is too large (at most 18446744073709551615 seconds)",
            ),
        ] {
            assert_eq!(err::<Duration>(s), want, "{s:?}");
        }
    }

    #[test]
    fn duration_round_trips_for_many_values() {
        // A fixed xorshift sequence: deterministic, no extra dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = x >> (x % 64);
            let d = Duration::from_std(std::time::Duration::new(secs, (x % 1_000_000_000) as u32));
            assert_eq!(d.to_string().parse::<Duration>(), Ok(d), "{d}");
        }
    }

    #[test]
    fn ip_good_and_bad() {
        round_trip::<IpAddr>("192.0.2.1", "192.0.2.1");
        round_trip::<IpAddr>("2001:db8::1", "2001:db8::1");
        round_trip::<IpAddr>("2001:DB8:0::1", "2001:db8::1");
        for (s, want) in [
            (
                "",
                "empty address; write e.g. \"192.0.2.1\" or \"2001:db8::1\"",
            ),
            (
                "192.0.2.300",
                "\"192.0.2.300\" is not an IPv4 address: each number must be 0..=255, got 300",
            ),
            (
                "192.0.2",
                "\"192.0.2\" is not an IPv4 address: it needs 4 numbers separated by dots, got 3",
            ),
            (
                "192.0..2",
                "\"192.0..2\" is not an IPv4 address: a number between two dots is missing",
            ),
            (
                "192.0.2.01",
                "\"192.0.2.01\" is not an IPv4 address: \"01\" has a leading zero, which some tools read as octal",
            ),
            (
                "192.0.2.1/24",
                "\"192.0.2.1/24\" has a prefix length; write the address alone, e.g. \"192.0.2.1\"",
            ),
            (
                "192.0.2.1:80",
                "\"192.0.2.1:80\" has a port; write the address alone, e.g. \"192.0.2.1\"",
            ),
            (
                "[2001:db8::1]",
                "write an IPv6 address without brackets here: \"2001:db8::1\"",
            ),
            (
                "2001:db8::g",
                "\"2001:db8::g\" is not a valid IPv6 address; write e.g. \"2001:db8::1\"",
            ),
            (
                "www.example.com",
                "\"www.example.com\" is not an IP address (host names are not resolved); write e.g. \"192.0.2.1\" or \"2001:db8::1\"",
            ),
            (
                "1.2.3.4 ",
                "\"1.2.3.4 \" is not an IP address; write e.g. \"192.0.2.1\" or \"2001:db8::1\"",
            ),
        ] {
            assert_eq!(err::<IpAddr>(s), want, "{s:?}");
        }
    }

    #[test]
    fn cidr_good_and_bad() {
        round_trip::<Cidr>("192.0.2.100/24", "192.0.2.100/24");
        round_trip::<Cidr>("2001:db8::1/64", "2001:db8::1/64");
        round_trip::<Cidr>("0.0.0.0/0", "0.0.0.0/0");
        round_trip::<Cidr>("::/128", "::/128");
        let c: Cidr = "192.0.2.100/24".parse().unwrap();
        assert_eq!(c.addr().to_string(), "192.0.2.100");
        assert_eq!(c.prefix_len(), 24);
        assert_eq!(c.network().to_string(), "192.0.2.0");
        assert!(c.contains("192.0.2.7".parse().unwrap()));
        assert!(!c.contains("192.0.3.7".parse().unwrap()));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        let c: Cidr = "2001:db8::1:2/112".parse().unwrap();
        assert_eq!(c.network().to_string(), "2001:db8::1:0");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        for (s, want) in [
            (
                "192.0.2.100",
                "\"192.0.2.100\" needs a prefix length, e.g. \"192.0.2.100/24\"",
            ),
            (
                "2001:db8::1",
                "\"2001:db8::1\" needs a prefix length, e.g. \"2001:db8::1/64\"",
            ),
            (
                "192.0.2.100/33",
                "prefix length must be 0..=32 for an IPv4 address, got 33",
            ),
            (
                "2001:db8::1/129",
                "prefix length must be 0..=128 for an IPv6 address, got 129",
            ),
            (
                "192.0.2.100/999",
                "prefix length must be 0..=32 for an IPv4 address, got 999",
            ),
            (
                "192.0.2.100/",
                "prefix length must be a number 0..=32, got \"\"",
            ),
            (
                "192.0.2.100/-1",
                "prefix length must be a number 0..=32, got \"-1\"",
            ),
            (
                "192.0.2.100/24/8",
                "prefix length must be a number 0..=32, got \"24/8\"",
            ),
            (
                "192.0.2.300/24",
                "\"192.0.2.300\" is not an IPv4 address: each number must be 0..=255, got 300",
            ),
        ] {
            assert_eq!(err::<Cidr>(s), want, "{s:?}");
        }
        assert_eq!(
            Cidr::new("192.0.2.1".parse().unwrap(), 40)
                .unwrap_err()
                .message(),
            "prefix length must be 0..=32 for an IPv4 address, got 40"
        );
    }

    #[test]
    fn socket_addr_good_and_bad() {
        round_trip::<SocketAddr>("192.0.2.13:80", "192.0.2.13:80");
        round_trip::<SocketAddr>("[2001:db8::13]:80", "[2001:db8::13]:80");
        round_trip::<SocketAddr>("0.0.0.0:0", "0.0.0.0:0");
        round_trip::<SocketAddr>("[::]:65535", "[::]:65535");
        let a: SocketAddr = "[2001:db8::13]:443".parse().unwrap();
        assert_eq!(
            (a.ip().to_string(), a.port()),
            ("2001:db8::13".to_owned(), 443)
        );
        for (s, want) in [
            (
                "",
                "empty address; write e.g. \"192.0.2.13:80\" or \"[2001:db8::13]:80\"",
            ),
            (
                "2001:db8::13:80",
                "an IPv6 address needs brackets before the port: write \"[2001:db8::13]:80\"",
            ),
            (
                "2001:db8::",
                "\"2001:db8::\" needs a port, e.g. \"[2001:db8::]:80\"",
            ),
            (
                "192.0.2.13",
                "\"192.0.2.13\" needs a port, e.g. \"192.0.2.13:80\"",
            ),
            ("192.0.2.13:", "the port number after ':' is missing"),
            (
                "192.0.2.13:http",
                "port must be a number 0..=65535, got \"http\"",
            ),
            ("192.0.2.13:65536", "port must be 0..=65535, got 65536"),
            (
                "192.0.2.13:-1",
                "port must be a number 0..=65535, got \"-1\"",
            ),
            (
                "192.0.2.300:80",
                "\"192.0.2.300\" is not an IPv4 address: each number must be 0..=255, got 300",
            ),
            (
                "[2001:db8::13]",
                "\"[2001:db8::13]\" needs a port after the brackets, e.g. \"[2001:db8::13]:80\"",
            ),
            (
                "[2001:db8::13:80",
                "\"[2001:db8::13:80\" lacks the closing ']'; write e.g. \"192.0.2.13:80\" or \"[2001:db8::13]:80\"",
            ),
            (
                "[192.0.2.13]:80",
                "brackets are only for IPv6 addresses; write \"192.0.2.13:80\"",
            ),
            (
                "[2001:db8::zz]:80",
                "\"2001:db8::zz\" is not a valid IPv6 address; write e.g. \"2001:db8::1\"",
            ),
            (
                "host:80",
                "\"host\" is not an IP address (host names are not resolved); write e.g. \"192.0.2.1\" or \"2001:db8::1\"",
            ),
        ] {
            assert_eq!(err::<SocketAddr>(s), want, "{s:?}");
        }
    }

    #[test]
    fn ifname_good_and_bad() {
        for s in [
            "eth0",
            "bond0.42",
            "a",
            "exactly15bytes_",
            "veth-lb1",
            "wlp0s20f3",
        ] {
            round_trip::<IfName>(s, s);
        }
        for (s, want) in [
            ("", "empty interface name; write e.g. \"eth0\""),
            (
                ".",
                "\".\" is not a valid interface name: \".\" and \"..\" are reserved",
            ),
            (
                "..",
                "\"..\" is not a valid interface name: \".\" and \"..\" are reserved",
            ),
            (
                "eth/0",
                "\"eth/0\" is not a valid interface name: '/' is not allowed",
            ),
            (
                "eth0:1",
                "\"eth0:1\" is not a valid interface name: ':' is not allowed; \"eth0:1\" looks like an alias label, use the interface \"eth0\"",
            ),
            (
                ":1",
                "\":1\" is not a valid interface name: ':' is not allowed",
            ),
            (
                "eth 0",
                "\"eth 0\" is not a valid interface name: whitespace is not allowed",
            ),
            (
                "eth0\u{1}",
                "\"eth0\\u{1}\" is not a valid interface name: control characters are not allowed",
            ),
            (
                "sixteen_bytes_xx",
                "\"sixteen_bytes_xx\" is not a valid interface name: it is 16 bytes long, at most 15 are allowed",
            ),
            (
                "ééééééé_é",
                "\"ééééééé_é\" is not a valid interface name: it is 17 bytes long, at most 15 are allowed",
            ),
        ] {
            assert_eq!(err::<IfName>(s), want, "{s:?}");
        }
    }

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct All {
        d: toml::Spanned<Duration>,
        ip: IpAddr,
        cidr: Cidr,
        sa: SocketAddr,
        ifname: IfName,
    }

    #[test]
    fn serde_from_toml_strings_and_back() {
        let text = "d = \"1.5s\"\nip = \"2001:db8::1\"\ncidr = \"192.0.2.100/24\"\n\
                    sa = \"[2001:db8::13]:80\"\nifname = \"eth0\"\n";
        let all: All = toml::from_str(text).unwrap();
        assert_eq!(all.d.span(), 4..10);
        assert_eq!(
            all.d.get_ref().as_std(),
            std::time::Duration::from_millis(1500)
        );
        let out = toml::to_string(&all).unwrap();
        assert_eq!(
            out,
            "d = \"1s500ms\"\nip = \"2001:db8::1\"\ncidr = \"192.0.2.100/24\"\n\
             sa = \"[2001:db8::13]:80\"\nifname = \"eth0\"\n"
        );
    }

    #[test]
    fn duration_from_toml_numbers_needs_a_unit() {
        #[derive(Debug, Deserialize)]
        struct D {
            #[allow(dead_code)]
            d: Duration,
        }
        let msg = |text: &str| toml::from_str::<D>(text).unwrap_err().message().to_owned();
        assert_eq!(
            msg("d = 2"),
            "durations need a unit: write \"2s\" or \"2ms\", not 2"
        );
        assert_eq!(
            msg("d = 2.5"),
            "durations need a unit: write \"2.5s\" or \"2.5ms\", not 2.5"
        );
        assert_eq!(msg("d = -3"), "durations cannot be negative, got -3");
        assert_eq!(
            msg("d = true"),
            "invalid type: boolean `true`, expected a duration such as \"2s\" or \"500ms\""
        );
    }
}
