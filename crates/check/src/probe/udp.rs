//! UDP: send a payload, require a reply (optionally matching a pattern). A closed port
//! answers with ICMP port unreachable, which the connected socket reports as refused.

use std::net::{IpAddr, SocketAddr};

use regex::bytes::Regex;

use super::net::{connect_udp, strip_os_error};
use super::{Verdict, excerpt};

#[derive(Debug)]
pub(crate) struct UdpProbe {
    addr: SocketAddr,
    bind: Option<IpAddr>,
    send: Vec<u8>,
    expect: Option<Regex>,
}

impl UdpProbe {
    pub(crate) fn new(
        addr: SocketAddr,
        bind: Option<IpAddr>,
        send: &str,
        expect: Option<&str>,
    ) -> Result<Self, String> {
        let expect = expect
            .map(|re| Regex::new(re).map_err(|e| format!("invalid expect pattern: {e}")))
            .transpose()?;
        Ok(UdpProbe {
            addr,
            bind,
            send: send.as_bytes().to_vec(),
            expect,
        })
    }

    pub(crate) async fn run(&self) -> Verdict {
        let addr = self.addr;
        let socket = connect_udp(addr, self.bind).await?;
        socket
            .send(&self.send)
            .await
            .map_err(|e| format!("sending to {addr} failed: {}", strip_os_error(&e)))?;
        // The first 4 KiB of the reply is all a pattern is matched against.
        let mut buf = vec![0u8; 4096];
        let n = socket.recv(&mut buf).await.map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                format!("UDP port {addr} unreachable (ICMP port unreachable)")
            }
            _ => format!("receiving from {addr} failed: {}", strip_os_error(&e)),
        })?;
        let reply = &buf[..n];
        match &self.expect {
            Some(re) if !re.is_match(reply) => Err(format!(
                "UDP reply from {addr} does not match `{}`: got \"{}\"",
                re.as_str(),
                excerpt(reply)
            )),
            _ => Ok(format!("UDP reply from {addr}, {n} bytes")),
        }
    }
}
