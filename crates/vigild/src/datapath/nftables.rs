//! The nftables datapath: one thread (`nft`) owning a [`vigil_nft::Applier`], applying
//! the director's desired tables to `table inet vigil` in one transaction each. A whole
//! table (start, reload) is diffed against what the kernel holds (a restart with the same
//! state writes nothing); a health change or drain patches its one service. A failed
//! write is retried (1 s, doubling to 30 s) with the whole table, and every
//! [`DRIFT_REPAIR`] the table is read back and repaired.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use std::net::SocketAddr;
use tracing::{info, warn};

use vigil_ipvs::{Backoff, DesiredTable, ServiceKey, SyncDaemon};
use vigil_nft::{Applier, ApplyReport, Nft, Options};

use super::failures::Failures;
use super::{Datapath, DatapathStatus, conntrack};
use crate::ipvs_worker::{DRIFT_REPAIR, Job};
use crate::supervise::{Armed, Guard, HEARTBEAT, Supervisor, TestFaults, test_fault_thread};

/// A large table is one nft transaction of megabytes: allow it this long.
pub const NFT_STALE_AFTER: Duration = Duration::from_secs(60);
/// The whole table is retried after a failed write: 1 s, doubling to 30 s.
const RETRY: Backoff = Backoff {
    initial: Duration::from_secs(1),
    factor: 2,
    max: Duration::from_secs(30),
};

/// The `nft` program: `/usr/sbin/nft` (Debian's) when there, else `nft` from `PATH`.
pub fn nft_program() -> String {
    for p in ["/usr/sbin/nft", "/sbin/nft"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    "nft".into()
}

/// What the nft thread is asked: the director's jobs, and flushes queued behind them
/// (so a failed real server's connections are deleted after its rule is gone).
enum Msg {
    Job(Job),
    Flush(ServiceKey, SocketAddr),
}

/// The options the nft thread runs with (a change takes effect at the next start).
static OPTIONS: OnceLock<Options> = OnceLock::new();

/// [`Options`] from `director`, recorded for [`reload_warning`].
pub fn options_at_start(director: &vigil_config::Director) -> Options {
    let o = Options {
        masquerade: director.nftables_masquerade,
    };
    let _ = OPTIONS.set(o.clone());
    o
}

/// What a reload changing `nftables_masquerade` is told (the table is rendered with the
/// option of the start).
pub fn reload_warning(director: &vigil_config::Director) -> Option<String> {
    masquerade_change(OPTIONS.get()?, director)
}

fn masquerade_change(running: &Options, director: &vigil_config::Director) -> Option<String> {
    (running.masquerade != director.nftables_masquerade).then(|| {
        format!(
            "nftables_masquerade = {} takes effect at the next start; vigild runs with {}",
            director.nftables_masquerade, running.masquerade
        )
    })
}

pub struct NftWorker {
    jobs: mpsc::Sender<Msg>,
    status: Arc<RwLock<DatapathStatus>>,
    thread: Option<JoinHandle<()>>,
}

impl NftWorker {
    /// Starts the thread, supervised by `supervisor`; `programmable` gets
    /// [`Failures::fault`] (VRRP follows it, as with IPVS).
    /// `options` hold for the daemon's life (`nftables_masquerade` at start).
    pub fn start(
        nft: Nft,
        options: Options,
        supervisor: &Supervisor,
        faults: &TestFaults,
        programmable: tokio::sync::watch::Sender<Option<String>>,
    ) -> NftWorker {
        let (jobs, rx) = mpsc::channel();
        let status = Arc::new(RwLock::new(DatapathStatus::default()));
        let s = status.clone();
        let thread =
            supervisor.spawn_thread("nft", NFT_STALE_AFTER, faults, move |guard, fault| {
                let worker = Worker {
                    applier: Applier::new(nft, options),
                    desired: DesiredTable::new(),
                    started: false,
                    whole: true,
                    last_repair: Instant::now(),
                    status: s,
                    counters: Counters::default(),
                    failures: Failures::default(),
                    programmable,
                };
                worker.run(rx, guard, fault)
            });
        NftWorker {
            jobs,
            status,
            thread,
        }
    }
}

impl Datapath for NftWorker {
    fn send(&self, job: Job) {
        // Only fails when the thread is gone, which its own log explains.
        let _ = self.jobs.send(Msg::Job(job));
    }

    fn flush_connections(&self, service: ServiceKey, real: SocketAddr) {
        let _ = self.jobs.send(Msg::Flush(service, real));
    }

    fn set_sync_daemon(&self, _daemon: Option<SyncDaemon>) {
        // nftables has no connection sync daemon (`[ipvs_sync]` is a warning).
    }

    fn status_handle(&self) -> Arc<RwLock<DatapathStatus>> {
        self.status.clone()
    }

    fn stop(self: Box<Self>) {
        let NftWorker { jobs, thread, .. } = *self;
        drop(jobs);
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

#[derive(Default)]
struct Counters {
    syncs: u64,
    writes: u64,
    write_errors: u64,
    full: u64,
    flushes: u64,
    flush_errors: u64,
}

struct Worker {
    applier: Applier,
    desired: DesiredTable,
    /// Nothing asked yet: the kernel is not touched before the director says what it
    /// wants (as the IPVS thread).
    started: bool,
    /// The next write must be the whole table (start, or after a failure).
    whole: bool,
    last_repair: Instant,
    status: Arc<RwLock<DatapathStatus>>,
    counters: Counters,
    /// Failed applies in a row, and when the whole table is retried.
    failures: Failures,
    programmable: tokio::sync::watch::Sender<Option<String>>,
}

impl Worker {
    fn run(mut self, jobs: mpsc::Receiver<Msg>, guard: Guard, mut fault: Armed) {
        loop {
            guard.beat();
            if let Some(kind) = fault.due(Instant::now()) {
                test_fault_thread(kind, "nft thread");
                return;
            }
            match jobs.recv_timeout(HEARTBEAT) {
                Ok(Msg::Job(job)) => self.handle(job),
                Ok(Msg::Flush(service, real)) => self.flush(&service, real),
                Err(RecvTimeoutError::Timeout) => self.tick(),
                Err(RecvTimeoutError::Disconnected) => {
                    guard.finish();
                    return;
                }
            }
            self.publish();
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            // Conntrack's own timeouts apply (`[ipvs_timeouts]` is a warning).
            Job::Timeouts(_) => {}
            Job::SyncAll(table) => {
                self.desired = table;
                self.started = true;
                self.apply_all();
            }
            Job::SyncService(key, desired) => {
                match &desired {
                    Some(d) => self.desired.insert(key, d.clone()),
                    None => self.desired.remove(&key),
                };
                if !self.started {
                    return;
                }
                if self.whole {
                    // A failed write is pending: its retry carries this change too.
                    if !self.failures.retry_pending() {
                        self.apply_all();
                    }
                    return;
                }
                let result = {
                    let _external = vigil_child::external_child();
                    self.applier.apply_service(key, desired.as_ref())
                };
                match result {
                    Err(vigil_nft::Error::NotIntact(why)) => {
                        info!("nftables: the table needs a full apply ({why})");
                        self.apply_all();
                    }
                    r => self.after(r),
                }
            }
        }
    }

    /// Deletes `service`'s conntrack entries to `real` (a real server down by its checks).
    fn flush(&mut self, service: &ServiceKey, real: SocketAddr) {
        let Some(args) = conntrack::delete_args(service, real) else {
            info!(%service, %real, "nftables: fwmark services' connections are not flushed");
            return;
        };
        let result = {
            let _external = vigil_child::external_child();
            conntrack::run(&conntrack::program(), &args)
        };
        self.counters.flushes += 1;
        match result {
            Ok(n) => {
                info!(%service, %real, deleted = n, "nftables: flushed the failed real server's connections")
            }
            Err(e) => {
                self.counters.flush_errors += 1;
                warn!(%service, %real, failures = self.counters.flush_errors, "nftables: cannot flush the failed real server's connections: {e}");
            }
        }
    }

    fn tick(&mut self) {
        if !self.started {
            return;
        }
        let now = Instant::now();
        if self.failures.retry_due(now) {
            self.apply_all();
        } else if !self.failures.retry_pending() && self.last_repair.elapsed() >= DRIFT_REPAIR {
            // Someone's `nft flush table inet vigil`: read back and repair.
            self.applier.mark_stale();
            self.apply_all();
        }
    }

    fn apply_all(&mut self) {
        self.last_repair = Instant::now();
        let result = {
            let _external = vigil_child::external_child();
            self.applier.apply(&self.desired)
        };
        self.after(result);
    }

    fn after(&mut self, result: Result<ApplyReport, vigil_nft::Error>) {
        self.counters.syncs += 1;
        match result {
            Ok(report) => {
                if report.written {
                    self.counters.writes += 1;
                    if report.full {
                        self.counters.full += 1;
                    }
                    info!(
                        commands = report.commands,
                        services = report.services_changed,
                        full = report.full,
                        "nftables: applied one transaction"
                    );
                }
                if self.failures.retry_pending() {
                    info!("nftables: the table is written again");
                }
                self.whole = false;
                self.failures.succeeded();
            }
            Err(e) => {
                let text = e.to_string();
                let new = self.failures.failed(text.clone());
                let delay = self.failures.retry_after(&RETRY, Instant::now());
                if new {
                    warn!("nftables: {text}; retrying in {}s", delay.as_secs());
                }
                self.counters.write_errors += 1;
                self.whole = true;
            }
        }
    }

    fn publish(&self) {
        let mut s = self.status.write().unwrap_or_else(|e| e.into_inner());
        s.available = self.failures.last_error().is_none();
        s.error = self.failures.last_error().map(String::from);
        s.syncs = self.counters.syncs;
        s.writes = self.counters.writes;
        s.write_errors = self.counters.write_errors;
        s.full_dumps = self.counters.full;
        s.pending_retries = self.failures.retry_pending();
        s.sync_daemon = None;
        s.owned_services = if self.started { self.desired.len() } else { 0 };
        drop(s);
        let fault = self.failures.fault("nftables");
        self.programmable.send_if_modified(|f| {
            let changed = *f != fault;
            *f = fault;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_changing_masquerade_is_told_it_waits_for_the_next_start() {
        let director = |m: bool| {
            let text = format!("[director]\nname = \"t\"\nnftables_masquerade = {m}\n");
            vigil_config::parse(std::path::Path::new("t.toml"), &text)
                .unwrap()
                .config
                .director
        };
        let off = Options::default();
        assert_eq!(masquerade_change(&off, &director(false)), None);
        assert_eq!(
            masquerade_change(&off, &director(true)).as_deref(),
            Some(
                "nftables_masquerade = true takes effect at the next start; vigild runs with false"
            )
        );
    }
}
