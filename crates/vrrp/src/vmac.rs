//! The virtual MAC of a virtual router (`use_vmac`) and the pure decisions about its
//! interface: which address, what to do with an interface of that name found at
//! startup, and which interface adverts leave from. The runner carries them out through
//! vigil-netlink.

use vigil_netlink::Link;

use crate::packet::Family;

/// An instance's virtual MAC interface, from the cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmacConfig {
    /// The macvlan's name (keepalived's default `vrrp.VRID`).
    pub name: String,
    /// Adverts leave from the base interface, not the macvlan (keepalived's
    /// `vmac_xmit_base`); addresses and announcements stay on the macvlan.
    pub xmit_base: bool,
}

/// The virtual router MAC address of RFC 5798 §7.3: "IPv4 case: 00-00-5E-00-01-{VRID}"
/// and "IPv6 case: 00-00-5E-00-02-{VRID}" (the first three octets are the IANA OUI, the
/// next two the address block).
pub fn virtual_mac(family: Family, vrid: u8) -> [u8; 6] {
    let block = match family {
        Family::Ipv4 => 0x01,
        Family::Ipv6 => 0x02,
    };
    [0x00, 0x00, 0x5e, 0x00, block, vrid]
}

/// What to do about the virtual MAC interface's name at startup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmacSetup {
    /// No such interface: create it.
    Create,
    /// Ours, left by an earlier run (a crash): use it as it is, addresses and all (the
    /// state machine keeps addresses it finds until another master is heard).
    Adopt(u32),
    /// A macvlan on our base interface with another address (another VRID or family
    /// before a change of the file): delete it and create ours.
    Recreate(u32),
    /// Something else carries the name: refuse rather than delete an interface that is
    /// not ours.
    Refuse(String),
}

/// Decides [`VmacSetup`] from the link found under the name (if any), the base
/// interface's index and the virtual MAC wanted.
pub fn vmac_setup(found: Option<&Link>, base: u32, mac: [u8; 6]) -> VmacSetup {
    let Some(link) = found else {
        return VmacSetup::Create;
    };
    let ours = link.kind.as_deref() == Some("macvlan") && link.parent == Some(base);
    match (ours, link.mac == Some(mac)) {
        (true, true) => VmacSetup::Adopt(link.index),
        (true, false) => VmacSetup::Recreate(link.index),
        (false, _) => VmacSetup::Refuse(format!(
            "interface {} exists and is not a macvlan of the instance's interface (kind {}, on {}): set another vmac_name or remove it",
            link.name,
            link.kind.as_deref().unwrap_or("none"),
            link.parent
                .map_or_else(|| "no link".to_string(), |p| format!("interface {p}")),
        )),
    }
}

/// Whether adverts are sent (their source MAC the virtual one, RFC 5798 §7.3) and
/// received on the virtual MAC interface rather than the base interface: with
/// `use_vmac` unless `vmac_xmit_base`, for IPv4 multicast. Received there too because
/// the macvlan driver hands a multicast frame whose source is its virtual MAC (a peer's
/// advert) to the macvlan alone. IPv6 adverts must come from a link-local
/// address of the sending interface and the macvlan has none (its address generation is
/// off so it sends nothing as a backup); unicast adverts would need a route through the
/// macvlan to each peer. Both leave from the base interface.
pub fn adverts_from_vmac(vmac: Option<&VmacConfig>, family: Family, unicast_peers: bool) -> bool {
    vmac.is_some_and(|v| !v.xmit_base) && family == Family::Ipv4 && !unicast_peers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_virtual_mac_follows_rfc5798_section_7_3() {
        // RFC 5798 §7.3: 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6.
        assert_eq!(virtual_mac(Family::Ipv4, 51), [0, 0, 0x5e, 0, 1, 51]);
        assert_eq!(virtual_mac(Family::Ipv6, 1), [0, 0, 0x5e, 0, 2, 1]);
        assert_eq!(virtual_mac(Family::Ipv4, 255), [0, 0, 0x5e, 0, 1, 0xff]);
    }

    fn link(kind: Option<&str>, parent: Option<u32>, mac: [u8; 6]) -> Link {
        Link {
            index: 9,
            name: "vrrp.51".into(),
            mac: Some(mac),
            mtu: Some(1500),
            up: true,
            running: true,
            kind: kind.map(str::to_string),
            parent,
        }
    }

    #[test]
    fn a_leftover_interface_is_adopted_recreated_or_refused() {
        let mac = virtual_mac(Family::Ipv4, 51);
        assert_eq!(vmac_setup(None, 2, mac), VmacSetup::Create);
        assert_eq!(
            vmac_setup(Some(&link(Some("macvlan"), Some(2), mac)), 2, mac),
            VmacSetup::Adopt(9)
        );
        let other = virtual_mac(Family::Ipv6, 51);
        assert_eq!(
            vmac_setup(Some(&link(Some("macvlan"), Some(2), other)), 2, mac),
            VmacSetup::Recreate(9)
        );
        // A macvlan on another interface, or a dummy: not ours to delete.
        assert!(matches!(
            vmac_setup(Some(&link(Some("macvlan"), Some(3), mac)), 2, mac),
            VmacSetup::Refuse(_)
        ));
        let VmacSetup::Refuse(why) = vmac_setup(Some(&link(Some("dummy"), None, mac)), 2, mac)
        else {
            panic!()
        };
        assert!(why.contains("kind dummy"), "{why}");
    }

    #[test]
    fn adverts_leave_from_the_vmac_for_ipv4_multicast_only() {
        let v = VmacConfig {
            name: "vrrp.51".into(),
            xmit_base: false,
        };
        assert!(adverts_from_vmac(Some(&v), Family::Ipv4, false));
        assert!(!adverts_from_vmac(None, Family::Ipv4, false));
        assert!(!adverts_from_vmac(Some(&v), Family::Ipv6, false));
        assert!(!adverts_from_vmac(Some(&v), Family::Ipv4, true));
        let base = VmacConfig {
            xmit_base: true,
            ..v
        };
        assert!(!adverts_from_vmac(Some(&base), Family::Ipv4, false));
    }
}
