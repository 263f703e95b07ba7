//! Reconciler benchmark, in the IPVS kernel lab:
//!
//! ```sh
//! cargo bench -p vigil-ipvs --bench reconcile                 # 10000 services x 10 reals
//! cargo bench -p vigil-ipvs --bench reconcile -- 1000 10 200  # SERVICES REALS TOGGLES
//! ```
//!
//! On the host it first times the pure part of a toggle (policy + diff of one service),
//! then re-runs itself inside the VM (`tests/lab/in-ipvs-kernel`, booted with
//! `tsc=reliable` like `ipvsadm-restore-bench`), which prints: the cold sync of the whole
//! table into an empty kernel, the full dump, the adopt-on-restart sync (writes must be
//! 0), TOGGLES single real-server toggles (health down / up through the policy and
//! `sync_service`, p50/p99 wall and CPU per toggle), and the same table loaded with
//! `ipvsadm -R` in the same VM, as a ratio. The table is the one
//! `ipvsadm-restore-bench` loads (10.x.y.z:80 wrr, NAT reals 172.16+.a.b:80).
//!
//! Without `--bench` (e.g. `cargo test --benches`) it only says how to run it.

#![allow(clippy::unwrap_used)] // a benchmark: a failure should stop it loudly

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use vigil_ipvs::policy::{Health, RealServer, ServicePolicy, evaluate};
use vigil_ipvs::reconcile::{
    Backoff, DesiredService, DesiredTable, KernelService, Reconciler, diff_service, dump,
};
use vigil_ipvs::{Client, Destination, ForwardMethod, Service, ServiceKey};
use vigil_testlab::kernel;

fn vip(i: u32) -> SocketAddr {
    let ip = [
        10,
        1 + (i / 65536) as u8,
        (i / 256 % 256) as u8,
        (i % 256) as u8,
    ];
    SocketAddr::new(IpAddr::V4(ip.into()), 80)
}

fn rip(k: u32) -> SocketAddr {
    let ip = [
        172,
        16 + (k / 65536) as u8,
        (k / 256 % 256) as u8,
        (k % 256) as u8,
    ];
    SocketAddr::new(IpAddr::V4(ip.into()), 80)
}

fn policy(i: u32, reals: u32) -> ServicePolicy {
    ServicePolicy::new(
        Service::new(ServiceKey::tcp(vip(i)), "wrr"),
        (0..reals)
            .map(|j| RealServer::new(rip(i * reals + j), 1, ForwardMethod::Masquerade))
            .collect(),
    )
}

fn desired_table(services: u32, reals: u32) -> DesiredTable {
    (0..services)
        .map(|i| {
            let mut d = DesiredService::new(Service::new(ServiceKey::tcp(vip(i)), "wrr"));
            for j in 0..reals {
                d = d.with(Destination::new(
                    rip(i * reals + j),
                    ForwardMethod::Masquerade,
                ));
            }
            (d.service.key, d)
        })
        .collect()
}

/// The same table as `ipvsadm -R` input (the format of `ipvsadm-restore-bench`).
fn restore_file(services: u32, reals: u32) -> String {
    let mut s = String::new();
    for i in 0..services {
        s.push_str(&format!("-A -t {} -s wrr\n", vip(i)));
        for j in 0..reals {
            s.push_str(&format!(
                "-a -t {} -r {} -m -w 1\n",
                vip(i),
                rip(i * reals + j)
            ));
        }
    }
    s
}

/// CPU time of this process, user and system (the kernel handles a netlink request to
/// IPVS inside our `sendmsg`, so its work is ours). `CLOCK_PROCESS_CPUTIME_ID` is exact,
/// where `getrusage` samples at the tick.
fn cpu() -> Duration {
    // SAFETY: clock_gettime fills the struct it is given.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts);
        ts
    };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).round() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

fn args() -> (u32, u32, u32) {
    let nums: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(10_000),
        nums.get(1).copied().unwrap_or(10),
        nums.get(2).copied().unwrap_or(1000),
    )
}

/// Host side: the userspace cost of one toggle, without the kernel.
fn host_pure_toggle(reals: u32) {
    let mut p = policy(0, reals);
    let kernel = KernelService::from(&evaluate(&p, None).desired);
    let n = 100_000;
    let c0 = cpu();
    let t0 = Instant::now();
    let mut writes = 0;
    for i in 0..n {
        p.reals[0].health = if i % 2 == 0 { Health::Down } else { Health::Up };
        let e = evaluate(&p, Some(true));
        writes += diff_service(Some(&e.desired), Some(&kernel)).len();
    }
    let wall = t0.elapsed();
    let c = cpu() - c0;
    println!(
        "host: policy + diff of one {reals}-real service: {:.2} µs wall, {:.2} µs CPU per toggle \
         (n={n}, {writes} writes planned)",
        wall.as_secs_f64() * 1e6 / f64::from(n),
        c.as_secs_f64() * 1e6 / f64::from(n),
    );
}

fn in_vm(services: u32, reals: u32, toggles: u32) {
    let mut c = Client::connect().unwrap();
    c.flush().unwrap();
    let kver = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    println!(
        "kernel {}, {} vCPU; table: {services} services x {reals} reals = {} writes; window {}",
        kver.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        services * (reals + 1),
        c.window()
    );
    let want = desired_table(services, reals);
    // Load the scheduler's module first (the kernel runs modprobe on first use, ~0.25 s
    // here): ipvsadm -R, timed later, would otherwise get it for free.
    let warm = ServiceKey::tcp(SocketAddr::new(IpAddr::V4([192, 0, 2, 1].into()), 1));
    c.add_service(&Service::new(warm, "wrr")).unwrap();
    c.delete_service(&warm).unwrap();

    // Cold sync into an empty kernel.
    let mut r = Reconciler::new([], Backoff::default());
    let (c0, t0) = (cpu(), Instant::now());
    let rep = r.sync(&mut c, &want, Instant::now()).unwrap();
    let cold = t0.elapsed();
    let cold_cpu = cpu() - c0;
    assert!(rep.errors.is_empty(), "{:?}", rep.errors.first());
    assert_eq!(rep.applied.total(), (services * (reals + 1)) as usize);
    println!(
        "cold sync:        {:8.3} s wall, {:8.3} s CPU  ({} writes, {:.1} µs wall per write)",
        cold.as_secs_f64(),
        cold_cpu.as_secs_f64(),
        rep.applied.total(),
        cold.as_secs_f64() * 1e6 / rep.applied.total() as f64
    );

    // Full dump.
    let (c0, t0) = (cpu(), Instant::now());
    let table = dump(&mut c).unwrap();
    let dump_wall = t0.elapsed();
    let dump_cpu = cpu() - c0;
    let ndest: usize = table.values().map(|s| s.destinations.len()).sum();
    assert_eq!(
        (table.len(), ndest),
        (services as usize, (services * reals) as usize)
    );
    println!(
        "full dump:        {:8.3} s wall, {:8.3} s CPU  ({} services, {ndest} destinations)",
        dump_wall.as_secs_f64(),
        dump_cpu.as_secs_f64(),
        table.len()
    );
    drop(table);

    // Adopt on restart: a new reconciler (and socket), same table.
    drop(r);
    let mut c = Client::connect().unwrap();
    let mut r = Reconciler::new([], Backoff::default());
    let (c0, t0) = (cpu(), Instant::now());
    let rep = r.sync(&mut c, &want, Instant::now()).unwrap();
    let adopt = t0.elapsed();
    let adopt_cpu = cpu() - c0;
    let writes = r.counters().writes;
    println!(
        "adopt on restart: {:8.3} s wall, {:8.3} s CPU  (writes: {writes}, planned: {})",
        adopt.as_secs_f64(),
        adopt_cpu.as_secs_f64(),
        rep.planned.total()
    );
    assert_eq!(writes, 0, "a restart with an unchanged table wrote");

    // Toggles: one real server of the middle service down, then up, through the policy.
    let mid = services / 2;
    let mut p = policy(mid, reals);
    let key = p.service.key;
    let mut quorum = Some(true);
    let mut lat = Vec::with_capacity(toggles as usize);
    let c0 = cpu();
    for i in 0..toggles {
        p.reals[0].health = if i % 2 == 0 { Health::Down } else { Health::Up };
        let t0 = Instant::now();
        let e = evaluate(&p, quorum);
        quorum = e.quorum;
        let rep = r
            .sync_service(&mut c, key, Some(&e.desired), Instant::now())
            .unwrap();
        lat.push(t0.elapsed());
        assert_eq!(rep.applied.total(), 1, "{rep:?}");
    }
    let toggle_cpu = cpu() - c0;
    lat.sort();
    println!(
        "toggle:           p50 {:7.1} µs  p99 {:7.1} µs  max {:7.1} µs wall; {:.1} µs CPU each (n={toggles})",
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0),
        toggle_cpu.as_secs_f64() * 1e6 / f64::from(toggles.max(1))
    );

    // ipvsadm -Ln of the same table, for the dump's scale.
    let t0 = Instant::now();
    let out = Command::new("ipvsadm").arg("-Ln").output().unwrap();
    let ipvsadm_ln = t0.elapsed();
    assert!(out.status.success());
    println!("ipvsadm -Ln:      {:8.3} s wall", ipvsadm_ln.as_secs_f64());

    // The same table with ipvsadm -R, into an empty IPVS table of a fresh network
    // namespace. Not into this one after a flush: IPVS keeps deleted destinations in a
    // per-namespace trash for 60 to 120 s and scans it on every destination add, which
    // made the same restore 4x slower (213 s instead of ~48 s) in a trial run.
    c.flush().unwrap();
    drop(c);
    let ns = format!("vigil-bench-{}", std::process::id());
    run(&["ip", "netns", "add", &ns]);
    // With lo down the namespace has no local routing table, and IPVS then refuses
    // every IPv4 NAT destination as "not unicast" (EINVAL).
    run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
    let file = std::env::temp_dir().join(format!("{ns}.ipvsadm"));
    std::fs::write(&file, restore_file(services, reals)).unwrap();
    let t0 = Instant::now();
    let st = Command::new("ip")
        .args(["netns", "exec", &ns, "ipvsadm", "-R"])
        .stdin(std::fs::File::open(&file).unwrap())
        .status()
        .unwrap();
    let restore = t0.elapsed();
    assert!(st.success());
    let _ = std::fs::remove_file(&file);
    println!("ipvsadm -R:       {:8.3} s wall", restore.as_secs_f64());
    println!(
        "ratio cold sync / ipvsadm -R: {:.3}   dump / ipvsadm -Ln: {:.3}",
        cold.as_secs_f64() / restore.as_secs_f64(),
        dump_wall.as_secs_f64() / ipvsadm_ln.as_secs_f64()
    );
    // The adopt rule holds for a table someone else loaded too: nothing to write.
    let writes = vigil_testlab::run_in_netns(format!("/run/netns/{ns}"), || {
        let mut c = Client::connect().unwrap();
        let mut r = Reconciler::new([], Backoff::default());
        let rep = r.sync(&mut c, &want, Instant::now()).unwrap();
        assert!(rep.is_noop(), "{rep:?}");
        c.flush().unwrap();
        r.counters().writes
    })
    .unwrap();
    println!("adopt of the ipvsadm-loaded table: writes {writes}");
    run(&["ip", "netns", "del", &ns]);
}

fn run(argv: &[&str]) {
    let st = Command::new(argv[0]).args(&argv[1..]).status().unwrap();
    assert!(st.success(), "{argv:?}: {st}");
}

fn main() {
    let (services, reals, toggles) = args();
    if kernel::inside() {
        in_vm(services, reals, toggles);
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("reconcile benchmark: run it with `cargo bench -p vigil-ipvs --bench reconcile`");
        return;
    }
    host_pure_toggle(reals);
    if let Err(why) = kernel::available() {
        eprintln!("SKIPPED: the kernel lab is not available: {why}");
        return;
    }
    kernel::rerun_bench_in_vm(1800);
}
