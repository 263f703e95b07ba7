//! vigild with `datapath = "nftables"` on this machine's kernel: the load-balancing lab
//! of `vigil_testlab::lb` (a director, three real servers, a client; routed return path), a real vigild in the director's namespace checking the real servers, and real
//! TCP connections from the client through the VIP.
//!
//! Needs root and `nft` (skips with "SKIPPED: ..." otherwise). Run:
//! `cargo test -p vigil-tests --test nft_datapath`.

#![allow(clippy::unwrap_used)] // a test: it panics on what it set up itself

#[path = "vrrp_support.rs"]
mod vrrp_support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use vigil_testlab::lb::{LbLab, PORT, REALS, ask, chi_square, connect, try_ask};
use vigil_testlab::{have_tools, require_or_skip, require_root_or_skip, wait_for};
use vrrp_support::{SETTLE, Vigild, director_paths};

/// The port the real servers' checks probe (they answer on `PORT`).
const CHECK_PORT: u16 = 9000;
/// The checks: every 200 ms, down after 2 failures.
const INTERVAL_MS: u64 = 200;
const FALL: u64 = 2;

struct Lab {
    lb: LbLab,
    dir: tempfile::TempDir,
    /// More `[director]` lines (the nftables options).
    director_extra: String,
}

impl std::ops::Deref for Lab {
    type Target = LbLab;
    fn deref(&self) -> &LbLab {
        &self.lb
    }
}

impl Lab {
    /// The lab of [`LbLab`] with a routed return path; each real server also accepts
    /// checks on CHECK_PORT.
    fn up() -> Lab {
        Lab::up_with(true, "")
    }

    /// `routed`: as [`LbLab::up`]. `director_extra`: `[director]` lines.
    fn up_with(routed: bool, director_extra: &str) -> Lab {
        let lb = LbLab::up(routed).unwrap();
        for r in REALS {
            let check = lb
                .lab
                .run_in(r, || TcpListener::bind(("0.0.0.0", CHECK_PORT)))
                .unwrap()
                .unwrap();
            std::thread::spawn(move || for _ in check.incoming() {});
        }
        Lab {
            lb,
            dir: tempfile::tempdir().unwrap(),
            director_extra: director_extra.to_string(),
        }
    }

    /// The cluster file: one wrr service on the VIP over the real servers with these
    /// weights, datapath nftables.
    fn config(&self, weights: &[(&str, u32)]) -> String {
        let mut s = format!(
            "[director]\nname = \"director\"\ndatapath = \"nftables\"\n{}{}\n",
            self.director_extra,
            director_paths(self.dir.path(), "director")
        );
        s.push_str(&format!(
            "[[virtual_server]]\nname = \"web\"\naddress = \"{}\"\nscheduler = \"wrr\"\ncheck = {{ kind = \"tcp\", port = {CHECK_PORT}, interval = \"{INTERVAL_MS}ms\", timeout = \"100ms\", rise = 1, fall = {FALL} }}\n",
            self.vip
        ));
        for (name, w) in weights {
            s.push_str(&format!(
                "[[virtual_server.real_server]]\naddress = \"{}:{PORT}\"\nweight = {w}\n",
                self.lab.ip(name)
            ));
        }
        s
    }

    fn start(&self, weights: &[(&str, u32)]) -> Vigild {
        let path = self.dir.path().join("director.toml");
        std::fs::write(&path, self.config(weights)).unwrap();
        Vigild::start_file(&self.lab, self.dir.path(), "director", path)
    }

    /// Waits until every real server is up and in the table with its weight.
    fn wait_all_up(&self, v: &Vigild, n: usize) {
        let mut up = Vec::new();
        let ok = wait_for(SETTLE, || {
            let Some(r) = v.request(r#"{"command":"services"}"#) else {
                return false;
            };
            let reals = r["result"]["virtual_servers"][0]["real_servers"].clone();
            let Some(a) = reals.as_array() else {
                return false;
            };
            up = a
                .iter()
                .filter_map(|rs| rs["address"].as_str())
                .map(String::from)
                .collect();
            a.len() == n && a.iter().all(|rs| rs["health"] == "up")
        });
        assert!(ok, "real servers never all up:\n{}", v.log_text());
        // Health shows up before the nft thread has applied it: wait for the table too
        // (its dnat maps read `SLOT : ADDRESS . PORT`).
        let slots: Vec<String> = up
            .iter()
            .map(|a| format!(": {}", a.replacen(':', " . ", 1)))
            .collect();
        let ok = wait_for(SETTLE, || {
            let table = self.table();
            slots.iter().all(|s| table.contains(s.as_str()))
        });
        assert!(ok, "the table never held {up:?}:\n{}", self.table());
    }

    fn table(&self) -> String {
        self.lab
            .run("director", ["nft", "-a", "list", "table", "inet", "vigil"])
            .unwrap_or_default()
    }

    fn drain(&self, v: &Vigild, real: &str, drain: bool) {
        let body = format!(
            r#"{{"command":"{}","virtual_server":"web","real_server":"{}:{PORT}"}}"#,
            if drain { "drain" } else { "enable" },
            self.lab.ip(real)
        );
        let r = v.request(&body).unwrap();
        assert_eq!(r["ok"], true, "{r}");
    }
}

fn ready() -> bool {
    require_root_or_skip!(false);
    require_or_skip!(have_tools(&["nft", "ip"]), false);
    true
}

#[test]
fn vigild_spreads_by_weight_and_a_failed_real_server_stops_within_the_fall_window() {
    if !ready() {
        return;
    }
    let lab = Lab::up();
    let v = lab.start(&[("rs1", 1), ("rs2", 2), ("rs3", 3)]);
    lab.wait_all_up(&v, 3);
    let status = v.request(r#"{"command":"status"}"#).unwrap();
    assert_eq!(status["result"]["datapath"]["name"], "nftables", "{status}");
    assert!(lab.table().contains("comment \"tcp "), "{}", lab.table());

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
    println!("600 connections over weights 1:2:3: {counts:?}, chi-square {chi:.2}");

    // rs2's check port refuses from now on; its service port still answers, so only
    // the table can keep new connections away from it.
    lab.lab
        .run(
            "rs2",
            [
                "nft",
                &format!(
                    "add table inet hc {{ chain in {{ type filter hook input priority 0; tcp dport {CHECK_PORT} reject with tcp reset; }}; }}"
                ),
            ],
        )
        .unwrap();
    let failed_at = Instant::now();
    // Within the fall window (fall x interval) plus a generous margin for a shared machine.
    let window = Duration::from_millis(INTERVAL_MS * FALL) + Duration::from_millis(1_500);
    let vip = lab.vip;
    let seen: Vec<(Duration, String)> = lab
        .lab
        .run_in("client", move || {
            let mut out = Vec::new();
            while failed_at.elapsed() < window + Duration::from_secs(2) {
                let mut c = connect(vip);
                out.push((failed_at.elapsed(), ask(&mut c)));
                std::thread::sleep(Duration::from_millis(10));
            }
            out
        })
        .unwrap();
    let last_rs2 = seen
        .iter()
        .filter(|(_, n)| n == "rs2")
        .map(|(t, _)| *t)
        .max();
    println!(
        "rs2's check failing: its last new connection {:?} after, fall window {:?} ({} connections)",
        last_rs2,
        Duration::from_millis(INTERVAL_MS * FALL),
        seen.len()
    );
    let after: Vec<&String> = seen
        .iter()
        .filter(|(t, _)| *t > window)
        .map(|(_, n)| n)
        .collect();
    assert!(
        after.len() > 20,
        "too few connections after the window: {}",
        after.len()
    );
    assert!(
        after.iter().all(|n| *n != "rs2"),
        "rs2 still got new connections {window:?} after its check failed: {seen:?}\n{}",
        v.log_text()
    );
}

#[test]
fn vigild_drains_a_real_server_that_keeps_its_open_connection() {
    if !ready() {
        return;
    }
    let lab = Lab::up();
    let v = lab.start(&[("rs1", 1), ("rs2", 1)]);
    lab.wait_all_up(&v, 2);
    // Open connections until one is on rs1, and keep it.
    let mut held = None;
    for _ in 0..100 {
        let mut c = lab.open();
        if ask(&mut c) == "rs1" {
            held = Some(c);
            break;
        }
    }
    let mut held = held.expect("no connection reached rs1 in 100 tries");

    lab.drain(&v, "rs1", true);
    let ok = wait_for(SETTLE, || !lab.hits(10).contains_key("rs1"));
    assert!(ok, "rs1 still gets new connections after the drain");
    let seen = lab.hits(60);
    assert_eq!(seen.get("rs2"), Some(&60), "{seen:?}");
    // The connection opened before the drain still reaches rs1 (its conntrack entry).
    assert_eq!(ask(&mut held), "rs1");

    lab.drain(&v, "rs1", false);
    let ok = wait_for(SETTLE, || lab.hits(20).contains_key("rs1"));
    assert!(ok, "rs1 never came back after enable");

    // A reload asking for what nftables cannot serve is refused at its field, and the
    // running config and table stay.
    let table = lab.table();
    let bad = lab
        .config(&[("rs1", 1), ("rs2", 1)])
        .replace("scheduler = \"wrr\"", "scheduler = \"wlc\"");
    std::fs::write(&v.config, bad).unwrap();
    let r = v.request(r#"{"command":"reload"}"#).unwrap();
    let text = r.to_string();
    assert!(
        text.contains("virtual_server.web.scheduler") && text.contains("no nftables equivalent"),
        "{text}"
    );
    let status = v.request(r#"{"command":"status"}"#).unwrap();
    assert_eq!(status["result"]["config_generation"], 1, "{status}");
    assert_eq!(lab.table(), table);
}

#[test]
fn vigild_restarted_with_unchanged_state_writes_nothing() {
    if !ready() {
        return;
    }
    let lab = Lab::up();
    let mut v = lab.start(&[("rs1", 1), ("rs2", 2), ("rs3", 3)]);
    lab.wait_all_up(&v, 3);
    // Settled: the table as the first run left it, with rule handles (a rewrite of any
    // rule or chain changes them).
    std::thread::sleep(Duration::from_millis(500));
    let before = lab.table();
    assert!(before.contains("numgen random mod 6"), "{before}");
    let first_run = v.log_text();
    assert!(first_run.contains("datapath: nftables"), "{first_run}");
    assert!(first_run.contains("nftables: applied"), "{first_run}");
    assert!(v.stop().success(), "{}", v.log_text());
    // The table outlives the daemon: connections keep flowing meanwhile.
    assert_eq!(lab.table(), before);
    assert_eq!(lab.hits(10).values().sum::<usize>(), 10);

    let log_before = v.log_text().len();
    v.restart(&lab.lab);
    lab.wait_all_up(&v, 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(lab.table(), before, "the restart rewrote the table");
    let second_run = &v.log_text()[log_before..];
    assert!(
        !second_run.contains("nftables: applied"),
        "the restart wrote a transaction:\n{second_run}"
    );
    v.stop();
}

#[test]
fn masquerade_serves_real_servers_without_a_route_back() {
    if !ready() {
        return;
    }
    // No route back via the director: the client is on-link for the real servers, so
    // only the masquerade brings their replies back through the director (without it
    // the connect times out).
    let lab = Lab::up_with(false, "nftables_masquerade = true\n");
    let v = lab.start(&[("rs1", 1), ("rs2", 1)]);
    lab.wait_all_up(&v, 2);
    let director = lab.lab.ip("director").to_string();
    let vip = lab.vip;
    let seen: Vec<(String, String)> = lab
        .lab
        .run_in("client", move || {
            (0..20)
                .map(|_| try_ask(&mut connect(vip)).unwrap())
                .collect()
        })
        .unwrap();
    assert!(
        seen.iter().all(|(_, peer)| *peer == director),
        "the real servers saw {seen:?}, not the director's {director}"
    );
    let names: std::collections::BTreeSet<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 2, "{seen:?}");
    assert!(lab.table().contains("masquerade"), "{}", lab.table());
}

/// The conntrack entries on the director for connections through the VIP to `real`.
fn entries_to(lab: &Lab, real: &str) -> usize {
    let out = lab
        .lab
        .run(
            "director",
            [
                "conntrack",
                "-L",
                "-p",
                "tcp",
                "--orig-dst",
                &lab.vip.ip().to_string(),
                "--reply-src",
                &lab.lab.ip(real).to_string(),
            ],
        )
        .unwrap_or_default();
    out.lines().filter(|l| l.contains("dport=")).count()
}

/// A connection held to rs1 while rs1's check fails: cut when `flush`, kept otherwise.
fn connection_to_a_failed_real_server(flush: bool) {
    if !ready() {
        return;
    }
    require_or_skip!(have_tools(&["conntrack"]));
    let lab = Lab::up_with(true, &format!("nftables_flush_on_failure = {flush}\n"));
    let v = lab.start(&[("rs1", 1), ("rs2", 1)]);
    lab.wait_all_up(&v, 2);
    let mut held = (0..100)
        .map(|_| lab.open())
        .find_map(|mut c| (ask(&mut c) == "rs1").then_some(c))
        .expect("no connection reached rs1 in 100 tries");
    // A drain never flushes.
    lab.drain(&v, "rs1", true);
    assert!(wait_for(SETTLE, || !lab.hits(10).contains_key("rs1")));
    assert_eq!(ask(&mut held), "rs1");
    lab.drain(&v, "rs1", false);
    assert!(wait_for(SETTLE, || lab.hits(20).contains_key("rs1")));
    assert!(entries_to(&lab, "rs1") >= 1);

    // rs1's check port refuses from now on; its service port still answers.
    lab.lab
        .run(
            "rs1",
            [
                "nft",
                &format!(
                    "add table inet hc {{ chain in {{ type filter hook input priority 0; tcp dport {CHECK_PORT} reject with tcp reset; }}; }}"
                ),
            ],
        )
        .unwrap();
    let down = wait_for(SETTLE, || {
        v.request(r#"{"command":"services"}"#).is_some_and(|r| {
            r["result"]["virtual_servers"][0]["real_servers"]
                .as_array()
                .is_some_and(|a| a.iter().any(|rs| rs["health"] == "down"))
        })
    });
    assert!(down, "rs1 never went down:\n{}", v.log_text());
    if flush {
        let gone = wait_for(SETTLE, || entries_to(&lab, "rs1") == 0);
        assert!(gone, "rs1's conntrack entries stayed:\n{}", v.log_text());
        let flushed = wait_for(SETTLE, || {
            v.log_text()
                .contains("flushed the failed real server's connections")
        });
        assert!(flushed, "{}", v.log_text());
        // Its next packet is a new connection for the table, which has no rs1: cut.
        let r = try_ask(&mut held);
        assert!(
            !matches!(&r, Ok((n, _)) if n == "rs1"),
            "the connection to rs1 survived the flush: {r:?}"
        );
        println!("the held connection after the flush: {r:?}");
    } else {
        std::thread::sleep(Duration::from_millis(500));
        assert!(entries_to(&lab, "rs1") >= 1);
        assert_eq!(ask(&mut held), "rs1", "without the flush it keeps going");
    }
}

#[test]
fn flush_on_failure_cuts_open_connections_to_a_failed_real_server() {
    connection_to_a_failed_real_server(true);
}

#[test]
fn without_flush_a_failed_real_servers_connections_keep_going() {
    connection_to_a_failed_real_server(false);
}
