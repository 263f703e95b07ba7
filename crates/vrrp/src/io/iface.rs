//! Interface facts: index, hardware address, link state (read over rtnetlink through
//! vigil-netlink, no ioctls), and the primary address an instance advertises from.

use std::io;
use std::net::IpAddr;

use vigil_netlink::{IFA_F_DADFAILED, IFA_F_SECONDARY, IFA_F_TENTATIVE, InterfaceAddress, Link};

use crate::packet::Family;

/// The link called `name`, asked of the kernel over rtnetlink (vigil-netlink).
fn link(name: &str) -> io::Result<Link> {
    if name.is_empty() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    vigil_netlink::link(name).map_err(|e| match e.raw_os_error() {
        Some(errno) => io::Error::from_raw_os_error(errno),
        None => io::Error::other(e),
    })
}

/// The kernel's index of interface `name`.
pub fn index(name: &str) -> io::Result<u32> {
    Ok(link(name)?.index)
}

/// The interface's Ethernet address.
pub fn mac(name: &str) -> io::Result<[u8; 6]> {
    link(name)?.mac.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{name} has no Ethernet address"),
        )
    })
}

/// The interface's MTU, which an advert must fit in.
pub fn mtu(name: &str) -> io::Result<u32> {
    link(name)?
        .mtu
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("{name} has no MTU")))
}

/// Whether the interface is administratively up and has carrier (IFF_UP and
/// IFF_RUNNING): a pulled cable clears IFF_RUNNING.
pub fn is_running(name: &str) -> io::Result<bool> {
    Ok(link(name)?.is_running())
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
            ifindex: 2,
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
