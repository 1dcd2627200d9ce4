//! The heartbeat wire format: [`Message`] ⇄ one authenticated, versioned binary frame that fits one
//! UDP datagram (and a serial line, a disk slot). Pure: no sockets, no clock, no global state.
//!
//! Layout (integers big-endian; offsets in bytes):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 2 | magic `"hB"` (0x68 0x42) |
//! | 2 | 1 | version ([`VERSION`]) |
//! | 3 | 1 | key id (1..=255, see [`crate::keys`]) |
//! | 4 | 2 | frame length, tag included |
//! | 6 | 1 | kind (1 alive, 2 leave, 3 standby request, 4 standby ack, 5 takeover request, 6 takeover ack, 7 resource state) |
//! | 7 | 1 | sender state (`N`, `T`, `R`, `D` in ASCII) |
//! | 8 | 1 | link id |
//! | 9 | 8 | incarnation |
//! | 17 | 8 | sequence |
//! | 25 | 8 | group definitions hash |
//! | 33 | 1+n | cluster: length n (1..=64), UTF-8 without control characters |
//! | … | 1+n | sender: same rules |
//! | … | 1 | number of held groups (0..=64), then each: length n (1..=64) and the name |
//! | … | 1+n | to: the node a request or ack is for; length 0 for everyone, else as sender |
//! | … | 1 | number of groups the request or ack is about (0..=64), then each as held |
//! | … | 1 | ping targets the sender reaches now (at most the next byte) |
//! | … | 1 | ping targets the sender has configured |
//! | … | 1 | number of groups the sender could not serve now (0..=64), then each as held |
//! | len−32 | 32 | HMAC-SHA256 over every byte before it, keyed with the key named at offset 3 |
//!
//! [`decode`] checks, in this order, and stops at the first failure: size and header (nothing
//! allocated, nothing hashed), then the HMAC (compared in constant time), then the fields, then the
//! cluster. Every field is parsed only after the HMAC proved the frame came from a key holder, and
//! every allocation is sized by bytes present in the frame (≤ [`MAX_FRAME`]), never by a length
//! read from it alone. The encoding is canonical: a decoded frame re-encodes to the same bytes.
//!
//! Replays are not the codec's business (it has no memory): [`ReplayGuard`] keeps the newest
//! `(incarnation, seq)` per sender and per link. The state machine acts on [`Freshness::Fresh`]
//! messages only; [`Freshness::Duplicate`] (the same message arriving on a second link, or a slower
//! link's copy of an older one) still proves that link alive; [`Freshness::Replay`] is rejected.

use hmac::Mac;

use crate::keys::{Key, KeyRing};
use crate::msg::{Health, Kind, Message, NodeState};

/// The first two bytes of every frame.
pub const MAGIC: [u8; 2] = *b"hB";
/// The frame version this code writes and reads.
pub const VERSION: u8 = 2;
/// The whole frame's largest size: fits one UDP datagram on a 1500-byte MTU path (IPv6 40 + UDP
/// 8 headers leave 1452; the rest is headroom for tunnels and VLAN/PPPoE overheads).
pub const MAX_FRAME: usize = 1400;
/// The longest cluster, node or group name in bytes.
pub const MAX_NAME: usize = 64;
/// The most groups one frame may list as held.
pub const MAX_HELD: usize = 64;
/// The HMAC-SHA256 tag's length.
pub const TAG_LEN: usize = 32;
/// The header before the fields: magic, version, key id, length.
pub const HEADER_LEN: usize = 6;
/// The fixed-size fields after the header: kind, state, link, incarnation, seq, groups hash.
const FIXED_LEN: usize = 3 + 3 * 8;
/// The shortest structurally possible frame: header, fixed fields, five length bytes, the two
/// ping counts and the unready count, tag.
pub const MIN_FRAME: usize = HEADER_LEN + FIXED_LEN + 5 + 3 + TAG_LEN;

/// A field that a frame got wrong (inside a [`Reject::Malformed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The length in the header is below the minimum, or the datagram is longer than it says.
    Length,
    Kind,
    State,
    Cluster,
    Sender,
    /// The held group list: too many entries, or a bad name.
    Held,
    /// The addressee of a request or ack.
    To,
    /// The group list of a request or ack: too many entries, or a bad name.
    Groups,
    /// The ping counts: more targets reached than configured.
    Ping,
    /// The unready group list: too many entries, or a bad name.
    Unready,
    /// Bytes left between the last field and the tag.
    Trailing,
}

impl Field {
    /// The field's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Length => "length",
            Field::Kind => "kind",
            Field::State => "state",
            Field::Cluster => "cluster",
            Field::Sender => "sender",
            Field::Held => "held groups",
            Field::To => "to",
            Field::Groups => "request groups",
            Field::Ping => "ping",
            Field::Unready => "unready groups",
            Field::Trailing => "trailing",
        }
    }
}

/// Why a frame was dropped. Never acted on; counted by [`Reject::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    #[error("truncated frame")]
    Truncated,
    #[error("frame larger than {MAX_FRAME} bytes")]
    Oversized,
    #[error("not an hbeat frame (bad magic)")]
    BadMagic,
    #[error("unsupported frame version {0} (this hbeat speaks {VERSION})")]
    BadVersion(u8),
    #[error("unknown key id {0}")]
    UnknownKey(u8),
    #[error("bad HMAC")]
    BadMac,
    #[error("malformed {} field", .0.as_str())]
    Malformed(Field),
    #[error("frame of another cluster")]
    OtherCluster,
    /// From [`ReplayGuard`]: an older incarnation, or a sequence already seen on that link.
    #[error("replayed frame")]
    Replay,
    /// From the daemon: authenticated, but its sender is not one of this node's peers (or is this
    /// node's own frame of this incarnation, looped back).
    #[error("frame from a node that is not a peer")]
    UnknownSender,
    /// From the daemon: authenticated, its sender is this node's name, but not this process (another
    /// incarnation): a second node configured with my name, or my old frames played back.
    #[error("frame from another node using my name")]
    SameName,
}

impl Reject {
    /// Every reason's counter name, in [`Reject::index`] order.
    pub const NAMES: [&'static str; 11] = [
        "truncated",
        "oversized",
        "bad_magic",
        "bad_version",
        "unknown_key",
        "bad_mac",
        "malformed",
        "other_cluster",
        "replay",
        "unknown_sender",
        "same_name",
    ];

    /// A stable short name for counters, status output and logs.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// The reason's position in [`Reject::NAMES`] and [`Counters`].
    pub fn index(self) -> usize {
        match self {
            Reject::Truncated => 0,
            Reject::Oversized => 1,
            Reject::BadMagic => 2,
            Reject::BadVersion(_) => 3,
            Reject::UnknownKey(_) => 4,
            Reject::BadMac => 5,
            Reject::Malformed(_) => 6,
            Reject::OtherCluster => 7,
            Reject::Replay => 8,
            Reject::UnknownSender => 9,
            Reject::SameName => 10,
        }
    }
}

/// Rejected frames by reason (for `hbeat status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    counts: [u64; Reject::NAMES.len()],
}

impl Counters {
    /// Counts one rejected frame.
    pub fn add(&mut self, reason: Reject) {
        let c = &mut self.counts[reason.index()];
        *c = c.saturating_add(1);
    }

    /// Frames rejected for this reason (any payload: every `BadVersion(_)` counts together).
    pub fn get(&self, reason: Reject) -> u64 {
        self.counts[reason.index()]
    }

    /// Every reason's name and count, in a fixed order, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        Reject::NAMES
            .iter()
            .copied()
            .zip(self.counts.iter().copied())
    }

    /// All rejected frames.
    pub fn total(&self) -> u64 {
        self.counts.iter().fold(0, |a, &c| a.saturating_add(c))
    }
}

/// Why a message cannot be encoded (a bug or a config the checks should have refused).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{} name must be 1..={MAX_NAME} bytes without control characters: {name:?}", field.as_str())]
    BadName { field: Field, name: String },
    #[error("{0} held groups; a frame carries at most {MAX_HELD}")]
    TooManyHeld(usize),
    #[error("ping targets reached ({reached}) above those configured ({total})")]
    Ping { reached: u8, total: u8 },
    #[error("the frame would be {0} bytes; at most {MAX_FRAME}")]
    Oversized(usize),
}

fn kind_code(k: Kind) -> u8 {
    match k {
        Kind::Alive => 1,
        Kind::Leave => 2,
        Kind::StandbyRequest => 3,
        Kind::StandbyAck => 4,
        Kind::TakeoverRequest => 5,
        Kind::TakeoverAck => 6,
        Kind::ResourceState => 7,
    }
}

fn kind_from(b: u8) -> Option<Kind> {
    Some(match b {
        1 => Kind::Alive,
        2 => Kind::Leave,
        3 => Kind::StandbyRequest,
        4 => Kind::StandbyAck,
        5 => Kind::TakeoverRequest,
        6 => Kind::TakeoverAck,
        7 => Kind::ResourceState,
        _ => return None,
    })
}

fn state_from(b: u8) -> Option<NodeState> {
    Some(match b {
        b'N' => NodeState::Normal,
        b'T' => NodeState::Takeover,
        b'R' => NodeState::Recover,
        b'D' => NodeState::Down,
        _ => return None,
    })
}

/// A name as the wire allows it: 1..=64 bytes, no control characters (names end up in logs).
fn name_ok(s: &str) -> bool {
    (1..=MAX_NAME).contains(&s.len()) && !s.chars().any(char::is_control)
}

/// Encodes `msg` signed with the ring's sending key (the first listed).
pub fn encode(msg: &Message, keys: &KeyRing) -> Result<Vec<u8>, EncodeError> {
    encode_with(msg, keys.sending())
}

/// Encodes `msg` signed with `key`.
pub fn encode_with(msg: &Message, key: &Key) -> Result<Vec<u8>, EncodeError> {
    let bad = |field, name: &str| EncodeError::BadName {
        field,
        name: name.to_string(),
    };
    if !name_ok(&msg.cluster) {
        return Err(bad(Field::Cluster, &msg.cluster));
    }
    if !name_ok(&msg.sender) {
        return Err(bad(Field::Sender, &msg.sender));
    }
    let h = &msg.health;
    if h.ping_reached > h.ping_total {
        return Err(EncodeError::Ping {
            reached: h.ping_reached,
            total: h.ping_total,
        });
    }
    for list in [&msg.held, &msg.groups, &h.unready] {
        if list.len() > MAX_HELD {
            return Err(EncodeError::TooManyHeld(list.len()));
        }
    }
    if let Some(g) = msg.held.iter().find(|g| !name_ok(g)) {
        return Err(bad(Field::Held, g));
    }
    if let Some(g) = msg.groups.iter().find(|g| !name_ok(g)) {
        return Err(bad(Field::Groups, g));
    }
    if let Some(g) = h.unready.iter().find(|g| !name_ok(g)) {
        return Err(bad(Field::Unready, g));
    }
    if let Some(to) = msg.to.as_deref().filter(|t| !name_ok(t)) {
        return Err(bad(Field::To, to));
    }
    let len = MIN_FRAME
        + msg.cluster.len()
        + msg.sender.len()
        + msg.held.iter().map(|g| 1 + g.len()).sum::<usize>()
        + msg.to.as_ref().map_or(0, String::len)
        + msg.groups.iter().map(|g| 1 + g.len()).sum::<usize>()
        + h.unready.iter().map(|g| 1 + g.len()).sum::<usize>();
    if len > MAX_FRAME {
        return Err(EncodeError::Oversized(len));
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(key.id());
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(kind_code(msg.kind));
    out.push(msg.state.letter() as u8);
    out.push(msg.link);
    out.extend_from_slice(&msg.incarnation.to_be_bytes());
    out.extend_from_slice(&msg.seq.to_be_bytes());
    out.extend_from_slice(&msg.groups_hash.to_be_bytes());
    for s in [&msg.cluster, &msg.sender] {
        out.push(s.len() as u8);
        out.extend_from_slice(s.as_bytes());
    }
    push_names(&mut out, &msg.held);
    let to = msg.to.as_deref().unwrap_or("");
    out.push(to.len() as u8);
    out.extend_from_slice(to.as_bytes());
    push_names(&mut out, &msg.groups);
    out.push(h.ping_reached);
    out.push(h.ping_total);
    push_names(&mut out, &h.unready);
    let mut mac = key.mac();
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    debug_assert_eq!(out.len(), len);
    Ok(out)
}

/// A count byte and each name with its length byte (the caller checked counts and names).
fn push_names(out: &mut Vec<u8>, names: &[String]) {
    out.push(names.len() as u8);
    for g in names {
        out.push(g.len() as u8);
        out.extend_from_slice(g.as_bytes());
    }
}

/// Decodes and authenticates one frame of `cluster`, signed with any key of `keys`. Never panics;
/// see the module doc for the order of checks.
pub fn decode(bytes: &[u8], keys: &KeyRing, cluster: &str) -> Result<Message, Reject> {
    if bytes.len() > MAX_FRAME {
        return Err(Reject::Oversized);
    }
    if bytes.len() < HEADER_LEN {
        // Say "not ours" rather than "truncated" when even the bytes present are not our magic.
        return Err(if MAGIC.starts_with(&bytes[..bytes.len().min(2)]) {
            Reject::Truncated
        } else {
            Reject::BadMagic
        });
    }
    if bytes[..2] != MAGIC {
        return Err(Reject::BadMagic);
    }
    if bytes[2] != VERSION {
        return Err(Reject::BadVersion(bytes[2]));
    }
    let declared = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    if declared > MAX_FRAME {
        return Err(Reject::Oversized);
    }
    if declared < MIN_FRAME || bytes.len() > declared {
        return Err(Reject::Malformed(Field::Length));
    }
    if bytes.len() < declared {
        return Err(Reject::Truncated);
    }
    let key = keys.get(bytes[3]).ok_or(Reject::UnknownKey(bytes[3]))?;
    let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    let mut mac = key.mac();
    mac.update(signed);
    mac.verify_slice(tag).map_err(|_| Reject::BadMac)?;
    let msg = parse_fields(&signed[HEADER_LEN..])?;
    if msg.cluster != cluster {
        return Err(Reject::OtherCluster);
    }
    Ok(msg)
}

/// A cursor over the authenticated fields; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: Field) -> Result<&'a [u8], Reject> {
        if n > self.0.len() {
            return Err(Reject::Malformed(field));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, field: Field) -> Result<u8, Reject> {
        Ok(self.take(1, field)?[0])
    }

    fn u64(&mut self) -> u64 {
        // Only called within the fixed part, whose presence MIN_FRAME guarantees.
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[..8]);
        self.0 = &self.0[8..];
        u64::from_be_bytes(b)
    }

    fn name(&mut self, field: Field) -> Result<String, Reject> {
        let n = usize::from(self.u8(field)?);
        let raw = self.take(n, field)?;
        let s = std::str::from_utf8(raw).map_err(|_| Reject::Malformed(field))?;
        if !name_ok(s) {
            return Err(Reject::Malformed(field));
        }
        Ok(s.to_string())
    }

    /// A count byte and that many names.
    fn names(&mut self, field: Field) -> Result<Vec<String>, Reject> {
        let count = usize::from(self.u8(field)?);
        // Each entry takes at least two bytes, so `count` is bounded by what the frame holds too.
        if count > MAX_HELD || count * 2 > self.0.len() {
            return Err(Reject::Malformed(field));
        }
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            out.push(self.name(field)?);
        }
        Ok(out)
    }
}

fn parse_fields(body: &[u8]) -> Result<Message, Reject> {
    let mut r = Reader(body);
    let kind = kind_from(r.u8(Field::Kind)?).ok_or(Reject::Malformed(Field::Kind))?;
    let state = state_from(r.u8(Field::State)?).ok_or(Reject::Malformed(Field::State))?;
    let link = r.u8(Field::Length)?;
    let incarnation = r.u64();
    let seq = r.u64();
    let groups_hash = r.u64();
    let cluster = r.name(Field::Cluster)?;
    let sender = r.name(Field::Sender)?;
    let held = r.names(Field::Held)?;
    let to = match r.0.first() {
        Some(0) => {
            r.u8(Field::To)?;
            None
        }
        _ => Some(r.name(Field::To)?),
    };
    let groups = r.names(Field::Groups)?;
    let ping_reached = r.u8(Field::Ping)?;
    let ping_total = r.u8(Field::Ping)?;
    if ping_reached > ping_total {
        return Err(Reject::Malformed(Field::Ping));
    }
    let unready = r.names(Field::Unready)?;
    if !r.0.is_empty() {
        return Err(Reject::Malformed(Field::Trailing));
    }
    Ok(Message {
        cluster,
        sender,
        incarnation,
        seq,
        kind,
        state,
        held,
        groups_hash,
        link,
        to,
        groups,
        health: Health {
            ping_reached,
            ping_total,
            unready,
        },
    })
}

/// What [`ReplayGuard::check`] makes of an authenticated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Newer than anything accepted from this sender: act on it (and the link is alive).
    Fresh,
    /// New on this link but not newer than what another link already delivered: the link is
    /// alive; the message was already acted on (or superseded), so do not act on it again.
    Duplicate,
    /// From an older incarnation, or not newer than what this link already delivered: reject and
    /// count as [`Reject::Replay`]; it proves nothing, not even the link.
    Replay,
}

/// Per sender: the newest `(incarnation, seq)` accepted from any link and from each link.
///
/// The sender is expected to stamp one `seq` per message and send a copy on every link (only the
/// `link` field differs), but the guard is also right when each copy has its own seq: a copy
/// that a faster link overtook is a `Duplicate`, not a `Replay`. An attacker replaying a recorded
/// frame, on the same or another link, always gets `Replay`: `link` is covered by the HMAC, and
/// that link already delivered that seq. A larger incarnation (the sender restarted) resets the
/// sender's state; a smaller one is a replay. No clock: a clock step changes nothing here.
/// Memory: one entry per sender name and link id seen in authenticated frames (≤ 256 links).
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    senders: Vec<(String, SenderSeen)>,
}

#[derive(Debug, Clone)]
struct SenderSeen {
    incarnation: u64,
    newest: u64,
    /// (link id, newest seq from it), small: one per link.
    links: Vec<(u8, u64)>,
}

impl ReplayGuard {
    /// A guard that has seen nothing.
    pub fn new() -> ReplayGuard {
        ReplayGuard::default()
    }

    /// Judges `msg` (already authenticated by [`decode`]) and remembers it unless it is a replay.
    pub fn check(&mut self, msg: &Message) -> Freshness {
        let fresh = SenderSeen {
            incarnation: msg.incarnation,
            newest: msg.seq,
            links: vec![(msg.link, msg.seq)],
        };
        let Some((_, seen)) = self.senders.iter_mut().find(|(s, _)| *s == msg.sender) else {
            self.senders.push((msg.sender.clone(), fresh));
            return Freshness::Fresh;
        };
        if msg.incarnation < seen.incarnation {
            return Freshness::Replay;
        }
        if msg.incarnation > seen.incarnation {
            *seen = fresh;
            return Freshness::Fresh;
        }
        match seen.links.iter_mut().find(|(l, _)| *l == msg.link) {
            Some((_, last)) if msg.seq <= *last => return Freshness::Replay,
            Some((_, last)) => *last = msg.seq,
            None => seen.links.push((msg.link, msg.seq)),
        }
        if msg.seq > seen.newest {
            seen.newest = msg.seq;
            Freshness::Fresh
        } else {
            Freshness::Duplicate
        }
    }

    /// Forgets a sender (e.g. a peer removed from the config).
    pub fn forget(&mut self, sender: &str) {
        self.senders.retain(|(s, _)| s != sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> KeyRing {
        KeyRing::new(vec![Key::new(1, &[0x11; 32]), Key::new(2, &[0x22; 32])]).unwrap()
    }

    fn msg() -> Message {
        Message {
            cluster: "lb".into(),
            sender: "lb1".into(),
            incarnation: 5,
            seq: 10,
            kind: Kind::Alive,
            state: NodeState::Normal,
            held: vec!["web".into()],
            groups_hash: 0xdead_beef,
            link: 0,
            to: None,
            groups: vec![],
            health: Default::default(),
        }
    }

    fn at(m: &Message, inc: u64, seq: u64, link: u8) -> Message {
        Message {
            incarnation: inc,
            seq,
            link,
            ..m.clone()
        }
    }

    #[test]
    fn round_trip_every_kind_and_state() {
        let kinds = [
            Kind::Alive,
            Kind::Leave,
            Kind::StandbyRequest,
            Kind::StandbyAck,
            Kind::TakeoverRequest,
            Kind::TakeoverAck,
            Kind::ResourceState,
        ];
        let states = [
            NodeState::Normal,
            NodeState::Takeover,
            NodeState::Recover,
            NodeState::Down,
        ];
        for kind in kinds {
            for state in states {
                let m = Message {
                    kind,
                    state,
                    ..msg()
                };
                let f = encode(&m, &ring()).unwrap();
                assert_eq!(decode(&f, &ring(), "lb"), Ok(m));
            }
        }
    }

    #[test]
    fn signs_with_the_first_key_accepts_any() {
        let f = encode(&msg(), &ring()).unwrap();
        assert_eq!(f[3], 1);
        let rotated =
            KeyRing::new(vec![Key::new(2, &[0x22; 32]), Key::new(1, &[0x11; 32])]).unwrap();
        assert_eq!(decode(&f, &rotated, "lb"), Ok(msg()));
        let only2 = KeyRing::new(vec![Key::new(2, &[0x22; 32])]).unwrap();
        assert_eq!(decode(&f, &only2, "lb"), Err(Reject::UnknownKey(1)));
        // Same id, another secret: the HMAC fails.
        let wrong = KeyRing::new(vec![Key::new(1, &[0x12; 32])]).unwrap();
        assert_eq!(decode(&f, &wrong, "lb"), Err(Reject::BadMac));
    }

    #[test]
    fn encode_refuses_what_the_wire_cannot_carry() {
        let long = "x".repeat(MAX_NAME + 1);
        for (m, field) in [
            (
                Message {
                    cluster: String::new(),
                    ..msg()
                },
                Field::Cluster,
            ),
            (
                Message {
                    sender: long.clone(),
                    ..msg()
                },
                Field::Sender,
            ),
            (
                Message {
                    sender: "a\nb".into(),
                    ..msg()
                },
                Field::Sender,
            ),
            (
                Message {
                    held: vec![String::new()],
                    ..msg()
                },
                Field::Held,
            ),
        ] {
            assert!(
                matches!(encode(&m, &ring()), Err(EncodeError::BadName { field: f, .. }) if f == field)
            );
        }
        let many = Message {
            held: (0..=MAX_HELD).map(|i| format!("g{i}")).collect(),
            ..msg()
        };
        assert_eq!(
            encode(&many, &ring()),
            Err(EncodeError::TooManyHeld(MAX_HELD + 1))
        );
        // 64 names of 64 bytes: 4160 bytes of names alone.
        let big = Message {
            held: (0..MAX_HELD).map(|i| format!("{i:064}")).collect(),
            ..msg()
        };
        assert!(matches!(
            encode(&big, &ring()),
            Err(EncodeError::Oversized(n)) if n > MAX_FRAME
        ));
        // The largest that fits is accepted and decodes.
        let fits = Message {
            held: (0..20).map(|i| format!("{i:064}")).collect(),
            ..msg()
        };
        let f = encode(&fits, &ring()).unwrap();
        assert!(f.len() <= MAX_FRAME);
        assert_eq!(decode(&f, &ring(), "lb"), Ok(fits));
    }

    #[test]
    fn messages_name_the_problem() {
        assert_eq!(
            Reject::Malformed(Field::Held).to_string(),
            "malformed held groups field"
        );
        assert_eq!(
            Reject::BadVersion(3).to_string(),
            "unsupported frame version 3 (this hbeat speaks 2)"
        );
        let e = encode(
            &Message {
                sender: "a\tb".into(),
                ..msg()
            },
            &ring(),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "sender name must be 1..=64 bytes without control characters: \"a\\tb\""
        );
    }

    #[test]
    fn counters_count_by_reason() {
        let mut c = Counters::default();
        c.add(Reject::BadMac);
        c.add(Reject::BadMac);
        c.add(Reject::BadVersion(2));
        c.add(Reject::BadVersion(9));
        c.add(Reject::Replay);
        assert_eq!(c.get(Reject::BadMac), 2);
        assert_eq!(c.get(Reject::BadVersion(0)), 2);
        assert_eq!(c.get(Reject::Truncated), 0);
        assert_eq!(c.total(), 5);
        let listed: Vec<_> = c.iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(listed, [("bad_version", 2), ("bad_mac", 2), ("replay", 1)]);
        assert_eq!(c.iter().count(), Reject::NAMES.len());
    }

    #[test]
    fn reason_names_are_distinct_and_stable() {
        let all = [
            Reject::Truncated,
            Reject::Oversized,
            Reject::BadMagic,
            Reject::BadVersion(0),
            Reject::UnknownKey(0),
            Reject::BadMac,
            Reject::Malformed(Field::Kind),
            Reject::OtherCluster,
            Reject::Replay,
            Reject::UnknownSender,
            Reject::SameName,
        ];
        let names: Vec<_> = all.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, Reject::NAMES);
    }

    #[test]
    fn guard_first_frame_and_newer_seq_are_fresh() {
        let mut g = ReplayGuard::new();
        let m = msg();
        assert_eq!(g.check(&at(&m, 5, 10, 0)), Freshness::Fresh);
        assert_eq!(g.check(&at(&m, 5, 11, 0)), Freshness::Fresh);
        assert_eq!(g.check(&at(&m, 5, 50, 0)), Freshness::Fresh);
    }

    #[test]
    fn guard_same_or_older_seq_on_a_link_is_a_replay() {
        let mut g = ReplayGuard::new();
        let m = msg();
        g.check(&at(&m, 5, 10, 0));
        assert_eq!(g.check(&at(&m, 5, 10, 0)), Freshness::Replay);
        assert_eq!(g.check(&at(&m, 5, 9, 0)), Freshness::Replay);
        // A replay leaves the state alone: the next real frame is still fresh.
        assert_eq!(g.check(&at(&m, 5, 11, 0)), Freshness::Fresh);
    }

    #[test]
    fn guard_copy_on_a_second_link_is_a_duplicate_once() {
        let mut g = ReplayGuard::new();
        let m = msg();
        assert_eq!(g.check(&at(&m, 5, 10, 0)), Freshness::Fresh);
        assert_eq!(g.check(&at(&m, 5, 10, 1)), Freshness::Duplicate);
        // The same copy again on link 1 is a replay.
        assert_eq!(g.check(&at(&m, 5, 10, 1)), Freshness::Replay);
        // A slow link delivering an older seq it never delivered: alive, not acted on.
        assert_eq!(g.check(&at(&m, 5, 12, 0)), Freshness::Fresh);
        assert_eq!(g.check(&at(&m, 5, 11, 1)), Freshness::Duplicate);
        assert_eq!(g.check(&at(&m, 5, 12, 1)), Freshness::Duplicate);
        assert_eq!(g.check(&at(&m, 5, 13, 1)), Freshness::Fresh);
    }

    #[test]
    fn guard_incarnations_reset_forward_and_replay_backward() {
        let mut g = ReplayGuard::new();
        let m = msg();
        g.check(&at(&m, 5, 100, 0));
        g.check(&at(&m, 5, 100, 1));
        // Restarted: seq starts over.
        assert_eq!(g.check(&at(&m, 6, 1, 1)), Freshness::Fresh);
        assert_eq!(g.check(&at(&m, 6, 1, 0)), Freshness::Duplicate);
        // The old incarnation's frames, even with larger seqs, are replays.
        assert_eq!(g.check(&at(&m, 5, 101, 0)), Freshness::Replay);
        assert_eq!(g.check(&at(&m, 5, u64::MAX, 2)), Freshness::Replay);
        assert_eq!(g.check(&at(&m, 6, 2, 0)), Freshness::Fresh);
    }

    #[test]
    fn guard_keeps_senders_apart_and_forgets() {
        let mut g = ReplayGuard::new();
        let a = msg();
        let b = Message {
            sender: "lb2".into(),
            ..msg()
        };
        assert_eq!(g.check(&at(&a, 5, 10, 0)), Freshness::Fresh);
        assert_eq!(g.check(&at(&b, 5, 10, 0)), Freshness::Fresh);
        assert_eq!(g.check(&at(&b, 5, 10, 0)), Freshness::Replay);
        g.forget("lb2");
        assert_eq!(g.check(&at(&b, 5, 10, 0)), Freshness::Fresh);
        assert_eq!(g.check(&at(&a, 5, 10, 0)), Freshness::Replay);
    }
}
