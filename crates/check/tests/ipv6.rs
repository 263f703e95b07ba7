//! The same probes over IPv6 loopback (`::1`).

mod common;

use std::net::SocketAddr;

use common::{check, http, once, serve_http, target};
use tokio::net::{TcpListener, UdpSocket};
use vigil_config::CheckKind;

#[tokio::test]
async fn tcp_and_http_over_ipv6() {
    let listener = TcpListener::bind("[::1]:0").await.expect("bind ::1");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve_http(s, |req| {
                // The default Host header is the bracketed address with its port.
                if req.contains("Host: [::1]:") {
                    common::response("200 OK", "ok")
                } else {
                    common::response("400 Bad Request", "")
                }
            }));
        }
    });
    let r = once(target(
        addr,
        check(CheckKind::Tcp {
            send: None,
            expect: None,
        }),
    ))
    .await;
    assert!(r.passed, "{r:?}");
    let r = once(target(addr, check(CheckKind::Http(http("/"))))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, format!("HTTP 200 from {addr} GET /"));
}

#[tokio::test]
async fn closed_udp_port_over_ipv6() {
    let sock = UdpSocket::bind("[::1]:0").await.expect("bind ::1");
    let addr = sock.local_addr().expect("addr");
    drop(sock);
    let kind = CheckKind::Udp {
        send: "x".into(),
        expect: None,
        require_reply: true,
    };
    let r = once(target(addr, check(kind))).await;
    assert_eq!(
        r.reason,
        format!("UDP port {addr} unreachable (ICMP port unreachable)")
    );
}

#[tokio::test]
async fn icmpv6_echo() {
    let r = once(target(
        SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 80)),
        check(CheckKind::Icmp),
    ))
    .await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, "echo reply from ::1");
}
