//! `real_servers_from_dns` against a real DNS server: vigild in a network namespace of
//! its own, dnsmasq started by the test inside it (its records in an `addn-hosts` file
//! rewritten and re-read on SIGHUP), real servers as TCP listeners in the same namespace.
//! The director's state is read with `services` (IPVS is not needed for it: without it
//! the director keeps its table and says IPVS is unavailable).
//!
//! It prints the figure of the closing note: the time from a record change (the SIGHUP
//! that makes dnsmasq serve it) to the director holding the new set.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testlab::{LabChild, wait_for};
use vigil_tests::{Daemon, StatusClient};

const NAME: &str = "web.vigil.test";
const DNS_PORT: u16 = 5353;
const RS_PORT: u16 = 8080;

/// What both tests need: root (vigild's network namespace) and the programs.
fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("a network namespace for vigild and dnsmasq needs root".into());
    }
    vigil_testlab::have_tools(&["dnsmasq", "nsenter", "unshare"])
}

/// A TCP listener in `d`'s namespace that accepts and drops connections (TCP checks
/// connect and close).
fn listen(d: &Daemon, addr: SocketAddr) {
    let l = d.run_in_netns(|| TcpListener::bind(addr).expect("bind a real server"));
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
}

fn write_hosts(path: &Path, addresses: &[&str]) {
    let text: String = addresses.iter().map(|a| format!("{a} {NAME}\n")).collect();
    std::fs::write(path, text).expect("write the hosts file");
}

/// dnsmasq serving `hosts` (and what the `extra` options add) only, on 127.0.0.1:5353 in
/// the namespace of `pid`, with a TTL of 1 s on what it serves.
fn start_dnsmasq(pid: u32, hosts: &Path, extra: &[String]) -> LabChild {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net=/proc/{pid}/ns/net"))
        .args([
            "dnsmasq",
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--user=root",
            "--group=root",
            "--pid-file",
            "--local-ttl=1",
        ])
        .arg(format!("--port={DNS_PORT}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    LabChild::spawn(&mut c).expect("start dnsmasq")
}

fn services(d: &Daemon) -> Value {
    d.result("services")["virtual_servers"][0].clone()
}

/// The real servers' addresses, each with what `field` reads of it, sorted.
fn by_address<T: Ord>(vs: &Value, field: impl Fn(&Value) -> T) -> Vec<(String, T)> {
    let mut out: Vec<(String, T)> = vs["real_servers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| {
                    let address = r["address"].as_str().unwrap_or_default().to_string();
                    (address, field(r))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The real servers' addresses with their health, sorted.
fn real_servers(vs: &Value) -> Vec<(String, String)> {
    by_address(vs, |r| r["health"].as_str().unwrap_or_default().to_string())
}

fn addresses(vs: &Value) -> Vec<String> {
    real_servers(vs).into_iter().map(|(a, _)| a).collect()
}

fn rs(last: &str) -> String {
    format!("127.0.0.{last}:{RS_PORT}")
}

#[test]
fn servers_follow_the_records_and_dns_down_keeps_the_last_good_set() {
    vigil_testlab::require_or_skip!(prerequisites());
    let d = Daemon::start_with(|dir| {
        format!(
            r#"[director]
name = "dns-test"
status_socket = "{}"
state_file = "{}"

[[virtual_server]]
name = "web"
address = "127.0.0.100:80"
check = {{ kind = "tcp", interval = "200ms", timeout = "150ms", start_spread = "0s" }}

[[virtual_server.real_servers_from_dns]]
name = "{NAME}"
port = {RS_PORT}
nameservers = ["127.0.0.1:{DNS_PORT}"]
timeout = "200ms"
attempts = 1
min_ttl = "1s"
max_ttl = "2s"
"#,
            dir.join("vigil.sock").display(),
            dir.join("state.json").display()
        )
    });
    let mut events = StatusClient::connect(&d.socket);
    events.send_line(r#"{"command":"events"}"#);
    assert_eq!(
        events.read_reply().expect("subscribed")["ok"],
        Value::Bool(true)
    );
    let pid = d.pid();
    for last in ["11", "12", "13"] {
        listen(&d, rs(last).parse().expect("address"));
    }
    let hosts = d.dir.path().join("hosts");
    write_hosts(&hosts, &["127.0.0.11", "127.0.0.12"]);

    // No DNS server yet: the first resolutions fail, nothing is added, it is shown.
    let failing = wait_for(Duration::from_secs(10), || {
        let vs = services(&d);
        vs["dns"][0]["failures"].as_u64().unwrap_or(0) >= 1
            && vs["dns"][0]["last_error"].is_string()
    });
    let vs = services(&d);
    assert!(failing, "no failure shown while DNS is down: {vs}");
    assert_eq!(real_servers(&vs), [], "{vs}");

    // DNS up: both servers come, checked, and go up.
    let mut dnsmasq = start_dnsmasq(pid, &hosts, &[]);
    let up = |want: &[String]| {
        let want: Vec<(String, String)> =
            want.iter().map(|a| (a.clone(), "up".to_string())).collect();
        wait_for(Duration::from_secs(15), || {
            real_servers(&services(&d)) == want
        })
    };
    assert!(
        up(&[rs("11"), rs("12")]),
        "servers from DNS not up: {}",
        services(&d)
    );
    let vs = services(&d);
    assert_eq!(vs["dns"][0]["name"], NAME);
    assert_eq!(vs["dns"][0]["record"], "A");
    assert!(vs["dns"][0]["last_error"].is_null(), "{vs}");
    assert!(vs["dns"][0]["real_servers"].as_array().map(Vec::len) == Some(2));

    // A record changes: .11 goes, .13 comes (checked: it shows up as pending or down
    // first, then up). Timed from the SIGHUP that makes dnsmasq serve it.
    write_hosts(&hosts, &["127.0.0.12", "127.0.0.13"]);
    let changed_at = Instant::now();
    // SAFETY: kill on the pid of a child we started.
    unsafe { libc::kill(dnsmasq.id() as i32, libc::SIGHUP) };
    let mut first_seen = None;
    let swapped = wait_for(Duration::from_secs(15), || {
        let vs = services(&d);
        let now = addresses(&vs);
        if now == [rs("12"), rs("13")] {
            let health = real_servers(&vs);
            first_seen.get_or_insert((changed_at.elapsed(), health[1].1.clone()));
            return true;
        }
        false
    });
    assert!(
        swapped,
        "the record change was not applied: {}",
        services(&d)
    );
    let (took, health_at_first) = first_seen.expect("seen");
    assert_ne!(
        health_at_first, "up",
        "a new server must start checked and not up"
    );
    assert!(
        up(&[rs("12"), rs("13")]),
        "new server not up: {}",
        services(&d)
    );
    let up_after = changed_at.elapsed();
    println!(
        "FIGURE dns record change -> director table: {:.0} ms (new server up after {:.0} ms; min_ttl 1s, TTL 1s, check interval 200ms)",
        took.as_secs_f64() * 1e3,
        up_after.as_secs_f64() * 1e3
    );

    // DNS down: the set stays, the failures are counted and shown.
    dnsmasq
        .terminate(Duration::from_secs(5))
        .expect("stop dnsmasq");
    let failures_before = services(&d)["dns"][0]["failures"].as_u64().unwrap_or(0);
    let counted = wait_for(Duration::from_secs(10), || {
        services(&d)["dns"][0]["failures"].as_u64().unwrap_or(0) >= failures_before + 2
    });
    let vs = services(&d);
    assert!(counted, "failures not counted while DNS is down: {vs}");
    assert!(vs["dns"][0]["last_error"].is_string(), "{vs}");
    assert_eq!(
        real_servers(&vs),
        [(rs("12"), "up".to_string()), (rs("13"), "up".to_string())],
        "the last good set must stay: {vs}"
    );

    // `vigilctl services` shows the entry.
    let out = d.ctl(&["services"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("<- DNS A {NAME}")),
        "vigilctl services:\n{text}"
    );
    assert!(
        text.contains("FAILING (kept)"),
        "vigilctl services:\n{text}"
    );

    // The events told it all, in order: DNS down, two added, one swapped, DNS down.
    let mut seen = Vec::new();
    while seen.len() < 4 {
        let e = events.read_reply().expect("an event");
        if e["event"] == "dns_resolution" {
            let list = |k: &str| {
                e[k].as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            let what = match e["ok"].as_bool() {
                Some(true) => format!("+[{}] -[{}]", list("added"), list("removed")),
                _ => "failed".to_string(),
            };
            // A name that stays down is reported again only when its error changes.
            if seen.last() != Some(&what) {
                seen.push(what);
            }
        }
    }
    assert_eq!(
        seen,
        [
            "failed".to_string(),
            format!("+[{} {}] -[]", rs("11"), rs("12")),
            format!("+[{}] -[{}]", rs("13"), rs("11")),
            "failed".to_string(),
        ]
    );
}

/// SRV: the records of the lowest priority give the servers, each with its record's port
/// and weight; a target's address comes from the answer or its own lookup.
#[test]
fn srv_records_give_ports_and_weights() {
    vigil_testlab::require_or_skip!(prerequisites());
    let srv = "_http._tcp.vigil.test";
    let d = Daemon::start_with(|dir| {
        format!(
            r#"[director]
name = "dns-srv-test"
status_socket = "{}"
state_file = "{}"

[[virtual_server]]
name = "web"
address = "127.0.0.100:80"
scheduler = "wrr"

[[virtual_server.real_servers_from_dns]]
name = "{srv}"
type = "SRV"
nameservers = ["127.0.0.1:{DNS_PORT}"]
timeout = "200ms"
min_ttl = "1s"
"#,
            dir.join("vigil.sock").display(),
            dir.join("state.json").display()
        )
    });
    let pid = d.pid();
    let hosts = d.dir.path().join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.21 a.vigil.test\n127.0.0.22 b.vigil.test\n127.0.0.23 c.vigil.test\n",
    )
    .expect("write the hosts file");
    // --srv-host=NAME,TARGET,PORT,PRIORITY,WEIGHT; c is a fallback (priority 1).
    let records = [
        format!("--srv-host={srv},a.vigil.test,8081,0,5"),
        format!("--srv-host={srv},b.vigil.test,8082,0,10"),
        format!("--srv-host={srv},c.vigil.test,8083,1,10"),
    ];
    let mut dnsmasq = start_dnsmasq(pid, &hosts, &records);

    let weights = |vs: &Value| by_address(vs, |r| r["weight"].as_u64().unwrap_or_default());
    let want = vec![
        ("127.0.0.21:8081".to_string(), 5),
        ("127.0.0.22:8082".to_string(), 10),
    ];
    let got = wait_for(Duration::from_secs(15), || weights(&services(&d)) == want);
    let vs = services(&d);
    let _ = dnsmasq.terminate(Duration::from_secs(5));
    assert!(got, "SRV servers not as the records say: {vs}");
    assert_eq!(vs["dns"][0]["record"], "SRV", "{vs}");
    // Without checks the servers are in at once.
    assert_eq!(
        real_servers(&vs)
            .iter()
            .map(|(_, h)| h.as_str())
            .collect::<Vec<_>>(),
        ["unchecked", "unchecked"]
    );
}
