//! `dns`: a query (name and type) sent over UDP to the target gets NOERROR with at least one
//! answer (ldirectord's `service = dns`, keepalived's `DNS_CHECK`). Messages are built and parsed
//! with `hickory-proto`; recursion is requested, so a resolver and an authoritative server both work.
//!
//! ICMP port unreachable is reported as such. Not here: DNS over TCP, truncated-answer retries,
//! checking the answer's content.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use serde::{Deserialize, Serialize};

use super::Down;

/// A DNS check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// The name to look up (ldirectord's `request`).
    pub name: String,
    /// The record type, `A` by default: `A`, `AAAA`, `SOA`, `NS`, `MX`, `TXT`, `PTR`, `CNAME`, ...
    #[serde(rename = "type", default = "default_type")]
    pub qtype: String,
}

fn default_type() -> String {
    "A".to_string()
}

impl Dns {
    fn parsed(&self) -> Result<(Name, RecordType), Down> {
        let name = Name::from_ascii(&self.name)
            .map_err(|e| Down(format!("bad name {:?}: {e}", self.name)))?;
        let qtype = match RecordType::from_str(&self.qtype.to_ascii_uppercase()) {
            Ok(RecordType::Unknown(_)) | Err(_) => {
                return Err(Down(format!(
                    "unknown record type {:?} (e.g. A, AAAA, SOA, MX)",
                    self.qtype
                )));
            }
            Ok(t) => t,
        };
        Ok((name, qtype))
    }

    pub(super) fn problems(&self, out: &mut Vec<(&'static str, String)>) {
        if let Err(Down(m)) = self.parsed() {
            out.push((
                if m.starts_with("bad name") {
                    "name"
                } else {
                    "type"
                },
                m,
            ));
        }
    }
}

pub(super) async fn check(
    d: &Dns,
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> Result<String, Down> {
    let (name, qtype) = d.parsed()?;
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(name, qtype));
    let id = msg.metadata.id;
    let bytes = msg
        .to_vec()
        .map_err(|e| Down(format!("cannot encode query: {e}")))?;

    let socket = super::udp::socket(addr, source).await?;
    super::udp::exchange(&socket, &bytes, 4096, |datagram| {
        // A datagram that is no answer to this query (a stray, or unparsable) is passed over.
        let reply = Message::from_vec(datagram)
            .ok()
            .filter(|r| r.metadata.id == id)?;
        let rcode = reply.metadata.response_code;
        if rcode != ResponseCode::NoError {
            return Some(Err(Down(format!("answer {rcode}"))));
        }
        Some(match reply.answers.len() {
            0 => Err(Down("NOERROR but no answer".into())),
            1 => Ok("NOERROR, 1 answer".into()),
            n => Ok(format!("NOERROR, {n} answers")),
        })
    })
    .await
}
