//! Interface facts: index, hardware address, link state, and the primary address an
//! instance advertises from.

use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::io::netlink::{IFA_F_DADFAILED, IFA_F_SECONDARY, IFA_F_TENTATIVE, InterfaceAddress};
use crate::packet::Family;

/// The kernel's index of interface `name`.
pub fn index(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: NUL-terminated string valid for the call.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(index)
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in req.ifr_name.iter_mut().zip(bytes) {
        *slot = *byte as libc::c_char;
    }
    Ok(req)
}

fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2), checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// The interface's Ethernet address (SIOCGIFHWADDR).
pub fn mac(name: &str) -> io::Result<[u8; 6]> {
    let mut req = ifreq_for(name)?;
    let sock = ioctl_socket()?;
    // SAFETY: valid socket and ifreq for this request.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &raw mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR fills the hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (slot, byte) in mac.iter_mut().zip(data.iter()) {
        *slot = *byte as u8;
    }
    Ok(mac)
}

/// The interface's MTU (SIOCGIFMTU), which an advert must fit in.
pub fn mtu(name: &str) -> io::Result<u32> {
    let mut req = ifreq_for(name)?;
    let sock = ioctl_socket()?;
    // SAFETY: valid socket and ifreq for this request.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU, &raw mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU fills the mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

/// Whether the interface is administratively up and has carrier (IFF_UP and
/// IFF_RUNNING): a pulled cable clears IFF_RUNNING.
pub fn is_running(name: &str) -> io::Result<bool> {
    let mut req = ifreq_for(name)?;
    let sock = ioctl_socket()?;
    // SAFETY: valid socket and ifreq for this request.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &raw mut req) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS fills the flags member of the union.
    let flags = i32::from(unsafe { req.ifr_ifru.ifru_flags });
    Ok(flags & libc::IFF_UP != 0 && flags & libc::IFF_RUNNING != 0)
}

/// Picks the address adverts are sent from.
///
/// IPv4: the first primary (non-secondary) address that is not one of the instance's
/// virtual addresses (RFC 5798 §5.1.1.1: "the primary IPv4 address of the interface the
/// packet is being sent from"). IPv6: the interface's link-local address (RFC 5798
/// §5.1.2.1: "the IPv6 link-local address of the interface"). Tentative or failed
/// addresses cannot be sent from and are skipped.
pub fn primary_address(
    addresses: &[InterfaceAddress],
    family: Family,
    vips: &[IpAddr],
) -> Option<IpAddr> {
    let usable = |a: &&InterfaceAddress| {
        Family::of(a.address) == family
            && a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0
            && !vips.contains(&a.address)
    };
    match family {
        Family::Ipv4 => addresses
            .iter()
            .filter(usable)
            .find(|a| a.flags & IFA_F_SECONDARY == 0)
            .or_else(|| addresses.iter().find(usable))
            .map(|a| a.address),
        Family::Ipv6 => addresses
            .iter()
            .filter(usable)
            .find(|a| matches!(a.address, IpAddr::V6(v6) if v6.is_unicast_link_local()))
            .map(|a| a.address),
    }
}

/// The source for IPv6 unicast adverts to peers beyond the link-local scope: the
/// first usable global address that is not a virtual address. RFC 5798 §5.1.2.1 asks
/// for the link-local address, but peers configured by global address recognise (and
/// reach) each other only by those.
pub fn global_ipv6_address(addresses: &[InterfaceAddress], vips: &[IpAddr]) -> Option<IpAddr> {
    addresses
        .iter()
        .filter(|a| a.flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0)
        .filter(|a| !vips.contains(&a.address))
        .find(|a| matches!(a.address, IpAddr::V6(v6) if !v6.is_unicast_link_local() && !v6.is_loopback()))
        .map(|a| a.address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str, flags: u32) -> InterfaceAddress {
        InterfaceAddress {
            address: s.parse().unwrap(),
            prefix_len: 24,
            scope: 0,
            flags,
        }
    }

    #[test]
    fn ipv4_primary_skips_vips_and_secondaries() {
        let list = [
            addr("10.0.0.100", 0),
            addr("10.0.0.7", IFA_F_SECONDARY),
            addr("10.0.0.1", 0),
            addr("fe80::1", 0),
        ];
        let vips = ["10.0.0.100".parse().unwrap()];
        assert_eq!(
            primary_address(&list, Family::Ipv4, &vips),
            Some("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn ipv6_primary_is_the_usable_link_local() {
        let list = [
            addr("2001:db8::1", 0),
            addr("fe80::9", IFA_F_TENTATIVE),
            addr("fe80::2", 0),
        ];
        assert_eq!(
            primary_address(&list, Family::Ipv6, &[]),
            Some("fe80::2".parse().unwrap())
        );
        assert_eq!(primary_address(&list[..2], Family::Ipv6, &[]), None);
    }

    #[test]
    fn ipv6_unicast_source_is_a_global_non_vip_address() {
        let list = [
            addr("fe80::2", 0),
            addr("fd00::100", 0),
            addr("fd00::7", IFA_F_TENTATIVE),
            addr("fd00::2", 0),
        ];
        let vips = ["fd00::100".parse().unwrap()];
        assert_eq!(
            global_ipv6_address(&list, &vips),
            Some("fd00::2".parse().unwrap())
        );
        assert_eq!(global_ipv6_address(&list[..1], &vips), None);
    }

    #[test]
    fn loopback_is_running_and_unknown_interfaces_fail() {
        // Every namespace has lo; it may be down in a fresh one, so only check the call.
        assert!(is_running("lo").is_ok());
        assert!(index("lo").is_ok());
        assert!(index("no-such-if0").is_err());
        assert!(mac("").is_err());
    }
}
