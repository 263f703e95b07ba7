//! DNS checks against a real (tiny) DNS server on loopback, over UDP and TCP; UDP checks
//! against a real echo server and a closed port.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{check, once, target};
use tokio::net::UdpSocket;
use vigil_check::FailureCause;
use vigil_config::{CheckKind, DnsCheck, DnsRcode, DnsTransport, DnsType};

/// Answers by query name: `ok.test` NOERROR with 192.0.2.10 and 192.0.2.11, `nx.test`
/// NXDOMAIN, `fail.test` SERVFAIL, `silent.test` not at all.
fn answer(query: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(pos)?);
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos + 1..pos + 1 + len)?).to_string());
        pos += 1 + len;
    }
    let question_end = pos + 5;
    let name = labels.join(".");
    let (rcode, addrs): (u8, &[[u8; 4]]) = match name.as_str() {
        "ok.test" => (0, &[[192, 0, 2, 10], [192, 0, 2, 11]]),
        "nx.test" => (3, &[]),
        "fail.test" => (2, &[]),
        _ => return None,
    };
    let mut reply = query.get(..question_end)?.to_vec();
    reply[2] = 0x81;
    reply[3] = 0x80 | rcode;
    reply[6..8].copy_from_slice(&(addrs.len() as u16).to_be_bytes());
    // The query's EDNS record is not copied: no additional records.
    reply[10..12].copy_from_slice(&[0, 0]);
    for a in addrs {
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(a);
    }
    Some(reply)
}

/// The test's DNS server: see [`answer`].
async fn dns_server() -> SocketAddr {
    common::dns_server(answer).await
}

fn dns(name: &str, transport: DnsTransport) -> DnsCheck {
    DnsCheck {
        name: name.into(),
        qtype: DnsType::A,
        expect_rcode: DnsRcode::NoError,
        expect_addresses: vec![],
        transport,
        edns: true,
    }
}

#[tokio::test]
async fn noerror_passes_over_udp_and_tcp() {
    let addr = dns_server().await;
    for transport in [DnsTransport::Udp, DnsTransport::Tcp] {
        let r = once(target(
            addr,
            check(CheckKind::Dns(dns("ok.test", transport))),
        ))
        .await;
        assert!(r.passed, "{r:?}");
        assert_eq!(
            r.reason,
            format!("DNS NOERROR for ok.test A from {addr}, 2 answers")
        );
    }
}

#[tokio::test]
async fn servfail_and_nxdomain_fail_with_reason() {
    let addr = dns_server().await;
    let r = once(target(
        addr,
        check(CheckKind::Dns(dns("fail.test", DnsTransport::Udp))),
    ))
    .await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("DNS SERVFAIL for fail.test A from {addr}")
    );
    assert_eq!(r.cause, Some(FailureCause::DnsRcode));
    let r = once(target(
        addr,
        check(CheckKind::Dns(dns("nx.test", DnsTransport::Tcp))),
    ))
    .await;
    assert_eq!(r.reason, format!("DNS NXDOMAIN for nx.test A from {addr}"));
    assert!(!r.passed);
}

#[tokio::test]
async fn expected_rcode_other_than_noerror() {
    let addr = dns_server().await;
    let mut spec = dns("nx.test", DnsTransport::Udp);
    spec.expect_rcode = DnsRcode::NxDomain;
    assert!(once(target(addr, check(CheckKind::Dns(spec)))).await.passed);
}

#[tokio::test]
async fn expected_addresses() {
    let addr = dns_server().await;
    let mut spec = dns("ok.test", DnsTransport::Udp);
    spec.expect_addresses = vec!["192.0.2.11".parse().expect("ip")];
    assert!(
        once(target(addr, check(CheckKind::Dns(spec.clone()))))
            .await
            .passed
    );
    spec.expect_addresses
        .push("192.0.2.99".parse().expect("ip"));
    let r = once(target(addr, check(CheckKind::Dns(spec)))).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("DNS NOERROR for ok.test A from {addr} lacks 192.0.2.99")
    );
    assert_eq!(r.cause, Some(FailureCause::DnsAnswer));
}

#[tokio::test]
async fn silent_server_costs_a_timeout() {
    let addr = dns_server().await;
    for transport in [DnsTransport::Udp, DnsTransport::Tcp] {
        let mut c = check(CheckKind::Dns(dns("silent.test", transport)));
        c.timeout = Duration::from_millis(300);
        let r = once(target(addr, c)).await;
        assert!(!r.passed);
        assert_eq!(
            r.reason,
            format!("no reply within 300ms (dns silent.test A {addr})")
        );
    }
}

#[tokio::test]
async fn closed_dns_port_is_unreachable() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    drop(sock);
    let r = once(target(
        addr,
        check(CheckKind::Dns(dns("ok.test", DnsTransport::Udp))),
    ))
    .await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("DNS server {addr} unreachable (ICMP port unreachable)")
    );
    assert_eq!(r.cause, Some(FailureCause::Refused));
}

async fn udp_echo() -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = sock.recv_from(&mut buf).await {
            let mut reply = b"echo: ".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, peer).await;
        }
    });
    addr
}

fn udp(expect: Option<&str>) -> CheckKind {
    CheckKind::Udp {
        send: "ping".into(),
        expect: expect.map(Into::into),
        require_reply: true,
    }
}

#[tokio::test]
async fn udp_echo_passes_and_pattern_applies() {
    let addr = udp_echo().await;
    let r = once(target(addr, check(udp(None)))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, format!("UDP reply from {addr}, 10 bytes"));
    assert!(
        once(target(addr, check(udp(Some("^echo: ping$")))))
            .await
            .passed
    );
    let r = once(target(addr, check(udp(Some("^pong"))))).await;
    assert_eq!(
        r.reason,
        format!("UDP reply from {addr} does not match `^pong`: got \"echo: ping\"")
    );
    assert_eq!(r.cause, Some(FailureCause::ReplyMismatch));
}

#[tokio::test]
async fn closed_udp_port_is_down() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    drop(sock);
    let r = once(target(addr, check(udp(None)))).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("UDP port {addr} unreachable (ICMP port unreachable)")
    );
}

#[tokio::test]
async fn silent_udp_port_costs_a_timeout() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = sock.local_addr().expect("addr");
    let mut c = check(udp(None));
    c.timeout = Duration::from_millis(300);
    let r = once(target(addr, c)).await;
    assert_eq!(r.reason, format!("no reply within 300ms (udp {addr})"));
    drop(sock);
}

fn udp_no_reply_required() -> CheckKind {
    CheckKind::Udp {
        send: vec![0x00, 0xff, 0x10],
        expect: None,
        require_reply: false,
    }
}

/// keepalived's UDP_CHECK default: silence passes, a port unreachable fails, a reply
/// passes at once.
#[tokio::test]
async fn without_require_reply_only_port_unreachable_fails() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = silent.local_addr().expect("addr");
    let mut c = check(udp_no_reply_required());
    c.timeout = Duration::from_millis(200);
    let r = once(target(addr, c.clone())).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(
        r.reason,
        format!("no ICMP port unreachable from {addr} within 190ms (no reply required)")
    );
    let mut got = [0u8; 16];
    let (n, _) = silent.recv_from(&mut got).await.expect("datagram");
    assert_eq!(&got[..n], [0x00, 0xff, 0x10]);
    drop(silent);

    let closed = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let r = once(target(addr, c.clone())).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("UDP port {addr} unreachable (ICMP port unreachable)")
    );

    let addr = udp_echo().await;
    let r = once(target(addr, c)).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, format!("UDP reply from {addr}, 9 bytes"));
}

#[tokio::test]
async fn binary_payload_is_sent_as_is() {
    let addr = udp_echo().await;
    let kind = CheckKind::Udp {
        send: vec![0x00, 0xff],
        expect: Some(r"(?s-u)^echo: \x00\xff$".into()),
        require_reply: true,
    };
    let r = once(target(addr, check(kind))).await;
    assert!(r.passed, "{r:?}");
}
