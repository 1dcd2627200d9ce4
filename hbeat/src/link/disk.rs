//! The disk link: the seeds' shared-disk heartbeat, a path between nodes that needs no network.
//!
//! The device (or file) is divided into fixed slots of [`SLOT`] bytes, one per node in the order
//! of the node names sorted; slot `i` starts at byte `i × SLOT`. Each node writes its latest frame
//! into its own slot and reads the others' every poll interval; a frame is delivered when a slot's
//! write counter changed since the last read. At start the slots are read once without delivering,
//! so a frame a dead node left behind is not taken as a sign of life.
//!
//! Slot layout (integers big-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `"hBdk"` |
//! | 4 | 1 | layout version ([`VERSION`]) |
//! | 5 | 1 | zero |
//! | 6 | 2 | frame length n (1..=[`MAX_FRAME`]) |
//! | 8 | 8 | write counter (never 0; a restarted node continues from its slot's) |
//! | 16 | n | the frame |
//! | 16+n | 8 | the write counter again |
//!
//! The rest of the slot is zero. A reader that sees the two counters differ caught a write half
//! done (a torn slot): it counts it as garbage and reads the slot again at the next poll.
//!
//! Caching: on a block device shared by two hosts, each host's page cache would keep serving the
//! copy it read first and hide the other node's writes. Block devices are therefore opened with
//! `O_DIRECT` (buffers aligned to 4096 bytes without `unsafe`: a slice of a larger `Vec` at its
//! aligned offset; slots are 4096 bytes at 4096-byte offsets, which suits any logical block size
//! up to 4 KiB). If the device refuses `O_DIRECT`, it is opened buffered and every read is
//! preceded by `posix_fadvise(DONTNEED)` over the slots. A regular file is read through the page
//! cache: on one host (the tests, or nodes in namespaces) every reader sees every write there.
//! The path must exist; it is never created (a typo would otherwise give a node a private file).
//!
//! A read that finds this node's own slot holding its last completed write records the time
//! ([`super::LinkStatus::own_write_seen`]): the quorum disk's proof that this node still reaches
//! the storage. A hung or failing device, or another node writing into this slot, stops it.
//!
//! Reads and writes are `pread`/`pwrite` at fixed offsets on tokio's blocking pool, one at a time
//! per link; one that does not finish within [`IO_TIMEOUT`] marks the link down until it does.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{OFlag, PosixFadviseAdvice, posix_fadvise};

use tokio::sync::mpsc;

use super::{Ctx, LinkError, MAX_FRAME, Setup, Shared, Stop};

/// One node's slot size in bytes (and the alignment of every disk I/O).
pub const SLOT: usize = 4096;
/// The first bytes of a written slot.
pub const MAGIC: [u8; 4] = *b"hBdk";
/// The slot layout's version.
pub const VERSION: u8 = 1;
const HEAD: usize = 16;
/// How long one read or write of the slots may take before the link is reported down.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The slot of `me` among `nodes` (sorted, duplicates ignored), and how many slots there are.
pub fn slot_of(me: &str, nodes: &[String]) -> Option<(usize, usize)> {
    let mut names: Vec<&str> = nodes.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    names
        .iter()
        .position(|n| *n == me)
        .map(|i| (i, names.len()))
}

/// Writes `frame` with `counter` into `slot` (exactly [`SLOT`] bytes; the frame ≤ [`MAX_FRAME`]).
pub fn encode_slot(counter: u64, frame: &[u8], slot: &mut [u8]) {
    debug_assert!(slot.len() == SLOT && !frame.is_empty() && frame.len() <= MAX_FRAME);
    slot.fill(0);
    slot[0..4].copy_from_slice(&MAGIC);
    slot[4] = VERSION;
    slot[6..8].copy_from_slice(&(frame.len() as u16).to_be_bytes());
    slot[8..16].copy_from_slice(&counter.to_be_bytes());
    slot[HEAD..HEAD + frame.len()].copy_from_slice(frame);
    slot[HEAD + frame.len()..HEAD + frame.len() + 8].copy_from_slice(&counter.to_be_bytes());
}

/// What a slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot<'a> {
    /// Never written (no magic; a fresh device).
    Empty,
    /// Magic present but the rest inconsistent: a write in progress, or a damaged slot. Carries
    /// the header's counter.
    Torn(u64),
    /// A complete frame.
    Frame { counter: u64, frame: &'a [u8] },
}

/// Reads one slot (any length: a short slot at the end of a small file is parsed as far as it goes).
pub fn decode_slot(slot: &[u8]) -> Slot<'_> {
    if slot.len() < HEAD || slot[0..4] != MAGIC {
        return Slot::Empty;
    }
    let counter = u64::from_be_bytes(slot[8..16].try_into().unwrap_or_default());
    let len = usize::from(u16::from_be_bytes([slot[6], slot[7]]));
    let end = HEAD + len;
    if slot[4] != VERSION || len == 0 || len > MAX_FRAME || counter == 0 || slot.len() < end + 8 {
        return Slot::Torn(counter);
    }
    if slot[end..end + 8] != counter.to_be_bytes() {
        return Slot::Torn(counter);
    }
    Slot::Frame {
        counter,
        frame: &slot[HEAD..end],
    }
}

const ALIGN: usize = 4096;

/// A buffer whose usable part starts at a 4096-byte boundary (for `O_DIRECT`).
struct Aligned {
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let buf = vec![0u8; len + ALIGN];
        // For a byte pointer the offset to any power-of-two alignment exists and is < ALIGN; if
        // it ever did not, `min` keeps the slice in bounds and O_DIRECT reports EINVAL.
        let at = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Aligned { buf, at, len }
    }
    fn get(&self) -> &[u8] {
        &self.buf[self.at..self.at + self.len]
    }
    fn get_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.at..self.at + self.len]
    }
}

/// How reads avoid stale cached copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    /// `O_DIRECT` (block device).
    Direct,
    /// `posix_fadvise(DONTNEED)` before each read (block device without `O_DIRECT`).
    Drop,
    /// The page cache (regular file).
    Shared,
}

fn open_disk(path: &Path) -> Result<(File, Cache), LinkError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| LinkError::io(format!("disk {name}"), e))?;
    let mut opts = OpenOptions::new();
    opts.read(true)
        .write(true)
        .custom_flags(OFlag::O_CLOEXEC.bits());
    if meta.file_type().is_block_device() {
        let mut direct = opts.clone();
        direct.custom_flags((OFlag::O_CLOEXEC | OFlag::O_DIRECT).bits());
        match direct.open(path) {
            Ok(f) => return Ok((f, Cache::Direct)),
            Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {}
            Err(e) => return Err(LinkError::io(format!("open {name}"), e)),
        }
        let f = opts
            .open(path)
            .map_err(|e| LinkError::io(format!("open {name}"), e))?;
        Ok((f, Cache::Drop))
    } else if meta.is_file() {
        let f = opts
            .open(path)
            .map_err(|e| LinkError::io(format!("open {name}"), e))?;
        Ok((f, Cache::Shared))
    } else {
        Err(LinkError::Other(format!(
            "disk {name}: neither a block device nor a regular file"
        )))
    }
}

/// Runs `f` on the blocking pool; past [`IO_TIMEOUT`] the link is shown down until it returns.
async fn blocking<T: Send + 'static>(
    shared: &Shared,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, LinkError> {
    let mut task = tokio::task::spawn_blocking(f);
    let r = match tokio::time::timeout(IO_TIMEOUT, &mut task).await {
        Ok(r) => r,
        Err(_) => {
            {
                let mut s = shared.lock();
                s.up = false;
                s.last_error = Some(format!(
                    "{what} has not finished after {IO_TIMEOUT:?} (device hung?)"
                ));
            }
            let r = task.await;
            shared.set_up();
            r
        }
    };
    r.map_err(|e| LinkError::Other(format!("{what}: {e}")))
}

/// Reads every slot into `buf` (short at the end of a small file: the rest stays zero).
fn read_slots(file: &File, cache: Cache, buf: &mut Aligned) -> io::Result<()> {
    let b = buf.get_mut();
    if cache == Cache::Drop {
        posix_fadvise(
            file,
            0,
            b.len() as i64,
            PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .map_err(io::Error::from)?;
    }
    let mut done = 0;
    while done < b.len() {
        match file.read_at(&mut b[done..], done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    b[done..].fill(0);
    Ok(())
}

pub(super) async fn run(path: &Path, setup: &Setup, ctx: &mut Ctx) -> Stop {
    match run_inner(path, setup, ctx).await {
        Ok(stop) | Err(stop) => stop,
    }
}

async fn run_inner(path: &Path, setup: &Setup, ctx: &mut Ctx) -> Result<Stop, Stop> {
    let name = path.display().to_string();
    let (mine, count) = slot_of(&setup.me, &setup.nodes).ok_or_else(|| {
        LinkError::Other(format!(
            "disk {name}: this node ({}) is not among the nodes",
            setup.me
        ))
    })?;
    let p = path.to_path_buf();
    let (file, cache) = blocking(&ctx.shared, "open", move || open_disk(&p)).await??;
    let file = Arc::new(file);

    let read = async |buf: Aligned, shared: &Shared| -> Result<Aligned, LinkError> {
        let f = file.clone();
        let (buf, r) = blocking(shared, "read", move || {
            let mut buf = buf;
            let r = read_slots(&f, cache, &mut buf);
            (buf, r)
        })
        .await?;
        r.map_err(|e| LinkError::io(format!("read {name}"), e))?;
        Ok(buf)
    };

    // The baseline: what is there now is not news.
    let mut buf = read(Aligned::new(count * SLOT), &ctx.shared).await?;
    let slots = |buf: &Aligned| -> Vec<(u64, bool)> {
        buf.get()
            .chunks(SLOT)
            .map(|s| match decode_slot(s) {
                Slot::Empty => (0, false),
                Slot::Torn(c) => (c, true),
                Slot::Frame { counter, .. } => (counter, false),
            })
            .collect()
    };
    let mut last: Vec<(u64, bool)> = slots(&buf);
    let mut counter = last[mine].0;
    ctx.shared.set_up();

    let mut tick = tokio::time::interval(setup.disk_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wbuf = Some(Aligned::new(SLOT));
    // A write completed in this run: from then on `wbuf` holds my slot as I last wrote it (before,
    // what the slot holds is from an earlier run).
    let mut written = false;
    // The newest frame not written yet. Frames that arrive while a read or write is under way are
    // taken in here at once, each replacing the one before: after a write that hung (a suspended
    // path), the next one carries the latest frame, not those queued during the hang.
    let mut pending: Option<Arc<[u8]>> = None;
    loop {
        if let Some(f) = pending.take() {
            counter = counter.wrapping_add(1).max(1);
            let mut w = wbuf.take().unwrap_or_else(|| Aligned::new(SLOT));
            encode_slot(counter, &f, w.get_mut());
            let fl = file.clone();
            let offset = (mine * SLOT) as u64;
            let write = blocking(&ctx.shared, "write", move || {
                let r = fl.write_all_at(w.get(), offset);
                (w, r)
            });
            let (w, r) = absorbing(write, &mut ctx.out, &mut pending, &ctx.shared).await??;
            wbuf = Some(w);
            match r {
                Ok(()) => {
                    ctx.shared.sent(f.len());
                    written = true;
                }
                Err(e) => return Err(LinkError::io(format!("write {name} slot {mine}"), e).into()),
            }
            continue;
        }
        tokio::select! {
            _ = tick.tick() => {
                buf = absorbing(read(buf, &ctx.shared), &mut ctx.out, &mut pending, &ctx.shared).await??;
                for (i, s) in buf.get().chunks(SLOT).enumerate() {
                    if i == mine {
                        // Reads and writes take turns: the slot must hold my last write.
                        if written && wbuf.as_ref().is_some_and(|w| w.get() == s) {
                            ctx.shared.lock().own_write_seen = Some(tokio::time::Instant::now());
                        }
                        continue;
                    }
                    match decode_slot(s) {
                        Slot::Empty => {}
                        Slot::Torn(c) => {
                            // Counted once per torn write, however many polls see it.
                            if last[i] != (c, true) {
                                ctx.shared.garbage();
                                last[i] = (c, true);
                            }
                        }
                        Slot::Frame { counter: c, frame } => {
                            if last[i] != (c, false) {
                                last[i] = (c, false);
                                ctx.deliver(frame.to_vec(), None)?;
                            }
                        }
                    }
                }
            }
            f = ctx.out.recv() => {
                let Some(f) = f else { return Ok(Stop::Closed) };
                keep_newest(&mut pending, f, &ctx.shared);
                // Only the newest frame matters in a slot: skip those it supersedes.
                while let Ok(newer) = ctx.out.try_recv() {
                    keep_newest(&mut pending, newer, &ctx.shared);
                }
            }
        }
    }
}

/// Makes `f` the frame to write next; one it replaces is counted as dropped.
fn keep_newest(pending: &mut Option<Arc<[u8]>>, f: Arc<[u8]>, shared: &Shared) {
    if pending.replace(f).is_some() {
        shared.lock().send_dropped += 1;
    }
}

/// Awaits `io` while taking in the frames the daemon queues meanwhile ([`keep_newest`]), so that
/// a slow or hung device never leaves old frames in the queue. The daemon gone: `Stop::Closed`.
async fn absorbing<T>(
    io: impl Future<Output = T>,
    out: &mut mpsc::Receiver<Arc<[u8]>>,
    pending: &mut Option<Arc<[u8]>>,
    shared: &Shared,
) -> Result<T, Stop> {
    tokio::pin!(io);
    loop {
        tokio::select! {
            r = &mut io => return Ok(r),
            f = out.recv() => match f {
                Some(f) => keep_newest(pending, f, shared),
                None => return Err(Stop::Closed),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_sorted_node_names() {
        let nodes: Vec<String> = ["lb2", "lb3", "lb1", "lb2"].map(String::from).to_vec();
        assert_eq!(slot_of("lb1", &nodes), Some((0, 3)));
        assert_eq!(slot_of("lb2", &nodes), Some((1, 3)));
        assert_eq!(slot_of("lb3", &nodes), Some((2, 3)));
        assert_eq!(slot_of("lb9", &nodes), None);
    }

    #[test]
    fn slot_golden_bytes_and_round_trip() {
        let mut s = vec![0xAAu8; SLOT];
        encode_slot(0x0102, b"xyz", &mut s);
        assert_eq!(
            &s[..27],
            b"hBdk\x01\x00\x00\x03\0\0\0\0\0\0\x01\x02xyz\0\0\0\0\0\0\x01\x02"
        );
        assert!(s[27..].iter().all(|b| *b == 0));
        assert_eq!(
            decode_slot(&s),
            Slot::Frame {
                counter: 0x0102,
                frame: b"xyz"
            }
        );
        let big = vec![7u8; MAX_FRAME];
        encode_slot(u64::MAX, &big, &mut s);
        assert_eq!(
            decode_slot(&s),
            Slot::Frame {
                counter: u64::MAX,
                frame: &big
            }
        );
    }

    #[test]
    fn torn_damaged_and_empty_slots() {
        assert_eq!(decode_slot(&[0u8; SLOT]), Slot::Empty);
        assert_eq!(decode_slot(b"hBd"), Slot::Empty);
        let mut s = vec![0u8; SLOT];
        encode_slot(5, b"abc", &mut s);
        // The header of a new write landed, the tail not yet.
        s[8..16].copy_from_slice(&6u64.to_be_bytes());
        assert_eq!(decode_slot(&s), Slot::Torn(6));
        // A length past MAX_FRAME, a zero length, a foreign version.
        for (at, v) in [(6usize, [0x05u8, 0x79]), (6, [0, 0]), (4, [9, 0])] {
            let mut t = vec![0u8; SLOT];
            encode_slot(5, b"abc", &mut t);
            t[at..at + 2].copy_from_slice(&v);
            assert_eq!(decode_slot(&t), Slot::Torn(5), "{at} {v:?}");
        }
        // Cut short at the end of a small file.
        assert_eq!(decode_slot(&s[..20]), Slot::Torn(6));
    }

    #[test]
    fn aligned_buffers_are_aligned() {
        for len in [SLOT, 3 * SLOT] {
            let mut a = Aligned::new(len);
            assert_eq!(a.get().as_ptr() as usize % ALIGN, 0);
            assert_eq!(a.get_mut().len(), len);
        }
    }
}
