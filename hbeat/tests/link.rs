//! The links on real transports, without privileges: unicast UDP on loopback, a serial line over a
//! pty pair made by `socat`, a disk link on a shared temporary file, and links that cannot start
//! next to one that works. Multicast and broadcast need network namespaces: `link_root`.

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hbeat::link::disk::{SLOT, Slot, decode_slot};
use hbeat::link::serial::encode;
use hbeat::link::{Inbound, LinkSpec, Links, MAX_FRAME, Setup};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a test waits for an event before it fails: generous, the machine may be busy.
mod support;
use support::{WAIT, wait_status};

fn setup(me: &str) -> Setup {
    let mut s = Setup::new(me, &["lb1", "lb2"]);
    s.retry = Duration::from_millis(100);
    s.disk_poll = Duration::from_millis(10);
    s
}

fn start(specs: Vec<(u8, LinkSpec)>, setup: Setup) -> (Links, mpsc::Receiver<Inbound>) {
    let (tx, rx) = mpsc::channel(64);
    (Links::start(specs, setup, tx), rx)
}

async fn wait_up(links: &Links) {
    wait_status(links, "every link up", |s| s.iter().all(|l| l.up)).await;
}

/// The next frame on `rx`, failing after [`WAIT`].
async fn next(rx: &mut mpsc::Receiver<Inbound>, what: &str) -> Inbound {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap_or_else(|_| panic!("waited {WAIT:?} for {what}"))
        .expect("inbound closed")
}

/// Sends `frame` from `from` every 10 ms until `rx` gets a frame; returns it.
async fn send_until(from: &Links, frame: &[u8], rx: &mut mpsc::Receiver<Inbound>) -> Inbound {
    let deadline = Instant::now() + WAIT;
    loop {
        from.send(frame);
        if let Ok(Some(i)) = tokio::time::timeout(Duration::from_millis(10), rx.recv()).await {
            return i;
        }
        assert!(Instant::now() < deadline, "waited {WAIT:?} for {frame:?}");
    }
}

/// Two loopback addresses on free ports.
fn free_ports() -> (SocketAddr, SocketAddr) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    (a.local_addr().unwrap(), b.local_addr().unwrap())
}

#[tokio::test]
async fn unicast_udp_carries_frames_both_ways_between_two_links() {
    let (a, b) = free_ports();
    let (la, mut ra) = start(vec![(1, LinkSpec::Udp { bind: a, peer: b })], setup("lb1"));
    let (lb, mut rb) = start(vec![(1, LinkSpec::Udp { bind: b, peer: a })], setup("lb2"));
    wait_up(&la).await;
    wait_up(&lb).await;

    let got = send_until(&la, b"from lb1", &mut rb).await;
    assert_eq!(
        got,
        Inbound {
            link: 1,
            bytes: b"from lb1".to_vec(),
            from: Some(a)
        }
    );
    let got = send_until(&lb, b"from lb2", &mut ra).await;
    assert_eq!(
        (got.bytes.as_slice(), got.from),
        (&b"from lb2"[..], Some(b))
    );

    // A frame of the largest size goes through whole; send_on picks the link by id.
    let big = vec![0xA5; MAX_FRAME];
    assert!(la.send_on(1, &big));
    assert!(!la.send_on(9, &big));
    loop {
        let i = next(&mut rb, "the largest frame").await;
        if i.bytes == big {
            break;
        }
    }
    let s = &la.status()[0];
    assert_eq!(s.what, format!("udp {a} -> {b}"));
    assert!(
        s.frames_sent >= 2 && s.bytes_sent >= (8 + MAX_FRAME) as u64,
        "{s:?}"
    );
    assert!(lb.status()[0].frames_received >= 2);

    // Frames the links cannot carry are refused and counted, not sent.
    assert_eq!(la.send(&[]), 0);
    assert_eq!(la.send(&vec![1; MAX_FRAME + 1]), 0);
    assert_eq!(la.status()[0].send_errors, 2);
    assert!(
        la.status()[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("1401 bytes")
    );
}

#[tokio::test]
async fn unicast_udp_drops_strangers_and_oversized_datagrams() {
    // The peer is a plain socket here, so the test can send what a link never would.
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (b, _) = free_ports();
    let (lb, mut rb) = start(
        vec![(
            3,
            LinkSpec::Udp {
                bind: b,
                peer: peer.local_addr().unwrap(),
            },
        )],
        setup("lb2"),
    );
    wait_up(&lb).await;
    stranger.send_to(b"not my peer", b).unwrap();
    peer.send_to(&vec![7; MAX_FRAME + 1], b).unwrap();
    peer.send_to(b"ok", b).unwrap();
    let got = next(&mut rb, "the peer's frame").await;
    assert_eq!(
        got,
        Inbound {
            link: 3,
            bytes: b"ok".to_vec(),
            from: Some(peer.local_addr().unwrap())
        }
    );
    let s = &lb.status()[0];
    assert_eq!(
        (s.rejected_source, s.garbage, s.frames_received),
        (1, 1, 1),
        "{s:?}"
    );
}

/// A `socat` pty pair; killed on drop.
struct PtyPair {
    child: Child,
    a: PathBuf,
    b: PathBuf,
}

impl PtyPair {
    fn new() -> PtyPair {
        let mut child = Command::new("socat")
            .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run socat ({e}): install it (apt-get install socat)")
            });
        // socat -d -d logs "N PTY is /dev/pts/X" for each end before "starting data transfer loop".
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut ptys = Vec::new();
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some((_, p)) = line.split_once("PTY is ") {
                    ptys.push(PathBuf::from(p.trim()));
                }
                if line.contains("starting data transfer loop") {
                    let _ = tx.send(ptys.clone());
                }
            }
        });
        let ptys = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("socat did not report two ptys within {WAIT:?}"));
        assert_eq!(ptys.len(), 2, "socat reported {ptys:?}");
        PtyPair {
            child,
            a: ptys[0].clone(),
            b: ptys[1].clone(),
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serial(device: &Path) -> Vec<(u8, LinkSpec)> {
    vec![(
        2,
        LinkSpec::Serial {
            device: device.to_path_buf(),
            baud: 115200,
        },
    )]
}

/// The serial tests one at a time: a pty pair's /dev/pts numbers are reused as soon as its socat
/// exits, so a link retrying a closed pair's path could open another test's pty and read its
/// frames (seen as lost frames under load).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn serial_link_over_a_pty_pair_resyncs_after_garbage_and_split_writes() {
    let _one_at_a_time = SERIAL.lock().await;
    let pty = PtyPair::new();
    let (la, mut ra) = start(serial(&pty.a), setup("lb1"));
    let (lb, mut rb) = start(serial(&pty.b), setup("lb2"));
    wait_up(&la).await;
    wait_up(&lb).await;

    let f1: Vec<u8> = (0..=255).cycle().take(600).collect();
    let got = send_until(&la, &f1, &mut rb).await;
    assert_eq!((got.link, &got.bytes, got.from), (2, &f1, None));
    let got = send_until(&lb, b"\0back\0", &mut ra).await;
    assert_eq!(got.bytes, b"\0back\0");
    // send_until may have sent a few copies before the first arrived.
    while tokio::time::timeout(Duration::from_millis(200), rb.recv())
        .await
        .is_ok()
    {}

    // Noise and frames written into a's side by hand, as a line would deliver them.
    let mut line = std::fs::OpenOptions::new()
        .write(true)
        .open(&pty.a)
        .unwrap();
    let f2 = b"second frame".to_vec();
    let f3 = vec![0u8; MAX_FRAME];
    let f4 = b"after the long noise".to_vec();
    let garbage_before = lb.status()[0].garbage;
    line.write_all(b"line noise \xff\x01\x02").unwrap();
    line.write_all(&encode(&f2)).unwrap();
    let w3 = encode(&f3);
    line.write_all(&w3[..500]).unwrap();
    line.flush().unwrap();
    // The rest of the frame a little later, in two more writes.
    tokio::time::sleep(Duration::from_millis(50)).await;
    line.write_all(&w3[500..1000]).unwrap();
    line.write_all(&w3[1000..]).unwrap();
    // A cut frame, then a run of noise longer than any frame, then a frame.
    line.write_all(&encode(&f2)[..5]).unwrap();
    line.write_all(&encode(&f4)).unwrap();
    line.write_all(&vec![0x55; 5000]).unwrap();
    line.write_all(&encode(&f4)).unwrap();
    for (i, want) in [&f2, &f3, &f4, &f4].into_iter().enumerate() {
        let got = next(
            &mut rb,
            &format!("frame {i} written by hand: {:?}", lb.status()),
        )
        .await;
        assert_eq!(&got.bytes, want);
    }
    // The noise before f2, the cut frame, the long run.
    assert_eq!(
        lb.status()[0].garbage - garbage_before,
        3,
        "{:?}",
        lb.status()
    );
    let s = &la.status()[0];
    assert!(s.frames_sent >= 1 && s.bytes_sent >= 600, "{s:?}");
}

#[tokio::test]
async fn serial_link_goes_down_and_retries_when_the_line_goes_away() {
    let _one_at_a_time = SERIAL.lock().await;
    let pty = PtyPair::new();
    let (lb, _rb) = start(serial(&pty.b), setup("lb2"));
    wait_up(&lb).await;
    drop(pty);
    wait_status(&lb, "the serial link down after socat went away", |s| {
        !s[0].up && s[0].restarts >= 1
    })
    .await;
    let e = lb.status()[0].last_error.clone().unwrap();
    assert!(e.contains("/dev/pts/"), "{e}");
}

fn temp_file(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("hbeat-link-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

fn disk(path: &Path) -> Vec<(u8, LinkSpec)> {
    vec![(
        4,
        LinkSpec::Disk {
            path: path.to_path_buf(),
        },
    )]
}

#[tokio::test]
async fn disk_link_on_a_shared_file_between_two_links() {
    let path = temp_file("disk");
    std::fs::File::create(&path).unwrap();
    let (la, mut ra) = start(disk(&path), setup("lb1"));
    let (lb, mut rb) = start(disk(&path), setup("lb2"));
    wait_up(&la).await;
    wait_up(&lb).await;

    let got = send_until(&la, b"lb1 alive", &mut rb).await;
    assert_eq!(
        (got.link, got.bytes.as_slice(), got.from),
        (4, &b"lb1 alive"[..], None)
    );
    let got = send_until(&lb, b"lb2 alive", &mut ra).await;
    assert_eq!(got.bytes, b"lb2 alive");

    // The layout: lb1's slot first, lb2's next, each with its latest frame.
    let bytes = std::fs::read(&path).unwrap();
    let Slot::Frame { counter: c1, frame } = decode_slot(&bytes[..SLOT]) else {
        panic!("slot 0: {:?}", &bytes[..32])
    };
    assert_eq!(frame, b"lb1 alive");
    assert!(matches!(
        decode_slot(&bytes[SLOT..]),
        Slot::Frame {
            frame: b"lb2 alive",
            ..
        }
    ));

    // A slot caught half written is not delivered, and counted once.
    let mut torn = bytes[..SLOT].to_vec();
    torn[8..16].copy_from_slice(&(c1 + 100).to_be_bytes());
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&torn, 0).unwrap();
    }
    wait_status(&lb, "the torn slot counted", |s| s[0].garbage == 1).await;

    // lb1 writes a valid frame over the torn one, then both stop.
    drop(lb);
    la.send(b"lb1 old");
    let deadline = Instant::now() + WAIT;
    let c_old = loop {
        let bytes = std::fs::read(&path).unwrap();
        if let Slot::Frame {
            counter,
            frame: b"lb1 old",
        } = decode_slot(&bytes[..SLOT])
        {
            break counter;
        }
        assert!(Instant::now() < deadline, "lb1's last frame never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    drop(la);
    // Restarts: a new lb2 does not take lb1's old frame for news, and lb1's counter goes on from
    // its slot's.
    let (lb, mut rb) = start(disk(&path), setup("lb2"));
    wait_up(&lb).await;
    let (la, _ra) = start(disk(&path), setup("lb1"));
    wait_up(&la).await;
    let got = send_until(&la, b"lb1 again", &mut rb).await;
    assert_eq!(
        got.bytes, b"lb1 again",
        "the first frame delivered after a restart"
    );
    let bytes = std::fs::read(&path).unwrap();
    let Slot::Frame { counter, .. } = decode_slot(&bytes[..SLOT]) else {
        panic!("slot 0")
    };
    assert!(counter > c_old, "counter {counter} after {c_old}");
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_disk_link_sees_its_own_writes_until_someone_else_writes_its_slot() {
    // The quorum disk's evidence: a read that finds my last write in my slot.
    let path = temp_file("own");
    std::fs::File::create(&path).unwrap();
    let (la, _ra) = start(disk(&path), setup("lb1"));
    wait_up(&la).await;
    assert_eq!(la.own_write_seen(4), None, "nothing written yet");
    la.send(b"lb1 alive");
    wait_status(&la, "my write read back", |s| s[0].own_write_seen.is_some()).await;
    // Every poll (50 ms) that finds it confirms it again.
    let first = la.own_write_seen(4);
    wait_status(&la, "confirmed again", |s| s[0].own_write_seen > first).await;
    // Something else writes into my slot (a node with my name, a damaged disk): my last write
    // is gone, and no read confirms it any more.
    let mut foreign = vec![0u8; SLOT];
    hbeat::link::disk::encode_slot(1_000_000, b"not lb1's", &mut foreign);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&foreign, 0).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stale = la.own_write_seen(4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        la.own_write_seen(4),
        stale,
        "six polls saw a slot that is not mine"
    );
    // My next write is seen again.
    la.send(b"lb1 alive");
    wait_status(&la, "confirmed after my next write", |s| {
        s[0].own_write_seen > stale
    })
    .await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn links_that_cannot_start_are_down_with_the_reason_while_udp_carries_frames() {
    let (a, b) = free_ports();
    let missing_disk = temp_file("late");
    let specs = vec![
        (1, LinkSpec::Udp { bind: a, peer: b }),
        (
            2,
            LinkSpec::Mcast {
                dev: "nosuch0".into(),
                group: "239.255.0.1:694".parse().unwrap(),
                ttl: 1,
            },
        ),
        (
            3,
            LinkSpec::Bcast {
                dev: "nosuch1".into(),
                port: 694,
            },
        ),
        (
            4,
            LinkSpec::Serial {
                device: "/dev/nonexistent-tty".into(),
                baud: 115200,
            },
        ),
        (
            5,
            LinkSpec::Disk {
                path: missing_disk.clone(),
            },
        ),
        (
            6,
            LinkSpec::Serial {
                device: "/dev/null".into(),
                baud: 115200,
            },
        ),
    ];
    let (la, _ra) = start(specs, setup("lb1"));
    let (lb, mut rb) = start(vec![(1, LinkSpec::Udp { bind: b, peer: a })], setup("lb2"));
    wait_status(&la, "five links down and retried", |s| {
        s[0].up && s[1..].iter().all(|l| !l.up && l.restarts >= 1)
    })
    .await;
    let errors: Vec<String> = la.status()[1..]
        .iter()
        .map(|l| l.last_error.clone().unwrap())
        .collect();
    assert_eq!(errors[0], "interface nosuch0 does not exist");
    assert_eq!(errors[1], "interface nosuch1 does not exist");
    assert!(
        errors[2].starts_with("open /dev/nonexistent-tty: ") && errors[2].contains("No such file"),
        "{}",
        errors[2]
    );
    assert!(errors[3].contains("No such file"), "{}", errors[3]);
    assert!(errors[4].contains("not a tty"), "{}", errors[4]);

    wait_up(&lb).await;
    let got = send_until(&la, b"still here", &mut rb).await;
    assert_eq!(got.bytes, b"still here");
    // Only the link that is up took it; the others counted a drop.
    assert_eq!(la.send(b"x"), 1);
    assert!(la.status()[1].send_dropped >= 1);

    // The missing file appears: the disk link comes up at its next retry.
    std::fs::File::create(&missing_disk).unwrap();
    wait_status(&la, "the disk link up once its file exists", |s| s[4].up).await;
    let _ = std::fs::remove_file(&missing_disk);
}
