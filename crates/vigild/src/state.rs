//! The daemon's live state: one snapshot that the status socket and metrics read,
//! replaced as a whole when something changes, so readers never see half an update.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use vigil_config::Config;

/// How many reloads the status socket remembers.
pub const RELOAD_HISTORY: usize = 32;

#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    /// Seconds since the Unix epoch.
    pub at_unix: f64,
    /// `sighup` or `socket`.
    pub trigger: &'static str,
    pub ok: bool,
    /// The generation in force after this reload.
    pub generation: u64,
    pub duration_ms: f64,
    /// The diagnostics, one per line (`FILE:LINE:COL: error: MESSAGE`), when it failed.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

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
    pub events: tokio::sync::broadcast::Sender<serde_json::Value>,
    snapshot: RwLock<Arc<Snapshot>>,
    pub started: Instant,
    pub started_at_unix: f64,
    pub pid: u32,
    /// Live VRRP instances (status, control, state changes), kept by the VRRP manager.
    pub vrrp: Arc<crate::vrrp::Registry>,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
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
    pub fn publish(&self, event: serde_json::Value) {
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
