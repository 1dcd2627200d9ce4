//! One service's result from its hosts' probe results, in the form mon's monitors give it: the
//! service is up when every host is; the summary is the failing hosts, space-separated (mon's
//! monitors print them on their first line, and alert scripts put that line in their subject); the
//! detail is one `HOST: reason` line per failing host.

use std::net::IpAddr;

/// A service's result, as the rules engine and the alerts take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceResult {
    pub ok: bool,
    pub summary: String,
    pub detail: String,
    /// mon's `MON_RETVAL`: 0 when up, 1 when a host failed.
    pub retval: i32,
}

/// The result of a service over its hosts' latest results (`Err` holds why a host is down), in
/// the hosts' order; `None` while a host has no result yet (the service is untested until every
/// host was probed once).
pub fn aggregate(results: &[(IpAddr, Option<Result<(), String>>)]) -> Option<ServiceResult> {
    let mut failing = Vec::new();
    let mut detail = String::new();
    for (host, r) in results {
        match r.as_ref()? {
            Ok(()) => {}
            Err(why) => {
                failing.push(host.to_string());
                detail.push_str(&format!("{host}: {}\n", why.replace('\n', " ")));
            }
        }
    }
    let ok = failing.is_empty();
    Some(ServiceResult {
        ok,
        summary: failing.join(" "),
        detail,
        retval: if ok { 0 } else { 1 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn up_when_every_host_is_and_the_summary_names_the_failing_hosts() {
        let (a, b, c) = (ip("192.0.2.13"), ip("192.0.2.14"), ip("2001:db8::15"));
        assert_eq!(
            aggregate(&[(a, Some(Ok(()))), (b, Some(Ok(())))]),
            Some(ServiceResult {
                ok: true,
                summary: String::new(),
                detail: String::new(),
                retval: 0
            })
        );
        assert_eq!(
            aggregate(&[
                (a, Some(Err("connection refused".into()))),
                (b, Some(Ok(()))),
                (c, Some(Err("timeout after 5s\nsecond line".into()))),
            ]),
            Some(ServiceResult {
                ok: false,
                summary: "192.0.2.13 2001:db8::15".into(),
                detail:
                    "192.0.2.13: connection refused\n2001:db8::15: timeout after 5s second line\n"
                        .into(),
                retval: 1
            })
        );
    }

    #[test]
    fn untested_until_every_host_has_a_result() {
        let (a, b) = (ip("192.0.2.13"), ip("192.0.2.14"));
        assert_eq!(aggregate(&[(a, Some(Err("x".into()))), (b, None)]), None);
        assert_eq!(aggregate(&[]).map(|r| r.ok), Some(true));
    }
}
