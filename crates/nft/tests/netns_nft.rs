//! The nftables datapath on this machine's kernel: a netns lab with a director whose
//! `table inet vigil` is written by the crate, three real servers and a client. Real
//! TCP connections from the client to the VIP show where the table sends them.
//!
//! Needs root (skips with "SKIPPED: ..." otherwise) and the `nft` program.

#![allow(clippy::unwrap_used)] // a test: it panics on what it set up itself

use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use vigil_ipvs::reconcile::{DesiredService, DesiredTable};
use vigil_ipvs::{Destination, ForwardMethod, Service, ServiceFlags, ServiceKey};
use vigil_nft::{Applier, Error, Nft, Options};
use vigil_testlab::lb::{LbLab, PORT, REALS, ask, chi_square, connect, try_request};
use vigil_testlab::{LabError, have_tools, require_or_skip, require_root_or_skip};

/// The director, real servers and client of [`LbLab`], with this test's requests.
struct Lab(LbLab);

impl std::ops::Deref for Lab {
    type Target = LbLab;
    fn deref(&self) -> &LbLab {
        &self.0
    }
}

impl Lab {
    fn up(masquerade_return: bool) -> Lab {
        Lab(LbLab::up(!masquerade_return).unwrap())
    }

    fn nft(&self) -> Nft {
        Nft::with_command([
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            self.lab.netns_name("director"),
            "nft".into(),
        ])
    }

    fn applier(&self, masquerade: bool) -> Applier {
        Applier::new(self.nft(), Options { masquerade })
    }

    fn key(&self) -> ServiceKey {
        ServiceKey::tcp(self.vip)
    }

    /// A service on the VIP with these (real server, weight) pairs.
    fn table(&self, scheduler: &str, reals: &[(&str, u32)]) -> DesiredTable {
        let mut d = DesiredService::new(Service::new(self.key(), scheduler));
        for (name, w) in reals {
            d = d.with(Destination::new(self.real(name), ForwardMethod::Masquerade).weight(*w));
        }
        DesiredTable::from([(self.key(), d)])
    }

    /// Gives every host an IPv6 address (`fd00:99::` + its IPv4 host number) and the
    /// director the IPv6 VIP `fd00:99::100`, forwarding on; returns the VIP.
    fn ipv6(&self) -> SocketAddr {
        let six = |host: &str| format!("fd00:99::{}", self.lab.ip(host).octets()[3]);
        for h in ["director", "client", "rs1", "rs2", "rs3"] {
            self.lab
                .run(
                    h,
                    [
                        "ip",
                        "addr",
                        "add",
                        &format!("{}/64", six(h)),
                        "dev",
                        "eth0",
                        "nodad",
                    ],
                )
                .unwrap();
        }
        let d = "director";
        self.lab
            .run(
                d,
                [
                    "ip",
                    "addr",
                    "add",
                    "fd00:99::100/64",
                    "dev",
                    "eth0",
                    "nodad",
                ],
            )
            .unwrap();
        self.lab
            .run(d, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            .unwrap();
        "[fd00:99::100]:80".parse().unwrap()
    }

    /// The IPv6 address of a real server (after [`Lab::ipv6`]).
    fn real6(&self, name: &str) -> SocketAddr {
        let ip = format!("fd00:99::{}", self.lab.ip(name).octets()[3]);
        SocketAddr::new(ip.parse().unwrap(), PORT)
    }

    /// `nft list table inet vigil`, its lines sorted: the content, whatever the order
    /// of objects (a replacement in place lists re-created chains after kept ones).
    fn vigil_lines(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nft_out(&["list", "table", "inet", "vigil"])
            .lines()
            .map(str::to_owned)
            .collect();
        v.sort();
        v
    }

    /// A client thread in the lab's client namespace: a new connection and one request
    /// at a time to the VIP until `stop` (or `max_ok` answered); the answered count and
    /// each failure as text.
    fn requests_until(
        &self,
        stop: &Arc<AtomicBool>,
        max_ok: Option<usize>,
    ) -> JoinHandle<Result<(usize, Vec<String>), LabError>> {
        let (stop, vip) = (stop.clone(), self.vip);
        self.lab
            .spawn_in("client", move || {
                let (mut ok, mut failed) = (0usize, Vec::new());
                while !stop.load(Ordering::Relaxed) && max_ok.is_none_or(|m| ok < m) {
                    match try_request(vip) {
                        Ok((name, _)) if !name.is_empty() => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    }
                }
                (ok, failed)
            })
            .unwrap()
    }

    fn nft_out(&self, args: &[&str]) -> String {
        let mut argv = vec!["nft"];
        argv.extend_from_slice(args);
        self.lab.run("director", argv).unwrap()
    }
}

fn skip_unless_ready() -> bool {
    require_root_or_skip!(false);
    require_or_skip!(have_tools(&["nft", "ip"]), false);
    true
}

#[test]
fn traffic_spreads_by_weight_and_a_removed_real_server_gets_no_new_connections() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    let mut applier = lab.applier(true);
    let report = applier
        .apply(&lab.table("wrr", &[("rs1", 1), ("rs2", 2), ("rs3", 3)]))
        .unwrap();
    assert!(report.written && report.full, "{report:?}");

    let seen = lab.hits(600);
    let counts: Vec<usize> = REALS
        .iter()
        .map(|r| seen.get(*r).copied().unwrap_or(0))
        .collect();
    let chi = chi_square(&counts, &[1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]);
    // 2 degrees of freedom: 20 is p < 0.0001 for a correct 1:2:3 split.
    assert!(
        chi < 20.0,
        "counts {counts:?} for weights 1:2:3, chi-square {chi:.1}"
    );

    // rs2 fails its check: the next apply leaves it out, at once (one service patched:
    // its two rules replaced, rs2's address out of the masquerade set).
    let t = lab.table("wrr", &[("rs1", 1), ("rs3", 3)]);
    let report = applier.apply_service(lab.key(), t.get(&lab.key())).unwrap();
    assert!(report.written && !report.full, "{report:?}");
    assert_eq!((report.services_changed, report.commands), (1, 4));
    // The applier's idea of the table is what the kernel holds: nothing left to write.
    assert!(!applier.apply(&t).unwrap().written);
    let seen = lab.hits(120);
    assert_eq!(seen.get("rs2"), None, "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 120);
}

#[test]
fn a_drained_real_server_keeps_its_open_connection() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    let mut applier = lab.applier(true);
    applier.apply(&lab.table("wrr", &[("rs1", 1)])).unwrap();
    let mut held = lab.open();
    assert_eq!(ask(&mut held), "rs1");

    // rs1 drained (weight 0), rs2 takes new connections.
    applier
        .apply(&lab.table("wrr", &[("rs1", 0), ("rs2", 1)]))
        .unwrap();
    let seen = lab.hits(30);
    assert_eq!(seen.get("rs2"), Some(&30), "{seen:?}");
    // The connection opened before the drain still reaches rs1: its conntrack entry
    // keeps the translation.
    assert_eq!(ask(&mut held), "rs1");

    // Removed outright (a failed check), it still does: only new connections stop.
    applier.apply(&lab.table("wrr", &[("rs2", 1)])).unwrap();
    assert_eq!(ask(&mut held), "rs1");
}

#[test]
fn source_hash_keeps_a_client_on_one_real_server() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    let mut applier = lab.applier(true);
    let reals = [("rs1", 1), ("rs2", 1), ("rs3", 1)];
    applier.apply(&lab.table("sh", &reals)).unwrap();
    let seen = lab.hits(60);
    assert_eq!(seen.len(), 1, "one client, many source ports: {seen:?}");

    // With sh-port the source port is hashed too: the same client spreads.
    let mut t = lab.table("sh", &reals);
    t.get_mut(&lab.key()).unwrap().service.flags = ServiceFlags::SH_PORT;
    let report = applier.apply(&t).unwrap();
    assert!(report.written);
    let seen = lab.hits(90);
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn a_restart_with_the_same_table_writes_nothing_and_other_tables_are_untouched() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    // Someone else's table in the same namespace.
    lab.lab
        .run(
            "director",
            [
                "nft",
                "add table ip other; add set ip other keep { type ipv4_addr; elements = { 192.0.2.7 } }; add chain ip other c { type filter hook input priority 10; policy accept; }; add rule ip other c ip saddr @keep accept",
            ],
        )
        .unwrap();
    let other_before = lab.nft_out(&["-j", "list", "table", "ip", "other"]);

    let table = lab.table("wrr", &[("rs1", 1), ("rs2", 2)]);
    let mut first = lab.applier(false);
    assert!(first.apply(&table).unwrap().written);
    let listed = lab.vigil_lines();

    // A new applier (a restarted daemon) reads the table back: nothing to write.
    let mut second = lab.applier(false);
    let report = second.apply(&table).unwrap();
    assert!(!report.written, "{report:?}");
    assert_eq!(lab.vigil_lines(), listed);

    // Drift (an operator's edit inside the owned table) is repaired on read-back.
    lab.nft_out(&[
        "flush",
        "chain",
        "inet",
        "vigil",
        &vigil_nft::render::chain_name(&lab.key()),
    ]);
    let mut third = lab.applier(false);
    let report = third.apply(&table).unwrap();
    assert!(
        report.written && !report.full && report.services_changed == 1,
        "{report:?}"
    );
    assert_eq!(lab.vigil_lines(), listed);

    // A stray chain makes it replace the whole table, still in one transaction.
    lab.nft_out(&["add", "chain", "inet", "vigil", "stray"]);
    let mut fourth = lab.applier(false);
    assert!(fourth.apply(&table).unwrap().full);
    assert_eq!(lab.vigil_lines(), listed);
    second.remove().unwrap();

    assert_eq!(
        lab.nft_out(&["-j", "list", "table", "ip", "other"]),
        other_before
    );
}

#[test]
fn the_routed_return_path_shows_real_servers_the_client_address() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(false);
    let mut applier = lab.applier(false);
    applier.apply(&lab.table("wrr", &[("rs1", 1)])).unwrap();
    let client = lab.lab.ip("client");
    let vip = lab.vip;
    let line = lab
        .lab
        .run_in("client", move || {
            let mut c = connect(vip);
            c.get_mut().write_all(b"?\n").unwrap();
            let mut line = String::new();
            c.read_line(&mut line).unwrap();
            line
        })
        .unwrap();
    assert_eq!(line.trim(), format!("rs1 {client}"));
    let _: Ipv4Addr = client;
}

#[test]
fn a_refused_transaction_names_the_command_and_changes_nothing() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    let mut applier = lab.applier(true);
    let good = lab.table("wrr", &[("rs1", 1)]);
    applier.apply(&good).unwrap();
    // nft refuses no command of a valid model against the table the applier wrote, so
    // empty the table behind the applier's back: it still believes its last write.
    lab.nft_out(&["delete", "table", "inet", "vigil"]);
    lab.nft_out(&["add", "table", "inet", "vigil"]);
    let k6 = ServiceKey::tcp("[2001:db8::1]:80".parse().unwrap());
    let mut t = good.clone();
    t.insert(
        k6,
        DesiredService::new(Service::new(k6, "wrr")).with(Destination::new(
            "[2001:db8::2]:80".parse().unwrap(),
            ForwardMethod::Masquerade,
        )),
    );
    let err = applier.apply(&t).unwrap_err();
    eprintln!("refused as expected: {err}");
    let Error::Nft { object, .. } = &err else {
        panic!("{err}")
    };
    let object = object.as_deref().unwrap_or("");
    assert!(object.contains("services6"), "{err}");
    // Nothing of the refused transaction was applied (its chain came before the
    // element that failed).
    let now = lab.nft_out(&["list", "table", "inet", "vigil"]);
    assert!(!now.contains("chain"), "{now}");
    // The failure made it read back: the next apply repairs the table in full.
    let report = applier.apply(&t).unwrap();
    assert!(report.full, "{report:?}");
    assert_eq!(lab.hits(5).get("rs1"), Some(&5));
}

#[test]
fn ipv6_traffic_spreads_by_weight_and_source_hash_holds() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    let vip = lab.ipv6();
    let key = ServiceKey::tcp(vip);
    let svc = |scheduler: &str| {
        let mut d = DesiredService::new(Service::new(key, scheduler));
        for (name, w) in [("rs1", 1), ("rs2", 3)] {
            d = d.with(Destination::new(lab.real6(name), ForwardMethod::Masquerade).weight(w));
        }
        DesiredTable::from([(key, d)])
    };
    let mut applier = lab.applier(true);
    applier.apply(&svc("wrr")).unwrap();
    let seen = lab.hits_to(vip, 400);
    let counts = [
        seen.get("rs1").copied().unwrap_or(0),
        seen.get("rs2").copied().unwrap_or(0),
    ];
    let chi = chi_square(&counts, &[0.25, 0.75]);
    // 1 degree of freedom: 20 is p < 0.00001 for a correct 1:3 split.
    assert!(
        chi < 20.0,
        "counts {counts:?} for weights 1:3, chi-square {chi:.1}"
    );
    assert_eq!(counts.iter().sum::<usize>(), 400, "{seen:?}");

    applier.apply(&svc("sh")).unwrap();
    let seen = lab.hits_to(vip, 40);
    assert_eq!(seen.len(), 1, "{seen:?}");
    // Nothing to write for the same table read back by a new applier.
    assert!(!lab.applier(true).apply(&svc("sh")).unwrap().written);
}

#[test]
fn a_fwmark_service_takes_packets_another_table_marked() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    let vip = SocketAddr::new(lab.vip.ip(), PORT);
    // The operator's own table marks the traffic (mangle runs before vigil's dstnat).
    let rule = format!(
        "add table ip marker; add chain ip marker pre {{ type filter hook prerouting priority mangle; policy accept; }}; add rule ip marker pre ip daddr {} tcp dport {PORT} meta mark set 7",
        vip.ip()
    );
    lab.lab.run("director", ["nft", &rule]).unwrap();
    let key = ServiceKey::fwmark(vigil_ipvs::Family::Inet, 7);
    let mut d = DesiredService::new(Service::new(key, "rr"));
    for name in ["rs1", "rs2"] {
        // Port 0: the packet keeps its destination port.
        let addr = SocketAddr::new(lab.real(name).ip(), 0);
        d = d.with(Destination::new(addr, ForwardMethod::Masquerade).weight(5));
    }
    lab.applier(true)
        .apply(&DesiredTable::from([(key, d)]))
        .unwrap();
    let seen = lab.hits_to(vip, 60);
    assert_eq!(seen.keys().collect::<Vec<_>>(), ["rs1", "rs2"], "{seen:?}");
}

#[test]
fn connections_never_fail_while_the_table_is_patched_and_replaced() {
    if !skip_unless_ready() {
        return;
    }
    let lab = Lab::up(true);
    let mut applier = lab.applier(true);
    let a = lab.table("wrr", &[("rs1", 1), ("rs2", 1)]);
    let b = lab.table("sh", &[("rs2", 2), ("rs3", 1)]);
    applier.apply(&a).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // Bounded: stops when told, or after 20,000 connections.
    let client = lab.requests_until(&stop, Some(20_000));
    for i in 0..30 {
        let t = if i % 2 == 0 { &b } else { &a };
        if i % 3 == 2 {
            // A full replacement: a stray chain, then a fresh read-back. Deleting and
            // re-creating the table here let about 1 in 3,000 new connections through
            // untranslated (refused by the director itself); it is replaced in place.
            lab.nft_out(&["add", "chain", "inet", "vigil", "stray"]);
            applier.mark_stale();
            let r = applier.apply(t).unwrap();
            assert!(r.full, "{r:?}");
        } else {
            let r = applier.apply(t).unwrap();
            assert!(r.written && !r.full, "{r:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.join().unwrap().unwrap();
    // Kernel 6.18: a packet of the old generation looking up a map whose elements the
    // transaction deactivated went untranslated (about one connection in 1,000
    // applies); the fallback rule and emptied-not-deleted maps remove that (see
    // docs/datapath-nftables.md, "Atomic", and `switch_failures_per_apply` to count).
    // One is still allowed for a cause not found yet; more is a regression.
    assert!(
        failed.len() <= 1,
        "{} of {} failed: {:?}",
        failed.len(),
        ok + failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 30, "only {ok} connections");
}

/// A counting harness, not a check: `NFT_SWITCH_APPLIES=600 NFT_SWITCH_CLIENTS=4 cargo
/// test -p vigil-nft --test netns_nft switch_failures -- --ignored --nocapture` prints
/// how many new connections failed over that many applies (every third a full
/// replacement) while clients connect in a loop. The figures in docs/datapath-nftables.md ("Atomic").
#[test]
#[ignore = "a measurement: run by hand"]
fn switch_failures_per_apply() {
    if !skip_unless_ready() {
        return;
    }
    let applies: usize = std::env::var("NFT_SWITCH_APPLIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let lab = Lab::up(true);
    let mut applier = lab.applier(true);
    let a = lab.table("wrr", &[("rs1", 1), ("rs2", 1)]);
    let b = lab.table("sh", &[("rs2", 2), ("rs3", 1)]);
    applier.apply(&a).unwrap();
    // NFT_SWITCH_PAD=N: N rules that match nothing at the head of `dispatch` widen the
    // time between a packet's chain entry and its map lookups, and so the window a
    // commit can fall into; patches only (a replacement would remove them).
    let pad: usize = std::env::var("NFT_SWITCH_PAD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if pad > 0 {
        let rules = "insert rule inet vigil dispatch meta mark 0x7e57 counter\n".repeat(pad);
        let path = std::env::temp_dir().join(format!("vigil-nft-pad-{}", std::process::id()));
        std::fs::write(&path, rules).unwrap();
        lab.nft_out(&["-f", path.to_str().unwrap()]);
        std::fs::remove_file(&path).unwrap();
    }
    let clients: usize = std::env::var("NFT_SWITCH_CLIENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|_| lab.requests_until(&stop, None))
        .collect();
    let (mut patches, mut full) = (0, 0);
    for i in 0..applies {
        let t = if i % 2 == 0 { &b } else { &a };
        if i % 3 == 2 && pad == 0 {
            lab.nft_out(&["add", "chain", "inet", "vigil", "stray"]);
            applier.mark_stale();
            assert!(applier.apply(t).unwrap().full);
            full += 1;
        } else {
            assert!(applier.apply(t).unwrap().written);
            patches += 1;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for t in threads {
        let (o, f) = t.join().unwrap().unwrap();
        (ok, failed) = (ok + o, failed + f.len());
    }
    println!(
        "switch_failures: {applies} applies ({patches} patches, {full} replacements), {clients} clients, pad {pad}, {} connections, {failed} failed",
        ok + failed
    );
}
