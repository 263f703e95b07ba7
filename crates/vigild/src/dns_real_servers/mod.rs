//! `real_servers_from_dns`: the `dns` worker resolves each entry's name (hickory-resolver)
//! by its TTL and hands every outcome to the director, which keeps the last good answers
//! ([`sets`]) and applies a changed set through its reload path.

mod resolve;
pub mod sets;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};
use vigil_config::{AddressFamily, Config};

use crate::director::Command;
use crate::state::unix_now_ms;
use crate::supervise::{HEARTBEAT, Supervisor};
use sets::{Outcome, SourceKey, next_delay};

/// One resolution, for the director.
#[derive(Debug)]
pub struct Resolution {
    pub key: SourceKey,
    pub outcome: Outcome,
    pub at_unix_ms: u64,
    pub next_unix_ms: u64,
}

/// The running worker: tell it of reloads.
#[derive(Clone)]
pub struct DnsWorker {
    config: watch::Sender<Arc<Config>>,
}

impl DnsWorker {
    /// Starts the `dns` worker (supervised) on the runtime: one task per entry of
    /// `config`, each resolving its name and sending the outcome to `director`.
    pub fn spawn(
        config: Arc<Config>,
        director: mpsc::Sender<Command>,
        supervisor: &Supervisor,
    ) -> DnsWorker {
        let (tx, rx) = watch::channel(config);
        let guard = supervisor.guard("dns", Duration::ZERO);
        tokio::spawn(async move {
            run(rx, director, &guard).await;
            // Only when the daemon is going away (its sender dropped).
            guard.finish();
        });
        DnsWorker { config: tx }
    }

    /// A reload: entries added start resolving, removed ones stop, unchanged ones go on
    /// at their own times.
    pub fn apply(&self, config: Arc<Config>) {
        let _ = self.config.send(config);
    }
}

async fn run(
    mut config: watch::Receiver<Arc<Config>>,
    director: mpsc::Sender<Command>,
    guard: &crate::supervise::Guard,
) {
    let mut tasks: HashMap<SourceKey, tokio::task::JoinHandle<()>> = HashMap::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changed = true;
    loop {
        guard.beat();
        if std::mem::take(&mut changed) {
            let c = config.borrow_and_update().clone();
            let wanted = SourceKey::all(&c);
            tasks.retain(|k, t| {
                let keep = wanted.contains(k);
                if !keep {
                    t.abort();
                }
                keep
            });
            for k in wanted {
                if tasks.contains_key(&k) {
                    continue;
                }
                let family = c.virtual_server(&k.virtual_server).map(|v| v.key.family());
                let task = tokio::spawn(resolve_forever(
                    k.clone(),
                    family.unwrap_or(AddressFamily::Ipv4),
                    director.clone(),
                ));
                tasks.insert(k, task);
            }
        }
        tokio::select! {
            _ = heartbeat.tick() => {
                // A resolution task that panicked: its entry keeps its last good set, and
                // the worker restarts it (a panic in a DNS library must not stop the
                // daemon, nor freeze the entry).
                let ended: Vec<SourceKey> = tasks
                    .iter()
                    .filter(|(_, t)| t.is_finished())
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in ended {
                    warn!(virtual_server = %k.virtual_server, name = %k.lookup.name, "DNS resolution task ended; restarting it");
                    tasks.remove(&k);
                    changed = true;
                }
            }
            r = config.changed() => {
                if r.is_err() {
                    break;
                }
                changed = true;
            }
        }
    }
    for t in tasks.values() {
        t.abort();
    }
}

/// Resolves one entry again and again, by the answer's TTL within the entry's bounds.
async fn resolve_forever(key: SourceKey, family: AddressFamily, director: mpsc::Sender<Command>) {
    let resolver = resolve::Resolver::new(&key.lookup);
    loop {
        let outcome = match &resolver {
            Ok(r) => r.resolve(&key.lookup, family).await,
            Err(e) => Outcome::Failed(e.clone()),
        };
        let delay = next_delay(&outcome, &key.lookup);
        let at_unix_ms = unix_now_ms();
        debug!(virtual_server = %key.virtual_server, name = %key.lookup.name, ?outcome, "resolved");
        let r = Resolution {
            key: key.clone(),
            outcome,
            at_unix_ms,
            next_unix_ms: at_unix_ms + u64::try_from(delay.as_millis()).unwrap_or(u64::MAX / 2),
        };
        if director.send(Command::DnsResolved(r)).await.is_err() {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}
