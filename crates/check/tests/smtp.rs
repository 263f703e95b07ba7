//! SMTP checks against a real SMTP-speaking listener on loopback (a thread with a std
//! `TcpListener` that speaks the protocol's greeting, HELO and QUIT).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use common::{check, closed_port, once, target};
use vigil_config::CheckKind;

/// Serves one session: sends `greeting`; answers HELO with `helo_reply` and QUIT with 221.
/// Returns the lines the client sent.
fn smtp_server(
    greeting: &'static str,
    helo_reply: &'static str,
) -> (SocketAddr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let Ok((conn, _)) = listener.accept() else {
            return lines;
        };
        let mut writer = conn.try_clone().expect("clone");
        if writer.write_all(greeting.as_bytes()).is_err() {
            return lines;
        }
        for line in BufReader::new(conn).lines() {
            let Ok(line) = line else { break };
            lines.push(line.clone());
            let answer = if line.starts_with("HELO ") {
                helo_reply
            } else if line == "QUIT" {
                "221 2.0.0 Bye\r\n"
            } else {
                "500 5.5.2 Error: command not recognized\r\n"
            };
            if writer.write_all(answer.as_bytes()).is_err() || line == "QUIT" {
                break;
            }
        }
        lines
    });
    (addr, server)
}

fn smtp(helo_name: &str) -> CheckKind {
    CheckKind::Smtp {
        helo_name: helo_name.into(),
    }
}

#[tokio::test]
async fn greeting_helo_and_quit() {
    let (addr, server) = smtp_server(
        "220-mx.test ESMTP\r\n220 no UCE\r\n",
        "250 mx.test Hello\r\n",
    );
    let r = once(target(addr, check(smtp("lb1.example.org")))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(
        r.reason,
        format!("SMTP 250 from {addr} to HELO lb1.example.org")
    );
    assert_eq!(r.check, format!("smtp {addr}"));
    let lines = tokio::task::spawn_blocking(move || server.join().expect("server"))
        .await
        .expect("join");
    assert_eq!(lines, ["HELO lb1.example.org", "QUIT"]);
}

#[tokio::test]
async fn greeting_other_than_220_fails() {
    let (addr, server) = smtp_server("554 5.3.2 no service here\r\n", "250 ok\r\n");
    let r = once(target(addr, check(smtp("lb1.example.org")))).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("SMTP greeting from {addr} is 554 (220 expected): 5.3.2 no service here")
    );
    assert_eq!(r.cause, Some(vigil_check::FailureCause::SmtpReply));
    drop(server);
}

#[tokio::test]
async fn helo_rejected_fails() {
    let (addr, _server) = smtp_server("220 mx.test\r\n", "501 5.5.4 bad HELO\r\n");
    let r = once(target(addr, check(smtp("lb1.example.org")))).await;
    assert_eq!(
        r.reason,
        format!("SMTP 501 from {addr} to HELO lb1.example.org: 5.5.4 bad HELO")
    );
}

#[tokio::test]
async fn not_smtp_fails() {
    let (addr, _server) = smtp_server("SSH-2.0-OpenSSH_9.6\r\n", "250 ok\r\n");
    let r = once(target(addr, check(smtp("lb1.example.org")))).await;
    assert_eq!(
        r.reason,
        format!("SMTP greeting from {addr}: not an SMTP reply: \"SSH-2.0-OpenSSH_9.6\"")
    );
}

#[tokio::test]
async fn refused_connect_fails() {
    let addr = closed_port().await;
    let r = once(target(addr, check(smtp("lb1.example.org")))).await;
    assert_eq!(r.reason, format!("connect to {addr} refused"));
}
