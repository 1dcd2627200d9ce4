//! Reading replies of line-based protocols (SMTP, FTP, POP3, IMAP) for the greeting-style kinds.
//! A reply is read up to its last line (SMTP/FTP continuation lines `250-…` are followed until
//! `250 …`). No I/O besides the given stream.
//!
//! Every read is capped, so a server that streams without end costs a bounded amount of memory and
//! is down at once, not at its timeout: a line at [`LINE_LIMIT`] bytes (its CR LF included), a
//! reply with all its continuation lines (or IMAP's untagged lines before a tagged answer) at
//! [`REPLY_LIMIT`] bytes. The reason names the cap (`greeting: line longer than 8192 bytes`).

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::simpletcp::preview;
use super::{Down, io_reason};

/// The longest line read: 8 KiB. SMTP allows reply lines of 512 bytes (RFC 5321 §4.5.3.1.5), FTP
/// and POP3 are as short; IMAP greetings carry a capability list of a few hundred bytes.
pub const LINE_LIMIT: usize = 8 * 1024;

/// The most read for one reply, continuation lines included: 64 KiB (an EHLO answer lists a dozen
/// extensions; an FTP greeting banner a few lines).
pub const REPLY_LIMIT: usize = 64 * 1024;

/// Reads one line (without CR LF); a closed connection is an error naming `what` was awaited.
pub async fn read_line<S: AsyncBufRead + Unpin>(s: &mut S, what: &str) -> Result<String, Down> {
    let mut budget = REPLY_LIMIT;
    read_line_within(s, what, &mut budget).await
}

/// [`read_line`] that also takes the line's bytes from `budget` (what is left of [`REPLY_LIMIT`]
/// for the reply the line belongs to) and fails when the budget runs out.
pub async fn read_line_within<S: AsyncBufRead + Unpin>(
    s: &mut S,
    what: &str,
    budget: &mut usize,
) -> Result<String, Down> {
    let mut line = Vec::new();
    loop {
        let buf = s
            .fill_buf()
            .await
            .map_err(|e| io_reason(&format!("reading {what}"), &e))?;
        if buf.is_empty() {
            if line.is_empty() {
                return Err(Down(format!("connection closed before the {what}")));
            }
            // The last line lacks its newline: taken as it is, as tokio's read_line did.
            break;
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        if line.len() + take > LINE_LIMIT.min(*budget) {
            let room = LINE_LIMIT.min(*budget) - line.len();
            line.extend_from_slice(&buf[..room.min(take)]);
            return Err(Down(if *budget < LINE_LIMIT {
                format!("{what}: reply longer than {REPLY_LIMIT} bytes")
            } else {
                format!(
                    "{what}: line longer than {LINE_LIMIT} bytes: {}",
                    preview(&line)
                )
            }));
        }
        line.extend_from_slice(&buf[..take]);
        s.consume(take);
        if done {
            break;
        }
    }
    *budget -= line.len();
    while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Reads an SMTP/FTP reply (RFC 5321 §4.2.1, RFC 959 §4.2): returns its code and last line.
pub async fn read_reply<S: AsyncBufRead + Unpin>(
    s: &mut S,
    what: &str,
) -> Result<(u16, String), Down> {
    let mut budget = REPLY_LIMIT;
    loop {
        let line = read_line_within(s, what, &mut budget).await?;
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        match (code, line.as_bytes().get(3)) {
            (Some(_), Some(b'-')) => continue,
            (Some(code), _) => return Ok((code, line)),
            (None, _) => {
                return Err(Down(format!(
                    "not a reply to the {what}: {}",
                    preview(line.as_bytes())
                )));
            }
        }
    }
}

/// Sends `line` followed by CR LF.
pub async fn send<S: AsyncWrite + Unpin>(s: &mut S, line: &str) -> Result<(), Down> {
    s.write_all(format!("{line}\r\n").as_bytes())
        .await
        .map_err(|e| io_reason("send", &e))
}

/// Expects a reply with a code in `ok`, else a reason naming the step.
pub async fn expect<S: AsyncBufRead + Unpin>(
    s: &mut S,
    what: &str,
    ok: u16,
) -> Result<String, Down> {
    let (code, line) = read_reply(s, what).await?;
    if code != ok {
        return Err(Down(format!("{what}: {line}")));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    /// A reader over `bytes`, handing them out `chunk` bytes at a time.
    fn reader(bytes: Vec<u8>, chunk: usize) -> BufReader<std::io::Cursor<Vec<u8>>> {
        BufReader::with_capacity(chunk, std::io::Cursor::new(bytes))
    }

    #[tokio::test]
    async fn lines_and_replies() {
        let mut r = reader(b"220-a\r\n220-b\r\n220 c\r\n+OK x\nlast".to_vec(), 3);
        assert_eq!(
            read_reply(&mut r, "greeting").await.unwrap(),
            (220, "220 c".to_string())
        );
        assert_eq!(read_line(&mut r, "x").await.unwrap(), "+OK x");
        assert_eq!(read_line(&mut r, "x").await.unwrap(), "last");
        assert_eq!(
            read_line(&mut r, "answer").await.unwrap_err().0,
            "connection closed before the answer"
        );
    }

    #[tokio::test]
    async fn a_line_is_capped() {
        let mut exact = vec![b'x'; LINE_LIMIT - 2];
        exact.extend_from_slice(b"\r\n");
        assert_eq!(
            read_line(&mut reader(exact, 4096), "greeting")
                .await
                .unwrap()
                .len(),
            LINE_LIMIT - 2
        );
        let mut over = vec![b'x'; LINE_LIMIT - 1];
        over.extend_from_slice(b"\r\n");
        let e = read_line(&mut reader(over, 4096), "greeting")
            .await
            .unwrap_err();
        assert!(
            e.0.starts_with("greeting: line longer than 8192 bytes: \"xxx"),
            "{e}"
        );
        // Endless: no newline ever.
        let mut r = reader(vec![b'y'; 10 * LINE_LIMIT], 1000);
        assert!(read_line(&mut r, "greeting").await.is_err());
        assert!(r.into_inner().position() <= (LINE_LIMIT + 1000) as u64);
    }

    #[tokio::test]
    async fn continuation_lines_are_capped() {
        let endless = b"250-x\r\n".repeat(REPLY_LIMIT);
        let mut r = reader(endless, 4096);
        let e = read_reply(&mut r, "EHLO").await.unwrap_err();
        assert_eq!(e.0, "EHLO: reply longer than 65536 bytes");
        assert!(r.into_inner().position() <= (REPLY_LIMIT + 4096) as u64);
        let mut fits = b"250-x\r\n".repeat(REPLY_LIMIT / 7 - 1);
        fits.extend_from_slice(b"250 end\r\n");
        assert_eq!(
            read_reply(&mut reader(fits, 4096), "EHLO").await.unwrap().0,
            250
        );
    }
}
