//! Reading replies of line-based protocols (SMTP, FTP, POP3, IMAP) for the greeting-style kinds.
//! A reply is read up to its last line (SMTP/FTP continuation lines `250-…` are followed until
//! `250 …`); at most [`super::simpletcp::READ_LIMIT`] bytes. No I/O besides the given stream.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

use super::{Down, io_reason};

/// Reads one line (without CR LF); a closed connection is an error naming `what` was awaited.
pub async fn read_line<S: AsyncBufRead + Unpin>(s: &mut S, what: &str) -> Result<String, Down> {
    let mut line = String::new();
    let n = s
        .read_line(&mut line)
        .await
        .map_err(|e| io_reason(&format!("reading {what}"), &e))?;
    if n == 0 {
        return Err(Down(format!("connection closed before the {what}")));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads an SMTP/FTP reply (RFC 5321 §4.2.1, RFC 959 §4.2): returns its code and last line.
pub async fn read_reply<S: AsyncBufRead + Unpin>(
    s: &mut S,
    what: &str,
) -> Result<(u16, String), Down> {
    let mut total = 0;
    loop {
        let line = read_line(s, what).await?;
        total += line.len();
        let code = line.get(..3).and_then(|c| c.parse::<u16>().ok());
        match (code, line.as_bytes().get(3)) {
            (Some(_), Some(b'-')) if total < super::simpletcp::READ_LIMIT => continue,
            (Some(code), _) => return Ok((code, line)),
            (None, _) => {
                return Err(Down(format!(
                    "not a reply to the {what}: {}",
                    super::simpletcp::preview(line.as_bytes())
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
