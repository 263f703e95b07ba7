//! Pure rtnetlink requests and replies: `netlink-packet-route` messages in, bytes out,
//! and datagrams back into the few facts vigil reads. No sockets.

use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::IFA_F_NODAD;

/// One address configured on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterfaceAddress {
    /// The interface's index.
    pub ifindex: u32,
    /// The address (`IFA_LOCAL`, or `IFA_ADDRESS` where there is no local one, as IPv6).
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix_len: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// `IFA_F_*` bits (the 32-bit `IFA_FLAGS` attribute when present).
    pub flags: u32,
}

/// What vigil reads of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The kernel's index.
    pub index: u32,
    /// Its name (`IFLA_IFNAME`).
    pub name: String,
    /// Its hardware address when it is an Ethernet one (6 bytes).
    pub mac: Option<[u8; 6]>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// `IFF_UP`: administratively up.
    pub up: bool,
    /// `IFF_RUNNING`: has carrier (a pulled cable or a downed veth peer clears it).
    pub running: bool,
    /// Its kind (`IFLA_INFO_KIND`, e.g. `macvlan`), when it has one.
    pub kind: Option<String>,
    /// The link it sits on (`IFLA_LINK`), e.g. a macvlan's base interface.
    pub parent: Option<u32>,
}

impl Link {
    /// Up and with carrier: what "the link works" means to a tracker.
    pub fn is_running(&self) -> bool {
        self.up && self.running
    }
}

/// A route of a table, as vigil reads it back: what the BGP announcer owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableRoute {
    /// The destination prefix's address.
    pub destination: IpAddr,
    /// Its length (32 or 128 for a host route).
    pub prefix_len: u8,
    /// The routing table (`RTA_TABLE`, else the header's).
    pub table: u32,
    /// `rtm_protocol`: who wrote it.
    pub protocol: u8,
    /// The output interface, when it has one.
    pub oif: Option<u32>,
}

/// Frames `message` as one request with `flags` and sequence number `seq`.
pub fn request(message: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    buf
}

/// The flags of a request that creates an address (failing with `EEXIST` if present).
pub const CREATE_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
/// The flags of a request that is only acknowledged.
pub const ACK_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// The flags of a dump request.
pub const DUMP_FLAGS: u16 = NLM_F_REQUEST | NLM_F_DUMP;

/// `RTM_NEWADDR` or `RTM_DELADDR` for one address. IPv6 virtual addresses are added with
/// `IFA_F_NODAD`: a VIP moving between routers must be usable (and announceable with an
/// unsolicited NA) at once, not after a second of duplicate detection that the old
/// master's copy could even fail.
pub fn address(add: bool, ifindex: u32, address: IpAddr, prefix_len: u8) -> RouteNetlinkMessage {
    let mut message = AddressMessage::default();
    message.header.family = match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    message.header.prefix_len = prefix_len;
    message.header.scope = AddressScope::Universe;
    message.header.index = ifindex;
    message.attributes.push(AddressAttribute::Local(address));
    message.attributes.push(AddressAttribute::Address(address));
    if address.is_ipv6() {
        message.header.flags = AddressHeaderFlags::Nodad;
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::from_bits_retain(
                IFA_F_NODAD,
            )));
    }
    if add {
        RouteNetlinkMessage::NewAddress(message)
    } else {
        RouteNetlinkMessage::DelAddress(message)
    }
}

/// `RTM_NEWROUTE` or `RTM_DELROUTE` of a host route (/32, /128) to `destination` out
/// of `ifindex`, in `table`, written by `protocol`. No gateway: the route only has to
/// exist for a speaker to export it; nothing routes by that table.
pub fn host_route(
    add: bool,
    table: u32,
    protocol: u8,
    ifindex: u32,
    destination: IpAddr,
) -> RouteNetlinkMessage {
    let mut message = host_route_message(table, protocol, ifindex, destination);
    message.header.kind = RouteType::Unicast;
    if add {
        RouteNetlinkMessage::NewRoute(message)
    } else {
        RouteNetlinkMessage::DelRoute(message)
    }
}

/// The kernel's local table (`RT_TABLE_LOCAL`).
pub const LOCAL_TABLE: u32 = 255;

/// `RTM_NEWROUTE` or `RTM_DELROUTE` of a `local` route (as `ip route add local ADDR dev
/// X`) in the local table: packets to `destination` are delivered here (and to IPVS)
/// without it being an interface address, which routing daemons (FRR's zebra) would
/// take for a connected route.
pub fn local_route(
    add: bool,
    protocol: u8,
    ifindex: u32,
    destination: IpAddr,
) -> RouteNetlinkMessage {
    let mut message = host_route_message(LOCAL_TABLE, protocol, ifindex, destination);
    message.header.kind = RouteType::Local;
    message.header.scope = RouteScope::Host;
    if add {
        RouteNetlinkMessage::NewRoute(message)
    } else {
        RouteNetlinkMessage::DelRoute(message)
    }
}

fn host_route_message(table: u32, protocol: u8, ifindex: u32, destination: IpAddr) -> RouteMessage {
    let mut message = RouteMessage::default();
    let (family, len) = match destination {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    message.header.address_family = family;
    message.header.destination_prefix_length = len;
    // Tables past 255 live only in RTA_TABLE; the header then says RT_TABLE_UNSPEC.
    message.header.table = u8::try_from(table).unwrap_or(RouteHeader::RT_TABLE_UNSPEC);
    message.header.protocol = RouteProtocol::from(protocol);
    // As `ip route add ... dev X`: link scope for IPv4 (no gateway), universe for IPv6.
    message.header.scope = if destination.is_ipv4() {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(destination)));
    message.attributes.push(RouteAttribute::Table(table));
    message.attributes.push(RouteAttribute::Oif(ifindex));
    message
}

/// `RTM_GETROUTE` dump of every route of every table (both families).
pub fn dump_routes() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetRoute(RouteMessage::default())
}

/// The facts of a `RTM_NEWROUTE`; `None` for a destination that is not an IP address.
pub fn table_route(message: &RouteMessage) -> Option<TableRoute> {
    let mut route = TableRoute {
        destination: match message.header.address_family {
            AddressFamily::Inet => IpAddr::from([0u8; 4]),
            AddressFamily::Inet6 => IpAddr::from([0u8; 16]),
            _ => return None,
        },
        prefix_len: message.header.destination_prefix_length,
        table: u32::from(message.header.table),
        protocol: u8::from(message.header.protocol),
        oif: None,
    };
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(a)) => route.destination = (*a).into(),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                route.destination = (*a).into();
            }
            RouteAttribute::Destination(_) => return None,
            RouteAttribute::Table(t) => route.table = *t,
            RouteAttribute::Oif(i) => route.oif = Some(*i),
            _ => {}
        }
    }
    Some(route)
}

/// `RTM_GETADDR` dump of every address (both families).
pub fn dump_addresses() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetAddress(AddressMessage::default())
}

/// `RTM_GETLINK` of one link by name.
pub fn get_link(name: &str) -> RouteNetlinkMessage {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    RouteNetlinkMessage::GetLink(message)
}

/// `RTM_GETLINK` dump of every link.
pub fn dump_links() -> RouteNetlinkMessage {
    RouteNetlinkMessage::GetLink(LinkMessage::default())
}

/// What one message of a received datagram says.
#[derive(Debug)]
pub enum Reply {
    /// `NLMSG_ERROR` with 0: the request was carried out.
    Ack,
    /// `NLMSG_ERROR` with an errno (positive here).
    Refused(i32),
    /// `NLMSG_DONE`: the end of a dump, with its errno (0 when complete).
    Done(i32),
    /// A routing message.
    Message(RouteNetlinkMessage),
    /// Something that could not be read (an attribute this version does not parse), or
    /// a control message (noop, overrun): skipped by callers.
    Skipped,
}

/// Splits a datagram into `(sequence number, flags, reply)`. It stops at the first
/// header that does not frame (a length past the datagram or below a header's).
pub fn replies(datagram: &[u8]) -> Vec<(u32, u16, Reply)> {
    let mut out = Vec::new();
    let mut rest = datagram;
    while let Ok(buffer) = NetlinkBuffer::new_checked(rest) {
        let len = usize::try_from(buffer.length()).unwrap_or(usize::MAX);
        let (seq, flags) = (buffer.sequence_number(), buffer.flags());
        let Some(one) = rest.get(..len) else {
            break;
        };
        let reply = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(one) {
            Ok(message) => match message.payload {
                NetlinkPayload::Error(e) => match e.code {
                    None => Reply::Ack,
                    Some(code) => Reply::Refused(code.get().saturating_abs()),
                },
                NetlinkPayload::Done(d) => Reply::Done(d.code.saturating_abs()),
                NetlinkPayload::InnerMessage(m) => Reply::Message(m),
                _ => Reply::Skipped,
            },
            Err(_) => Reply::Skipped,
        };
        out.push((seq, flags, reply));
        rest = rest
            .get(len.next_multiple_of(4).min(rest.len())..)
            .unwrap_or_default();
    }
    out
}

/// The address a `RTM_NEWADDR` describes. `IFA_LOCAL` is the interface's own address
/// (`IFA_ADDRESS` is the peer on a point-to-point link); IPv6 sends `IFA_ADDRESS` only.
pub fn interface_address(message: &AddressMessage) -> Option<InterfaceAddress> {
    let mut flags = u32::from(message.header.flags.bits());
    let (mut local, mut address) = (None, None);
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = f.bits(),
            _ => {}
        }
    }
    Some(InterfaceAddress {
        ifindex: message.header.index,
        address: local.or(address)?,
        prefix_len: message.header.prefix_len,
        scope: u8::from(message.header.scope),
        flags,
    })
}

/// The facts of a `RTM_NEWLINK`.
pub fn link(message: &LinkMessage) -> Link {
    let flags = message.header.flags;
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: None,
        mtu: None,
        up: flags.contains(LinkFlags::Up),
        running: flags.contains(LinkFlags::Running),
        kind: None,
        parent: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Address(bytes) => link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
            LinkAttribute::Mtu(mtu) => link.mtu = Some(*mtu),
            LinkAttribute::Link(parent) => link.parent = Some(*parent),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn u16_at(data: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes(data[at..at + 2].try_into().unwrap())
    }

    fn u32_at(data: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(data[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn new_address_layout() {
        let msg = request(
            address(true, 3, "10.0.0.100".parse().unwrap(), 24),
            CREATE_FLAGS,
            7,
        );
        assert_eq!(msg.len(), 16 + 8 + 8 + 8);
        assert_eq!(u32_at(&msg, 0), 40);
        assert_eq!(u16_at(&msg, 4), 20); // RTM_NEWADDR
        assert_eq!(u16_at(&msg, 6), CREATE_FLAGS);
        assert_eq!(u32_at(&msg, 8), 7);
        assert_eq!(&msg[16..20], &[libc::AF_INET as u8, 24, 0, 0]);
        assert_eq!(u32_at(&msg, 20), 3);
        // IFA_LOCAL then IFA_ADDRESS, each 4 + 4 bytes.
        assert_eq!(u16_at(&msg, 26), 2);
        assert_eq!(&msg[28..32], &[10, 0, 0, 100]);
        assert_eq!(u16_at(&msg, 34), 1);
    }

    #[test]
    fn ipv6_addresses_skip_duplicate_detection() {
        let msg = request(
            address(false, 2, "2001:db8::10".parse().unwrap(), 64),
            ACK_FLAGS,
            1,
        );
        assert_eq!(u16_at(&msg, 4), 21); // RTM_DELADDR
        assert_eq!(u32::from(msg[18]), IFA_F_NODAD);
        // header + ifaddrmsg + 2 x (4 + 16) + IFA_FLAGS (4 + 4)
        assert_eq!(msg.len(), 16 + 8 + 40 + 8);
    }

    fn datagram(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u32::try_from(16 + payload.len()).unwrap().to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out
    }

    fn error_payload(code: i32) -> Vec<u8> {
        let mut p = code.to_ne_bytes().to_vec();
        p.extend_from_slice(&[0; 16]); // the echoed request header (capped)
        p
    }

    #[test]
    fn host_routes_in_a_table_of_their_own() {
        let msg = request(
            host_route(true, 100, 252, 1, "192.0.2.10".parse().unwrap()),
            CREATE_FLAGS,
            3,
        );
        assert_eq!(u16_at(&msg, 4), 24); // RTM_NEWROUTE
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type
        assert_eq!(
            &msg[16..24],
            &[libc::AF_INET as u8, 32, 0, 0, 100, 252, 253, 1]
        );
        // Read back as a dump entry: the same facts.
        let got = replies(&msg);
        let Reply::Message(RouteNetlinkMessage::NewRoute(m)) = &got[0].2 else {
            panic!("{got:?}");
        };
        assert_eq!(
            table_route(m),
            Some(TableRoute {
                destination: "192.0.2.10".parse().unwrap(),
                prefix_len: 32,
                table: 100,
                protocol: 252,
                oif: Some(1),
            })
        );

        // A table past 255 is in RTA_TABLE alone; IPv6 is /128, universe scope.
        let msg = request(
            host_route(false, 70_000, 99, 2, "2001:db8::10".parse().unwrap()),
            ACK_FLAGS,
            4,
        );
        assert_eq!(u16_at(&msg, 4), 25); // RTM_DELROUTE
        assert_eq!(
            &msg[16..24],
            &[libc::AF_INET6 as u8, 128, 0, 0, 0, 99, 0, 1]
        );
        let mut back = msg.clone();
        back[4..6].copy_from_slice(&24u16.to_ne_bytes());
        let got = replies(&back);
        let Reply::Message(RouteNetlinkMessage::NewRoute(m)) = &got[0].2 else {
            panic!("{got:?}");
        };
        let r = table_route(m).unwrap();
        assert_eq!((r.table, r.protocol, r.prefix_len), (70_000, 99, 128));
    }

    #[test]
    fn local_routes_go_to_the_local_table() {
        let msg = request(
            local_route(true, 252, 1, "192.0.2.10".parse().unwrap()),
            CREATE_FLAGS,
            3,
        );
        // table local (255), protocol 252, scope host (254), type local (2)
        assert_eq!(
            &msg[16..24],
            &[libc::AF_INET as u8, 32, 0, 0, 255, 252, 254, 2]
        );
    }

    #[test]
    fn acks_errors_and_garbage() {
        let mut data = datagram(2, 0, 5, &error_payload(0));
        data.extend(datagram(2, 0, 6, &error_payload(-libc::EEXIST)));
        let got = replies(&data);
        assert!(matches!(got[0], (5, _, Reply::Ack)));
        assert!(matches!(got[1], (6, _, Reply::Refused(e)) if e == libc::EEXIST));
        // Garbage never panics and yields nothing.
        assert!(replies(&[0xff; 3]).is_empty());
        assert!(replies(&[200, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_empty());
    }

    #[test]
    fn dumped_addresses_and_links_are_read() {
        // A real RTM_NEWADDR as built by the codec, answered back as a dump entry.
        let mut one = request(
            address(true, 2, "10.0.0.1".parse().unwrap(), 24),
            DUMP_FLAGS,
            9,
        );
        one[4..6].copy_from_slice(&20u16.to_ne_bytes());
        let mut data = one;
        data.extend(datagram(3, 2, 9, &0i32.to_ne_bytes()));
        let got = replies(&data);
        let Reply::Message(RouteNetlinkMessage::NewAddress(m)) = &got[0].2 else {
            panic!("{got:?}");
        };
        assert_eq!(
            interface_address(m),
            Some(InterfaceAddress {
                ifindex: 2,
                address: "10.0.0.1".parse().unwrap(),
                prefix_len: 24,
                scope: 0,
                flags: 0,
            })
        );
        assert!(matches!(got[1], (9, _, Reply::Done(0))));

        let mut message = LinkMessage::default();
        message.header.index = 4;
        message.header.flags = LinkFlags::Up | LinkFlags::Running;
        message.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 1]),
        ];
        let bytes = request(RouteNetlinkMessage::NewLink(message), 0, 0);
        let got = replies(&bytes);
        let Reply::Message(RouteNetlinkMessage::NewLink(m)) = &got[0].2 else {
            panic!("{got:?}");
        };
        let l = link(m);
        assert_eq!(l.name, "eth0");
        assert_eq!(l.mtu, Some(1500));
        assert_eq!(l.mac, Some([2, 0, 0, 0, 0, 1]));
        assert!(l.is_running());
    }
}
