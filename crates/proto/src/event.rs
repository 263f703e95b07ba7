//! Events of the `events` and `vrrp-watch` streams: one JSON object per line, tagged by
//! `event`. Every event's time is `at_unix_ms` (milliseconds since the Unix epoch).

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::services::Health;
use crate::status::Trigger;
use crate::vrrp::{TransitionReason, VrrpState};

/// One event line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// `events`' reply `result`: the stream follows.
    Subscribed,
    /// A check's verdict changed (or its first verdict).
    Health(HealthEvent),
    /// A virtual server gained or lost its quorum.
    Quorum(QuorumEvent),
    /// An operator drained or enabled a real server.
    Drain(DrainEvent),
    /// A reload was attempted.
    Reload(ReloadEvent),
    /// A VRRP instance changed state (`events` and `vrrp-watch`).
    VrrpState(VrrpStateEvent),
    /// The VRRP instances held in fault because IPVS cannot be programmed changed.
    IpvsFault(IpvsFaultEvent),
    /// A `real_servers_from_dns` name was resolved to other servers, or could not be
    /// resolved (the last good set stays).
    DnsResolution(DnsResolutionEvent),
    /// An announced virtual server's VIP route was added (announced) or removed
    /// (withdrawn) from the table the BGP speaker exports.
    Announce(AnnounceEvent),
    /// This client was too slow: `missed` events were dropped for it.
    Lagged(LaggedEvent),
    /// An event this version does not know (from a newer daemon).
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthEvent {
    #[serde(default)]
    pub virtual_server: String,
    pub real_server: SocketAddr,
    /// `up` or `down`.
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub latency_us: u64,
    #[serde(default)]
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct QuorumEvent {
    pub virtual_server: String,
    pub has_quorum: bool,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainEvent {
    #[serde(default)]
    pub virtual_server: String,
    pub real_server: SocketAddr,
    #[serde(default)]
    pub drained: bool,
    #[serde(default)]
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadEvent {
    pub ok: bool,
    pub trigger: Trigger,
    /// The generation in force after it.
    pub generation: u64,
    /// Why it failed, one diagnostic per line; absent when it succeeded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VrrpStateEvent {
    pub instance: String,
    pub from: VrrpState,
    pub to: VrrpState,
    pub reason: TransitionReason,
    /// Effective priority after the change.
    pub priority: u8,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpvsFaultEvent {
    /// Why IPVS cannot be programmed; null once it can again.
    pub reason: Option<String>,
    /// The instances held in fault now.
    pub held: Vec<String>,
    /// The instances released by this change.
    pub released: Vec<String>,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceEvent {
    #[serde(default)]
    pub virtual_server: String,
    /// The VIP whose route changed.
    pub address: IpAddr,
    #[serde(default)]
    pub announced: bool,
    /// Why (`healthy`, or what keeps it withdrawn: see docs/scale-out.md).
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsResolutionEvent {
    pub virtual_server: String,
    /// The name looked up and its record type (`A`, `AAAA`, `SRV`).
    pub name: String,
    pub record: String,
    /// False: the resolution failed or was empty, and the servers stay as they were.
    pub ok: bool,
    /// The real servers the name gives now (the last good set when not `ok`).
    pub real_servers: Vec<SocketAddr>,
    /// What changed (empty when not `ok`).
    pub added: Vec<SocketAddr>,
    pub removed: Vec<SocketAddr>,
    /// Why it failed; absent when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaggedEvent {
    pub missed: u64,
}

impl Event {
    /// The event as one line, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}
