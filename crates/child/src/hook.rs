//! A hook runner: runs hook commands one at a time, in order, each within its timeout,
//! and when hooks are slower than the events that trigger them, keeps only a bounded
//! number waiting by replacing the newest waiting one with the next: the latest command
//! is always run, and a flapping source cannot queue hundreds of runs. One event may
//! need several commands (keepalived's `notify_master` then `notify`): they are queued
//! and replaced as one batch.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::{Command, run};

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Vec<Command>>,
    coalesced: u64,
    closed: bool,
    /// Closed, but the waiting batches still run ([`HookRunner::finish`]).
    finishing: bool,
    /// The worker has returned.
    done: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    /// Signalled when the worker returns.
    finished: Notify,
    max_waiting: usize,
}

/// Runs hook commands for one source (`name` in logs), in order. Dropping it lets the
/// running hook finish (within its timeout) and drops the waiting ones.
pub struct HookRunner {
    shared: Arc<Shared>,
}

impl HookRunner {
    /// Starts the runner's task on the current tokio runtime. At most `max_waiting`
    /// commands (at least 1) wait behind the running one.
    pub fn spawn(name: String, max_waiting: usize) -> HookRunner {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            finished: Notify::new(),
            max_waiting: max_waiting.max(1),
        });
        let worker = shared.clone();
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut q = worker.queue.lock().unwrap_or_else(|e| e.into_inner());
                    let next = q.waiting.pop_front();
                    if q.closed || (q.finishing && next.is_none()) {
                        q.done = true;
                        drop(q);
                        worker.finished.notify_waiters();
                        return;
                    }
                    next
                };
                match next {
                    Some(batch) => {
                        for command in &batch {
                            run_one(&name, command).await;
                        }
                    }
                    None => worker.wake.notified().await,
                }
            }
        });
        HookRunner { shared }
    }

    /// Queues `command`; when `max_waiting` already wait, the newest waiting one is
    /// replaced by it.
    pub fn submit(&self, command: Command) {
        self.submit_batch(vec![command]);
    }

    /// Queues commands that run one after the other as one unit; when `max_waiting`
    /// units already wait, the newest waiting unit is replaced by this one. An empty
    /// batch is ignored.
    pub fn submit_batch(&self, batch: Vec<Command>) {
        if batch.is_empty() {
            return;
        }
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.waiting.len() >= self.shared.max_waiting {
                q.waiting.pop_back();
                q.coalesced += 1;
            }
            q.waiting.push_back(batch);
        }
        self.shared.wake.notify_one();
    }

    /// Runs what is waiting, then stops; returns when the last hook has ended (true) or
    /// after `limit` (false), whichever is first (then, as on drop, the running hook
    /// finishes within its timeout and the rest is dropped). For the hooks of a stop,
    /// which must run before the daemon exits.
    pub async fn finish(self, limit: std::time::Duration) -> bool {
        let finished = self.shared.clone();
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            q.finishing = true;
            if q.done {
                return true;
            }
        }
        let wait = async {
            loop {
                let notified = finished.finished.notified();
                if finished
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .done
                {
                    return;
                }
                finished.wake.notify_one();
                notified.await;
            }
        };
        // Dropping `self` closes the queue if the limit passed first.
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// How many waiting commands were replaced by newer ones so far.
    pub fn coalesced(&self) -> u64 {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .coalesced
    }
}

impl Drop for HookRunner {
    fn drop(&mut self) {
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.closed = true;
        q.waiting.clear();
        drop(q);
        self.shared.wake.notify_one();
    }
}

async fn run_one(name: &str, command: &Command) {
    let program = &command.program;
    match run(command).await {
        Ok(out) if out.success() => debug!(hook = name, "hook {program} exited 0"),
        Ok(out) => {
            let what = out.describe(command.timeout);
            match out.first_line() {
                Some(line) => warn!(hook = name, "hook {program} {what}: {line}"),
                None => warn!(hook = name, "hook {program} {what}"),
            }
        }
        Err(e) => warn!(hook = name, "hook {program} could not start: {e}"),
    }
}
