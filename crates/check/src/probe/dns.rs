//! DNS: ask the real server itself (never the system resolver, never a cache) one
//! question, and require the expected rcode and, optionally, addresses in the answer.

pub(crate) mod codec;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_config::{DnsCheck, DnsTransport};

use super::Verdict;
use super::net::{Source, connect_tcp, connect_udp, strip_os_error};
use crate::failure::{Failure, FailureCause};
use codec::{DnsReply, decode_reply, encode_query, qtype_code, qtype_name, rcode_code, rcode_name};

#[derive(Debug)]
pub(crate) struct DnsProbe {
    addr: SocketAddr,
    source: Source,
    spec: DnsCheck,
}

impl DnsProbe {
    pub(crate) fn new(addr: SocketAddr, source: Source, spec: &DnsCheck) -> Self {
        DnsProbe {
            addr,
            source,
            spec: spec.clone(),
        }
    }

    /// `example.org A`
    pub(crate) fn question(&self) -> String {
        format!("{} {}", self.spec.name, qtype_name(self.spec.qtype))
    }

    pub(crate) async fn run(&self) -> Verdict {
        let id = query_id();
        let query = encode_query(id, &self.spec.name, qtype_code(self.spec.qtype))
            .map_err(|e| Failure::setup(format!("cannot query {}: {e}", self.spec.name)))?;
        let reply = match self.spec.transport {
            DnsTransport::Udp => self.over_udp(&query, id).await?,
            DnsTransport::Tcp => self.over_tcp(&query, id).await?,
        };
        let seen = format!(
            "DNS {} for {} from {}",
            rcode_name(reply.rcode),
            self.question(),
            self.addr
        );
        if reply.rcode != rcode_code(self.spec.expect_rcode) {
            return Err(Failure::new(FailureCause::DnsRcode, seen));
        }
        let missing: Vec<String> = self
            .spec
            .expect_addresses
            .iter()
            .filter(|a| !reply.addresses.contains(a))
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            let hint = if reply.truncated {
                " (reply truncated: use transport = \"tcp\")"
            } else {
                ""
            };
            return Err(Failure::new(
                FailureCause::DnsAnswer,
                format!("{seen} lacks {}{hint}", missing.join(", ")),
            ));
        }
        Ok(format!("{seen}, {} answers", reply.answer_count))
    }

    async fn over_udp(&self, query: &[u8], id: u16) -> Result<DnsReply, Failure> {
        let addr = self.addr;
        let socket = connect_udp(addr, &self.source).await?;
        socket.send(query).await.map_err(|e| {
            Failure::io(
                &e,
                format!("sending to {addr} failed: {}", strip_os_error(&e)),
            )
        })?;
        let mut buf = vec![0u8; 4096];
        loop {
            let n = socket.recv(&mut buf).await.map_err(|e| match e.kind() {
                std::io::ErrorKind::ConnectionRefused => Failure::new(
                    FailureCause::Refused,
                    format!("DNS server {addr} unreachable (ICMP port unreachable)"),
                ),
                _ => Failure::io(
                    &e,
                    format!("receiving from {addr} failed: {}", strip_os_error(&e)),
                ),
            })?;
            match decode_reply(&buf[..n], id) {
                // Someone else's late reply on a reused port: keep waiting for ours.
                Err(codec::DnsDecodeError::WrongId { .. }) => continue,
                other => {
                    return other.map_err(|e| {
                        Failure::new(
                            FailureCause::Malformed,
                            format!("bad DNS reply from {addr}: {e}"),
                        )
                    });
                }
            }
        }
    }

    async fn over_tcp(&self, query: &[u8], id: u16) -> Result<DnsReply, Failure> {
        let addr = self.addr;
        let mut stream = connect_tcp(addr, &self.source).await?;
        let mut framed = Vec::with_capacity(query.len() + 2);
        framed.extend_from_slice(&u16::try_from(query.len()).unwrap_or(u16::MAX).to_be_bytes());
        framed.extend_from_slice(query);
        let io_err = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Failure::new(
                FailureCause::Closed,
                format!("DNS server {addr} closed the connection without a reply"),
            ),
            _ => Failure::io(
                &e,
                format!("DNS over TCP with {addr} failed: {}", strip_os_error(&e)),
            ),
        };
        stream.write_all(&framed).await.map_err(io_err)?;
        let len = stream.read_u16().await.map_err(io_err)?;
        let mut msg = vec![0u8; usize::from(len)];
        stream.read_exact(&mut msg).await.map_err(io_err)?;
        decode_reply(&msg, id).map_err(|e| {
            Failure::new(
                FailureCause::Malformed,
                format!("bad DNS reply from {addr}: {e}"),
            )
        })
    }
}

/// Query ids: unpredictable enough that a stray reply does not match (this is a health
/// check, not a resolver, so spoofing is not the concern).
fn query_id() -> u16 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut z = STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed) ^ seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as u16
}
