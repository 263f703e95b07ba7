//! HTTP and HTTPS: one request on a fresh connection (a pooled one would hide a dead
//! server), status in the accepted ranges, optionally a body pattern or digest.

use std::fmt::Write as _;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use regex::bytes::Regex;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use vigil_config::{HttpCheck, HttpMethod};

use super::net::connect_tcp;
use super::{Verdict, tls};

#[derive(Debug)]
pub(crate) struct HttpProbe {
    addr: SocketAddr,
    bind: Option<IpAddr>,
    method: Method,
    path: String,
    host: String,
    expect_status: Vec<(u16, u16)>,
    body_regex: Option<Regex>,
    body_sha256: Option<String>,
    max_body_bytes: u64,
    tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
}

impl HttpProbe {
    pub(crate) fn new(
        addr: SocketAddr,
        bind: Option<IpAddr>,
        spec: &HttpCheck,
    ) -> Result<Self, String> {
        let tls = match &spec.tls {
            Some(t) => Some((
                tls::client_config(t)?,
                tls::server_name(t, spec.host.as_deref(), addr.ip())?,
            )),
            None => None,
        };
        let body_regex = spec
            .body_regex
            .as_deref()
            .map(|re| Regex::new(re).map_err(|e| format!("invalid body pattern: {e}")))
            .transpose()?;
        Ok(HttpProbe {
            addr,
            bind,
            method: match spec.method {
                HttpMethod::Get => Method::GET,
                HttpMethod::Head => Method::HEAD,
            },
            path: spec.path.clone(),
            host: spec.host.clone().unwrap_or_else(|| addr.to_string()),
            expect_status: spec.expect_status.clone(),
            body_regex,
            body_sha256: spec.body_sha256.as_ref().map(|h| h.to_ascii_lowercase()),
            max_body_bytes: spec.max_body_bytes,
            tls,
        })
    }

    /// `GET /healthz`
    pub(crate) fn request_line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    pub(crate) async fn run(&self) -> Verdict {
        let stream = connect_tcp(self.addr, self.bind).await?;
        match &self.tls {
            None => self.exchange(stream).await,
            Some((config, name)) => {
                let connector = TlsConnector::from(Arc::clone(config));
                let stream = connector.connect(name.clone(), stream).await.map_err(|e| {
                    format!(
                        "TLS handshake with {} (name {}) failed: {e}",
                        self.addr,
                        name.to_str()
                    )
                })?;
                self.exchange(stream).await
            }
        }
    }

    async fn exchange<Io>(&self, io: Io) -> Verdict
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let failed = |e: hyper::Error| {
            let mut why = e.to_string();
            if let Some(source) = std::error::Error::source(&e) {
                let _ = write!(why, ": {source}");
            }
            format!("{} {}: {why}", self.addr, self.request_line())
        };
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(io))
                .await
                .map_err(failed)?;
        let mut conn = std::pin::pin!(conn);
        let mut conn_done = false;
        let request = Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(HOST, self.host.as_str())
            .header(USER_AGENT, "vigil-check")
            .header(CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| format!("cannot build request {}: {e}", self.request_line()))?;
        let response = alongside(&mut conn, &mut conn_done, sender.send_request(request))
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        let seen = format!("HTTP {status} from {} {}", self.addr, self.request_line());
        if !self
            .expect_status
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
        {
            return Err(seen);
        }
        if self.body_regex.is_none() && self.body_sha256.is_none() {
            // Nothing to see in the body: do not spend time reading it.
            return Ok(seen);
        }
        let cap = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        let mut truncated = false;
        while let Some(frame) = alongside(&mut conn, &mut conn_done, body.frame()).await {
            let frame = frame.map_err(|e| format!("{seen}: reading the body failed: {e}"))?;
            if let Ok(data) = frame.into_data() {
                let room = cap.saturating_sub(bytes.len());
                bytes.extend_from_slice(&data[..data.len().min(room)]);
                if data.len() > room {
                    truncated = true;
                    break;
                }
            }
        }
        if let Some(expected) = &self.body_sha256 {
            if truncated {
                return Err(format!(
                    "{seen}: body longer than {cap} bytes, cannot check its SHA-256"
                ));
            }
            let actual = hex(&Sha256::digest(&bytes));
            if actual != *expected {
                return Err(format!(
                    "{seen}: body SHA-256 is {actual}, expected {expected}"
                ));
            }
        }
        if let Some(re) = &self.body_regex
            && !re.is_match(&bytes)
        {
            let read = if truncated {
                format!("first {cap} bytes of the ")
            } else {
                String::new()
            };
            return Err(format!(
                "{seen}: {read}body does not match `{}`",
                re.as_str()
            ));
        }
        Ok(seen)
    }
}

/// Awaits `f` while driving the connection future that feeds it. Once the connection is
/// done (it has handed everything over) `f` is awaited alone.
async fn alongside<C: Future, F: Future>(
    conn: &mut Pin<&mut C>,
    conn_done: &mut bool,
    f: F,
) -> F::Output {
    if *conn_done {
        return f.await;
    }
    let mut f = std::pin::pin!(f);
    tokio::select! {
        biased;
        out = &mut f => out,
        _ = conn.as_mut() => {
            *conn_done = true;
            f.await
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
