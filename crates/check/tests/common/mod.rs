//! Test support: real servers on loopback, and targets pointing at them.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use vigil_check::{CheckKey, OnceResult, Target, run_once};
use vigil_config::{
    Check, CheckKind, HttpCheck, HttpMethod, HttpUrl, InitialState, Protocol, ServiceKey,
};

pub fn check(kind: CheckKind) -> Check {
    Check {
        kind,
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        rise: 1,
        fall: 1,
        initial_state: InitialState::Down,
        retry_delay: None,
        start_spread: Duration::ZERO,
        address: None,
        port: None,
        bind: None,
        bind_port: None,
        bind_interface: None,
        fwmark: None,
    }
}

pub fn target(real: SocketAddr, check: Check) -> Target {
    Target {
        key: CheckKey {
            service: ServiceKey::Address {
                protocol: Protocol::Tcp,
                address: SocketAddr::from(([192, 0, 2, 1], 80)),
            },
            real,
            index: 0,
        },
        virtual_server: "web".into(),
        check,
        weight: 1,
        checks: 1,
    }
}

pub fn http(path: &str) -> HttpCheck {
    HttpCheck {
        method: HttpMethod::Get,
        host: None,
        urls: vec![HttpUrl::new(path)],
        max_body_bytes: 1 << 20,
        tls: None,
    }
}

/// Runs one check once.
pub async fn once(target: Target) -> OnceResult {
    let mut results = run_once(&[target], 1).await;
    results.pop().expect("one result")
}

/// A loopback port with nothing listening on it.
pub async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr")
}

/// What an HTTP test server does with a request.
pub enum Reply {
    /// Write these bytes, then close.
    Bytes(Vec<u8>),
    /// Close without answering.
    Close,
    /// Never answer (until the test ends).
    Hang,
}

pub fn response(status: &str, body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// A real HTTP/1.1 server on 127.0.0.1: reads each request head and answers as `reply`
/// says. Counts accepted connections.
pub async fn http_server<F>(reply: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(&str) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    let reply = Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let reply = Arc::clone(&reply);
            tokio::spawn(serve_http(stream, move |r| reply(r)));
        }
    });
    (addr, accepted)
}

pub async fn serve_http<S, F>(mut stream: S, reply: F)
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(&str) -> Reply,
{
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    match reply(&String::from_utf8_lossy(&head)) {
        Reply::Bytes(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Close => {}
        Reply::Hang => tokio::time::sleep(Duration::from_secs(60)).await,
    }
}

/// A DNS server on 127.0.0.1, UDP and TCP on the same port, replying to each query with
/// `answer` of its bytes. A query answered `None` gets no reply (over TCP the connection
/// is held for a minute, so the asker times out rather than seeing it closed).
pub async fn dns_server(answer: fn(&[u8]) -> Option<Vec<u8>>) -> SocketAddr {
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind tcp");
    let addr = tcp.local_addr().expect("addr");
    let udp = UdpSocket::bind(addr).await.expect("bind udp");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
            if let Some(reply) = answer(&buf[..n]) {
                let _ = udp.send_to(&reply, peer).await;
            }
        }
    });
    tokio::spawn(async move {
        while let Ok((mut s, _)) = tcp.accept().await {
            tokio::spawn(async move {
                let Ok(len) = s.read_u16().await else { return };
                let mut q = vec![0u8; usize::from(len)];
                if s.read_exact(&mut q).await.is_err() {
                    return;
                }
                match answer(&q) {
                    Some(reply) => {
                        let _ = s.write_u16(reply.len() as u16).await;
                        let _ = s.write_all(&reply).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(60)).await,
                }
            });
        }
    });
    addr
}
