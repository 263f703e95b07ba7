//! What the status socket shows of VRRP, in `vigil_proto`'s types.

use vigil_proto::{
    self as proto, Event, InstanceView, LiveStatus, TransitionView, VrrpState, VrrpStateEvent,
};
use vigil_vrrp::State;
use vigil_vrrp::io::{self as vio, InstanceStatus, StateEvent};

/// The live part of one instance's `vrrp` reply: its state, effective priority and the
/// runner's counters.
pub fn fill_live(entry: &mut InstanceView, status: &InstanceStatus) {
    entry.state = state_view(status.state);
    entry.effective_priority = status.priority;
    entry.live = Some(LiveStatus {
        master: status.master,
        primary_address: status.primary_address,
        holds_vips: status.holds_vips,
        standing_down: status.standing_down,
        own_fault: status.own_fault,
        transitions: status.transitions,
        last_transition: status.last_transition.map(|t| transition_view(&t)),
        adverts_sent: status.adverts_sent,
        adverts_received: status.adverts_received,
        replies_limited: status.replies_limited,
        send_errors: status.send_errors,
        drops: status
            .drops
            .iter()
            .map(|(k, n)| ((*k).to_string(), *n))
            .collect(),
        error: status.error.clone(),
    });
}

pub fn state_view(state: State) -> VrrpState {
    match state {
        State::Initialize => VrrpState::Initialize,
        State::Backup => VrrpState::Backup,
        State::Master => VrrpState::Master,
        State::Fault => VrrpState::Fault,
    }
}

fn reason_view(reason: vigil_vrrp::TransitionReason) -> proto::TransitionReason {
    use proto::TransitionReason as P;
    use vigil_vrrp::TransitionReason as R;
    match reason {
        R::Startup => P::Startup,
        R::AddressOwner => P::AddressOwner,
        R::MasterDown => P::MasterDown,
        R::MasterResigned => P::MasterResigned,
        R::HigherPriorityMaster => P::HigherPriorityMaster,
        R::PreferredMaster => P::PreferredMaster,
        R::Shutdown => P::Shutdown,
        R::Fault => P::Fault,
        R::FaultCleared => P::FaultCleared,
        R::Handover => P::Handover,
        R::SyncGroup => P::SyncGroup,
    }
}

pub fn transition_view(t: &vio::Transition) -> TransitionView {
    TransitionView {
        from: state_view(t.from),
        to: state_view(t.to),
        reason: reason_view(t.reason),
        priority: t.priority,
        at_unix: t.at_unix,
    }
}

/// One `vrrp_state` event line (`events`, `vrrp-watch`); its time in milliseconds, as
/// every event's.
pub fn state_event(e: &StateEvent) -> Event {
    let t = &e.transition;
    Event::VrrpState(VrrpStateEvent {
        instance: e.instance.clone(),
        from: state_view(t.from),
        to: state_view(t.to),
        reason: reason_view(t.reason),
        priority: t.priority,
        at_unix_ms: (t.at_unix * 1e3).round().max(0.0) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_status_render_as_documented() {
        let transition = vio::Transition {
            from: State::Backup,
            to: State::Master,
            reason: vigil_vrrp::TransitionReason::MasterDown,
            priority: 100,
            at_unix: 1.5,
            stopping: false,
        };
        let event = serde_json::to_value(state_event(&StateEvent {
            instance: "web".into(),
            transition,
        }))
        .unwrap();
        assert_eq!(
            event,
            serde_json::json!({"event": "vrrp_state", "instance": "web", "from": "backup",
                "to": "master", "reason": "master_down", "priority": 100, "at_unix_ms": 1500})
        );
        let status = InstanceStatus {
            name: "web".into(),
            state: State::Master,
            priority: 100,
            master: Some("10.0.0.1".parse().unwrap()),
            primary_address: Some("10.0.0.1".parse().unwrap()),
            holds_vips: true,
            standing_down: false,
            own_fault: false,
            last_transition: Some(transition),
            transitions: 2,
            adverts_sent: 7,
            adverts_received: 1,
            replies_limited: 4,
            drops: [("vrid", 3)].into_iter().collect(),
            send_errors: 0,
            error: None,
        };
        let mut entry = InstanceView::default();
        fill_live(&mut entry, &status);
        let v = serde_json::to_value(&entry).unwrap();
        assert_eq!(v["state"], "master");
        assert_eq!(v["master"], "10.0.0.1");
        assert_eq!(v["drops"]["vrid"], 3);
        assert_eq!(v["replies_limited"], 4);
        assert_eq!(v["last_transition"]["reason"], "master_down");
    }
}
