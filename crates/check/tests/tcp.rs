//! TCP checks against real loopback servers.

mod common;

use std::time::Duration;

use common::{check, closed_port, once, target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use vigil_check::FailureCause;
use vigil_config::{Check, CheckKind};

fn tcp(send: Option<&str>, expect: Option<&str>) -> Check {
    check(CheckKind::Tcp {
        send: send.map(Into::into),
        expect: expect.map(Into::into),
    })
}

/// A server that answers each line it reads with `+PONG\r\n`, and greets with `banner`.
async fn pong_server(banner: &'static str) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(banner.as_bytes()).await;
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(b"+PONG\r\n").await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn connect_passes_on_a_listening_port() {
    let addr = pong_server("").await;
    let r = once(target(addr, tcp(None, None))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, format!("connected to {addr}"));
    assert_eq!(r.cause, None);
}

#[tokio::test]
async fn refused_connect_fails_with_reason() {
    let addr = closed_port().await;
    let r = once(target(addr, tcp(None, None))).await;
    assert!(!r.passed);
    assert_eq!(r.reason, format!("connect to {addr} refused"));
    assert_eq!(r.cause, Some(FailureCause::Refused));
}

#[tokio::test]
async fn send_and_expect() {
    let addr = pong_server("").await;
    let r = once(target(addr, tcp(Some("PING\r\n"), Some("^\\+PONG")))).await;
    assert!(r.passed, "{r:?}");
    let mut c = tcp(Some("PING\r\n"), Some("^-ERR"));
    c.timeout = Duration::from_millis(500);
    let r = once(target(addr, c)).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("reply from {addr} does not match `^-ERR` within 500ms: got \"+PONG\\r\\n\"")
    );
    assert_eq!(r.cause, Some(FailureCause::ReplyMismatch));
}

#[tokio::test]
async fn expect_a_banner_without_sending() {
    let addr = pong_server("220 ready\r\n").await;
    let r = once(target(addr, tcp(None, Some("^220 ")))).await;
    assert!(r.passed, "{r:?}");
}

#[tokio::test]
async fn silent_server_costs_a_timeout() {
    let addr = pong_server("").await;
    let mut c = tcp(None, Some("hello"));
    c.timeout = Duration::from_millis(300);
    let r = once(target(addr, c)).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("reply from {addr} does not match `hello` within 300ms: got \"\"")
    );
}

#[tokio::test]
async fn check_port_and_address_override_the_real_server() {
    let live = pong_server("").await;
    let dead = closed_port().await;
    let mut c = tcp(None, None);
    c.port = Some(live.port());
    c.address = Some(live.ip());
    let r = once(target(dead, c)).await;
    assert!(r.passed, "{r:?}");
}

#[tokio::test]
async fn source_bind_is_used() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut c = tcp(None, None);
    c.bind = Some("127.0.0.7".parse().expect("ip"));
    let (r, peer) = tokio::join!(once(target(addr, c)), async {
        listener
            .accept()
            .await
            .map(|(_, peer)| peer)
            .expect("accept")
    });
    assert!(r.passed, "{r:?}");
    assert_eq!(peer.ip().to_string(), "127.0.0.7");
}

#[tokio::test]
async fn refused_connect_with_send_fails_as_a_connect() {
    let addr = closed_port().await;
    let r = once(target(addr, tcp(Some("PING\r\n"), Some("PONG")))).await;
    assert!(!r.passed);
    assert_eq!(r.reason, format!("connect to {addr} refused"));
}
