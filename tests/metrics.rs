//! The metrics endpoint of a real daemon under abuse: idle connections by the thousand
//! and requests that never finish must not lock out a scrape or exhaust the daemon's
//! file descriptors.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use vigil_testlab::wait_for;
use vigil_tests::{Daemon, minimal_config};

/// A daemon serving metrics on a free loopback port (no virtual servers: the endpoint
/// is what is tested).
fn daemon_with_metrics(name: &str) -> (Daemon, SocketAddr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // Not `isolated`: the test must reach the metrics port on the host's loopback.
    let d = Daemon::start_plain_with(|dir| {
        format!("{}metrics_listen = \"{addr}\"\n", minimal_config(dir, name))
    });
    assert!(
        wait_for(Duration::from_secs(20), || TcpStream::connect(addr).is_ok()),
        "metrics never listened on {addr}"
    );
    (d, addr)
}

/// GET /metrics; returns (status line, body), or `None` when it was not answered.
fn scrape(addr: SocketAddr) -> Option<(String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    Some((head.lines().next()?.to_string(), body.to_string()))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// This test process needs more than the usual 1,024 descriptors.
fn raise_nofile(want: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn sample(body: &str, prefix: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn idle_connections_by_the_thousand_do_not_lock_out_a_scrape() {
    raise_nofile(4096);
    let (d, addr) = daemon_with_metrics("metrics-idle");
    let before = open_fds(d.pid());
    // 1,100 connections that never send a byte (1,077 once broke a director).
    let mut idle = Vec::new();
    for _ in 0..1_100 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connect {}: {e}", idle.len()),
        }
    }
    let started = Instant::now();
    let (status, body) = scrape(addr).expect("a scrape answered despite 1,100 idle connections");
    let took = started.elapsed();
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("# TYPE vigil_uptime_seconds gauge"), "{body}");
    println!("scrape with 1,100 idle connections open: {took:?}");
    // At most 64 held (the cap), plus the scrape: once the runtime has dropped the
    // evicted connections' tasks (`abort` drops their sockets on a worker, a moment
    // later; measured at once, a CI run saw 81 above the start).
    let first = open_fds(d.pid());
    let settled = wait_for(Duration::from_secs(5), || open_fds(d.pid()) <= before + 70);
    let during = open_fds(d.pid());
    println!(
        "daemon fds: {before} before, {first} at once and {during} settled with 1,100 idle connections"
    );
    assert!(
        settled,
        "the daemon holds {during} descriptors (was {before})"
    );
    // The endpoint counts what it closed to make room.
    let (_, body) = scrape(addr).expect("scrape");
    let evicted = sample(&body, "vigil_metrics_refused_total{reason=\"evicted\"}");
    assert!(evicted.is_some_and(|n| n >= 1_000.0), "{body}");
    drop(idle);
}

#[test]
fn a_request_that_never_completes_is_closed_at_the_timeout() {
    let (d, addr) = daemon_with_metrics("metrics-slow");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\n").expect("write");
    // A header line every half second: each read finishes, the request never does.
    let started = Instant::now();
    let mut closed_after = None;
    let mut buf = [0u8; 256];
    while started.elapsed() < Duration::from_secs(20) {
        match s.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(started.elapsed());
                break;
            }
            Ok(_) => panic!("an unfinished request got an answer"),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed_after = Some(started.elapsed());
                break;
            }
        }
        if s.write_all(b"X-Slow: 1\r\n").is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the daemon never closed a request that never ends");
    println!("unfinished request closed after {closed_after:?}");
    assert!(
        closed_after >= Duration::from_secs(4) && closed_after < Duration::from_secs(8),
        "closed after {closed_after:?}, not at the 5 s request timeout"
    );
    let (_, body) = scrape(addr).expect("scrape");
    assert!(
        sample(&body, "vigil_metrics_refused_total{reason=\"timeout\"}").is_some_and(|n| n >= 1.0),
        "{body}"
    );
    drop(d);
}

#[test]
fn a_drain_shows_in_metrics_from_the_published_stats() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("SKIPPED: entering the daemon's network namespace needs root");
        return;
    }
    // In a namespace of its own: its virtual server never reaches the host's IPVS.
    let d = Daemon::start_with(|dir| {
        format!(
            "{}metrics_listen = \"127.0.0.1:9333\"\n\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\nreal_server = [{{ address = \"127.0.0.1:8080\" }}]\n",
            minimal_config(dir, "metrics-drain"),
        )
    });
    let addr: SocketAddr = ([127, 0, 0, 1], 9333).into();
    let line = |v: u8| {
        format!(
            "vigil_real_server_drained{{virtual_server=\"web\",real_server=\"127.0.0.1:8080\"}} {v}"
        )
    };
    let shows = |want: String| {
        d.run_in_netns(|| {
            wait_for(Duration::from_secs(10), || {
                scrape(addr).is_some_and(|(_, body)| body.lines().any(|l| l == want))
            })
        })
    };
    assert!(shows(line(0)), "never scraped the undrained server");
    let out = d.ctl(&["drain", "web", "127.0.0.1:8080"]);
    assert!(out.status.success(), "{}", vigil_tests::output_text(&out));
    let started = Instant::now();
    assert!(shows(line(1)), "the drain never showed in metrics");
    println!("drain visible in metrics after {:?}", started.elapsed());
    let body = d.run_in_netns(|| scrape(addr)).expect("scrape").1;
    assert!(
        body.contains(
            "vigil_real_server_weight{virtual_server=\"web\",real_server=\"127.0.0.1:8080\"} 0"
        ),
        "{body}"
    );
}
