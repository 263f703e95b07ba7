//! UDP: send a datagram on a connected socket, so that an ICMP port unreachable comes back
//! as `ECONNREFUSED` on the next receive. Either a reply is required (optionally matching a
//! pattern), or, as keepalived's UDP_CHECK does by default, silence until the timeout
//! passes and only the port unreachable fails.

use std::net::SocketAddr;
use std::time::Duration;

use regex::bytes::Regex;
use tokio::time::Instant;
use vigil_config::format_duration;

use super::net::{Source, connect_udp, strip_os_error};
use super::{Verdict, excerpt};
use crate::failure::{Failure, FailureCause};

#[derive(Debug)]
pub(crate) struct UdpProbe {
    addr: SocketAddr,
    source: Source,
    send: Vec<u8>,
    expect: Option<Regex>,
    require_reply: bool,
    timeout: Duration,
}

impl UdpProbe {
    pub(crate) fn new(
        addr: SocketAddr,
        source: Source,
        send: &[u8],
        expect: Option<&str>,
        require_reply: bool,
        timeout: Duration,
    ) -> Result<Self, String> {
        let expect = expect
            .map(|re| Regex::new(re).map_err(|e| format!("invalid expect pattern: {e}")))
            .transpose()?;
        Ok(UdpProbe {
            addr,
            source,
            send: send.to_vec(),
            expect,
            require_reply,
            timeout,
        })
    }

    pub(crate) async fn run(&self) -> Verdict {
        // Silence is judged just before the check's own timeout would call it a failure.
        let deadline = Instant::now() + self.timeout.mul_f64(0.95);
        let addr = self.addr;
        let socket = connect_udp(addr, &self.source).await?;
        socket.send(&self.send).await.map_err(|e| {
            Failure::io(
                &e,
                format!("sending to {addr} failed: {}", strip_os_error(&e)),
            )
        })?;
        // The first 4 KiB of the reply is all a pattern is matched against.
        let mut buf = vec![0u8; 4096];
        let received = if self.require_reply {
            socket.recv(&mut buf).await
        } else {
            match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Ok(received) => received,
                Err(_) => {
                    return Ok(format!(
                        "no ICMP port unreachable from {addr} within {} (no reply required)",
                        format_duration(self.timeout.mul_f64(0.95))
                    ));
                }
            }
        };
        let n = received.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Failure::new(
                FailureCause::Refused,
                format!("UDP port {addr} unreachable (ICMP port unreachable)"),
            ),
            _ => Failure::io(
                &e,
                format!("receiving from {addr} failed: {}", strip_os_error(&e)),
            ),
        })?;
        let reply = &buf[..n];
        match &self.expect {
            Some(re) if !re.is_match(reply) => Err(Failure::new(
                FailureCause::ReplyMismatch,
                format!(
                    "UDP reply from {addr} does not match `{}`: got \"{}\"",
                    re.as_str(),
                    excerpt(reply)
                ),
            )),
            _ => Ok(format!("UDP reply from {addr}, {n} bytes")),
        }
    }
}
