//! Byte-for-byte encoding of every IPVS command, and decoding of kernel-shaped replies.
//!
//! Expected bytes are built here with a tiny independent writer (or spelled out in hex)
//! from the layouts in `linux/netlink.h`, `linux/genetlink.h` and `linux/ip_vs.h`;
//! host byte order is little-endian on every machine these tests run on.
#![cfg(target_endian = "little")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vigil_ipvs::codec::{self, Reply, Request};
use vigil_ipvs::netlink::{self, Message};
use vigil_ipvs::{
    DecodeError, Destination, DestinationKey, EncodeError, Family, ForwardMethod, Netmask,
    Protocol, Service, ServiceFlags, ServiceKey, Stats, SyncDaemon, SyncState, Timeouts, Tunnel,
    TunnelType,
};

const FAM: u16 = 0x23;
const SEQ: u32 = 0x0102_0304;
const REQ_ACK: u16 = 0x0001 | 0x0004;
const REQ_DUMP: u16 = 0x0001 | 0x0300;

// --- an independent, minimal writer for expected bytes --------------------------------

fn nla(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + payload.len()) as u16).to_le_bytes());
    v.extend_from_slice(&kind.to_le_bytes());
    v.extend_from_slice(payload);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn nest(kind: u16, nested_flag: bool, parts: &[Vec<u8>]) -> Vec<u8> {
    let inner: Vec<u8> = parts.concat();
    nla(kind | if nested_flag { 0x8000 } else { 0 }, &inner)
}

fn msg(msg_type: u16, flags: u16, seq: u32, cmd: u8, attrs: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = attrs.concat();
    let mut v = Vec::new();
    v.extend_from_slice(&((16 + 4 + body.len()) as u32).to_le_bytes());
    v.extend_from_slice(&msg_type.to_le_bytes());
    v.extend_from_slice(&flags.to_le_bytes());
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&[cmd, 1, 0, 0]);
    v.extend_from_slice(&body);
    v
}

fn u16a(kind: u16, v: u16) -> Vec<u8> {
    nla(kind, &v.to_le_bytes())
}
fn be16a(kind: u16, v: u16) -> Vec<u8> {
    nla(kind, &v.to_be_bytes())
}
fn u32a(kind: u16, v: u32) -> Vec<u8> {
    nla(kind, &v.to_le_bytes())
}
fn u64a(kind: u16, v: u64) -> Vec<u8> {
    nla(kind, &v.to_le_bytes())
}
fn addr16(ip: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => b[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => b = a.octets(),
    }
    b
}
fn strz(kind: u16, s: &str) -> Vec<u8> {
    let mut p = s.as_bytes().to_vec();
    p.push(0);
    nla(kind, &p)
}

fn encode(req: &Request) -> Vec<u8> {
    let mut buf = Vec::new();
    req.encode(FAM, SEQ, &mut buf).expect("encodes");
    buf
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

fn vip4() -> ServiceKey {
    ServiceKey::tcp(sa("192.0.2.100:80"))
}

// Service key attributes for tcp 192.0.2.100:80.
fn vip4_key_attrs() -> Vec<Vec<u8>> {
    vec![
        u16a(1, 2),                                          // IPVS_SVC_ATTR_AF = AF_INET
        u16a(2, 6),                                          // IPVS_SVC_ATTR_PROTOCOL = TCP
        nla(3, &addr16("192.0.2.100".parse().expect("ip"))), // IPVS_SVC_ATTR_ADDR
        be16a(4, 80),                                        // IPVS_SVC_ATTR_PORT
    ]
}

// --- encoding --------------------------------------------------------------------------

#[test]
fn new_service_literal_bytes() {
    let got = encode(&Request::AddService(Service::new(vip4(), "wlc")));
    #[rustfmt::skip]
    let want: Vec<u8> = vec![
        0x68, 0, 0, 0,  0x23, 0,  0x05, 0,  0x04, 0x03, 0x02, 0x01,  0, 0, 0, 0, // nlmsghdr
        1, 1, 0, 0,                                                  // genl: NEW_SERVICE v1
        0x54, 0, 0x01, 0x80,                                         // SERVICE | NLA_F_NESTED
        6, 0, 1, 0,  2, 0, 0, 0,                                     // AF = 2
        6, 0, 2, 0,  6, 0, 0, 0,                                     // PROTOCOL = 6
        20, 0, 3, 0,  192, 0, 2, 100,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0, // ADDR
        6, 0, 4, 0,  0, 80, 0, 0,                                    // PORT (be16)
        8, 0, 6, 0,  b'w', b'l', b'c', 0,                            // SCHED_NAME
        12, 0, 7, 0,  0, 0, 0, 0,  0xff, 0xff, 0xff, 0xff,           // FLAGS {0, ~0}
        8, 0, 8, 0,  0, 0, 0, 0,                                     // TIMEOUT
        8, 0, 9, 0,  0xff, 0xff, 0xff, 0xff,                         // NETMASK
    ];
    assert_eq!(got, want);
}

#[test]
fn set_service_persistent_sh_flags() {
    let mut s = Service::new(vip4(), "sh").persistent(300);
    s.flags |= ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT | ServiceFlags::HASHED;
    s.netmask = Netmask::V4(Ipv4Addr::new(255, 255, 255, 0));
    s.pe_name = Some("sip".into());
    let got = encode(&Request::UpdateService(s));
    let mut flags = Vec::new();
    flags.extend_from_slice(&(0x01u32 | 0x08 | 0x10).to_le_bytes()); // HASHED never sent
    flags.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut attrs = vip4_key_attrs();
    attrs.extend([
        strz(6, "sh"),
        strz(11, "sip"),
        nla(7, &flags),
        u32a(8, 300),
        nla(9, &[255, 255, 255, 0]),
    ]);
    let want = msg(FAM, REQ_ACK, SEQ, 2, &[nest(1, true, &attrs)]);
    assert_eq!(got, want);
}

#[test]
fn new_service_ipv6_netmask_is_a_host_order_prefix() {
    let key = ServiceKey::udp(sa("[2001:db8::1]:53"));
    let mut s = Service::new(key, "rr");
    s.netmask = Netmask::V6(64);
    let got = encode(&Request::AddService(s));
    let mut fl = 0u32.to_le_bytes().to_vec();
    fl.extend_from_slice(&u32::MAX.to_le_bytes());
    let attrs = vec![
        u16a(1, 10),
        u16a(2, 17),
        nla(3, &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()),
        be16a(4, 53),
        strz(6, "rr"),
        nla(7, &fl),
        u32a(8, 0),
        u32a(9, 64),
    ];
    assert_eq!(got, msg(FAM, REQ_ACK, SEQ, 1, &[nest(1, true, &attrs)]));
}

#[test]
fn fwmark_service_key() {
    let key = ServiceKey::fwmark(Family::Inet6, 7);
    let got = encode(&Request::DeleteService(key));
    let want = msg(
        FAM,
        REQ_ACK,
        SEQ,
        3,
        &[nest(1, true, &[u16a(1, 10), u32a(5, 7)])],
    );
    assert_eq!(got, want);
}

#[test]
fn del_get_zero_service() {
    let key = nest(1, true, &vip4_key_attrs());
    assert_eq!(
        encode(&Request::DeleteService(vip4())),
        msg(FAM, REQ_ACK, SEQ, 3, std::slice::from_ref(&key))
    );
    assert_eq!(
        encode(&Request::GetService(vip4())),
        msg(FAM, REQ_ACK, SEQ, 4, std::slice::from_ref(&key))
    );
    assert_eq!(
        encode(&Request::Zero(Some(vip4()))),
        msg(FAM, REQ_ACK, SEQ, 16, std::slice::from_ref(&key))
    );
    assert_eq!(
        encode(&Request::Zero(None)),
        msg(FAM, REQ_ACK, SEQ, 16, &[])
    );
}

#[test]
fn dumps_have_dump_flag_and_no_ack() {
    assert_eq!(
        encode(&Request::ListServices),
        msg(FAM, REQ_DUMP, SEQ, 4, &[])
    );
    assert_eq!(
        encode(&Request::ListSyncDaemons),
        msg(FAM, REQ_DUMP, SEQ, 11, &[])
    );
    assert_eq!(
        encode(&Request::ListDestinations(vip4())),
        msg(FAM, REQ_DUMP, SEQ, 8, &[nest(1, true, &vip4_key_attrs())])
    );
}

#[test]
fn config_info_flush() {
    assert_eq!(
        encode(&Request::GetTimeouts),
        msg(FAM, REQ_ACK, SEQ, 13, &[])
    );
    assert_eq!(encode(&Request::GetInfo), msg(FAM, REQ_ACK, SEQ, 15, &[]));
    assert_eq!(encode(&Request::Flush), msg(FAM, REQ_ACK, SEQ, 17, &[]));
    let t = Timeouts {
        tcp: 900,
        tcp_fin: 120,
        udp: 300,
    };
    assert_eq!(
        encode(&Request::SetTimeouts(t)),
        msg(
            FAM,
            REQ_ACK,
            SEQ,
            12,
            &[u32a(4, 900), u32a(5, 120), u32a(6, 300)]
        )
    );
}

fn dest_key_attrs(ip: &str, port: u16, af: u16) -> Vec<Vec<u8>> {
    vec![
        u16a(11, af), // IPVS_DEST_ATTR_ADDR_FAMILY
        nla(1, &addr16(ip.parse().expect("ip"))),
        be16a(2, port),
    ]
}

#[test]
fn new_set_del_dest() {
    let mut d = Destination::new(sa("10.0.0.11:8080"), ForwardMethod::DirectRoute).weight(5);
    d.upper_threshold = 100;
    d.lower_threshold = 10;
    let mut dattrs = dest_key_attrs("10.0.0.11", 8080, 2);
    dattrs.extend([u32a(3, 3), u32a(4, 5), u32a(5, 100), u32a(6, 10)]);
    let svc = nest(1, true, &vip4_key_attrs());
    assert_eq!(
        encode(&Request::AddDestination(vip4(), d.clone())),
        msg(FAM, REQ_ACK, SEQ, 5, &[svc.clone(), nest(2, true, &dattrs)])
    );
    assert_eq!(
        encode(&Request::UpdateDestination(vip4(), d.clone())),
        msg(FAM, REQ_ACK, SEQ, 6, &[svc.clone(), nest(2, true, &dattrs)])
    );
    assert_eq!(
        encode(&Request::DeleteDestination(vip4(), d.key())),
        msg(
            FAM,
            REQ_ACK,
            SEQ,
            7,
            &[svc, nest(2, true, &dest_key_attrs("10.0.0.11", 8080, 2))]
        )
    );
}

#[test]
fn tunnel_dest_mixed_family() {
    let mut d = Destination::new(sa("[2001:db8::11]:80"), ForwardMethod::Tunnel);
    d.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        flags: 1,
    };
    let mut dattrs = dest_key_attrs("2001:db8::11", 80, 10);
    dattrs.extend([
        u32a(3, 2),
        u32a(4, 1),
        u32a(5, 0),
        u32a(6, 0),
        nla(13, &[1]),   // TUN_TYPE = GUE
        be16a(14, 6080), // TUN_PORT, network order
        u16a(15, 1),     // TUN_FLAGS = CSUM
    ]);
    assert_eq!(
        encode(&Request::AddDestination(vip4(), d)),
        msg(
            FAM,
            REQ_ACK,
            SEQ,
            5,
            &[nest(1, true, &vip4_key_attrs()), nest(2, true, &dattrs)]
        )
    );
}

#[test]
fn daemons() {
    let mut d = SyncDaemon::new(SyncState::Backup, "eth0", 9);
    assert_eq!(
        encode(&Request::StartSyncDaemon(d.clone())),
        msg(
            FAM,
            REQ_ACK,
            SEQ,
            9,
            &[nest(3, true, &[u32a(1, 2), strz(2, "eth0"), u32a(3, 9)])]
        )
    );
    d.sync_maxlen = Some(1400);
    d.mcast_group = Some("239.1.2.3".parse().unwrap());
    d.mcast_port = Some(8848);
    d.mcast_ttl = Some(2);
    assert_eq!(
        encode(&Request::StartSyncDaemon(d)),
        msg(
            FAM,
            REQ_ACK,
            SEQ,
            9,
            &[nest(
                3,
                true,
                &[
                    u32a(1, 2),
                    strz(2, "eth0"),
                    u32a(3, 9),
                    u16a(4, 1400),
                    nla(5, &[239, 1, 2, 3]),
                    u16a(7, 8848), // host order, unlike service ports
                    nla(8, &[2]),
                ]
            )]
        )
    );
    assert_eq!(
        encode(&Request::StopSyncDaemon(SyncState::Master)),
        msg(FAM, REQ_ACK, SEQ, 10, &[nest(3, true, &[u32a(1, 1)])])
    );
}

#[test]
fn encode_rejections_leave_buffer_untouched() {
    let mut buf = vec![1, 2, 3];
    let long = Service::new(vip4(), "a-very-long-scheduler");
    assert!(matches!(
        Request::AddService(long).encode(FAM, 1, &mut buf),
        Err(EncodeError::NameTooLong { .. })
    ));
    let mut wrong = Service::new(vip4(), "rr");
    wrong.netmask = Netmask::V6(64);
    assert!(matches!(
        Request::AddService(wrong).encode(FAM, 1, &mut buf),
        Err(EncodeError::NetmaskFamily { .. })
    ));
    let heavy = Destination::new(sa("10.0.0.1:80"), ForwardMethod::Masquerade).weight(u32::MAX);
    assert!(matches!(
        Request::AddDestination(vip4(), heavy).encode(FAM, 1, &mut buf),
        Err(EncodeError::OutOfRange { .. })
    ));
    assert!(matches!(
        Request::DeleteService(ServiceKey::fwmark(Family::Inet, 0)).encode(FAM, 1, &mut buf),
        Err(EncodeError::OutOfRange { .. })
    ));
    assert!(matches!(
        Request::StartSyncDaemon(SyncDaemon::new(SyncState::Master, "eth\0", 1))
            .encode(FAM, 1, &mut buf),
        Err(EncodeError::NameHasNul { .. })
    ));
    assert_eq!(buf, vec![1, 2, 3]);
}

#[test]
fn several_requests_pack_into_one_datagram() {
    let mut buf = Vec::new();
    Request::Flush.encode(FAM, 1, &mut buf).unwrap();
    Request::AddService(Service::new(vip4(), "rr"))
        .encode(FAM, 2, &mut buf)
        .unwrap();
    let seqs: Vec<u32> = netlink::messages(&buf)
        .map(|m| m.unwrap().header().seq)
        .collect();
    assert_eq!(seqs, vec![1, 2]);
}

// --- decoding --------------------------------------------------------------------------

fn stats_nest(kind: u16, wide: bool, base: u64) -> Vec<u8> {
    let mut parts = Vec::new();
    for i in 1..=10u16 {
        let v = base + u64::from(i);
        if wide || i == 4 || i == 5 {
            // STATS64, or the byte counters of STATS: nla_put_u64_64bit; x86 adds no PAD.
            parts.push(u64a(i, v));
        } else {
            parts.push(u32a(i, v as u32));
        }
    }
    parts.push(nla(11, &[])); // an IPVS_STATS_ATTR_PAD, as strict-alignment arches add
    nest(kind, false, &parts)
}

/// A `NEW_SERVICE` message shaped like `ip_vs_genl_fill_service` writes it (nests without
/// `NLA_F_NESTED`, HASHED set, both stats).
fn kernel_service_msg(extra: Vec<u8>) -> Vec<u8> {
    let mut fl = (0x0002u32 | 0x0001).to_le_bytes().to_vec();
    fl.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut attrs = vip4_key_attrs();
    attrs.extend([
        strz(6, "wlc"),
        nla(7, &fl),
        u32a(8, 360),
        nla(9, &[255, 255, 255, 255]),
        stats_nest(10, false, 100),
        stats_nest(12, true, 1000),
        extra,
    ]);
    msg(FAM, 0x2, 9, 1, &[nest(1, false, &attrs)])
}

#[test]
fn decode_kernel_service() {
    let m = kernel_service_msg(nla(200, b"future attribute"));
    let replies = codec::decode_datagram(&m, Family::Inet);
    assert_eq!(replies.len(), 1);
    let Reply::Service(e) = replies[0].clone().unwrap() else {
        panic!("not a service")
    };
    assert_eq!(e.service.key, vip4());
    assert_eq!(e.service.scheduler, "wlc");
    assert_eq!(e.service.flags, ServiceFlags::PERSISTENT); // HASHED stripped
    assert_eq!(e.service.timeout, 360);
    assert_eq!(e.service.netmask, Netmask::host(Family::Inet));
    assert_eq!(e.service.pe_name, None);
    // STATS64 wins over STATS.
    assert_eq!(
        e.stats,
        Stats {
            conns: 1001,
            inpkts: 1002,
            outpkts: 1003,
            inbytes: 1004,
            outbytes: 1005,
            cps: 1006,
            inpps: 1007,
            outpps: 1008,
            inbps: 1009,
            outbps: 1010,
        }
    );
}

#[test]
fn decode_stats_without_stats64() {
    let attrs = vec![
        u16a(1, 2),
        u32a(5, 42),
        strz(6, "rr"),
        nla(7, &[0; 8]),
        u32a(8, 0),
        nla(9, &[255; 4]),
        stats_nest(10, false, 0),
    ];
    let m = msg(FAM, 0, 1, 1, &[nest(1, false, &attrs)]);
    let Ok(Reply::Service(e)) = codec::decode_datagram(&m, Family::Inet).remove(0) else {
        panic!()
    };
    assert_eq!(e.service.key, ServiceKey::fwmark(Family::Inet, 42));
    assert_eq!(e.stats.conns, 1);
    assert_eq!(e.stats.inbytes, 4);
    assert_eq!(e.stats.outbps, 10);
}

fn kernel_dest_attrs() -> Vec<Vec<u8>> {
    vec![
        nla(1, &addr16("2001:db8::5".parse().expect("ip"))),
        be16a(2, 443),
        u32a(3, 2 | 0x80), // TUNNEL plus a non-forwarding bit
        u32a(4, 7),
        nla(13, &[2]),
        be16a(14, 0),
        u16a(15, 2),
        u32a(5, 50),
        u32a(6, 5),
        u32a(7, 3),
        u32a(8, 4),
        u32a(9, 1),
        u16a(11, 10),
        stats_nest(10, false, 0),
        stats_nest(12, true, 0),
    ]
}

#[test]
fn decode_kernel_destination() {
    let m = msg(FAM, 0x2, 9, 5, &[nest(2, false, &kernel_dest_attrs())]);
    let Ok(Reply::Destination(e)) = codec::decode_datagram(&m, Family::Inet).remove(0) else {
        panic!()
    };
    let d = &e.destination;
    assert_eq!(d.addr, sa("[2001:db8::5]:443"));
    assert_eq!(d.forward, ForwardMethod::Tunnel);
    assert_eq!(d.weight, 7);
    assert_eq!((d.upper_threshold, d.lower_threshold), (50, 5));
    assert_eq!(
        d.tunnel,
        Tunnel {
            kind: TunnelType::Gre,
            port: 0,
            flags: 2
        }
    );
    assert_eq!(
        (e.active_conns, e.inactive_conns, e.persist_conns),
        (3, 4, 1)
    );
    assert_eq!(e.stats.conns, 1);
    assert_eq!(d.key(), DestinationKey(sa("[2001:db8::5]:443")));
}

#[test]
fn decode_destination_without_family_uses_service_family() {
    let attrs = vec![
        nla(1, &addr16("10.1.1.1".parse().unwrap())),
        be16a(2, 80),
        u32a(3, 0),
        u32a(4, 1),
    ];
    let m = msg(FAM, 0, 1, 5, &[nest(2, false, &attrs)]);
    let Ok(Reply::Destination(e)) = codec::decode_datagram(&m, Family::Inet).remove(0) else {
        panic!()
    };
    assert_eq!(e.destination.addr, sa("10.1.1.1:80"));
    assert_eq!(e.destination.forward, ForwardMethod::Masquerade);
}

#[test]
fn decode_daemon_timeouts_info() {
    let d = nest(
        3,
        false,
        &[
            u32a(1, 1),
            strz(2, "lo"),
            u32a(3, 200),
            u16a(4, 1472),
            u16a(7, 8848),
            nla(8, &[1]),
            nla(5, &[224, 0, 0, 81]),
        ],
    );
    let mut dg = msg(FAM, 0x2, 3, 9, &[d]);
    dg.extend(msg(
        FAM,
        0,
        4,
        12,
        &[u32a(4, 900), u32a(5, 120), u32a(6, 300)],
    ));
    dg.extend(msg(FAM, 0, 5, 14, &[u32a(1, 0x010201), u32a(2, 4096)]));
    let r: Vec<Reply> = codec::decode_datagram(&dg, Family::Inet)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let Reply::SyncDaemon(d) = &r[0] else {
        panic!()
    };
    assert_eq!(d.state, SyncState::Master);
    assert_eq!(d.interface, "lo");
    assert_eq!(d.sync_id, 200);
    assert_eq!(d.sync_maxlen, Some(1472));
    assert_eq!(d.mcast_port, Some(8848));
    assert_eq!(d.mcast_ttl, Some(1));
    assert_eq!(d.mcast_group, Some("224.0.0.81".parse().unwrap()));
    assert_eq!(
        r[1],
        Reply::Timeouts(Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300
        })
    );
    let Reply::Info(i) = r[2] else { panic!() };
    assert_eq!(i.version_triple(), (1, 2, 1));
    assert_eq!(i.conn_tab_size, 4096);
}

// --- defensive decoding ---------------------------------------------------------------

fn first_err(dg: &[u8]) -> DecodeError {
    codec::decode_datagram(dg, Family::Inet)
        .into_iter()
        .find_map(Result::err)
        .expect("an error")
}

#[test]
fn truncated_datagram_is_an_error() {
    let m = kernel_service_msg(Vec::new());
    for cut in [1, 10, 17, 20, 30, m.len() - 1] {
        assert!(
            matches!(first_err(&m[..cut]), DecodeError::Truncated { .. }),
            "cut at {cut}"
        );
    }
}

#[test]
fn attribute_length_past_the_nest_is_an_error() {
    // A nested attribute whose inner attribute claims more bytes than the nest has.
    let bad_inner = {
        let mut a = u16a(1, 2);
        a[0] = 40; // nla_len 40 inside a 12-byte nest
        a
    };
    let m = msg(FAM, 0, 1, 1, &[nest(1, false, &[bad_inner, u16a(2, 6)])]);
    assert!(matches!(first_err(&m), DecodeError::Truncated { .. }));
}

#[test]
fn nested_garbage_is_a_typed_error() {
    let m = msg(FAM, 0, 1, 1, &[nla(1, &[0xff, 0xff, 0xff])]);
    assert!(matches!(
        first_err(&m),
        DecodeError::BadLength { .. } | DecodeError::Truncated { .. }
    ));
    let m = msg(FAM, 0, 1, 5, &[nla(2, &[1, 0, 0, 0, 9, 9, 9, 9])]);
    assert!(matches!(first_err(&m), DecodeError::BadLength { .. }));
}

#[test]
fn wrong_widths_and_values_are_typed_errors() {
    let svc = |attrs: Vec<Vec<u8>>| msg(FAM, 0, 1, 1, &[nest(1, false, &attrs)]);
    // AF as u32
    assert!(matches!(
        first_err(&svc(vec![u32a(1, 2)])),
        DecodeError::BadLength { .. }
    ));
    // unknown family
    assert!(matches!(
        first_err(&svc(vec![u16a(1, 99), u32a(5, 1)])),
        DecodeError::InvalidValue { .. }
    ));
    // missing scheduler
    assert!(matches!(
        first_err(&svc(vec![u16a(1, 2), u32a(5, 1)])),
        DecodeError::MissingAttr { .. }
    ));
    // IPv6 address too short
    let mut attrs = vec![u16a(1, 10), u16a(2, 6), nla(3, &[1, 2, 3, 4]), be16a(4, 80)];
    attrs.extend([strz(6, "rr"), nla(7, &[0; 8]), u32a(8, 0), u32a(9, 128)]);
    assert!(matches!(
        first_err(&svc(attrs)),
        DecodeError::BadLength { .. }
    ));
    // forwarding method 5
    let dest = vec![nla(1, &[10, 0, 0, 1]), be16a(2, 80), u32a(3, 5), u32a(4, 1)];
    assert!(matches!(
        first_err(&msg(FAM, 0, 1, 5, &[nest(2, false, &dest)])),
        DecodeError::InvalidValue { .. }
    ));
    // sync id above 255, non-UTF-8 interface
    let dm = |attrs: Vec<Vec<u8>>| msg(FAM, 0, 1, 9, &[nest(3, false, &attrs)]);
    assert!(matches!(
        first_err(&dm(vec![u32a(1, 1), strz(2, "lo"), u32a(3, 256)])),
        DecodeError::InvalidValue { .. }
    ));
    assert!(matches!(
        first_err(&dm(vec![u32a(1, 1), nla(2, &[0xff, 0xfe, 0]), u32a(3, 1)])),
        DecodeError::BadString { .. }
    ));
    // an unexpected reply command
    assert!(matches!(
        first_err(&msg(FAM, 0, 1, 17, &[])),
        DecodeError::Unexpected { .. }
    ));
}

#[test]
fn control_messages_are_recognised() {
    let mut done = Vec::new();
    done.extend_from_slice(&20u32.to_le_bytes());
    done.extend_from_slice(&3u16.to_le_bytes());
    done.extend_from_slice(&2u16.to_le_bytes());
    done.extend_from_slice(&9u32.to_le_bytes());
    done.extend_from_slice(&0u32.to_le_bytes());
    done.extend_from_slice(&0i32.to_le_bytes());
    let m: Vec<Message<'_>> = netlink::messages(&done).map(Result::unwrap).collect();
    assert!(matches!(m[0], Message::Done { errno: 0, .. }));
    // A DONE carrying -ESRCH.
    done[16..20].copy_from_slice(&(-3i32).to_le_bytes());
    let m: Vec<Message<'_>> = netlink::messages(&done).map(Result::unwrap).collect();
    assert!(matches!(m[0], Message::Done { errno: 3, .. }));
    // A positive "errno" is not something the kernel sends.
    done[16..20].copy_from_slice(&5i32.to_le_bytes());
    assert!(netlink::messages(&done).next().unwrap().is_err());
}

#[test]
fn protocol_display() {
    assert_eq!(Protocol::from_raw(132), Protocol::Sctp);
    assert_eq!(
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr: sa("[::1]:53")
        }
        .to_string(),
        "udp [::1]:53"
    );
}
