//! What a runner publishes: its [`InstanceStatus`] on a watch channel, and each state
//! change as a [`StateEvent`] to watchers, sync groups and the notify hook.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::fsm::{State, TransitionReason};

/// One state change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: TransitionReason,
    /// Effective priority after the change.
    pub priority: u8,
    pub at_unix: f64,
    /// Made while the instance stops (a master resigning first): keepalived reports
    /// only the STOP that ends it ([`crate::notify`]).
    pub stopping: bool,
}

/// A state change of a named instance, as broadcast to watchers and sync groups.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEvent {
    pub instance: String,
    pub transition: Transition,
}

/// The live view of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStatus {
    pub name: String,
    pub state: State,
    pub priority: u8,
    /// The current master's address, when known (ours while master).
    pub master: Option<IpAddr>,
    /// The address adverts go out from, once the interface is resolved.
    pub primary_address: Option<IpAddr>,
    pub holds_vips: bool,
    pub standing_down: bool,
    /// A weight-0 tracked object of this instance is down (its own fault, as opposed to
    /// one its sync group imposed).
    pub own_fault: bool,
    pub last_transition: Option<Transition>,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Received adverts not answered by an advert of their own because of the reply rate
    /// limit (RFC 5798 §6.4.3 replies; see [`crate::resign_reply_gap`]).
    pub replies_limited: u64,
    /// Dropped packets by [`crate::DropReason::as_str`] (`unknown_peer`: a source not among the
    /// unicast peers or `allowed_peers`), plus the shell's own `malformed_ip`.
    pub drops: BTreeMap<&'static str, u64>,
    pub send_errors: u64,
    /// Why the runner is not (yet) running the protocol, e.g. a missing interface.
    pub error: Option<String>,
}
