//! The serial link: a tty (or pty) in raw mode, frames delimited with COBS.
//!
//! A serial line is a byte stream that may carry line noise, and a reader may start in the middle
//! of a frame. Each frame goes on the wire as `0x00`, its COBS encoding (Consistent Overhead Byte
//! Stuffing: no zero byte inside, at most one byte of overhead per 254), `0x00`. The zero before
//! the frame ends whatever partial frame or noise preceded it, so the receiver resynchronises at
//! the next delimiter whatever came before. The [`Decoder`] keeps at most [`MAX_ENCODED`] bytes:
//! a longer run without a delimiter is discarded up to the next zero and counted as garbage, as is
//! a run that does not decode or decodes to more than [`MAX_FRAME`]. Empty runs (two zeros in a
//! row) are ignored.
//!
//! The tty is opened non-blocking and driven through tokio's `AsyncFd`; a write that cannot finish
//! within [`write_timeout`] is abandoned (the receiver drops the partial frame at the next zero).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use nix::sys::termios::{self, BaudRate, SetArg, SpecialCharacterIndices};
use tokio::io::unix::AsyncFd;

use super::{Ctx, LinkError, MAX_FRAME, Stop};

/// The longest COBS encoding of a frame (without its delimiters).
pub const MAX_ENCODED: usize = MAX_FRAME + MAX_FRAME / 254 + 1;

/// The bytes that carry `frame` on the line: delimiter, COBS encoding, delimiter.
pub fn encode(frame: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + frame.len() / 254 + 3);
    out.push(0);
    let mut code_at = out.len();
    out.push(0);
    let mut code = 1u8;
    for &b in frame {
        if b != 0 {
            out.push(b);
            code += 1;
        }
        if b == 0 || code == 0xFF {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        }
    }
    out[code_at] = code;
    out.push(0);
    out
}

/// The frame inside one run between delimiters, or `None` when it is not valid COBS.
fn cobs_decode(run: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(run.len());
    let mut i = 0;
    while i < run.len() {
        let code = run[i] as usize;
        if code == 0 {
            return None;
        }
        let end = i + code;
        if end > run.len() {
            return None;
        }
        out.extend_from_slice(&run[i + 1..end]);
        i = end;
        if code < 0xFF && i < run.len() {
            out.push(0);
        }
    }
    Some(out)
}

/// What the decoder found in the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A frame (1..=[`MAX_FRAME`] bytes).
    Frame(Vec<u8>),
    /// A run that was not a frame (noise, a cut frame, an overlong run).
    Garbage,
}

/// Splits a byte stream into frames at the delimiters; holds at most [`MAX_ENCODED`] bytes.
#[derive(Debug, Default)]
pub struct Decoder {
    run: Vec<u8>,
    /// The current run grew past [`MAX_ENCODED`]: skip to the next delimiter.
    overlong: bool,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Feeds `bytes`, calling `found` for each complete run.
    pub fn push(&mut self, bytes: &[u8], mut found: impl FnMut(Decoded)) {
        for &b in bytes {
            if b == 0 {
                if self.overlong {
                    found(Decoded::Garbage);
                } else if !self.run.is_empty() {
                    match cobs_decode(&self.run) {
                        Some(f) if !f.is_empty() && f.len() <= MAX_FRAME => {
                            found(Decoded::Frame(f))
                        }
                        _ => found(Decoded::Garbage),
                    }
                }
                self.run.clear();
                self.overlong = false;
            } else if !self.overlong {
                if self.run.len() == MAX_ENCODED {
                    self.run.clear();
                    self.overlong = true;
                } else {
                    self.run.push(b);
                }
            }
        }
    }
}

/// termios' constant for a baud rate.
fn baud_rate(baud: u32) -> Result<BaudRate, LinkError> {
    Ok(match baud {
        1200 => BaudRate::B1200,
        2400 => BaudRate::B2400,
        4800 => BaudRate::B4800,
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115200 => BaudRate::B115200,
        230400 => BaudRate::B230400,
        460800 => BaudRate::B460800,
        921600 => BaudRate::B921600,
        _ => return Err(LinkError::Baud(baud)),
    })
}

/// How long one frame's write may take: four times its time on the wire (10 bits a byte), at
/// least a second.
pub fn write_timeout(len: usize, baud: u32) -> Duration {
    let wire = Duration::from_micros(len as u64 * 10 * 1_000_000 / u64::from(baud.max(1)));
    (wire * 4).max(Duration::from_secs(1))
}

/// Opens `device` non-blocking and sets raw mode at `baud`, local line (no modem control), 8N1.
fn open_tty(device: &Path, baud: u32) -> Result<File, LinkError> {
    let rate = baud_rate(baud)?;
    let name = device.display().to_string();
    let fd = open(
        device,
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| LinkError::nix(format!("open {name}"), e))?;
    let mut t = termios::tcgetattr(&fd)
        .map_err(|e| LinkError::nix(format!("{name}: not a tty (tcgetattr)"), e))?;
    termios::cfmakeraw(&mut t);
    termios::cfsetspeed(&mut t, rate).map_err(|e| LinkError::nix(format!("{name}: speed"), e))?;
    t.control_flags |= termios::ControlFlags::CLOCAL | termios::ControlFlags::CREAD;
    t.control_flags &= !(termios::ControlFlags::CRTSCTS
        | termios::ControlFlags::CSTOPB
        | termios::ControlFlags::PARENB);
    // VMIN 1: with O_NONBLOCK an empty line reads EAGAIN; with VMIN 0 it would read 0, which is
    // indistinguishable from a hangup.
    t.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    t.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    termios::tcsetattr(&fd, SetArg::TCSANOW, &t)
        .map_err(|e| LinkError::nix(format!("{name}: tcsetattr"), e))?;
    // Whatever was waiting in the line before we came is not ours.
    let _ = termios::tcflush(&fd, termios::FlushArg::TCIOFLUSH);
    Ok(File::from(fd))
}

pub(super) async fn run(device: &Path, baud: u32, ctx: &mut Ctx) -> Stop {
    let name = device.display().to_string();
    let tty = match open_tty(device, baud) {
        Ok(f) => f,
        Err(e) => return e.into(),
    };
    // SAFETY: `tty` is a `File` that owns its open descriptor; the `AsyncFd` owns the `File` and
    // nothing closes or replaces the descriptor until the `AsyncFd` is dropped, and `as_raw_fd`
    // always returns that one descriptor. (tokio has no safe constructor for a plain fd.)
    let tty = match unsafe { AsyncFd::register(tty) } {
        Ok(t) => t,
        Err(e) => return LinkError::io(format!("{name}: register"), e.into()).into(),
    };
    ctx.shared.set_up();
    let mut decoder = Decoder::new();
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            r = tty.readable() => {
                let mut guard = match r {
                    Ok(g) => g,
                    Err(e) => return LinkError::io(format!("{name}: poll"), e).into(),
                };
                match guard.try_io(|t| t.get_ref().read(&mut buf)) {
                    Err(_would_block) => continue,
                    // The other end of a pty closed, or a USB adapter went away.
                    Ok(Ok(0)) => return LinkError::Other(format!("{name}: end of file")).into(),
                    Ok(Err(e)) => return LinkError::io(format!("read {name}"), e).into(),
                    Ok(Ok(n)) => {
                        let mut closed = false;
                        decoder.push(&buf[..n], |d| match d {
                            Decoded::Frame(f) => closed |= ctx.deliver(f, None).is_err(),
                            Decoded::Garbage => ctx.shared.garbage(),
                        });
                        if closed {
                            return Stop::Closed;
                        }
                    }
                }
            }
            f = ctx.out.recv() => {
                let Some(f) = f else { return Stop::Closed };
                let wire = encode(&f);
                let limit = write_timeout(wire.len(), baud);
                match tokio::time::timeout(limit, write_all(&tty, &wire)).await {
                    Ok(Ok(())) => ctx.shared.sent(f.len()),
                    Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                        return LinkError::io(format!("write {name}"), e).into();
                    }
                    Ok(Err(e)) => ctx.shared.send_error(format!("write {name}: {e}")),
                    Err(_) => ctx.shared.send_error(format!(
                        "write {name}: not done within {limit:?} (line blocked?)"
                    )),
                }
            }
        }
    }
}

async fn write_all(tty: &AsyncFd<File>, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let mut guard = tty.writable().await?;
        match guard.try_io(|t| t.get_ref().write(bytes)) {
            Ok(Ok(0)) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(Ok(n)) => bytes = &bytes[n..],
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Decoded> {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.push(bytes, |x| out.push(x));
        out
    }

    #[test]
    fn golden_encodings() {
        // The classic COBS examples, between our delimiters.
        assert_eq!(encode(&[0x00]), [0, 0x01, 0x01, 0]);
        assert_eq!(
            encode(&[0x11, 0x22, 0x00, 0x33]),
            [0, 3, 0x11, 0x22, 2, 0x33, 0]
        );
        assert_eq!(encode(&[0x11, 0x00, 0x00]), [0, 2, 0x11, 1, 1, 0]);
        let run: Vec<u8> = (1..=254).collect();
        let mut want = vec![0, 0xFF];
        want.extend(&run);
        want.extend([1, 0]);
        assert_eq!(encode(&run), want);
    }

    #[test]
    fn round_trips_every_shape_up_to_max_frame() {
        for len in [1, 2, 253, 254, 255, 508, 509, 1000, MAX_FRAME] {
            for fill in [0u8, 1, 0xFF] {
                let frame: Vec<u8> = (0..len)
                    .map(|i| {
                        if i % 7 == 3 {
                            0
                        } else {
                            fill.wrapping_add(i as u8)
                        }
                    })
                    .collect();
                let wire = encode(&frame);
                assert!(wire.len() <= MAX_ENCODED + 2, "len {len}");
                assert!(!wire[1..wire.len() - 1].contains(&0));
                assert_eq!(decode_all(&wire), [Decoded::Frame(frame)], "len {len}");
            }
        }
    }

    #[test]
    fn resyncs_after_noise_and_cut_frames() {
        let a = vec![1, 0, 2, 3];
        let b = vec![9; 300];
        let mut wire = b"noise\xff\x01".to_vec();
        wire.extend(encode(&a));
        // A frame cut short by the next frame's leading delimiter.
        wire.extend(&encode(&b)[..100]);
        wire.extend(encode(&b));
        assert_eq!(
            decode_all(&wire),
            [
                Decoded::Garbage,
                Decoded::Frame(a),
                Decoded::Garbage,
                Decoded::Frame(b)
            ]
        );
    }

    #[test]
    fn a_frame_split_across_pushes_is_reassembled() {
        let f: Vec<u8> = (0..=255).collect();
        let wire = encode(&f);
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for chunk in wire.chunks(7) {
            d.push(chunk, |x| out.push(x));
        }
        assert_eq!(out, [Decoded::Frame(f)]);
    }

    #[test]
    fn an_overlong_run_is_dropped_bounded_and_the_next_frame_decodes() {
        let mut wire = vec![0x55; 100_000];
        wire.extend(encode(b"ok"));
        let mut d = Decoder::new();
        let mut out = Vec::new();
        for chunk in wire.chunks(4096) {
            d.push(chunk, |x| out.push(x));
            assert!(d.run.capacity() <= MAX_ENCODED.next_power_of_two());
        }
        assert_eq!(out, [Decoded::Garbage, Decoded::Frame(b"ok".to_vec())]);
    }

    #[test]
    fn invalid_cobs_and_oversized_frames_are_garbage() {
        // A code byte pointing past the run's end.
        assert_eq!(decode_all(&[0, 5, 1, 2, 0]), [Decoded::Garbage]);
        // A valid encoding of MAX_FRAME + 1 bytes fits the buffer but is not a frame.
        let big = vec![0u8; MAX_FRAME + 1];
        let wire = encode(&big);
        assert!(wire.len() - 2 <= MAX_ENCODED);
        assert_eq!(decode_all(&wire), [Decoded::Garbage]);
        // Delimiters alone are nothing.
        assert_eq!(decode_all(&[0, 0, 0]), []);
    }

    #[test]
    fn baud_rates_and_write_timeouts() {
        assert!(baud_rate(115200).is_ok());
        assert_eq!(
            baud_rate(12345).unwrap_err().to_string(),
            "baud rate 12345 is not supported (one of 1200 2400 4800 9600 19200 38400 57600 115200 230400 460800 921600)"
        );
        assert_eq!(write_timeout(100, 115200), Duration::from_secs(1));
        // 1400 bytes at 9600 baud take 1.46 s on the wire.
        assert!(write_timeout(1400, 9600) > Duration::from_secs(5));
    }
}
