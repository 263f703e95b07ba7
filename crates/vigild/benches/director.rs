//! The director's own figures: a real `vigild` (release build) against real TCP listeners.
//!
//! `cargo build --release --bins && cargo bench -p vigild --bench director` (root, kernel
//! lab installed). On the host it times `vigil_config::load` of a 1,000 x 10 cluster file
//! and the CPU of an idle director checking 1,000 real servers every second (no IPVS on
//! the host: vigild logs that and keeps checking), then re-runs itself inside the IPVS
//! kernel lab VM (`tests/lab/in-ipvs-kernel`, `tsc=reliable`) for:
//!
//! * phase "big": 1,000 virtual servers x 10 real servers, tcp checks every 1 s, until
//!   the kernel holds all 10,000 destinations; then RSS, CPU, and reloads that change one
//!   real server's weight (`vigilctl reload` and SIGHUP), timed until the kernel shows it;
//! * phase "idle": 100 x 10 real servers checked every second plus a "toggle" virtual
//!   server (checked every 100 ms, rise 1, fall 1) whose first real server's listener is
//!   closed and reopened; each health change is timed to the kernel (netlink dump).
//!
//! Every real server is a listener of this process on 127.x (loopback: in the VM and on
//! the host, test traffic never leaves the machine). Virtual addresses are 10.201.x.y and
//! 10.202.0.1; they are only IPVS table entries in the VM, never configured or contacted.
//! See docs/benchmarks.md ("Director") for what each figure means.

// harness = false: clippy cannot tell this is not production code.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use vigil_ipvs::{Client, Protocol, ServiceKey};
use vigil_testlab::{bin_path, kernel};

/// Counts this process's heap, for the parse phase: what `vigil_config::load` needs at
/// its peak and what it keeps (the part of a reload that runs beside the running config).
struct Counting;

static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counts are added.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let live = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(live, Relaxed);
        // SAFETY: the caller's layout, as given.
        unsafe { std::alloc::System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        LIVE.fetch_sub(l.size(), std::sync::atomic::Ordering::Relaxed);
        // SAFETY: allocated by `alloc` above with this layout.
        unsafe { std::alloc::System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, new: usize) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        if new >= l.size() {
            let live = LIVE.fetch_add(new - l.size(), Relaxed) + new - l.size();
            PEAK.fetch_max(live, Relaxed);
        } else {
            LIVE.fetch_sub(l.size() - new, Relaxed);
        }
        // SAFETY: as `dealloc` and `alloc`.
        unsafe { std::alloc::System.realloc(p, l, new) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Runs `f`; returns its value, the heap's peak above the start while it ran, and what
/// is still live after it (both in bytes; other threads of this process count too).
fn heap_of<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let before = LIVE.load(Relaxed);
    PEAK.store(before, Relaxed);
    let v = f();
    let peak = PEAK.load(Relaxed).saturating_sub(before);
    (v, peak, LIVE.load(Relaxed).saturating_sub(before))
}

const PORT: u16 = 28471;
/// The real server whose listener is closed and reopened (virtual server "toggle").
const TOGGLED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 62, 0, 1)), PORT);
const TOGGLE_PEER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 62, 0, 2)), PORT);
const TOGGLE_VIP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 202, 0, 1)), 80);

struct Opts {
    big_vs: usize,
    idle_vs: usize,
    per_vs: usize,
    cpu_secs: u64,
    toggles: usize,
    reloads: usize,
    host: bool,
    vm: bool,
    big: bool,
    /// `--reload-soak N`: N SIGHUP reloads and N `vigilctl services --json` calls (0: off).
    reload_soak: usize,
    /// Only the soak phase (no parse, idle, big or toggle phases).
    soak_only: bool,
    /// The soak cluster's check interval (the cluster: every 30 s).
    soak_interval: String,
    /// `--ab-rounds N`: with `--vigild-b`, each phase runs N times per daemon.
    ab_rounds: usize,
}

/// One daemon under test: `--vigild PATH` (default the release build beside the bench),
/// `--vigilctl PATH` (the old daemon's own vigilctl, when the status protocol differs) and
/// extra environment (`--vigild-env K=V`, repeatable); `--vigild-b`, `--vigilctl-b`,
/// `--vigild-b-env` give a second one (A/B: every phase runs alternately against both).
#[derive(Clone, Debug)]
struct Variant {
    label: &'static str,
    vigild: PathBuf,
    vigilctl: PathBuf,
    env: Vec<(String, String)>,
}

/// A, and B if given.
static VARIANTS: std::sync::OnceLock<Vec<Variant>> = std::sync::OnceLock::new();
/// The index into [`VARIANTS`] that the phase now running starts.
static CURRENT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn variant() -> &'static Variant {
    &VARIANTS.get().unwrap()[CURRENT.load(std::sync::atomic::Ordering::Relaxed)]
}

fn opts() -> Opts {
    let mut o = Opts {
        big_vs: 1000,
        idle_vs: 100,
        per_vs: 10,
        cpu_secs: 20,
        toggles: 20,
        reloads: 5,
        host: true,
        vm: true,
        big: true,
        reload_soak: 0,
        soak_only: false,
        soak_interval: "30s".to_owned(),
        ab_rounds: 3,
    };
    let mut a = Variant {
        label: "A",
        vigild: bin_path("vigild"),
        vigilctl: bin_path("vigilctl"),
        env: Vec::new(),
    };
    // B's fields, each A's unless given.
    let (mut b_vigild, mut b_ctl, mut b_env) = (None, None, None::<Vec<(String, String)>>);
    let env_of = |v: &str| {
        let (k, v) = v
            .split_once('=')
            .unwrap_or_else(|| panic!("--vigild-env needs KEY=VALUE"));
        (k.to_owned(), v.to_owned())
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let num = |i: usize| -> usize {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} needs a number", args[i]))
        };
        match args[i].as_str() {
            "--big-vs" => o.big_vs = num(i),
            "--idle-vs" => o.idle_vs = num(i),
            "--per-vs" => o.per_vs = num(i),
            "--cpu-seconds" => o.cpu_secs = num(i) as u64,
            "--toggles" => o.toggles = num(i),
            "--reloads" => o.reloads = num(i),
            "--reload-soak" => o.reload_soak = num(i),
            "--soak-interval" => o.soak_interval = args[i + 1].clone(),
            "--ab-rounds" => o.ab_rounds = num(i).max(1),
            "--vigild" => a.vigild = PathBuf::from(&args[i + 1]),
            "--vigilctl" => a.vigilctl = PathBuf::from(&args[i + 1]),
            "--vigild-env" => a.env.push(env_of(&args[i + 1])),
            "--vigild-b" => b_vigild = Some(PathBuf::from(&args[i + 1])),
            "--vigilctl-b" => b_ctl = Some(PathBuf::from(&args[i + 1])),
            "--vigild-b-env" => b_env.get_or_insert_default().push(env_of(&args[i + 1])),
            "--soak-only" => {
                o.soak_only = true;
                i += 1;
                continue;
            }
            "--host-only" => {
                o.vm = false;
                i += 1;
                continue;
            }
            "--no-big" => {
                o.big = false;
                i += 1;
                continue;
            }
            "--vm-only" => {
                o.host = false;
                i += 1;
                continue;
            }
            _ => {
                // cargo bench passes --bench; anything else unknown is ignored too.
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let mut all = vec![a.clone()];
    if b_vigild.is_some() || b_ctl.is_some() || b_env.is_some() {
        all.push(Variant {
            label: "B",
            vigild: b_vigild.unwrap_or(a.vigild),
            vigilctl: b_ctl.unwrap_or(a.vigilctl),
            env: b_env.unwrap_or(a.env),
        });
    }
    let _ = VARIANTS.set(all);
    o
}

fn main() {
    let o = opts();
    raise_nofile();
    if kernel::inside() {
        vm(&o);
        return;
    }
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("director benchmark: run it with `cargo bench -p vigild --bench director`");
        return;
    }
    if o.host {
        host(&o);
    }
    if !o.vm {
        return;
    }
    if let Err(why) = kernel::available() {
        println!("SKIPPED (kernel lab): {why}");
        return;
    }
    kernel::rerun_bench_in_vm(1800);
}

// ---------------------------------------------------------------------------------------
// Host

fn host(o: &Opts) {
    println!("== host ({} CPUs, load {})", cpus(), loadavg());
    let dir = tempfile::tempdir().unwrap();

    // Parse alone: what a reload spends before anything is applied.
    let path = write_cluster(dir.path(), o.big_vs, o.per_vs, None, false, "1s");
    let size = std::fs::metadata(&path).unwrap().len();
    let hwm0 = own_hwm_kib();
    let mut times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let loaded = vigil_config::load(&path).unwrap();
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(loaded.config.virtual_servers.len(), o.big_vs);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "config parse, {} x {} = {} real servers ({} KiB): vigil_config::load min {:.1} / p50 {:.1} / max {:.1} ms (20 runs, host CPU); this process's VmHWM grew {:.1} MiB",
        o.big_vs,
        o.per_vs,
        o.big_vs * o.per_vs,
        size / 1024,
        times[0],
        pct(&times, 50.0),
        times[times.len() - 1],
        (own_hwm_kib() - hwm0) as f64 / 1024.0
    );
    // Where a reload's memory goes: the toml document tree alone, then the whole load.
    let source = std::fs::read_to_string(&path).unwrap();
    let (tree, tree_peak, tree_live) =
        heap_of(|| toml::de::DeTable::parse_recoverable(source.as_str()));
    drop(tree);
    let (loaded, load_peak, kept) = heap_of(|| vigil_config::load(&path).unwrap());
    drop(loaded);
    let parse_heap = format!(
        "config parse heap: toml document tree {:.1} MiB (peak {:.1}); vigil_config::load peak {:.1} MiB, the Config it returns {:.1} MiB",
        tree_live as f64 / 1048576.0,
        tree_peak as f64 / 1048576.0,
        load_peak as f64 / 1048576.0,
        kept as f64 / 1048576.0
    );
    println!("{parse_heap}");
    if o.soak_only {
        ab(o, "host soak", || soak(o, None, "host"));
        return;
    }
    ab(o, "host idle", || host_idle(o));
    if o.big {
        ab(o, "host big 1s", || big(o, None, "1s", "host"));
        ab(o, "host big 30s", || big(o, None, "30s", "host"));
    }
    ab(o, "host soak", || soak(o, None, "host"));
}

/// CPU of checking, no IPVS (vigild logs that IPVS is unavailable and keeps checking).
fn host_idle(o: &Opts) -> Figs {
    let dir = tempfile::tempdir().unwrap();
    let mut servers = Servers::new();
    let n = o.idle_vs * o.per_vs;
    for i in 0..n {
        servers.start(real_addr(i));
    }
    let path = write_cluster(dir.path(), o.idle_vs, o.per_vs, None, false, "1s");
    let d = Daemon::start(dir.path(), &path);
    let t = Instant::now();
    if !d.wait_up(n, Duration::from_secs(120)) {
        println!(
            "host idle: only {} of {n} real servers came up",
            d.up_count()
        );
        return Vec::new();
    }
    println!(
        "host idle: {n} real servers up after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_ms, wall) = d.cpu_over(Duration::from_secs(o.cpu_secs));
    let checks = n as f64 * wall;
    let (rss, hwm) = d.mem();
    println!(
        "host idle, {n} real servers, tcp every 1s: vigild CPU {:.2} % of one CPU ({cpu_ms:.0} ms over {wall:.1} s) = {:.1} ms per 1,000 checks (expected {checks:.0} checks); VmRSS {:.1} MiB, VmHWM {:.1} MiB; load {}",
        cpu_ms / wall / 10.0,
        cpu_ms / checks * 1000.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        loadavg()
    );
    d.stop();
    vec![
        ("CPU per 1,000 checks, ms", cpu_ms / checks * 1000.0),
        ("VmRSS, MiB", mib(rss)),
    ]
}

// ---------------------------------------------------------------------------------------
// VM

fn vm(o: &Opts) {
    println!(
        "== kernel lab VM ({} vCPUs, kernel {})",
        cpus(),
        kernel_release()
    );
    // The VM's lo is up with 127.0.0.0/8; make sure (guest-init may not).
    let _ = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    let mut client = Client::connect().unwrap();
    // Each run starts from an empty IPVS table.
    let mut phase = |f: &mut dyn FnMut(&mut Client) -> Figs| {
        let figs = f(&mut client);
        client.flush().unwrap();
        figs
    };
    if !o.soak_only {
        if o.big {
            ab(o, "vm big 1s", || {
                phase(&mut |c| big(o, Some(c), "1s", "vm"))
            });
            // The same reloads without the check load: what a reload costs by itself.
            ab(o, "vm big 30s", || {
                phase(&mut |c| big(o, Some(c), "30s", "vm"))
            });
        }
        ab(o, "vm idle", || phase(&mut |c| idle(o, c)));
    }
    ab(o, "vm soak", || phase(&mut |c| soak(o, Some(c), "vm")));
}

/// A phase's headline figures by name, for the A/B summary.
type Figs = Vec<(&'static str, f64)>;

/// Runs a phase once, or with a B daemon (`--vigild-b` ...) `--ab-rounds` times for each
/// in the order B A, A B, B A, ... (each as often first as second, so drift over the run
/// cancels out), then prints each figure's median for A and B and their ratio.
fn ab(o: &Opts, phase: &str, mut run: impl FnMut() -> Figs) {
    use std::sync::atomic::Ordering::Relaxed;
    let variants = VARIANTS.get().unwrap();
    if variants.len() == 1 || (phase.ends_with("soak") && o.reload_soak == 0) {
        run();
        return;
    }
    let order: Vec<usize> = (0..o.ab_rounds)
        .flat_map(|r| if r % 2 == 0 { [1, 0] } else { [0, 1] })
        .collect();
    let mut got: [Vec<Figs>; 2] = Default::default();
    for (n, &v) in order.iter().enumerate() {
        CURRENT.store(v, Relaxed);
        println!(
            "-- {phase}: run {} of {}: {} ({})",
            n + 1,
            order.len(),
            variants[v].label,
            variants[v].vigild.display()
        );
        got[v].push(run());
    }
    CURRENT.store(0, Relaxed);
    let order: String = order.iter().map(|&v| variants[v].label).collect();
    println!("== A/B {phase} (order {order}; medians; B/A ratio, then every run's value):");
    for v in variants {
        println!("   {}: {} {:?}", v.label, v.vigild.display(), v.env);
    }
    let mut names: Vec<&str> = Vec::new();
    for figs in got.iter().flatten() {
        for (name, _) in figs {
            if !names.contains(name) {
                names.push(name);
            }
        }
    }
    let of = |v: usize, name: &str| -> Vec<f64> {
        got[v]
            .iter()
            .filter_map(|figs| figs.iter().find(|f| f.0 == name).map(|f| f.1))
            .collect()
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            f64::NAN
        } else if v.len() % 2 == 1 {
            v[v.len() / 2]
        } else {
            (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
        }
    };
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "   {:<44} {:>9} {:>9} {:>6}   A runs | B runs",
        "figure", "A", "B", "B/A"
    );
    for name in names {
        let (a, b) = (of(0, name), of(1, name));
        let (ma, mb) = (median(a.clone()), median(b.clone()));
        println!(
            "   {name:<44} {ma:9.1} {mb:9.1} {:6.2}   {} | {}",
            mb / ma,
            list(&a),
            list(&b)
        );
    }
}

/// `where_`: "vm" or "host"; `client`: the kernel (VM) or none (host: no IPVS, so
/// "settled" is vigild's own count of real servers up, and reloads are timed by vigild).
fn big(o: &Opts, mut client: Option<&mut Client>, interval: &str, where_: &str) -> Figs {
    let tag = format!("{where_} big, checks every {interval}");
    let dir = tempfile::tempdir().unwrap();
    let n = o.big_vs * o.per_vs;
    let mut servers = Servers::new();
    for i in 0..n {
        servers.start(real_addr(i));
    }
    let path = write_cluster(dir.path(), o.big_vs, o.per_vs, None, false, interval);
    let t = Instant::now();
    let d = Daemon::start(dir.path(), &path);
    let all_in = wait_until(
        Duration::from_secs(600),
        Duration::from_millis(500),
        || match client.as_deref_mut() {
            Some(c) => kernel_dests(c, 201) == n,
            // Not `vigilctl services`: building that answer costs vigild tens of MiB.
            None => d.logged_up() >= n,
        },
    );
    println!(
        "{tag}: {} x {} = {n} real servers: all in (kernel, or vigild's count without IPVS) after {:.1} s: {all_in}",
        o.big_vs,
        o.per_vs,
        t.elapsed().as_secs_f64()
    );
    if !all_in {
        println!("{tag}: did not settle; up per vigild: {}", d.up_count());
        d.print_log_tail(&tag, 20);
        return Vec::new();
    }
    let mut figs = vec![("all in after, s", t.elapsed().as_secs_f64())];
    std::thread::sleep(Duration::from_secs(10));
    let (rss, hwm) = d.mem();
    println!(
        "{tag}: vigild VmRSS {:.1} MiB, VmHWM {:.1} MiB (10 s after all {n} were in)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    figs.push(("VmRSS when all in, MiB", mib(rss)));
    let (cpu_ms, wall) = d.cpu_over(Duration::from_secs(o.cpu_secs));
    let before = d.mem().0;
    let t = Instant::now();
    let up = d.up_count();
    let services_ms = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{tag}: one `vigilctl services --json` ({up} up) took {services_ms:.0} ms: vigild VmRSS {:.1} -> {:.1} MiB",
        before as f64 / 1024.0,
        d.mem().0 as f64 / 1024.0
    );
    println!(
        "{tag}: vigild CPU {:.1} % of one CPU over {wall:.1} s ({:.1} ms per 1,000 checks if all {n} ran every {interval}); up per vigild: {}",
        cpu_ms / wall / 10.0,
        cpu_ms / (n as f64 * wall / parse_secs(interval)) * 1000.0,
        up
    );
    figs.push((
        "CPU per 1,000 checks, ms",
        cpu_ms / (n as f64 * wall / parse_secs(interval)) * 1000.0,
    ));
    figs.push(("one services --json, ms", services_ms));

    // Reloads: one real server's weight changes, nothing else.
    let vs = o.big_vs / 2;
    let rs = vs * o.per_vs;
    let key = vs_key(vs);
    let mut rows = Vec::new();
    for k in 0..2 * o.reloads {
        let weight = 2 + k as u32;
        let sighup = k % 2 == 1;
        write_cluster(
            dir.path(),
            o.big_vs,
            o.per_vs,
            Some((rs, weight)),
            false,
            interval,
        );
        let t = Instant::now();
        let ctl_ms = if sighup {
            d.signal(libc::SIGHUP);
            0.0
        } else {
            let out = d.ctl(&["reload"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed().as_secs_f64() * 1e3
        };
        let seen = match client.as_deref_mut() {
            Some(c) => wait_until(Duration::from_secs(60), Duration::from_millis(1), || {
                kernel_weight(c, &key, real_addr(rs)) == Some(weight)
            }),
            // No kernel: until vigild has recorded the reload.
            None => wait_until(Duration::from_secs(60), Duration::from_millis(5), || {
                d.ctl_json(&["status"])["reloads"]
                    .as_array()
                    .is_some_and(|r| r.len() > k)
            }),
        };
        let wall_ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(seen, "reload {k}: the kernel never showed weight {weight}");
        std::thread::sleep(Duration::from_millis(300));
        let status = d.ctl_json(&["status"]);
        let last = status["reloads"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        let gen_ = last["generation"].as_u64().unwrap();
        // Daemon-internal: the "reloaded" log line to the next "IPVS: applied" line.
        let logs = d.logs();
        let reloaded = logs
            .iter()
            .find(|l| msg(l).starts_with("reloaded in") && l["generation"].as_u64() == Some(gen_));
        let apply = reloaded.and_then(|r| {
            let t0 = ts(r);
            logs.iter()
                .find(|l| msg(l).starts_with("IPVS: applied") && ts(l) >= t0)
                .map(|a| ((ts(a) - t0) * 1e3, a["writes"].as_u64().unwrap_or(0)))
        });
        rows.push((
            if sighup { "sighup" } else { "vigilctl" },
            last["duration_ms"].as_f64().unwrap(),
            ctl_ms,
            wall_ms,
            apply,
            d.mem().0,
        ));
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "{tag}: reloads changing one real server's weight ({} each way, {n} real servers):",
        o.reloads
    );
    println!(
        "  trigger   duration_ms  vigilctl_ms  wall_to_kernel_ms  reloaded->applied_ms (writes)  VmRSS_MiB"
    );
    for (trig, dur, ctl, wall, apply, rss) in &rows {
        let (a, w) = apply.map_or(("-".to_owned(), 0), |(a, w)| (format!("{a:.1}"), w));
        println!(
            "  {trig:9} {dur:11.1}  {ctl:11.1}  {wall:17.1}  {a:>12} ({w})  {:9.1}",
            *rss as f64 / 1024.0
        );
    }
    for trig in ["vigilctl", "sighup"] {
        let mut dur: Vec<f64> = rows.iter().filter(|r| r.0 == trig).map(|r| r.1).collect();
        let mut wall: Vec<f64> = rows.iter().filter(|r| r.0 == trig).map(|r| r.3).collect();
        let mut app: Vec<f64> = rows
            .iter()
            .filter(|r| r.0 == trig)
            .filter_map(|r| r.4.map(|a| a.0))
            .collect();
        for v in [&mut dur, &mut wall, &mut app] {
            v.sort_by(f64::total_cmp);
        }
        let (d50, a50, w50) = (pct(&dur, 50.0), pct(&app, 50.0), pct(&wall, 50.0));
        if trig == "vigilctl" {
            figs.push(("reload (vigilctl) duration_ms p50", d50));
            figs.push(("reload (vigilctl) reloaded->applied p50, ms", a50));
            figs.push(("reload (vigilctl) wall to kernel p50, ms", w50));
        } else {
            figs.push(("reload (SIGHUP) duration_ms p50", d50));
            figs.push(("reload (SIGHUP) reloaded->applied p50, ms", a50));
            figs.push(("reload (SIGHUP) wall to kernel p50, ms", w50));
        }
        println!(
            "{tag}: reload via {trig}: duration_ms p50 {:.1} max {:.1}; reloaded->applied p50 {:.1} max {:.1} ms; wall to kernel p50 {:.1} max {:.1} ms",
            pct(&dur, 50.0),
            pct(&dur, 100.0),
            pct(&app, 50.0),
            pct(&app, 100.0),
            pct(&wall, 50.0),
            pct(&wall, 100.0)
        );
    }
    let (rss, hwm) = d.mem();
    println!(
        "{tag}: vigild VmRSS {:.1} MiB, VmHWM {:.1} MiB after the reloads",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    figs.push(("VmRSS after the reloads, MiB", mib(rss)));
    d.stop();
    figs
}

/// `--reload-soak N`: does memory stay flat? The 1,000 x 10 cluster (tcp every
/// `--soak-interval`, default 30 s); RSS 10 s after all are up and the CPU of checking;
/// then N times: a SIGHUP reload changing one real server's weight (waited for in
/// `status`), then one `vigilctl services --json`. VmHWM is reset (`clear_refs` 5)
/// before each, so the peak of each is its own. RSS every 10, and 10 s after the last;
/// then the CPU of checking again, to compare with the one before.
fn soak(o: &Opts, mut client: Option<&mut Client>, where_: &str) -> Figs {
    if o.reload_soak == 0 {
        return Vec::new();
    }
    let interval = o.soak_interval.as_str();
    let tag = format!("{where_} soak, checks every {interval}");
    let dir = tempfile::tempdir().unwrap();
    let n = o.big_vs * o.per_vs;
    let mut servers = Servers::new();
    for i in 0..n {
        servers.start(real_addr(i));
    }
    let path = write_cluster(dir.path(), o.big_vs, o.per_vs, None, false, interval);
    let v = variant();
    println!("{tag}: vigild {} {:?}", v.vigild.display(), v.env);
    let t = Instant::now();
    let d = Daemon::start(dir.path(), &path);
    let all_in = wait_until(
        Duration::from_secs(600),
        Duration::from_millis(500),
        || match client.as_deref_mut() {
            Some(c) => kernel_dests(c, 201) == n,
            None => d.logged_up() >= n,
        },
    );
    println!(
        "{tag}: {n} real servers all in after {:.1} s: {all_in}",
        t.elapsed().as_secs_f64()
    );
    if !all_in {
        d.print_log_tail(&tag, 20);
        return Vec::new();
    }
    std::thread::sleep(Duration::from_secs(10));
    let (rss0, hwm0) = d.mem();
    println!(
        "{tag}: start: VmRSS {:.1} MiB, VmHWM {:.1} MiB (10 s after all {n} were in)",
        mib(rss0),
        mib(hwm0)
    );
    let checks_per_s = n as f64 / parse_secs(interval);
    let cpu_per_1000 = |(cpu_ms, wall): (f64, f64)| cpu_ms / (checks_per_s * wall) * 1000.0;
    let cpu_before = cpu_per_1000(d.cpu_over(Duration::from_secs(o.cpu_secs)));

    let vs = o.big_vs / 2;
    let rs = vs * o.per_vs;
    let gen0 = d.ctl_json(&["status"])["config_generation"]
        .as_u64()
        .unwrap();
    let (mut reload_ms, mut services_ms) = (Vec::new(), Vec::new());
    // vigild's minor page faults from the SIGHUP until the reload is in `status`.
    let mut reload_faults = Vec::new();
    let (mut reload_hwm, mut services_hwm) = (0u64, 0u64);
    // The most a reload (services call) took above the RSS it started from.
    let (mut reload_add, mut services_add) = (0u64, 0u64);
    let mut last_services_bytes = 0;
    println!(
        "  after  VmRSS_MiB  reload_peak_MiB  services_peak_MiB  reload_duration_ms_p50  services_ms_p50  (each over the last 10)"
    );
    for k in 1..=o.reload_soak {
        write_cluster(
            dir.path(),
            o.big_vs,
            o.per_vs,
            Some((rs, 2 + (k % 50) as u32)),
            false,
            interval,
        );
        d.reset_hwm();
        let rss_before = d.mem().0;
        let faults_before = d.minflt();
        d.signal(libc::SIGHUP);
        let want = gen0 + k as u64;
        let mut status = Value::Null;
        let seen = wait_until(Duration::from_secs(60), Duration::from_millis(5), || {
            status = d.ctl_json(&["status"]);
            status["config_generation"].as_u64() >= Some(want)
        });
        assert!(seen, "reload {k}: generation {want} never came");
        reload_faults.push(d.minflt().saturating_sub(faults_before) as f64);
        if let Some(c) = client.as_deref_mut() {
            let weight = 2 + (k % 50) as u32;
            let applied = wait_until(Duration::from_secs(60), Duration::from_millis(1), || {
                kernel_weight(c, &vs_key(vs), real_addr(rs)) == Some(weight)
            });
            assert!(
                applied,
                "reload {k}: the kernel never showed weight {weight}"
            );
        }
        // The director applies it after the reply; give it a moment before the peak.
        std::thread::sleep(Duration::from_millis(100));
        let hwm = d.mem().1;
        reload_hwm = reload_hwm.max(hwm);
        reload_add = reload_add.max(hwm.saturating_sub(rss_before));
        reload_ms.push(
            status["reloads"]
                .as_array()
                .and_then(|r| r.last())
                .and_then(|r| r["duration_ms"].as_f64())
                .unwrap_or(f64::NAN),
        );
        d.reset_hwm();
        let rss_before = d.mem().0;
        let t = Instant::now();
        let out = d.ctl(&["--json", "services"]);
        services_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        last_services_bytes = out.stdout.len();
        let hwm = d.mem().1;
        services_hwm = services_hwm.max(hwm);
        services_add = services_add.max(hwm.saturating_sub(rss_before));
        if k % 10 == 0 || k == o.reload_soak {
            let from = k.saturating_sub(10);
            let mut r = reload_ms[from..].to_vec();
            let mut s = services_ms[from..].to_vec();
            r.sort_by(f64::total_cmp);
            s.sort_by(f64::total_cmp);
            println!(
                "  {k:5}  {:9.1}  {:15.1}  {:17.1}  {:22.1}  {:15.0}",
                mib(d.mem().0),
                mib(reload_hwm),
                mib(services_hwm),
                pct(&r, 50.0),
                pct(&s, 50.0)
            );
        }
    }
    std::thread::sleep(Duration::from_secs(10));
    let (rss1, _) = d.mem();
    let cpu_after = cpu_per_1000(d.cpu_over(Duration::from_secs(o.cpu_secs)));
    let (rss2, _) = d.mem();
    for v in [&mut reload_ms, &mut services_ms, &mut reload_faults] {
        v.sort_by(f64::total_cmp);
    }
    println!(
        "{tag}: {} reloads + {} services calls: VmRSS start {:.1} MiB -> {:.1} MiB 10 s after the last ({:.1} MiB after the second CPU window); peak VmHWM during a reload {:.1} MiB ({:.2}x start), during services {:.1} MiB ({:.2}x); the most one added above the RSS it started from: reload {:.1} MiB, services {:.1} MiB",
        o.reload_soak,
        o.reload_soak,
        mib(rss0),
        mib(rss1),
        mib(rss2),
        mib(reload_hwm),
        reload_hwm as f64 / rss0 as f64,
        mib(services_hwm),
        services_hwm as f64 / rss0 as f64,
        mib(reload_add),
        mib(services_add),
    );
    println!(
        "{tag}: reload duration_ms p50 {:.1} max {:.1} (vigild's minor page faults per reload p50 {:.0}); services --json p50 {:.0} ms max {:.0} ms ({} KiB reply); CPU per 1,000 checks before {cpu_before:.1} ms, after {cpu_after:.1} ms",
        pct(&reload_ms, 50.0),
        pct(&reload_ms, 100.0),
        pct(&reload_faults, 50.0),
        pct(&services_ms, 50.0),
        pct(&services_ms, 100.0),
        last_services_bytes / 1024,
    );
    d.stop();
    vec![
        ("VmRSS at start, MiB", mib(rss0)),
        ("VmRSS 10 s after the last, MiB", mib(rss1)),
        ("peak in a reload, x start", reload_hwm as f64 / rss0 as f64),
        ("peak in a reload above its start, MiB", mib(reload_add)),
        ("peak in services, MiB", mib(services_hwm)),
        ("reload duration_ms p50", pct(&reload_ms, 50.0)),
        ("reload minor page faults p50", pct(&reload_faults, 50.0)),
        ("services --json p50, ms", pct(&services_ms, 50.0)),
        ("CPU per 1,000 checks before, ms", cpu_before),
        ("CPU per 1,000 checks after, ms", cpu_after),
    ]
}

fn idle(o: &Opts, client: &mut Client) -> Figs {
    let dir = tempfile::tempdir().unwrap();
    let n = o.idle_vs * o.per_vs;
    let mut servers = Servers::new();
    for i in 0..n {
        servers.start(real_addr(i));
    }
    servers.start(TOGGLED);
    servers.start(TOGGLE_PEER);
    let path = write_cluster(dir.path(), o.idle_vs, o.per_vs, None, true, "1s");
    let d = Daemon::start(dir.path(), &path);
    let t = Instant::now();
    let all_in = wait_until(Duration::from_secs(300), Duration::from_millis(200), || {
        kernel_dests(client, 201) == n && kernel_dests(client, 202) == 2
    });
    println!(
        "idle: {n} real servers (+2 toggle) in the kernel after {:.1} s: {all_in}",
        t.elapsed().as_secs_f64()
    );
    if !all_in {
        return Vec::new();
    }
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_ms, wall) = d.cpu_over(Duration::from_secs(o.cpu_secs));
    // The toggle server's two checks run every 100 ms: 20 checks/s on top of n.
    let checks = (n as f64 + 20.0) * wall;
    let (rss, hwm) = d.mem();
    println!(
        "idle: vigild CPU {:.2} % of one vCPU ({cpu_ms:.0} ms over {wall:.1} s) = {:.1} ms per 1,000 checks ({checks:.0} checks expected); VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        cpu_ms / wall / 10.0,
        cpu_ms / checks * 1000.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );

    // Health change -> kernel: close the listener (connect refused), then reopen it.
    let key = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: TOGGLE_VIP,
    };
    let present = |c: &mut Client| kernel_weight(c, &key, TOGGLED).is_some();
    let mut events = Vec::new(); // (down?, event unix, seen unix)
    for _ in 0..o.toggles {
        for down in [true, false] {
            let at = unix(SystemTime::now());
            if down {
                servers.stop(TOGGLED);
            } else {
                servers.start(TOGGLED);
            }
            let ok = wait_until(Duration::from_secs(30), Duration::from_millis(1), || {
                present(client) != down
            });
            let seen = unix(SystemTime::now());
            assert!(ok, "toggle: the kernel did not follow (down = {down})");
            events.push((down, at, seen));
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let logs = d.logs();
    let target = TOGGLED.to_string();
    let mut raw = Vec::new();
    let mut detect = Vec::new();
    let mut net = Vec::new();
    let mut daemon = Vec::new();
    for (down, at, seen) in &events {
        raw.push((seen - at) * 1e3);
        let word = if *down {
            "real server down"
        } else {
            "real server up"
        };
        let Some(h) = logs.iter().find(|l| {
            l["real_server"].as_str() == Some(target.as_str())
                && msg(l).starts_with(word)
                && ts(l) >= *at - 0.002
                && ts(l) <= *seen + 0.002
        }) else {
            println!("toggle: no health log line for the event at {at:.3}");
            continue;
        };
        let th = ts(h);
        detect.push((th - at) * 1e3);
        net.push((seen - th) * 1e3);
        if let Some(a) = logs
            .iter()
            .find(|l| msg(l).starts_with("IPVS: applied") && ts(l) >= th)
        {
            daemon.push((ts(a) - th) * 1e3);
        }
    }
    for v in [&mut raw, &mut detect, &mut net, &mut daemon] {
        v.sort_by(f64::total_cmp);
    }
    let show = |name: &str, v: &[f64]| {
        println!(
            "toggle: {name}: n {} p50 {:.2} p99 {:.2} max {:.2} ms",
            v.len(),
            pct(v, 50.0),
            pct(v, 99.0),
            pct(v, 100.0)
        );
    };
    println!(
        "toggle: {} down + {} up transitions of {TOGGLED} (check every 100ms, timeout 50ms, rise 1, fall 1), kernel polled by netlink every 1 ms:",
        o.toggles, o.toggles
    );
    show(
        "raw, listener closed/opened -> kernel shows it (includes waiting for the next check)",
        &raw,
    );
    show(
        "listener closed/opened -> health change logged (the check's wait and probe)",
        &detect,
    );
    show("health change logged -> kernel shows it (net)", &net);
    show(
        "health change logged -> \"IPVS: applied\" logged (daemon only)",
        &daemon,
    );
    d.stop();
    vec![
        ("CPU per 1,000 checks, ms", cpu_ms / checks * 1000.0),
        ("VmRSS, MiB", mib(rss)),
        ("toggle raw p50, ms", pct(&raw, 50.0)),
        ("toggle detect p50, ms", pct(&detect, 50.0)),
        ("toggle health change -> kernel p50, ms", pct(&net, 50.0)),
        ("toggle health change -> kernel p99, ms", pct(&net, 99.0)),
        (
            "toggle health change -> applied p50, ms",
            pct(&daemon, 50.0),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// The daemon

struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    /// The vigilctl that speaks this daemon's status protocol.
    vigilctl: PathBuf,
}

impl Daemon {
    fn start(dir: &Path, config: &Path) -> Daemon {
        let log = dir.join("vigild.log");
        let v = variant();
        let child = Command::new(&v.vigild)
            .envs(v.env.iter().map(|(k, v)| (k, v)))
            .args(["--log-format", "json", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let d = Daemon {
            child,
            socket: dir.join("vigil.sock"),
            log,
            vigilctl: v.vigilctl.clone(),
        };
        let up = wait_until(Duration::from_secs(60), Duration::from_millis(50), || {
            d.ctl(&["status"]).status.success()
        });
        assert!(
            up,
            "vigild did not come up: {}",
            std::fs::read_to_string(&d.log).unwrap_or_default()
        );
        d
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.vigilctl)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    fn ctl_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ctl(&a);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn up_count(&self) -> usize {
        let s = self.ctl_json(&["services"]);
        s["virtual_servers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|vs| vs["real_servers"].as_array().unwrap())
            .filter(|r| r["health"] == "up")
            .count()
    }

    /// Real servers that went up, counted from the log.
    fn logged_up(&self) -> usize {
        self.logs()
            .iter()
            .filter(|l| msg(l).starts_with("real server up"))
            .count()
    }

    fn wait_up(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, Duration::from_millis(500), || {
            self.logged_up() >= n
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
    }

    /// utime + stime of vigild (all its threads), in ms.
    fn cpu_ms(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // Fields 14 and 15 of stat(5); `rest` starts at field 3.
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        ticks as f64 * 1000.0 / hz
    }

    /// vigild's minor page faults so far (all its threads; field 10 of stat(5)).
    fn minflt(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        rest.split_whitespace().nth(7).unwrap().parse().unwrap()
    }

    /// CPU ms spent over a window of `d`, and the window's real length in s.
    fn cpu_over(&self, d: Duration) -> (f64, f64) {
        let (c0, t0) = (self.cpu_ms(), Instant::now());
        std::thread::sleep(d);
        (self.cpu_ms() - c0, t0.elapsed().as_secs_f64())
    }

    /// (VmRSS, VmHWM) in KiB.
    fn mem(&self) -> (u64, u64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let get = |k: &str| {
            s.lines()
                .find(|l| l.starts_with(k))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        (get("VmRSS:"), get("VmHWM:"))
    }

    /// Resets VmHWM to the current RSS (proc(5), `clear_refs` 5), so the next read is
    /// the peak since now.
    fn reset_hwm(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }

    /// The last `n` lines vigild logged, for a run that did not settle: an old daemon
    /// in an A/B once waited out the whole timeout with nothing to say why.
    fn print_log_tail(&self, tag: &str, n: usize) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        println!("{tag}: vigild's last {n} log lines:");
        for l in &lines[lines.len().saturating_sub(n)..] {
            println!("  {l}");
        }
    }

    fn logs(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn stop(mut self) {
        self.signal(libc::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// Real servers: one accept loop per loopback listener; connections are dropped at once.

struct Servers {
    rt: tokio::runtime::Runtime,
    tasks: HashMap<SocketAddr, tokio::task::JoinHandle<()>>,
}

impl Servers {
    fn new() -> Servers {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_io()
            .build()
            .unwrap();
        Servers {
            rt,
            tasks: HashMap::new(),
        }
    }

    fn start(&mut self, addr: SocketAddr) {
        let l = std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).unwrap();
        let task = self.rt.spawn(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            loop {
                if let Ok((s, _)) = l.accept().await {
                    drop(s);
                }
            }
        });
        self.tasks.insert(addr, task);
    }

    /// Closes the listener: when this returns, connects are refused.
    fn stop(&mut self, addr: SocketAddr) {
        let task = self.tasks.remove(&addr).unwrap();
        task.abort();
        let _ = self.rt.block_on(task);
    }
}

// ---------------------------------------------------------------------------------------
// The cluster file and the kernel

fn real_addr(i: usize) -> SocketAddr {
    SocketAddr::from(([127, 61, (i / 250) as u8, (i % 250 + 1) as u8], PORT))
}

fn vs_addr(j: usize) -> SocketAddr {
    SocketAddr::from(([10, 201, (j / 250) as u8, (j % 250 + 1) as u8], 80))
}

fn vs_key(j: usize) -> ServiceKey {
    ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: vs_addr(j),
    }
}

/// `vs` virtual servers x `per` real servers, tcp checks every `interval`; `weight`
/// overrides one real server's weight; `toggle` adds the "toggle" virtual server.
fn write_cluster(
    dir: &Path,
    vs: usize,
    per: usize,
    weight: Option<(usize, u32)>,
    toggle: bool,
    interval: &str,
) -> PathBuf {
    use std::fmt::Write;
    let mut s = format!(
        "[director]\nname = \"bench\"\nstatus_socket = \"{}\"\nstate_file = \"{}\"\n",
        dir.join("vigil.sock").display(),
        dir.join("state.json").display()
    );
    for j in 0..vs {
        write!(
            s,
            "\n[[virtual_server]]\nname = \"vs{j}\"\naddress = \"{}\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n\
             check = {{ kind = \"tcp\", interval = \"{interval}\", timeout = \"500ms\", rise = 1, fall = 3 }}\nreal_server = [\n",
            vs_addr(j)
        )
        .unwrap();
        for r in 0..per {
            let i = j * per + r;
            match weight {
                Some((w_i, w)) if w_i == i => {
                    writeln!(s, "  {{ address = \"{}\", weight = {w} }},", real_addr(i)).unwrap()
                }
                _ => writeln!(s, "  {{ address = \"{}\" }},", real_addr(i)).unwrap(),
            }
        }
        s.push_str("]\n");
    }
    if toggle {
        write!(
            s,
            "\n[[virtual_server]]\nname = \"toggle\"\naddress = \"{TOGGLE_VIP}\"\nscheduler = \"wrr\"\nforwarding = \"nat\"\n\
             check = {{ kind = \"tcp\", interval = \"100ms\", timeout = \"50ms\", rise = 1, fall = 1 }}\n\
             real_server = [{{ address = \"{TOGGLED}\" }}, {{ address = \"{TOGGLE_PEER}\" }}]\n"
        )
        .unwrap();
    }
    let path = dir.join("cluster.toml");
    // Write then rename: a reload never reads half a file.
    let tmp = dir.join("cluster.toml.new");
    std::fs::write(&tmp, s).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// Destinations in the kernel under services 10.`second`.x.y.
fn kernel_dests(client: &mut Client, second: u8) -> usize {
    let Ok(table) = vigil_ipvs::reconcile::dump(client) else {
        return 0;
    };
    table
        .iter()
        .filter(|(k, _)| {
            matches!(k, ServiceKey::Addr { addr: SocketAddr::V4(a), .. } if a.ip().octets()[..2] == [10, second])
        })
        .map(|(_, s)| s.destinations.len())
        .sum()
}

fn kernel_weight(client: &mut Client, key: &ServiceKey, real: SocketAddr) -> Option<u32> {
    client
        .destinations(key)
        .ok()?
        .into_iter()
        .find(|d| d.destination.addr == real)
        .map(|d| d.destination.weight)
}

// ---------------------------------------------------------------------------------------
// Small helpers

fn wait_until(timeout: Duration, every: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn msg(l: &Value) -> &str {
    l["message"].as_str().unwrap_or("")
}

/// A log line's RFC 3339 timestamp (`2026-11-25T14:55:00.123456Z`) in Unix seconds.
fn ts(l: &Value) -> f64 {
    let s = l["timestamp"].as_str().unwrap_or("");
    let (date, time) = s.split_once('T').unwrap_or(("1970-01-01", "00:00:00Z"));
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap_or(0)).collect();
    let time = time.trim_end_matches('Z');
    let t: Vec<f64> = time.split(':').map(|x| x.parse().unwrap_or(0.0)).collect();
    let days = days_from_civil(d[0], d[1], d[2]);
    days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn raise_nofile() {
    let want = 65_536;
    let lim = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: setrlimit reads a valid rlimit; failure leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into a valid rlimit.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur);
            cur.rlim_cur = cur.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &cur);
        }
    }
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// "1s", "30s", "100ms" in seconds.
fn parse_secs(d: &str) -> f64 {
    if let Some(ms) = d.strip_suffix("ms") {
        ms.parse::<f64>().unwrap() / 1000.0
    } else {
        d.trim_end_matches('s').parse().unwrap()
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn own_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
