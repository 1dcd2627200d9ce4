//! Golden frames and every reason a frame is rejected.
//!
//! The fixtures in `tests/fixtures/frames/*.hex` were written by `make.py` beside them from the
//! layout table in `hbeat/src/frame.rs` with Python's own HMAC, not by this codec: each must decode
//! to the message below and that message must encode back to the same bytes. A change of the wire
//! format shows up here first (and needs a new frame version).

use std::path::{Path, PathBuf};

use hbeat::frame::{
    self, Counters, Field, Freshness, MAX_FRAME, MIN_FRAME, Reject, ReplayGuard, TAG_LEN,
};
use hbeat::keys::KeyRing;
use hbeat::msg::{Kind, Message, NodeState};
use hmac::Mac;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/frames")
}

fn keys() -> KeyRing {
    let path = dir().join("authkey");
    KeyRing::parse(&std::fs::read_to_string(&path).unwrap(), &path).unwrap()
}

/// A fixture's bytes: hex digits, whitespace ignored, `#` to the end of the line a comment.
fn fixture(name: &str) -> Vec<u8> {
    let path = dir().join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let digits: Vec<u8> = text
        .lines()
        .flat_map(|l| l.split('#').next().unwrap().bytes())
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    assert!(
        digits.len().is_multiple_of(2),
        "{name}: odd number of hex digits"
    );
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

fn goldens() -> Vec<(&'static str, Message)> {
    let m =
        |sender: &str, incarnation, seq, kind, state, held: &[&str], groups_hash, link| Message {
            cluster: "lb".into(),
            sender: sender.into(),
            incarnation,
            seq,
            kind,
            state,
            held: held.iter().map(|s| s.to_string()).collect(),
            groups_hash,
            link,
            to: None,
            groups: vec![],
            health: Default::default(),
        };
    let g64 = "g".repeat(64);
    vec![
        (
            "alive",
            m(
                "lb1",
                1_764_640_000,
                1,
                Kind::Alive,
                NodeState::Normal,
                &["web"],
                0x0123_4567_89ab_cdef,
                0,
            ),
        ),
        (
            "takeover_request",
            Message {
                to: Some("lb1".into()),
                groups: vec!["web".into()],
                ..m(
                    "lb2",
                    7,
                    42,
                    Kind::TakeoverRequest,
                    NodeState::Recover,
                    &[],
                    0,
                    2,
                )
            },
        ),
        (
            "resource_state_rotated_key",
            m(
                "director-ü",
                u64::MAX,
                u64::MAX - 1,
                Kind::ResourceState,
                NodeState::Takeover,
                &["web", "mail", &g64],
                u64::MAX,
                255,
            ),
        ),
        (
            "leave",
            m("lb3", 3, 1000, Kind::Leave, NodeState::Normal, &[], 5, 1),
        ),
        (
            "alive_health",
            Message {
                health: hbeat::msg::Health {
                    ping_reached: 1,
                    ping_total: 2,
                    unready: vec!["mail".into()],
                },
                ..m("lb2", 9, 77, Kind::Alive, NodeState::Normal, &[], 0, 1)
            },
        ),
    ]
}

/// `bytes` with a correct tag for key `id` of the fixture key file (to reach the field checks).
fn seal(mut bytes: Vec<u8>, id: u8) -> Vec<u8> {
    let len = bytes.len() as u16;
    bytes[3] = id;
    bytes[4..6].copy_from_slice(&len.to_be_bytes());
    let body = bytes.len() - TAG_LEN;
    let mut mac = keys().get(id).unwrap().mac();
    mac.update(&bytes[..body]);
    bytes[body..].copy_from_slice(&mac.finalize().into_bytes());
    bytes
}

fn alive() -> Vec<u8> {
    fixture("alive")
}

#[test]
fn golden_frames_decode_and_encode_to_the_same_bytes() {
    let keys = keys();
    for (name, want) in goldens() {
        let bytes = fixture(name);
        assert_eq!(
            frame::decode(&bytes, &keys, "lb").as_ref(),
            Ok(&want),
            "{name}"
        );
        let key = keys.get(bytes[3]).unwrap();
        assert_eq!(
            frame::encode_with(&want, key).unwrap(),
            bytes,
            "{name}: encode"
        );
    }
    // The ring's sending key is the first listed: id 1.
    assert_eq!(
        frame::encode(&goldens()[0].1, &keys).unwrap(),
        fixture("alive")
    );
}

#[test]
fn every_flipped_bit_after_the_header_is_a_bad_mac() {
    let keys = keys();
    let f = fixture("resource_state_rotated_key");
    for i in frame::HEADER_LEN * 8..f.len() * 8 {
        let mut g = f.clone();
        g[i / 8] ^= 1 << (i % 8);
        assert_eq!(
            frame::decode(&g, &keys, "lb"),
            Err(Reject::BadMac),
            "bit {i}"
        );
    }
}

#[test]
fn unknown_key_id() {
    let mut f = alive();
    f[3] = 9;
    assert_eq!(frame::decode(&f, &keys(), "lb"), Err(Reject::UnknownKey(9)));
    // A ring without the frame's key: rotation finished on this node but not on the sender.
    let path = Path::new("new-only");
    let new_only = KeyRing::parse(&format!("7 {}\n", "77".repeat(32)), path).unwrap();
    assert_eq!(
        frame::decode(&alive(), &new_only, "lb"),
        Err(Reject::UnknownKey(1))
    );
}

#[test]
fn other_cluster() {
    assert_eq!(
        frame::decode(&alive(), &keys(), "db"),
        Err(Reject::OtherCluster)
    );
    assert_eq!(
        frame::decode(&alive(), &keys(), "lb2"),
        Err(Reject::OtherCluster)
    );
}

#[test]
fn truncated_at_every_length() {
    let keys = keys();
    for (name, _) in goldens() {
        let f = fixture(name);
        for n in 0..f.len() {
            assert_eq!(
                frame::decode(&f[..n], &keys, "lb"),
                Err(Reject::Truncated),
                "{name} cut to {n} bytes"
            );
        }
    }
}

#[test]
fn oversized() {
    let keys = keys();
    let mut f = alive();
    f.resize(MAX_FRAME + 1, 0);
    assert_eq!(frame::decode(&f, &keys, "lb"), Err(Reject::Oversized));
    assert_eq!(
        frame::decode(&vec![0u8; 65_536], &keys, "lb"),
        Err(Reject::Oversized)
    );
    // A header claiming more than a frame may be, whatever follows.
    let mut f = alive();
    f[4..6].copy_from_slice(&(MAX_FRAME as u16 + 1).to_be_bytes());
    assert_eq!(frame::decode(&f, &keys, "lb"), Err(Reject::Oversized));
    // Exactly MAX_FRAME is a frame: 78 bytes with "lb", "lb1", no groups, no addressee and no
    // health, plus 20 names of 64 bytes and one of 21 (each with its length byte) is 1400.
    let mut held: Vec<String> = (0..20).map(|i| format!("{i:064}")).collect();
    held.push("x".repeat(21));
    let m = Message {
        held,
        ..goldens()[0].1.clone()
    };
    let f = frame::encode(&m, &keys).unwrap();
    assert_eq!(f.len(), MAX_FRAME);
    assert_eq!(frame::decode(&f, &keys, "lb"), Ok(m.clone()));
    let mut bigger = m;
    bigger.held[20].push('x');
    assert!(matches!(
        frame::encode(&bigger, &keys),
        Err(frame::EncodeError::Oversized(1401))
    ));
}

#[test]
fn bad_magic_and_version() {
    let keys = keys();
    let mut f = alive();
    f[0] = b'H';
    assert_eq!(frame::decode(&f, &keys, "lb"), Err(Reject::BadMagic));
    assert_eq!(
        frame::decode(b"GET / HTTP/1.1\r\n", &keys, "lb"),
        Err(Reject::BadMagic)
    );
    assert_eq!(frame::decode(b"x", &keys, "lb"), Err(Reject::BadMagic));
    // Version 1 (before the health fields) included: mixed versions do not understand each other.
    for v in [0u8, 1, 3, 255] {
        let mut f = alive();
        f[2] = v;
        assert_eq!(frame::decode(&f, &keys, "lb"), Err(Reject::BadVersion(v)));
    }
}

#[test]
fn length_field_must_match_the_datagram() {
    let keys = keys();
    // Extra bytes after the frame: refused, not ignored (the tag must end the datagram).
    let mut f = alive();
    f.push(0);
    assert_eq!(
        frame::decode(&f, &keys, "lb"),
        Err(Reject::Malformed(Field::Length))
    );
    let mut f = alive();
    f[4..6].copy_from_slice(&(MIN_FRAME as u16 - 1).to_be_bytes());
    assert_eq!(
        frame::decode(&f, &keys, "lb"),
        Err(Reject::Malformed(Field::Length))
    );
}

/// The alive fixture's layout: kind at 6, state 7, cluster length at 33 ("lb"), sender length at 36
/// ("lb1"), held count at 40, then "web" with its length at 41, the addressee's length at 45 (0:
/// everyone), the request groups' count at 46, the ping counts at 47 and 48, the unready count at
/// 49.
#[test]
fn authenticated_but_malformed_fields() {
    let keys = keys();
    let base = alive();
    let body_end = base.len() - TAG_LEN;
    let edit = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base[..body_end].to_vec();
        f(&mut b);
        b.extend_from_slice(&[0; TAG_LEN]);
        seal(b, 1)
    };
    let cases: Vec<(&str, Vec<u8>, Field)> = vec![
        ("kind 0", edit(&|b| b[6] = 0), Field::Kind),
        ("kind 8", edit(&|b| b[6] = 8), Field::Kind),
        ("state n", edit(&|b| b[7] = b'n'), Field::State),
        (
            "empty cluster",
            edit(&|b| {
                b.drain(34..36);
                b[33] = 0;
            }),
            Field::Cluster,
        ),
        (
            "cluster runs past the end",
            edit(&|b| b[33] = 200),
            Field::Cluster,
        ),
        ("sender not UTF-8", edit(&|b| b[39] = 0xff), Field::Sender),
        (
            "sender with a newline",
            edit(&|b| b[39] = b'\n'),
            Field::Sender,
        ),
        (
            "65 held groups",
            edit(&|b| {
                b[40] = 65;
                b.truncate(41);
                for _ in 0..65 {
                    b.extend_from_slice(&[1, b'g']);
                }
            }),
            Field::Held,
        ),
        ("held count past the end", edit(&|b| b[40] = 3), Field::Held),
        (
            "held name of 65 bytes",
            edit(&|b| {
                b.truncate(41);
                b.push(65);
                b.extend_from_slice(&[b'g'; 65]);
            }),
            Field::Held,
        ),
        (
            "addressee with a newline",
            edit(&|b| {
                b[45] = 1;
                b.insert(46, b'\n');
            }),
            Field::To,
        ),
        (
            "addressee runs past the end",
            edit(&|b| b[45] = 9),
            Field::To,
        ),
        (
            "65 request groups",
            edit(&|b| {
                b.truncate(46);
                b.push(65);
                for _ in 0..65 {
                    b.extend_from_slice(&[1, b'g']);
                }
            }),
            Field::Groups,
        ),
        (
            "request groups past the end",
            edit(&|b| b[46] = 2),
            Field::Groups,
        ),
        (
            "more ping targets reached than configured",
            edit(&|b| {
                b[47] = 2;
                b[48] = 1;
            }),
            Field::Ping,
        ),
        ("no ping counts", edit(&|b| b.truncate(47)), Field::Ping),
        (
            "65 unready groups",
            edit(&|b| {
                b[49] = 65;
                for _ in 0..65 {
                    b.extend_from_slice(&[1, b'g']);
                }
            }),
            Field::Unready,
        ),
        (
            "unready name with a tab",
            edit(&|b| {
                b[49] = 1;
                b.extend_from_slice(&[2, b'g', b'\t']);
            }),
            Field::Unready,
        ),
        (
            "no unready count",
            edit(&|b| b.truncate(49)),
            Field::Unready,
        ),
        ("trailing byte", edit(&|b| b.push(0)), Field::Trailing),
    ];
    for (what, f, field) in cases {
        assert_eq!(
            frame::decode(&f, &keys, "lb"),
            Err(Reject::Malformed(field)),
            "{what}"
        );
    }
    // The edit helper itself yields an accepted frame when nothing is changed.
    assert_eq!(edit(&|_| {}), base);
}

#[test]
fn replayed_frames_are_rejected_and_counted_duplicates_are_not() {
    let keys = keys();
    let mut guard = ReplayGuard::new();
    let mut counters = Counters::default();
    let mut judge = |bytes: &[u8]| -> Option<Freshness> {
        match frame::decode(bytes, &keys, "lb") {
            Ok(m) => {
                let f = guard.check(&m);
                if f == Freshness::Replay {
                    counters.add(Reject::Replay);
                }
                Some(f)
            }
            Err(r) => {
                counters.add(r);
                None
            }
        }
    };
    let first = alive();
    let want = goldens()[0].1.clone();
    assert_eq!(judge(&first), Some(Freshness::Fresh));
    // The same bytes again (an attacker's recording): a replay.
    assert_eq!(judge(&first), Some(Freshness::Replay));
    // The sender's copy of the same message on link 1: proves link 1, not acted on again.
    let copy = frame::encode(
        &Message {
            link: 1,
            ..want.clone()
        },
        &keys,
    )
    .unwrap();
    assert_eq!(judge(&copy), Some(Freshness::Duplicate));
    assert_eq!(judge(&copy), Some(Freshness::Replay));
    let next = frame::encode(
        &Message {
            seq: 2,
            ..want.clone()
        },
        &keys,
    )
    .unwrap();
    assert_eq!(judge(&next), Some(Freshness::Fresh));
    assert_eq!(judge(&[0u8; 3]), None);
    assert_eq!(counters.get(Reject::Replay), 2);
    assert_eq!(counters.get(Reject::BadMagic), 1);
    assert_eq!(counters.total(), 3);
}
