//! HTTP/1.1 response parsing for checks, sans-IO: the head (status and how the body is
//! framed) and an incremental chunked decoder. The request side is a fixed byte string
//! built once per check.

use thiserror::Error;

/// Header lines beyond this make the response invalid (a health endpoint has a dozen).
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum WireError {
    #[error("invalid HTTP response: {0}")]
    Invalid(String),
    #[error("invalid chunked body: {0}")]
    Chunked(&'static str),
}

/// How the body of a response is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: a HEAD response, or 1xx/204/304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// Bytes of the buffer the head took; the body starts there.
    pub(crate) len: usize,
}

/// Parses a response head from the start of `buf`; `None` while incomplete. Interim 1xx
/// responses are skipped. `head_request`: the request was HEAD, so there is no body.
pub(crate) fn parse_head(buf: &[u8], head_request: bool) -> Result<Option<Head>, WireError> {
    let mut offset = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let len = match response.parse(&buf[offset..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(WireError::Invalid(e.to_string())),
        };
        let status = response.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            offset += len;
            continue;
        }
        let framing = framing(status, response.headers, head_request)?;
        return Ok(Some(Head {
            status,
            framing,
            len: offset + len,
        }));
    }
}

fn framing(
    status: u16,
    headers: &[httparse::Header<'_>],
    head_request: bool,
) -> Result<Framing, WireError> {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let mut length = None;
    let mut chunked = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked must be the last coding; anything else is delimited by close.
            let value = String::from_utf8_lossy(h.value);
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            if !chunked {
                return Ok(Framing::UntilClose);
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| WireError::Invalid("bad Content-Length".into()))?;
            if length.is_some_and(|l| l != value) {
                return Err(WireError::Invalid(
                    "conflicting Content-Length headers".into(),
                ));
            }
            length = Some(value);
        }
    }
    Ok(match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    })
}

/// Decodes a chunked body incrementally.
#[derive(Debug, Default)]
pub(crate) struct ChunkedDecoder {
    state: ChunkState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// The chunk-size line: hex digits, then optional extensions (ignored) to the LF.
    Size {
        size: u64,
        digits: bool,
        extension: bool,
    },
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd {
        cr: bool,
    },
    /// Trailer lines after the last chunk, up to an empty line.
    Trailer {
        blank: bool,
    },
    Done,
}

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState::Size {
            size: 0,
            digits: false,
            extension: false,
        }
    }
}

impl ChunkedDecoder {
    /// Feeds received bytes, appending body data to `out`. Returns true once the body is
    /// complete (bytes after the end are ignored).
    pub(crate) fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<bool, WireError> {
        while !input.is_empty() {
            if let ChunkState::Data(remaining) = self.state {
                let take = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                out.extend_from_slice(&input[..take]);
                input = &input[take..];
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    ChunkState::DataEnd { cr: false }
                } else {
                    ChunkState::Data(left)
                };
                continue;
            }
            let byte = input[0];
            input = &input[1..];
            self.state = match (self.state, byte) {
                (ChunkState::Done, _) => return Ok(true),
                // Handled above, before a byte is taken.
                (ChunkState::Data(_), _) => {
                    return Err(WireError::Chunked("internal decoder state"));
                }
                (ChunkState::Size { digits: false, .. }, b'\r' | b'\n' | b';') => {
                    return Err(WireError::Chunked("chunk size expected"));
                }
                (ChunkState::Size { size: 0, .. }, b'\n') => ChunkState::Trailer { blank: true },
                (ChunkState::Size { size, .. }, b'\n') => ChunkState::Data(size),
                (
                    ChunkState::Size {
                        size,
                        extension: false,
                        ..
                    },
                    _,
                ) if byte.is_ascii_hexdigit() => {
                    let digit = u64::from((byte as char).to_digit(16).unwrap_or(0));
                    let size = size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(digit))
                        .ok_or(WireError::Chunked("chunk size overflows"))?;
                    ChunkState::Size {
                        size,
                        digits: true,
                        extension: false,
                    }
                }
                (ChunkState::Size { digits: false, .. }, _) => {
                    return Err(WireError::Chunked("chunk size expected"));
                }
                // CR, whitespace or `;ext=value`: skipped to the end of the line.
                (ChunkState::Size { size, .. }, _) => ChunkState::Size {
                    size,
                    digits: true,
                    extension: true,
                },
                (ChunkState::DataEnd { cr: false }, b'\r') => ChunkState::DataEnd { cr: true },
                (ChunkState::DataEnd { .. }, b'\n') => ChunkState::default(),
                (ChunkState::DataEnd { .. }, _) => {
                    return Err(WireError::Chunked("missing CRLF after chunk data"));
                }
                (ChunkState::Trailer { blank: true }, b'\n') => ChunkState::Done,
                (ChunkState::Trailer { .. }, b'\n') => ChunkState::Trailer { blank: true },
                (ChunkState::Trailer { blank }, b'\r') => ChunkState::Trailer { blank },
                (ChunkState::Trailer { .. }, _) => ChunkState::Trailer { blank: false },
            };
        }
        Ok(self.state == ChunkState::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<Head>, WireError> {
        parse_head(text.as_bytes(), false)
    }

    #[test]
    fn heads_and_framing() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .expect("valid")
            .expect("complete");
        assert_eq!((h.status, h.framing, h.len), (200, Framing::Length(2), 38));
        assert_eq!(head("HTTP/1.1 200 OK\r\nContent-Le").expect("valid"), None);
        let h = head("HTTP/1.1 503 x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Chunked);
        let h = head("HTTP/1.0 200 OK\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::UntilClose);
        let h = head("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Empty);
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true)
            .expect("ok")
            .expect("complete");
        assert_eq!(h.framing, Framing::Empty);
        assert!(head("SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    }

    #[test]
    fn interim_responses_are_skipped() {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let h = head(text).expect("ok").expect("complete");
        assert_eq!((h.status, h.len), (200, text.len()));
        assert_eq!(
            head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2").expect("ok"),
            None
        );
    }

    fn decode_in_pieces(body: &[u8], piece: usize) -> Result<(Vec<u8>, bool), WireError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut done = false;
        for part in body.chunks(piece) {
            done = d.feed(part, &mut out)?;
        }
        Ok((out, done))
    }

    #[test]
    fn chunked_bodies_in_any_split() {
        let body =
            b"3\r\nall\r\n5;name=value\r\n good\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for piece in 1..body.len() {
            let (out, done) = decode_in_pieces(body, piece).expect("valid");
            assert_eq!(out, b"all good0123456789", "piece {piece}");
            assert!(done);
        }
        let (out, done) = decode_in_pieces(b"4\r\nhalf", 3).expect("valid so far");
        assert_eq!((out.as_slice(), done), (&b"half"[..], false));
        assert!(decode_in_pieces(b"zz\r\n", 1).is_err());
        assert!(decode_in_pieces(b"3\r\nabcX\r\n", 2).is_err());
        assert!(decode_in_pieces(b"fffffffffffffffff\r\n", 4).is_err());
        assert_eq!(
            decode_in_pieces(b"0\r\n\r\n", 1).expect("empty"),
            (vec![], true)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_error_without_panicking(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            head_request in proptest::prelude::any::<bool>(),
        ) {
            let _ = parse_head(&bytes, head_request);
            let mut out = Vec::new();
            let _ = ChunkedDecoder::default().feed(&bytes, &mut out);
        }

        #[test]
        fn chunked_round_trip(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..300), 0..8),
            piece in 1usize..64,
        ) {
            let mut encoded = Vec::new();
            for c in &chunks {
                encoded.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                encoded.extend_from_slice(c);
                encoded.extend_from_slice(b"\r\n");
            }
            encoded.extend_from_slice(b"0\r\n\r\n");
            let (out, done) = decode_in_pieces(&encoded, piece).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert!(done);
            proptest::prop_assert_eq!(out, chunks.concat());
        }
    }
}
