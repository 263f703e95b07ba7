//! icmp: one echo request, the matching echo reply. An unprivileged ping socket where the
//! kernel allows it (`net.ipv4.ping_group_range`), a raw socket otherwise.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

use super::Verdict;
use super::net::{Source, strip_os_error};
use crate::failure::Failure;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PAYLOAD: &[u8; 8] = b"vigilchk";

#[derive(Debug)]
pub(crate) struct IcmpProbe {
    ip: IpAddr,
    source: Source,
}

/// How the socket was opened decides what a received datagram starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    Ping,
    Raw,
}

impl IcmpProbe {
    pub(crate) fn new(ip: IpAddr, source: Source) -> Self {
        IcmpProbe { ip, source }
    }

    pub(crate) async fn run(&self) -> Verdict {
        let ip = self.ip;
        let (socket, flavour) = self.open().map_err(|e| {
            Failure::setup(format!(
                "cannot open an ICMP socket: {}",
                strip_os_error(&e)
            ))
        })?;
        static SEQUENCE: AtomicU16 = AtomicU16::new(1);
        let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let ident = (std::process::id() & 0xffff) as u16;
        let request = echo_request(ip.is_ipv6(), ident, seq);
        let failed =
            |e: io::Error| Failure::io(&e, format!("ping {ip} failed: {}", strip_os_error(&e)));
        socket.send(&request).await.map_err(failed)?;
        let mut buf = [0u8; 1500];
        loop {
            let n = socket.recv(&mut buf).await.map_err(failed)?;
            if is_our_reply(&buf[..n], ip.is_ipv6(), flavour, seq) {
                return Ok(format!("echo reply from {ip}"));
            }
        }
    }

    fn open(&self) -> io::Result<(UdpSocket, Flavour)> {
        let (domain, protocol) = match self.ip {
            IpAddr::V4(_) => (Domain::IPV4, Protocol::ICMPV4),
            IpAddr::V6(_) => (Domain::IPV6, Protocol::ICMPV6),
        };
        let (socket, flavour) = match Socket::new(domain, Type::DGRAM, Some(protocol)) {
            Ok(s) => (s, Flavour::Ping),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EPROTONOSUPPORT)
                ) =>
            {
                (
                    Socket::new(domain, Type::RAW, Some(protocol))?,
                    Flavour::Raw,
                )
            }
            Err(e) => return Err(e),
        };
        socket.set_nonblocking(true)?;
        self.source
            .apply(&socket, SocketAddr::new(self.ip, 0))
            .map_err(|f| io::Error::other(f.text))?;
        // Connected: the kernel only hands us datagrams from the probed address.
        socket.connect(&SocketAddr::new(self.ip, 0).into())?;
        let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket))?;
        Ok((socket, flavour))
    }
}

fn echo_request(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
    let mut packet = vec![if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 }, 0, 0, 0];
    packet.extend_from_slice(&ident.to_be_bytes());
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(PAYLOAD);
    if !v6 {
        // ICMPv6 checksums cover a pseudo-header: the kernel fills them in.
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The identifier is not compared: a ping socket replaces it with its own.
fn is_our_reply(datagram: &[u8], v6: bool, flavour: Flavour, seq: u16) -> bool {
    let icmp = match (v6, flavour) {
        // A raw IPv4 socket delivers the IP header too.
        (false, Flavour::Raw) => {
            let Some(first) = datagram.first() else {
                return false;
            };
            datagram.get(usize::from(first & 0x0f) * 4..).unwrap_or(&[])
        }
        _ => datagram,
    };
    let reply_type = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    icmp.len() >= 8 + PAYLOAD.len()
        && icmp[0] == reply_type
        && icmp[6..8] == seq.to_be_bytes()
        && &icmp[8..8 + PAYLOAD.len()] == PAYLOAD
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checksum_verifies() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn reply_matching() {
        let mut reply = echo_request(false, 1, 9);
        reply[0] = ECHO_REPLY_V4;
        assert!(is_our_reply(&reply, false, Flavour::Ping, 9));
        assert!(!is_our_reply(&reply, false, Flavour::Ping, 10));
        let mut with_ip = vec![0x45; 20];
        with_ip.extend_from_slice(&reply);
        assert!(is_our_reply(&with_ip, false, Flavour::Raw, 9));
        assert!(!is_our_reply(&with_ip[..10], false, Flavour::Raw, 9));
    }
}
