//! Child processes of the real daemon, run the way deploy/vigild.service runs it: an
//! unprivileged uid with ambient CAP_NET_ADMIN, CAP_NET_RAW, CAP_SETUID and CAP_SETGID
//! (plus CAP_KILL without a delegated cgroup), in a network namespace of its own. Each
//! test runs in both kill modes: a delegated cgroup (made here under the cgroup2 mount,
//! owned by the daemon's uid) and the fallback (subreaper, process groups, CAP_KILL).
//!
//! Needs root (to make the namespace, the cgroup and switch uid), `unshare`, `ip` and
//! `setpriv`; prints SKIPPED otherwise.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_testlab::{LabChild, bin_path, wait_for};

/// The daemon's uid and gid (no passwd entry needed); children run as `nobody`.
const DAEMON_ID: u32 = 4242;
const NOBODY: u32 = 65534;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Cgroup,
    Fallback,
}

fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: the test switches uid and makes namespaces and cgroups".into());
    }
    vigil_testlab::have_tools(&["unshare", "ip", "setpriv"])?;
    if cgroup2_mount().is_none() {
        return Err("no cgroup2 hierarchy mounted".into());
    }
    Ok(())
}

/// The cgroup2 mount point, from /proc/self/mountinfo.
fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let mut f = left.split_whitespace();
        let root = f.nth(3)?;
        let mount = f.next()?;
        (right.split_whitespace().next()? == "cgroup2" && root == "/").then(|| PathBuf::from(mount))
    })
}

/// A cgroup delegated to the daemon's uid, removed (its processes killed) when dropped.
struct Delegated(PathBuf);

impl Delegated {
    fn new(name: &str) -> Delegated {
        let mount = cgroup2_mount().expect("cgroup2");
        let dir = mount.join(format!("vigil-test-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        let status = Command::new("chown")
            .args(["-R", &format!("{DAEMON_ID}:{DAEMON_ID}")])
            .arg(&dir)
            .status()
            .expect("chown");
        assert!(status.success());
        Delegated(dir)
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(entries) = std::fs::read_dir(&self.0) {
                for e in entries.flatten() {
                    if e.path().is_dir() {
                        let _ = std::fs::write(e.path().join("cgroup.kill"), "1");
                        let _ = std::fs::remove_dir(e.path());
                    }
                }
            }
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// vigild under setpriv in a namespace with a veth pair (`v0` 192.0.2.10/24), its
/// directory owned by the daemon's uid and `out/` writable by every child.
struct Sandboxed {
    dir: tempfile::TempDir,
    config: PathBuf,
    child: LabChild,
    // Dropped after the daemon is stopped.
    _cgroup: Option<Delegated>,
}

impl Sandboxed {
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    fn start(mode: Mode, name: &str, config: impl FnOnce(&Path) -> String) -> Sandboxed {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).expect("out");
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let text = config(dir.path());
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).expect("config");
        std::os::unix::fs::chown(dir.path(), Some(DAEMON_ID), Some(DAEMON_ID)).expect("chown");
        std::os::unix::fs::chown(&path, Some(DAEMON_ID), Some(DAEMON_ID)).expect("chown");
        let cgroup = (mode == Mode::Cgroup).then(|| Delegated::new(name));
        // CAP_KILL only where there is no delegated cgroup, as documented.
        let caps = match mode {
            Mode::Cgroup => "+net_admin,+net_raw,+setuid,+setgid",
            Mode::Fallback => "+net_admin,+net_raw,+setuid,+setgid,+kill",
        };
        let join = cgroup
            .as_ref()
            .map(|c| format!("echo $$ > {}/cgroup.procs && ", c.0.display()))
            .unwrap_or_default();
        let script = format!(
            "ip link set lo up && ip link add v0 type veth peer name v1 && ip link set v0 up && ip link set v1 up && ip addr add 192.0.2.10/24 dev v0 && {join}exec setpriv --reuid={DAEMON_ID} --regid={DAEMON_ID} --clear-groups --inh-caps={caps} --ambient-caps={caps} -- \"$0\" --config \"$1\""
        );
        let child = LabChild::spawn(
            Command::new("unshare")
                .args(["--net", "--", "sh", "-c", &script])
                .arg(bin_path("vigild"))
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        )
        .expect("spawn vigild");
        let mut s = Sandboxed {
            dir,
            config: path,
            child,
            _cgroup: cgroup,
        };
        let sock = s.dir.path().join("vigil.sock");
        let up = wait_for(Duration::from_secs(20), || {
            sock.exists() || matches!(s.child.try_wait(), Ok(Some(_)))
        });
        if !up || matches!(s.child.try_wait(), Ok(Some(_))) {
            panic!("vigild did not come up:\n{}", s.stop());
        }
        s
    }

    /// Stops the daemon; returns its log.
    fn stop(&mut self) -> String {
        let _ = self.child.terminate(Duration::from_secs(10));
        let mut log = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut log);
        }
        log
    }

    fn reload(&self, text: &str) {
        std::fs::write(&self.config, text).expect("rewrite config");
        self.child.signal(libc::SIGHUP).expect("SIGHUP");
    }
}

impl Drop for Sandboxed {
    fn drop(&mut self) {
        let _ = self.child.terminate(Duration::from_secs(10));
    }
}

/// A script that records, for child kind `$1`, its capability sets, no_new_privs, the
/// environment it was started with, its session and group, uid and cgroup.
const REPORT: &str = r#"#!/bin/sh
f="$(dirname "$0")/out/$1.txt"
{ grep -E '^(Cap|NoNewPrivs)' /proc/$$/status; echo ENV; tr '\0' '\n' < /proc/$$/environ; echo END
  echo "STAT $(cut -d' ' -f1,5,6 /proc/$$/stat)"; echo "UID $(id -u)"; echo "STDIN $(readlink /proc/$$/fd/0)"
  grep '^0::' /proc/$$/cgroup; } > "$f.tmp" 2>&1
mv "$f.tmp" "$f"
"#;

fn report_config(dir: &Path) -> String {
    let script = dir.join("report.sh");
    std::fs::write(&script, REPORT).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let s = script.display();
    // Its own state file: the default one may be root's from another test.
    let state = dir.join("state.json");
    let state = state.display();
    format!(
        r#"[director]
name = "sandbox"
status_socket = "{sock}"
state_file = "{state}"

[[virtual_server]]
name = "web"
address = "192.0.2.1:80"
check = {{ kind = "exec", command = ["{s}", "check"], interval = "1s" }}
real_server = [{{ address = "127.0.0.1:80" }}]

[vrrp.v1]
interface = "v0"
vrid = 7
priority = 100
vips = ["192.0.2.1/24"]
advert_interval = "100ms"
notify = ["{s}", "hook"]
track = [{{ exec = ["{s}", "track"], interval = "1s", weight = -10 }}]
"#,
        sock = dir.join("vigil.sock").display()
    )
}

fn hex_field(text: &str, key: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"));
    let v = line.split_whitespace().nth(1).unwrap_or("");
    u64::from_str_radix(v, 16).unwrap_or_else(|_| panic!("{line}"))
}

fn children_start_without_privileges(mode: Mode) {
    vigil_testlab::require_or_skip!(prerequisites());
    let mut d = Sandboxed::start(mode, &format!("priv-{mode:?}"), report_config);
    let out = d.out();
    let kinds = ["check", "track", "hook"];
    let all = wait_for(Duration::from_secs(20), || {
        kinds.iter().all(|k| out.join(format!("{k}.txt")).exists())
    });
    // The daemon's own threads: only `children` keeps CAP_SETUID/SETGID (and CAP_KILL
    // in fallback mode); the main thread and every other thread lost them.
    let pid = d.child.id();
    let mut holders = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        let eff = hex_field(&status, "CapPrm:");
        let setuid = eff & (1 << 7) != 0;
        let kill = eff & (1 << 5) != 0;
        if setuid || kill {
            holders.push((name.trim().to_string(), setuid, kill));
        }
        if name.trim() != "children" {
            assert_ne!(
                eff & (1 << 12),
                0,
                "CAP_NET_ADMIN kept by the daemon: {status}"
            );
        }
    }
    let log = if all { String::new() } else { d.stop() };
    assert!(all, "not every kind of child ran:\n{log}");
    assert_eq!(
        holders,
        [("children".to_string(), true, mode == Mode::Fallback)],
        "threads holding CAP_SETUID / CAP_KILL"
    );
    for kind in kinds {
        let text = std::fs::read_to_string(out.join(format!("{kind}.txt"))).expect("report");
        for set in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
            assert_eq!(hex_field(&text, set), 0, "{kind}: {set}\n{text}");
        }
        assert!(text.contains("NoNewPrivs:\t1"), "{kind}:\n{text}");
        let env: Vec<&str> = text
            .split("ENV\n")
            .nth(1)
            .and_then(|r| r.split("END\n").next())
            .unwrap_or("")
            .lines()
            .collect();
        for var in &env {
            let name = var.split('=').next().unwrap_or("");
            assert!(
                name == "PATH" || name == "LANG" || name.starts_with("VIGIL_"),
                "{kind}: {var} is not on the allow-list:\n{text}"
            );
        }
        assert!(
            env.iter().any(|v| v.starts_with("PATH=")),
            "{kind}:\n{text}"
        );
        // "STAT pid pgrp session": a session and group of its own.
        let stat: Vec<&str> = text
            .lines()
            .find_map(|l| l.strip_prefix("STAT "))
            .expect("STAT")
            .split_whitespace()
            .collect();
        assert_eq!(
            (stat[0], stat[0]),
            (stat[1], stat[2]),
            "{kind}: own session and group"
        );
        assert!(text.contains("STDIN /dev/null"), "{kind}:\n{text}");
        let uid = if kind == "hook" { DAEMON_ID } else { NOBODY };
        assert!(text.contains(&format!("UID {uid}\n")), "{kind}:\n{text}");
        if mode == Mode::Cgroup {
            assert!(
                text.contains("/vigil-child-"),
                "{kind}: a cgroup of its own:\n{text}"
            );
        }
    }
    match kinds
        .iter()
        .find(|k| !out.join(format!("{k}.txt")).exists())
    {
        None => {}
        Some(k) => panic!("{k} missing"),
    }
}

#[test]
fn children_start_without_privileges_with_a_delegated_cgroup() {
    children_start_without_privileges(Mode::Cgroup);
}

#[test]
fn children_start_without_privileges_without_a_cgroup() {
    children_start_without_privileges(Mode::Fallback);
}

/// Live processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline"))
            && cmdline
                .windows(marker.len())
                .any(|w| w == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

const RUNS: usize = 1000;

/// An exec check that forks, detaches (setsid, double fork) and ignores SIGTERM, with a
/// 20 ms timeout, run more than 1,000 times: nothing it started may survive.
fn a_detaching_check_leaves_nothing_behind(mode: Mode) {
    vigil_testlab::require_or_skip!(prerequisites());
    let marker = format!("4{}.{}", std::process::id() % 1000, mode as u8 + 1);
    let make = |dir: &Path, with_check: bool| {
        let script = dir.join("escape.sh");
        let runs = dir.join("out/runs");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho >> {runs}\ntrap '' TERM\n(setsid sh -c 'trap \"\" TERM; (sleep {marker} &); sleep {marker}' &)\nsleep {marker} &\nsleep {marker}\n",
                runs = runs.display()
            ),
        )
        .expect("script");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let check = if with_check {
            format!(
                ", check = {{ kind = \"exec\", command = [\"{}\"], interval = \"25ms\", timeout = \"20ms\", start_spread = \"0s\" }}",
                script.display()
            )
        } else {
            String::new()
        };
        format!(
            "[director]\nname = \"leak\"\nstatus_socket = \"{}\"\nstate_file = \"{}\"\n\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\nreal_server = [{{ address = \"127.0.0.1:80\"{check} }}]\n",
            dir.join("vigil.sock").display(),
            dir.join("state.json").display()
        )
    };
    let mut d = Sandboxed::start(mode, &format!("leak-{mode:?}"), |dir| make(dir, true));
    let runs = d.out().join("runs");
    let count = || {
        std::fs::read_to_string(&runs)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let mut most = 0;
    let started = Instant::now();
    while count() < RUNS && started.elapsed() < Duration::from_secs(180) {
        most = most.max(processes_with(&marker).len());
        std::thread::sleep(Duration::from_millis(50));
    }
    let ran = count();
    // The check goes away; whatever its last run started must go with it.
    d.reload(&make(d.dir.path(), false));
    let gone = wait_for(Duration::from_secs(10), || {
        processes_with(&marker).is_empty()
    });
    let left = processes_with(&marker);
    let log = if ran < RUNS || !gone {
        d.stop()
    } else {
        String::new()
    };
    assert!(ran >= RUNS, "only {ran} runs in 180 s:\n{log}");
    let about: Vec<String> = left
        .iter()
        .take(5)
        .map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let cg = std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap_or_default();
            format!("{stat} {}", cg.lines().last().unwrap_or(""))
        })
        .collect();
    assert!(
        gone,
        "{} processes left after the check was removed (at most {most} at once while it ran), e.g. {about:#?}\n{log}",
        left.len()
    );
    // A few runs' worth at most while it ran (each run starts up to 4), never a backlog.
    assert!(most <= 40, "{most} processes of the check alive at once");
    println!("{mode:?}: {ran} runs, at most {most} of their processes alive at once");
}

#[test]
fn a_detaching_check_leaves_nothing_behind_with_a_delegated_cgroup() {
    a_detaching_check_leaves_nothing_behind(Mode::Cgroup);
}

#[test]
fn a_detaching_check_leaves_nothing_behind_without_a_cgroup() {
    a_detaching_check_leaves_nothing_behind(Mode::Fallback);
}

#[test]
fn unknown_users_are_rejected_at_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[director]\nname = \"u\"\nstatus_socket = \"{}\"\n\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\nreal_server = [{{ address = \"127.0.0.1:80\", check = {{ kind = \"exec\", command = [\"/bin/true\"], user = \"no-such-user-vigil\" }} }}]\n\n[vrrp.v1]\ninterface = \"v0\"\nvrid = 7\npriority = 100\nvips = [\"192.0.2.1/24\"]\ntrack = [{{ exec = [\"/bin/true\"], user = \"no-such-user-vigil2\" }}]\n",
            dir.path().join("vigil.sock").display()
        ),
    )
    .expect("config");
    let out = Command::new(bin_path("vigild"))
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("check-config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = path.display();
    for line in [
        format!(
            "{file}:8:101: error: `virtual_server.web.real_server[0].check.user`: user \"no-such-user-vigil\" does not exist on this system"
        ),
        format!(
            "{file}:15:41: error: `vrrp.v1.track[0].user`: user \"no-such-user-vigil2\" does not exist on this system"
        ),
    ] {
        assert!(err.contains(&line), "{line}\nnot in:\n{err}");
    }
}

/// vigild as the unit runs it, but with only `caps`: it must refuse to start an exec
/// check as `nobody`, saying what is missing.
fn refused_with(caps: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[director]\nname = \"caps\"\nstatus_socket = \"{}\"\nstate_file = \"{}\"\n\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\nreal_server = [{{ address = \"127.0.0.1:80\", check = {{ kind = \"exec\", command = [\"/bin/true\"] }} }}]\n",
            dir.path().join("vigil.sock").display(),
            dir.path().join("state.json").display()
        ),
    )
    .expect("config");
    std::os::unix::fs::chown(dir.path(), Some(DAEMON_ID), Some(DAEMON_ID)).expect("chown");
    std::os::unix::fs::chown(&path, Some(DAEMON_ID), Some(DAEMON_ID)).expect("chown");
    let out = Command::new("timeout")
        .args(["20", "unshare", "--net", "--", "setpriv"])
        .arg(format!("--reuid={DAEMON_ID}"))
        .arg(format!("--regid={DAEMON_ID}"))
        .arg("--clear-groups")
        .arg(format!("--inh-caps={caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg("--")
        .arg(bin_path("vigild"))
        .arg("--config")
        .arg(&path)
        .output()
        .expect("vigild");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        !dir.path().join("vigil.sock").exists(),
        "nothing may be started"
    );
    err
}

#[test]
fn without_setuid_exec_checks_as_another_user_are_refused_at_start() {
    vigil_testlab::require_or_skip!(prerequisites());
    let err = refused_with("+net_admin,+net_raw,+kill");
    assert!(
        err.contains("CAP_SETUID and CAP_SETGID are needed to run exec checks as user nobody"),
        "{err}"
    );
}

#[test]
fn without_a_cgroup_or_cap_kill_another_users_checks_are_refused_at_start() {
    vigil_testlab::require_or_skip!(prerequisites());
    let err = refused_with("+net_admin,+net_raw,+setuid,+setgid");
    assert!(
        err.contains("CAP_KILL or a delegated cgroup (systemd Delegate=yes) is needed to run exec checks as user nobody"),
        "{err}"
    );
}
