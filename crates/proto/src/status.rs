//! `status`, `config`, `reload`, `drain`/`enable` and `ping` replies.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `ping`'s `result`.
pub const PONG: &str = "pong";

/// `status`'s `result`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StatusReply {
    /// `director.name` of the cluster file.
    pub director: String,
    /// vigild's version.
    pub version: String,
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub started_at_unix: f64,
    pub uptime_secs: f64,
    pub config_file: PathBuf,
    /// 1 for the file loaded at start, +1 for every successful reload.
    pub config_generation: u64,
    pub config_loaded_at_unix: f64,
    pub counts: Counts,
    /// The last 32 reload attempts, oldest first.
    pub reloads: Vec<ReloadRecord>,
    pub status_socket: SocketStatus,
    /// The `[[alert]]` webhooks, in file order (empty without any).
    pub alerts: Vec<AlertStatus>,
    /// The kernel datapath chosen at start (null from a daemon before it had a choice).
    pub datapath: Option<DatapathStatus>,
}

/// The datapath serving the virtual servers (docs/status-socket.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatapathStatus {
    /// `ipvs` or `nftables`.
    pub name: String,
    /// Why, e.g. `datapath = "auto": no IPVS (...)`.
    pub reason: String,
}

/// One `[[alert]]` webhook's deliveries (docs/status-socket.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertStatus {
    pub name: String,
    pub url: String,
    /// `json` or `alertmanager`.
    pub format: String,
    /// Events waiting to be sent.
    pub queued: u64,
    /// Alertmanager conditions now firing.
    pub firing: u64,
    /// Events delivered since start.
    pub sent: u64,
    pub requests: AlertRequests,
    pub dropped: AlertDropped,
    /// Seconds since the Unix epoch.
    pub last_ok_at_unix: Option<f64>,
    pub last_error: Option<String>,
    pub last_error_at_unix: Option<f64>,
}

/// A webhook's requests since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertRequests {
    pub ok: u64,
    pub failed: u64,
}

/// Events a webhook dropped since start, by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertDropped {
    pub queue_full: u64,
    pub failed: u64,
    pub rejected: u64,
    pub lagged: u64,
    pub reload: u64,
    /// Reasons this version does not know (from a newer daemon).
    #[serde(flatten)]
    pub other: BTreeMap<String, u64>,
}

impl AlertDropped {
    /// Every reason with its count, known ones first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        [
            ("queue_full", self.queue_full),
            ("failed", self.failed),
            ("rejected", self.rejected),
            ("lagged", self.lagged),
            ("reload", self.reload),
        ]
        .into_iter()
        .chain(self.other.iter().map(|(k, v)| (k.as_str(), *v)))
    }
}

/// What the running configuration holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub vrrp_instances: u64,
    pub virtual_servers: u64,
    pub real_servers: u64,
}

/// The status socket's clients and refusals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SocketStatus {
    /// Clients now.
    pub connections: u64,
    /// Clients since start.
    pub accepted: u64,
    /// `events`/`vrrp-watch` streams now.
    pub subscribers: u64,
    pub refused: Refused,
}

/// Refusals since start, by reason (docs/status-socket.md, "Limits").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Refused {
    pub clients: u64,
    pub per_uid: u64,
    pub subscribers: u64,
    pub idle: u64,
    pub forbidden: u64,
    /// Reasons this version does not know (from a newer daemon).
    #[serde(flatten)]
    pub other: BTreeMap<String, u64>,
}

impl Refused {
    /// Every reason with its count, known ones first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        [
            ("clients", self.clients),
            ("per_uid", self.per_uid),
            ("subscribers", self.subscribers),
            ("idle", self.idle),
            ("forbidden", self.forbidden),
        ]
        .into_iter()
        .chain(self.other.iter().map(|(k, v)| (k.as_str(), *v)))
    }
}

/// Who asked for a reload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Sighup,
    Socket,
    /// A trigger this version does not know, as sent.
    #[serde(untagged)]
    Other(String),
}

impl Trigger {
    pub fn as_str(&self) -> &str {
        match self {
            Trigger::Sighup => "sighup",
            Trigger::Socket => "socket",
            Trigger::Other(t) => t,
        }
    }
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::Other(String::new())
    }
}

/// One reload attempt: an element of `status.reloads`, and `reload`'s `result`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReloadRecord {
    /// Seconds since the Unix epoch.
    pub at_unix: f64,
    pub trigger: Trigger,
    pub ok: bool,
    /// The generation in force after this reload.
    pub generation: u64,
    pub duration_ms: f64,
    /// The diagnostics, one per line (`FILE:LINE:COL: error: MESSAGE`), when it failed.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

/// `config`'s `result`: the running configuration after defaults were applied. vigild
/// serialises its own config type into `config`; a client reads it as it likes
/// (`serde_json::Value` by default).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfigReply<C = serde_json::Value> {
    pub generation: u64,
    pub file: PathBuf,
    pub config: C,
}

/// `drain`'s and `enable`'s `result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReply {
    #[serde(default)]
    pub virtual_server: String,
    /// The real server named; absent for a whole virtual server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_server: Option<SocketAddr>,
    /// A whole virtual server's: every real server it covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub real_servers: Vec<SocketAddr>,
    /// What the real server (or every one) is now.
    #[serde(default)]
    pub drained: bool,
    /// `false`: it already was (every one, for a whole virtual server).
    #[serde(default)]
    pub changed: bool,
    /// E.g. a drain applied but not saved to the state file.
    #[serde(default)]
    pub warnings: Vec<String>,
}
