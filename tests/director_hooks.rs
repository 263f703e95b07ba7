//! keepalived's director hooks with the real vigild: `quorum_up` / `quorum_down` with the
//! quorum by weight, real servers' `notify_up` / `notify_down`, and `omega` at shutdown.
//! The real servers are listeners on loopback; the hooks append a line to a file.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use serde_json::Value;
use vigil_testlab::wait_for;
use vigil_tests::{Daemon, minimal_config, vigilctl};

/// The hook: one line per run, `EVENT VS RS COUNTED ARG REASON`.
fn hook(log: &std::path::Path, arg: &str) -> String {
    format!(
        "[\"/bin/sh\", \"-c\", \"echo \\\"$VIGIL_EVENT $VIGIL_VIRTUAL_SERVER ${{VIGIL_REAL_SERVER:--}} ${{VIGIL_QUORUM_COUNTED:--}} $1 ${{VIGIL_REASON:--}}\\\" >> {}\", \"hook\", \"{arg}\"]",
        log.display()
    )
}

fn lines(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn services(d: &Daemon) -> Value {
    serde_json::from_slice(&vigilctl(&d.socket, &["services", "--json"]).stdout)
        .unwrap_or(Value::Null)
}

/// Waits for `want.len()` more hook lines after the first `seen`, and compares them
/// without their order (hooks of different sources run side by side, as keepalived's)
/// and without their reason (the check's text), which `reason` checks by prefix.
fn step(log: &std::path::Path, seen: &mut usize, want: &[&str], reason: &[(&str, &str)]) {
    let n = *seen + want.len();
    assert!(
        wait_for(Duration::from_secs(10), || lines(log).len() >= n),
        "waiting for {want:?}: {:?}",
        lines(log)
    );
    let all = lines(log);
    let new = &all[*seen..];
    let mut got: Vec<String> = new
        .iter()
        .map(|l| l.splitn(6, ' ').take(5).collect::<Vec<_>>().join(" "))
        .collect();
    got.sort();
    let mut want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
    want.sort();
    assert_eq!(got, want, "{all:?}");
    for (start, r) in reason {
        let line = new.iter().find(|l| l.starts_with(start)).expect("the line");
        let why = line.splitn(6, ' ').nth(5).unwrap_or_default();
        assert!(why.starts_with(r), "{line}: reason should start with {r:?}");
    }
    *seen = n;
}

#[test]
fn quorum_by_weight_real_server_hooks_and_omega() {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let a_addr: SocketAddr = a.local_addr().unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    let b_addr = b.local_addr().unwrap();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("hooks.log");
    // Weights 2 + 1 against quorum 3: losing `a` loses the quorum. `b` starts down
    // (vigil's default, keepalived's alpha), so its first pass runs notify_up; `a`
    // starts up (keepalived's default), so its first pass runs nothing.
    let mut d = Daemon::start_plain_with(|dir| {
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\n\
             quorum_by = \"weight\"\nquorum = 3\nomega = true\n\
             quorum_up = {}\nquorum_down = {}\n\
             check = {{ kind = \"tcp\", interval = \"200ms\", timeout = \"100ms\", rise = 1, fall = 1, start_spread = \"0s\" }}\n\
             real_server = [\n  {{ address = \"{a_addr}\", weight = 2, check = {{ initial_state = \"up\" }}, notify_up = {}, notify_down = {} }},\n  \
             {{ address = \"{b_addr}\", weight = 1, notify_up = {} }},\n]\n",
            minimal_config(dir, "hooks"),
            hook(&log, "qup"),
            hook(&log, "qdown"),
            hook(&log, "a-up"),
            hook(&log, "a-down"),
            hook(&log, "b-up"),
        )
    });
    assert!(
        wait_for(Duration::from_secs(20), || services(&d)["virtual_servers"]
            [0]["has_quorum"]
            == true),
        "{}",
        services(&d)
    );
    let v = services(&d);
    assert_eq!(v["virtual_servers"][0]["quorum_by"], "weight");
    assert_eq!(v["virtual_servers"][0]["quorum_counted"], 3);
    let mut seen = 0;
    // A service that has quorum from its first decision runs quorum_up, as keepalived
    // does at start (ipwrapper.c, update_quorum_state(init)).
    step(
        &log,
        &mut seen,
        &[
            &format!("real_server_up web {b_addr} - b-up"),
            "quorum_up web - 3 qup",
        ],
        &[],
    );

    // `a` goes away: its notify_down, and quorum_down with what still counts (1).
    drop(a);
    step(
        &log,
        &mut seen,
        &[
            &format!("real_server_down web {a_addr} - a-down"),
            "quorum_down web - 1 qdown",
        ],
        &[("real_server_down", "connect to"), ("quorum_down", "-")],
    );
    let v = services(&d);
    assert_eq!(v["virtual_servers"][0]["has_quorum"], false);
    assert_eq!(v["virtual_servers"][0]["quorum_counted"], 1);
    let table = String::from_utf8_lossy(&vigilctl(&d.socket, &["services"]).stdout).to_string();
    assert!(table.contains("NO QUORUM (weight 1/3)"), "{table}");

    // `a` comes back on the same port: notify_up, and quorum_up with 3.
    let a = TcpListener::bind(a_addr).unwrap();
    step(
        &log,
        &mut seen,
        &[
            &format!("real_server_up web {a_addr} - a-up"),
            "quorum_up web - 3 qup",
        ],
        &[],
    );

    // Stop: omega runs notify_down of the servers that are up (only `a` has one) and
    // quorum_down, before the daemon exits.
    let stderr = d.stderr_now();
    assert_eq!(lines(&log).len(), seen + 2, "{:?}\n{stderr}", lines(&log));
    step(
        &log,
        &mut seen,
        &[
            &format!("real_server_down web {a_addr} - a-down"),
            "quorum_down web - 3 qdown",
        ],
        &[
            ("real_server_down", "shutdown"),
            ("quorum_down", "shutdown"),
        ],
    );
    drop((a, b));
}

#[test]
fn no_omega_no_hooks_at_shutdown_and_a_start_without_quorum_runs_no_quorum_hook() {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("hooks.log");
    // Nothing listens on the real server, which starts up: its first failure runs
    // notify_down; the service's first decision is "no quorum", which without a sorry
    // server runs no quorum_down (keepalived at start: ipwrapper.c,
    // update_quorum_state(init)), and stopping runs nothing more.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let config = |dir: &std::path::Path, more: &str| {
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\n\
             quorum_up = {}\nquorum_down = {}\n\
             check = {{ kind = \"tcp\", interval = \"200ms\", timeout = \"100ms\", rise = 1, fall = 1, start_spread = \"0s\" }}\n\
             real_server = [{{ address = \"{closed_addr}\", check = {{ initial_state = \"up\" }}, notify_down = {} }}{more}]\n",
            minimal_config(dir, "hooks-plain"),
            hook(&log, "qup"),
            hook(&log, "qdown"),
            hook(&log, "down"),
        )
    };
    let mut d = Daemon::start_plain_with(|dir| config(dir, ""));
    let mut seen = 0;
    step(
        &log,
        &mut seen,
        &[&format!("real_server_down web {closed_addr} - down")],
        &[("real_server_down", "connect to")],
    );
    // A reload adds a live server: the quorum is undecided until its first check, then
    // regained, which is a change (quorum_up), not a first decision.
    let live = TcpListener::bind("127.0.0.1:0").unwrap();
    let live_addr = live.local_addr().unwrap();
    d.write_config(&config(
        d.dir.path(),
        &format!(", {{ address = \"{live_addr}\" }}"),
    ));
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(d.pid() as libc::pid_t, libc::SIGHUP) };
    step(&log, &mut seen, &["quorum_up web - 1 qup"], &[]);
    let _ = d.stderr_now();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lines(&log).len(), 2, "{:?}", lines(&log));
    drop(live);
}
