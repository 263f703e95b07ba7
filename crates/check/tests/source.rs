//! Where probes come from: source port, interface and firewall mark, against real
//! loopback servers. The interface and mark need root (CAP_NET_RAW / CAP_NET_ADMIN).

mod common;

use std::net::SocketAddr;

use common::{check, once, target};
use tokio::net::{TcpListener, UdpSocket};
use vigil_config::{Check, CheckKind};

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A loopback port nothing uses now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn tcp() -> Check {
    check(CheckKind::Tcp {
        send: None,
        expect: None,
    })
}

#[tokio::test]
async fn tcp_probes_come_from_bind_port() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let port = free_port();
    let mut c = tcp();
    c.bind_port = Some(port);
    // Twice: the port is bound again by the next run.
    for _ in 0..2 {
        let r = once(target(addr, c.clone())).await;
        assert!(r.passed, "{r:?}");
        let (_, peer) = listener.accept().await.expect("accept");
        assert_eq!(peer.port(), port);
    }
}

#[tokio::test]
async fn udp_probes_come_from_bind_port_and_address() {
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = server.local_addr().expect("addr");
    let port = free_port();
    let mut c = check(CheckKind::Udp {
        send: b"ping".to_vec(),
        expect: None,
        require_reply: false,
    });
    c.timeout = std::time::Duration::from_millis(100);
    c.bind = Some("127.0.0.1".parse().expect("ip"));
    c.bind_port = Some(port);
    let r = once(target(addr, c)).await;
    assert!(r.passed, "{r:?}");
    let mut buf = [0u8; 16];
    let (_, peer) = server.recv_from(&mut buf).await.expect("datagram");
    assert_eq!(peer, SocketAddr::from(([127, 0, 0, 1], port)));
}

#[tokio::test]
async fn bind_interface_is_applied() {
    if !is_root() {
        println!("SKIPPED: SO_BINDTODEVICE needs CAP_NET_RAW");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut c = tcp();
    c.bind_interface = Some("lo".into());
    let r = once(target(addr, c.clone())).await;
    assert!(r.passed, "{r:?}");
    c.bind_interface = Some("vgnosuch0".into());
    let r = once(target(addr, c)).await;
    assert_eq!(
        r.reason,
        "cannot bind to interface vgnosuch0: No such device"
    );
}

#[tokio::test]
async fn fwmark_is_applied() {
    if !is_root() {
        println!("SKIPPED: SO_MARK needs CAP_NET_ADMIN");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut c = tcp();
    c.fwmark = Some(0x5a);
    let r = once(target(addr, c.clone())).await;
    assert!(r.passed, "{r:?}");
    let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut u = check(CheckKind::Udp {
        send: b"x".to_vec(),
        expect: None,
        require_reply: false,
    });
    u.timeout = std::time::Duration::from_millis(100);
    u.fwmark = Some(0x5a);
    let r = once(target(server.local_addr().expect("addr"), u)).await;
    assert!(r.passed, "{r:?}");
}
