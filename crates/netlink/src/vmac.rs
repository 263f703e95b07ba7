//! Link requests for virtual-MAC interfaces: creating a macvlan on a base interface,
//! setting a link up, deleting it, and the per-interface IPv4 settings and IPv6 address
//! generation mode a VRRP virtual MAC interface needs. Pure message builders; the
//! [`Route`](crate::Route) client sends them.

use netlink_packet_core::{DefaultNla, Emitable};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoData, InfoKind, InfoMacVlan,
    LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};

/// `IFLA_INET_CONF` inside `IFLA_AF_SPEC`/`AF_INET`.
const IFLA_INET_CONF: u16 = 1;

/// IPv4 per-interface settings (`IPV4_DEVCONF_*`, linux/ip.h), as set through
/// [`ipv4_conf`].
pub mod devconf {
    pub const RP_FILTER: u16 = 8;
    pub const ARPFILTER: u16 = 13;
    pub const ARP_ANNOUNCE: u16 = 18;
    pub const ARP_IGNORE: u16 = 19;
    pub const ACCEPT_LOCAL: u16 = 23;
}

/// `RTM_NEWLINK` creating a macvlan called `name` on link `parent`, in `mode` private
/// (frames between macvlans of one base never meet: each node's virtual MAC interface
/// talks only to the wire), with hardware address `mac`, left down.
pub fn new_macvlan(name: &str, parent: u32, mac: [u8; 6]) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message.attributes = vec![
        LinkAttribute::IfName(name.to_string()),
        LinkAttribute::Link(parent),
        LinkAttribute::Address(mac.to_vec()),
        LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Private,
            )])),
        ]),
    ];
    RouteNetlinkMessage::NewLink(message)
}

/// `RTM_SETLINK` bringing link `index` up (`up`) or down.
pub fn set_up(index: u32, up: bool) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.header.change_mask = LinkFlags::Up;
    if up {
        message.header.flags = LinkFlags::Up;
    }
    RouteNetlinkMessage::SetLink(message)
}

/// `RTM_DELLINK` of link `index`.
pub fn del_link(index: u32) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    RouteNetlinkMessage::DelLink(message)
}

/// `RTM_SETLINK` setting IPv4 per-interface settings of link `index`: `(IPV4_DEVCONF_*,
/// value)` pairs, zeros included (the crate's own request form leaves zeros out).
pub fn ipv4_conf(index: u32, settings: &[(u16, u32)]) -> RouteNetlinkMessage {
    let mut nested = Vec::new();
    for (id, value) in settings {
        let nla = DefaultNla::new(*id, value.to_ne_bytes().to_vec());
        let mut buf = vec![0; nla.buffer_len()];
        nla.emit(&mut buf);
        nested.extend_from_slice(&buf);
    }
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes = vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
        AfSpecInet::Other(DefaultNla::new(IFLA_INET_CONF, nested)),
    ])])];
    RouteNetlinkMessage::SetLink(message)
}

/// `RTM_SETLINK` turning off IPv6 address generation on link `index` (no link-local
/// address, so none of the IPv6 chatter — DAD, MLD, router solicitations — leaves it
/// with its MAC as the source).
pub fn no_ipv6_address_generation(index: u32) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes = vec![LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(
        vec![AfSpecInet6::AddrGenMode(In6AddrGenMode::None)],
    )])];
    RouteNetlinkMessage::SetLink(message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::codec::{ACK_FLAGS, Reply, link, replies, request};

    #[test]
    fn a_macvlan_request_reads_back_as_a_macvlan_on_its_parent() {
        let mac = [0, 0, 0x5e, 0, 1, 51];
        let bytes = request(new_macvlan("vrrp.51", 2, mac), ACK_FLAGS, 1);
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 16); // RTM_NEWLINK
        let got = replies(&bytes);
        let Reply::Message(RouteNetlinkMessage::NewLink(m)) = &got[0].2 else {
            panic!("{got:?}");
        };
        let l = link(m);
        assert_eq!(l.name, "vrrp.51");
        assert_eq!(l.mac, Some(mac));
        assert_eq!(l.parent, Some(2));
        assert_eq!(l.kind.as_deref(), Some("macvlan"));
        // Private mode (MACVLAN_MODE_PRIVATE = 1) in IFLA_MACVLAN_MODE.
        let mode = bytes.windows(8).any(|w| w == [8, 0, 1, 0, 1, 0, 0, 0]);
        assert!(mode, "{bytes:?}");
    }

    #[test]
    fn ipv4_settings_keep_zeros() {
        let bytes = request(
            ipv4_conf(5, &[(devconf::ARP_IGNORE, 1), (devconf::RP_FILTER, 0)]),
            ACK_FLAGS,
            1,
        );
        assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), 19); // RTM_SETLINK
        // IFLA_AF_SPEC { AF_INET { IFLA_INET_CONF { 19 = 1, 8 = 0 } } }
        let tail = &bytes[bytes.len() - 16..];
        assert_eq!(tail, &[8, 0, 19, 0, 1, 0, 0, 0, 8, 0, 8, 0, 0, 0, 0, 0]);
        let up = request(set_up(5, true), ACK_FLAGS, 1);
        assert_eq!(u32::from_ne_bytes(up[20..24].try_into().unwrap()), 5);
        assert_eq!(u32::from_ne_bytes(up[24..28].try_into().unwrap()), 1); // IFF_UP
        assert_eq!(u32::from_ne_bytes(up[28..32].try_into().unwrap()), 1); // change
    }
}
