//! The daemon's live state: one snapshot that the status socket and metrics read,
//! replaced as a whole when something changes, so readers never see half an update.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vigil_config::Config;
use vigil_proto::Event;
pub use vigil_proto::ReloadRecord;

/// How many reloads the status socket remembers.
pub const RELOAD_HISTORY: usize = 32;

/// Everything the status socket can show, as of one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub config: Arc<Config>,
    pub config_file: PathBuf,
    /// 1 for the config loaded at start, +1 for every successful reload.
    pub generation: u64,
    pub loaded_at_unix: f64,
    pub reloads: VecDeque<ReloadRecord>,
    /// All reloads since start (the history above keeps only the last ones).
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

/// Shared between the main loop (the only writer) and status connections (readers).
pub struct Shared {
    /// Daemon events (health changes, drains, quorum, reloads) for `events` watchers;
    /// VRRP state changes have their own stream in the registry.
    pub events: tokio::sync::broadcast::Sender<Event>,
    snapshot: RwLock<Arc<Snapshot>>,
    pub started: Instant,
    pub started_at_unix: f64,
    pub pid: u32,
    /// Live VRRP instances (status, control, state changes), kept by the VRRP manager.
    pub vrrp: Arc<crate::vrrp::Registry>,
    /// What the director publishes for metrics (written by the director task only).
    pub director: Arc<DirectorView>,
    /// Status socket connections and refusals, for `status` and metrics.
    pub status_socket: SocketCounters,
    /// Metrics endpoint connections and refusals, for metrics.
    pub metrics_endpoint: SocketCounters,
    /// keepalived's notify FIFOs, written by the VRRP sync task and the director.
    pub fifos: Arc<crate::notify_fifo::NotifyFifos>,
    /// The `[[alert]]` webhooks (set once at start), for `status` and metrics.
    pub alerts: OnceLock<vigil_alert::Alerts>,
}

/// A real server as the director sees it, for metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct RealServerStats {
    pub address: SocketAddr,
    /// `Some(true)` up (or unchecked), `Some(false)` down, `None` no verdict yet.
    pub up: Option<bool>,
    /// The weight the director wants in IPVS; `None`: not in the table.
    pub weight: Option<u32>,
    pub drained: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServerStats {
    pub name: String,
    /// `None` while undecided at start.
    pub quorum: Option<bool>,
    /// What counts toward the quorum now, and the quorum (servers or weight).
    pub quorum_counted: u32,
    pub quorum_needed: u32,
    pub real_servers: Vec<RealServerStats>,
    /// With `announce`: whether its VIP is announced, and why (`announce::Why::code`).
    pub announce: Option<(bool, &'static str)>,
}

/// The director's state for metrics: plain data, published by the director task when it
/// changes (at most about once a second), so a scrape never waits for that task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectorStats {
    pub virtual_servers: Vec<VirtualServerStats>,
    /// `real_servers_from_dns` entries with their virtual server's name.
    pub dns: Vec<(String, vigil_proto::DnsSourceView)>,
}

/// Where the director publishes what metrics read without asking it: its stats, the
/// datapath thread's own status, and the checker's handle (asked directly, as `services`
/// does).
#[derive(Default)]
pub struct DirectorView {
    stats: RwLock<Arc<DirectorStats>>,
    datapath: OnceLock<Arc<RwLock<crate::datapath::DatapathStatus>>>,
    checker: OnceLock<vigil_check::Checker>,
}

impl DirectorView {
    pub fn stats(&self) -> Arc<DirectorStats> {
        // As `Shared::snapshot`: a poisoned lock cannot hold a torn Arc.
        self.stats.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn publish(&self, stats: DirectorStats) {
        *self.stats.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(stats);
    }

    /// Set once by the director when it starts.
    pub fn attach(
        &self,
        datapath: Arc<RwLock<crate::datapath::DatapathStatus>>,
        checker: vigil_check::Checker,
    ) {
        let _ = self.datapath.set(datapath);
        let _ = self.checker.set(checker);
    }

    /// The datapath thread's counters as it last published them (`None` before the
    /// director started).
    pub fn datapath(&self) -> Option<crate::datapath::DatapathStatus> {
        self.datapath
            .get()
            .map(|s| s.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    pub fn checker(&self) -> Option<vigil_check::Checker> {
        self.checker.get().cloned()
    }
}

/// Why a connection was refused or closed early, or a request refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Clients,
    /// That uid already holds its share of the connections.
    PerUid,
    /// The cap on `events`/`vrrp-watch` subscribers is reached.
    Subscribers,
    /// No complete request before the idle deadline.
    Idle,
    /// A write without admin rights.
    Forbidden,
    /// Metrics: an unfinished request was closed to make room for a new connection.
    Evicted,
    /// Metrics: the request or its reply took too long.
    Timeout,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::Clients,
        Refusal::PerUid,
        Refusal::Subscribers,
        Refusal::Idle,
        Refusal::Forbidden,
        Refusal::Evicted,
        Refusal::Timeout,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Clients => "clients",
            Refusal::PerUid => "per_uid",
            Refusal::Subscribers => "subscribers",
            Refusal::Idle => "idle",
            Refusal::Forbidden => "forbidden",
            Refusal::Evicted => "evicted",
            Refusal::Timeout => "timeout",
        }
    }
}

/// Connections of one listener: open now, accepted in all, refused by reason.
#[derive(Debug, Default)]
pub struct SocketCounters {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Status socket: `events`/`vrrp-watch` streams now.
    pub subscribers: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl SocketCounters {
    pub fn count(&self, reason: Refusal) {
        self.refused[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Ordering::Relaxed)
    }

    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    pub fn subscribers(&self) -> u64 {
        self.subscribers.load(Ordering::Relaxed)
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Milliseconds since the Unix epoch: every event's `at_unix_ms`.
pub fn unix_now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shared {
    pub fn new(config: Config, config_file: PathBuf) -> Arc<Self> {
        let now = unix_now();
        Arc::new(Shared {
            events: tokio::sync::broadcast::channel(1024).0,
            snapshot: RwLock::new(Arc::new(Snapshot {
                config: Arc::new(config),
                config_file,
                generation: 1,
                loaded_at_unix: now,
                reloads: VecDeque::new(),
                reloads_ok: 0,
                reloads_failed: 0,
            })),
            started: Instant::now(),
            started_at_unix: now,
            pid: std::process::id(),
            vrrp: crate::vrrp::Registry::new(),
            director: Arc::default(),
            status_socket: SocketCounters::default(),
            metrics_endpoint: SocketCounters::default(),
            fifos: Arc::default(),
            alerts: OnceLock::new(),
        })
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc, which cannot
        // leave a torn value: keep serving.
        self.snapshot
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Applies `f` to a copy of the snapshot and publishes the result.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) -> Arc<Snapshot> {
        let mut guard = self.snapshot.write().unwrap_or_else(|e| e.into_inner());
        let mut next = (**guard).clone();
        f(&mut next);
        let next = Arc::new(next);
        *guard = next.clone();
        next
    }

    /// Publishes a daemon event to `events` watchers (none listening is fine).
    pub fn publish(&self, event: Event) {
        let _ = self.events.send(event);
    }

    pub fn record_reload(&self, record: ReloadRecord, new_config: Option<Config>) -> Arc<Snapshot> {
        self.update(|s| {
            if let Some(c) = new_config {
                s.config = Arc::new(c);
                s.generation = record.generation;
                s.loaded_at_unix = record.at_unix;
            }
            if record.ok {
                s.reloads_ok += 1;
            } else {
                s.reloads_failed += 1;
            }
            if s.reloads.len() == RELOAD_HISTORY {
                s.reloads.pop_front();
            }
            s.reloads.push_back(record);
        })
    }
}

/// The next message of `rx`, or never once there is no receiver: for `select!` loops
/// that stop following a broadcast when it closes (a closed receiver would return at
/// once, forever, and spin the loop).
pub async fn recv_or_never<T: Clone>(
    rx: &mut Option<tokio::sync::broadcast::Receiver<T>>,
) -> Result<T, tokio::sync::broadcast::error::RecvError> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}
