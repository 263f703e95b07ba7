//! HTTP checks against real loopback HTTP servers.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Reply, check, closed_port, http, http_server, once, response, target};
use vigil_check::FailureCause;
use vigil_config::{CheckKind, HttpMethod};

#[tokio::test]
async fn status_200_passes_with_reason() {
    let (addr, _) = http_server(|_| response("200 OK", "ok")).await;
    let r = once(target(addr, check(CheckKind::Http(http("/healthz"))))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, format!("HTTP 200 from {addr} GET /healthz"));
    assert_eq!(r.check, format!("http GET /healthz {addr}"));
}

#[tokio::test]
async fn status_503_fails_with_reason() {
    let (addr, _) = http_server(|_| response("503 Service Unavailable", "busy")).await;
    let r = once(target(addr, check(CheckKind::Http(http("/healthz"))))).await;
    assert!(!r.passed);
    assert_eq!(r.reason, format!("HTTP 503 from {addr} GET /healthz"));
    assert_eq!(r.cause, Some(FailureCause::HttpStatus));
}

#[tokio::test]
async fn expected_status_ranges() {
    let (addr, _) = http_server(|_| response("301 Moved Permanently", "")).await;
    let mut spec = http("/");
    assert!(
        !once(target(addr, check(CheckKind::Http(spec.clone()))))
            .await
            .passed
    );
    spec.urls[0].expect_status = vec![(200, 200), (300, 399)];
    assert!(
        once(target(addr, check(CheckKind::Http(spec))))
            .await
            .passed
    );
}

#[tokio::test]
async fn body_regex() {
    let (addr, _) = http_server(|_| response("200 OK", "status: degraded\n")).await;
    let mut spec = http("/");
    spec.urls[0].body_regex = Some("status: (ok|fine)".into());
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("HTTP 200 from {addr} GET /: body does not match `status: (ok|fine)`")
    );
    assert_eq!(r.cause, Some(FailureCause::BodyRegex));
    spec.urls[0].body_regex = Some("status: degraded".into());
    assert!(
        once(target(addr, check(CheckKind::Http(spec))))
            .await
            .passed
    );
}

#[tokio::test]
async fn body_sha256() {
    let (addr, _) = http_server(|_| response("200 OK", "hello\n")).await;
    let mut spec = http("/");
    // sha256("hello\n")
    spec.urls[0].body_sha256 =
        Some("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03".into());
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(r.passed, "{r:?}");
    spec.urls[0].body_sha256 = Some("00".repeat(32));
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(!r.passed);
    assert!(
        r.reason.contains("body SHA-256 is 5891b5b5"),
        "{}",
        r.reason
    );
    assert_eq!(r.cause, Some(FailureCause::BodyDigest));
}

#[tokio::test]
async fn chunked_body_is_read() {
    let (addr, _) = http_server(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nall\r\n5\r\n good\r\n0\r\n\r\n".to_vec(),
        )
    })
    .await;
    let mut spec = http("/");
    spec.urls[0].body_regex = Some("^all good$".into());
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(r.passed, "{r:?}");
}

#[tokio::test]
async fn body_cap_limits_what_is_read() {
    let big = "x".repeat(10_000) + "MARKER";
    let (addr, _) = http_server(move |_| response("200 OK", &big)).await;
    let mut spec = http("/");
    spec.max_body_bytes = 1000;
    spec.urls[0].body_regex = Some("MARKER".into());
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(!r.passed);
    assert!(
        r.reason.contains("first 1000 bytes of the body"),
        "{}",
        r.reason
    );
    spec.urls[0].body_regex = None;
    spec.urls[0].body_sha256 = Some("00".repeat(32));
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(
        r.reason.contains("body longer than 1000 bytes"),
        "{}",
        r.reason
    );
}

#[tokio::test]
async fn host_header_method_and_path_are_sent() {
    let (addr, _) = http_server(|req| {
        let ok = req.starts_with("HEAD /status?full=1 HTTP/1.1\r\n")
            && req
                .to_ascii_lowercase()
                .contains("\r\nhost: www.example.org\r\n");
        if ok {
            response("200 OK", "")
        } else {
            response("400 Bad Request", "")
        }
    })
    .await;
    let mut spec = http("/status?full=1");
    spec.method = HttpMethod::Head;
    spec.host = Some("www.example.org".into());
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(
        r.reason,
        format!("HTTP 200 from {addr} HEAD /status?full=1")
    );
}

#[tokio::test]
async fn default_host_header_is_the_probed_address() {
    let (addr, _) = http_server(move |req| {
        if req.contains(&format!("host: {}\r\n", "127.0.0.1"))
            || req.to_ascii_lowercase().contains("host: 127.0.0.1:")
        {
            response("200 OK", "")
        } else {
            response("400 Bad Request", "")
        }
    })
    .await;
    assert!(
        once(target(addr, check(CheckKind::Http(http("/")))))
            .await
            .passed
    );
}

#[tokio::test]
async fn slow_server_costs_a_timeout() {
    let (addr, _) = http_server(|_| Reply::Hang).await;
    let mut c = check(CheckKind::Http(http("/healthz")));
    c.timeout = Duration::from_millis(300);
    let r = once(target(addr, c)).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        format!("no reply within 300ms (http GET /healthz {addr})")
    );
    assert_eq!(r.cause, Some(FailureCause::Timeout));
    assert!(r.latency < Duration::from_secs(5));
}

#[tokio::test]
async fn closed_connection_fails() {
    let (addr, _) = http_server(|_| Reply::Close).await;
    let r = once(target(addr, check(CheckKind::Http(http("/healthz"))))).await;
    assert!(!r.passed);
    assert!(
        r.reason.starts_with(&format!("{addr} GET /healthz: ")),
        "{}",
        r.reason
    );
    assert_eq!(r.cause, Some(FailureCause::Closed), "{r:?}");
}

#[tokio::test]
async fn garbage_reply_fails() {
    let (addr, _) = http_server(|_| Reply::Bytes(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec())).await;
    let r = once(target(addr, check(CheckKind::Http(http("/"))))).await;
    assert!(!r.passed, "{r:?}");
    assert_eq!(r.cause, Some(FailureCause::Malformed), "{r:?}");
}

#[tokio::test]
async fn refused_connect_fails() {
    let addr = closed_port().await;
    let r = once(target(addr, check(CheckKind::Http(http("/"))))).await;
    assert_eq!(r.reason, format!("connect to {addr} refused"));
}

#[tokio::test]
async fn every_check_uses_a_fresh_connection() {
    let (addr, accepted) = http_server(|_| response("200 OK", "ok")).await;
    let t = target(addr, check(CheckKind::Http(http("/"))));
    let results = vigil_check::run_once(&[t.clone(), t.clone(), t], 1).await;
    assert!(results.iter().all(|r| r.passed));
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn body_delimited_by_close() {
    let (addr, _) = http_server(|_| Reply::Bytes(b"HTTP/1.0 200 OK\r\n\r\nready".to_vec())).await;
    let mut spec = http("/");
    spec.urls[0].body_regex = Some("^ready$".into());
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(r.passed, "{r:?}");
}

#[tokio::test]
async fn body_cut_short_fails() {
    let (addr, _) = http_server(|_| {
        Reply::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this".to_vec())
    })
    .await;
    let mut spec = http("/");
    spec.urls[0].body_regex = Some("only".into());
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert_eq!(
        r.reason,
        format!("HTTP 200 from {addr} GET /: connection closed before the end of the body")
    );
}

#[tokio::test]
async fn interim_100_continue_is_skipped() {
    let (addr, _) = http_server(|_| {
        Reply::Bytes(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
        )
    })
    .await;
    let mut spec = http("/");
    spec.urls[0].body_regex = Some("^ok$".into());
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(r.passed, "{r:?}");
}

/// A probe's connect() usually returns with the handshake done (always on loopback) and
/// the request goes out at once; here the listener drops the SYN (backlog 0, one
/// connection queued) until the queue has room, so the probe has to wait for the
/// handshake and send the request after it.
#[tokio::test]
async fn request_is_sent_after_a_late_handshake() {
    use std::io::{Read, Write};
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .unwrap();
    socket
        .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let listener = std::net::TcpListener::from(socket);
    let addr = listener.local_addr().unwrap();
    let filler = std::net::TcpStream::connect(addr).unwrap();
    let server = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        drop(listener.accept().unwrap());
        let (mut conn, _) = listener.accept().unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the request ended");
            head.extend_from_slice(&buf[..n]);
        }
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        String::from_utf8(head).unwrap()
    });
    let r = once(target(addr, check(CheckKind::Http(http("/late"))))).await;
    assert!(r.passed, "{r:?}");
    assert!(r.latency >= Duration::from_millis(200), "{r:?}");
    assert!(server.join().unwrap().starts_with("GET /late HTTP/1.1\r\n"));
    drop(filler);
}

#[tokio::test]
async fn several_urls_must_all_pass() {
    let (addr, accepted) = http_server(|req| {
        if req.starts_with("GET /a ") {
            response("200 OK", "alpha")
        } else if req.starts_with("GET /b ") {
            response("200 OK", "beta")
        } else {
            response("404 Not Found", "")
        }
    })
    .await;
    let mut spec = http("/a");
    spec.urls.push(vigil_config::HttpUrl {
        body_regex: Some("^beta$".into()),
        ..vigil_config::HttpUrl::new("/b")
    });
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(
        r.reason,
        format!("HTTP 200 from {addr} GET /a; HTTP 200 from {addr} GET /b")
    );
    assert_eq!(r.check, format!("http GET /a,/b {addr}"));
    // One connection per URL.
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    spec.urls.push(vigil_config::HttpUrl::new("/c"));
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert!(!r.passed);
    assert_eq!(r.reason, format!("HTTP 404 from {addr} GET /c"));
}

#[tokio::test]
async fn body_md5_as_keepalived_digest() {
    let (addr, _) = http_server(|_| response("200 OK", "hello\n")).await;
    let mut spec = http("/");
    // md5("hello\n"), as keepalived's genhash prints it.
    spec.urls[0].body_md5 = Some("b1946ac92492d2347c6235b4d2611184".into());
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(r.passed, "{r:?}");
    spec.urls[0].body_md5 = Some("00".repeat(16));
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert_eq!(
        r.reason,
        format!(
            "HTTP 200 from {addr} GET /: body MD5 is b1946ac92492d2347c6235b4d2611184, expected {}",
            "00".repeat(16)
        )
    );
}

#[tokio::test]
async fn regex_no_match_passes_when_absent() {
    let (addr, _) = http_server(|_| response("200 OK", "status: ok\n")).await;
    let mut spec = http("/");
    spec.urls[0].body_regex = Some("maintenance".into());
    spec.urls[0].regex_no_match = true;
    let r = once(target(addr, check(CheckKind::Http(spec.clone())))).await;
    assert!(r.passed, "{r:?}");
    spec.urls[0].body_regex = Some("status: ok".into());
    let r = once(target(addr, check(CheckKind::Http(spec)))).await;
    assert_eq!(
        r.reason,
        format!("HTTP 200 from {addr} GET /: body matches `status: ok`")
    );
}

/// A server writing a large response in pieces sees every write succeed: the probe reads
/// the whole body before it closes (and resets) the connection, even when only the status
/// is checked. Length-delimited and chunked.
#[tokio::test]
async fn whole_response_is_read_before_closing() {
    use std::io::{Read, Write};
    for chunked in [false, true] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut conn, _) = listener.accept()?;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf)?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                head.extend_from_slice(&buf[..n]);
            }
            let piece = vec![b'x'; 64 * 1024];
            let pieces = 8;
            if chunked {
                conn.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")?;
            } else {
                let len = piece.len() * pieces;
                conn.write_all(
                    format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
                )?;
            }
            for _ in 0..pieces {
                // Slow enough that the status line has long been read.
                std::thread::sleep(Duration::from_millis(20));
                if chunked {
                    conn.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                    conn.write_all(&piece)?;
                    conn.write_all(b"\r\n")?;
                } else {
                    conn.write_all(&piece)?;
                }
            }
            if chunked {
                conn.write_all(b"0\r\n\r\n")?;
            }
            conn.flush()
        });
        let r = once(target(addr, check(CheckKind::Http(http("/"))))).await;
        assert!(r.passed, "{r:?}");
        let written = tokio::task::spawn_blocking(move || server.join().unwrap())
            .await
            .unwrap();
        assert!(written.is_ok(), "chunked {chunked}: server saw {written:?}");
    }
}
