//! The one thread that talks to IPVS. It owns the (blocking) netlink client and the
//! reconciler, applies desired tables as they change, retries failed writes, repairs
//! drift, runs the connection sync daemon, and keeps the owned services in the state file.
//!
//! A kernel without IPVS is not fatal: the thread says so in its status and keeps
//! trying, so loading `ip_vs` later (or a test lab) brings the table up.

use std::collections::BTreeSet;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::datapath::DatapathStatus;
use crate::datapath::failures::Failures;
use crate::state_file::StateFile;
use crate::supervise::{Armed, Guard, HEARTBEAT, Supervisor, TestFaults, test_fault_thread};
use tracing::{error, info, warn};
use vigil_ipvs::{
    Backoff, Client, DesiredService, DesiredTable, ReconcileReport, Reconciler, ServiceKey,
    SyncDaemon, SyncState, Timeouts,
};

/// How often the whole table is re-read and repaired (someone's `ipvsadm -d`).
pub const DRIFT_REPAIR: Duration = Duration::from_secs(60);
/// How often a missing IPVS is looked for again.
const RECONNECT: Duration = Duration::from_secs(5);
/// One sync of a large table can take this long in the emulated kernel lab (each write a
/// netlink round trip): the IPVS thread is not stale before.
pub const IPVS_STALE_AFTER: Duration = Duration::from_secs(60);
/// The kernel has taken up to a minute to stop a master sync daemon just started.
pub const SYNC_STALE_AFTER: Duration = Duration::from_secs(150);

/// Why IPVS cannot be programmed now, if it cannot: not connected (no IPVS in the
/// kernel, a broken netlink socket), or [`Failures::fault`]: passes in a row whose
/// writes failed. `None` also before the first attempt. Whether anything needs IPVS is
/// for VRRP to judge (the instances that carry virtual servers).
pub fn ipvs_fault(
    attempted: bool,
    connected: bool,
    connect_error: Option<&str>,
    writes: &Failures,
) -> Option<String> {
    if !attempted {
        return None;
    }
    if !connected {
        return Some(format!(
            "IPVS cannot be programmed: {}",
            connect_error.unwrap_or("no netlink connection")
        ));
    }
    writes.fault("IPVS")
}

// A job per health change or reload: the size of one service in a channel is no cost.
#[allow(clippy::large_enum_variant)]
pub enum Job {
    /// The whole desired table (start, reload).
    SyncAll(DesiredTable),
    /// One service changed (health, drain); `None` deletes it.
    SyncService(ServiceKey, Option<DesiredService>),
    /// The kernel's connection timeouts (start, reload); a 0 leaves that one as it is.
    Timeouts(Timeouts),
}

pub struct IpvsWorker {
    jobs: mpsc::Sender<Job>,
    status: Arc<RwLock<DatapathStatus>>,
    thread: Option<JoinHandle<()>>,
    sync_daemon: mpsc::Sender<Option<SyncDaemon>>,
    sync_thread: Option<JoinHandle<()>>,
}

impl IpvsWorker {
    /// Starts the thread. `owned` are services this director created before (from the
    /// state file): removed from the config, they are still deleted. The owned set is
    /// written back to `state_file` whenever it changes.
    /// Both threads are supervised: each holds a guard of `supervisor` for its life.
    /// `programmable` gets [`ipvs_fault`] whenever it changes (VRRP follows it).
    pub fn start(
        owned: Vec<ServiceKey>,
        state_file: StateFile,
        supervisor: &Supervisor,
        faults: &TestFaults,
        programmable: tokio::sync::watch::Sender<Option<String>>,
    ) -> IpvsWorker {
        let (jobs, rx) = mpsc::channel();
        let status = Arc::new(RwLock::new(DatapathStatus::default()));
        let s = status.clone();
        let thread =
            supervisor.spawn_thread("ipvs", IPVS_STALE_AFTER, faults, move |guard, fault| {
                let mut worker = Worker::new(owned, s, state_file);
                worker.programmable = Some(programmable);
                worker.run(rx, guard, fault)
            });
        let (sync_daemon, sync_rx) = mpsc::channel();
        let s = status.clone();
        let sync_thread = supervisor.spawn_thread(
            "ipvs-sync",
            SYNC_STALE_AFTER,
            faults,
            move |guard, fault| SyncDaemonWorker::new(s).run(sync_rx, guard, fault),
        );
        IpvsWorker {
            jobs,
            status,
            thread,
            sync_daemon,
            sync_thread,
        }
    }

    pub fn send(&self, job: Job) {
        // Only fails when the thread is gone, which its own log explains.
        let _ = self.jobs.send(job);
    }

    /// The sync daemon wanted now (`None`: none), for the sync daemon thread.
    pub fn set_sync_daemon(&self, daemon: Option<SyncDaemon>) {
        // As `send`: the thread's own log explains its end.
        let _ = self.sync_daemon.send(daemon);
    }

    /// The status as the threads publish it, for readers that must not wait for the
    /// director (metrics).
    pub fn status_handle(&self) -> Arc<RwLock<DatapathStatus>> {
        self.status.clone()
    }

    pub fn status(&self) -> DatapathStatus {
        self.status
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the thread; the kernel table stays as it is (a restart adopts it).
    pub fn stop(mut self) {
        drop(self.jobs);
        drop(self.sync_daemon);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // Not joined: a kernel that takes long to stop a sync daemon must not hold up
        // the daemon's exit (the thread ends with the process).
        drop(self.sync_thread.take());
    }
}

struct Worker {
    client: Option<Client>,
    reconciler: Reconciler,
    /// The latest desired table: what a retry or repair syncs to.
    desired: DesiredTable,
    /// Nothing has been asked yet: do not touch the kernel before the daemon says what
    /// it wants (a start with an empty desired table must not delete owned services
    /// whose health is still being established).
    started: bool,
    status: Arc<RwLock<DatapathStatus>>,
    last_repair: Instant,
    /// When a connection was last tried (while there is none).
    last_connect_try: Instant,
    last_connect_error: Option<String>,
    state_file: StateFile,
    /// The owned services as last written to the state file.
    persisted_owned: BTreeSet<ServiceKey>,
    /// The last failure to write them (logged once, not per sync).
    persist_error: Option<String>,
    /// A connection was tried at least once.
    attempted: bool,
    /// Passes in a row with failed writes, and the last such failure (the reconciler
    /// schedules the retries).
    writes: Failures,
    /// Where [`ipvs_fault`] goes.
    programmable: Option<tokio::sync::watch::Sender<Option<String>>>,
    /// The timeouts asked for, and whether the kernel has them (retried until it does,
    /// and set again on a new connection: a reloaded `ip_vs` forgets them).
    timeouts: Option<Timeouts>,
    timeouts_applied: bool,
}

impl Worker {
    fn new(
        owned: Vec<ServiceKey>,
        status: Arc<RwLock<DatapathStatus>>,
        state_file: StateFile,
    ) -> Worker {
        let persisted_owned: BTreeSet<ServiceKey> = owned.iter().copied().collect();
        Worker {
            client: None,
            reconciler: Reconciler::new(owned, Backoff::default()),
            desired: DesiredTable::new(),
            started: false,
            status,
            last_repair: Instant::now(),
            last_connect_try: Instant::now(),
            last_connect_error: None,
            state_file,
            persisted_owned,
            persist_error: None,
            attempted: false,
            writes: Failures::default(),
            programmable: None,
            timeouts: None,
            timeouts_applied: true,
        }
    }

    fn run(mut self, jobs: mpsc::Receiver<Job>, guard: Guard, mut fault: Armed) {
        loop {
            guard.beat();
            if let Some(kind) = fault.due(Instant::now()) {
                test_fault_thread(kind, "IPVS thread");
                return;
            }
            // Woken at least every heartbeat; a tick's work keeps its own schedule.
            let wait = self.next_wakeup();
            match jobs.recv_timeout(wait.min(HEARTBEAT)) {
                Ok(job) => self.handle(job),
                Err(RecvTimeoutError::Timeout) if wait <= HEARTBEAT => self.tick(),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    guard.finish();
                    return;
                }
            }
            self.publish();
        }
    }

    fn next_wakeup(&self) -> Duration {
        let now = Instant::now();
        if self.client.is_none() {
            return RECONNECT.saturating_sub(now - self.last_connect_try);
        }
        let mut wait = DRIFT_REPAIR.saturating_sub(now - self.last_repair);
        if !self.timeouts_applied {
            wait = wait.min(RECONNECT);
        }
        if let Some(at) = self.reconciler.next_retry() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        wait.max(Duration::from_millis(5))
    }

    fn connect(&mut self) -> bool {
        if self.client.is_some() {
            return true;
        }
        self.last_connect_try = Instant::now();
        self.attempted = true;
        match Client::connect() {
            Ok(c) => {
                info!("IPVS: connected");
                self.client = Some(c);
                self.last_connect_error = None;
                // A fresh connection knows nothing: read the kernel again.
                self.reconciler.mark_stale();
                self.timeouts_applied = self.timeouts.is_none();
                self.apply_timeouts();
                true
            }
            Err(e) => {
                let text = e.to_string();
                if self.last_connect_error.as_deref() != Some(text.as_str()) {
                    error!("IPVS: {text}; retrying every {}s", RECONNECT.as_secs());
                }
                self.last_connect_error = Some(text);
                false
            }
        }
    }

    /// Sets the wanted timeouts if the kernel may not have them yet.
    fn apply_timeouts(&mut self) {
        let (Some(t), Some(client)) = (self.timeouts, self.client.as_mut()) else {
            return;
        };
        if self.timeouts_applied {
            return;
        }
        match client.set_timeouts(&t) {
            Ok(()) => {
                info!(
                    "IPVS: connection timeouts set (tcp {}s, tcp_fin {}s, udp {}s; 0 = unchanged)",
                    t.tcp, t.tcp_fin, t.udp
                );
                self.timeouts_applied = true;
            }
            Err(e) => warn!("IPVS: cannot set the connection timeouts: {e}"),
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Timeouts(t) => {
                self.timeouts = Some(t);
                self.timeouts_applied = false;
                if self.connect() {
                    self.apply_timeouts();
                }
            }
            Job::SyncAll(table) => {
                self.desired = table;
                self.started = true;
                self.sync_all();
            }
            Job::SyncService(key, desired) => {
                match &desired {
                    Some(d) => {
                        self.desired.insert(key, d.clone());
                    }
                    None => {
                        self.desired.remove(&key);
                    }
                }
                if self.started && self.connect() {
                    let now = Instant::now();
                    let result = self
                        .client
                        .as_mut()
                        .map(|c| self.reconciler.sync_service(c, key, desired.as_ref(), now));
                    self.after(result);
                }
            }
        }
    }

    fn tick(&mut self) {
        if !self.connect() {
            return;
        }
        self.apply_timeouts();
        if !self.started {
            return;
        }
        if self.last_repair.elapsed() >= DRIFT_REPAIR {
            self.reconciler.mark_stale();
            self.last_repair = Instant::now();
        }
        self.sync_all();
    }

    fn sync_all(&mut self) {
        if !self.connect() {
            return;
        }
        let now = Instant::now();
        let result = self
            .client
            .as_mut()
            .map(|c| self.reconciler.sync(c, &self.desired, now));
        self.after(result);
    }

    fn after(&mut self, result: Option<Result<ReconcileReport, vigil_ipvs::Error>>) {
        match result {
            Some(Ok(report)) => {
                for e in &report.errors {
                    warn!("IPVS: {e}");
                }
                if let Some(e) = report.errors.first() {
                    self.writes.failed(e.to_string());
                } else if self.reconciler.next_retry().is_none() {
                    self.writes.succeeded();
                }
                self.persist_owned();
                if !report.is_noop() {
                    info!(
                        writes = report.applied.total(),
                        errors = report.errors.len(),
                        full_dump = report.full_dump,
                        "IPVS: applied {} writes in {:.1} ms",
                        report.applied.total(),
                        report.duration.as_secs_f64() * 1e3
                    );
                }
            }
            Some(Err(e)) => {
                // The socket or a dump failed: start over with a new connection.
                error!("IPVS: {e}");
                self.client = None;
                self.writes.failed(e.to_string());
            }
            None => {}
        }
    }

    /// Writes the owned services to the state file when the set changed (a service was
    /// added, adopted or deleted); a health change or drain costs one set comparison.
    fn persist_owned(&mut self) {
        if *self.reconciler.owned() == self.persisted_owned {
            return;
        }
        match self.state_file.save_owned_services(self.reconciler.owned()) {
            Ok(()) => {
                self.persisted_owned = self.reconciler.owned().clone();
                self.persist_error = None;
            }
            Err(e) => {
                let text = e.to_string();
                if self.persist_error.as_deref() != Some(text.as_str()) {
                    warn!(
                        "cannot write the owned IPVS services to {} (a service removed from the config while vigild is down would stay in the kernel): {text}",
                        self.state_file.path().display()
                    );
                }
                self.persist_error = Some(text);
            }
        }
    }

    fn publish(&self) {
        let c = self.reconciler.counters();
        let mut s = self.status.write().unwrap_or_else(|e| e.into_inner());
        s.available = self.client.is_some();
        s.error = self.last_connect_error.clone();
        s.syncs = c.syncs;
        s.writes = c.writes;
        s.write_errors = c.write_errors;
        s.full_dumps = c.full_dumps;
        s.pending_retries = self.reconciler.next_retry().is_some();
        s.owned_services = self.reconciler.owned().len();
        drop(s);
        if let Some(tx) = &self.programmable {
            let fault = ipvs_fault(
                self.attempted,
                self.client.is_some(),
                self.last_connect_error.as_deref(),
                &self.writes,
            );
            tx.send_if_modified(|f| {
                let changed = *f != fault;
                *f = fault;
                changed
            });
        }
    }
}

/// Runs the IPVS connection sync daemon in the role VRRP gives, on a thread (and netlink
/// socket) of its own: the kernel can take a long time to stop a master sync daemon (a
/// minute was seen, right after a start), and table writes for health changes must not
/// wait behind that. Only the latest wanted state is applied; a failure is retried.
struct SyncDaemonWorker {
    client: Option<Client>,
    sync_daemon: Option<SyncDaemon>,
    sync_daemon_applied: bool,
    /// What this thread last started, per role: the kernel may report a parameter
    /// differently from what it was given (it lowers `maxlen` to fit the MTU).
    started: Vec<SyncDaemon>,
    status: Arc<RwLock<DatapathStatus>>,
}

/// Whether the `running` sync daemon is the `wanted` one: same role, interface and sync
/// id, and each parameter `wanted` sets as the kernel has it, or as this thread started it
/// (`started`), so a reload that changes one restarts the daemon and one that does not
/// leaves it alone.
pub fn sync_daemon_matches(
    wanted: &SyncDaemon,
    running: &SyncDaemon,
    started: Option<&SyncDaemon>,
) -> bool {
    if (wanted.state, &wanted.interface, wanted.sync_id)
        != (running.state, &running.interface, running.sync_id)
    {
        return false;
    }
    if started == Some(wanted) {
        return true;
    }
    fn same<T: PartialEq>(want: Option<T>, have: Option<T>) -> bool {
        want.is_none() || want == have
    }
    same(wanted.sync_maxlen, running.sync_maxlen)
        && same(wanted.mcast_group, running.mcast_group)
        && same(wanted.mcast_port, running.mcast_port)
        && same(wanted.mcast_ttl, running.mcast_ttl)
}

impl SyncDaemonWorker {
    fn new(status: Arc<RwLock<DatapathStatus>>) -> SyncDaemonWorker {
        SyncDaemonWorker {
            client: None,
            sync_daemon: None,
            sync_daemon_applied: true,
            started: Vec::new(),
            status,
        }
    }

    fn run(mut self, wanted: mpsc::Receiver<Option<SyncDaemon>>, guard: Guard, mut fault: Armed) {
        let mut last_try = Instant::now();
        loop {
            guard.beat();
            if let Some(kind) = fault.due(Instant::now()) {
                test_fault_thread(kind, "IPVS sync daemon thread");
                return;
            }
            match wanted.recv_timeout(HEARTBEAT) {
                Ok(d) => {
                    // Role changes that queued up meanwhile: only the last one counts.
                    self.sync_daemon = wanted.try_iter().last().unwrap_or(d);
                    self.sync_daemon_applied = false;
                }
                // A failed start or stop is retried every RECONNECT.
                Err(RecvTimeoutError::Timeout)
                    if !self.sync_daemon_applied && last_try.elapsed() >= RECONNECT => {}
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    guard.finish();
                    return;
                }
            }
            last_try = Instant::now();
            self.apply_sync_daemon();
        }
    }

    fn apply_sync_daemon(&mut self) {
        if self.client.is_none() {
            match Client::connect() {
                Ok(c) => self.client = Some(c),
                // The IPVS thread reports a missing IPVS; this one just retries.
                Err(_) => return,
            }
        }
        let Some(client) = self.client.as_mut() else {
            return;
        };
        let running = match client.sync_daemons() {
            Ok(d) => d,
            Err(e) => {
                warn!("IPVS: cannot read the sync daemons: {e}");
                self.client = None;
                return;
            }
        };
        let wanted = self.sync_daemon.clone();
        let started = |state: SyncState| self.started.iter().find(|s| s.state == state);
        let is_wanted = |d: &SyncDaemon| {
            wanted
                .as_ref()
                .is_some_and(|w| sync_daemon_matches(w, d, started(d.state)))
        };
        let keep: Vec<bool> = running.iter().map(is_wanted).collect();
        let wanted_runs = keep.iter().any(|k| *k);
        for (d, keep) in running.iter().zip(keep) {
            if !keep {
                match client.stop_sync_daemon(d.state) {
                    Ok(()) => info!("IPVS: stopped the {} sync daemon", state_name(d.state)),
                    Err(e) => warn!(
                        "IPVS: cannot stop the {} sync daemon: {e}",
                        state_name(d.state)
                    ),
                }
            }
        }
        if let Some(w) = &wanted
            && !wanted_runs
        {
            match client.start_sync_daemon(w) {
                Ok(()) => {
                    info!(
                        "IPVS: started the {} sync daemon on {} (sync id {})",
                        state_name(w.state),
                        w.interface,
                        w.sync_id
                    );
                    self.started.retain(|s| s.state != w.state);
                    self.started.push(w.clone());
                }
                Err(e) => {
                    warn!(
                        "IPVS: cannot start the {} sync daemon: {e}",
                        state_name(w.state)
                    );
                    return;
                }
            }
        }
        self.sync_daemon_applied = true;
        let mut s = self.status.write().unwrap_or_else(|e| e.into_inner());
        s.sync_daemon = self
            .sync_daemon
            .as_ref()
            .map(|d| format!("{} {} id {}", state_name(d.state), d.interface, d.sync_id));
    }
}

fn state_name(s: SyncState) -> &'static str {
    match s {
        SyncState::Master => "master",
        SyncState::Backup => "backup",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_is_unprogrammable_without_a_connection_or_after_three_failed_passes() {
        let no_ipvs = Some("IPVS is not available in this kernel: load ip_vs");
        let none = Failures::default();
        // Nothing tried yet: no fault.
        assert_eq!(ipvs_fault(false, false, None, &none), None);
        assert_eq!(
            ipvs_fault(true, false, no_ipvs, &none).as_deref(),
            Some("IPVS cannot be programmed: IPVS is not available in this kernel: load ip_vs")
        );
        // Failed writes: only from the third pass in a row.
        let mut writes = Failures::default();
        writes.failed("EINVAL".into());
        writes.failed("EINVAL".into());
        assert_eq!(ipvs_fault(true, true, None, &writes), None);
        writes.failed("add service: EINVAL".into());
        assert_eq!(
            ipvs_fault(true, true, None, &writes).as_deref(),
            Some("IPVS writes keep failing (3 passes in a row): add service: EINVAL")
        );
    }

    #[test]
    fn sync_daemon_matches_on_role_interface_id_and_given_parameters() {
        let mut want = SyncDaemon::new(SyncState::Backup, "eth1", 51);
        // A 4.3+ kernel dumps every parameter; unset wanted ones are not compared.
        let mut running = want.clone();
        running.sync_maxlen = Some(1472);
        running.mcast_group = Some("224.0.0.81".parse().unwrap());
        running.mcast_port = Some(8848);
        running.mcast_ttl = Some(1);
        assert!(sync_daemon_matches(&want, &running, None));
        for other in [
            SyncDaemon::new(SyncState::Master, "eth1", 51),
            SyncDaemon::new(SyncState::Backup, "eth2", 51),
            SyncDaemon::new(SyncState::Backup, "eth1", 52),
        ] {
            assert!(!sync_daemon_matches(&other, &running, None), "{other:?}");
        }
        // A parameter changed by a reload restarts the daemon.
        want.mcast_port = Some(8850);
        assert!(!sync_daemon_matches(&want, &running, None));
        want.mcast_port = Some(8848);
        want.mcast_ttl = Some(1);
        assert!(sync_daemon_matches(&want, &running, None));
        // The kernel lowered maxlen to fit the MTU: what this thread started still counts.
        want.sync_maxlen = Some(9000);
        assert!(!sync_daemon_matches(&want, &running, None));
        assert!(sync_daemon_matches(&want, &running, Some(&want.clone())));
        let mut before = want.clone();
        before.sync_maxlen = Some(8000);
        assert!(!sync_daemon_matches(&want, &running, Some(&before)));
    }
}
