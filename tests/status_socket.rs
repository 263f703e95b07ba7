//! The status socket protocol against a real daemon, including every kind of bad client:
//! none of them may stall or crash the daemon, or keep others from being served.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_tests::{Daemon, StatusClient};

fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn requests_on_one_connection_are_answered_in_order_with_ids() {
    let d = Daemon::start("proto");
    let mut c = StatusClient::connect(&d.socket);
    c.send_line(r#"{"command":"ping","id":1}"#);
    c.send_line("");
    c.send_line(r#"{"command":"status","id":"two"}"#);
    let first = c.read_reply().unwrap();
    assert_eq!(first, json!({"ok": true, "result": "pong", "id": 1}));
    let second = c.read_reply().unwrap();
    assert_eq!(second["id"], "two");
    assert_eq!(second["result"]["director"], "proto");
    let config = d.result("config");
    assert_eq!(config["generation"], 1);
    assert_eq!(config["config"]["director"]["name"], "proto");
}

#[test]
fn bad_requests_get_error_replies_and_the_connection_goes_on() {
    let d = Daemon::start("bad-requests");
    let mut c = StatusClient::connect(&d.socket);
    for (line, want) in [
        ("this is not json", "invalid_json"),
        ("[1, 2, 3]", "invalid_request"),
        (r#"{"cmd": "status"}"#, "invalid_request"),
        (r#"{"command": 42}"#, "invalid_request"),
        (r#"{"command": "shutdown"}"#, "unknown_command"),
        (
            r#"{"command": "drain", "virtual_server": "web"}"#,
            "invalid_request",
        ),
        (
            r#"{"command": "enable", "real_server": 5}"#,
            "invalid_request",
        ),
        (r#"{"command": "vrrp-handover"}"#, "invalid_request"),
    ] {
        c.send_line(line);
        let reply = c.read_reply().expect("a reply, not a closed connection");
        assert_eq!(reply["ok"], false, "{line}");
        assert_eq!(code(&reply), want, "{line}: {reply}");
    }
    c.send_line(r#"{"command":"shutdown"}"#);
    let reply = c.read_reply().unwrap();
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("commands: status, config, services, vrrp, reload, ping, vrrp-handover, vrrp-reclaim, vrrp-watch, drain, enable, events"),
        "{reply}"
    );
    c.send_line(r#"{"command":"ping"}"#);
    assert_eq!(c.read_reply().unwrap()["result"], "pong");
}

#[test]
fn an_overlong_line_is_refused_and_the_connection_closed() {
    let d = Daemon::start("long-line");
    let mut c = StatusClient::connect(&d.socket);
    // 100 KiB without a newline.
    let blob = vec![b'x'; 100 * 1024];
    let _ = c.stream.write_all(&blob);
    let reply = c.read_reply().expect("an error reply before the close");
    assert_eq!(code(&reply), "line_too_long");
    assert!(c.read_reply().is_none(), "the connection must be closed");
    assert_eq!(d.result("ping"), "pong");
}

#[test]
fn a_client_that_never_reads_does_not_stall_anyone() {
    let d = Daemon::start("no-reader");
    // Pipeline thousands of requests and never read a reply: the daemon's writes block
    // on a full socket buffer.
    let mut hog = UnixStream::connect(&d.socket).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let line = b"{\"command\":\"status\"}\n".repeat(512);
    for _ in 0..40 {
        if hog.write_all(&line).is_err() {
            break;
        }
    }
    // Meanwhile everyone else is served at once.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(d.result("ping"), "pong");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "other clients were stalled"
    );
    // The hog is disconnected once a reply has waited longer than the daemon's write
    // timeout (5 s), not served forever: only what was already queued can still be read.
    std::thread::sleep(Duration::from_secs(7));
    hog.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed = false;
    while Instant::now() < deadline {
        match hog.read(&mut sink) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "a client that does not read must be disconnected");
}

#[test]
fn many_clients_at_once_are_all_served() {
    let d = Daemon::start("many");
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = StatusClient::connect(&socket);
                for j in 0..10 {
                    c.send_line(&format!(r#"{{"command":"status","id":[{i},{j}]}}"#));
                    let r = c.read_reply().expect("reply");
                    assert_eq!(r["id"], json!([i, j]));
                    assert_eq!(r["result"]["director"], "many");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn clients_that_connect_and_vanish_do_no_harm() {
    let d = Daemon::start("vanish");
    for _ in 0..200 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        let _ = s.write_all(b"{\"command\":\"sta");
        drop(s);
    }
    // Half a request, then the client goes away mid-reply.
    for _ in 0..50 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        let _ = s.write_all(b"{\"command\":\"config\"}\n");
        drop(s);
    }
    assert_eq!(d.result("ping"), "pong");
    assert_eq!(d.result("status")["director"], "vanish");
}
