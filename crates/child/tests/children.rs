//! The sandbox and the tree kill in this process (fallback mode: subreaper and process
//! groups; the delegated-cgroup mode runs with the real daemon in tests/child_sandbox.rs).

use std::time::{Duration, Instant};

use vigil_child::{Command, Options, RunAs, Status};

fn setup() {
    let _ = vigil_child::init(Options {
        own_all_children: true,
        use_cgroup: false,
    });
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("/bin/sh");
    c.args = vec!["-c".into(), script.into()];
    c.timeout = Duration::from_secs(10);
    c
}

/// Pids of live (non-zombie) processes whose environment holds `marker`.
fn holding(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = stat
            .rfind(')')
            .is_some_and(|i| stat[i + 1..].trim_start().starts_with('Z'));
        if !zombie && env.windows(marker.len()).any(|w| w == marker.as_bytes()) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_child_has_no_capabilities_a_clean_environment_and_its_own_session() {
    setup();
    let mut c = sh(
        "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; echo ENV; env; echo SID $(cut -d' ' -f6 /proc/self/stat) PID $$; ls -l /proc/self/fd/0",
    );
    c.env = vec![("VIGIL_X".into(), "1".into())];
    if root() {
        c.run_as = vigil_child::lookup_user("nobody").expect("nobody");
    }
    let out = rt().block_on(vigil_child::run(&c)).expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.success(), "{out:?}");
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        let line = text
            .lines()
            .find(|l| l.starts_with(set))
            .unwrap_or_else(|| panic!("no {set} in {text}"));
        let v = line.split_whitespace().nth(1).unwrap_or("");
        if set == "CapBnd" && !root() {
            continue;
        }
        assert_eq!(u64::from_str_radix(v, 16), Ok(0), "{line}");
    }
    assert!(text.contains("NoNewPrivs:\t1"), "{text}");
    let env: Vec<&str> = text
        .split("ENV\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .take_while(|l| !l.starts_with("SID"))
        .map(|l| l.split('=').next().unwrap_or(""))
        .collect();
    for k in &env {
        assert!(
            ["PATH", "LANG", "VIGIL_X", "PWD", "SHLVL", "_"].contains(k),
            "unexpected variable {k}: {text}"
        );
    }
    let sid_line = text.lines().find(|l| l.starts_with("SID")).expect("SID");
    let f: Vec<&str> = sid_line.split_whitespace().collect();
    assert_eq!(f[1], f[3], "session leader: {sid_line}");
    assert!(text.contains("/dev/null"), "stdin: {text}");
}

#[test]
fn a_child_has_transparent_huge_pages_back_when_the_daemon_turned_them_off() {
    setup();
    // As vigild does at start (vigild::memory::no_huge_pages).
    // SAFETY: prctl with plain integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) },
        0
    );
    let out = rt()
        .block_on(vigil_child::run(&sh("grep THP_enabled /proc/self/status")))
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), "THP_enabled:\t1", "{out:?}");
}

#[test]
fn output_is_captured_up_to_the_limit_and_the_failure_line_is_stderr_first() {
    setup();
    let mut c = sh("head -c 100000 /dev/zero | tr '\\0' x; echo; echo 'it broke' >&2; exit 3");
    c.output_limit = 1000;
    let out = rt().block_on(vigil_child::run(&c)).expect("runs");
    assert_eq!(out.status, Status::Exited(3));
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.first_line().as_deref(), Some("it broke"));
}

#[test]
fn a_missing_program_is_a_spawn_error() {
    setup();
    let c = Command::new("/nonexistent/program");
    let e = rt().block_on(vigil_child::run(&c)).expect_err("fails");
    assert!(
        matches!(
            e,
            vigil_child::SpawnError::Child {
                not_found: true,
                ..
            }
        ),
        "{e}"
    );
}

/// A program that forks, detaches (setsid, double fork) and ignores SIGTERM.
fn escaping(marker: &str, timeout: Duration) -> Command {
    let mut c = sh(
        "trap '' TERM; (setsid sh -c 'trap \"\" TERM; (trap \"\" TERM; sleep 30) & (sleep 30 &) ; sleep 30' &) ; sleep 30 & sleep 30",
    );
    c.env = vec![("VIGIL_LEAK_MARK".into(), marker.into())];
    c.timeout = timeout;
    if root() {
        c.run_as = vigil_child::lookup_user("nobody").expect("nobody");
    }
    c
}

fn wait_gone(marker: &str) -> Vec<i32> {
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left = holding(marker);
        if left.is_empty() || Instant::now() > until {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_timed_out_tree_that_detached_is_killed_whole() {
    setup();
    let marker = format!("mark-timeout-{}", std::process::id());
    let rt = rt();
    let runs = 200;
    for _ in 0..runs {
        let out = rt
            .block_on(vigil_child::run(&escaping(
                &marker,
                Duration::from_millis(20),
            )))
            .expect("runs");
        assert_eq!(out.status, Status::TimedOut { killed: true });
    }
    assert_eq!(wait_gone(&marker), Vec::<i32>::new(), "left behind");
}

#[test]
fn what_a_finished_child_left_running_is_killed() {
    setup();
    let marker = format!("mark-exit-{}", std::process::id());
    let mut c = sh("(setsid sh -c 'trap \"\" TERM; sleep 30' &); (sleep 30 &); exit 0");
    c.env = vec![("VIGIL_LEAK_MARK".into(), marker.clone())];
    if root() {
        c.run_as = vigil_child::lookup_user("nobody").expect("nobody");
    }
    let out = rt().block_on(vigil_child::run(&c)).expect("runs");
    assert!(out.success(), "{out:?}");
    assert_eq!(wait_gone(&marker), Vec::<i32>::new(), "left behind");
}

#[test]
fn dropping_the_future_kills_the_tree() {
    setup();
    let marker = format!("mark-drop-{}", std::process::id());
    let c = escaping(&marker, Duration::from_secs(30));
    let rt = rt();
    rt.block_on(async {
        let r = tokio::time::timeout(Duration::from_millis(200), vigil_child::run(&c)).await;
        assert!(r.is_err(), "still running");
    });
    assert_eq!(wait_gone(&marker), Vec::<i32>::new(), "left behind");
}

#[test]
fn a_slow_hook_coalesces_to_the_latest_in_order() {
    setup();
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("log");
    let rt = rt();
    rt.block_on(async {
        let hooks = vigil_child::hook::HookRunner::spawn("test".into(), 1);
        for i in 0..50 {
            let mut c = sh(&format!("sleep 0.05; echo {i} >> {}", log.display()));
            c.run_as = RunAs::Daemon;
            hooks.submit(c);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(hooks.coalesced() > 40, "coalesced {}", hooks.coalesced());
    });
    let text = std::fs::read_to_string(&log).expect("log");
    let seen: Vec<u32> = text.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(seen.len() < 10, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order: {seen:?}");
    assert_eq!(seen.last(), Some(&49), "the latest is delivered: {seen:?}");
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_tree_and_the_next_one_runs() {
    setup();
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("log");
    let marker = format!("mark-hook-{}", std::process::id());
    let rt = rt();
    rt.block_on(async {
        let hooks = vigil_child::hook::HookRunner::spawn("test".into(), 4);
        let mut slow = escaping(&marker, Duration::from_millis(200));
        slow.run_as = RunAs::Daemon;
        hooks.submit(slow);
        let mut next = sh(&format!("echo next >> {}", log.display()));
        next.run_as = RunAs::Daemon;
        hooks.submit(next);
        let until = Instant::now() + Duration::from_secs(5);
        while !log.exists() && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    assert!(log.exists(), "the hook after the slow one ran");
    assert_eq!(wait_gone(&marker), Vec::<i32>::new(), "left behind");
}
