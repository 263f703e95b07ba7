//! The status-socket protocol of vigild (docs/status-socket.md), as types: the requests
//! ([`Request`], one enum tagged by `command`), the reply envelope ([`Reply`], with
//! [`ProtocolError`] and its [`ErrorCode`]), every reply's `result`, and every event of
//! the `events` and `vrrp-watch` streams ([`Event`]).
//!
//! Owns: the wire form. vigild serialises these types straight into its replies;
//! vigilctl and the tests decode them. Compatibility rules, so that an older vigilctl
//! reads a newer vigild and the other way round:
//! - unknown fields are ignored (no `deny_unknown_fields` anywhere);
//! - a missing field reads as its default (reply structs are `#[serde(default)]`), so a
//!   field added later decodes from an older daemon;
//! - names from a closed set (states, reasons, health, error codes) decode an unknown
//!   name into an `Other` variant that keeps the text; an unknown event kind decodes as
//!   [`Event::Other`].
//!
//! Also owns the calendar form of the events' Unix-millisecond times ([`UtcTime`],
//! [`rfc3339`]), so that every program showing them writes the same dates.
//!
//! `tests/wire.rs` pins the wire form of every request, reply and event with snapshots.
//!
//! Must not: do I/O (no sockets, files or clocks: times come in as values), or depend on
//! another vigil crate: vigild maps its own types into these.

mod event;
mod reply;
mod request;
mod services;
mod status;
mod time;
mod vrrp;

pub use event::{
    AnnounceEvent, DnsResolutionEvent, DrainEvent, Event, HealthEvent, IpvsFaultEvent, LaggedEvent,
    QuorumEvent, ReloadEvent, VrrpStateEvent,
};
pub use reply::{ErrorCode, ProtocolError, Reply, reply_line};
pub use request::{COMMANDS, MAX_LINE, Request, parse_request};
pub use services::{
    AnnounceView, CheckSummary, CheckView, DnsSourceView, Family, GroupServiceView, Health,
    IpvsView, RealServerView, ServicesReply, VirtualServerView,
};
pub use status::{
    AlertDropped, AlertRequests, AlertStatus, ConfigReply, Counts, DatapathStatus, DrainReply,
    PONG, Refused, ReloadRecord, SocketStatus, StatusReply, Trigger,
};
pub use time::{UtcTime, rfc3339};
pub use vrrp::{
    InstanceView, LiveStatus, TrackView, TransitionReason, TransitionView, VrrpAction,
    VrrpControlReply, VrrpReply, VrrpState,
};
