//! The tokio shell around the [`Scheduler`]: runs due probes as tasks with bounded
//! concurrency, feeds their outcomes back, and reports health changes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{Id as TaskId, JoinSet};
use tokio::time::Instant;

use crate::combine::Combiner;
use crate::failure::FailureCause;
use crate::probe::Probe;
use crate::scheduler::{CheckStatus, Due, Health, Outcome, RunId, Scheduler};
use crate::stats::{Histogram, KindStats, Stats};
use crate::target::{CheckKey, Target};

/// A real server changed health (over all of its checks) or weight (dynamic checks),
/// or reached its first verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthEvent {
    /// The real server, with the index of the check whose result decided.
    pub key: CheckKey,
    pub virtual_server: String,
    pub health: Health,
    /// The weight its dynamic checks give it (see [`crate::Combiner`]); `None` when it
    /// has none, and the configured weight applies.
    pub weight: Option<u32>,
    /// The reason of the result that decided it, e.g. `connect to 10.0.0.12:80 refused`.
    pub reason: String,
    pub latency: Duration,
    pub at: SystemTime,
}

/// The receiving end of the checker's health changes. Unbounded: changes are at most one
/// per check per interval, and losing one would leave the IPVS table wrong.
pub type HealthEvents = mpsc::UnboundedReceiver<HealthEvent>;

/// Tuning of the shell.
#[derive(Debug, Clone)]
pub struct CheckerOptions {
    /// Probes running at once; due checks beyond this wait (and show as lateness).
    pub max_in_flight: usize,
    /// Seeds the start spread.
    pub seed: u64,
    /// Run on a thread of its own, with a single-threaded runtime, instead of on the
    /// caller's runtime. A check's wakeups (connected, response, timeout) then stay on
    /// that thread; on a multi-thread runtime each probe task is handed between the
    /// workers, which costs futex and eventfd wakeups per check: about a third more CPU
    /// per http check in the kernel lab (`docs/benchmarks.md`).
    pub own_thread: bool,
    /// Checks due within this much of a wakeup run in that wakeup, that much early at
    /// most; never more than 1/20 of the shortest check interval (so 50 ms at a 1 s
    /// interval, 5 ms at 100 ms). Start spread scatters checks evenly, so without it the
    /// checker would wake once per check (1,000 times a second for 1,000 servers checked
    /// every second), and in the kernel lab a wakeup costs about as much as a loopback
    /// check (`docs/benchmarks.md`). At most [`BATCH_MAX_EARLY`] checks start early per
    /// wakeup. It bounds the wakeups at one per window (at low rates) and leaves
    /// lateness alone: no run starts after it was due because of it, and the next run
    /// stays one interval after this one was due. Zero runs every check at its due time.
    pub batch_window: Duration,
    /// Checks are split by real server over this many schedulers, each on a thread of
    /// its own (or a task of the caller's runtime without `own_thread`). 0, the default,
    /// picks it from the checks' rate when the checker starts: one per
    /// [`CHECKS_PER_THREAD`] checks a second, at most one per CPU and 4 (see
    /// [`threads_for`]). More threads than needed cost CPU per check, since each wakes
    /// for its own share (fewer checks per wakeup).
    pub threads: usize,
}

impl Default for CheckerOptions {
    fn default() -> Self {
        CheckerOptions {
            max_in_flight: 4096,
            seed: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            own_thread: true,
            batch_window: Duration::from_millis(50),
            threads: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckerError {
    #[error("the checker task has stopped")]
    Stopped,
}

/// The state of every check, for the status socket and `vigilctl services`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    /// Sorted by virtual server name, then real server.
    pub checks: Vec<CheckState>,
}

impl Snapshot {
    pub fn get(&self, key: &CheckKey) -> Option<&CheckState> {
        self.checks.iter().find(|c| c.key == *key)
    }
}

/// One check's state. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckState {
    pub key: CheckKey,
    pub virtual_server: String,
    pub kind: &'static str,
    pub health: Health,
    pub consecutive_passes: u32,
    pub consecutive_failures: u32,
    pub runs: u64,
    pub last_result: Option<ResultState>,
    pub last_change: Option<ChangeState>,
    /// The last failed run, also after passes since.
    pub last_failure: Option<FailureState>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResultState {
    pub passed: bool,
    pub reason: String,
    /// Why it failed (`None` when it passed).
    pub cause: Option<FailureCause>,
    pub latency_us: u64,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeState {
    pub reason: String,
    pub at_unix_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FailureState {
    pub cause: FailureCause,
    pub at_unix_ms: u64,
}

enum Command {
    Update(Vec<Target>),
    Snapshot(oneshot::Sender<Snapshot>),
    Stats {
        reset: bool,
        reply: oneshot::Sender<ShardStats>,
    },
    #[cfg(debug_assertions)]
    TestFault(TestFault),
}

#[cfg(debug_assertions)]
use vigil_child::TestFault;

/// How often an idle scheduler still turns its loop, stamping its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// What a supervisor watches of one scheduler (thread): a counter bumped on every turn
/// of its loop (at least every [`HEARTBEAT`]), and why it ended, set once it has.
#[derive(Debug, Clone)]
pub struct Liveness {
    /// The thread's name (`checker`, `checker-0`, ...).
    pub name: String,
    pub beats: Arc<AtomicU64>,
    /// `returned`, or `panicked: MESSAGE`.
    pub end: Arc<OnceLock<String>>,
}

/// One driver's counters, merged by [`Checker::stats`].
#[derive(Debug, Default)]
struct ShardStats {
    passed: u64,
    failed: u64,
    in_flight: usize,
    backlog: usize,
    lateness: Histogram,
    probe_latency: Histogram,
    per_kind: BTreeMap<&'static str, KindStats>,
}

impl ShardStats {
    fn add(&mut self, other: ShardStats) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.in_flight += other.in_flight;
        self.backlog += other.backlog;
        self.lateness.merge(&other.lateness);
        self.probe_latency.merge(&other.probe_latency);
        for (kind, stats) in other.per_kind {
            self.per_kind.entry(kind).or_default().merge(&stats);
        }
    }

    fn into_stats(self) -> Stats {
        Stats {
            checks: self.passed + self.failed,
            passed: self.passed,
            failed: self.failed,
            in_flight: self.in_flight,
            backlog: self.backlog,
            lateness: self.lateness.summary(),
            probe_latency: self.probe_latency.summary(),
            per_kind: self.per_kind,
        }
    }
}

/// A handle on the running checker. Dropping every handle stops it, cancelling running
/// probes (exec checks have their process trees killed).
#[derive(Debug, Clone)]
pub struct Checker {
    // Dropped first: the last handle closes the channels, which stops the drivers...
    shards: Vec<mpsc::UnboundedSender<Command>>,
    // ...then their threads (if they have them) are joined, so that running probes are
    // cancelled (exec process trees killed) before, say, the process exits.
    _threads: Arc<OwnThreads>,
    liveness: Arc<Vec<Liveness>>,
}

/// The checker's own threads, joined when the last handle goes.
#[derive(Debug, Default)]
struct OwnThreads(Vec<std::thread::JoinHandle<()>>);

impl Drop for OwnThreads {
    fn drop(&mut self) {
        for handle in self.0.drain(..) {
            let _ = handle.join();
        }
    }
}

/// At most this many checks start early in one wakeup (see
/// [`CheckerOptions::batch_window`]); those already due all start. A wakeup's checks are
/// started one after the other, so a larger batch would add the time spent starting the
/// others to the latency measured for the last ones (at 10,000 http checks a second, a
/// 50 ms window holds 500 of them).
pub const BATCH_MAX_EARLY: usize = 32;

/// The check rate one checker thread is given before a second one is started. A thread
/// of a current server does ten times this; in the emulated kernel lab one saturates at
/// about 3,700 tcp or 2,000 http checks a second (`docs/benchmarks.md`).
pub const CHECKS_PER_THREAD: f64 = 2500.0;

/// How many checker threads `targets` get with [`CheckerOptions::threads`] 0: one per
/// [`CHECKS_PER_THREAD`] checks a second, at least 1, at most the CPUs and 4.
pub fn threads_for(targets: &[Target]) -> usize {
    let rate: f64 = targets
        .iter()
        .map(|t| 1.0 / t.check.interval.as_secs_f64().max(0.001))
        .sum();
    let cpus = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    ((rate / CHECKS_PER_THREAD).ceil() as usize).clamp(1, cpus)
}

/// Which of `shards` checks `key`: a fixed hash of its real server, so a check stays
/// with its scheduler (and its state) across reloads, and all checks of one real server
/// are on one scheduler (which combines them).
fn shard_of(key: &CheckKey, shards: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if shards <= 1 {
        return 0;
    }
    let mut hasher = std::hash::DefaultHasher::new();
    key.real_server().hash(&mut hasher);
    (hasher.finish() % shards as u64) as usize
}

/// `targets` split by [`shard_of`].
fn split(targets: Vec<Target>, shards: usize) -> Vec<Vec<Target>> {
    if shards <= 1 {
        return vec![targets];
    }
    // Room for an even split and a little more: no doubling of MiBs of targets.
    let each = targets.len() / shards + targets.len() / (4 * shards) + 16;
    let mut split: Vec<Vec<Target>> = (0..shards).map(|_| Vec::with_capacity(each)).collect();
    for target in targets {
        split[shard_of(&target.key, shards)].push(target);
    }
    split
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Command::Update(_) => "Update",
            Command::Snapshot(_) => "Snapshot",
            Command::Stats { .. } => "Stats",
            #[cfg(debug_assertions)]
            Command::TestFault(_) => "TestFault",
        })
    }
}

impl Checker {
    /// Starts checking `targets`, on a thread of its own ([`CheckerOptions::own_thread`]) or
    /// on the current tokio runtime; either way it must be called from within a runtime.
    /// Health changes arrive on the returned receiver.
    pub fn spawn(targets: Vec<Target>, options: CheckerOptions) -> (Checker, HealthEvents) {
        let (events, event_rx) = mpsc::unbounded_channel();
        let count = match options.threads {
            0 => threads_for(&targets),
            n => n,
        };
        let mut shards = Vec::with_capacity(count);
        let mut threads = OwnThreads::default();
        let mut liveness = Vec::with_capacity(count);
        for (i, targets) in split(targets, count).into_iter().enumerate() {
            let (commands, command_rx) = mpsc::unbounded_channel();
            shards.push(commands);
            let name = if count == 1 {
                "checker".to_string()
            } else {
                format!("checker-{i}")
            };
            let live = Liveness {
                name: name.clone(),
                beats: Arc::new(AtomicU64::new(0)),
                end: Arc::new(OnceLock::new()),
            };
            let mut driver = Driver {
                beats: live.beats.clone(),
                scheduler: Scheduler::new(options.seed.wrapping_add(i as u64)),
                combiner: Combiner::new(),
                watch: None,
                probes: HashMap::new(),
                running: JoinSet::new(),
                running_keys: HashMap::new(),
                backlog: VecDeque::new(),
                events: events.clone(),
                max_in_flight: options.max_in_flight.max(1),
                batch_cap: options.batch_window,
                batch_window: Duration::ZERO,
                lateness: Histogram::default(),
                probe_latency: Histogram::default(),
                passed: 0,
                failed: 0,
                per_kind: BTreeMap::new(),
            };
            driver.update(targets, Instant::now());
            let end = live.end.clone();
            liveness.push(live);
            if !options.own_thread {
                tokio::spawn(driver.run(command_rx));
                continue;
            }
            match run_on_own_thread(name, driver, command_rx, end) {
                Ok(handle) => threads.0.push(handle),
                // No thread or runtime to be had: the caller's runtime will do.
                Err(Some(taken)) => {
                    let (driver, command_rx) = *taken;
                    drop(tokio::spawn(driver.run(command_rx)));
                }
                Err(None) => {}
            }
        }
        (
            Checker {
                shards,
                _threads: Arc::new(threads),
                liveness: Arc::new(liveness),
            },
            event_rx,
        )
    }

    /// Replaces the set of checks (a reload): unchanged checks keep their state and
    /// schedule, changed ones keep their health, new ones start in their initial state.
    pub fn update(&self, targets: Vec<Target>) -> Result<(), CheckerError> {
        // Every scheduler gets its part, empty or not: that is how removals reach it.
        for (shard, targets) in self.shards.iter().zip(split(targets, self.shards.len())) {
            shard
                .send(Command::Update(targets))
                .map_err(|_| CheckerError::Stopped)?;
        }
        Ok(())
    }

    pub async fn snapshot(&self) -> Result<Snapshot, CheckerError> {
        let mut checks = Vec::new();
        for part in self.ask_all(Command::Snapshot).await? {
            checks.extend(part.checks);
        }
        if self.shards.len() > 1 {
            sort_checks(&mut checks);
        }
        Ok(Snapshot { checks })
    }

    /// Counters and scheduling lateness; `reset` starts a new measuring window.
    pub async fn stats(&self, reset: bool) -> Result<Stats, CheckerError> {
        let mut total = ShardStats::default();
        for part in self
            .ask_all(|reply| Command::Stats { reset, reply })
            .await?
        {
            total.add(part);
        }
        Ok(total.into_stats())
    }

    /// How many checker threads (schedulers) there are.
    pub fn threads(&self) -> usize {
        self.shards.len()
    }

    /// Each scheduler's heartbeat and end, for a supervisor. A scheduler on its own
    /// thread records its end (return or panic); one on the caller's runtime does not.
    pub fn liveness(&self) -> Vec<Liveness> {
        self.liveness.as_ref().clone()
    }

    /// Makes the first scheduler panic, end or hang (supervision tests).
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    pub fn test_fault(&self, fault: TestFault) {
        if let Some(shard) = self.shards.first() {
            let _ = shard.send(Command::TestFault(fault));
        }
    }

    /// Sends every scheduler the command `ask` makes and collects their replies; all are
    /// asked before any reply is awaited, so they answer in parallel.
    async fn ask_all<T>(
        &self,
        ask: impl Fn(oneshot::Sender<T>) -> Command,
    ) -> Result<Vec<T>, CheckerError> {
        let mut replies = Vec::with_capacity(self.shards.len());
        for shard in &self.shards {
            let (reply, rx) = oneshot::channel();
            shard.send(ask(reply)).map_err(|_| CheckerError::Stopped)?;
            replies.push(rx);
        }
        let mut answers = Vec::with_capacity(replies.len());
        for rx in replies {
            answers.push(rx.await.map_err(|_| CheckerError::Stopped)?);
        }
        Ok(answers)
    }
}

/// By virtual server name, then real server, then check.
fn sort_checks(checks: &mut [CheckState]) {
    checks.sort_by(|a, b| {
        (a.virtual_server.as_str(), a.key.real, a.key.index).cmp(&(
            b.virtual_server.as_str(),
            b.key.real,
            b.key.index,
        ))
    });
}

struct Driver {
    /// Bumped on every turn of the loop.
    beats: Arc<AtomicU64>,
    scheduler: Scheduler,
    /// Each real server's checks into one verdict.
    combiner: Combiner,
    /// The inotify watch on file checks' files.
    watch: Option<crate::watch::FileWatch>,
    probes: HashMap<CheckKey, Arc<Probe>>,
    running: JoinSet<Outcome>,
    running_keys: HashMap<TaskId, (CheckKey, RunId)>,
    backlog: VecDeque<Due>,
    events: mpsc::UnboundedSender<HealthEvent>,
    max_in_flight: usize,
    /// [`CheckerOptions::batch_window`].
    batch_cap: Duration,
    /// The window in effect: the cap, or 1/20 of the shortest interval if less.
    batch_window: Duration,
    lateness: Histogram,
    probe_latency: Histogram,
    passed: u64,
    failed: u64,
    per_kind: BTreeMap<&'static str, KindStats>,
}

impl Driver {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        // One timer for the whole life of the driver, moved when the next deadline moves,
        // rather than a new one per turn of the loop. While it is armed it is usually
        // the earliest timer, and a timer that becomes the earliest makes tokio wake its
        // I/O driver (an eventfd write and an extra epoll_wait), which every probe's own
        // timeout did whenever the driver's timer was not registered.
        let sleep = tokio::time::sleep_until(Instant::now());
        tokio::pin!(sleep);
        let mut armed = None;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.beats.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            let mut due = self.scheduler.poll(now.into_std());
            if due.len() < BATCH_MAX_EARLY {
                let room = BATCH_MAX_EARLY - due.len();
                due.extend(
                    self.scheduler
                        .poll_at_most(now.into_std() + self.batch_window, room),
                );
            }
            self.backlog.extend(due);
            self.dispatch(now);
            let deadline = self.scheduler.next_deadline().map(Instant::from_std);
            if let Some(at) = deadline
                && armed != Some(at)
            {
                sleep.as_mut().reset(at);
                armed = Some(at);
            }
            tokio::select! {
                biased;
                command = commands.recv() => match command {
                    #[cfg(debug_assertions)]
                    Some(Command::TestFault(fault)) => match fault {
                        TestFault::Panic => panic!("test fault: checker panics"),
                        TestFault::End => return,
                        TestFault::Stall => loop {
                            std::thread::sleep(Duration::from_secs(3600));
                        },
                    },
                    Some(command) => self.handle(command),
                    None => return,
                },
                Some(joined) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    self.finish(joined);
                    // Collect everything else already done in one go.
                    while let Some(joined) = self.running.try_join_next_with_id() {
                        self.finish(joined);
                    }
                },
                () = &mut sleep, if deadline.is_some() => {}
                keys = watch_changed(self.watch.as_ref()), if self.watch.is_some() => {
                    let now = Instant::now().into_std();
                    for key in keys {
                        self.scheduler.trigger(&key, now);
                    }
                }
                _ = heartbeat.tick() => {}
            }
        }
    }

    fn dispatch(&mut self, now: Instant) {
        while self.running.len() < self.max_in_flight {
            let Some(due) = self.backlog.pop_front() else {
                return;
            };
            let Some(probe) = self.probes.get(&due.key).map(Arc::clone) else {
                // Cannot happen (probes follow the targets), but a run must always end, or
                // the check would never be scheduled again.
                let outcome = Outcome::fail(
                    FailureCause::Internal,
                    "no probe for this check",
                    Duration::ZERO,
                );
                self.scheduler
                    .on_result(&due.key, due.run, outcome, now.into_std());
                continue;
            };
            self.lateness
                .record(now.into_std().saturating_duration_since(due.due));
            let handle = self.running.spawn(async move { probe.run().await });
            self.running_keys.insert(handle.id(), (due.key, due.run));
        }
    }

    fn finish(&mut self, joined: Result<(TaskId, Outcome), tokio::task::JoinError>) {
        let (id, outcome) = match joined {
            Ok((id, outcome)) => (id, outcome),
            // A probe that panicked still ends its run, as a failure, so the check goes on.
            Err(e) => (
                e.id(),
                Outcome::fail(
                    FailureCause::Internal,
                    format!("probe failed internally: {e}"),
                    Duration::ZERO,
                ),
            ),
        };
        let Some((key, run)) = self.running_keys.remove(&id) else {
            return;
        };
        self.probe_latency.record(outcome.latency);
        if outcome.passed {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        if let Some(probe) = self.probes.get(&key) {
            self.per_kind
                .entry(probe.target().check.kind.name())
                .or_default()
                .record(outcome.cause, outcome.latency);
        }
        let now = Instant::now().into_std();
        let (passed, effect) = (outcome.passed, outcome.weight);
        let transition = self.scheduler.on_result(&key, run, outcome, now);
        let verdict = transition.as_ref().map(|t| t.health);
        let Some(combined) = self.combiner.on_result(&key, verdict, passed, effect) else {
            return;
        };
        // A change of weight alone has no transition: the result itself says why.
        let (reason, latency) = match transition {
            Some(t) => (t.reason, t.latency),
            None => self
                .scheduler
                .status(&key)
                .and_then(|s| s.last)
                .map(|l| (l.outcome.reason, l.outcome.latency))
                .unwrap_or_default(),
        };
        let virtual_server = self
            .probes
            .get(&key)
            .map(|p| p.target().virtual_server.clone())
            .unwrap_or_default();
        let _ = self.events.send(HealthEvent {
            key,
            virtual_server,
            health: combined.health,
            weight: combined.weight,
            reason,
            latency,
            at: SystemTime::now(),
        });
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Update(targets) => self.update(targets, Instant::now()),
            Command::Snapshot(reply) => {
                let _ = reply.send(self.snapshot());
            }
            Command::Stats { reset, reply } => {
                let stats = ShardStats {
                    passed: self.passed,
                    failed: self.failed,
                    in_flight: self.running.len(),
                    backlog: self.backlog.len(),
                    lateness: self.lateness.clone(),
                    probe_latency: self.probe_latency.clone(),
                    per_kind: self.per_kind.clone(),
                };
                if reset {
                    self.passed = 0;
                    self.failed = 0;
                    self.lateness = Histogram::default();
                    self.probe_latency = Histogram::default();
                    self.per_kind.clear();
                }
                let _ = reply.send(stats);
            }
            #[cfg(debug_assertions)]
            Command::TestFault(_) => {}
        }
    }

    fn update(&mut self, targets: Vec<Target>, now: Instant) {
        let shortest = targets.iter().map(|t| t.check.interval).min();
        self.batch_window = shortest.map_or(self.batch_cap, |i| self.batch_cap.min(i / 20));
        for target in &targets {
            let fresh = match self.probes.get(&target.key) {
                Some(probe) => **probe.target() != *target,
                None => true,
            };
            if fresh {
                let probe = Probe::new(Arc::new(target.clone()));
                self.probes.insert(target.key, Arc::new(probe));
            }
        }
        self.combiner.set_targets(&targets);
        for key in self.scheduler.set_targets(targets, now.into_std()) {
            self.probes.remove(&key);
        }
        let files = crate::watch::files_of(self.probes.iter().map(|(k, p)| (k, &**p)));
        if self.watch.as_ref().map(|w| w.files()) != Some(&files) {
            self.watch = crate::watch::FileWatch::new(files);
        }
    }

    fn snapshot(&self) -> Snapshot {
        let now = std::time::Instant::now();
        let wall = SystemTime::now();
        let unix_ms = |at: std::time::Instant| {
            let when = wall
                .checked_sub(now.saturating_duration_since(at))
                .unwrap_or(SystemTime::UNIX_EPOCH);
            when.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        };
        let mut checks: Vec<CheckState> = self
            .scheduler
            .statuses()
            .map(|s: CheckStatus| CheckState {
                key: s.target.key,
                virtual_server: s.target.virtual_server.clone(),
                kind: s.target.check.kind.name(),
                health: s.health,
                consecutive_passes: s.passes,
                consecutive_failures: s.failures,
                runs: s.runs,
                last_result: s.last.map(|l| ResultState {
                    passed: l.outcome.passed,
                    latency_us: u64::try_from(l.outcome.latency.as_micros()).unwrap_or(u64::MAX),
                    reason: l.outcome.reason,
                    cause: l.outcome.cause,
                    at_unix_ms: unix_ms(l.at),
                }),
                last_change: s.last_change.map(|(at, reason)| ChangeState {
                    reason,
                    at_unix_ms: unix_ms(at),
                }),
                last_failure: s.last_failure.map(|f| FailureState {
                    cause: f.cause,
                    at_unix_ms: unix_ms(f.at),
                }),
            })
            .collect();
        sort_checks(&mut checks);
        Snapshot { checks }
    }
}

/// The checks whose files changed; never ready without a watch.
async fn watch_changed(watch: Option<&crate::watch::FileWatch>) -> Vec<CheckKey> {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
}

/// The text of a panic's payload (`panic!` with a literal or a format).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

/// What the checker's task runs on.
type Parts = (Driver, mpsc::UnboundedReceiver<Command>);

/// Runs the driver on a new thread with a current-thread runtime until every handle is
/// dropped. Hands the driver back if that thread or its runtime cannot be had; waits
/// (well under a millisecond) until the runtime is built.
fn run_on_own_thread(
    name: String,
    driver: Driver,
    commands: mpsc::UnboundedReceiver<Command>,
    end: Arc<OnceLock<String>>,
) -> Result<std::thread::JoinHandle<()>, Option<Box<Parts>>> {
    type Slot = std::sync::Mutex<Option<Parts>>;
    let take = |slot: &Slot| slot.lock().map(|mut s| s.take()).unwrap_or(None);
    let slot: Arc<Slot> = Arc::new(std::sync::Mutex::new(Some((driver, commands))));
    let theirs = Arc::clone(&slot);
    let (started_tx, started_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        // Built here, not by the caller: a runtime may not be dropped (on failure)
        // inside the caller's async context.
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return; // dropping `started_tx` tells the caller
        };
        let taken = take(&theirs);
        let _ = started_tx.send(());
        if let Some((driver, commands)) = taken {
            // As a spawned task, not as the `block_on` future itself: waking that
            // one always goes through the runtime's eventfd (a write, and one more
            // epoll_wait return), even from its own thread, and the driver is
            // woken by every probe that ends.
            let why = match runtime.block_on(runtime.spawn(driver.run(commands))) {
                Ok(()) => "returned".to_string(),
                Err(e) if e.is_panic() => {
                    format!("panicked: {}", panic_message(e.into_panic().as_ref()))
                }
                Err(e) => e.to_string(),
            };
            let _ = end.set(why);
        }
    });
    match spawned {
        Ok(handle) if started_rx.recv().is_ok() => Ok(handle),
        // The thread never took the driver: it is still in the slot.
        _ => Err(take(&slot).map(Box::new)),
    }
}
