//! The scheduling rules, with an injected clock: no sleeps, no sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use vigil_check::{CheckKey, FailureCause, Health, Outcome, Scheduler, Target};
use vigil_config::{Check, CheckKind, InitialState, Protocol, ServiceKey};

const MS: Duration = Duration::from_millis(1);

fn key(n: u16) -> CheckKey {
    CheckKey {
        service: ServiceKey::Address {
            protocol: Protocol::Tcp,
            address: SocketAddr::from(([192, 0, 2, 1], 80)),
        },
        real: SocketAddr::from(([127, 0, 0, 1], n)),
        index: 0,
    }
}

fn check() -> Check {
    Check {
        kind: CheckKind::Tcp {
            send: None,
            expect: None,
        },
        interval: Duration::from_secs(1),
        timeout: Duration::from_millis(500),
        rise: 2,
        fall: 3,
        initial_state: InitialState::Down,
        retry_delay: None,
        start_spread: Duration::ZERO,
        address: None,
        port: None,
        bind: None,
        bind_port: None,
        bind_interface: None,
        fwmark: None,
    }
}

fn target(n: u16, check: Check) -> Target {
    Target {
        key: key(n),
        virtual_server: "web".into(),
        check,
        weight: 1,
        checks: 1,
    }
}

fn pass() -> Outcome {
    Outcome::pass("ok", MS)
}

fn fail() -> Outcome {
    Outcome::fail(FailureCause::Refused, "connect refused", MS)
}

/// Runs the single check once at `at`, returning the transition's health if any.
fn run_at(s: &mut Scheduler, at: Instant, outcome: Outcome) -> Option<Health> {
    let due = s.poll(at);
    assert_eq!(due.len(), 1, "exactly one check due at {at:?}");
    s.on_result(&due[0].key, due[0].run, outcome, at + MS)
        .map(|t| t.health)
}

#[test]
fn rises_after_rise_passes_and_falls_after_fall_failures() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    let mut at = t0;
    let mut seen = Vec::new();
    for outcome in [
        pass(),
        pass(),
        pass(),
        fail(),
        fail(),
        fail(),
        fail(),
        pass(),
    ] {
        seen.push(run_at(&mut s, at, outcome));
        at += Duration::from_secs(1);
    }
    assert_eq!(
        seen,
        [
            None,
            Some(Health::Up),
            None,
            None,
            None,
            Some(Health::Down),
            None,
            None
        ]
    );
    let st = s.status(&key(1)).expect("status");
    assert_eq!(
        (st.health, st.passes, st.failures, st.runs),
        (Health::Down, 1, 0, 8)
    );
}

#[test]
fn flapping_server_never_changes_health_without_enough_in_a_row() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(
        target(
            1,
            Check {
                initial_state: InitialState::Up,
                ..check()
            },
        ),
        t0,
    );
    let mut at = t0;
    for i in 0..50 {
        // pass, fail, fail, pass, ...: never 3 failures in a row
        let outcome = if i % 3 == 0 { pass() } else { fail() };
        assert_eq!(run_at(&mut s, at, outcome), None, "run {i}");
        at += Duration::from_secs(1);
    }
    assert_eq!(s.status(&key(1)).expect("status").health, Health::Up);
}

#[test]
fn transition_carries_the_deciding_reason() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, Check { rise: 1, ..check() }), t0);
    let due = s.poll(t0);
    let tr = s
        .on_result(
            &due[0].key,
            due[0].run,
            Outcome::pass("HTTP 200 from x", 3 * MS),
            t0 + MS,
        )
        .expect("transition");
    assert_eq!(
        (tr.health, tr.reason.as_str(), tr.latency),
        (Health::Up, "HTTP 200 from x", 3 * MS)
    );
    let st = s.status(&key(1)).expect("status");
    assert_eq!(
        st.last_change,
        Some((t0 + MS, "HTTP 200 from x".to_string()))
    );
}

/// The last failure's cause stays known after the server passes again, so `vigilctl
/// services` can show why an up server last failed.
#[test]
fn last_failure_is_kept_after_passes() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    assert_eq!(s.status(&key(1)).expect("status").last_failure, None);
    run_at(&mut s, t0, fail());
    let at = s.next_deadline().expect("due");
    run_at(&mut s, at, pass());
    let st = s.status(&key(1)).expect("status");
    assert_eq!(st.last.expect("last").outcome.cause, None);
    let last = st.last_failure.expect("a failure");
    assert_eq!((last.cause, last.at), (FailureCause::Refused, t0 + MS));
}

#[test]
fn never_overlaps_itself_and_keeps_cadence_from_the_due_time() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    let due = s.poll(t0);
    assert_eq!(due.len(), 1);
    // While running, nothing more is due, however late it gets.
    assert!(s.poll(t0 + Duration::from_secs(10)).is_empty());
    assert_eq!(s.next_deadline(), None);
    // Finished 400 ms later: next one due one interval after the previous due time.
    s.on_result(&due[0].key, due[0].run, pass(), t0 + 400 * MS);
    assert_eq!(s.next_deadline(), Some(t0 + Duration::from_secs(1)));
    assert!(s.poll(t0 + 999 * MS).is_empty());
    assert_eq!(s.poll(t0 + Duration::from_secs(1)).len(), 1);
}

#[test]
fn a_late_result_is_followed_at_once_not_in_a_burst() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    let due = s.poll(t0);
    // The result came back 5 s late (an overloaded shell): run again now, once.
    let late = t0 + Duration::from_secs(5);
    s.on_result(&due[0].key, due[0].run, pass(), late);
    assert_eq!(s.next_deadline(), Some(late));
    assert_eq!(s.poll(late).len(), 1);
    assert!(s.poll(late + Duration::from_secs(3)).is_empty());
}

#[test]
fn retry_delay_applies_while_a_failing_server_is_still_up() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    let c = Check {
        initial_state: InitialState::Up,
        retry_delay: Some(200 * MS),
        fall: 2,
        ..check()
    };
    s.add(target(1, c), t0);
    let due = s.poll(t0);
    s.on_result(&due[0].key, due[0].run, fail(), t0 + MS);
    assert_eq!(s.next_deadline(), Some(t0 + 200 * MS), "retry soon");
    let t1 = t0 + 200 * MS;
    let due = s.poll(t1);
    let tr = s.on_result(&due[0].key, due[0].run, fail(), t1 + MS);
    assert_eq!(tr.map(|t| t.health), Some(Health::Down));
    assert_eq!(
        s.next_deadline(),
        Some(t1 + Duration::from_secs(1)),
        "down: normal interval"
    );
    let t2 = t1 + Duration::from_secs(1);
    let due = s.poll(t2);
    s.on_result(&due[0].key, due[0].run, pass(), t2 + MS);
    assert_eq!(
        s.next_deadline(),
        Some(t2 + Duration::from_secs(1)),
        "pass: normal interval"
    );
}

#[test]
fn start_spread_spreads_first_runs_over_the_window() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(7);
    let n = 10_000u16;
    let spread = Duration::from_secs(1);
    for i in 0..n {
        s.add(
            target(
                i,
                Check {
                    start_spread: spread,
                    ..check()
                },
            ),
            t0,
        );
    }
    // Count the first runs in each 100 ms slice of the window.
    let mut per_slice = Vec::new();
    let mut total = 0;
    for slice in 1..=10 {
        let got = s.poll(t0 + slice * 100 * MS).len();
        total += got;
        per_slice.push(got);
    }
    assert_eq!(total, usize::from(n));
    for got in &per_slice {
        assert!((800..1200).contains(got), "uneven spread: {per_slice:?}");
    }
    // And no more than a handful in any single millisecond.
    let mut s = Scheduler::new(7);
    for i in 0..n {
        s.add(
            target(
                i,
                Check {
                    start_spread: spread,
                    ..check()
                },
            ),
            t0,
        );
    }
    let mut worst = 0;
    for ms in 0..=1000 {
        worst = worst.max(s.poll(t0 + ms * MS).len());
    }
    assert!(worst < 50, "{worst} checks in one millisecond");
}

#[test]
fn zero_spread_runs_at_once() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(7);
    s.add(target(1, check()), t0);
    assert_eq!(s.next_deadline(), Some(t0));
}

#[test]
fn initial_state_up_goes_down_after_fall_failures() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(
        target(
            1,
            Check {
                initial_state: InitialState::Up,
                ..check()
            },
        ),
        t0,
    );
    assert_eq!(s.status(&key(1)).expect("status").health, Health::Up);
    let mut at = t0;
    let got: Vec<_> = (0..3)
        .map(|_| {
            let h = run_at(&mut s, at, fail());
            at += Duration::from_secs(1);
            h
        })
        .collect();
    assert_eq!(got, [None, None, Some(Health::Down)]);
}

#[test]
fn unchanged_check_keeps_state_and_schedule_on_update() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, Check { rise: 1, ..check() }), t0);
    run_at(&mut s, t0, pass());
    let before = s.status(&key(1)).expect("status");
    let removed = s.set_targets(
        [Target {
            virtual_server: "renamed".into(),
            ..target(1, Check { rise: 1, ..check() })
        }],
        t0 + 500 * MS,
    );
    assert!(removed.is_empty());
    let after = s.status(&key(1)).expect("status");
    assert_eq!(
        (after.health, after.passes, after.next_due),
        (before.health, before.passes, before.next_due)
    );
    assert_eq!(after.target.virtual_server, "renamed");
}

#[test]
fn changed_check_keeps_health_and_restarts_counting() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, Check { rise: 1, ..check() }), t0);
    run_at(&mut s, t0, pass());
    let t1 = t0 + 500 * MS;
    s.update(
        target(
            1,
            Check {
                rise: 1,
                fall: 1,
                ..check()
            },
        ),
        t1,
    );
    let st = s.status(&key(1)).expect("status");
    assert_eq!(
        (st.health, st.passes, st.next_due),
        (Health::Up, 0, Some(t1))
    );
    assert_eq!(
        run_at(&mut s, t1, fail()),
        Some(Health::Down),
        "the new fall = 1 applies"
    );
}

#[test]
fn change_while_running_ignores_that_result_and_runs_the_new_check_next() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    let due = s.poll(t0);
    s.update(target(1, Check { rise: 1, ..check() }), t0 + MS);
    // Still running: the new check does not start alongside it.
    assert!(s.poll(t0 + 2 * MS).is_empty());
    assert_eq!(
        s.on_result(&due[0].key, due[0].run, pass(), t0 + 3 * MS),
        None
    );
    assert_eq!(
        s.status(&key(1)).expect("status").passes,
        0,
        "old result ignored"
    );
    assert_eq!(run_at(&mut s, t0 + 3 * MS, pass()), Some(Health::Up));
}

#[test]
fn removed_check_is_not_run_and_its_late_result_is_dropped() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    s.add(target(2, check()), t0 + MS);
    let due = s.poll(t0);
    assert_eq!(due.len(), 1);
    assert_eq!(s.set_targets([target(1, check())], t0), vec![key(2)]);
    assert!(s.poll(t0 + Duration::from_secs(5)).is_empty());
    assert!(s.remove(&key(1)));
    assert_eq!(s.on_result(&due[0].key, due[0].run, pass(), t0 + MS), None);
    assert!(s.is_empty());
    assert_eq!(s.next_deadline(), None);
    // A re-added check starts afresh.
    s.add(target(1, check()), t0 + Duration::from_secs(6));
    assert_eq!(s.status(&key(1)).expect("status").runs, 0);
}

#[test]
fn a_result_for_an_old_run_is_ignored() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, Check { rise: 1, ..check() }), t0);
    let first = s.poll(t0);
    s.on_result(&first[0].key, first[0].run, fail(), t0 + MS);
    let second = s.poll(t0 + Duration::from_secs(1));
    assert_eq!(
        s.on_result(
            &first[0].key,
            first[0].run,
            pass(),
            t0 + Duration::from_secs(1)
        ),
        None
    );
    assert!(s.status(&key(1)).expect("status").running);
    assert_eq!(
        s.on_result(
            &second[0].key,
            second[0].run,
            pass(),
            t0 + Duration::from_secs(1)
        )
        .map(|t| t.health),
        Some(Health::Up)
    );
}

#[test]
fn many_checks_each_run_once_per_interval() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(3);
    for i in 0..1000 {
        s.add(
            target(
                i,
                Check {
                    start_spread: Duration::from_secs(1),
                    ..check()
                },
            ),
            t0,
        );
    }
    let mut runs = 0;
    let mut now = t0;
    // 10 s in 10 ms steps, answering each check at once.
    for _ in 0..1000 {
        for due in s.poll(now) {
            assert!(now - due.due < 10 * MS);
            s.on_result(&due.key, due.run, pass(), now);
            runs += 1;
        }
        now += 10 * MS;
    }
    assert!((9000..=11000).contains(&runs), "{runs} runs");
}

#[test]
fn the_first_verdict_is_reported_even_when_it_confirms_the_initial_state() {
    // Initially down, and down it stays: reported once, after `fall` (3) failures, so the
    // daemon learns the server is really down (not just "not yet checked").
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    let seen: Vec<_> = (0..6)
        .map(|i| run_at(&mut s, t0 + Duration::from_secs(i), fail()))
        .collect();
    assert_eq!(seen, [None, None, Some(Health::Down), None, None, None]);

    // Initially up and up it stays: reported once, after `rise` (2) passes.
    let mut up = check();
    up.initial_state = InitialState::Up;
    let mut s = Scheduler::new(1);
    s.add(target(2, up), t0);
    let seen: Vec<_> = (0..4)
        .map(|i| run_at(&mut s, t0 + Duration::from_secs(i), pass()))
        .collect();
    assert_eq!(seen, [None, Some(Health::Up), None, None]);

    // A change before the initial state is confirmed is the first verdict: reported once.
    let mut s = Scheduler::new(1);
    s.add(target(3, check()), t0);
    let seen: Vec<_> = [pass(), pass(), fail(), fail(), fail()]
        .into_iter()
        .enumerate()
        .map(|(i, o)| run_at(&mut s, t0 + Duration::from_secs(i as u64), o))
        .collect();
    assert_eq!(
        seen,
        [None, Some(Health::Up), None, None, Some(Health::Down)]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Against a plain model: health flips exactly when `rise` passes or `fall`
        /// failures come in a row, the first verdict is reported even when it confirms
        /// the initial state, each transition carries the deciding reason, and the check
        /// is never handed out twice before its result is back.
        #[test]
        fn health_follows_the_rise_fall_model(
            rise in 1u32..5,
            fall in 1u32..5,
            start_up in any::<bool>(),
            retry in proptest::option::of(1u64..1000),
            outcomes in proptest::collection::vec(any::<bool>(), 1..200),
            delays in proptest::collection::vec(0u64..3000, 200),
        ) {
            let t0 = Instant::now();
            let mut s = Scheduler::new(9);
            let c = Check {
                rise,
                fall,
                initial_state: if start_up { InitialState::Up } else { InitialState::Down },
                retry_delay: retry.map(Duration::from_millis),
                ..check()
            };
            s.add(target(1, c), t0);
            let mut model_up = start_up;
            let mut settled = false;
            let (mut passes, mut fails) = (0u32, 0u32);
            let mut now = t0;
            for (i, passed) in outcomes.iter().enumerate() {
                now = s.next_deadline().expect("waiting").max(now);
                let due = s.poll(now);
                prop_assert_eq!(due.len(), 1);
                // Nothing more while it runs, however late.
                let later = now + Duration::from_millis(delays[i]);
                prop_assert!(s.poll(later + Duration::from_secs(60)).is_empty());
                let reason = format!("run {i}");
                let outcome = if *passed { Outcome::pass(&reason, MS) } else { Outcome::fail(FailureCause::Timeout, &reason, MS) };
                let tr = s.on_result(&due[0].key, due[0].run, outcome, later);
                if *passed { passes += 1; fails = 0; } else { fails += 1; passes = 0; }
                let flip = if model_up { !*passed && fails >= fall } else { *passed && passes >= rise };
                if flip { model_up = !model_up; }
                let confirmed = if model_up { passes >= rise } else { fails >= fall };
                let first = !settled && (confirmed || flip);
                settled |= first;
                prop_assert_eq!(tr.is_some(), flip || first, "run {}", i);
                if let Some(tr) = tr {
                    prop_assert_eq!(tr.health == Health::Up, model_up);
                    prop_assert_eq!(tr.reason, reason);
                }
                let next = s.next_deadline().expect("rescheduled");
                prop_assert!(next >= later);
                now = later;
            }
            let st = s.status(&key(1)).expect("status");
            prop_assert_eq!(st.health == Health::Up, model_up);
            prop_assert_eq!((st.passes, st.failures), (passes, fails));
        }
    }
}

/// The checker polls a little ahead (`CheckerOptions::batch_window`) to run the checks due
/// within a few milliseconds in one wakeup. A run started early keeps its place: the
/// next one is due one interval after this one was *due*, not after it started.
#[test]
fn a_run_started_early_keeps_its_schedule() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    let mut slower = check();
    slower.interval = Duration::from_millis(1004);
    s.add(target(2, slower), t0);
    for due in s.poll(t0) {
        s.on_result(&due.key, due.run, pass(), t0);
    }
    // Due at t0 + 1 s and t0 + 1.004 s: a poll at 1 s with a 5 ms window takes both.
    let woke = t0 + Duration::from_secs(1);
    assert_eq!(s.poll(woke).len(), 1);
    let early = s.poll(woke + 5 * MS);
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].key, key(2));
    assert_eq!(early[0].due, t0 + Duration::from_millis(1004));
    // Its result comes back before it was even due: the next run is still due one
    // interval after the due time.
    s.on_result(&early[0].key, early[0].run, pass(), woke + MS);
    assert_eq!(
        s.status(&key(2)).and_then(|st| st.next_due),
        Some(t0 + Duration::from_millis(2008))
    );
}

#[test]
fn poll_at_most_takes_the_earliest_due_first() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    for n in 1..=5u16 {
        let mut c = check();
        c.interval = Duration::from_millis(1000 + u64::from(n));
        s.add(target(n, c), t0);
    }
    for due in s.poll(t0) {
        s.on_result(&due.key, due.run, pass(), t0);
    }
    let woke = t0 + Duration::from_secs(1);
    let first = s.poll_at_most(woke + 10 * MS, 2);
    let keys: Vec<_> = first.iter().map(|d| d.key).collect();
    assert_eq!(keys, vec![key(1), key(2)]);
    assert_eq!(s.poll_at_most(woke + 10 * MS, 0).len(), 0);
    assert_eq!(s.poll(woke + 10 * MS).len(), 3, "the rest are still there");
}

/// A file check's file changed: the check runs now, or again at once if it is running.
#[test]
fn trigger_makes_a_check_due_now_or_runs_it_again() {
    let t0 = Instant::now();
    let mut s = Scheduler::new(1);
    s.add(target(1, check()), t0);
    let due = s.poll(t0);
    assert_eq!(due.len(), 1);
    // Triggered while running: the next run is due when the result is back.
    assert!(s.trigger(&key(1), t0 + 10 * MS));
    s.on_result(&key(1), due[0].run, pass(), t0 + 20 * MS);
    assert_eq!(s.next_deadline(), Some(t0 + 20 * MS));
    let due = s.poll(t0 + 20 * MS);
    assert_eq!(due.len(), 1);
    s.on_result(&key(1), due[0].run, pass(), t0 + 30 * MS);
    // Back on its interval from the run that was due at 20 ms...
    assert_eq!(s.next_deadline(), Some(t0 + 1020 * MS));
    // ...until a trigger moves it to now.
    assert!(s.trigger(&key(1), t0 + 500 * MS));
    assert_eq!(s.next_deadline(), Some(t0 + 500 * MS));
    assert_eq!(s.poll(t0 + 500 * MS).len(), 1);
    assert!(!s.trigger(&key(2), t0 + 500 * MS), "unknown check");
}
