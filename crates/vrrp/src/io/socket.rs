//! The advert socket: raw IP protocol 112 on one interface, IPv4 or IPv6, multicast to
//! the VRRP group or unicast to configured peers.
//!
//! IPv4 builds its own IP header (IP_HDRINCL) so the source address, TTL 255 and the
//! internetwork-control TOS are exactly what the instance says whatever the routing table
//! would pick, and receives the full IP header (the kernel always hands it to IPv4 raw
//! sockets), which gives TTL, source and destination for the RFC 5798 §7.1 checks.
//! IPv6 raw sockets never see the IP header: the hop limit and destination come as
//! IPV6_HOPLIMIT / IPV6_PKTINFO control messages, and the source is set per packet with
//! IPV6_PKTINFO. The VRRP checksum is computed by the codec (not IPV6_CHECKSUM), so a
//! bad one reaches `decode` and is counted instead of vanishing in the kernel.

use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ops::Range;
use std::os::fd::AsRawFd;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::packet::{Family, IP_PROTOCOL_VRRP, MULTICAST_V4, MULTICAST_V6, REQUIRED_TTL};
use crate::receive::IpFacts;

/// IPTOS_PREC_INTERNETCONTROL: what routers (and keepalived) mark VRRP with.
const TOS_INTERNETCONTROL: u8 = 0xc0;
const IPV4_HEADER_LEN: usize = 20;

/// One received datagram: the IP facts and where the VRRP message sits in the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub facts: IpFacts,
    pub payload: Range<usize>,
}

/// A raw VRRP socket bound to one interface.
#[derive(Debug)]
pub struct AdvertSocket {
    fd: AsyncFd<Socket>,
    family: Family,
    ifindex: u32,
}

impl AdvertSocket {
    /// Opens the socket on `interface` (index `ifindex`) and, when `multicast`, joins the
    /// VRRP group there (by index: joining on INADDR_ANY fails with ENODEV without a
    /// multicast route). Must be called inside a tokio runtime.
    pub fn open(
        family: Family,
        interface: &str,
        ifindex: u32,
        multicast: bool,
    ) -> io::Result<Self> {
        let protocol = Some(Protocol::from(i32::from(IP_PROTOCOL_VRRP)));
        let socket = match family {
            Family::Ipv4 => Socket::new(Domain::IPV4, Type::RAW, protocol)?,
            Family::Ipv6 => Socket::new(Domain::IPV6, Type::RAW, protocol)?,
        };
        socket.set_nonblocking(true)?;
        // Only this interface's adverts: another interface may carry the same VRID.
        socket.bind_device(Some(interface.as_bytes()))?;
        match family {
            Family::Ipv4 => {
                socket.set_header_included_v4(true)?;
                // RFC 5798 §5.1.1.3 / RFC 3768 §5.2.3: TTL 255 (our own header carries it;
                // the options also cover a kernel that rewrites it).
                socket.set_ttl_v4(u32::from(REQUIRED_TTL))?;
                socket.set_multicast_ttl_v4(u32::from(REQUIRED_TTL))?;
                socket.set_multicast_loop_v4(false)?;
                if multicast {
                    socket.join_multicast_v4_n(
                        &MULTICAST_V4,
                        &InterfaceIndexOrAddress::Index(ifindex),
                    )?;
                }
            }
            Family::Ipv6 => {
                // RFC 5798 §5.1.2.3: hop limit 255.
                socket.set_unicast_hops_v6(u32::from(REQUIRED_TTL))?;
                socket.set_multicast_hops_v6(u32::from(REQUIRED_TTL))?;
                socket.set_multicast_loop_v6(false)?;
                socket.set_multicast_if_v6(ifindex)?;
                set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
                set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
                if multicast {
                    socket.join_multicast_v6(&MULTICAST_V6, ifindex)?;
                }
            }
        }
        // SAFETY: the Socket owns its descriptor for as long as the AsyncFd holds it, and
        // its as_raw_fd always returns that same descriptor.
        let fd = unsafe {
            AsyncFd::register_with_interest(socket, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| e.into_parts().1)?;
        Ok(Self {
            fd,
            family,
            ifindex,
        })
    }

    pub fn family(&self) -> Family {
        self.family
    }

    /// Sends one VRRP `message` from `source` to `destination`.
    pub async fn send(
        &self,
        source: IpAddr,
        destination: IpAddr,
        message: &[u8],
    ) -> io::Result<()> {
        match (source, destination) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let packet = ipv4_packet(src, dst, message)?;
                let to = SockAddr::from(SocketAddr::new(IpAddr::V4(dst), 0));
                self.fd
                    .async_io(Interest::WRITABLE, |s| s.send_to(&packet, &to))
                    .await
                    .map(drop)
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let ifindex = self.ifindex;
                self.fd
                    .async_io(Interest::WRITABLE, |s| {
                        send_v6(s.as_raw_fd(), src, dst, ifindex, message)
                    })
                    .await
            }
            _ => Err(io::Error::from(io::ErrorKind::InvalidInput)),
        }
    }

    /// Receives one datagram into `buf`. A datagram too malformed to carry IP facts is
    /// reported as `InvalidData` (the runner counts it as truncated).
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<Datagram> {
        match self.family {
            Family::Ipv4 => {
                let len = self
                    .fd
                    .async_io(Interest::READABLE, |s| {
                        // SAFETY: u8 and MaybeUninit<u8> have the same layout; recv only
                        // writes initialised bytes.
                        let uninit = unsafe {
                            &mut *(std::ptr::from_mut::<[u8]>(&mut *buf)
                                as *mut [MaybeUninit<u8>])
                        };
                        s.recv(uninit)
                    })
                    .await?;
                parse_ipv4_packet(buf.get(..len).unwrap_or_default())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
            }
            Family::Ipv6 => {
                self.fd
                    .async_io(Interest::READABLE, |s| recv_v6(s.as_raw_fd(), buf))
                    .await
            }
        }
    }
}

fn set_int_option(socket: &Socket, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: valid descriptor; an int option of the documented size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The IPv4 header + message sent with IP_HDRINCL. The kernel fills in the header
/// checksum and, being zero, the identification.
pub(crate) fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, message: &[u8]) -> io::Result<Vec<u8>> {
    let total = u16::try_from(IPV4_HEADER_LEN + message.len())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut packet = Vec::with_capacity(usize::from(total));
    packet.extend_from_slice(&[0x45, TOS_INTERNETCONTROL]);
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 0, 0, 0, REQUIRED_TTL, IP_PROTOCOL_VRRP, 0, 0]);
    packet.extend_from_slice(&src.octets());
    packet.extend_from_slice(&dst.octets());
    packet.extend_from_slice(message);
    Ok(packet)
}

/// Splits a received IPv4 packet into its facts and the VRRP payload.
pub(crate) fn parse_ipv4_packet(packet: &[u8]) -> Option<Datagram> {
    let first = *packet.first()?;
    if first >> 4 != 4 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN || packet.len() < header_len {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([*packet.get(2)?, *packet.get(3)?]));
    // The wire length is authoritative; a shorter datagram is what arrived.
    let end = total.clamp(header_len, packet.len());
    let octets = |at: usize| -> Option<Ipv4Addr> {
        let b: [u8; 4] = packet.get(at..at + 4)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    Some(Datagram {
        facts: IpFacts {
            source: IpAddr::V4(octets(12)?),
            destination: IpAddr::V4(octets(16)?),
            ttl: *packet.get(8)?,
        },
        payload: header_len..end,
    })
}

fn in6_addr(address: Ipv6Addr) -> libc::in6_addr {
    libc::in6_addr {
        s6_addr: address.octets(),
    }
}

fn send_v6(fd: i32, src: Ipv6Addr, dst: Ipv6Addr, ifindex: u32, message: &[u8]) -> io::Result<()> {
    let to = SocketAddrV6::new(
        dst,
        0,
        0,
        if dst.is_unicast_link_local() || dst.is_multicast() {
            ifindex
        } else {
            0
        },
    );
    let to = SockAddr::from(to);
    let info = libc::in6_pktinfo {
        ipi6_addr: in6_addr(src),
        ipi6_ifindex: ifindex,
    };
    // u64 storage keeps the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: message.as_ptr().cast_mut().cast(),
        iov_len: message.len(),
    };
    // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = to.as_ptr().cast_mut().cast();
    msg.msg_namelen = to.len();
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) } as usize;
    msg.msg_controllen = space;
    // SAFETY: the control buffer (64 bytes) holds one in6_pktinfo cmsg (40 bytes).
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        (*cmsg).cmsg_level = libc::IPPROTO_IPV6;
        (*cmsg).cmsg_type = libc::IPV6_PKTINFO;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::in6_pktinfo>(), info);
    }
    // SAFETY: msg is fully initialised above.
    let rc = unsafe { libc::sendmsg(fd, &raw const msg, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn recv_v6(fd: i32, buf: &mut [u8]) -> io::Result<Datagram> {
    // SAFETY: sockaddr_in6 is plain data.
    let mut from: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: plain data; pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut from).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: msg describes valid buffers.
    let rc = unsafe { libc::recvmsg(fd, &raw mut msg, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = usize::try_from(rc).map_err(io::Error::other)?;
    let mut hop_limit = None;
    let mut destination = None;
    // SAFETY: the kernel filled msg_control with well-formed cmsgs up to msg_controllen;
    // the CMSG macros walk within it and data is read unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    hop_limit = Some(std::ptr::read_unaligned(data.cast::<libc::c_int>()));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                    destination = Some(Ipv6Addr::from(info.ipi6_addr.s6_addr));
                }
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let (Some(hop_limit), Some(destination)) = (hop_limit, destination) else {
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    };
    Ok(Datagram {
        facts: IpFacts {
            source: IpAddr::V6(Ipv6Addr::from(from.sin6_addr.s6_addr)),
            destination: IpAddr::V6(destination),
            // Out-of-range values cannot come from the kernel; map them to a failing TTL.
            ttl: u8::try_from(hop_limit).unwrap_or(0),
        },
        payload: 0..len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_carries_ttl_255_and_protocol_112() {
        let packet = ipv4_packet(
            Ipv4Addr::new(10, 0, 0, 1),
            MULTICAST_V4,
            &[0x31, 1, 100, 0, 0, 100, 0, 0],
        )
        .unwrap();
        assert_eq!(packet.len(), 28);
        assert_eq!(packet[8], 255);
        assert_eq!(packet[9], 112);
        let parsed = parse_ipv4_packet(&packet).unwrap();
        assert_eq!(parsed.payload, 20..28);
        assert_eq!(parsed.facts.ttl, 255);
        assert_eq!(parsed.facts.source, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(parsed.facts.destination, IpAddr::V4(MULTICAST_V4));
    }

    #[test]
    fn malformed_ipv4_headers_are_refused_not_panicked_on() {
        assert!(parse_ipv4_packet(&[]).is_none());
        assert!(parse_ipv4_packet(&[0x65; 40]).is_none());
        assert!(parse_ipv4_packet(&[0x4f; 40]).is_none()); // 60-byte header, 40 bytes
        assert!(parse_ipv4_packet(&[0x44; 40]).is_none()); // header shorter than 20
        // A total length past the datagram is clamped to what arrived.
        let mut packet = ipv4_packet(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST, &[1, 2]).unwrap();
        packet[2] = 0xff;
        assert_eq!(parse_ipv4_packet(&packet).unwrap().payload, 20..22);
    }
}
