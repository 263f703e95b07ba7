//! Supervision: no worker may die or hang unnoticed.
//!
//! Every long-lived worker (the daemon loop, the director task, the IPVS and ipvs-sync
//! threads, each checker thread, the VRRP task and each VRRP runner) is registered here
//! with a heartbeat (a counter it bumps on every turn of its loop; idle loops wake at
//! least every [`HEARTBEAT`]) and an end (set once it returns or panics). The
//! `supervisor` thread looks at them every [`TICK`] or faster:
//!
//! - a worker that ended while the daemon is not stopping is logged (which, why) and
//!   reported to the daemon loop, which stops the daemon with a non-zero exit (systemd
//!   restarts it; a restart adopts the kernel table without writes). Should the loop not
//!   get there within [`EXIT_BACKSTOP`], the supervisor exits the process itself;
//! - a worker whose heartbeat has not moved for its stale bound is logged, and while any
//!   is stale (or ended) the systemd watchdog (`WATCHDOG=1`) is not fed.
//!
//! A plain thread, not a task: it must keep judging while the async runtime is blocked.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::{error, info};

/// How often an idle worker still turns its loop.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often the supervisor looks (faster when the watchdog interval is short).
pub const TICK: Duration = Duration::from_millis(500);
/// A worker is stale after this long without a heartbeat, or after the watchdog interval
/// if that is longer, or after its own bound ([`Supervisor::watch`]) if longer still.
pub const STALE_AFTER: Duration = Duration::from_secs(5);
/// How long the daemon loop gets to stop cleanly after a worker ended.
pub const EXIT_BACKSTOP: Duration = Duration::from_secs(45);

/// A worker that ended while it should have been running.
#[derive(Debug, Clone)]
pub struct Ended {
    pub worker: String,
    pub why: String,
}

struct Worker {
    name: String,
    beats: Option<Arc<AtomicU64>>,
    end: Arc<OnceLock<String>>,
    stale_after: Duration,
    seen: u64,
    changed: Instant,
    stale: bool,
    reported: bool,
}

struct Inner {
    workers: Mutex<BTreeMap<u64, Worker>>,
    next_id: AtomicU64,
    stopping: AtomicBool,
    ended: mpsc::UnboundedSender<Ended>,
    watchdog: Option<Duration>,
}

/// The registry of workers; cheap to clone.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

/// Identifies a watched worker, to [`Supervisor::retire`] it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId(u64);

/// Held by a worker of ours for its whole life: when it is dropped (the worker returned,
/// or unwound from a panic) the end is recorded. [`Guard::finish`] marks an expected end.
pub struct Guard {
    supervisor: Supervisor,
    id: WorkerId,
    end: Arc<OnceLock<String>>,
    pub beats: Arc<AtomicU64>,
}

impl Guard {
    /// One turn of the worker's loop.
    pub fn beat(&self) {
        self.beats.fetch_add(1, Ordering::Relaxed);
    }

    /// The worker ends as it should (asked to stop).
    pub fn finish(self) {
        self.supervisor.retire(self.id);
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let why = if std::thread::panicking() {
            format!("panicked: {}", last_panic().unwrap_or_default())
        } else {
            "returned".to_string()
        };
        let _ = self.end.set(why);
    }
}

impl Supervisor {
    /// A supervisor reporting ended workers on the returned receiver. `watchdog`: the
    /// systemd watchdog interval (`WATCHDOG_USEC`), if the watchdog is on.
    pub fn new(watchdog: Option<Duration>) -> (Supervisor, mpsc::UnboundedReceiver<Ended>) {
        let (ended, rx) = mpsc::unbounded_channel();
        (
            Supervisor {
                inner: Arc::new(Inner {
                    workers: Mutex::new(BTreeMap::new()),
                    next_id: AtomicU64::new(0),
                    stopping: AtomicBool::new(false),
                    ended,
                    watchdog,
                }),
            },
            rx,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Worker>> {
        // A panic while holding it cannot leave a torn map (inserts and removes only).
        self.inner.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches a worker run elsewhere (a crate's thread or task): its heartbeat, if it has
    /// one, and its end as that code records it. `min_stale`: a bound longer than
    /// [`STALE_AFTER`] for workers whose single steps can legitimately take long.
    pub fn watch(
        &self,
        name: impl Into<String>,
        beats: Option<Arc<AtomicU64>>,
        end: Arc<OnceLock<String>>,
        min_stale: Duration,
    ) -> WorkerId {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let stale_after = STALE_AFTER
            .max(self.inner.watchdog.unwrap_or_default())
            .max(min_stale);
        let seen = beats.as_ref().map_or(0, |b| b.load(Ordering::Relaxed));
        self.lock().insert(
            id,
            Worker {
                name: name.into(),
                beats,
                end,
                stale_after,
                seen,
                changed: Instant::now(),
                stale: false,
                reported: false,
            },
        );
        WorkerId(id)
    }

    /// Registers a worker of ours; it keeps the guard for its whole life.
    pub fn guard(&self, name: impl Into<String>, min_stale: Duration) -> Guard {
        let beats = Arc::new(AtomicU64::new(0));
        let end = Arc::new(OnceLock::new());
        let id = self.watch(name, Some(beats.clone()), end.clone(), min_stale);
        Guard {
            supervisor: self.clone(),
            id,
            end,
            beats,
        }
    }

    /// Starts plain thread `name` as a worker: registered with its stale bound
    /// `min_stale` ([`Supervisor::guard`]) and its test fault armed, both handed to
    /// `body`. `None` (logged) when the thread cannot be created.
    pub fn spawn_thread(
        &self,
        name: &str,
        min_stale: Duration,
        faults: &TestFaults,
        body: impl FnOnce(Guard, Armed) + Send + 'static,
    ) -> Option<std::thread::JoinHandle<()>> {
        let guard = self.guard(name, min_stale);
        let fault = Armed::new(faults, name);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || body(guard, fault))
            .ok();
        if thread.is_none() {
            error!("cannot start the {name} thread");
        }
        thread
    }

    /// Stops watching a worker that is about to end as it should (a removed VRRP
    /// instance, a stop).
    pub fn retire(&self, id: WorkerId) {
        self.lock().remove(&id.0);
    }

    /// The daemon is stopping: ends are expected from now on.
    pub fn stopping(&self) {
        self.inner.stopping.store(true, Ordering::Relaxed);
    }

    /// Starts the `supervisor` thread.
    pub fn start(&self) -> std::io::Result<()> {
        let me = self.clone();
        std::thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || me.run())
            .map(drop)
    }

    fn run(self) {
        let tick = match self.inner.watchdog {
            // systemd wants a ping at least every interval; twice as often is the custom.
            Some(w) => TICK.min(w / 4).max(Duration::from_millis(10)),
            None => TICK,
        };
        let mut exit_at: Option<Instant> = None;
        loop {
            std::thread::sleep(tick);
            let now = Instant::now();
            let stopping = self.inner.stopping.load(Ordering::Relaxed);
            let healthy = self.look(now, stopping, &mut exit_at);
            if healthy && self.inner.watchdog.is_some() && !stopping {
                crate::systemd::watchdog();
            }
            if let Some(at) = exit_at
                && now >= at
            {
                error!(
                    "the daemon did not stop within {EXIT_BACKSTOP:?} of a worker's end: exiting now"
                );
                std::process::exit(1);
            }
        }
    }

    /// One look at every worker; `true` when all are alive and fresh.
    fn look(&self, now: Instant, stopping: bool, exit_at: &mut Option<Instant>) -> bool {
        let mut healthy = true;
        let mut workers = self.lock();
        for w in workers.values_mut() {
            if let Some(why) = w.end.get() {
                healthy = false;
                if !w.reported && !stopping {
                    w.reported = true;
                    error!(worker = %w.name, "worker {} ended unexpectedly: {why}; stopping vigild (exit status 1) so that it is restarted", w.name);
                    let _ = self.inner.ended.send(Ended {
                        worker: w.name.clone(),
                        why: why.clone(),
                    });
                    exit_at.get_or_insert(now + EXIT_BACKSTOP);
                }
                continue;
            }
            let Some(beats) = &w.beats else {
                continue;
            };
            let seen = beats.load(Ordering::Relaxed);
            if seen != w.seen {
                w.seen = seen;
                w.changed = now;
                if w.stale {
                    w.stale = false;
                    info!(worker = %w.name, "worker {} is responsive again", w.name);
                }
            } else if now.duration_since(w.changed) > w.stale_after {
                healthy = false;
                if !w.stale {
                    w.stale = true;
                    error!(
                        worker = %w.name,
                        "worker {} is stale: no heartbeat for {:.1} s{}",
                        w.name,
                        now.duration_since(w.changed).as_secs_f64(),
                        if self.inner.watchdog.is_some() {
                            "; the systemd watchdog is no longer fed"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        healthy
    }
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn last_panic() -> Option<String> {
    LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Keeps each panic's message and place (for the supervisor's "why") and logs it, then
/// runs the default hook. Release builds abort on panic (`panic = "abort"`), after this
/// hook: the log line is what remains.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let text = format!("{message}{place}");
        error!(thread = %thread, "panic: {text}");
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(text);
        default(info);
    }));
}

/// What a test asked to break, and how (`VIGIL_TEST_FAULT`, debug builds only).
pub use vigil_child::TestFault as FaultKind;

/// Faults to inject: `VIGIL_TEST_FAULT=KIND:WORKER[@DELAY],...`, KIND one of `panic`,
/// `end`, `stall`; WORKER one of `director`, `ipvs`, `ipvs-sync`, `checker`, `vrrp`,
/// `vrrp-runner`; DELAY a duration (`2s`) after start, 0 by default. Read once at start;
/// release builds never read it.
#[derive(Debug, Clone, Default)]
pub struct TestFaults(Vec<(FaultKind, String, Duration)>);

impl TestFaults {
    pub fn from_env() -> TestFaults {
        #[cfg(debug_assertions)]
        if let Ok(text) = std::env::var("VIGIL_TEST_FAULT") {
            return TestFaults::parse(&text);
        }
        TestFaults::default()
    }

    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    fn parse(text: &str) -> TestFaults {
        let mut out = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (what, delay) = item.split_once('@').unwrap_or((item, "0s"));
            let Some((kind, worker)) = what.split_once(':') else {
                continue;
            };
            let kind = match kind {
                "panic" => FaultKind::Panic,
                "end" => FaultKind::End,
                "stall" => FaultKind::Stall,
                _ => continue,
            };
            let delay = vigil_config::parse_duration(delay).unwrap_or_default();
            out.push((kind, worker.to_string(), delay));
        }
        if !out.is_empty() {
            tracing::warn!("test faults armed: {out:?}");
        }
        TestFaults(out)
    }

    /// The fault for `worker`, and when (from `start`).
    pub fn get(&self, worker: &str, start: Instant) -> Option<(FaultKind, Instant)> {
        self.0
            .iter()
            .find(|(_, w, _)| w == worker)
            .map(|(k, _, d)| (*k, start + *d))
    }
}

/// Carries out a fault in an async worker: panics, returns (the caller then returns as
/// the worker), or never returns (a hang that blocks no thread).
pub async fn test_fault_async(kind: FaultKind, worker: &str) {
    match kind {
        FaultKind::Panic => panic!("test fault: {worker} panics"),
        FaultKind::End => {}
        FaultKind::Stall => std::future::pending().await,
    }
}

/// Carries out a fault on a thread: panics, returns (the caller then returns), or blocks
/// the thread for good.
pub fn test_fault_thread(kind: FaultKind, worker: &str) {
    match kind {
        FaultKind::Panic => panic!("test fault: {worker} panics"),
        FaultKind::End => {}
        FaultKind::Stall => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
}

/// A fault armed for one worker: fires once, at its time.
#[derive(Debug, Clone, Copy)]
pub struct Armed(Option<(FaultKind, Instant)>);

impl Armed {
    pub fn new(faults: &TestFaults, worker: &str) -> Armed {
        Armed(faults.get(worker, Instant::now()))
    }

    /// The fault, once it is due (then never again).
    pub fn due(&mut self, now: Instant) -> Option<FaultKind> {
        match self.0 {
            Some((kind, at)) if now >= at => {
                self.0 = None;
                Some(kind)
            }
            _ => None,
        }
    }

    /// When it is due, for loops that sleep until their next event.
    pub fn at(&self) -> Option<Instant> {
        self.0.map(|(_, at)| at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_kind_worker_and_delay() {
        let f = TestFaults::parse("panic:ipvs, stall:director@2s,bogus,end:vrrp-runner@500ms");
        let t0 = Instant::now();
        assert_eq!(f.get("ipvs", t0), Some((FaultKind::Panic, t0)));
        assert_eq!(
            f.get("director", t0),
            Some((FaultKind::Stall, t0 + Duration::from_secs(2)))
        );
        assert_eq!(
            f.get("vrrp-runner", t0),
            Some((FaultKind::End, t0 + Duration::from_millis(500)))
        );
        assert_eq!(f.get("checker", t0), None);
    }

    #[test]
    fn an_ended_worker_is_reported_once_and_a_quiet_one_is_stale() {
        let (s, mut ended) = Supervisor::new(None);
        let t0 = Instant::now();
        let quiet = s.guard("quiet", Duration::ZERO);
        let gone = s.guard("gone", Duration::ZERO);
        let retired = s.guard("retired", Duration::ZERO);
        retired.finish();
        drop(gone);
        let mut exit_at = None;
        assert!(!s.look(t0, false, &mut exit_at));
        let e = ended.try_recv().unwrap();
        assert_eq!((e.worker.as_str(), e.why.as_str()), ("gone", "returned"));
        assert!(exit_at.is_some());
        // Reported once only.
        assert!(!s.look(t0, false, &mut exit_at));
        assert!(ended.try_recv().is_err());

        let (s, _ended) = Supervisor::new(None);
        let quiet2 = s.guard("quiet", Duration::ZERO);
        let mut none = None;
        assert!(s.look(t0, false, &mut none));
        assert!(!s.look(t0 + STALE_AFTER + TICK, false, &mut none));
        quiet2.beat();
        assert!(s.look(t0 + STALE_AFTER + TICK * 2, false, &mut none));
        drop(quiet);
    }

    #[test]
    fn ends_while_stopping_are_expected() {
        let (s, mut ended) = Supervisor::new(None);
        let g = s.guard("director", Duration::ZERO);
        s.stopping();
        drop(g);
        let mut exit_at = None;
        s.look(Instant::now(), true, &mut exit_at);
        assert!(ended.try_recv().is_err());
        assert!(exit_at.is_none());
    }
}
