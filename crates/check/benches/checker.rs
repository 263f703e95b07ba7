//! Checker throughput benchmark (see docs/benchmarks.md, "Health checker").
//!
//! Starts N real listeners on distinct loopback addresses (127.1.0.1, 127.1.0.2, ...) in a
//! child process, then checks them all continuously with the real `Checker` (as many
//! checker threads as vigild would use, unless `--checker-threads` says), and prints
//! checks/s, CPU per 1,000 checks, scheduling lateness and peak RSS.
//!
//! cargo bench -p vigil-check --bench checker -- [--kind tcp|http|dns] [--reals N]
//!     [--interval DURATION] [--seconds S] [--warmup S] [--port P] [--threads T] [--external]
//!     [--own-thread] [--checker-threads N]
//!
//! `--kind http-hang`: the servers read each request and never answer, so every check
//! times out (the memory of many slow servers at once). `--kind dns`: each server is a UDP
//! socket answering an A query for `check.test` with 192.0.2.1 (the DNS check's codec).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_check::{CheckKey, Checker, CheckerOptions, Target};
use vigil_config::{
    Check, CheckKind, DnsCheck, DnsRcode, DnsTransport, DnsType, HttpCheck, HttpMethod, HttpUrl,
    InitialState, Protocol, ServiceKey, parse_duration,
};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

#[derive(Debug, Clone)]
struct Args {
    kind: String,
    reals: usize,
    interval: Duration,
    seconds: u64,
    warmup: u64,
    port: u16,
    /// 0: one current-thread runtime; n: a multi-thread runtime with n workers.
    threads: usize,
    /// Check servers that something else runs (e.g. the kernel lab's sink on port 8080).
    external: bool,
    /// The checker on a thread of its own (as in vigild) instead of on `threads`' runtime.
    own_thread: bool,
    /// `CheckerOptions::threads`: 0 (as in vigild) picks it from the check rate.
    checker_threads: usize,
}

fn parse_args() -> BenchResult<Args> {
    let mut args = Args {
        kind: "tcp".into(),
        reals: 1000,
        interval: Duration::from_secs(1),
        seconds: 10,
        warmup: 3,
        port: 18080,
        threads: 0,
        external: false,
        own_thread: false,
        checker_threads: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--kind" => args.kind = value()?,
            "--reals" => args.reals = value()?.parse()?,
            "--interval" => args.interval = parse_duration(&value()?)?,
            "--seconds" => args.seconds = value()?.parse()?,
            "--warmup" => args.warmup = value()?.parse()?,
            "--port" => args.port = value()?.parse()?,
            "--threads" => args.threads = value()?.parse()?,
            "--external" => args.external = true,
            "--own-thread" => args.own_thread = true,
            "--checker-threads" => args.checker_threads = value()?.parse()?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !matches!(args.kind.as_str(), "tcp" | "http" | "http-hang" | "dns") {
        return Err("--kind must be tcp, http, http-hang or dns".into());
    }
    Ok(args)
}

/// The i-th real server's address, as the kernel lab's keepalived-check-bench numbers them.
fn real(i: usize, port: u16) -> SocketAddr {
    let ip = Ipv4Addr::new(
        127,
        (1 + i / 62_500) as u8,
        ((i / 250) % 250) as u8,
        (i % 250 + 1) as u8,
    );
    SocketAddr::new(IpAddr::V4(ip), port)
}

fn main() -> BenchResult<()> {
    let mut argv = std::env::args().skip(1);
    if argv.next().as_deref() == Some("serve") {
        let kind = argv.next().unwrap_or_default();
        let reals: usize = argv.next().unwrap_or_default().parse()?;
        let port: u16 = argv.next().unwrap_or_default().parse()?;
        return serve(&kind, reals, port);
    }
    let args = parse_args()?;
    raise_fd_limit();

    // The real servers live in a child process so that their CPU is not counted; with
    // --external someone else serves them (the kernel lab's sink).
    let mut server = if args.external {
        None
    } else {
        Some(start_server(&args)?)
    };

    let runtime = match args.threads {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    let server_pid = server.as_ref().map_or(0, std::process::Child::id);
    let result = runtime.block_on(measure(&args, server_pid));
    if let Some(server) = server.as_mut() {
        drop(server.stdin.take());
        let _ = server.kill();
        let _ = server.wait();
    }
    result
}

fn start_server(args: &Args) -> BenchResult<std::process::Child> {
    let mut server = Command::new(std::env::current_exe()?)
        .args([
            "serve",
            &args.kind,
            &args.reals.to_string(),
            &args.port.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut ready = String::new();
    BufReader::new(server.stdout.take().ok_or("no server stdout")?).read_line(&mut ready)?;
    if ready.trim() != "ready" {
        return Err(format!("server did not start: {ready:?}").into());
    }
    Ok(server)
}

async fn measure(args: &Args, server_pid: u32) -> BenchResult<()> {
    let kind = match args.kind.as_str() {
        "http" | "http-hang" => CheckKind::Http(HttpCheck {
            method: HttpMethod::Get,
            host: None,
            urls: vec![HttpUrl {
                expect_status: vec![(200, 200)],
                ..HttpUrl::new("/check")
            }],
            max_body_bytes: 1 << 20,
            tls: None,
        }),
        "dns" => CheckKind::Dns(DnsCheck {
            name: "check.test".into(),
            qtype: DnsType::A,
            expect_rcode: DnsRcode::NoError,
            expect_addresses: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
            transport: DnsTransport::Udp,
            edns: true,
        }),
        _ => CheckKind::Tcp {
            send: None,
            expect: None,
        },
    };
    let check = Check {
        kind,
        interval: args.interval,
        timeout: args.interval.mul_f64(0.9).min(Duration::from_secs(1)),
        rise: 1,
        fall: 3,
        initial_state: InitialState::Down,
        retry_delay: None,
        start_spread: args.interval,
        address: None,
        port: None,
        bind: None,
        bind_port: None,
        bind_interface: None,
        fwmark: None,
    };
    let targets: Vec<Target> = (0..args.reals)
        .map(|i| Target {
            key: CheckKey {
                service: ServiceKey::Address {
                    protocol: Protocol::Tcp,
                    address: SocketAddr::from(([10, 255, 0, 1], 10_000 + (i / 1000) as u16)),
                },
                real: real(i, args.port),
                index: 0,
            },
            virtual_server: format!("vs{}", i / 1000),
            check: check.clone(),
            weight: 1,
            checks: 1,
        })
        .collect();
    let started = Instant::now();
    let options = CheckerOptions {
        own_thread: args.own_thread,
        threads: args.checker_threads,
        ..CheckerOptions::default()
    };
    let (checker, mut events) = Checker::spawn(targets, options);
    let checker_threads = checker.threads();
    let mut up = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while up < args.reals && args.kind != "http-hang" {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) if e.health == vigil_check::Health::Up => up += 1,
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    let all_up = started.elapsed();
    tokio::time::sleep(Duration::from_secs(args.warmup)).await;
    checker.stats(true).await?;
    let (user0, sys0) = cpu_times();
    let (server0, machine0) = (ticks_of(server_pid), machine_busy_ticks());
    let t0 = Instant::now();
    // Drain events meanwhile so that a flapping server would show.
    let window = Duration::from_secs(args.seconds);
    let mut transitions = 0;
    let _ = tokio::time::timeout(window, async {
        while events.recv().await.is_some() {
            transitions += 1;
        }
    })
    .await;
    let stats = checker.stats(false).await?;
    let elapsed = t0.elapsed().as_secs_f64();
    let (user1, sys1) = cpu_times();
    let server_cpu = (ticks_of(server_pid) - server0) as f64 / clock_ticks();
    let machine_cpu = (machine_busy_ticks() - machine0) as f64 / clock_ticks();
    let (user, sys) = ((user1 - user0).as_secs_f64(), (sys1 - sys0).as_secs_f64());
    let cpu = user + sys;
    let rss_mib = peak_rss_kib() as f64 / 1024.0;
    let rate = stats.checks as f64 / elapsed;
    // CPU milliseconds per 1,000 checks = CPU microseconds per check.
    let per_1k = if stats.checks > 0 {
        1e6 * cpu / stats.checks as f64
    } else {
        f64::NAN
    };
    println!(
        "{:<5} {:>6} {:>9} {:>10} {:>8} {:>6} {:>13} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8}",
        "kind",
        "reals",
        "interval",
        "checks/s",
        "cpu_s",
        "cpu%",
        "cpu_ms/1kchk",
        "late_p50",
        "late_p99",
        "late_max",
        "rss_MiB",
        "failed",
        "all_up_s"
    );
    println!(
        "{:<5} {:>6} {:>9} {:>10.0} {:>8.2} {:>6.1} {:>13.1} {:>8} {:>8} {:>8} {:>8.1} {:>6} {:>8.2}",
        args.kind,
        args.reals,
        vigil_config::format_duration(args.interval),
        rate,
        cpu,
        100.0 * cpu / elapsed,
        per_1k,
        ms(stats.lateness.p50_us),
        ms(stats.lateness.p99_us),
        ms(stats.lateness.max_us),
        rss_mib,
        stats.failed,
        all_up.as_secs_f64(),
    );
    println!(
        "  window {elapsed:.1}s, {} checks, {} passed, {} failed, {transitions} transitions, {up} of {} up at start, in flight at end {}, {checker_threads} checker thread(s)",
        stats.checks, stats.passed, stats.failed, args.reals, stats.in_flight
    );
    println!(
        "  CPU user {user:.2}s + system {sys:.2}s; per check {:.1} µs user, {:.1} µs system; host load {}",
        1e6 * user / stats.checks.max(1) as f64,
        1e6 * sys / stats.checks.max(1) as f64,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split(' ')
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  elsewhere over the window: server process {server_cpu:.2}s CPU, whole machine {machine_cpu:.2}s busy of {:.1}s ({} CPUs)",
        elapsed * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "  probe latency p50 {} p99 {} max {}",
        ms(stats.probe_latency.p50_us),
        ms(stats.probe_latency.p99_us),
        ms(stats.probe_latency.max_us)
    );
    Ok(())
}

fn ms(us: u64) -> String {
    format!("{:.2}ms", us as f64 / 1000.0)
}

/// (user, system) CPU time of this process (not of the server child).
fn cpu_times() -> (Duration, Duration) {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF counts this process (not the server child).
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    (tv(usage.ru_utime), tv(usage.ru_stime))
}

/// utime + stime of a process, in clock ticks.
fn ticks_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(") ")?.1.to_string();
            let fields: Vec<&str> = rest.split(' ').collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Busy clock ticks of all CPUs (user, nice, system, irq, softirq, steal).
fn machine_busy_ticks() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().next()?.to_string();
            let f: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect();
            Some(f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7)?)
        })
        .unwrap_or(0)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// VmHWM, not getrusage's ru_maxrss: the latter carries over the peak of whatever ran
/// before exec (cargo, when run through `cargo bench`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn raise_fd_limit() {
    // SAFETY: plain get/setrlimit on our own process.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The reply to a DNS query: its header and question (any EDNS record dropped), then one
/// A record, 192.0.2.1, pointing at the question's name.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 12;
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1 + len;
        if len == 0 {
            break;
        }
    }
    let mut reply = query.get(..pos + 4)?.to_vec();
    reply[2] = 0x81; // QR, RD
    reply[3] = 0x80; // RA, NOERROR
    reply[4..12].copy_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    Some(reply)
}

/// The server side: one listener per real server; tcp closes each connection at once,
/// http answers each request with a small 200 and closes.
fn serve(kind: &str, reals: usize, port: u16) -> BenchResult<()> {
    raise_fd_limit();
    let http = kind.starts_with("http");
    let hang = kind == "http-hang";
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        for i in 0..reals {
            if kind == "dns" {
                let socket = tokio::net::UdpSocket::bind(real(i, port)).await?;
                tokio::spawn(async move {
                    let mut buf = [0u8; 1500];
                    while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                        if let Some(reply) = dns_answer(&buf[..n]) {
                            let _ = socket.send_to(&reply, peer).await;
                        }
                    }
                });
                continue;
            }
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(real(i, port))?;
            let listener = socket.listen(4096)?;
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    if !http {
                        continue;
                    }
                    tokio::spawn(async move {
                        let mut head = [0u8; 2048];
                        let mut len = 0;
                        while !head[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < head.len() {
                            match stream.read(&mut head[len..]).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => len += n,
                            }
                        }
                        if hang {
                            // Read the request, never answer: every check times out.
                            let _ = stream.read(&mut head).await;
                            return;
                        }
                        let _ = stream
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n")
                            .await;
                    });
                }
            });
        }
        let mut stdout = std::io::stdout();
        writeln!(stdout, "ready")?;
        stdout.flush()?;
        // Until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await?;
        Ok(())
    })
}
