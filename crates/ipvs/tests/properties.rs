//! Property tests: what we encode decodes back to the same model, and no byte string
//! makes a decoder panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;
use vigil_ipvs::codec::{self, Request};
use vigil_ipvs::netlink;
use vigil_ipvs::{
    Destination, Family, ForwardMethod, Netmask, Protocol, Service, ServiceFlags, ServiceKey,
    SyncDaemon, SyncState, Timeouts, Tunnel, TunnelType,
};

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::Inet), Just(Family::Inet6)]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp),
        any::<u16>().prop_map(Protocol::from_raw),
    ]
}

fn service_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (protocol(), ip(), any::<u16>()).prop_map(|(protocol, ip, port)| ServiceKey::Addr {
            protocol,
            addr: SocketAddr::new(ip, port),
        }),
        (family(), 1..=u32::MAX).prop_map(|(family, mark)| ServiceKey::Fwmark { family, mark }),
    ]
}

fn service() -> impl Strategy<Value = Service> {
    (
        service_key(),
        "[a-z]{1,15}",
        any::<u32>(),
        any::<u32>(),
        any::<[u8; 4]>(),
        1u8..=128,
        proptest::option::of("[a-z]{1,15}"),
    )
        .prop_map(|(key, scheduler, flags, timeout, m4, p6, pe_name)| {
            let netmask = match key.family() {
                Family::Inet => Netmask::V4(Ipv4Addr::from(m4)),
                Family::Inet6 => Netmask::V6(p6),
            };
            Service {
                key,
                scheduler,
                flags: ServiceFlags(flags & !ServiceFlags::HASHED.bits()),
                timeout,
                netmask,
                pe_name,
            }
        })
}

fn destination() -> impl Strategy<Value = Destination> {
    (
        ip(),
        any::<u16>(),
        prop_oneof![
            Just(ForwardMethod::Masquerade),
            Just(ForwardMethod::Local),
            Just(ForwardMethod::Tunnel),
            Just(ForwardMethod::DirectRoute),
            Just(ForwardMethod::Bypass),
        ],
        0..=i32::MAX as u32,
        any::<u32>(),
        any::<u32>(),
        prop_oneof![
            Just(TunnelType::Ipip),
            Just(TunnelType::Gue),
            Just(TunnelType::Gre)
        ],
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(
            |(ip, port, forward, weight, u, l, kind, tport, tflags)| Destination {
                addr: SocketAddr::new(ip, port),
                forward,
                weight,
                upper_threshold: u,
                lower_threshold: l,
                tunnel: Tunnel {
                    kind,
                    port: tport,
                    flags: tflags,
                },
            },
        )
}

/// The attribute area of the single message in `buf`.
fn attr_area(buf: &[u8]) -> &[u8] {
    let mut it = netlink::messages(buf);
    match it.next() {
        Some(Ok(netlink::Message::Data { attrs, .. })) => attrs,
        other => panic!("not a data message: {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn service_round_trips(s in service(), seq in any::<u32>()) {
        let mut buf = Vec::new();
        Request::AddService(s.clone()).encode(0x30, seq, &mut buf).unwrap();
        let e = codec::decode_service(attr_area(&buf)).unwrap();
        prop_assert_eq!(e.service, s);
    }

    #[test]
    fn destination_round_trips(k in service_key(), d in destination()) {
        let mut buf = Vec::new();
        Request::UpdateDestination(k, d.clone()).encode(0x30, 1, &mut buf).unwrap();
        let e = codec::decode_destination(attr_area(&buf), k.family()).unwrap();
        prop_assert_eq!(e.destination, d);
    }

    #[test]
    fn daemon_round_trips(
        backup in any::<bool>(),
        ifn in "[a-z0-9]{1,15}",
        id in any::<u8>(),
        maxlen in proptest::option::of(any::<u16>()),
        group in proptest::option::of(ip()),
        port in proptest::option::of(any::<u16>()),
        ttl in proptest::option::of(any::<u8>()),
    ) {
        let d = SyncDaemon {
            state: if backup { SyncState::Backup } else { SyncState::Master },
            interface: ifn,
            sync_id: id,
            sync_maxlen: maxlen,
            mcast_group: group,
            mcast_port: port,
            mcast_ttl: ttl,
        };
        let mut buf = Vec::new();
        Request::StartSyncDaemon(d.clone()).encode(0x30, 1, &mut buf).unwrap();
        prop_assert_eq!(codec::decode_daemon(attr_area(&buf)).unwrap(), d);
    }

    #[test]
    fn timeouts_round_trip(tcp in 0u32..2_000_000, fin in 0u32..2_000_000, udp in 0u32..2_000_000) {
        let t = Timeouts { tcp, tcp_fin: fin, udp };
        let mut buf = Vec::new();
        Request::SetTimeouts(t).encode(0x30, 1, &mut buf).unwrap();
        prop_assert_eq!(codec::decode_timeouts(attr_area(&buf)).unwrap(), t);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = codec::decode_datagram(&bytes, Family::Inet);
        let _ = codec::decode_service(&bytes);
        let _ = codec::decode_destination(&bytes, Family::Inet6);
        let _ = codec::decode_daemon(&bytes);
        let _ = codec::decode_timeouts(&bytes);
        let _ = codec::decode_info(&bytes);
        let _ = netlink::decode_family(&bytes);
    }

    /// Valid framing with random attribute bytes inside reaches the attribute decoders.
    #[test]
    fn framed_garbage_never_panics(
        cmd in 0u8..20,
        msg_type in prop_oneof![Just(2u16), Just(3u16), Just(0x30u16)],
        flags in any::<u16>(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut m = Vec::new();
        m.extend_from_slice(&((20 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&msg_type.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&[cmd, 1, 0, 0]);
        m.extend_from_slice(&body);
        let _ = codec::decode_datagram(&m, Family::Inet6);
    }

    /// Mutating a valid service message (flip, cut) never panics.
    #[test]
    fn mutated_service_never_panics(
        s in service(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut buf = Vec::new();
        Request::AddService(s).encode(0x30, 1, &mut buf).unwrap();
        for (i, v) in flips {
            let i = i.index(buf.len());
            buf[i] ^= v;
        }
        let cut = cut.index(buf.len() + 1);
        let _ = codec::decode_datagram(&buf[..cut], Family::Inet);
        let _ = codec::decode_service(&buf[20.min(cut)..cut]);
    }
}
