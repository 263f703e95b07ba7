//! SMTP (keepalived's SMTP_CHECK): read the greeting, which must be 220; send
//! `HELO name`, which must be answered 2xx; then `QUIT`, and read its answer so that the
//! server sees an ordinary end of session (RFC 5321 §4.1.1.1, §4.1.1.10, §4.2).

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::net::{Source, connect_tcp, strip_os_error};
use super::{Verdict, excerpt};
use crate::failure::{Failure, FailureCause};

/// A reply longer than this is refused (RFC 5321 §4.5.3.1.5: 512 octets a line; a
/// multi-line greeting or EHLO reply has a few lines).
const MAX_REPLY: usize = 8 * 1024;

#[derive(Debug)]
pub(crate) struct SmtpProbe {
    addr: SocketAddr,
    source: Source,
    /// `HELO name\r\n`, built once.
    helo: Vec<u8>,
    helo_name: String,
}

/// One SMTP reply: its code and the text of its last line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) text: String,
}

/// Parses one complete reply from the start of `buf` (RFC 5321 §4.2: lines `ddd-text`
/// continue, `ddd text` or `ddd` ends it; every line has the same code). `Ok(None)` while
/// incomplete; else the reply and the bytes it took.
pub(crate) fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, String> {
    let mut offset = 0;
    let mut code = None;
    while let Some(end) = buf[offset..].iter().position(|&b| b == b'\n') {
        let line = &buf[offset..offset + end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        offset += end + 1;
        let digits = line
            .get(..3)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| d.parse::<u16>().ok())
            .filter(|c| (200..=599).contains(c))
            .ok_or_else(|| format!("not an SMTP reply: \"{}\"", excerpt(line)))?;
        if code.is_some_and(|c| c != digits) {
            return Err(format!(
                "reply lines with different codes: {} and {digits}",
                code.unwrap_or_default()
            ));
        }
        code = Some(digits);
        match line.get(3) {
            Some(b'-') => continue,
            None | Some(b' ') => {
                let text = String::from_utf8_lossy(line.get(4..).unwrap_or_default())
                    .trim()
                    .to_string();
                return Ok(Some((Reply { code: digits, text }, offset)));
            }
            Some(_) => return Err(format!("not an SMTP reply: \"{}\"", excerpt(line))),
        }
    }
    Ok(None)
}

impl SmtpProbe {
    pub(crate) fn new(addr: SocketAddr, source: Source, helo_name: &str) -> Result<Self, String> {
        if helo_name.is_empty()
            || helo_name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!("HELO name `{helo_name}` is empty or has spaces"));
        }
        Ok(SmtpProbe {
            addr,
            source,
            helo: format!("HELO {helo_name}\r\n").into_bytes(),
            helo_name: helo_name.to_string(),
        })
    }

    pub(crate) async fn run(&self) -> Verdict {
        let addr = self.addr;
        let mut stream = connect_tcp(addr, &self.source).await?;
        let mut buf = Vec::with_capacity(512);
        let greeting = read_reply(&mut stream, &mut buf)
            .await
            .map_err(|f| f.map_text(|e| format!("SMTP greeting from {addr}: {e}")))?;
        if greeting.code != 220 {
            return Err(Failure::new(
                FailureCause::SmtpReply,
                format!(
                    "SMTP greeting from {addr} is {} (220 expected): {}",
                    greeting.code, greeting.text
                ),
            ));
        }
        let send_failed = |e: std::io::Error| {
            Failure::io(
                &e,
                format!("sending to {addr} failed: {}", strip_os_error(&e)),
            )
        };
        stream.write_all(&self.helo).await.map_err(send_failed)?;
        let helo = read_reply(&mut stream, &mut buf)
            .await
            .map_err(|f| f.map_text(|e| format!("SMTP HELO {} to {addr}: {e}", self.helo_name)))?;
        if !(200..300).contains(&helo.code) {
            return Err(Failure::new(
                FailureCause::SmtpReply,
                format!(
                    "SMTP {} from {addr} to HELO {}: {}",
                    helo.code, self.helo_name, helo.text
                ),
            ));
        }
        // The check has passed; QUIT and its answer only end the session politely, so
        // their failure does not fail it.
        if stream.write_all(b"QUIT\r\n").await.is_ok() {
            let _ = read_reply(&mut stream, &mut buf).await;
        }
        Ok(format!(
            "SMTP {} from {addr} to HELO {}",
            helo.code, self.helo_name
        ))
    }
}

/// Reads until one whole reply is in `buf`, returns it and drops it from `buf`.
async fn read_reply<Io: AsyncRead + Unpin>(
    io: &mut Io,
    buf: &mut Vec<u8>,
) -> Result<Reply, Failure> {
    loop {
        if let Some((reply, used)) =
            parse_reply(buf).map_err(|e| Failure::new(FailureCause::Malformed, e))?
        {
            buf.drain(..used);
            return Ok(reply);
        }
        if buf.len() >= MAX_REPLY {
            return Err(Failure::new(
                FailureCause::Malformed,
                format!("reply longer than {MAX_REPLY} bytes"),
            ));
        }
        buf.reserve(512);
        let n = io
            .read_buf(buf)
            .await
            .map_err(|e| Failure::io(&e, format!("reading failed: {}", strip_os_error(&e))))?;
        if n == 0 {
            return Err(Failure::new(
                FailureCause::Closed,
                if buf.is_empty() {
                    "connection closed without a reply".to_string()
                } else {
                    format!("connection closed inside a reply: \"{}\"", excerpt(buf))
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(text: &str) -> Result<Option<(Reply, usize)>, String> {
        parse_reply(text.as_bytes())
    }

    #[test]
    fn single_and_multi_line_replies() {
        let (r, used) = reply("220 mx.example.org ESMTP ready\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(
            (r.code, r.text.as_str(), used),
            (220, "mx.example.org ESMTP ready", 32)
        );
        let text = "250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\nrest";
        let (r, used) = reply(text).expect("valid").expect("complete");
        assert_eq!(
            (r.code, r.text.as_str(), used),
            (250, "8BITMIME", text.len() - 4)
        );
        // A bare code line, and LF without CR.
        assert_eq!(
            reply("221\n").expect("valid").expect("complete").0.code,
            221
        );
        assert_eq!(reply("220-first\r\n220 sec").expect("valid"), None);
        assert_eq!(reply("").expect("valid"), None);
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(reply("HTTP/1.1 400 Bad Request\r\n").is_err());
        assert!(reply("220-a\r\n250 b\r\n").is_err());
        assert!(reply("2200 x\r\n").is_err());
        assert!(reply("099 x\r\n").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_error_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let _ = parse_reply(&bytes);
        }
    }
}
