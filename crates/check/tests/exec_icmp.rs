//! exec checks running real programs as `nobody` (the tests run as root), and an ICMP
//! echo to loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{check, once, target};
use vigil_check::FailureCause;
use vigil_config::CheckKind;

fn exec(argv: &[&str]) -> CheckKind {
    CheckKind::Exec {
        command: argv.iter().map(|s| s.to_string()).collect(),
        user: "nobody".into(),
        dynamic_weight: false,
    }
}

fn real() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// Processes whose command line contains `marker`.
fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(marker) {
                found.push(format!(
                    "{}: {cmdline}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    found
}

#[tokio::test]
async fn exit_zero_passes_and_non_zero_fails() {
    let r = once(target(real(), check(exec(&["/bin/true"])))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, "/bin/true exited 0");
    let r = once(target(real(), check(exec(&["/bin/sh", "-c", "exit 3"])))).await;
    assert!(!r.passed);
    assert_eq!(r.reason, "/bin/sh exited with status 3");
    assert_eq!(r.cause, Some(FailureCause::ExecExit));
    let script = "echo; echo '  replica lag 300s  ' >&2; echo second line >&2; exit 2";
    let r = once(target(real(), check(exec(&["/bin/sh", "-c", script])))).await;
    assert_eq!(r.reason, "/bin/sh exited with status 2: replica lag 300s");
}

#[tokio::test]
async fn runs_as_the_user_with_the_real_server_in_its_environment_and_no_shell() {
    let script = r#"test "$(id -un)" = nobody && test "$VIGIL_REAL_ADDRESS" = 127.0.0.1 &&
        test "$VIGIL_REAL_PORT" = 8080 && test "$VIGIL_CHECK_PORT" = 9090 &&
        test "$VIGIL_VIRTUAL_SERVER" = web && test "$1" = 'a b;c'"#;
    let mut c = check(exec(&["/bin/sh", "-c", script, "sh", "a b;c"]));
    c.port = Some(9090);
    let r = once(target(real(), c)).await;
    assert!(r.passed, "{r:?}");
}

#[tokio::test]
async fn hanging_program_and_its_children_are_killed_at_the_timeout() {
    let marker = "313.25";
    // The children also hold stderr open: neither may delay the verdict past the timeout.
    let script = format!("sleep {marker} & sleep {marker} & sleep {marker}; wait");
    let mut c = check(exec(&["/bin/sh", "-c", &script]));
    c.timeout = Duration::from_millis(500);
    let r = once(target(real(), c)).await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        "/bin/sh did not exit within 500ms: its process tree was killed"
    );
    assert_eq!(r.cause, Some(FailureCause::ExecTimeout));
    // SIGKILL is asynchronous: give the kernel a moment to finish them off.
    let mut left = processes_with(marker);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = processes_with(marker);
    }
    assert!(left.is_empty(), "still running: {left:?}");
}

#[tokio::test]
async fn unknown_user_and_missing_program_fail_with_reason() {
    let r = once(target(
        real(),
        check(CheckKind::Exec {
            command: vec!["/bin/true".into()],
            user: "no-such-user-vigil".into(),
            dynamic_weight: false,
        }),
    ))
    .await;
    assert!(!r.passed);
    assert_eq!(
        r.reason,
        "user \"no-such-user-vigil\" does not exist on this system"
    );
    assert_eq!(r.cause, Some(FailureCause::Setup));
    let r = once(target(real(), check(exec(&["/nonexistent/check"])))).await;
    assert_eq!(
        r.reason,
        "cannot run /nonexistent/check as user nobody: cannot execute: No such file or directory"
    );
}

#[tokio::test]
async fn icmp_echo_to_loopback() {
    let r = once(target(real(), check(CheckKind::Icmp))).await;
    assert!(r.passed, "{r:?}");
    assert_eq!(r.reason, "echo reply from 127.0.0.1");
    assert_eq!(r.check, "icmp 127.0.0.1");
}

#[tokio::test]
async fn a_background_child_holding_stderr_does_not_hang_a_passing_check() {
    let marker = "317.5";
    let script = format!("sleep {marker} & exit 0");
    let mut c = check(exec(&["/bin/sh", "-c", &script]));
    c.timeout = Duration::from_secs(3);
    let r = once(target(real(), c)).await;
    assert!(r.passed, "{r:?}");
    assert!(r.latency < Duration::from_secs(3));
    // What a finished check left running is killed with it.
    let mut left = processes_with(marker);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = processes_with(marker);
    }
    assert!(left.is_empty(), "still running: {left:?}");
}

/// Dropping the last handle of a checker (which runs on a thread of its own) returns
/// only when that thread has stopped: running exec probes are killed by then.
#[tokio::test]
async fn dropping_the_checker_kills_running_exec_probes() {
    let marker = "313.75";
    let mut c = check(exec(&["/bin/sh", "-c", &format!("sleep {marker}")]));
    c.interval = Duration::from_secs(60);
    c.timeout = Duration::from_secs(50);
    let (checker, _events) = vigil_check::Checker::spawn(
        vec![target(real(), c)],
        vigil_check::CheckerOptions::default(),
    );
    let mut started = false;
    for _ in 0..200 {
        if !processes_with(marker).is_empty() {
            started = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(started, "the probe never started");
    drop(checker);
    // SIGKILL is asynchronous: give the kernel a moment to finish them off.
    let mut left = processes_with(marker);
    for _ in 0..100 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
        left = processes_with(marker);
    }
    assert!(left.is_empty(), "still running: {left:?}");
}
