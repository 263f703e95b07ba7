//! Several checks per real server, file checks (keepalived's FILE_CHECK) seen through
//! inotify, and exec checks with a dynamic weight (keepalived's `misc_dynamic`), through
//! the real checker with real files and programs.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{check, closed_port, target};
use vigil_check::{Checker, CheckerOptions, Health, HealthEvent, HealthEvents, Target};
use vigil_config::{CheckKind, FileCheck};

async fn next_event(events: &mut HealthEvents) -> HealthEvent {
    tokio::time::timeout(Duration::from_secs(20), events.recv())
        .await
        .expect("an event within 20 s")
        .expect("checker running")
}

/// A fresh directory of this test's own under the target dir's tmp (unique per test).
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vigil-file-check-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn file(path: &std::path::Path, weight: i32, reverse: bool) -> CheckKind {
    CheckKind::File(FileCheck {
        path: path.to_path_buf(),
        weight,
        reverse,
    })
}

/// `kinds` as the checks of one real server (weight 10) on a closed or open port.
fn server(real: std::net::SocketAddr, kinds: Vec<CheckKind>, interval: Duration) -> Vec<Target> {
    let n = kinds.len() as u16;
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            let mut c = check(k);
            c.interval = interval;
            // Generous: a loaded machine may take long to start a program.
            c.timeout = interval * 9 / 10;
            let mut t = target(real, c);
            t.key.index = i as u16;
            t.checks = n;
            t.weight = 10;
            t
        })
        .collect()
}

fn options() -> CheckerOptions {
    CheckerOptions {
        seed: 1,
        ..CheckerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_check_follows_its_file_at_once_through_inotify() {
    let dir = scratch("inotify");
    let down = dir.join("down");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let real = listener.local_addr().expect("addr");
    // A long interval: only inotify can make the changes seen within the test's waits.
    let targets = server(
        real,
        vec![
            CheckKind::Tcp {
                send: None,
                expect: None,
            },
            file(&down, 0, false),
        ],
        Duration::from_secs(30),
    );
    let (checker, mut events) = Checker::spawn(targets.clone(), options());
    // The file is missing: 0, up (both checks must pass for the first verdict).
    let e = next_event(&mut events).await;
    assert_eq!(e.health, Health::Up, "{e:?}");
    assert_eq!(e.weight, None);

    let t0 = Instant::now();
    std::fs::write(&down, "1\n").expect("write");
    let e = next_event(&mut events).await;
    assert_eq!(e.health, Health::Down);
    assert_eq!(e.key.index, 1);
    assert_eq!(
        e.reason,
        format!("{} reads 1 (non-zero means down)", down.display())
    );
    let seen = t0.elapsed();
    println!("file check: down {seen:?} after the write (interval 30s)");
    assert!(
        seen < Duration::from_secs(10),
        "seen through inotify, not the poll"
    );

    // Replaced by a rename (as editors and config tools do): still seen.
    let tmp = dir.join(".down.tmp");
    std::fs::write(&tmp, "0").expect("write");
    std::fs::rename(&tmp, &down).expect("rename");
    let e = next_event(&mut events).await;
    assert_eq!(e.health, Health::Up);

    // Per-check state in the snapshot: both checks of the one real server.
    let snap = checker.snapshot().await.expect("snapshot");
    let kinds: Vec<_> = snap.checks.iter().map(|c| (c.key.index, c.kind)).collect();
    assert_eq!(kinds, [(0, "tcp"), (1, "file")]);
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_check_must_pass() {
    let dir = scratch("all");
    let real = closed_port().await;
    // The file check passes, the tcp check cannot: the server is down, and the tcp
    // check is what says why.
    let targets = server(
        real,
        vec![
            file(&dir.join("absent"), 0, false),
            CheckKind::Tcp {
                send: None,
                expect: None,
            },
        ],
        Duration::from_millis(200),
    );
    let (_checker, mut events) = Checker::spawn(targets, options());
    let e = next_event(&mut events).await;
    assert_eq!(e.health, Health::Down);
    assert_eq!(e.key.index, 1);
    assert!(e.reason.contains("refused"), "{}", e.reason);
    let _ = std::fs::remove_dir_all(&dir);
}

/// keepalived.conf(5), MISC_CHECK misc_dynamic: exit 0 keeps the weight, 1 fails,
/// 2–255 pass with the weight set to the status minus 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_dynamic_weight_follows_the_exit_status() {
    let dir = scratch("dynamic");
    // The script exits with the status in its file; nobody must read it.
    let status = dir.join("status");
    std::fs::write(&status, "0").expect("write");
    set_mode(&dir, 0o755);
    set_mode(&status, 0o644);
    let script = format!("exit $(cat {})", status.display());
    let targets = server(
        closed_port().await,
        vec![CheckKind::Exec {
            command: vec!["/bin/sh".into(), "-c".into(), script],
            user: "nobody".into(),
            dynamic_weight: true,
        }],
        Duration::from_secs(1),
    );
    let (_checker, mut events) = Checker::spawn(targets, options());
    // Exit 0: up at the configured weight (10).
    let e = next_event(&mut events).await;
    assert_eq!((e.health, e.weight), (Health::Up, Some(10)), "{e:?}");
    for (exit, health, weight) in [
        ("27", Health::Up, 25),
        // Exit 1 fails; the weight is kept for when it comes back.
        ("1", Health::Down, 25),
        ("5", Health::Up, 3),
        ("2", Health::Up, 0),
    ] {
        std::fs::write(&status, exit).expect("write");
        let e = next_event(&mut events).await;
        assert_eq!(
            (e.health, e.weight),
            (health, Some(weight)),
            "exit {exit}: {e:?}"
        );
    }
    // Exit 0 again keeps weight 0: no event.
    std::fs::write(&status, "0").expect("write");
    let quiet = tokio::time::timeout(Duration::from_millis(2500), events.recv()).await;
    assert!(quiet.is_err(), "no change on exit 0: {quiet:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}
