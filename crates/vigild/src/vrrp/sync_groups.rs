//! Sync groups: each member's state changes become directives for the others, and group
//! faults are kept consistent.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tracing::{debug, warn};
use vigil_vrrp::State;
use vigil_vrrp::io::{Control, InstanceStatus, StateEvent};

use super::registry::Registry;

/// How often sync groups' faults are reconciled besides on every state change.
pub const SYNC_RECONCILE: Duration = Duration::from_millis(200);

/// Feeds each state change of a sync-group member to the others as directives, and keeps
/// group faults consistent: a group is in Fault exactly while one of its members has a
/// fault of its own.
pub(super) async fn sync_groups(
    registry: Arc<Registry>,
    groups: Arc<RwLock<BTreeMap<String, Vec<String>>>>,
) {
    let mut events = registry.subscribe();
    let mut tick = tokio::time::interval(SYNC_RECONCILE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
        };
        let all: Vec<Vec<String>> = groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        if let Some(event) = &event
            && let Some(members) = all.iter().find(|m| m.contains(&event.instance))
        {
            follow_leader(&registry, members, event).await;
        }
        for members in &all {
            reconcile_faults(&registry, members).await;
        }
    }
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
