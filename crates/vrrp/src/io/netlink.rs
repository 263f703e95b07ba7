//! The address shell: a hand-rolled rtnetlink client for the three messages VRRP needs
//! (RTM_NEWADDR, RTM_DELADDR, and an RTM_GETADDR dump), leaner than a generic netlink
//! stack. Blocking, but every request is answered by the kernel at once (no network).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDR_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
/// Address flags (linux/if_addr.h).
pub const IFA_F_SECONDARY: u32 = 0x01;
pub const IFA_F_NODAD: u32 = 0x02;
pub const IFA_F_TENTATIVE: u32 = 0x40;
pub const IFA_F_DADFAILED: u32 = 0x08;

/// One address configured on an interface, from an RTM_GETADDR dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub scope: u8,
    /// `IFA_F_*` bits (the 32-bit IFA_FLAGS attribute when present).
    pub flags: u32,
}

/// A NETLINK_ROUTE socket.
#[derive(Debug)]
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A kernel that never answers must not hang the runner: bound every receive.
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: valid fd, option value of the documented type and size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, seq: 1 })
    }

    /// Adds `address/prefix_len` to interface `ifindex`. `Ok(false)` when it was already
    /// there (EEXIST): adding is idempotent.
    pub fn add_address(
        &mut self,
        ifindex: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> io::Result<bool> {
        let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
        let seq = self.next_seq();
        let message = address_message(RTM_NEWADDR, flags, seq, ifindex, address, prefix_len);
        match self.request_ack(&message, seq) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes `address/prefix_len` from `ifindex`. `Ok(false)` when it was not there.
    pub fn del_address(
        &mut self,
        ifindex: u32,
        address: IpAddr,
        prefix_len: u8,
    ) -> io::Result<bool> {
        let seq = self.next_seq();
        let message = address_message(
            RTM_DELADDR,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            ifindex,
            address,
            prefix_len,
        );
        match self.request_ack(&message, seq) {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EADDRNOTAVAIL) | Some(libc::ENOENT) | Some(libc::ESRCH)
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Every address of interface `ifindex` (both families).
    pub fn addresses(&mut self, ifindex: u32) -> io::Result<Vec<InterfaceAddress>> {
        let seq = self.next_seq();
        let mut message = Vec::with_capacity(NLMSG_HDR_LEN + IFADDRMSG_LEN);
        push_header(&mut message, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
        message.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        message.extend_from_slice(&0u32.to_ne_bytes());
        finish_length(&mut message);
        self.send(&message)?;
        let mut found = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let len = self.recv(&mut buf)?;
            let data = buf.get(..len).unwrap_or_default();
            match parse_dump(data, seq, ifindex, &mut found)? {
                DumpProgress::Done => return Ok(found),
                DumpProgress::More => {}
            }
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&self, message: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl is valid (pid 0 = the kernel).
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buffer and address are valid for the lengths given.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                message.as_ptr().cast(),
                message.len(),
                0,
                (&raw const kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buffer valid for its length.
            let rc =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if rc >= 0 {
                return usize::try_from(rc).map_err(io::Error::other);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn request_ack(&self, message: &[u8], seq: u32) -> io::Result<()> {
        self.send(message)?;
        let mut buf = vec![0u8; 8192];
        loop {
            let len = self.recv(&mut buf)?;
            if let Some(result) = find_ack(buf.get(..len).unwrap_or_default(), seq) {
                return result;
            }
        }
    }
}

fn push_header(out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32) {
    out.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish_length
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel assigns ours
}

fn finish_length(out: &mut [u8]) {
    let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
    if let Some(field) = out.get_mut(..4) {
        field.copy_from_slice(&len.to_ne_bytes());
    }
}

fn push_attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = u16::try_from(4 + data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(data);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// RTM_NEWADDR / RTM_DELADDR for one address. IPv6 virtual addresses are added with
/// IFA_F_NODAD: a VIP moving between routers must be usable (and announceable with an
/// unsolicited NA) at once, not after a second of duplicate detection that the old
/// master's copy could even fail.
pub(crate) fn address_message(
    kind: u16,
    flags: u16,
    seq: u32,
    ifindex: u32,
    address: IpAddr,
    prefix_len: u8,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    push_header(&mut out, kind, flags, seq);
    let (family, ifa_flags, bytes): (u8, u32, Vec<u8>) = match address {
        IpAddr::V4(v4) => (libc::AF_INET as u8, 0, v4.octets().to_vec()),
        IpAddr::V6(v6) => (libc::AF_INET6 as u8, IFA_F_NODAD, v6.octets().to_vec()),
    };
    // struct ifaddrmsg: family, prefixlen, flags (low 8 bits), scope (universe), index.
    out.extend_from_slice(&[family, prefix_len, ifa_flags as u8, 0]);
    out.extend_from_slice(&ifindex.to_ne_bytes());
    push_attr(&mut out, IFA_LOCAL, &bytes);
    push_attr(&mut out, IFA_ADDRESS, &bytes);
    if ifa_flags != 0 {
        push_attr(&mut out, IFA_FLAGS, &ifa_flags.to_ne_bytes());
    }
    finish_length(&mut out);
    out
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Iterates the netlink messages of one datagram: (type, flags, seq, payload).
fn messages(data: &[u8]) -> impl Iterator<Item = (u16, u16, u32, &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        let len = usize::try_from(u32_at(rest, 0)?).ok()?;
        if len < NLMSG_HDR_LEN || len > rest.len() {
            return None;
        }
        let kind = u16_at(rest, 4)?;
        let flags = u16_at(rest, 6)?;
        let seq = u32_at(rest, 8)?;
        let payload = rest.get(NLMSG_HDR_LEN..len)?;
        let aligned = len.next_multiple_of(4).min(rest.len());
        rest = rest.get(aligned..).unwrap_or_default();
        Some((kind, flags, seq, payload))
    })
}

/// The acknowledgement for `seq` in a datagram, if it holds one.
pub(crate) fn find_ack(data: &[u8], seq: u32) -> Option<io::Result<()>> {
    messages(data)
        .filter(|&(kind, _, s, _)| kind == NLMSG_ERROR && s == seq)
        .find_map(|(_, _, _, payload)| {
            let code = i32::from_ne_bytes(payload.get(..4)?.try_into().ok()?);
            Some(if code == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(code.saturating_neg()))
            })
        })
}

pub(crate) enum DumpProgress {
    More,
    Done,
}

/// Collects the addresses of `ifindex` from one datagram of an RTM_GETADDR dump.
pub(crate) fn parse_dump(
    data: &[u8],
    seq: u32,
    ifindex: u32,
    found: &mut Vec<InterfaceAddress>,
) -> io::Result<DumpProgress> {
    for (kind, flags, s, payload) in messages(data) {
        if s != seq {
            continue;
        }
        match kind {
            NLMSG_DONE => return Ok(DumpProgress::Done),
            NLMSG_ERROR => {
                let code = payload
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(i32::from_ne_bytes)
                    .unwrap_or(-libc::EIO);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(code.saturating_neg()));
                }
                return Ok(DumpProgress::Done);
            }
            RTM_NEWADDR => {
                if let Some(address) = parse_address(payload, ifindex) {
                    found.push(address);
                }
                if flags & NLM_F_MULTI == 0 {
                    return Ok(DumpProgress::Done);
                }
            }
            _ => {}
        }
    }
    Ok(DumpProgress::More)
}

fn parse_address(payload: &[u8], ifindex: u32) -> Option<InterfaceAddress> {
    let header = payload.get(..IFADDRMSG_LEN)?;
    if u32_at(header, 4)? != ifindex {
        return None;
    }
    let family = i32::from(header[0]);
    let prefix_len = header[1];
    let mut flags = u32::from(header[2]);
    let scope = header[3];
    let (mut local, mut address) = (None, None);
    let mut rest = payload.get(IFADDRMSG_LEN..)?;
    while let (Some(len), Some(kind)) = (u16_at(rest, 0), u16_at(rest, 2)) {
        let len = usize::from(len);
        if len < 4 || len > rest.len() {
            break;
        }
        let data = rest.get(4..len)?;
        let ip = match (family, data.len()) {
            (libc::AF_INET, 4) => <[u8; 4]>::try_from(data)
                .ok()
                .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            (libc::AF_INET6, 16) => <[u8; 16]>::try_from(data)
                .ok()
                .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            _ => None,
        };
        match kind {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            IFA_FLAGS => flags = u32_at(data, 0).unwrap_or(flags),
            _ => {}
        }
        rest = rest
            .get(len.next_multiple_of(4).min(rest.len())..)
            .unwrap_or_default();
    }
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on a
    // point-to-point link); IPv6 sends IFA_ADDRESS only.
    Some(InterfaceAddress {
        address: local.or(address)?,
        prefix_len,
        scope,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_address_message_layout() {
        let msg = address_message(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            7,
            3,
            "10.0.0.100".parse().unwrap(),
            24,
        );
        assert_eq!(msg.len(), 16 + 8 + 8 + 8);
        assert_eq!(u32_at(&msg, 0), Some(40));
        assert_eq!(u16_at(&msg, 4), Some(RTM_NEWADDR));
        assert_eq!(u32_at(&msg, 8), Some(7));
        assert_eq!(&msg[16..20], &[libc::AF_INET as u8, 24, 0, 0]);
        assert_eq!(u32_at(&msg, 20), Some(3));
        assert_eq!(&msg[28..32], &[10, 0, 0, 100]);
    }

    #[test]
    fn ipv6_addresses_skip_duplicate_detection() {
        let msg = address_message(RTM_NEWADDR, 0, 1, 2, "2001:db8::10".parse().unwrap(), 64);
        assert_eq!(msg[18] as u32, IFA_F_NODAD);
        // header + ifaddrmsg + 2 x (4 + 16) + IFA_FLAGS (4 + 4)
        assert_eq!(msg.len(), 16 + 8 + 40 + 8);
    }

    fn reply(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_header(&mut out, kind, flags, seq);
        out.extend_from_slice(payload);
        finish_length(&mut out);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    #[test]
    fn acks_and_errors_are_matched_by_sequence() {
        let ok = reply(NLMSG_ERROR, 0, 5, &0i32.to_ne_bytes());
        assert!(find_ack(&ok, 4).is_none());
        assert!(matches!(find_ack(&ok, 5), Some(Ok(()))));
        let exists = reply(NLMSG_ERROR, 0, 6, &(-libc::EEXIST).to_ne_bytes());
        let err = find_ack(&exists, 6).unwrap().unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST));
        // Garbage never panics.
        assert!(find_ack(&[0xff; 3], 1).is_none());
        assert!(find_ack(&[20, 0, 0, 0, 2, 0], 1).is_none());
    }

    #[test]
    fn dump_keeps_the_asked_interface_only() {
        let mut payload = vec![libc::AF_INET as u8, 24, 0, 0];
        payload.extend_from_slice(&2u32.to_ne_bytes());
        push_attr(&mut payload, IFA_ADDRESS, &[10, 0, 0, 1]);
        push_attr(&mut payload, IFA_LOCAL, &[10, 0, 0, 1]);
        push_attr(&mut payload, IFA_FLAGS, &IFA_F_SECONDARY.to_ne_bytes());
        let mut other = vec![libc::AF_INET as u8, 8, 0, 0];
        other.extend_from_slice(&1u32.to_ne_bytes());
        push_attr(&mut other, IFA_LOCAL, &[127, 0, 0, 1]);
        let mut data = reply(RTM_NEWADDR, NLM_F_MULTI, 9, &payload);
        data.extend(reply(RTM_NEWADDR, NLM_F_MULTI, 9, &other));
        let mut found = Vec::new();
        assert!(matches!(
            parse_dump(&data, 9, 2, &mut found),
            Ok(DumpProgress::More)
        ));
        assert_eq!(
            found,
            vec![InterfaceAddress {
                address: "10.0.0.1".parse().unwrap(),
                prefix_len: 24,
                scope: 0,
                flags: IFA_F_SECONDARY,
            }]
        );
        let done = reply(NLMSG_DONE, NLM_F_MULTI, 9, &0i32.to_ne_bytes());
        assert!(matches!(
            parse_dump(&done, 9, 2, &mut found),
            Ok(DumpProgress::Done)
        ));
    }
}
