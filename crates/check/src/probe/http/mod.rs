//! HTTP and HTTPS: one request on a fresh connection (a pooled one would hide a dead
//! server) per URL, status in the accepted ranges, optionally a body pattern or digest
//! (SHA-256, or MD5 as keepalived's `digest`).
//!
//! The client is our own, on `httparse`: a check sends one fixed request and reads one
//! response, so the request bytes are built once per check, and a check in flight holds
//! a 1 KiB buffer where a general client holds tens of KiB: at thousands of slow servers
//! at once that decides the daemon's memory (measured in docs/benchmarks.md).

mod wire;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use md5::Md5;
use regex::bytes::Regex;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use vigil_config::{HttpCheck, HttpMethod};

use super::net::{OpenError, Source, connect_send, connect_tcp, strip_os_error};
use super::{Verdict, tls};
use crate::failure::{Failure, FailureCause};
use wire::{ChunkedDecoder, Framing};

/// A response head larger than this is refused.
const MAX_HEAD: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct HttpProbe {
    addr: SocketAddr,
    source: Source,
    method: &'static str,
    /// Requested in order; all must pass. Never empty.
    urls: Vec<UrlProbe>,
    max_body_bytes: u64,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

/// One URL made ready: its request bytes and what its response must be.
#[derive(Debug)]
struct UrlProbe {
    path: String,
    /// The whole request, built once.
    request: Vec<u8>,
    expect_status: Vec<(u16, u16)>,
    body_regex: Option<Regex>,
    regex_no_match: bool,
    body_sha256: Option<String>,
    body_md5: Option<String>,
    /// `from ADDR GET /path`, the end of every status reason, made once.
    from: String,
}

impl UrlProbe {
    fn checks_body(&self) -> bool {
        self.body_regex.is_some() || self.body_sha256.is_some() || self.body_md5.is_some()
    }
}

impl HttpProbe {
    pub(crate) fn new(addr: SocketAddr, source: Source, spec: &HttpCheck) -> Result<Self, String> {
        let tls = match &spec.tls {
            Some(t) => Some((
                tls::client_config(t)?,
                tls::server_name(t, spec.host.as_deref(), addr.ip())?,
            )),
            None => None,
        };
        let method = match spec.method {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        };
        let host = spec.host.clone().unwrap_or_else(|| addr.to_string());
        let unsafe_char = |c: char| c.is_ascii_control() || c == ' ';
        if host.chars().any(unsafe_char) {
            return Err(format!("host `{host}` has spaces or control characters"));
        }
        if spec.urls.is_empty() {
            return Err("no url to request".into());
        }
        let mut urls = Vec::with_capacity(spec.urls.len());
        for url in &spec.urls {
            if url.path.chars().any(unsafe_char) {
                return Err(format!(
                    "path `{}` has spaces or control characters",
                    url.path
                ));
            }
            let body_regex = url
                .body_regex
                .as_deref()
                .map(|re| Regex::new(re).map_err(|e| format!("invalid body pattern: {e}")))
                .transpose()?;
            let request = format!(
                "{method} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: vigil-check\r\nAccept: */*\r\nConnection: close\r\n\r\n",
                url.path
            )
            .into_bytes();
            urls.push(UrlProbe {
                path: url.path.clone(),
                request,
                expect_status: url.expect_status.clone(),
                body_regex,
                regex_no_match: url.regex_no_match,
                body_sha256: url.body_sha256.as_ref().map(|h| h.to_ascii_lowercase()),
                body_md5: url.body_md5.as_ref().map(|h| h.to_ascii_lowercase()),
                from: format!("from {addr} {method} {}", url.path),
            });
        }
        Ok(HttpProbe {
            addr,
            source,
            method,
            urls,
            max_body_bytes: spec.max_body_bytes,
            tls,
        })
    }

    /// `GET /healthz`, or `GET /a,/b` for several URLs.
    pub(crate) fn request_line(&self) -> String {
        let paths: Vec<&str> = self.urls.iter().map(|u| u.path.as_str()).collect();
        format!("{} {}", self.method, paths.join(","))
    }

    /// Requests every URL in turn, each on a fresh connection (as keepalived does); the
    /// first failure is the verdict.
    pub(crate) async fn run(&self) -> Verdict {
        let mut seen = Vec::new();
        for url in &self.urls {
            seen.push(self.run_url(url).await?);
        }
        Ok(seen.join("; "))
    }

    async fn run_url(&self, url: &UrlProbe) -> Verdict {
        match &self.tls {
            None => {
                // The request goes out with the connect (see `connect_send`): on a nearby
                // server, one wakeup per check (the response), not two.
                let conn = connect_send(self.addr, &self.source, &url.request)
                    .await
                    .map_err(|e| match e {
                        OpenError::Connect(reason) => reason,
                        OpenError::Send(e) => self.send_failed(url, &e),
                    })?;
                self.read_response(url, conn.into_stream(self.addr)?).await
            }
            // Boxed: the TLS session state would otherwise make every plain check's
            // future as large as an https one.
            Some((config, name)) => {
                let stream = connect_tcp(self.addr, &self.source).await?;
                Box::pin(self.exchange_tls(url, stream, config, name)).await
            }
        }
    }

    fn send_failed(&self, url: &UrlProbe, e: &std::io::Error) -> Failure {
        Failure::io(
            e,
            format!(
                "{} {} {}: sending the request failed: {}",
                self.addr,
                self.method,
                url.path,
                strip_os_error(e)
            ),
        )
    }

    async fn exchange_tls(
        &self,
        url: &UrlProbe,
        stream: super::net::TcpConn,
        config: &Arc<ClientConfig>,
        name: &ServerName<'static>,
    ) -> Verdict {
        let connector = TlsConnector::from(Arc::clone(config));
        let stream = connector.connect(name.clone(), stream).await.map_err(|e| {
            // rustls' own errors come as InvalidData; a reset or close is the peer's.
            let cause = match e.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::Other => FailureCause::Tls,
                _ => FailureCause::of_io(&e),
            };
            Failure::new(
                cause,
                format!(
                    "TLS handshake with {} (name {}) failed: {e}",
                    self.addr,
                    name.to_str()
                ),
            )
        })?;
        let mut stream = stream;
        stream
            .write_all(&url.request)
            .await
            .map_err(|e| self.send_failed(url, &e))?;
        self.read_response(url, stream).await
    }

    /// Reads the response to the request already sent, and judges it. The whole response
    /// is read (up to `max_body_bytes` of body) even when only the status matters: the
    /// connection is reset when the probe drops it, and a reset while the server is still
    /// writing shows as an error in the server's log.
    async fn read_response<Io>(&self, url: &UrlProbe, mut io: Io) -> Verdict
    where
        Io: AsyncRead + Unpin,
    {
        let fail = |cause, what: &str| {
            Failure::new(
                cause,
                format!("{} {} {}: {what}", self.addr, self.method, url.path),
            )
        };
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let head = loop {
            if let Some(head) = wire::parse_head(&buf, self.method == "HEAD")
                .map_err(|e| fail(FailureCause::Malformed, &e.to_string()))?
            {
                break head;
            }
            if buf.len() >= MAX_HEAD {
                return Err(fail(
                    FailureCause::Malformed,
                    &format!("response head larger than {MAX_HEAD} bytes"),
                ));
            }
            if read_more(&mut io, &mut buf)
                .await
                .map_err(|f| fail(f.cause, &f.text))?
                == 0
            {
                return Err(fail(
                    FailureCause::Closed,
                    if buf.is_empty() {
                        "connection closed without a response"
                    } else {
                        "connection closed inside the response head"
                    },
                ));
            }
        };
        let status = head.status;
        let seen = format!("HTTP {status} {}", url.from);
        if !url
            .expect_status
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
        {
            return Err(Failure::new(FailureCause::HttpStatus, seen));
        }
        let keep = url.checks_body();
        let cap = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        let mut body = Vec::new();
        // Bytes of body seen, kept or not.
        let mut length = 0usize;
        let mut reader = BodyReader::new(head.framing);
        let mut received = buf.split_off(head.len);
        let truncated = loop {
            let before = body.len();
            let done = reader
                .feed(&received, &mut body)
                .map_err(|e| Failure::new(FailureCause::Malformed, format!("{seen}: {e}")))?;
            length = length.saturating_add(body.len() - before);
            if !keep {
                body.clear();
            }
            if length > cap {
                body.truncate(cap);
                break true;
            }
            if done {
                break false;
            }
            received.clear();
            if read_more(&mut io, &mut received)
                .await
                .map_err(|f| f.map_text(|e| format!("{seen}: {e}")))?
                == 0
            {
                if reader.ends_at_close() {
                    break false;
                }
                return Err(Failure::new(
                    FailureCause::Closed,
                    format!("{seen}: connection closed before the end of the body"),
                ));
            }
        };
        for (expected, name, actual) in [
            (
                &url.body_sha256,
                "SHA-256",
                digest_hex::<Sha256> as fn(&[u8]) -> String,
            ),
            (&url.body_md5, "MD5", digest_hex::<Md5>),
        ] {
            let Some(expected) = expected else { continue };
            if truncated {
                return Err(Failure::new(
                    FailureCause::BodyDigest,
                    format!("{seen}: body longer than {cap} bytes, cannot check its {name}"),
                ));
            }
            let actual = actual(&body);
            if actual != *expected {
                return Err(Failure::new(
                    FailureCause::BodyDigest,
                    format!("{seen}: body {name} is {actual}, expected {expected}"),
                ));
            }
        }
        if let Some(re) = &url.body_regex
            && re.is_match(&body) == url.regex_no_match
        {
            let read = if truncated {
                format!("first {cap} bytes of the ")
            } else {
                String::new()
            };
            let how = if url.regex_no_match {
                "matches"
            } else {
                "does not match"
            };
            return Err(Failure::new(
                FailureCause::BodyRegex,
                format!("{seen}: {read}body {how} `{}`", re.as_str()),
            ));
        }
        Ok(seen)
    }
}

fn digest_hex<D: Digest>(body: &[u8]) -> String {
    hex(&D::digest(body))
}

/// Reads what is available into `buf`; 0 at the end. A TLS peer that closes without
/// close_notify counts as an end: only the body framing says whether that was early.
async fn read_more<Io: AsyncRead + Unpin>(
    io: &mut Io,
    buf: &mut Vec<u8>,
) -> Result<usize, Failure> {
    // Grow by doubling from the 1 KiB start: most health responses fit in that.
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(buf.capacity().max(1024));
    }
    match io.read_buf(buf).await {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(Failure::io(
            &e,
            format!("reading the response failed: {}", strip_os_error(&e)),
        )),
    }
}

/// Collects a body according to its framing.
enum BodyReader {
    Empty,
    Length(u64),
    Chunked(ChunkedDecoder),
    UntilClose,
}

impl BodyReader {
    fn new(framing: Framing) -> Self {
        match framing {
            Framing::Empty => BodyReader::Empty,
            Framing::Length(n) => BodyReader::Length(n),
            Framing::Chunked => BodyReader::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => BodyReader::UntilClose,
        }
    }

    /// Appends the body bytes of `input` to `out`; true when the body is complete.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, wire::WireError> {
        match self {
            BodyReader::Empty => Ok(true),
            BodyReader::Length(remaining) => {
                let take = usize::try_from(*remaining).map_or(input.len(), |r| r.min(input.len()));
                out.extend_from_slice(&input[..take]);
                *remaining -= take as u64;
                Ok(*remaining == 0)
            }
            BodyReader::Chunked(decoder) => decoder.feed(input, out),
            BodyReader::UntilClose => {
                out.extend_from_slice(input);
                Ok(false)
            }
        }
    }

    fn ends_at_close(&self) -> bool {
        matches!(self, BodyReader::UntilClose)
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
