//! The tokio shell end to end: a real flapping HTTP server, hysteresis seen as events,
//! snapshots, reloads and stats.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{check, http, http_server, response, target};
use vigil_check::{Checker, CheckerOptions, Health, HealthEvent, HealthEvents};
use vigil_config::CheckKind;

async fn next_event(events: &mut HealthEvents) -> HealthEvent {
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .expect("an event within 30 s")
        .expect("checker running")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_server_shows_rise_fall_hysteresis() {
    // The server's answers in order, one per check; then 200 for ever.
    let script = [200, 503, 200, 200, 503, 200, 503, 503];
    let served = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let (addr, _) = http_server(move |_| {
        let i = counter.fetch_add(1, Ordering::SeqCst);
        match script.get(i).copied().unwrap_or(200) {
            200 => response("200 OK", "ok"),
            _ => response("503 Service Unavailable", "no"),
        }
    })
    .await;
    let mut c = check(CheckKind::Http(http("/healthz")));
    // Generous for a loopback answer even on a loaded CI machine: a timeout here would
    // change the script's verdicts.
    c.interval = Duration::from_millis(500);
    c.timeout = Duration::from_millis(450);
    c.rise = 2;
    c.fall = 2;
    let t = target(addr, c);
    let options = CheckerOptions {
        seed: 1,
        ..CheckerOptions::default()
    };
    let (checker, mut events) = Checker::spawn(vec![t.clone()], options);

    let up = next_event(&mut events).await;
    assert_eq!((up.key, up.health), (t.key, Health::Up));
    assert_eq!(up.reason, format!("HTTP 200 from {addr} GET /healthz"));
    assert_eq!(
        served.load(Ordering::SeqCst),
        4,
        "up after the 2nd pass in a row"
    );
    let down = next_event(&mut events).await;
    assert_eq!(down.health, Health::Down);
    assert_eq!(down.reason, format!("HTTP 503 from {addr} GET /healthz"));
    assert_eq!(
        served.load(Ordering::SeqCst),
        8,
        "down after the 2nd failure in a row"
    );
    assert_eq!(down.virtual_server, "web");

    let snap = checker.snapshot().await.expect("snapshot");
    let state = snap.get(&t.key).expect("state");
    assert_eq!(state.health, Health::Down);
    assert_eq!(state.kind, "http");
    assert!(state.runs >= 8);
    let change = state.last_change.as_ref().expect("changed");
    assert_eq!(change.reason, down.reason);
    let json = serde_json::to_value(&snap).expect("serialisable");
    assert_eq!(json["checks"][0]["health"], "down");

    // It comes back up after two passes; an unchanged reload keeps that state.
    let up = next_event(&mut events).await;
    assert_eq!(up.health, Health::Up);
    checker.update(vec![t.clone()]).expect("update");
    let after = checker.snapshot().await.expect("snapshot");
    let state = after.get(&t.key).expect("state");
    assert_eq!(state.health, Health::Up);
    assert!(
        state.runs >= 10,
        "runs kept across the reload: {}",
        state.runs
    );

    let stats = checker.stats(true).await.expect("stats");
    assert!(stats.checks >= 10 && stats.failed == 4, "{stats:?}");
    assert!(stats.lateness.samples >= 10);

    // Removed on reload: gone from the snapshot, no more probes.
    checker.update(vec![]).expect("update");
    assert!(
        checker
            .snapshot()
            .await
            .expect("snapshot")
            .checks
            .is_empty()
    );
}

#[tokio::test]
async fn a_hung_server_does_not_stall_the_others() {
    let (slow, _) = http_server(|_| common::Reply::Hang).await;
    let (fast, hits) = http_server(|_| response("200 OK", "ok")).await;
    let mut c = check(CheckKind::Http(http("/")));
    c.interval = Duration::from_secs(1);
    c.timeout = Duration::from_millis(900);
    let mut slow_c = c.clone();
    slow_c.initial_state = vigil_config::InitialState::Up;
    let targets = vec![target(slow, slow_c), target(fast, c)];
    let (checker, mut events) = Checker::spawn(targets, CheckerOptions::default());
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let e = next_event(&mut events).await;
        seen.push((e.key.real, e.health, e.reason));
    }
    assert!(
        seen.contains(&(fast, Health::Up, format!("HTTP 200 from {fast} GET /"))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(
            slow,
            Health::Down,
            format!("no reply within 900ms (http GET / {slow})")
        )),
        "{seen:?}"
    );
    assert!(hits.load(Ordering::SeqCst) >= 1);
    drop(checker);
}

/// By default the checker has a thread of its own: checks go on while the caller's
/// runtime is busy (here: its only thread blocked); on the caller's runtime they wait.
#[tokio::test]
async fn own_thread_checks_while_the_callers_runtime_is_blocked() {
    // The kernel completes handshakes without accept(): no task needed to serve them.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut c = check(CheckKind::Tcp {
        send: None,
        expect: None,
    });
    c.interval = Duration::from_millis(50);
    c.timeout = Duration::from_millis(40);
    for own_thread in [true, false] {
        let t = target(addr, c.clone());
        let options = CheckerOptions {
            own_thread,
            ..CheckerOptions::default()
        };
        let (checker, _events) = Checker::spawn(vec![t.clone()], options);
        std::thread::sleep(Duration::from_millis(500));
        let runs = checker.snapshot().await.unwrap().get(&t.key).unwrap().runs;
        if own_thread {
            assert!(runs >= 3, "{runs} runs in 500 ms on its own thread");
        } else {
            // Nothing ran while blocked; at most the first run once the runtime was free.
            assert!(runs <= 1, "{runs} runs on the blocked caller's runtime");
        }
    }
    drop(listener);
}

#[tokio::test]
async fn checks_split_over_threads_act_as_one_checker() {
    // Twelve real servers (one listener each on 127.0.0.1, distinct ports), one of them
    // closed: the three schedulers report every verdict, one snapshot and one set of
    // counters cover them all, and a reload reaches each.
    let listeners: Vec<_> = (0..11)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut c = check(CheckKind::Tcp {
        send: None,
        expect: None,
    });
    c.interval = Duration::from_millis(100);
    c.timeout = Duration::from_millis(90);
    let mut targets: Vec<_> = listeners
        .iter()
        .map(|l| target(l.local_addr().unwrap(), c.clone()))
        .collect();
    targets.push(target(closed, c.clone()));
    let options = CheckerOptions {
        threads: 3,
        ..CheckerOptions::default()
    };
    let (checker, mut events) = Checker::spawn(targets.clone(), options);
    let mut verdicts = std::collections::HashMap::new();
    while verdicts.len() < targets.len() {
        let event = next_event(&mut events).await;
        verdicts.insert(event.key.real, event.health);
    }
    assert_eq!(verdicts[&closed], Health::Down);
    assert_eq!(verdicts.values().filter(|h| **h == Health::Up).count(), 11);
    let snapshot = checker.snapshot().await.unwrap();
    let reals: Vec<_> = snapshot.checks.iter().map(|c| c.key.real).collect();
    let mut sorted = reals.clone();
    sorted.sort();
    assert_eq!(reals, sorted, "one list, sorted by real server");
    assert_eq!(reals.len(), targets.len());
    let stats = checker.stats(true).await.unwrap();
    assert!(stats.checks >= targets.len() as u64, "{stats:?}");
    assert_eq!(stats.per_kind["tcp"].passed, stats.passed);
    assert!(stats.failed >= 1, "the closed port: {stats:?}");
    // A reload with half the servers: the others are gone from every scheduler.
    checker.update(targets[..6].to_vec()).unwrap();
    let snapshot = checker.snapshot().await.unwrap();
    assert_eq!(snapshot.checks.len(), 6);
    drop(listeners);
}

#[test]
fn thread_count_follows_the_check_rate() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let every = |n: usize, interval_ms: u64| {
        let mut c = check(CheckKind::Tcp {
            send: None,
            expect: None,
        });
        c.interval = Duration::from_millis(interval_ms);
        (0..n)
            .map(|i| {
                let real =
                    std::net::SocketAddr::from(([127, 1, (i / 250) as u8, (i % 250) as u8], 80));
                target(real, c.clone())
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(vigil_check::threads_for(&[]), 1);
    assert_eq!(vigil_check::threads_for(&every(1000, 1000)), 1);
    assert_eq!(vigil_check::threads_for(&every(2500, 1000)), 1);
    assert_eq!(vigil_check::threads_for(&every(5000, 1000)), 2.min(cpus));
    assert_eq!(vigil_check::threads_for(&every(5000, 100)), 4.min(cpus));
}

/// What a supervisor watches: an idle scheduler still beats every HEARTBEAT, and a
/// scheduler thread that panics records why (debug builds inject the panic).
#[cfg(debug_assertions)]
#[tokio::test]
async fn schedulers_beat_while_idle_and_record_their_end() {
    let (checker, _events) = Checker::spawn(Vec::new(), CheckerOptions::default());
    let live = checker.liveness();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].name, "checker");
    let before = live[0].beats.load(Ordering::Relaxed);
    tokio::time::sleep(vigil_check::HEARTBEAT * 2 + Duration::from_millis(500)).await;
    assert!(
        live[0].beats.load(Ordering::Relaxed) >= before + 2,
        "an idle scheduler must still turn its loop"
    );
    assert!(live[0].end.get().is_none());
    checker.test_fault(vigil_child::TestFault::Panic);
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(why) = live[0].end.get() {
                return why.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the end is recorded");
    assert_eq!(ended, "panicked: test fault: checker panics");
}
