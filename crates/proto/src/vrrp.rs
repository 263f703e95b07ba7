//! `vrrp`, `vrrp-handover` and `vrrp-reclaim` replies.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `vrrp`'s `result` (and `vrrp-watch`'s first reply).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VrrpReply {
    pub instances: Vec<InstanceView>,
}

/// One configured VRRP instance, with its live state when its runner exists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceView {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 2 (RFC 3768) or 3 (RFC 5798).
    pub version: u8,
    /// As configured.
    pub priority: u8,
    /// The configured priority plus tracked weights (the configured one while not running).
    pub effective_priority: u8,
    /// `init` while no runner exists for it.
    pub state: VrrpState,
    /// As in the file: `"100ms"`, `"1s"`.
    pub advert_interval: String,
    pub preempt: bool,
    pub vips: Vec<String>,
    pub vips_excluded: Vec<String>,
    pub unicast_peers: Vec<IpAddr>,
    pub sync_group: Option<String>,
    pub track: Vec<TrackView>,
    /// The runner's view; absent (on the wire: these fields are missing) while no runner
    /// exists for the instance.
    #[serde(flatten)]
    pub live: Option<LiveStatus>,
    /// Why the daemon holds the instance in fault (only while it does).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_reason: Option<String>,
}

/// What a running instance reports, besides its state and effective priority.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveStatus {
    /// The current master's address as last heard (ours while master).
    pub master: Option<IpAddr>,
    /// Where our adverts come from.
    pub primary_address: Option<IpAddr>,
    pub holds_vips: bool,
    /// A handover is in force: no preemption until `vrrp-reclaim`.
    pub standing_down: bool,
    /// One of its weight-0 tracked objects is down.
    pub own_fault: bool,
    pub transitions: u64,
    pub last_transition: Option<TransitionView>,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Adverts not sent in reply because of the reply rate limit (absent from older
    /// daemons: reads as 0).
    pub replies_limited: u64,
    pub send_errors: u64,
    /// Received packets dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Why the instance is not running yet.
    pub error: Option<String>,
}

/// One `track` entry: exactly one of `virtual_server`, `interface`, `exec` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrackView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub process: Option<Vec<String>>,
    pub weight: i32,
}

/// A state change as the `vrrp` reply shows it (`last_transition`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TransitionView {
    pub from: VrrpState,
    pub to: VrrpState,
    pub reason: TransitionReason,
    /// Effective priority after the change.
    pub priority: u8,
    /// Seconds since the Unix epoch.
    pub at_unix: f64,
}

/// An instance's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpState {
    /// No runner exists for it (for a moment during a reload that restarts it).
    #[default]
    Init,
    Initialize,
    Backup,
    Master,
    Fault,
    /// A state this version does not know, as sent.
    #[serde(untagged)]
    Other(String),
}

impl VrrpState {
    pub fn as_str(&self) -> &str {
        match self {
            VrrpState::Init => "init",
            VrrpState::Initialize => "initialize",
            VrrpState::Backup => "backup",
            VrrpState::Master => "master",
            VrrpState::Fault => "fault",
            VrrpState::Other(s) => s,
        }
    }
}

/// Why a state changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionReason {
    #[default]
    Startup,
    AddressOwner,
    MasterDown,
    MasterResigned,
    HigherPriorityMaster,
    PreferredMaster,
    Shutdown,
    Fault,
    FaultCleared,
    Handover,
    SyncGroup,
    /// A reason this version does not know, as sent.
    #[serde(untagged)]
    Other(String),
}

impl TransitionReason {
    pub fn as_str(&self) -> &str {
        match self {
            TransitionReason::Startup => "startup",
            TransitionReason::AddressOwner => "address_owner",
            TransitionReason::MasterDown => "master_down",
            TransitionReason::MasterResigned => "master_resigned",
            TransitionReason::HigherPriorityMaster => "higher_priority_master",
            TransitionReason::PreferredMaster => "preferred_master",
            TransitionReason::Shutdown => "shutdown",
            TransitionReason::Fault => "fault",
            TransitionReason::FaultCleared => "fault_cleared",
            TransitionReason::Handover => "handover",
            TransitionReason::SyncGroup => "sync_group",
            TransitionReason::Other(r) => r,
        }
    }
}

/// `vrrp-handover`'s and `vrrp-reclaim`'s `result`: the request was queued to the
/// instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VrrpControlReply {
    pub instance: String,
    pub action: VrrpAction,
    pub state_before: VrrpState,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VrrpAction {
    #[default]
    Handover,
    Reclaim,
    /// An action this version does not know, as sent.
    #[serde(untagged)]
    Other(String),
}

impl VrrpAction {
    pub fn as_str(&self) -> &str {
        match self {
            VrrpAction::Handover => "handover",
            VrrpAction::Reclaim => "reclaim",
            VrrpAction::Other(a) => a,
        }
    }
}
