//! Tracked objects: an instance's own interface, `track` interfaces, programs and virtual
//! servers, summed up into the priority weight and fault the runner is told.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};
use vigil_config::{TrackTarget, VrrpInstance};
use vigil_vrrp::io::Control;
use vigil_vrrp::{Tracked, TrackedSummary, summarize};

/// How often interface links are polled for tracking.
pub const LINK_POLL: Duration = Duration::from_millis(100);

/// One tracked object's current state.
struct Tracker {
    weight: i32,
    kind: TrackerKind,
}

enum TrackerKind {
    Interface(String),
    /// `None` until the program's first run ended.
    Exec(watch::Receiver<Option<bool>>),
    VirtualServer(String),
}

/// Watches an instance's tracked objects and sends their summary whenever it changes.
/// A program not run yet counts as up; with `await_execs` (a tracker replaced by a reload,
/// while the runner still holds the old summary) a summary such a program would decide
/// is held back until it has run, at most [`AWAIT_EXECS_MAX`].
pub(super) async fn track(
    v: VrrpInstance,
    control: mpsc::Sender<Control>,
    mut vs_health: watch::Receiver<HashMap<String, bool>>,
    mut ipvs_faults: watch::Receiver<HashMap<String, String>>,
    await_execs: bool,
) {
    let mut execs = JoinSet::new();
    // The instance's own interface: without a link it can neither hear nor be heard.
    let mut trackers = vec![Tracker {
        weight: 0,
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
            } => {
                let (tx, rx) = watch::channel(None);
                execs.spawn(run_exec_track(
                    v.name.clone(),
                    command.clone(),
                    *interval,
                    *timeout,
                    user.clone(),
                    tx,
                ));
                TrackerKind::Exec(rx)
            }
        };
        trackers.push(Tracker {
            weight: t.weight,
            kind,
        });
    }
    let mut last = None;
    let hold_until = await_execs.then(|| tokio::time::Instant::now() + AWAIT_EXECS_MAX);
    let mut tick = tokio::time::interval(LINK_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let health = vs_health.borrow_and_update().clone();
        // `None`: an exec program that has not run yet.
        let states: Vec<(i32, Option<bool>)> = trackers
            .iter()
            .map(|t| {
                let up = match &t.kind {
                    // An interface that cannot be queried (gone) is down.
                    TrackerKind::Interface(name) => {
                        Some(vigil_vrrp::io::iface::is_running(name).unwrap_or(false))
                    }
                    TrackerKind::Exec(rx) => *rx.borrow(),
                    TrackerKind::VirtualServer(name) => {
                        Some(health.get(name).copied().unwrap_or(true))
                    }
                };
                (t.weight, up)
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
            _ = tick.tick() => {}
            _ = vs_health.changed() => {}
            _ = ipvs_faults.changed() => {}
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

/// Runs a tracking program every `interval`; up while it exits 0 within `timeout`. It
/// runs sandboxed (vigil-child: no capabilities, a cleared environment plus
/// `VIGIL_INSTANCE`, its whole tree killed at the timeout and when it exits) as `user`;
/// a user that cannot be looked up counts as down, never as the daemon's own.
async fn run_exec_track(
    instance: String,
    command: Vec<String>,
    interval: Duration,
    timeout: Duration,
    user: String,
    up: watch::Sender<Option<bool>>,
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
        let ok = failure.is_none();
        last_failure = failure;
        up.send_if_modified(|v| {
            let changed = *v != Some(ok);
            *v = Some(ok);
            changed
        });
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
