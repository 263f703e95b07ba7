//! Requests per second through the director: the nftables datapath against IPVS, the same
//! desired table, in the IPVS kernel lab (one VM boot, so both run on the same kernel).
//!
//! ```sh
//! cargo bench -p vigil-nft --bench throughput                 # 4 rounds x 10 s, 16 connections
//! cargo bench -p vigil-nft --bench throughput -- --secs 5 --conns 32 --rounds 4 --fill 1000
//! cargo bench -p vigil-nft --bench throughput -- --here       # nftables only, this kernel
//! cargo bench -p vigil-nft --bench throughput -- --side-by-side --rounds 12 --secs 5
//! ```
//!
//! On the host it re-runs itself inside the VM (`tests/lab/in-ipvs-kernel`, booted with
//! `tsc=reliable`). There it builds a netns lab with a client and three real servers (a
//! TCP server in this process, one thread per client connection slot, answering `?\n`
//! with its name), then runs phases: each on a fresh director namespace holding the VIP
//! (so no connection state of an earlier phase, conntrack or IPVS, weighs on a later
//! one), NAT with the routed return path (the real servers route the client via the
//! director), the table programmed with `vigil_ipvs::Reconciler::sync` or
//! `vigil_nft::Applier::apply`. The client's load generator runs `--conns` threads, each
//! opening one short-lived TCP connection after the other (connect, one request, read
//! the answer, close first) for `--warmup` + `--secs` seconds; only the window counts.
//! Rounds alternate the order (IPVS then nftables, then nftables then IPVS, ...). It
//! prints per phase: programming time, requests/s, connect and request latency p50/p99,
//! errors, each real server's share, and the VM's CPU use; then the medians per datapath
//! and the nftables / IPVS ratios. `--side-by-side` instead runs both datapaths at once
//! in each round, half the connections on each (see [`side_by_side`]): on a busy host
//! the two then share every instant's load, and their ratio is far steadier. Asserts
//! only that each step did what it should.
//!
//! Without `--bench` (e.g. `cargo test --benches`) it only says how to run it.

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use vigil_ipvs::reconcile::{Backoff, DesiredService, DesiredTable, Reconciler};
use vigil_ipvs::{Client, Destination, ForwardMethod, Service, ServiceKey};
use vigil_nft::{Applier, Nft, Options};
use vigil_testlab::{NetnsLab, kernel};

const PORT: u16 = 8080;
const REALS: [(&str, u32); 3] = [("rs1", 1), ("rs2", 2), ("rs3", 3)];

#[derive(Debug, Clone)]
struct Args {
    secs: f64,
    warmup: f64,
    conns: usize,
    rounds: usize,
    /// Extra services (10 real servers each, unreachable) in the same table.
    fill: u32,
    /// Run here, not in the VM (nftables only when this kernel has no IPVS).
    here: bool,
    /// Both datapaths at once, half the connections each (see [`side_by_side`]).
    side_by_side: bool,
}

fn args() -> Args {
    let mut a = Args {
        secs: 10.0,
        warmup: 1.0,
        conns: 16,
        rounds: 4,
        fill: 0,
        here: false,
        side_by_side: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = || v.get(i + 1).map(String::as_str).unwrap_or("");
        match v[i].as_str() {
            "--secs" => a.secs = next().parse().unwrap(),
            "--warmup" => a.warmup = next().parse().unwrap(),
            "--conns" => a.conns = next().parse().unwrap(),
            "--rounds" => a.rounds = next().parse().unwrap(),
            "--fill" => a.fill = next().parse().unwrap(),
            "--here" => {
                a.here = true;
                i += 1;
                continue;
            }
            "--side-by-side" => {
                a.side_by_side = true;
                i += 1;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Datapath {
    Ipvs,
    Nft,
}

impl Datapath {
    fn name(self) -> &'static str {
        match self {
            Datapath::Ipvs => "ipvs",
            Datapath::Nft => "nftables",
        }
    }
}

/// The measured service (`wrr`, weights 1:2:3 over the three real servers) and `fill`
/// others that take no traffic, each with 10 real servers.
fn table(lab: &NetnsLab, vip: Ipv4Addr, fill: u32) -> DesiredTable {
    let key = ServiceKey::tcp(SocketAddr::new(IpAddr::V4(vip), 80));
    let mut d = DesiredService::new(Service::new(key, "wrr"));
    for (name, w) in REALS {
        let real = SocketAddr::new(IpAddr::V4(lab.ip(name)), PORT);
        d = d.with(Destination::new(real, ForwardMethod::Masquerade).weight(w));
    }
    let mut t = DesiredTable::from([(key, d)]);
    for s in 0..fill {
        let vip = Ipv4Addr::from(0x0a01_0000 + s);
        let key = ServiceKey::tcp(SocketAddr::new(IpAddr::V4(vip), 80));
        let mut d = DesiredService::new(Service::new(key, "wrr"));
        for r in 0..10 {
            let ip = Ipv4Addr::from(0xac10_0000 + s * 10 + r);
            d = d.with(
                Destination::new(
                    SocketAddr::new(IpAddr::V4(ip), 80),
                    ForwardMethod::Masquerade,
                )
                .weight(1 + r),
            );
        }
        t.insert(key, d);
    }
    t
}

/// Answers each connection's request line with the server's name, then waits for the
/// client to close (the client closes first, so TIME_WAIT stays on the client).
fn serve(listener: TcpListener, name: &'static str, threads: usize) {
    for _ in 0..threads {
        let l = listener.try_clone().unwrap();
        std::thread::spawn(move || {
            let answer = format!("{name}\n");
            let mut buf = [0u8; 64];
            loop {
                let Ok((mut s, _)) = l.accept() else { continue };
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut got = 0;
                while !buf[..got].contains(&b'\n') && got < buf.len() {
                    match s.read(&mut buf[got..]) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                if !buf[..got].contains(&b'\n') || s.write_all(answer.as_bytes()).is_err() {
                    continue;
                }
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                }
            }
        });
    }
}

/// What the load generator saw in the window.
#[derive(Debug, Default)]
struct Load {
    done: u64,
    errors: u64,
    first_error: Option<String>,
    connect: Vec<Duration>,
    request: Vec<Duration>,
    per_server: BTreeMap<String, u64>,
}

impl Load {
    fn merge(&mut self, o: Load) {
        self.done += o.done;
        self.errors += o.errors;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
        self.connect.extend(o.connect);
        self.request.extend(o.request);
        for (k, v) in o.per_server {
            *self.per_server.entry(k).or_insert(0) += v;
        }
    }
}

/// One request on a new connection: (connect time, the server's name).
fn one(vip: SocketAddr) -> std::io::Result<(Duration, String)> {
    let t0 = Instant::now();
    let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(2))?;
    let connected = t0.elapsed();
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"?\n")?;
    let mut buf = [0u8; 64];
    let mut got = 0;
    while !buf[..got].contains(&b'\n') {
        match s.read(&mut buf[got..])? {
            0 => return Err(std::io::Error::other("closed before the answer")),
            n => got += n,
        }
        if got == buf.len() {
            return Err(std::io::Error::other("answer too long"));
        }
    }
    let name = String::from_utf8_lossy(&buf[..got]).trim().to_string();
    Ok((connected, name))
}

fn worker(vip: SocketAddr, begin: Instant, end: Instant) -> Load {
    let mut l = Load::default();
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let counted = t0 >= begin;
        match one(vip) {
            Ok((c, name)) => {
                let took = t0.elapsed();
                if counted && t0 + took <= end {
                    l.done += 1;
                    l.connect.push(c);
                    l.request.push(took);
                    *l.per_server.entry(name).or_insert(0) += 1;
                }
            }
            Err(e) => {
                if counted {
                    l.errors += 1;
                    l.first_error.get_or_insert_with(|| e.to_string());
                }
                // A refused connection returns at once: don't spin on it.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    l
}

/// The VM's CPU time (`/proc/stat`'s first line, in ticks): (busy, softirq, total).
fn cpu_ticks() -> (u64, u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().take(8).sum();
    let idle = get(3) + get(4);
    (total - idle, get(6), total)
}

/// Runs the load from the client's namespace; returns it with the VM's CPU busy and
/// softirq shares over the window.
fn load(lab: &NetnsLab, vip: SocketAddr, a: &Args) -> (Load, f64, f64) {
    let (mut l, busy, softirq) = load_to(lab, &[vip], 0, a);
    (l.remove(0), busy, softirq)
}

/// As [`load`], worker `i` connecting to `targets[(i + shift) % len]`: one [`Load`] per
/// target.
fn load_to(
    lab: &NetnsLab,
    targets: &[SocketAddr],
    shift: usize,
    a: &Args,
) -> (Vec<Load>, f64, f64) {
    lab.run_in("client", || {
        let begin = Instant::now() + Duration::from_secs_f64(a.warmup);
        let end = begin + Duration::from_secs_f64(a.secs);
        std::thread::scope(|s| {
            // Threads started here share the client's namespace (setns is per thread and
            // inherited by threads it creates).
            let workers: Vec<_> = (0..a.conns)
                .map(|i| {
                    let t = (i + shift) % targets.len();
                    (t, s.spawn(move || worker(targets[t], begin, end)))
                })
                .collect();
            std::thread::sleep(begin.saturating_duration_since(Instant::now()));
            let c0 = cpu_ticks();
            std::thread::sleep(end.saturating_duration_since(Instant::now()));
            let c1 = cpu_ticks();
            let mut total: Vec<Load> = targets.iter().map(|_| Load::default()).collect();
            for (t, w) in workers {
                total[t].merge(w.join().unwrap());
            }
            let span = (c1.2 - c0.2).max(1) as f64;
            (
                total,
                (c1.0 - c0.0) as f64 / span,
                (c1.1 - c0.1) as f64 / span,
            )
        })
    })
    .unwrap()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).round() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// One phase's figures.
#[derive(Debug, Clone)]
struct Phase {
    datapath: Datapath,
    program: Duration,
    rps: f64,
    connect: (f64, f64),
    request: (f64, f64),
    errors: u64,
    /// VM CPU time per answered request (all CPUs), and the softirq part of it, in µs.
    cpu_per_req: (f64, f64),
}

fn nft_in(lab: &NetnsLab, host: &str) -> Nft {
    Nft::with_command([
        "ip".to_string(),
        "netns".into(),
        "exec".into(),
        lab.netns_name(host),
        "nft".into(),
    ])
    .timeout(Duration::from_secs(1200))
}

fn run_ok(lab: &NetnsLab, host: &str, argv: &[&str]) {
    lab.run(host, argv).unwrap();
}

/// Makes `dir` the director: forwarding on, the VIP moved to it, the real servers'
/// route to the client through it, the client's ARP entries forgotten.
fn take_over(lab: &NetnsLab, dir: &str, prev: Option<&str>, vip: Ipv4Addr, client: Ipv4Addr) {
    run_ok(
        lab,
        dir,
        &[
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.send_redirects=0",
            "net.ipv4.conf.eth0.send_redirects=0",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.eth0.rp_filter=0",
        ],
    );
    if let Some(p) = prev {
        run_ok(
            lab,
            p,
            &["ip", "addr", "del", &format!("{vip}/24"), "dev", "eth0"],
        );
    }
    run_ok(
        lab,
        dir,
        &["ip", "addr", "add", &format!("{vip}/24"), "dev", "eth0"],
    );
    let gw = lab.ip(dir).to_string();
    let client = client.to_string();
    for (r, _) in REALS {
        run_ok(lab, r, &["ip", "route", "replace", &client, "via", &gw]);
    }
    run_ok(lab, "client", &["ip", "neigh", "flush", "dev", "eth0"]);
}

/// Programs `t` into `dir`'s kernel through `dp`: (time taken, writes or commands).
fn program(lab: &NetnsLab, dir: &str, dp: Datapath, t: &DesiredTable) -> (Duration, usize) {
    match dp {
        Datapath::Ipvs => lab
            .run_in(dir, || {
                let mut c = Client::connect().unwrap();
                let mut r = Reconciler::new([], Backoff::default());
                let t0 = Instant::now();
                let rep = r.sync(&mut c, t, Instant::now()).unwrap();
                assert!(rep.errors.is_empty(), "{:?}", rep.errors.first());
                (t0.elapsed(), rep.applied.total())
            })
            .unwrap(),
        Datapath::Nft => {
            let mut ap = Applier::new(nft_in(lab, dir), Options::default());
            let t0 = Instant::now();
            let rep = ap.apply(t).unwrap();
            assert!(rep.written && rep.full);
            (t0.elapsed(), rep.commands)
        }
    }
}

/// Empties `dir`'s table of `dp`.
fn empty(lab: &NetnsLab, dir: &str, dp: Datapath) {
    match dp {
        Datapath::Ipvs => lab
            .run_in(dir, || Client::connect().unwrap().flush().unwrap())
            .unwrap(),
        Datapath::Nft => Applier::new(nft_in(lab, dir), Options::default())
            .remove()
            .unwrap(),
    }
}

/// One phase's figures from its load, printed; fails if a real server got nothing.
fn report(
    round: usize,
    dp: Datapath,
    program: Duration,
    writes: usize,
    l: &mut Load,
    a: &Args,
    cpu: Option<(f64, f64)>,
) -> Phase {
    l.connect.sort();
    l.request.sort();
    let window = a.secs;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = cpus as f64 * window * 1e6 / l.done.max(1) as f64;
    let p = Phase {
        datapath: dp,
        program,
        rps: l.done as f64 / window,
        connect: (pct(&l.connect, 0.5), pct(&l.connect, 0.99)),
        request: (pct(&l.request, 0.5), pct(&l.request, 0.99)),
        errors: l.errors,
        cpu_per_req: cpu.map_or((f64::NAN, f64::NAN), |(busy, softirq)| {
            (busy * per, softirq * per)
        }),
    };
    let share: Vec<String> = REALS
        .iter()
        .map(|(r, _)| {
            let c = l.per_server.get(*r).copied().unwrap_or(0);
            format!("{:.1}", 100.0 * c as f64 / l.done.max(1) as f64)
        })
        .collect();
    let cpu = cpu.map_or(String::new(), |(busy, softirq)| {
        format!(
            " | CPU busy {:.0} %, softirq {:.0} %: {:.0} / {:.0} µs per request",
            busy * 100.0,
            softirq * 100.0,
            p.cpu_per_req.0,
            p.cpu_per_req.1
        )
    });
    println!(
        "round {} {:<8} program {:7.1} ms ({writes} writes) | {:8.1} req/s | connect p50 {:6.0} p99 {:7.0} µs | request p50 {:6.0} p99 {:7.0} µs | errors {}{} | share rs1/rs2/rs3 {} % (want 16.7/33.3/50.0){cpu}",
        round + 1,
        dp.name(),
        program.as_secs_f64() * 1e3,
        p.rps,
        p.connect.0,
        p.connect.1,
        p.request.0,
        p.request.1,
        p.errors,
        l.first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        share.join("/"),
    );
    assert!(l.done > 0, "{}: no request answered", dp.name());
    for (r, _) in REALS {
        assert!(
            l.per_server.contains_key(r),
            "{}: {r} got no connection",
            dp.name()
        );
    }
    p
}

/// The lab with `directors`, the client's sysctls, the real servers serving; the
/// kernel's modules loaded. Returns the lab and whether this kernel has IPVS.
fn setup(a: &Args, directors: &[String], vip: u8) -> (NetnsLab, bool) {
    let kver = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nft_version = Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "kernel {}, {} vCPU, {nft_version}; {} rounds{}, {} s window after {} s warmup, \
         {} parallel connections, table: 1 service (wrr 1:2:3) + {} others x 10 reals",
        kver.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        a.rounds,
        if a.side_by_side {
            " (both datapaths at once, half the connections each)"
        } else {
            " x 2 phases"
        },
        a.secs,
        a.warmup,
        a.conns,
        a.fill
    );
    // Every director namespace is made up front: adding hosts to a running lab needs
    // /dev/fd (process substitution in netns-lab), which older guest-init lacked.
    let mut hosts = vec!["client", "rs1", "rs2", "rs3", "warm"];
    hosts.extend(directors.iter().map(String::as_str));
    let lab = NetnsLab::up(&hosts).unwrap();
    // Many short connections: the whole port range, and TIME_WAIT ports reused.
    run_ok(
        &lab,
        "client",
        &[
            "sysctl",
            "-qw",
            "net.ipv4.ip_local_port_range=1024 65535",
            "net.ipv4.tcp_tw_reuse=1",
        ],
    );
    for (name, _) in REALS {
        let listener = lab
            .run_in(name, || TcpListener::bind(("0.0.0.0", PORT)))
            .unwrap()
            .unwrap();
        serve(listener, name, a.conns);
    }

    // Is there IPVS at all (not on the development machines' kernel, `--here`)?
    let ipvs = Client::connect().is_ok();
    // Load the modules once before timing anything: the kernel loads the scheduler, the
    // NAT and hash modules on first use, which would count against the first phase.
    if ipvs {
        let mut c = Client::connect().unwrap();
        let warm = ServiceKey::tcp(SocketAddr::new(IpAddr::V4([192, 0, 2, 1].into()), 1));
        c.add_service(&Service::new(warm, "wrr")).unwrap();
        c.delete_service(&warm).unwrap();
    } else {
        println!("no IPVS in this kernel: nftables phases only");
    }
    let t = table(&lab, lab.subnet_addr(vip), a.fill);
    {
        let mut ap = Applier::new(nft_in(&lab, "warm"), Options::default());
        ap.apply(&t).unwrap();
        ap.remove().unwrap();
    }
    // conntrack's limit is global (set only from the initial namespace): a phase leaves
    // up to rate x 120 s of TIME_WAIT entries behind it.
    let _ = std::fs::write("/proc/sys/net/netfilter/nf_conntrack_max", "1048576");
    (lab, ipvs)
}

/// Both datapaths at once, each round on a fresh pair of directors: IPVS serves VIP .100
/// for the client's source address .201, nftables VIP .101 for .202 (the real servers
/// route each source back through its own director), and half the client's threads load
/// each. Both see the host's load at the same instants, which phases one after the other
/// cannot give on a busy host.
fn side_by_side(a: &Args) {
    let pairs: Vec<[String; 2]> = (1..=a.rounds)
        .map(|r| [format!("i{r}"), format!("n{r}")])
        .collect();
    let flat: Vec<String> = pairs.iter().flatten().cloned().collect();
    let (lab, ipvs) = setup(a, &flat, 100);
    if !ipvs {
        println!("SKIPPED: --side-by-side needs IPVS");
        return;
    }
    let dps = [Datapath::Ipvs, Datapath::Nft];
    let vips = [lab.subnet_addr(100), lab.subnet_addr(101)];
    let srcs = [lab.subnet_addr(201), lab.subnet_addr(202)];
    for (vip, src) in vips.iter().zip(&srcs) {
        run_ok(
            &lab,
            "client",
            &["ip", "addr", "add", &format!("{src}/24"), "dev", "eth0"],
        );
        // The source address is chosen by the route: no bind() in the load generator.
        run_ok(
            &lab,
            "client",
            &[
                "ip",
                "route",
                "add",
                &format!("{vip}/32"),
                "dev",
                "eth0",
                "src",
                &src.to_string(),
            ],
        );
    }
    let tables = [table(&lab, vips[0], a.fill), table(&lab, vips[1], a.fill)];
    let targets = vips.map(|v| SocketAddr::new(IpAddr::V4(v), 80));
    let mut phases: Vec<Phase> = Vec::new();
    for (round, pair) in pairs.iter().enumerate() {
        let mut programmed = Vec::new();
        for k in 0..2 {
            let prev = round.checked_sub(1).map(|r| pairs[r][k].as_str());
            take_over(&lab, &pair[k], prev, vips[k], srcs[k]);
            programmed.push(program(&lab, &pair[k], dps[k], &tables[k]));
        }
        // Which datapath gets the even threads alternates per round.
        let (mut loads, busy, softirq) = load_to(&lab, &targets, round % 2, a);
        for k in 0..2 {
            let (t, w) = programmed[k];
            phases.push(report(round, dps[k], t, w, &mut loads[k], a, None));
        }
        println!(
            "round {} both     VM CPU busy {:.0} %, softirq {:.0} %",
            round + 1,
            busy * 100.0,
            softirq * 100.0
        );
        for k in 0..2 {
            empty(&lab, &pair[k], dps[k]);
        }
    }
    summary(&phases);
}

fn in_lab(a: &Args) {
    if a.side_by_side {
        side_by_side(a);
        return;
    }
    let directors: Vec<String> = (1..=2 * a.rounds).map(|n| format!("d{n}")).collect();
    let (lab, ipvs) = setup(a, &directors, 100);
    let vip = lab.subnet_addr(100);
    let vip_sa = SocketAddr::new(IpAddr::V4(vip), 80);
    let t = table(&lab, vip, a.fill);

    let mut phases: Vec<Phase> = Vec::new();
    let mut prev: Option<String> = None;
    let mut n = 0;
    for round in 0..a.rounds {
        let order = if round % 2 == 0 {
            [Datapath::Ipvs, Datapath::Nft]
        } else {
            [Datapath::Nft, Datapath::Ipvs]
        };
        for dp in order {
            if dp == Datapath::Ipvs && !ipvs {
                continue;
            }
            n += 1;
            let dir = format!("d{n}");
            take_over(&lab, &dir, prev.as_deref(), vip, lab.ip("client"));
            prev = Some(dir.clone());
            let (program, writes) = program(&lab, &dir, dp, &t);
            let (mut l, busy, softirq) = load(&lab, vip_sa, a);
            let p = report(round, dp, program, writes, &mut l, a, Some((busy, softirq)));
            phases.push(p);
            // Leave the namespace's table empty (it takes no traffic from now on).
            empty(&lab, &dir, dp);
        }
    }
    summary(&phases);
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// ", CPU per request X (softirq Y)", or nothing where CPU was not measured per
/// datapath (`--side-by-side`).
fn cpu_text(all: f64, softirq: f64, f: impl Fn(f64) -> String) -> String {
    if all.is_nan() {
        return String::new();
    }
    format!(" | CPU per request {} (softirq {})", f(all), f(softirq))
}

fn summary(phases: &[Phase]) {
    let of = |dp: Datapath, f: &dyn Fn(&Phase) -> f64| -> Vec<f64> {
        phases.iter().filter(|p| p.datapath == dp).map(f).collect()
    };
    let range = |v: &[f64]| {
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{min:.0} to {max:.0}")
    };
    println!("medians over rounds (min to max):");
    let mut med = BTreeMap::new();
    for dp in [Datapath::Ipvs, Datapath::Nft] {
        let rps = of(dp, &|p| p.rps);
        if rps.is_empty() {
            continue;
        }
        let m = (
            median(rps.clone()),
            median(of(dp, &|p| p.connect.0)),
            median(of(dp, &|p| p.connect.1)),
            median(of(dp, &|p| p.request.0)),
            median(of(dp, &|p| p.request.1)),
            median(of(dp, &|p| p.program.as_secs_f64() * 1e3)),
            median(of(dp, &|p| p.cpu_per_req.0)),
            median(of(dp, &|p| p.cpu_per_req.1)),
        );
        let errors: u64 = phases
            .iter()
            .filter(|p| p.datapath == dp)
            .map(|p| p.errors)
            .sum();
        println!(
            "  {:<8} {:8.1} req/s ({}) | connect p50 {:.0} p99 {:.0} µs | request p50 {:.0} p99 {:.0} µs{} | program {:.1} ms | errors {errors}",
            dp.name(),
            m.0,
            range(&rps),
            m.1,
            m.2,
            m.3,
            m.4,
            cpu_text(m.6, m.7, |x| format!("{x:.0} µs")),
            m.5
        );
        med.insert(dp, m);
    }
    if let (Some(i), Some(n)) = (med.get(&Datapath::Ipvs), med.get(&Datapath::Nft)) {
        // Per round: the two phases of one round ran next to each other.
        let ipvs = of(Datapath::Ipvs, &|p| p.rps);
        let nft = of(Datapath::Nft, &|p| p.rps);
        let ratios: Vec<f64> = ipvs.iter().zip(&nft).map(|(i, n)| n / i).collect();
        let per_round: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        println!(
            "ratio nftables / ipvs: req/s {:.3}, median of the rounds' ratios {:.3} (per round {}), connect p50 {:.3} p99 {:.3}, request p50 {:.3} p99 {:.3}{}",
            n.0 / i.0,
            median(ratios),
            per_round.join(", "),
            n.1 / i.1,
            n.2 / i.2,
            n.3 / i.3,
            n.4 / i.4,
            cpu_text(n.6 / i.6, n.7 / i.7, |x| format!("{x:.3}"))
        );
    }
}

fn main() {
    let a = args();
    if kernel::inside() || (a.here && std::env::args().any(|x| x == "--bench")) {
        if let Err(why) = NetnsLab::available() {
            println!("SKIPPED: throughput bench: {why}");
            return;
        }
        in_lab(&a);
        return;
    }
    if !std::env::args().any(|x| x == "--bench") {
        eprintln!(
            "throughput benchmark: run it with `cargo bench -p vigil-nft --bench throughput`"
        );
        return;
    }
    if let Err(why) = kernel::available() {
        println!("SKIPPED: throughput bench: the kernel lab is not available: {why}");
        return;
    }
    kernel::rerun_bench_in_vm(3600);
}
