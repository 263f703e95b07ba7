//! TCP: connect; optionally send bytes and require the reply to match a pattern.

use std::net::SocketAddr;
use std::time::Duration;

use regex::bytes::Regex;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use vigil_config::format_duration;

use super::net::{OpenError, Source, connect_send, strip_os_error};
use super::{Verdict, excerpt};
use crate::failure::{Failure, FailureCause};

/// At most this much of a reply is read looking for the pattern.
const MAX_REPLY: usize = 64 * 1024;

#[derive(Debug)]
pub(crate) struct TcpProbe {
    addr: SocketAddr,
    source: Source,
    send: Option<Vec<u8>>,
    expect: Option<Regex>,
    timeout: Duration,
    /// `connected to ADDR`, made once: formatting it for every check showed in profiles.
    connected: String,
}

impl TcpProbe {
    pub(crate) fn new(
        addr: SocketAddr,
        source: Source,
        send: Option<&str>,
        expect: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, String> {
        let expect = expect
            .map(|re| Regex::new(re).map_err(|e| format!("invalid expect pattern: {e}")))
            .transpose()?;
        Ok(TcpProbe {
            addr,
            source,
            send: send.map(|s| s.as_bytes().to_vec()),
            expect,
            timeout,
            connected: format!("connected to {addr}"),
        })
    }

    pub(crate) async fn run(&self) -> Verdict {
        // Stop reading just before the check's timeout, so that the reason can say what
        // did arrive instead of only "no reply".
        let deadline = Instant::now() + self.timeout.mul_f64(0.95);
        let addr = self.addr;
        let send = self.send.as_deref().unwrap_or_default();
        let conn = connect_send(addr, &self.source, send)
            .await
            .map_err(|e| match e {
                OpenError::Connect(reason) => reason,
                OpenError::Send(e) => Failure::io(
                    &e,
                    format!("sending to {addr} failed: {}", strip_os_error(&e)),
                ),
            })?;
        let Some(expect) = &self.expect else {
            // Connected (and sent): nothing to read, so the connection is never
            // registered with the runtime when the handshake was already done.
            return Ok(self.connected.clone());
        };
        let mut stream = conn.into_stream(addr)?;
        let mut reply = Vec::with_capacity(512);
        loop {
            if expect.is_match(&reply) {
                return Ok(format!("reply from {addr} matches `{}`", expect.as_str()));
            }
            if reply.len() >= MAX_REPLY {
                break;
            }
            reply.reserve(4096);
            let Ok(read) = tokio::time::timeout_at(deadline, stream.read_buf(&mut reply)).await
            else {
                return Err(Failure::new(
                    FailureCause::ReplyMismatch,
                    format!(
                        "reply from {addr} does not match `{}` within {}: got \"{}\"",
                        expect.as_str(),
                        format_duration(self.timeout),
                        excerpt(&reply)
                    ),
                ));
            };
            let n = read.map_err(|e| {
                Failure::io(
                    &e,
                    format!("reading from {addr} failed: {}", strip_os_error(&e)),
                )
            })?;
            if n == 0 {
                break;
            }
        }
        Err(Failure::new(
            FailureCause::ReplyMismatch,
            format!(
                "reply from {addr} does not match `{}`: got \"{}\"",
                expect.as_str(),
                excerpt(&reply)
            ),
        ))
    }
}
