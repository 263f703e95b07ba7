//! DNS checks against a real DNS server, dnsmasq (Debian's dnsmasq-base, installed by
//! tests/run.sh), started by each test on a free loopback port: rcodes, addresses, EDNS
//! on and off, UDP and TCP. A reply that answers another question comes from a small
//! server of the test's own (no real server sends one on purpose).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{check, once, target};
use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::Name;
use tokio::net::TcpListener;
use vigil_check::FailureCause;
use vigil_config::{CheckKind, DnsCheck, DnsRcode, DnsTransport, DnsType};

/// A dnsmasq serving `ok.test` (192.0.2.10 and 192.0.2.11) and `nx.test` (NXDOMAIN); any
/// other name is REFUSED (no upstream servers). Killed when dropped.
struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
}

impl Dnsmasq {
    /// `None` (after printing SKIPPED) when dnsmasq is not installed.
    fn start() -> Option<Dnsmasq> {
        let binary = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(binary) = binary else {
            println!("SKIPPED: dnsmasq is not installed (tests/run.sh installs dnsmasq-base)");
            return None;
        };
        // A free port can be taken between our probe and dnsmasq's bind: try a few.
        for _ in 0..5 {
            let port = std::net::UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .expect("a free port")
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut cmd = Command::new(binary);
            cmd.args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--host-record=ok.test,192.0.2.10",
                "--host-record=ok.test,192.0.2.11",
                "--address=/nx.test/",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } == 0 {
                // As root it would switch to `nobody`; staying root keeps it killable
                // by this test and needs no such user.
                cmd.arg("--user=root");
            }
            let mut child = cmd.spawn().expect("spawn dnsmasq");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: try another
                }
                if std::net::TcpStream::connect(addr).is_ok() {
                    return Some(Dnsmasq { child, addr });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("dnsmasq did not start on a free loopback port");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dns(name: &str, transport: DnsTransport, edns: bool) -> DnsCheck {
    DnsCheck {
        name: name.into(),
        qtype: DnsType::A,
        expect_rcode: DnsRcode::NoError,
        expect_addresses: vec![],
        transport,
        edns,
    }
}

const TRANSPORTS: [DnsTransport; 2] = [DnsTransport::Udp, DnsTransport::Tcp];

#[tokio::test]
async fn noerror_and_addresses_over_udp_and_tcp_with_and_without_edns() {
    let Some(server) = Dnsmasq::start() else {
        return;
    };
    let addr = server.addr;
    for transport in TRANSPORTS {
        for edns in [true, false] {
            let mut spec = dns("ok.test", transport, edns);
            spec.expect_addresses = vec![
                "192.0.2.10".parse().expect("ip"),
                "192.0.2.11".parse().expect("ip"),
            ];
            let r = once(target(addr, check(CheckKind::Dns(spec.clone())))).await;
            assert!(r.passed, "{transport:?} edns {edns}: {r:?}");
            assert_eq!(
                r.reason,
                format!("DNS NOERROR for ok.test A from {addr}, 2 answers")
            );
            spec.expect_addresses
                .push("192.0.2.99".parse().expect("ip"));
            let r = once(target(addr, check(CheckKind::Dns(spec)))).await;
            assert_eq!(r.cause, Some(FailureCause::DnsAnswer), "{r:?}");
            assert_eq!(
                r.reason,
                format!("DNS NOERROR for ok.test A from {addr} lacks 192.0.2.99")
            );
        }
    }
}

#[tokio::test]
async fn rcode_failures_are_dns_rcode() {
    let Some(server) = Dnsmasq::start() else {
        return;
    };
    let addr = server.addr;
    for transport in TRANSPORTS {
        let r = once(target(
            addr,
            check(CheckKind::Dns(dns("nx.test", transport, true))),
        ))
        .await;
        assert!(!r.passed);
        assert_eq!(r.reason, format!("DNS NXDOMAIN for nx.test A from {addr}"));
        assert_eq!(r.cause, Some(FailureCause::DnsRcode));
        // No upstream servers: a name dnsmasq does not hold is refused.
        let r = once(target(
            addr,
            check(CheckKind::Dns(dns("elsewhere.test", transport, true))),
        ))
        .await;
        assert_eq!(
            r.reason,
            format!("DNS REFUSED for elsewhere.test A from {addr}")
        );
        assert_eq!(r.cause, Some(FailureCause::DnsRcode));
        let mut spec = dns("nx.test", transport, true);
        spec.expect_rcode = DnsRcode::NxDomain;
        let r = once(target(addr, check(CheckKind::Dns(spec)))).await;
        assert!(r.passed, "{r:?}");
    }
}

/// Forwards TCP connections on a loopback port of its own to `to`, counting them; no UDP
/// socket has that port, so a UDP query to it is refused.
async fn tcp_only_forwarder(to: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn tcp_transport_asks_over_tcp() {
    let Some(server) = Dnsmasq::start() else {
        return;
    };
    let (addr, connections) = tcp_only_forwarder(server.addr).await;
    let r = once(target(
        addr,
        check(CheckKind::Dns(dns("ok.test", DnsTransport::Tcp, true))),
    ))
    .await;
    assert!(r.passed, "{r:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    let r = once(target(
        addr,
        check(CheckKind::Dns(dns("ok.test", DnsTransport::Udp, true))),
    ))
    .await;
    assert_eq!(r.cause, Some(FailureCause::Refused), "{r:?}");
}

/// The reply to `query` with its question replaced by `evil.test A`.
fn other_question(query: &[u8]) -> Option<Vec<u8>> {
    let asked = Message::from_vec(query).ok()?;
    let mut reply = Message::response(asked.metadata.id, OpCode::Query);
    let name = Name::from_ascii("evil.test.").ok()?;
    reply.add_query(Query::query(name, hickory_proto::rr::RecordType::A));
    reply.to_vec().ok()
}

#[tokio::test]
async fn a_reply_to_another_question_fails() {
    // A server on UDP and TCP (same port) answering every query about another name.
    let addr = common::dns_server(other_question).await;
    for transport in TRANSPORTS {
        let r = once(target(
            addr,
            check(CheckKind::Dns(dns("ok.test", transport, true))),
        ))
        .await;
        assert!(!r.passed);
        assert_eq!(r.cause, Some(FailureCause::DnsQuestion));
        assert_eq!(
            r.reason,
            format!("DNS reply from {addr} answers evil.test. A, not ok.test A")
        );
    }
}
