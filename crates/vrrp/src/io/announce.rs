//! Gratuitous ARP (IPv4) and unsolicited Neighbor Advertisements (IPv6) for the virtual
//! addresses of a new master (RFC 5798 §6.4.1 and §6.4.2 "(for each IPv4 address) send a
//! gratuitous ARP request ... (for each IPv6 address) send an unsolicited ND Neighbor
//! Advertisement"), so switches and neighbours move the addresses to this node at once.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
const ARPHRD_ETHER: u16 = 1;
const ARPOP_REQUEST: u16 = 1;
const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
/// All-nodes multicast group, where unsolicited advertisements go (RFC 4861 §7.2.6).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Sockets for announcing on one interface; opened once per instance.
#[derive(Debug)]
pub struct Announcer {
    ifindex: u32,
    mac: [u8; 6],
    arp: Option<OwnedFd>,
    nd: Option<Socket>,
}

impl Announcer {
    /// Opens the ARP socket when `ipv4`, the ICMPv6 one when `ipv6`.
    pub fn open(
        interface: &str,
        ifindex: u32,
        mac: [u8; 6],
        ipv4: bool,
        ipv6: bool,
    ) -> io::Result<Self> {
        let arp = if ipv4 { Some(packet_socket()?) } else { None };
        let nd = if ipv6 {
            let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
            socket.bind_device(Some(interface.as_bytes()))?;
            // RFC 4861 §7.1.2: a receiver drops an NA whose hop limit is not 255.
            socket.set_multicast_hops_v6(255)?;
            socket.set_unicast_hops_v6(255)?;
            socket.set_multicast_if_v6(ifindex)?;
            socket.set_multicast_loop_v6(false)?;
            socket.set_nonblocking(true)?;
            Some(socket)
        } else {
            None
        };
        Ok(Self {
            ifindex,
            mac,
            arp,
            nd,
        })
    }

    /// One announcement of `address`. Non-blocking: a full send buffer drops this one
    /// round, which the repeats cover.
    pub fn announce(&self, address: IpAddr) -> io::Result<()> {
        match address {
            IpAddr::V4(v4) => {
                let fd = self
                    .arp
                    .as_ref()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
                send_arp(fd, self.ifindex, &garp_payload(self.mac, v4))
            }
            IpAddr::V6(v6) => {
                let socket = self
                    .nd
                    .as_ref()
                    .ok_or_else(|| io::Error::from(io::ErrorKind::Unsupported))?;
                let to = SockAddr::from(SocketAddr::V6(SocketAddrV6::new(
                    ALL_NODES,
                    0,
                    0,
                    self.ifindex,
                )));
                // The kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.
                socket.send_to(&unsolicited_na(self.mac, v6), &to).map(drop)
            }
        }
    }
}

fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); checked.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            i32::from(ETH_P_ARP.to_be()),
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn send_arp(fd: &OwnedFd, ifindex: u32, payload: &[u8]) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = ETH_P_ARP.to_be();
    to.sll_ifindex = i32::try_from(ifindex).map_err(io::Error::other)?;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&[0xff; 6]);
    // SAFETY: buffer and address valid for the given lengths.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            payload.as_ptr().cast(),
            payload.len(),
            0,
            (&raw const to).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A gratuitous ARP request for `address` from `mac`: sender and target protocol
/// address both the virtual address (RFC 5227 §3 announcement form), sent to broadcast.
pub(crate) fn garp_payload(mac: [u8; 6], address: Ipv4Addr) -> [u8; 28] {
    let mut out = [0u8; 28];
    out[0..2].copy_from_slice(&ARPHRD_ETHER.to_be_bytes());
    out[2..4].copy_from_slice(&ETH_P_IP.to_be_bytes());
    out[4] = 6;
    out[5] = 4;
    out[6..8].copy_from_slice(&ARPOP_REQUEST.to_be_bytes());
    out[8..14].copy_from_slice(&mac);
    out[14..18].copy_from_slice(&address.octets());
    // Target hardware address stays zero.
    out[24..28].copy_from_slice(&address.octets());
    out
}

/// An unsolicited Neighbor Advertisement (RFC 4861 §4.4): RFC 5798 §6.4.1 asks for the
/// Router flag set, Solicited clear, Override set, and the target link-layer address
/// option. The checksum is left zero for the kernel.
pub(crate) fn unsolicited_na(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[0] = ICMPV6_NEIGHBOR_ADVERTISEMENT;
    out[4] = 0x80 | 0x20; // R and O
    out[8..24].copy_from_slice(&target.octets());
    out[24] = ND_OPT_TARGET_LINKADDR;
    out[25] = 1; // length in units of 8 bytes
    out[26..32].copy_from_slice(&mac);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];

    #[test]
    fn garp_is_an_announcement_request() {
        let p = garp_payload(MAC, Ipv4Addr::new(10, 0, 0, 100));
        assert_eq!(&p[0..8], &[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(&p[8..14], &MAC);
        assert_eq!(&p[14..18], &[10, 0, 0, 100]);
        assert_eq!(&p[18..24], &[0; 6]);
        assert_eq!(&p[24..28], &[10, 0, 0, 100]);
    }

    #[test]
    fn na_sets_router_and_override_not_solicited() {
        // RFC 5798 §6.4.1: R set, S unset, O set, target link-layer address option.
        let target: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let p = unsolicited_na(MAC, target);
        assert_eq!(p[0], 136);
        assert_eq!(p[4], 0xa0);
        assert_eq!(&p[8..24], &target.octets());
        assert_eq!(&p[24..26], &[2, 1]);
        assert_eq!(&p[26..32], &MAC);
    }
}
