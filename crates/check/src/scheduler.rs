//! The sans-IO check scheduler: when each check runs, and when a real server goes up or
//! down. It never reads a clock, sleeps or touches a socket: the caller passes `now` in,
//! runs the [`Due`] checks however it likes, and reports each [`Outcome`] back.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use vigil_config::InitialState;

use crate::failure::FailureCause;
use crate::target::{CheckKey, Target};

/// Whether a real server should get traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Up => "up",
            Health::Down => "down",
        })
    }
}

/// The result of one run of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub passed: bool,
    /// What was seen, for people: `HTTP 503 from 10.0.0.11:80 GET /healthz`.
    pub reason: String,
    /// Why it failed, for grouping (`http_status`); `None` when it passed.
    pub cause: Option<FailureCause>,
    pub latency: Duration,
    /// What a passing result of a dynamic check says of the real server's weight;
    /// `None` leaves it as the check last set it.
    pub weight: Option<WeightEffect>,
}

/// How a dynamic check moves its real server's weight (see [`crate::Combiner`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightEffect {
    /// The weight is this (exec `dynamic_weight`: the exit status minus 2).
    Set(u32),
    /// This is added to the configured weight (file `weight` times the value).
    Add(i64),
}

impl Outcome {
    pub fn pass(reason: impl Into<String>, latency: Duration) -> Self {
        Outcome {
            passed: true,
            reason: reason.into(),
            cause: None,
            latency,
            weight: None,
        }
    }

    pub fn fail(cause: FailureCause, reason: impl Into<String>, latency: Duration) -> Self {
        Outcome {
            passed: false,
            reason: reason.into(),
            cause: Some(cause),
            latency,
            weight: None,
        }
    }
}

/// The last failed run of a check: when, and its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastFailure {
    pub cause: FailureCause,
    pub at: Instant,
}

/// Identifies one run of one check, so that a late result of a check that was removed or
/// changed meanwhile is recognised and dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RunId(u64);

/// A check to run now.
#[derive(Debug, Clone)]
pub struct Due {
    pub key: CheckKey,
    pub run: RunId,
    /// When it was due; the caller's `now` minus this is the scheduling lateness.
    pub due: Instant,
    pub target: Arc<Target>,
}

/// A real server changed health, or its check reached its first verdict (which may
/// confirm the initial state: see `Scheduler::on_result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub key: CheckKey,
    pub health: Health,
    /// The reason of the result that decided it.
    pub reason: String,
    pub latency: Duration,
    pub at: Instant,
}

/// The last result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastResult {
    pub outcome: Outcome,
    pub at: Instant,
}

/// Everything known about one check, as of the last event.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckStatus {
    pub target: Arc<Target>,
    pub health: Health,
    /// Consecutive passes (0 after a failure).
    pub passes: u32,
    /// Consecutive failures (0 after a pass).
    pub failures: u32,
    pub last: Option<LastResult>,
    /// The last change of health and why; `None` while still in the initial state.
    pub last_change: Option<(Instant, String)>,
    /// The last failed run, kept after passes (the last result may be a pass).
    pub last_failure: Option<LastFailure>,
    pub running: bool,
    /// When the next run is due; `None` while running.
    pub next_due: Option<Instant>,
    pub runs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting in the queue under this sequence number.
    Waiting { due: Instant, seq: u64 },
    /// Handed out; `stale` when the check changed meanwhile (its result is ignored).
    Running {
        run: RunId,
        due: Instant,
        stale: bool,
    },
}

#[derive(Debug)]
struct Entry {
    target: Arc<Target>,
    health: Health,
    passes: u32,
    failures: u32,
    last: Option<LastResult>,
    last_change: Option<(Instant, String)>,
    last_failure: Option<LastFailure>,
    phase: Phase,
    runs: u64,
    /// The check has reached a verdict: a change of health, or its initial state
    /// confirmed by `rise` passes (up) or `fall` failures (down).
    settled: bool,
    /// Triggered while running: run again as soon as the result is back.
    again: bool,
}

/// The schedule and health of every check. See the crate documentation for the rules.
#[derive(Debug)]
pub struct Scheduler {
    slots: Vec<Option<Entry>>,
    free: Vec<usize>,
    index: HashMap<CheckKey, usize>,
    /// (due, sequence number, slot); entries whose sequence number no longer matches
    /// their slot's phase are stale and skipped.
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    next_seq: u64,
    rng: SplitMix64,
}

impl Scheduler {
    /// `seed` drives the start spread; any value will do, a fixed one gives a
    /// reproducible schedule.
    pub fn new(seed: u64) -> Self {
        Scheduler {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            rng: SplitMix64(seed),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn contains(&self, key: &CheckKey) -> bool {
        self.index.contains_key(key)
    }

    /// Adds a check, or updates it if its key is known (see [`Scheduler::update`]). A new
    /// check starts in its initial state and first runs at a random point of its start
    /// spread.
    pub fn add(&mut self, target: Target, now: Instant) {
        if self.index.contains_key(&target.key) {
            self.update(target, now);
            return;
        }
        let health = match target.check.initial_state {
            InitialState::Up => Health::Up,
            InitialState::Down => Health::Down,
        };
        let first = now + self.spread(target.check.start_spread);
        let seq = self.seq();
        let entry = Entry {
            target: Arc::new(target),
            health,
            passes: 0,
            failures: 0,
            last: None,
            last_change: None,
            last_failure: None,
            phase: Phase::Waiting { due: first, seq },
            runs: 0,
            settled: false,
            again: false,
        };
        let key = entry.target.key;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(entry);
                slot
            }
            None => {
                self.slots.push(Some(entry));
                self.slots.len() - 1
            }
        };
        self.index.insert(key, slot);
        self.queue.push(Reverse((first, seq, slot)));
    }

    /// Replaces a check's definition (a reload). The same check keeps everything. A
    /// changed check keeps its health (a reload must not flap servers) but restarts its
    /// counting, and next runs within its start spread; if it is running, that result is
    /// ignored and the new check runs as soon as it is back (never two at once).
    pub fn update(&mut self, target: Target, now: Instant) {
        let Some(&slot) = self.index.get(&target.key) else {
            self.add(target, now);
            return;
        };
        let spread = self.spread(target.check.start_spread);
        let seq = self.seq();
        let Some(entry) = self.slots[slot].as_mut() else {
            return;
        };
        if entry.target.check == target.check {
            if *entry.target != target {
                entry.target = Arc::new(target);
            }
            return;
        }
        entry.target = Arc::new(target);
        entry.passes = 0;
        entry.failures = 0;
        match &mut entry.phase {
            Phase::Running { stale, .. } => *stale = true,
            Phase::Waiting { .. } => {
                let due = now + spread;
                entry.phase = Phase::Waiting { due, seq };
                self.queue.push(Reverse((due, seq, slot)));
            }
        }
    }

    /// Removes a check; a result still to come for it is ignored.
    pub fn remove(&mut self, key: &CheckKey) -> bool {
        let Some(slot) = self.index.remove(key) else {
            return false;
        };
        self.slots[slot] = None;
        self.free.push(slot);
        true
    }

    /// Makes the set of checks exactly `targets`: adds new ones, updates known ones,
    /// removes the rest. Returns the keys removed.
    pub fn set_targets(
        &mut self,
        targets: impl IntoIterator<Item = Target>,
        now: Instant,
    ) -> Vec<CheckKey> {
        let mut keep = std::collections::HashSet::new();
        for target in targets {
            keep.insert(target.key);
            self.add(target, now);
        }
        let gone: Vec<CheckKey> = self
            .index
            .keys()
            .filter(|k| !keep.contains(*k))
            .copied()
            .collect();
        for key in &gone {
            self.remove(key);
        }
        gone
    }

    /// Makes a waiting check due at `now` (a file check's file changed); its schedule
    /// goes on from there. A running check (which may have read the file before the
    /// change) runs again as soon as its result is back. Returns whether it was moved.
    pub fn trigger(&mut self, key: &CheckKey, now: Instant) -> bool {
        let Some(&slot) = self.index.get(key) else {
            return false;
        };
        let seq = self.seq();
        let Some(entry) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
            return false;
        };
        match entry.phase {
            Phase::Waiting { due, .. } if due > now => {
                entry.phase = Phase::Waiting { due: now, seq };
                self.queue.push(Reverse((now, seq, slot)));
                true
            }
            Phase::Running { .. } => {
                entry.again = true;
                true
            }
            Phase::Waiting { .. } => false,
        }
    }

    /// The checks due at `now`, each marked running until its result comes back.
    pub fn poll(&mut self, now: Instant) -> Vec<Due> {
        self.poll_at_most(now, usize::MAX)
    }

    /// Like [`Scheduler::poll`], but at most `max` checks, the earliest due first.
    pub fn poll_at_most(&mut self, now: Instant, max: usize) -> Vec<Due> {
        let mut due_now = Vec::new();
        while let Some(Reverse((due, seq, slot))) = self.queue.peek().copied() {
            if due > now || due_now.len() >= max {
                break;
            }
            self.queue.pop();
            let run = RunId(self.seq());
            let Some(entry) = self.slots.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            if entry.phase != (Phase::Waiting { due, seq }) {
                continue;
            }
            entry.phase = Phase::Running {
                run,
                due,
                stale: false,
            };
            entry.runs += 1;
            due_now.push(Due {
                key: entry.target.key,
                run,
                due,
                target: Arc::clone(&entry.target),
            });
        }
        due_now
    }

    /// When [`Scheduler::poll`] next has something to return; `None` when nothing is
    /// waiting (no checks, or all running).
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((due, seq, slot))) = self.queue.peek().copied() {
            let live = matches!(
                self.slots.get(slot).and_then(Option::as_ref),
                Some(e) if e.phase == Phase::Waiting { due, seq }
            );
            if live {
                return Some(due);
            }
            self.queue.pop();
        }
        None
    }

    /// Records the outcome of a run and schedules the next one. Returns the transition
    /// when the health changes. Results of removed checks or superseded runs are ignored.
    pub fn on_result(
        &mut self,
        key: &CheckKey,
        run: RunId,
        outcome: Outcome,
        now: Instant,
    ) -> Option<Transition> {
        let slot = *self.index.get(key)?;
        let seq = self.seq();
        let entry = self.slots.get_mut(slot)?.as_mut()?;
        let Phase::Running {
            run: running,
            due,
            stale,
        } = entry.phase
        else {
            return None;
        };
        if running != run {
            return None;
        }
        if stale {
            // The check changed while this run was out: its verdict is about the old
            // check. Run the new one now.
            entry.phase = Phase::Waiting { due: now, seq };
            self.queue.push(Reverse((now, seq, slot)));
            return None;
        }
        let check = &entry.target.check;
        let before = entry.health;
        if outcome.passed {
            entry.passes = entry.passes.saturating_add(1);
            entry.failures = 0;
            if entry.health == Health::Down && entry.passes >= check.rise {
                entry.health = Health::Up;
            }
        } else {
            entry.failures = entry.failures.saturating_add(1);
            entry.passes = 0;
            if entry.health == Health::Up && entry.failures >= check.fall {
                entry.health = Health::Down;
            }
        }
        // A retry delay shortens the wait only while a failing server is still up, so a
        // real failure is confirmed quickly; a server that is down is probed at the
        // normal interval.
        let period = match check.retry_delay {
            Some(retry) if !outcome.passed && entry.health == Health::Up => retry,
            _ => check.interval,
        };
        // From when it was due, not when it finished: lateness does not accumulate.
        let next = if std::mem::take(&mut entry.again) {
            now
        } else {
            (due + period).max(now)
        };
        entry.phase = Phase::Waiting { due: next, seq };
        self.queue.push(Reverse((next, seq, slot)));
        // Until its first verdict a server's health is only the configured initial state,
        // which the daemon does not act on (a restart must not remove servers that are
        // in the kernel). So the first verdict is reported even when it confirms the
        // initial state: that is how a server that starts down and stays down is known.
        let confirmed = match entry.health {
            Health::Up => entry.passes >= check.rise,
            Health::Down => entry.failures >= check.fall,
        };
        let first_verdict = !entry.settled && (confirmed || entry.health != before);
        entry.settled |= first_verdict;
        let transition = (entry.health != before || first_verdict).then(|| Transition {
            key: *key,
            health: entry.health,
            reason: outcome.reason.clone(),
            latency: outcome.latency,
            at: now,
        });
        if transition.is_some() {
            entry.last_change = Some((now, outcome.reason.clone()));
        }
        if let Some(cause) = outcome.cause {
            entry.last_failure = Some(LastFailure { cause, at: now });
        }
        entry.last = Some(LastResult { outcome, at: now });
        transition
    }

    /// The status of one check.
    pub fn status(&self, key: &CheckKey) -> Option<CheckStatus> {
        let slot = *self.index.get(key)?;
        self.slots.get(slot)?.as_ref().map(Entry::status)
    }

    /// The status of every check, in no particular order.
    pub fn statuses(&self) -> impl Iterator<Item = CheckStatus> + '_ {
        self.slots.iter().flatten().map(Entry::status)
    }

    fn spread(&mut self, window: Duration) -> Duration {
        let nanos = u64::try_from(window.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.next() % (nanos + 1))
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}

impl Entry {
    fn status(&self) -> CheckStatus {
        let (running, next_due) = match self.phase {
            Phase::Waiting { due, .. } => (false, Some(due)),
            Phase::Running { .. } => (true, None),
        };
        CheckStatus {
            target: Arc::clone(&self.target),
            health: self.health,
            passes: self.passes,
            failures: self.failures,
            last: self.last.clone(),
            last_change: self.last_change.clone(),
            last_failure: self.last_failure,
            running,
            next_due,
            runs: self.runs,
        }
    }
}

/// A tiny deterministic generator for the start spread (statistical quality is all that
/// matters here).
#[derive(Debug)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
