//! `common::ipvs` against the kernel the tests run on (no privileges needed): resolving the generic
//! netlink family either works, and then IPVS is loaded, or fails with the documented words. On the
//! development and CI hosts, which have no ip_vs module, this exercises the "not available" path for
//! real; the lab VM (`tests/lab test ipvs-lab`) covers the other.

use std::path::Path;

use common::ipvs::{IpvsError, NetlinkIpvs};

#[test]
fn family_resolution_reports_a_missing_ip_vs_module_in_words() {
    match NetlinkIpvs::connect() {
        Err(e @ IpvsError::Unavailable) => {
            assert_eq!(
                e.to_string(),
                "IPVS is not available in this kernel: load the ip_vs module (modprobe ip_vs)"
            );
            assert!(
                !Path::new("/proc/net/ip_vs").exists(),
                "nlctrl has no IPVS family but /proc/net/ip_vs exists"
            );
        }
        Ok(ipvs) => {
            assert!(
                ipvs.family_id() >= 16,
                "generic netlink ids start at GENL_MIN_ID (16)"
            );
            assert!(
                Path::new("/proc/net/ip_vs").exists(),
                "IPVS resolved but /proc/net/ip_vs is missing"
            );
        }
        Err(e) => panic!("resolving the IPVS family failed otherwise: {e}"),
    }
}
