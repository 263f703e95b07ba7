//! Alert webhooks for vigil: the `[[alert]]` entries of the cluster file, fed with the
//! daemon's events (the status socket's `events` stream) and POSTed as JSON or as
//! Prometheus Alertmanager webhook payloads.
//!
//! Owns: turning events into request bodies ([`payload`], pure), the bounded queue and
//! the retry policy ([`policy`], pure), the HTTP client and the files it reads
//! ([`client`]), and the `alerts` thread that delivers (its own current-thread runtime,
//! one task per webhook, one request at a time each, in order).
//!
//! Must not: delay the daemon. Feeding an event never waits: it renders the event and
//! pushes it into each webhook's queue (a mutex held for a push); a full queue drops its
//! oldest entry and counts it. A slow or dead receiver only fills its own queue. Must
//! not decide anything about the director either: it only reports.
//!
//! vigild wires it in a few lines: [`Alerts::start`], [`Alerts::apply`] at start and
//! after each reload, [`Alerts::follow`] on its event broadcasts, the supervision
//! handles ([`Alerts::heartbeat`], [`Alerts::end`]), [`Alerts::status`] and
//! [`Alerts::prometheus`] for `vigilctl status` and metrics.

pub mod client;
pub mod payload;
pub mod policy;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::{Notify, broadcast, watch};
use tracing::{error, info, warn};
use vigil_config::{Alert, AlertFormat, MAX_BACKOFF};

pub use client::{BuildError, Settings, check_file, read_secret};
use payload::Firing;
use policy::{Entry, Outcome, Queue};

/// How often the `alerts` thread beats while idle (vigild's supervision looks for a beat
/// at least every few seconds).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why entries were dropped without delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The queue was full: its oldest entry made room for a new one.
    QueueFull,
    /// Every attempt failed (no connection, timeouts, 5xx).
    Failed,
    /// The receiver answered with a status that retrying cannot change (4xx).
    Rejected,
    /// Events the `alerts` thread missed from the daemon's broadcast (it fell behind).
    Lagged,
    /// A reload changed the format or shrank the queue, or removed the webhook.
    Reload,
}

impl DropReason {
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::Failed,
        DropReason::Rejected,
        DropReason::Lagged,
        DropReason::Reload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Failed => "failed",
            DropReason::Rejected => "rejected",
            DropReason::Lagged => "lagged",
            DropReason::Reload => "reload",
        }
    }
}

/// One webhook's counters (since start; kept across reloads that keep its name).
#[derive(Default)]
struct Stats {
    /// Entries delivered (events, or Alertmanager alerts).
    sent: AtomicU64,
    requests_ok: AtomicU64,
    requests_failed: AtomicU64,
    dropped: [AtomicU64; DropReason::ALL.len()],
    /// When the last request succeeded, Unix ms (0: never).
    last_ok_ms: AtomicU64,
    /// The last failure and when (Unix ms).
    last_error: Mutex<Option<(String, u64)>>,
}

impl Stats {
    fn drop(&self, why: DropReason, n: u64) {
        if n > 0 {
            self.dropped[why as usize].fetch_add(n, Ordering::Relaxed);
        }
    }

    fn dropped(&self, why: DropReason) -> u64 {
        self.dropped[why as usize].load(Ordering::Relaxed)
    }

    fn last_error(&self) -> Option<(String, u64)> {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct State {
    queue: Queue,
    firing: Firing,
}

/// One webhook: its settings (swapped whole by a reload), queue and counters.
struct Sink {
    name: String,
    settings: RwLock<Arc<Settings>>,
    state: Mutex<State>,
    wake: Notify,
    stop: watch::Sender<bool>,
    /// Its task returned (stopped, with nothing left to send).
    finished: std::sync::atomic::AtomicBool,
    stats: Stats,
}

impl Sink {
    fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding it cannot leave a torn queue (push and drain only).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renders `event` for this webhook and queues it; never waits.
    fn offer(&self, event: &Value, now_ms: u64) {
        let settings = self.settings();
        let alert = &settings.alert;
        let kind = payload::kind(event).unwrap_or("");
        if !alert.events.is_empty() && !alert.events.iter().any(|k| k == kind) {
            return;
        }
        let mut state = self.state();
        let item = match alert.format {
            AlertFormat::Json => event.clone(),
            AlertFormat::Alertmanager => {
                let Some(c) = payload::condition(event, &settings.director, now_ms) else {
                    return;
                };
                let Some(a) = state.firing.alert(&c) else {
                    return;
                };
                a
            }
        };
        let dropped = state.queue.push(Entry {
            item,
            queued_at: Instant::now(),
        });
        drop(state);
        self.stats.drop(DropReason::QueueFull, dropped);
        self.wake.notify_one();
    }

    fn body(&self, settings: &Settings, items: Vec<Value>) -> Vec<u8> {
        let body = match settings.alert.format {
            AlertFormat::Json => payload::json_body(&settings.director, &items),
            AlertFormat::Alertmanager => {
                payload::alertmanager_body(&self.name, &settings.director, &items)
            }
        };
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn failed(&self, why: &str) {
        self.stats.requests_failed.fetch_add(1, Ordering::Relaxed);
        *self
            .stats
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some((why.to_string(), unix_ms()));
    }

    /// Delivers queued entries until stopped; then one last attempt for each batch still
    /// queued (no retries: the daemon is stopping).
    async fn run(self: Arc<Self>) {
        let mut stop = self.stop.subscribe();
        let mut failing = false;
        loop {
            let batch = self.state().queue.take_batch();
            if batch.is_empty() {
                if *stop.borrow() {
                    self.finished.store(true, Ordering::Relaxed);
                    return;
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let n = batch.len() as u64;
            let settings = self.settings();
            let oldest = batch.first().map(|e| e.queued_at);
            let body = self.body(&settings, batch.into_iter().map(|e| e.item).collect());
            let mut retry = 0;
            loop {
                match settings.post(body.clone()).await {
                    Outcome::Delivered => {
                        self.stats.sent.fetch_add(n, Ordering::Relaxed);
                        self.stats.requests_ok.fetch_add(1, Ordering::Relaxed);
                        self.stats.last_ok_ms.store(unix_ms(), Ordering::Relaxed);
                        if std::mem::take(&mut failing) {
                            info!(alert = %self.name, "alert {}: delivering again", self.name);
                        }
                        break;
                    }
                    Outcome::Rejected(why) => {
                        self.failed(&why);
                        self.stats.drop(DropReason::Rejected, n);
                        failing = true;
                        error!(alert = %self.name, "alert {}: {} refused {n} entries: {why}; dropped (retrying cannot help)", self.name, settings.alert.url);
                        break;
                    }
                    Outcome::Retry(why) => {
                        self.failed(&why);
                        let stopping = *stop.borrow();
                        if retry >= settings.alert.retries || stopping {
                            self.stats.drop(DropReason::Failed, n);
                            failing = true;
                            warn!(
                                alert = %self.name,
                                "alert {}: {n} entries dropped after {} attempts to {}: {why} (oldest queued {:.1} s ago)",
                                self.name,
                                retry + 1,
                                settings.alert.url,
                                oldest.map_or(0.0, |t| t.elapsed().as_secs_f64())
                            );
                            break;
                        }
                        let wait = policy::backoff(settings.alert.backoff, retry, MAX_BACKOFF);
                        retry += 1;
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            // Stopping: one more attempt, at once.
                            _ = stop.changed() => {}
                        }
                    }
                }
            }
        }
    }
}

/// Sets the `alerts` thread's end when it returns or unwinds.
struct EndGuard(Arc<OnceLock<String>>);

impl std::ops::Drop for EndGuard {
    fn drop(&mut self) {
        let why = if std::thread::panicking() {
            "panicked"
        } else {
            "returned"
        };
        let _ = self.0.set(why.to_string());
    }
}

struct Inner {
    sinks: RwLock<Vec<Arc<Sink>>>,
    handle: tokio::runtime::Handle,
    beats: Arc<AtomicU64>,
    end: Arc<OnceLock<String>>,
    stop: watch::Sender<bool>,
    stopped: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl Inner {
    fn sinks(&self) -> Vec<Arc<Sink>> {
        self.sinks.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn dispatch(&self, event: &Value) {
        let now = unix_ms();
        for s in self.sinks.read().unwrap_or_else(|e| e.into_inner()).iter() {
            s.offer(event, now);
        }
    }

    fn lagged(&self, missed: u64) {
        for s in self.sinks.read().unwrap_or_else(|e| e.into_inner()).iter() {
            s.stats.drop(DropReason::Lagged, missed);
        }
    }
}

/// The webhooks and the `alerts` thread that serves them; cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl Alerts {
    /// Starts the `alerts` thread, with no webhook yet ([`Alerts::apply`] adds them).
    pub fn start() -> std::io::Result<Alerts> {
        let beats = Arc::new(AtomicU64::new(0));
        let end = Arc::new(OnceLock::new());
        let (stop, mut stop_rx) = watch::channel(false);
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stopped_tx, stopped_rx) = std::sync::mpsc::channel();
        let (thread_beats, thread_end) = (beats.clone(), end.clone());
        std::thread::Builder::new()
            .name("alerts".into())
            .spawn(move || {
                let guard = EndGuard(thread_end);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let mut tick = tokio::time::interval(HEARTBEAT);
                    loop {
                        thread_beats.fetch_add(1, Ordering::Relaxed);
                        tokio::select! {
                            _ = tick.tick() => {}
                            _ = stop_rx.wait_for(|s| *s) => break,
                        }
                    }
                });
                // `shutdown` let the webhooks finish first; whatever is left is dropped.
                drop(runtime);
                // The end is recorded before `shutdown` hears of it, so that whoever it
                // returns to finds it set (it raced, and a test saw none).
                drop(guard);
                let _ = stopped_tx.send(());
            })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| std::io::Error::other("the alerts thread did not start"))??;
        Ok(Alerts {
            inner: Arc::new(Inner {
                sinks: RwLock::new(Vec::new()),
                handle,
                beats,
                end,
                stop,
                stopped: Mutex::new(Some(stopped_rx)),
            }),
        })
    }

    /// Makes the webhooks those of `alerts` (start, and after every reload): a webhook
    /// whose name stays keeps its queue, firing alerts and counters and takes the new
    /// settings (files read again: a rotated token is picked up); a new one starts
    /// empty; a removed one stops. A webhook whose files cannot be read now keeps its
    /// previous settings (or is not added) and is reported in the returned errors.
    pub fn apply(&self, alerts: &[Alert], director: &str) -> Vec<BuildError> {
        let mut errors = Vec::new();
        let old = self.inner.sinks();
        let mut next = Vec::new();
        for alert in alerts {
            let built = Settings::build(alert, director);
            let existing = old.iter().find(|s| s.name == alert.name);
            match (built, existing) {
                (Ok(settings), Some(sink)) => {
                    let before = sink.settings();
                    let mut state = sink.state();
                    if before.alert.format != alert.format {
                        let n = state.queue.clear();
                        state.firing = Firing::default();
                        sink.stats.drop(DropReason::Reload, n);
                    }
                    let n = state.queue.resize(alert.queue);
                    sink.stats.drop(DropReason::Reload, n);
                    drop(state);
                    *sink.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
                    next.push(sink.clone());
                }
                (Ok(settings), None) => {
                    let sink = Arc::new(Sink {
                        name: alert.name.clone(),
                        settings: RwLock::new(Arc::new(settings)),
                        state: Mutex::new(State {
                            queue: Queue::new(alert.queue),
                            firing: Firing::default(),
                        }),
                        wake: Notify::new(),
                        stop: watch::channel(false).0,
                        finished: Default::default(),
                        stats: Stats::default(),
                    });
                    self.inner.handle.spawn(sink.clone().run());
                    next.push(sink);
                }
                (Err(e), existing) => {
                    error!(
                        "{e}; {}",
                        if existing.is_some() {
                            "keeping its previous settings"
                        } else {
                            "it is not started"
                        }
                    );
                    if let Some(sink) = existing {
                        next.push(sink.clone());
                    }
                    errors.push(e);
                }
            }
        }
        for gone in old
            .iter()
            .filter(|s| !next.iter().any(|n| Arc::ptr_eq(n, s)))
        {
            let n = gone.state().queue.clear();
            gone.stats.drop(DropReason::Reload, n);
            let _ = gone.stop.send_replace(true);
        }
        *self.inner.sinks.write().unwrap_or_else(|e| e.into_inner()) = next;
        errors
    }

    /// Queues `event` for every webhook that wants it. Never waits.
    pub fn push(&self, event: &Value) {
        self.inner.dispatch(event);
    }

    /// Feeds every message of `rx` (converted by `to_json`) to the webhooks, on the
    /// `alerts` thread: the daemon's side of a broadcast costs nothing more.
    pub fn follow<T: Clone + Send + 'static>(
        &self,
        mut rx: broadcast::Receiver<T>,
        to_json: fn(&T) -> Value,
    ) {
        let inner = self.inner.clone();
        self.inner.handle.spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(e) => inner.dispatch(&to_json(&e)),
                    Err(broadcast::error::RecvError::Lagged(n)) => inner.lagged(n),
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// The `alerts` thread's heartbeat, for supervision.
    pub fn heartbeat(&self) -> Arc<AtomicU64> {
        self.inner.beats.clone()
    }

    /// Set once the `alerts` thread has ended (and why), for supervision.
    pub fn end(&self) -> Arc<OnceLock<String>> {
        self.inner.end.clone()
    }

    /// Stops: each webhook gets one last attempt at what it holds (no retries), then the
    /// thread ends; gives up waiting after `bound` (what is still queued is lost).
    pub fn shutdown(&self, bound: Duration) {
        let sinks = self.inner.sinks();
        for s in &sinks {
            let _ = s.stop.send_replace(true);
        }
        let deadline = Instant::now() + bound;
        // The webhooks finish on the thread; wait for them, then stop it.
        while Instant::now() < deadline && sinks.iter().any(|s| !s.finished.load(Ordering::Relaxed))
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.inner.stop.send_replace(true);
        let rx = self
            .inner
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(rx) = rx {
            let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        }
    }

    /// Each webhook's counters, for `vigilctl status` (docs/status-socket.md).
    pub fn status(&self) -> Vec<vigil_proto::AlertStatus> {
        self.inner
            .sinks()
            .iter()
            .map(|s| {
                let settings = s.settings();
                let (queued, firing) = {
                    let st = s.state();
                    (st.queue.len() as u64, st.firing.len() as u64)
                };
                let d = |why| s.stats.dropped(why);
                let last_ok = s.stats.last_ok_ms.load(Ordering::Relaxed);
                let (last_error, last_error_at_unix) = match s.stats.last_error() {
                    Some((e, at)) => (Some(e), Some(at as f64 / 1000.0)),
                    None => (None, None),
                };
                vigil_proto::AlertStatus {
                    name: s.name.clone(),
                    url: settings.alert.url.clone(),
                    format: match settings.alert.format {
                        AlertFormat::Json => "json",
                        AlertFormat::Alertmanager => "alertmanager",
                    }
                    .to_string(),
                    queued,
                    firing,
                    sent: s.stats.sent.load(Ordering::Relaxed),
                    requests: vigil_proto::AlertRequests {
                        ok: s.stats.requests_ok.load(Ordering::Relaxed),
                        failed: s.stats.requests_failed.load(Ordering::Relaxed),
                    },
                    dropped: vigil_proto::AlertDropped {
                        queue_full: d(DropReason::QueueFull),
                        failed: d(DropReason::Failed),
                        rejected: d(DropReason::Rejected),
                        lagged: d(DropReason::Lagged),
                        reload: d(DropReason::Reload),
                        other: Default::default(),
                    },
                    last_ok_at_unix: (last_ok != 0).then(|| last_ok as f64 / 1000.0),
                    last_error,
                    last_error_at_unix,
                }
            })
            .collect()
    }

    /// Each webhook's counters in the Prometheus text format (docs/metrics.md); empty
    /// without webhooks.
    pub fn prometheus(&self) -> String {
        let sinks = self.inner.sinks();
        let mut out = String::new();
        if sinks.is_empty() {
            return out;
        }
        // Names are [A-Za-z0-9._-] (validated): no label escaping needed.
        let mut family =
            |name: &str,
             kind: &str,
             help: &str,
             samples: &mut dyn Iterator<Item = (String, u64)>| {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                for (labels, v) in samples {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            };
        family(
            "vigil_alert_sent_total",
            "counter",
            "Events (json) or alerts (alertmanager) delivered, by webhook.",
            &mut sinks.iter().map(|s| {
                (
                    format!("alert=\"{}\"", s.name),
                    s.stats.sent.load(Ordering::Relaxed),
                )
            }),
        );
        family(
            "vigil_alert_dropped_total",
            "counter",
            "Entries dropped without delivery, by webhook and reason (queue_full, failed, rejected, lagged, reload).",
            &mut sinks.iter().flat_map(|s| {
                DropReason::ALL.iter().map(move |d| {
                    (
                        format!("alert=\"{}\",reason=\"{}\"", s.name, d.as_str()),
                        s.stats.dropped(*d),
                    )
                })
            }),
        );
        family(
            "vigil_alert_requests_total",
            "counter",
            "POST requests by webhook and result (ok: 2xx; error: anything else, each attempt).",
            &mut sinks.iter().flat_map(|s| {
                [
                    (
                        format!("alert=\"{}\",result=\"ok\"", s.name),
                        s.stats.requests_ok.load(Ordering::Relaxed),
                    ),
                    (
                        format!("alert=\"{}\",result=\"error\"", s.name),
                        s.stats.requests_failed.load(Ordering::Relaxed),
                    ),
                ]
            }),
        );
        family(
            "vigil_alert_queued",
            "gauge",
            "Entries waiting for delivery, by webhook.",
            &mut sinks.iter().map(|s| {
                (
                    format!("alert=\"{}\"", s.name),
                    s.state().queue.len() as u64,
                )
            }),
        );
        family(
            "vigil_alert_firing",
            "gauge",
            "Alertmanager alerts firing now (sent and not resolved), by webhook.",
            &mut sinks.iter().map(|s| {
                (
                    format!("alert=\"{}\"", s.name),
                    s.state().firing.len() as u64,
                )
            }),
        );
        out
    }
}
