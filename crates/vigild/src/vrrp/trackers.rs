//! Tracked objects: an instance's own interface, `track` interfaces, programs, virtual
//! servers, files and processes, summed up into the priority weight and fault the runner
//! is told.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};
use vigil_config::{ProcessTrack, TrackTarget, VrrpInstance};
use vigil_vrrp::io::Control;
use vigil_vrrp::{ProcessQuorum, RiseFall, Tracked, TrackedSummary, summarize};

/// One tracked object's current state.
struct Tracker {
    weight: i32,
    reverse: bool,
    kind: TrackerKind,
}

enum TrackerKind {
    Interface(String),
    /// `None` until the program's first run ended.
    Exec(watch::Receiver<Option<bool>>),
    VirtualServer(String),
    /// The file's number (keepalived's reading of it); `None` until first read.
    File(watch::Receiver<Option<i64>>),
    /// Whether the process quorum holds; `None` until the first scan.
    Process(watch::Receiver<Option<bool>>),
}

/// Watches an instance's tracked objects and sends their summary whenever it changes.
/// A program not run yet (a file not read yet, processes not counted yet) counts as up;
/// with `await_execs` (a tracker replaced by a reload, while the runner still holds the
/// old summary) a summary such an object would decide is held back until it is known, at
/// most [`AWAIT_EXECS_MAX`].
pub(super) async fn track(
    v: VrrpInstance,
    control: mpsc::Sender<Control>,
    mut vs_health: watch::Receiver<HashMap<String, bool>>,
    mut ipvs_faults: watch::Receiver<HashMap<String, String>>,
    await_execs: bool,
) {
    let mut execs = JoinSet::new();
    // Programs, files and processes wake the loop when their result changes (links wake
    // it through their events).
    let woken = Arc::new(Notify::new());
    // The instance's own interface: without a link it can neither hear nor be heard.
    let mut trackers = vec![Tracker {
        weight: 0,
        reverse: false,
        kind: TrackerKind::Interface(v.interface.clone()),
    }];
    for t in &v.track {
        let kind = match &t.target {
            TrackTarget::Interface(name) => TrackerKind::Interface(name.clone()),
            TrackTarget::VirtualServer(name) => TrackerKind::VirtualServer(name.clone()),
            TrackTarget::Exec {
                command,
                interval,
                timeout,
                user,
                rise,
                fall,
                init_fail,
            } => {
                let counter = RiseFall::new(*rise, *fall, *init_fail);
                let (tx, rx) = watch::channel(counter.state());
                execs.spawn(run_exec_track(
                    v.name.clone(),
                    command.clone(),
                    *interval,
                    *timeout,
                    user.clone(),
                    counter,
                    tx,
                    woken.clone(),
                ));
                TrackerKind::Exec(rx)
            }
            TrackTarget::File(path) => {
                let (tx, rx) = watch::channel(None);
                execs.spawn(run_file_track(
                    v.name.clone(),
                    path.clone(),
                    tx,
                    woken.clone(),
                ));
                TrackerKind::File(rx)
            }
            TrackTarget::Process(p) => {
                let (tx, rx) = watch::channel(None);
                execs.spawn(run_process_track(
                    v.name.clone(),
                    p.clone(),
                    tx,
                    woken.clone(),
                ));
                TrackerKind::Process(rx)
            }
        };
        trackers.push(Tracker {
            weight: t.weight,
            reverse: t.reverse,
            kind,
        });
    }
    let mut last = None;
    let hold_until = await_execs.then(|| tokio::time::Instant::now() + AWAIT_EXECS_MAX);
    // Links followed from the kernel's link events (RTNLGRP_LINK), not polled: a link
    // going down reaches the runner at once. Without the subscription, every link is
    // asked once a second.
    let mut links = open_link_watch(&v.name).await;
    loop {
        let health = vs_health.borrow_and_update().clone();
        // `None`: an exec program that has not run yet.
        let states: Vec<(i32, Option<bool>)> = trackers
            .iter()
            .map(|t| {
                if let TrackerKind::File(rx) = &t.kind {
                    // Not read yet: unknown (no weight either way), as a program not run.
                    let Some(value) = *rx.borrow() else {
                        return (0, None);
                    };
                    let tracked = Tracked::file(value, t.weight, t.reverse);
                    return (tracked.weight, Some(tracked.up));
                }
                let up = match &t.kind {
                    // An interface that cannot be queried (gone) is down.
                    TrackerKind::Interface(name) => Some(match &links {
                        Some(watch) => watch.table().is_running(name),
                        None => vigil_vrrp::io::iface::is_running(name).unwrap_or(false),
                    }),
                    TrackerKind::Exec(rx) => *rx.borrow(),
                    TrackerKind::VirtualServer(name) => {
                        Some(health.get(name).copied().unwrap_or(true))
                    }
                    TrackerKind::Process(rx) => *rx.borrow(),
                    TrackerKind::File(_) => None,
                };
                // keepalived's `reverse`; an unknown state stays unknown.
                let weight = Tracked::binary(t.weight, t.reverse, true).weight;
                (
                    weight,
                    up.map(|up| Tracked::binary(t.weight, t.reverse, up).up),
                )
            })
            .collect();
        // Held in fault while IPVS cannot be programmed (weight 0: a fault of its own).
        let mut states = states;
        states.push((
            0,
            Some(!ipvs_faults.borrow_and_update().contains_key(&v.name)),
        ));
        let holding = hold_until.is_some_and(|until| tokio::time::Instant::now() < until);
        let (summary, hold) = tracked_summary(&states, holding);
        if last != Some(summary) && !hold {
            if last.is_some() || summary.fault || summary.weight != 0 {
                info!(instance = %v.name, weight = summary.weight, fault = summary.fault, "tracked objects changed");
            }
            last = Some(summary);
            let message = Control::Tracked {
                weight: summary.weight,
                fault: summary.fault,
            };
            if control.send(message).await.is_err() {
                return;
            }
        }
        tokio::select! {
            changed = link_changed(&mut links) => {
                if let Err(e) = changed {
                    warn!(instance = %v.name, "link events lost, asking links every second: {e}");
                    links = None;
                }
            }
            // The end of the hold wakes the loop, which then sends what it held back.
            () = async {
                match hold_until {
                    Some(until) if holding => tokio::time::sleep_until(until).await,
                    _ => std::future::pending().await,
                }
            } => {}
            _ = vs_health.changed() => {}
            _ = ipvs_faults.changed() => {}
            _ = woken.notified() => {}
        }
        if links.is_none() {
            // Retried on every turn; a failure leaves the once-a-second asking in place.
            links = vigil_netlink::LinkWatch::open().await.ok();
        }
    }
}

async fn open_link_watch(instance: &str) -> Option<vigil_netlink::LinkWatch> {
    match vigil_netlink::LinkWatch::open().await {
        Ok(watch) => Some(watch),
        Err(e) => {
            warn!(instance = %instance, "cannot follow link events, asking links every second: {e}");
            None
        }
    }
}

/// The next link change, or a second without the subscription.
async fn link_changed(
    links: &mut Option<vigil_netlink::LinkWatch>,
) -> Result<(), vigil_netlink::Error> {
    match links {
        Some(watch) => watch.changed().await,
        None => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        }
    }
}

/// The summary of tracked objects' `(weight, up)`, `up` being `None` for a program that
/// has not run yet (counted as up), and whether to hold it back: only while `holding`
/// and such a program decides it.
fn tracked_summary(states: &[(i32, Option<bool>)], holding: bool) -> (TrackedSummary, bool) {
    let with_unknown = |assumed: bool| {
        summarize(states.iter().map(|&(weight, up)| Tracked {
            weight,
            up: up.unwrap_or(assumed),
        }))
    };
    let summary = with_unknown(true);
    (summary, holding && summary != with_unknown(false))
}

/// How long a tracker replaced by a reload holds its summary back for programs that have
/// not run yet; after that they count as up, as at start.
const AWAIT_EXECS_MAX: Duration = Duration::from_secs(5);

/// Runs a tracking program every `interval`; a run succeeds when it exits 0 within
/// `timeout`, and `counter` (rise/fall) turns runs into up and down. It
/// runs sandboxed (vigil-child: no capabilities, a cleared environment plus
/// `VIGIL_INSTANCE`, its whole tree killed at the timeout and when it exits) as `user`;
/// a user that cannot be looked up counts as down, never as the daemon's own. A changed
/// result is sent on `up` and wakes the tracker through `woken`.
#[allow(clippy::too_many_arguments)] // each is one of the track's own settings
async fn run_exec_track(
    instance: String,
    command: Vec<String>,
    interval: Duration,
    timeout: Duration,
    user: String,
    mut counter: RiseFall,
    up: watch::Sender<Option<bool>>,
    woken: Arc<Notify>,
) {
    let Some(program) = command.first() else {
        return;
    };
    let run_as = resolve_user(&user);
    if let Err(e) = &run_as {
        warn!(instance = %instance, "track program {program} cannot run: {e}");
    }
    let mut child = vigil_child::Command::new(program.clone());
    child.args = command.iter().skip(1).cloned().collect();
    child.env = vec![("VIGIL_INSTANCE".into(), instance.clone())];
    child.timeout = timeout;
    child.output_limit = 1024;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_failure = None;
    loop {
        tick.tick().await;
        let failure = match run_as {
            Ok(run_as) => {
                child.run_as = run_as;
                match vigil_child::run(&child).await {
                    Ok(out) if out.success() => None,
                    Ok(out) => Some(match out.first_line() {
                        Some(line) => format!("{} {}: {line}", program, out.describe(timeout)),
                        None => format!("{} {}", program, out.describe(timeout)),
                    }),
                    Err(e) => Some(format!("{program} cannot start: {e}")),
                }
            }
            Err(_) => Some(String::new()),
        };
        if failure != last_failure
            && let Some(why) = &failure
            && !why.is_empty()
        {
            warn!(instance = %instance, "track program {why}");
        }
        let state = counter.record(failure.is_none());
        last_failure = failure;
        // No tick polls the results any more: a changed one wakes the tracker itself.
        if up.send_if_modified(|v| {
            let changed = *v != state;
            *v = state;
            changed
        }) {
            woken.notify_one();
        }
    }
}

/// Reads a tracked file's number at start and whenever the file changes (keepalived's
/// track_file: missing or empty reads 0; a number beyond a 32-bit int is ignored).
async fn run_file_track(
    instance: String,
    path: std::path::PathBuf,
    value: watch::Sender<Option<i64>>,
    woken: Arc<Notify>,
) {
    let shown = path.display().to_string();
    crate::file_watch::watch(path, |content| {
        let number = crate::file_watch::parse_number(content.as_deref().unwrap_or_default());
        let Some(number) = number else {
            warn!(instance = %instance, "track file {shown}: number out of range, ignored");
            return;
        };
        if value.send_if_modified(|v| v.replace(number) != Some(number)) {
            info!(instance = %instance, "track file {shown} reads {number}");
            woken.notify_one();
        }
    })
    .await;
}

/// Counts matching processes every `interval` (a /proc scan, see [`super::procscan`]) and
/// reports whether the quorum holds, after keepalived's fork and terminate delays.
async fn run_process_track(
    instance: String,
    track: ProcessTrack,
    up: watch::Sender<Option<bool>>,
    woken: Arc<Notify>,
) {
    let name = track.command.join(" ");
    let mut quorum = ProcessQuorum::new(
        track.quorum,
        track.quorum_max,
        track.fork_delay,
        track.terminate_delay,
    );
    let track = Arc::new(track);
    let mut last_error = None;
    loop {
        let t = track.clone();
        let scan = tokio::task::spawn_blocking(move || {
            super::procscan::count(std::path::Path::new("/proc"), &[&t])
        })
        .await;
        let mut next = tokio::time::Instant::now() + track.interval;
        match scan {
            Ok(Ok(counts)) => {
                last_error = None;
                let count = counts.first().copied().unwrap_or(0);
                let (state, due) = quorum.observe(count, tokio::time::Instant::now());
                if let Some(due) = due {
                    next = next.min(due);
                }
                if up.send_if_modified(|v| v.replace(state) != Some(state)) {
                    info!(instance = %instance, processes = count, up = state, "track process {name}");
                    woken.notify_one();
                }
            }
            // /proc unreadable: the state stays as it was.
            Ok(Err(e)) => {
                let e = e.to_string();
                if last_error.as_ref() != Some(&e) {
                    warn!(instance = %instance, "track process {name}: cannot scan /proc: {e}");
                }
                last_error = Some(e);
            }
            Err(_) => return,
        }
        tokio::time::sleep_until(next).await;
    }
}

/// Whom tracking programs run as. Validation rejects unknown users; one removed since
/// is an error here (the program then counts as down).
fn resolve_user(user: &str) -> Result<vigil_child::RunAs, vigil_child::UserError> {
    vigil_child::lookup_user(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_tracker_holds_back_what_a_program_not_run_yet_decides() {
        let summary = |weight, fault| TrackedSummary { weight, fault };
        // At start (not holding) a program not run yet counts as up.
        assert_eq!(
            tracked_summary(&[(0, Some(true)), (-100, None)], false),
            (summary(0, false), false)
        );
        // After a reload it is held back while that program decides the outcome...
        assert_eq!(
            tracked_summary(&[(0, Some(true)), (-100, None)], true),
            (summary(0, false), true)
        );
        // ...but not when the outcome is the same either way (a fault decides alone)...
        assert_eq!(
            tracked_summary(&[(0, Some(false)), (0, None)], true),
            (summary(0, true), false)
        );
        // ...nor once it has run.
        assert_eq!(
            tracked_summary(&[(0, Some(true)), (-100, Some(false))], true),
            (summary(-100, false), false)
        );
    }
}
