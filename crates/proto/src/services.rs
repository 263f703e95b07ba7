//! `services`' reply: every virtual server with its real servers, the kernel's view
//! included.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

/// `services`' `result`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServicesReply {
    pub virtual_servers: Vec<VirtualServerView>,
    pub ipvs: IpvsView,
}

/// One virtual server. Names from a small set (`protocol`, `forwarding`) are `Cow` so that
/// vigild fills them without allocating per server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualServerView {
    pub name: String,
    /// `tcp`, `udp`, `sctp`; null for a fwmark service.
    pub protocol: Option<Cow<'static, str>>,
    /// `IP:PORT`; null for a fwmark service.
    pub address: Option<String>,
    pub fwmark: Option<u32>,
    pub family: Family,
    pub scheduler: String,
    pub forwarding: Cow<'static, str>,
    /// The persistence timeout (`"300s"`), null without persistence.
    pub persistence: Option<String>,
    pub quorum: u32,
    /// Null while undecided at start.
    pub has_quorum: Option<bool>,
    /// What `quorum` counts: `servers` or `weight` (empty from a vigild before it).
    pub quorum_by: Cow<'static, str>,
    /// What counts now toward the quorum (healthy servers, or their summed weights).
    pub quorum_counted: u32,
    pub sorry_server: Option<SocketAddr>,
    /// The sorry server serves.
    pub sorry_active: bool,
    /// Whether the kernel holds the service (null: IPVS could not be read); for a group,
    /// whether it holds all of them.
    pub in_kernel: Option<bool>,
    pub real_servers: Vec<RealServerView>,
    /// The `real_servers_from_dns` entries (absent when there are none); their servers
    /// are in `real_servers`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<DnsSourceView>,
    /// A group (`addresses`/`fwmarks`): its services after the one above, which share
    /// its real servers and their checks. The real servers' connection counters are
    /// summed over all of the group's services. Absent for a single service.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<GroupServiceView>,
    /// Its BGP announcement; absent for a virtual server without `announce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce: Option<AnnounceView>,
}

/// One `real_servers_from_dns` entry of a virtual server and its resolutions.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsSourceView {
    pub name: String,
    /// `A`, `AAAA` or `SRV`.
    pub record: String,
    /// The last good answer, as real servers (kept through failed resolutions).
    pub real_servers: Vec<SocketAddr>,
    pub last_success_unix_ms: Option<u64>,
    /// The TTL of the last good answer, in seconds, as the server gave it.
    pub ttl_s: Option<u32>,
    /// The last failed or empty resolution; cleared by the next good one.
    pub last_error: Option<String>,
    pub last_error_unix_ms: Option<u64>,
    /// When the name is resolved next (null before the first resolution is scheduled).
    pub next_resolution_unix_ms: Option<u64>,
    pub resolutions: u64,
    /// Resolutions that failed or were empty (the last good set stayed).
    pub failures: u64,
}

/// One more service of a virtual server's group.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GroupServiceView {
    /// `tcp 192.0.2.11:80`, `fwmark 5 IPv4`.
    pub service: String,
    /// Whether the kernel holds it (null: IPVS could not be read).
    pub in_kernel: Option<bool>,
}

/// An announced virtual server's route (docs/scale-out.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceView {
    /// The VIP announced.
    pub address: IpAddr,
    /// Its route is in the table the speaker exports.
    #[serde(default)]
    pub announced: bool,
    /// `healthy`, or what keeps it withdrawn.
    #[serde(default)]
    pub reason: String,
    /// When it was last announced or withdrawn.
    #[serde(default)]
    pub since_unix_ms: Option<u64>,
}

/// A virtual server's address family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    #[default]
    Ipv4,
    Ipv6,
    /// A family this version does not know, as sent.
    #[serde(untagged)]
    Other(String),
}

/// One real server of a virtual server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealServerView {
    pub address: SocketAddr,
    /// The configured weight.
    #[serde(default)]
    pub weight: u32,
    /// As IPVS holds it now; null when not in the kernel table (or IPVS unavailable).
    #[serde(default)]
    pub kernel_weight: Option<u32>,
    #[serde(default)]
    pub forwarding: Cow<'static, str>,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub drained: bool,
    /// The check result that decided the last change of health (or the last result).
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub since_unix_ms: Option<u64>,
    #[serde(default)]
    pub last_latency_us: Option<u64>,
    /// The cause of the last failed run of any of its checks (also after passes since;
    /// see docs/metrics.md for the causes) and when it was; each check's own is in
    /// `checks`.
    #[serde(default)]
    pub last_failure: Option<String>,
    #[serde(default)]
    pub last_failure_unix_ms: Option<u64>,
    #[serde(default)]
    pub active_conns: Option<u32>,
    #[serde(default)]
    pub inactive_conns: Option<u32>,
    /// The first check (all of them are in `checks`).
    #[serde(default)]
    pub check: Option<CheckSummary>,
    /// The weight its dynamic checks give it (exec `dynamic_weight`, file `weight`);
    /// null when it has none, or no verdict yet.
    #[serde(default)]
    pub dynamic_weight: Option<u32>,
    /// Every check of the real server, in file order, each with its own state: the
    /// server is up only when all are.
    #[serde(default)]
    pub checks: Vec<CheckView>,
}

/// One check of a real server and its own state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckView {
    #[serde(flatten)]
    pub summary: CheckSummary,
    /// This check's own verdict (`pending` before its first).
    pub health: Health,
    /// Whether its last run passed (null before the first).
    pub passed: Option<bool>,
    /// What its last run saw.
    pub reason: Option<String>,
    pub last_latency_us: Option<u64>,
    /// The cause of this check's last failed run (also after passes since) and when.
    pub last_failure: Option<String>,
    pub last_failure_unix_ms: Option<u64>,
}

/// A real server's health as `services` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
    /// Its check has not reached a first verdict.
    #[default]
    Pending,
    /// No check: always in.
    Unchecked,
    /// A health this version does not know, as sent.
    #[serde(untagged)]
    Other(String),
}

impl Health {
    pub fn as_str(&self) -> &str {
        match self {
            Health::Up => "up",
            Health::Down => "down",
            Health::Pending => "pending",
            Health::Unchecked => "unchecked",
            Health::Other(h) => h,
        }
    }
}

/// A check as `services` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckSummary {
    /// `tcp`, `http`, `dns`, `exec`...
    pub kind: Cow<'static, str>,
    /// What is asked: `GET /healthz`, `example.org A`, the command line; empty for others.
    pub target: String,
    pub interval: String,
    pub timeout: String,
    pub rise: u32,
    pub fall: u32,
    pub port: Option<u16>,
}

/// The IPVS thread's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct IpvsView {
    pub available: bool,
    pub error: Option<String>,
    pub writes: u64,
    pub write_errors: u64,
    pub pending_retries: bool,
    /// E.g. `master eth0 id 51`.
    pub sync_daemon: Option<String>,
}
