//! A rolling migration of a live keepalived pair to vigil in a netns lab, the procedure
//! of docs/migrating-from-keepalived.md ("Replacing a running pair"), for VRRPv2 at 1 s
//! and VRRPv3 at 100 ms, multicast and unicast.
//!
//! keepalived on lb1 (priority 150, master) and lb2 (100) serve a VIP. Step 1: lb2's
//! keepalived.conf goes through `vigild import-keepalived`, keepalived stops there and
//! vigild starts on the imported file: it must come up as backup and stay backup. Step 2,
//! the master: lb2's priority is raised above lb1's (`vigilctl reload`), so vigil
//! preempts keepalived and the VIP moves once, the new holder first; keepalived on lb1,
//! now backup, is replaced by vigild on its imported file the same way; `vigilctl vrrp
//! handover` moves the VIP back to lb1 make-before-break, and lb2 goes back to its
//! imported file (`reload`, `reclaim`).
//!
//! Throughout, a client probes the VIP over TCP every 10 ms (a server on both directors
//! answers with its name) and the VIP's presence on both directors is sampled every 10 ms.
//! The figures per step (failed probes, longest gap between answers, samples with two
//! holders or none) are printed, not asserted. Asserted: the VIP is on exactly one
//! director at every sample, except while it moves: then the new holder has it before the
//! old one lets go (make-before-break, never a sample with none), and it moves only where
//! the procedure moves it, never back and forth; it ends on lb1, now a vigild, and is
//! served there.
//!
//! Figures: `cargo test -p vigil-tests --test vrrp_migrate -- --nocapture --test-threads=1`.

// Helpers outside #[test] functions unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

#[path = "vrrp_support.rs"]
mod vrrp_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil_testlab::{LabChild, NetnsLab, bin_path, require_root_or_skip, wait_for};
use vrrp_support::*;

/// keepalived's instance name, which the importer keeps.
const INSTANCE: &str = "VI_1";
/// The port of the name server on both directors.
const PORT: u16 = 8080;
/// The probe and sample cadence.
const TICK: Duration = Duration::from_millis(10);
/// A probe's connect and read each give up after this: longer than the scheduling
/// stalls of a loaded 2-core host (up to ~130 ms seen), shorter than TCP's first SYN
/// retransmission (1 s), so a SYN or answer lost in a real outage fails the probe.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// Where the VIP was at one instant: on lb1, on lb2.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Instant,
    on: [bool; 2],
}

/// One TCP probe of VIP:PORT: when it started and ended, and who answered (or how it
/// failed).
#[derive(Clone, Debug)]
struct Probe {
    start: Instant,
    end: Instant,
    answer: Result<String, String>,
}

impl Probe {
    fn answer(&self) -> Option<&str> {
        self.answer.as_deref().ok()
    }
}

/// The samples and probes taken while the procedure runs, and its steps' starts.
#[derive(Default)]
struct Record {
    samples: Mutex<Vec<Sample>>,
    probes: Mutex<Vec<Probe>>,
    marks: Mutex<Vec<(Instant, String)>>,
    stop: AtomicBool,
}

impl Record {
    fn mark(&self, step: &str) {
        println!("  {step}");
        self.marks
            .lock()
            .unwrap()
            .push((Instant::now(), step.to_string()));
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// Stops the monitor's threads when dropped, also when the procedure panics (the scope
/// that runs them waits for them before passing the panic on).
struct StopOnDrop<'a> {
    record: &'a Record,
    listeners: Vec<RawFd>,
}

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.record.stop.store(true, Ordering::Relaxed);
        for fd in &self.listeners {
            // SAFETY: shutdown(2) of a listening socket the test owns, still open; it
            // wakes the thread blocked in accept(2).
            unsafe { libc::shutdown(*fd, libc::SHUT_RDWR) };
        }
    }
}

/// Whether the namespace of `pid` has `vip` as a local address: its `fib_trie` lists it
/// as `host LOCAL` (read without starting a process, so at the sample cadence).
fn holds(pid: u32, vip: &str) -> bool {
    let Ok(trie) = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")) else {
        return false;
    };
    let lines: Vec<&str> = trie.lines().collect();
    lines.iter().enumerate().any(|(i, line)| {
        line.trim_end().ends_with(&format!("-- {vip}"))
            && lines[i + 1..]
                .iter()
                .take_while(|l| !l.contains("--"))
                .any(|l| l.contains("host LOCAL"))
    })
}

/// Whether process `pid` is in the network namespace bound at `path`.
fn in_netns(pid: u32, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    let own = id(Path::new(&format!("/proc/{pid}/ns/net")));
    own.is_some() && own == id(path)
}

fn sampler(record: &Record, anchors: [u32; 2], vip: &str) {
    let mut next = Instant::now();
    while !record.stopped() {
        let on = [holds(anchors[0], vip), holds(anchors[1], vip)];
        record.samples.lock().unwrap().push(Sample {
            at: Instant::now(),
            on,
        });
        next = pace(next);
    }
}

/// Sleeps until `next` + TICK (or not at all when late) and returns that instant.
fn pace(next: Instant) -> Instant {
    let next = next + TICK;
    let now = Instant::now();
    if next > now {
        std::thread::sleep(next - now);
        next
    } else {
        now
    }
}

/// Connects to `addr` and reads the answering director's name; or what went wrong.
fn probe(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)
        .map_err(|e| format!("connect: {}", e.kind()))?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("read: {}", e.kind()))?;
    answer
        .split_whitespace()
        .next()
        .map(str::to_string)
        .ok_or_else(|| "read: no answer".to_string())
}

/// A probe starts every TICK on a thread of its own (threads inherit the client's
/// namespace), so a slow one never delays the next: the cadence holds through an outage
/// and a stalled scheduler alike.
fn prober(record: &Record, addr: SocketAddr) {
    std::thread::scope(|scope| {
        let mut next = Instant::now();
        while !record.stopped() {
            scope.spawn(move || {
                let start = Instant::now();
                let answer = probe(addr);
                record.probes.lock().unwrap().push(Probe {
                    start,
                    end: Instant::now(),
                    answer,
                });
            });
            next = pace(next);
        }
    });
}

/// Answers every connection with `name` until the listener is shut down.
fn serve(record: &Record, listener: &TcpListener, name: &str) {
    while !record.stopped() {
        if let Ok((mut c, _)) = listener.accept() {
            let _ = c.write_all(format!("{name}\n").as_bytes());
        }
    }
}

/// The cluster file with `priority` set in `[vrrp.INSTANCE]` (the importer leaves out
/// vigil's default, 100).
fn with_priority(toml: &str, priority: u8) -> String {
    let header = format!("[vrrp.{INSTANCE}]");
    let set = format!("priority = {priority}");
    let mut lines: Vec<String> = toml.lines().map(str::to_string).collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == header)
        .unwrap_or_else(|| panic!("no {header} in:\n{toml}"));
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with('['))
        .map_or(lines.len(), |i| start + 1 + i);
    match lines[start + 1..end]
        .iter()
        .position(|l| l.starts_with("priority = "))
    {
        Some(i) => lines[start + 1 + i] = set,
        None => lines.insert(start + 1, set),
    }
    lines.join("\n") + "\n"
}

fn vigilctl(v: &Vigild, args: &[&str]) {
    let out = Command::new(bin_path("vigilctl"))
        .arg("--socket")
        .arg(&v.socket)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vigilctl {args:?} on {}: {}{}",
        v.host,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// vigild comes up as backup under `master` and stays backup for a while, hearing every
/// advert (no drops).
fn expect_steady_backup(v: &Vigild, master: &str, s: Setup) {
    v.expect_state(INSTANCE, "backup", SLOW);
    assert!(
        wait_for(SLOW, || v.instance(INSTANCE).unwrap()["master"] == master),
        "{}: master is not {master}: {}",
        v.host,
        v.instance(INSTANCE).unwrap()
    );
    let heard = v.instance(INSTANCE).unwrap()["adverts_received"]
        .as_u64()
        .unwrap();
    std::thread::sleep(steady(s));
    let live = v.instance(INSTANCE).unwrap();
    assert_eq!(live["state"], "backup", "{live}\n{}", v.log_text());
    assert!(live["adverts_received"].as_u64() > Some(heard), "{live}");
    assert_eq!(live["drops"], serde_json::json!({}), "{live}");
}

/// Five adverts, at least 1 s: how long a step's end is watched.
fn steady(s: Setup) -> Duration {
    Duration::from_secs_f64((s.advert_secs() * 5.0).max(1.0))
}

const NAMES: [&str; 2] = ["lb1", "lb2"];

fn holder_label(on: [bool; 2]) -> &'static str {
    match on {
        [true, false] => "lb1",
        [false, true] => "lb2",
        [true, true] => "lb1+lb2",
        [false, false] => "none",
    }
}

/// Consecutive equal labels merged: `lb1 > lb1+lb2 > lb2`.
fn runs<'a>(labels: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for l in labels {
        if out.last() != Some(&l) {
            out.push(l);
        }
    }
    out
}

/// Whether the holder runs are the moves of `path` (director indexes), each made alone or
/// make-before-break (both for a moment, then the new one): the exactly-one-holder
/// invariant.
fn moves_cleanly(holders: &[&str], path: &[usize]) -> bool {
    let mut allowed = vec![vec![NAMES[path[0]].to_string()]];
    for w in path.windows(2) {
        let to = NAMES[w[1]].to_string();
        allowed = allowed
            .into_iter()
            .flat_map(|a| {
                let mut direct = a.clone();
                direct.push(to.clone());
                let mut overlap = a;
                overlap.push("lb1+lb2".into());
                overlap.push(to.clone());
                [direct, overlap]
            })
            .collect();
    }
    allowed.iter().any(|a| a == holders)
}

/// One step's figures.
struct Figures {
    step: String,
    secs: f64,
    probes: usize,
    /// How each failed probe failed, and when in the step.
    failed: Vec<String>,
    longest_gap: Duration,
    samples: usize,
    both: usize,
    none: usize,
    holders: String,
    answered: String,
}

fn figures(record: &Record, end: Instant) -> Vec<Figures> {
    let marks = record.marks.lock().unwrap().clone();
    let samples = record.samples.lock().unwrap().clone();
    let mut probes = record.probes.lock().unwrap().clone();
    probes.sort_by_key(|p| p.start);
    let mut answered_at: Vec<Instant> = probes
        .iter()
        .filter(|p| p.answer.is_ok())
        .map(|p| p.end)
        .collect();
    answered_at.sort();
    let mut out = Vec::new();
    for (i, (start, step)) in marks.iter().enumerate() {
        let stop = marks.get(i + 1).map_or(end, |m| m.0);
        let in_step = |t: Instant| t >= *start && t < stop;
        let ps: Vec<&Probe> = probes.iter().filter(|p| in_step(p.start)).collect();
        let ss: Vec<&Sample> = samples.iter().filter(|s| in_step(s.at)).collect();
        // The longest time without an answer that overlaps the step.
        let longest_gap = answered_at
            .windows(2)
            .filter(|w| w[1] >= *start && w[0] < stop)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(stop - *start);
        out.push(Figures {
            step: step.clone(),
            secs: (stop - *start).as_secs_f64(),
            probes: ps.len(),
            failed: ps
                .iter()
                .filter_map(|p| {
                    let e = p.answer.as_ref().err()?;
                    Some(format!("{e} at +{:.2} s", (p.start - *start).as_secs_f64()))
                })
                .collect(),
            longest_gap,
            samples: ss.len(),
            both: ss.iter().filter(|s| s.on == [true, true]).count(),
            none: ss.iter().filter(|s| s.on == [false, false]).count(),
            holders: runs(ss.iter().map(|s| holder_label(s.on))).join(" > "),
            answered: runs(ps.iter().map(|p| p.answer().unwrap_or("-"))).join(" > "),
        });
    }
    out
}

fn print_figures(title: &str, figures: &[Figures]) {
    println!("\nfigures, {title}:");
    println!(
        "| step | s | probes | failed | longest gap ms | samples | both | none | VIP on | answered by |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for f in figures {
        println!(
            "| {} | {:.1} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            f.step,
            f.secs,
            f.probes,
            f.failed.len(),
            f.longest_gap.as_secs_f64() * 1000.0,
            f.samples,
            f.both,
            f.none,
            f.holders,
            f.answered
        );
    }
    for f in figures.iter().filter(|f| !f.failed.is_empty()) {
        println!("  failed in {}: {}", f.step, f.failed.join("; "));
    }
}

fn migrate(s: Setup, title: &str) {
    require_root_or_skip!();
    if !require_keepalived() {
        return;
    }
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let vip = s.vip(&lab);
    s.prepare(&lab);

    // The keepalived pair as it runs today: lb1 master.
    let mut ka1 = Keepalived::start(
        &lab,
        dir,
        "lb1",
        &keepalived_conf(s, &lab, "lb1", "lb2", 150, &vip),
    );
    let mut ka2 = Keepalived::start(
        &lab,
        dir,
        "lb2",
        &keepalived_conf(s, &lab, "lb2", "lb1", 100, &vip),
    );
    assert!(
        wait_for(SLOW, || ka1.entered("MASTER") >= 1
            && ka2.entered("BACKUP") >= 1),
        "the keepalived pair did not settle:\n{}\n{}",
        ka1.log_text(),
        ka2.log_text()
    );
    expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);

    // A name server on both directors, and a process in each namespace whose fib_trie
    // the sampler reads.
    let listeners: Vec<TcpListener> = HOSTS
        .iter()
        .map(|h| {
            lab.run_in(h, || TcpListener::bind(("0.0.0.0", PORT)).unwrap())
                .unwrap()
        })
        .collect();
    let anchors: Vec<LabChild> = HOSTS
        .iter()
        .map(|h| lab.spawn(h, ["sleep", "infinity"]).unwrap())
        .collect();
    let anchors = [anchors[0].id(), anchors[1].id()];
    // `ip netns exec` enters the namespace before it execs: until then the PID's
    // fib_trie is the caller's.
    for (pid, host) in anchors.iter().zip(HOSTS) {
        assert!(wait_for(SETTLE, || in_netns(*pid, &lab.netns_path(host))));
    }
    let target = SocketAddr::new(vip.parse().unwrap(), PORT);
    let record = Record::default();
    println!("\nrolling migration, {title}:");

    let end = std::thread::scope(|scope| {
        let _stop = StopOnDrop {
            record: &record,
            listeners: listeners.iter().map(|l| l.as_raw_fd()).collect(),
        };
        for (listener, name) in listeners.iter().zip(NAMES) {
            let record = &record;
            scope.spawn(move || serve(record, listener, name));
        }
        let (rec, in_lab, addr) = (&record, &lab, vip.as_str());
        scope.spawn(move || sampler(rec, anchors, addr));
        scope.spawn(move || in_lab.run_in("client", || prober(rec, target)).unwrap());
        assert!(
            wait_for(SETTLE, || record
                .probes
                .lock()
                .unwrap()
                .last()
                .is_some_and(|p| p.answer() == Some("lb1"))),
            "the client never reached the VIP"
        );
        record.mark("0 keepalived pair, lb1 master");
        std::thread::sleep(steady(s));

        // Step 1: the backup.
        record.mark("1 backup lb2: keepalived -> vigild");
        let lb2_file = import(dir, "lb2", &ka2.conf);
        ka2.stop();
        let mut lb2 = Vigild::start_file(&lab, dir, "lb2", lb2_file.clone());
        expect_steady_backup(&lb2, &lab.ip("lb1").to_string(), s);
        expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);

        // Step 2: the master. First vigil takes mastership from keepalived by preemption:
        // lb2 adds the VIP and announces it before keepalived hears it and lets go.
        record.mark("2a lb2 priority 200: vigil preempts keepalived");
        let imported = std::fs::read_to_string(&lb2_file).unwrap();
        std::fs::write(&lb2_file, with_priority(&imported, 200)).unwrap();
        vigilctl(&lb2, &["reload"]);
        lb2.expect_state(INSTANCE, "master", SLOW);
        expect_addr_only_on(&lab, &vip, "lb2", &HOSTS);
        assert!(
            wait_for(SLOW, || ka1.entered("BACKUP") >= 2),
            "keepalived on lb1 did not step down:\n{}",
            ka1.log_text()
        );

        record.mark("2b master lb1 (now backup): keepalived -> vigild");
        let lb1_file = import(dir, "lb1", &ka1.conf);
        ka1.stop();
        let mut lb1 = Vigild::start_file(&lab, dir, "lb1", lb1_file);
        expect_steady_backup(&lb1, &lab.ip("lb2").to_string(), s);
        expect_addr_only_on(&lab, &vip, "lb2", &HOSTS);

        record.mark("2c handover to lb1; lb2 back to its imported file");
        vigilctl(&lb2, &["vrrp", "handover", INSTANCE]);
        lb1.expect_state(INSTANCE, "master", SLOW);
        expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);
        std::fs::write(&lb2_file, &imported).unwrap();
        vigilctl(&lb2, &["reload"]);
        vigilctl(&lb2, &["vrrp", "reclaim", INSTANCE]);
        let live = lb2.instance(INSTANCE).unwrap();
        assert_eq!(live["state"], "backup", "{live}");
        assert_eq!(live["standing_down"], false, "{live}");
        assert_eq!(live["priority"], 100, "{live}");
        std::thread::sleep(steady(s));
        let end = Instant::now();

        // Both run their imported files; lb1 is master, lb2 backup, as under keepalived.
        for (v, state) in [(&lb1, "master"), (&lb2, "backup")] {
            let live = v.instance(INSTANCE).unwrap();
            assert_eq!(live["state"], state, "{live}\n{}", v.log_text());
            assert_eq!(live["drops"], serde_json::json!({}), "{live}");
        }
        assert!(lb1.stop().success(), "{}", lb1.log_text());
        assert!(lb2.stop().success(), "{}", lb2.log_text());
        end
    });

    let figures = figures(&record, end);
    print_figures(title, &figures);
    let samples = record.samples.lock().unwrap().clone();
    let begin = record.marks.lock().unwrap()[0].0;
    let watched: Vec<&str> = samples
        .iter()
        .filter(|x| x.at >= begin && x.at < end)
        .map(|x| holder_label(x.on))
        .collect();
    let holders = runs(watched.iter().copied());
    assert!(
        moves_cleanly(&holders, &[0, 1, 0]),
        "the VIP was not on exactly one director (make-before-break moves aside): {}",
        holders.join(" > ")
    );
    let mut probes = record.probes.lock().unwrap().clone();
    probes.sort_by_key(|p| p.start);
    let last: Vec<Option<&str>> = probes
        .iter()
        .filter(|p| p.start < end)
        .rev()
        .take(10)
        .map(Probe::answer)
        .collect();
    assert!(
        last.iter().all(|a| *a == Some("lb1")),
        "the VIP is not served by lb1 at the end: {last:?}"
    );
    assert_clean_log(&ka1);
    assert_clean_log(&ka2);
}

#[test]
fn v2_multicast_keepalived_pair_to_vigil() {
    migrate(
        Setup {
            version: 2,
            unicast: false,
            ipv6: false,
        },
        "VRRPv2, advert 1 s, multicast",
    );
}

#[test]
fn v2_unicast_keepalived_pair_to_vigil() {
    migrate(
        Setup {
            version: 2,
            unicast: true,
            ipv6: false,
        },
        "VRRPv2, advert 1 s, unicast",
    );
}

#[test]
fn v3_multicast_keepalived_pair_to_vigil() {
    migrate(
        Setup {
            version: 3,
            unicast: false,
            ipv6: false,
        },
        "VRRPv3, advert 100 ms, multicast",
    );
}

#[test]
fn v3_unicast_keepalived_pair_to_vigil() {
    migrate(
        Setup {
            version: 3,
            unicast: true,
            ipv6: false,
        },
        "VRRPv3, advert 100 ms, unicast",
    );
}

#[test]
fn clean_moves_are_recognised() {
    assert!(moves_cleanly(&["lb1", "lb2", "lb1"], &[0, 1, 0]));
    assert!(moves_cleanly(
        &["lb1", "lb1+lb2", "lb2", "lb1+lb2", "lb1"],
        &[0, 1, 0]
    ));
    assert!(!moves_cleanly(&["lb1", "none", "lb2", "lb1"], &[0, 1, 0]));
    assert!(!moves_cleanly(&["lb1", "lb2"], &[0, 1, 0]));
    assert!(!moves_cleanly(
        &["lb1", "lb2", "lb1", "lb2", "lb1"],
        &[0, 1, 0]
    ));
    assert!(!moves_cleanly(
        &["lb1", "lb1+lb2", "lb1", "lb2", "lb1"],
        &[0, 1, 0]
    ));
}

#[test]
fn priority_is_set_in_the_instance() {
    let toml = "[director]\nname = \"lb2\"\n\n[vrrp.VI_1]\ninterface = \"eth0\"\n\n[vrrp.other]\npriority = 7\n";
    assert_eq!(
        with_priority(toml, 200),
        "[director]\nname = \"lb2\"\n\n[vrrp.VI_1]\npriority = 200\ninterface = \"eth0\"\n\n[vrrp.other]\npriority = 7\n"
    );
    assert_eq!(
        with_priority("[vrrp.VI_1]\nvrid = 1\npriority = 150\n", 200),
        "[vrrp.VI_1]\nvrid = 1\npriority = 200\n"
    );
}
