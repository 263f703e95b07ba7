//! Sync groups: each member's state changes become directives for the others, and group
//! faults are kept consistent. The same task reports every state change outside: the
//! notify FIFO lines of instances and groups, and the groups' notify hooks.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};
use tracing::{debug, warn};
use vigil_child::hook::HookRunner;
use vigil_vrrp::State;
use vigil_vrrp::io::notify::{NOTIFY_OUTPUT, NOTIFY_QUEUE, NOTIFY_STOP_WAIT, NOTIFY_TIMEOUT};
use vigil_vrrp::io::{Control, InstanceStatus, StateEvent};
use vigil_vrrp::notify::{NotifyHooks, Subject, fifo_line};

use super::registry::Registry;
use crate::notify_fifo::NotifyFifos;

/// One sync group: its members (in file order) and its notify hooks.
#[derive(Debug, Clone, Default)]
pub(super) struct GroupSpec {
    pub(super) members: Vec<String>,
    pub(super) hooks: NotifyHooks,
}

/// What the task has told the outside about one group.
struct GroupReport {
    /// The state last reported; `None` before the first.
    state: Option<State>,
    /// Runs the group's hooks, once it has some.
    hooks: Option<HookRunner>,
}

/// How often sync groups' faults are reconciled besides on every state change.
pub const SYNC_RECONCILE: Duration = Duration::from_millis(200);

/// Feeds each state change of a sync-group member to the others as directives, and keeps
/// group faults consistent: a group is in Fault exactly while one of its members has a
/// fault of its own. Every change also goes to the notify FIFOs, and a group's own
/// changes to its hooks. `stop` (the daemon stopping, after its instances did) reports
/// what is left and runs the last hooks.
pub(super) async fn sync_groups(
    registry: Arc<Registry>,
    groups: Arc<RwLock<BTreeMap<String, GroupSpec>>>,
    fifos: Arc<NotifyFifos>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut events = registry.subscribe();
    let mut tick = tokio::time::interval(SYNC_RECONCILE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reports: BTreeMap<String, GroupReport> = BTreeMap::new();
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Ok(e) => Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!("sync groups missed {n} state changes");
                    None
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => None,
            _ = &mut stop => {
                // The stopped instances' last changes are queued: report them, then
                // each group's stop, then let the hooks run.
                while let Ok(event) = events.try_recv() {
                    let all = snapshot(&groups);
                    report(&registry, &fifos, &all, &mut reports, &event);
                }
                let all = snapshot(&groups);
                for (name, spec) in &all {
                    group_changed(&fifos, name, spec, &mut reports, State::Initialize);
                }
                let runners: Vec<HookRunner> =
                    reports.into_values().filter_map(|r| r.hooks).collect();
                let finishing = runners.into_iter().map(|r| r.finish(NOTIFY_STOP_WAIT));
                for f in finishing {
                    f.await;
                }
                return;
            }
        };
        let all = snapshot(&groups);
        if let Some(event) = &event {
            report(&registry, &fifos, &all, &mut reports, event);
            if let Some(spec) = all.values().find(|g| g.members.contains(&event.instance)) {
                follow_leader(&registry, &spec.members, event).await;
            }
        }
        for spec in all.values() {
            reconcile_faults(&registry, &spec.members).await;
        }
    }
}

fn snapshot(groups: &RwLock<BTreeMap<String, GroupSpec>>) -> BTreeMap<String, GroupSpec> {
    groups.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The FIFO line of an instance's change, and its group's change if it makes one. A group
/// takes the state a member enters (the others follow it, see [`follow_leader`]); it
/// stops when all its members have. Like keepalived, a group's first report (Backup at
/// start) comes before its member's.
fn report(
    registry: &Registry,
    fifos: &NotifyFifos,
    groups: &BTreeMap<String, GroupSpec>,
    reports: &mut BTreeMap<String, GroupReport>,
    event: &StateEvent,
) {
    let t = &event.transition;
    // keepalived reports a stopping master's resignation only as the STOP that follows.
    if t.stopping && t.to != State::Initialize {
        return;
    }
    let instance_line = fifo_line(Subject::Instance(&event.instance), t.to, t.priority);
    let Some((name, spec)) = groups
        .iter()
        .find(|(_, g)| g.members.contains(&event.instance))
    else {
        fifos.vrrp(&instance_line);
        return;
    };
    let group_state = match t.to {
        State::Initialize => {
            let all_stopped = spec.members.iter().all(|m| {
                *m == event.instance
                    || registry
                        .status(m)
                        .is_none_or(|s| s.state == State::Initialize)
            });
            all_stopped.then_some(State::Initialize)
        }
        to => Some(to),
    };
    let first = reports.get(name).is_none_or(|r| r.state.is_none());
    if first && group_state.is_some() {
        group_changed(fifos, name, spec, reports, t.to);
        fifos.vrrp(&instance_line);
        return;
    }
    fifos.vrrp(&instance_line);
    if let Some(state) = group_state {
        group_changed(fifos, name, spec, reports, state);
    }
}

/// Reports `state` for group `name` unless it is the state reported last.
fn group_changed(
    fifos: &NotifyFifos,
    name: &str,
    spec: &GroupSpec,
    reports: &mut BTreeMap<String, GroupReport>,
    state: State,
) {
    let report = reports.entry(name.to_string()).or_insert(GroupReport {
        state: None,
        hooks: None,
    });
    // A group that never started has nothing to stop.
    if report.state == Some(state) || (report.state.is_none() && state == State::Initialize) {
        return;
    }
    report.state = Some(state);
    fifos.vrrp(&fifo_line(Subject::Group(name), state, 0));
    let batch: Vec<vigil_child::Command> = spec
        .hooks
        .programs(Subject::Group(name), state, 0, false)
        .into_iter()
        .map(|(program, args)| group_hook_command(program, args, name, state))
        .collect();
    if batch.is_empty() {
        return;
    }
    report
        .hooks
        .get_or_insert_with(|| HookRunner::spawn(format!("notify group {name}"), NOTIFY_QUEUE))
        .submit_batch(batch);
}

/// A group hook, sandboxed like an instance's, with `VIGIL_GROUP` and `VIGIL_STATE`.
fn group_hook_command(
    program: String,
    args: Vec<String>,
    group: &str,
    state: State,
) -> vigil_child::Command {
    let mut command = vigil_child::Command::new(program);
    command.args = args;
    command.env = vec![
        ("VIGIL_GROUP".to_string(), group.to_string()),
        ("VIGIL_STATE".to_string(), state.as_str().to_string()),
    ];
    command.timeout = NOTIFY_TIMEOUT;
    command.output_limit = NOTIFY_OUTPUT;
    command
}

async fn follow_leader(registry: &Registry, members: &[String], event: &StateEvent) {
    let Some(leader) = members.iter().position(|m| *m == event.instance) else {
        return;
    };
    let states: Vec<State> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == leader {
                event.transition.to
            } else {
                registry.status(m).map_or(State::Initialize, |s| s.state)
            }
        })
        .collect();
    for (index, directive) in
        vigil_vrrp::sync_group_directives(&states, leader, event.transition.from)
    {
        if let Some(member) = members.get(index)
            && let Some(control) = registry.control(member)
        {
            debug!(leader = %event.instance, member = %member, ?directive, "sync group");
            let _ = control.send(Control::Sync(directive)).await;
        }
    }
}

/// Directives cross in flight (a member pulled into Fault by a peer that was itself
/// pulled in by it), so the group's fault is recomputed from the members' own faults:
/// while one has its own, the others are held in Fault; once none has, every member in
/// Fault is released.
async fn reconcile_faults(registry: &Registry, members: &[String]) {
    let statuses: Vec<(String, InstanceStatus)> = members
        .iter()
        .filter_map(|m| registry.status(m).map(|s| (m.clone(), s)))
        .collect();
    let group_fault = statuses.iter().any(|(_, s)| s.own_fault);
    for (member, status) in &statuses {
        let directive = match status.state {
            State::Backup | State::Master if group_fault => vigil_vrrp::SyncDirective::EnterFault,
            State::Fault if !group_fault => vigil_vrrp::SyncDirective::LeaveFault,
            _ => continue,
        };
        if let Some(control) = registry.control(member) {
            debug!(member = %member, ?directive, "sync group fault reconciled");
            let _ = control.send(Control::Sync(directive)).await;
        }
    }
}
