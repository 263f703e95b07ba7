//! A hook runner: runs hook commands one at a time, in order, each within its timeout,
//! and when hooks are slower than the events that trigger them, keeps only a bounded
//! number waiting by replacing the newest waiting one with the next: the latest command
//! is always run, and a flapping source cannot queue hundreds of runs.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tracing::{debug, warn};

use crate::{Command, run};

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Command>,
    coalesced: u64,
    closed: bool,
    /// A command is running now.
    running: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
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
            max_waiting: max_waiting.max(1),
        });
        let worker = shared.clone();
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut q = worker.queue.lock().unwrap_or_else(|e| e.into_inner());
                    if q.closed {
                        return;
                    }
                    let next = q.waiting.pop_front();
                    q.running = next.is_some();
                    next
                };
                match next {
                    Some(command) => {
                        run_one(&name, &command).await;
                        let mut q = worker.queue.lock().unwrap_or_else(|e| e.into_inner());
                        q.running = false;
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
        {
            let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            if q.waiting.len() >= self.shared.max_waiting {
                q.waiting.pop_back();
                q.coalesced += 1;
            }
            q.waiting.push_back(command);
        }
        self.shared.wake.notify_one();
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

impl HookRunner {
    /// Waits (at most `within`) until every queued command has run, then drops the
    /// runner; true when all ran. For hooks that must run before the daemon exits
    /// (e.g. at shutdown), where dropping would discard the waiting ones.
    pub async fn finish(self, within: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            {
                let q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                if q.waiting.is_empty() && !q.running {
                    return true;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            // Polled: shutdown only, and a hook takes far longer than this.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
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
