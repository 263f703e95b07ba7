//! VRRP in the daemon: one `vigil_vrrp` runner per configured instance, their tracked
//! objects, sync groups, reload differences, and the registry the status socket reads.
//!
//! - Tracking: every instance implicitly tracks its own interface with weight 0 (a link
//!   without carrier puts it in Fault, as keepalived does), plus its `track` entries:
//!   interfaces (polled), exec programs (run every `interval`, killed after `timeout`,
//!   up on exit 0) and virtual servers: the director reports each virtual server's
//!   quorum through [`VrrpManager::virtual_server_health`]; until its first report, a
//!   virtual server counts as up.
//! - Sync groups: every state change is turned into directives for the other members
//!   with [`vigil_vrrp::sync_group_directives`].
//! - Reload: unchanged instances keep running untouched; instances whose change the
//!   running instance can take ([`reload_change`]: announcement schedule, notify hook,
//!   priority, preemption, virtual addresses, tracking, sync group) take it in place,
//!   keeping their state;
//!   other changed ones are stopped gracefully and started again; removed ones are
//!   stopped gracefully; new ones start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error, info, warn};
use vigil_config::{Config, TrackTarget, VrrpInstance, VrrpVersion};
use vigil_vrrp::io::{
    self as vio, Control, InstanceStatus, ReloadChange, RunnerConfig, RunnerHandle, StateEvent,
};
use vigil_vrrp::{Auth, Family, Password, State, Tracked, TrackedSummary, Version, summarize};

use crate::protocol::ProtocolError;
use crate::supervise::{Armed, Guard, Supervisor, TestFaults, WorkerId};

/// What the status socket can see and steer: each running instance's status and control
/// channel, and the stream of state changes.
pub struct Registry {
    entries: RwLock<BTreeMap<String, Entry>>,
    events: broadcast::Sender<StateEvent>,
    /// The VRRP task's requests, once it runs.
    commands: OnceLock<mpsc::UnboundedSender<Command>>,
    /// Instances held in fault because IPVS cannot be programmed, with the reason.
    ipvs_faults: RwLock<BTreeMap<String, String>>,
}

#[derive(Clone)]
struct Entry {
    status: watch::Receiver<InstanceStatus>,
    control: mpsc::Sender<Control>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        let (events, _) = broadcast::channel(256);
        Arc::new(Self {
            entries: RwLock::new(BTreeMap::new()),
            events,
            commands: OnceLock::new(),
            ipvs_faults: RwLock::new(BTreeMap::new()),
        })
    }

    /// Why instance `name` is held in fault by the daemon (IPVS cannot be programmed).
    pub fn fault_reason(&self, name: &str) -> Option<String> {
        self.ipvs_faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Hands over (`handover`) or reclaims instance `name`, through the VRRP task (in
    /// order with reloads); answered at once, without waiting for the runner.
    pub async fn request(
        &self,
        name: &str,
        handover: bool,
    ) -> Result<serde_json::Value, ProtocolError> {
        let stopping = || ProtocolError::new("shutting_down", "the daemon is stopping");
        let Some(commands) = self.commands.get() else {
            return Err(stopping());
        };
        let (reply, rx) = oneshot::channel();
        commands
            .send(Command::Control {
                instance: name.to_string(),
                handover,
                reply,
            })
            .map_err(|_| stopping())?;
        rx.await.unwrap_or_else(|_| Err(stopping()))
    }

    /// The live status of instance `name`, if it runs.
    pub fn status(&self, name: &str) -> Option<InstanceStatus> {
        self.read().get(name).map(|e| e.status.borrow().clone())
    }

    pub fn control(&self, name: &str) -> Option<mpsc::Sender<Control>> {
        self.read().get(name).map(|e| e.control.clone())
    }

    /// Every state change from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<StateEvent> {
        self.events.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // A panicked writer can only have left a whole map behind.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }
}

struct Running {
    config: VrrpInstance,
    handle: RunnerHandle,
    tracker: JoinHandle<()>,
    /// The runner as the supervisor watches it; its end is recorded here.
    worker: WorkerId,
    end: Arc<OnceLock<String>>,
}

/// What the daemon asks of the VRRP task.
enum Command {
    Apply(Arc<Config>),
    /// `vigilctl vrrp handover` (`handover`) or `reclaim`.
    Control {
        instance: String,
        handover: bool,
        reply: oneshot::Sender<Result<serde_json::Value, ProtocolError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

/// The daemon's handle on the VRRP task. Nothing here waits for VRRP: applies are queued
/// (and carried out in order), health inputs are watched values.
#[derive(Clone)]
pub struct VrrpHandle {
    commands: mpsc::UnboundedSender<Command>,
    vs_health: Arc<watch::Sender<HashMap<String, bool>>>,
}

impl VrrpHandle {
    /// Queues a reloaded configuration; instances change as [`VrrpManager`] describes,
    /// after every apply queued before it.
    pub fn apply(&self, config: Arc<Config>) {
        let _ = self.commands.send(Command::Apply(config));
    }

    /// The input the health checker feeds: virtual server `name` has (`true`) or has
    /// lost (`false`) its quorum. Instances tracking it change priority or go to Fault.
    pub fn virtual_server_health(&self, name: &str, up: bool) {
        self.vs_health
            .send_if_modified(|map| map.insert(name.to_string(), up) != Some(up));
    }

    /// Stops every instance gracefully (make-before-break for masters), in parallel, after
    /// the applies already queued; returns when they have stopped.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// How long a stopping instance may take to hand over before it is left behind (its
/// runner still stops on its own): the slowest backup's Master_Down_Interval is under 4
/// advert intervals (RFC 5798 §6.1), plus slack.
fn stop_bound(v: &VrrpInstance) -> Duration {
    v.advert_interval * 5 + Duration::from_secs(2)
}

/// Owns the runners, on a task of its own ([`VrrpManager::spawn`]): the daemon loop never
/// waits for a handover, a reload's stops or starts.
pub struct VrrpManager {
    registry: Arc<Registry>,
    running: BTreeMap<String, Running>,
    vs_health: Arc<watch::Sender<HashMap<String, bool>>>,
    groups: Arc<RwLock<BTreeMap<String, Vec<String>>>>,
    /// Every configured instance's (interface, family, VRID), shared with the runners so
    /// they do not count each other's adverts as drops.
    local: vio::LocalRouters,
    sync_task: JoinHandle<()>,
    supervisor: Supervisor,
    runner_fault: Armed,
    /// The configuration applied last (for which instances carry virtual servers).
    config: Arc<Config>,
    /// Why IPVS cannot be programmed, from the IPVS thread.
    ipvs_fault: watch::Receiver<Option<String>>,
    /// The instances held in fault for it, with the reason; read by their trackers.
    ipvs_faults: Arc<watch::Sender<HashMap<String, String>>>,
    /// Daemon events for `events` watchers.
    published: broadcast::Sender<serde_json::Value>,
}

impl VrrpManager {
    /// Starts every instance of `config` and the task that manages them. Must run inside
    /// the tokio runtime.
    /// `ipvs_fault` says why IPVS cannot be programmed: while it does, the instances that
    /// carry virtual servers ([`instances_carrying_virtual_servers`]) are held in fault.
    pub fn spawn(
        config: Arc<Config>,
        registry: Arc<Registry>,
        supervisor: Supervisor,
        faults: &TestFaults,
        ipvs_fault: watch::Receiver<Option<String>>,
        published: broadcast::Sender<serde_json::Value>,
    ) -> VrrpHandle {
        let groups = Arc::new(RwLock::new(BTreeMap::new()));
        let sync_task = tokio::spawn(sync_groups(registry.clone(), groups.clone()));
        let vs_health = Arc::new(watch::channel(HashMap::new()).0);
        let (commands, rx) = mpsc::unbounded_channel();
        let _ = registry.commands.set(commands.clone());
        let guard = supervisor.guard("vrrp", Duration::ZERO);
        let mut manager = Self {
            registry,
            running: BTreeMap::new(),
            vs_health: vs_health.clone(),
            groups,
            local: vio::LocalRouters::new(),
            sync_task,
            supervisor,
            runner_fault: Armed::new(faults, "vrrp-runner"),
            config: config.clone(),
            ipvs_fault,
            ipvs_faults: Arc::new(watch::channel(HashMap::new()).0),
            published,
        };
        // Before the runners start: one that would be held in fault starts so.
        manager.update_ipvs_faults();
        manager.start_new(&config);
        tokio::spawn(manager.run(rx, guard, Armed::new(faults, "vrrp")));
        VrrpHandle {
            commands,
            vs_health,
        }
    }

    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        guard: Guard,
        mut fault: Armed,
    ) {
        let mut queued: VecDeque<Arc<Config>> = VecDeque::new();
        // An apply whose removed and restarted instances are still handing over: its new
        // instances start once they have stopped.
        let mut starting: Option<Arc<Config>> = None;
        let mut stopping: JoinSet<()> = JoinSet::new();
        let mut tick = tokio::time::interval(crate::supervise::HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ipvs_fault = self.ipvs_fault.clone();
        let mut ipvs_open = true;
        loop {
            guard.beat();
            tokio::select! {
                changed = ipvs_fault.changed(), if ipvs_open => match changed {
                    Ok(()) => self.update_ipvs_faults(),
                    // The director is gone (its own supervision reports it).
                    Err(_) => ipvs_open = false,
                },
                command = commands.recv() => match command {
                    Some(Command::Apply(config)) => queued.push_back(config),
                    Some(Command::Control { instance, handover, reply }) => {
                        let _ = reply.send(self.control(&instance, handover));
                    }
                    Some(Command::Shutdown(reply)) => {
                        while stopping.join_next().await.is_some() {}
                        self.shutdown().await;
                        let _ = reply.send(());
                        guard.finish();
                        return;
                    }
                    None => {
                        self.shutdown().await;
                        guard.finish();
                        return;
                    }
                },
                Some(_) = stopping.join_next(), if !stopping.is_empty() => {}
                _ = tick.tick() => {
                    self.look_at_runners();
                    if let Some(kind) = fault.due(std::time::Instant::now()) {
                        crate::supervise::test_fault_async(kind, "VRRP task").await;
                        return;
                    }
                }
            }
            while stopping.is_empty() {
                if let Some(config) = starting.take() {
                    self.config = config.clone();
                    self.update_ipvs_faults();
                    self.start_new(&config);
                    continue;
                }
                let Some(config) = queued.pop_front() else {
                    break;
                };
                self.begin_apply(&config, &mut stopping).await;
                starting = Some(config);
            }
        }
    }

    /// Holds the instances that carry virtual servers in fault while IPVS cannot be
    /// programmed, and releases them when it can again: logged, published as an
    /// `ipvs_fault` event, shown by `vigilctl vrrp`.
    fn update_ipvs_faults(&mut self) {
        let fault = self.ipvs_fault.borrow().clone();
        let wanted: HashMap<String, String> = match &fault {
            Some(reason) => instances_carrying_virtual_servers(&self.config)
                .into_iter()
                .map(|name| (name, reason.clone()))
                .collect(),
            None => HashMap::new(),
        };
        if *self.ipvs_faults.borrow() == wanted {
            return;
        }
        let before: Vec<String> = self.ipvs_faults.borrow().keys().cloned().collect();
        let mut held: Vec<&String> = wanted.keys().collect();
        held.sort();
        let released: Vec<&String> = before.iter().filter(|n| !wanted.contains_key(*n)).collect();
        let join = |names: &[&String]| {
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(reason) = &fault
            && !held.is_empty()
        {
            warn!(
                "{reason}: VRRP instances {} held in fault (a peer that can program IPVS serves their addresses)",
                join(&held)
            );
        }
        if !released.is_empty() {
            info!(
                "VRRP instances {} released from fault: {}",
                join(&released),
                if fault.is_none() {
                    "IPVS can be programmed again"
                } else {
                    "they no longer carry virtual servers"
                }
            );
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let _ = self.published.send(serde_json::json!({
            "event": "ipvs_fault",
            "reason": fault,
            "held": held,
            "released": released,
            "at_unix_ms": now_ms,
        }));
        *self
            .registry
            .ipvs_faults
            .write()
            .unwrap_or_else(|e| e.into_inner()) = wanted.clone().into_iter().collect();
        self.ipvs_faults.send_replace(wanted);
    }

    /// Records the end of runners that ended on their own, and fires a test fault.
    fn look_at_runners(&mut self) {
        for r in self.running.values_mut() {
            if r.end.get().is_none()
                && let Some(why) = r.handle.ended()
            {
                let _ = r.end.set(why);
            }
        }
        if let Some(kind) = self.runner_fault.due(std::time::Instant::now())
            && let Some(r) = self.running.values().next()
        {
            #[cfg(debug_assertions)]
            {
                let fault = match kind {
                    crate::supervise::FaultKind::Panic => vio::runner::TestFault::Panic,
                    crate::supervise::FaultKind::End => vio::runner::TestFault::End,
                    crate::supervise::FaultKind::Stall => vio::runner::TestFault::Stall,
                };
                let _ = r.handle.control.try_send(Control::TestFault(fault));
            }
            #[cfg(not(debug_assertions))]
            let _ = (kind, r);
        }
    }

    /// Hands over (or reclaims) instance `name`: the request is queued to the runner,
    /// never waited for.
    fn control(&self, name: &str, handover: bool) -> Result<serde_json::Value, ProtocolError> {
        let (Some(status), Some(control)) =
            (self.registry.status(name), self.registry.control(name))
        else {
            return Err(ProtocolError::new(
                "unknown_instance",
                format!("no running VRRP instance \"{name}\""),
            ));
        };
        if handover && status.state != State::Master {
            return Err(ProtocolError::new(
                "not_master",
                format!(
                    "instance \"{name}\" is {}, not master: nothing to hand over",
                    status.state.as_str()
                ),
            ));
        }
        let message = if handover {
            Control::Handover
        } else {
            Control::Reclaim
        };
        control.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => ProtocolError::new(
                "instance_busy",
                format!("instance \"{name}\" has too many requests queued; try again"),
            ),
            mpsc::error::TrySendError::Closed(_) => {
                ProtocolError::new("shutting_down", "the instance is stopping")
            }
        })?;
        Ok(serde_json::json!({
            "instance": name,
            "action": if handover { "handover" } else { "reclaim" },
            "state_before": status.state.as_str(),
        }))
    }

    fn start_new(&mut self, config: &Config) {
        // Before any new runner starts: its first adverts must not count as drops at
        // the siblings already running.
        self.local.replace(config.vrrp.iter().map(|v| {
            let c = runner_config(v);
            (c.interface, c.family, c.vrid)
        }));
        for v in &config.vrrp {
            if self.running.contains_key(&v.name) {
                continue;
            }
            match vio::spawn(
                runner_config(v),
                self.registry.events.clone(),
                self.local.clone(),
            ) {
                Ok(handle) => {
                    let tracker = tokio::spawn(track(
                        v.clone(),
                        handle.control.clone(),
                        self.vs_health.subscribe(),
                        self.ipvs_faults.subscribe(),
                        false,
                    ));
                    self.registry.write().insert(
                        v.name.clone(),
                        Entry {
                            status: handle.status.clone(),
                            control: handle.control.clone(),
                        },
                    );
                    let end = Arc::new(OnceLock::new());
                    let worker = self.supervisor.watch(
                        format!("vrrp-runner {}", v.name),
                        Some(handle.beats.clone()),
                        end.clone(),
                        Duration::ZERO,
                    );
                    info!(instance = %v.name, interface = %v.interface, vrid = v.vrid, "VRRP instance started");
                    self.running.insert(
                        v.name.clone(),
                        Running {
                            config: v.clone(),
                            handle,
                            tracker,
                            worker,
                            end,
                        },
                    );
                }
                // Validation makes this unreachable for a loaded Config; keep running.
                Err(e) => error!("VRRP instance not started: {e}"),
            }
        }
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for v in &config.vrrp {
            if let Some(g) = &v.sync_group {
                groups.entry(g.clone()).or_default().push(v.name.clone());
            }
        }
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = groups;
    }

    /// The first half of applying a reloaded configuration (see the module doc): changes
    /// in place are made, removed and changed instances start stopping (on `stopping`,
    /// each bounded by [`stop_bound`]); new ones are started by the task once those
    /// have stopped.
    async fn begin_apply(&mut self, config: &Config, stopping: &mut JoinSet<()>) {
        let wanted: HashMap<&str, &VrrpInstance> =
            config.vrrp.iter().map(|v| (v.name.as_str(), v)).collect();
        let mut stale = Vec::new();
        let mut in_place = Vec::new();
        for (name, r) in &self.running {
            match wanted.get(name.as_str()) {
                Some(new) => match reload_change(&r.config, new) {
                    ReloadChange::Unchanged => {}
                    ReloadChange::InPlace => in_place.push(*new),
                    ReloadChange::Restart => stale.push(name.clone()),
                },
                None => stale.push(name.clone()),
            }
        }
        for new in in_place {
            self.reconfigure(new).await;
        }
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                let what = if wanted.contains_key(name.as_str()) {
                    "changed: restarting"
                } else {
                    "removed: stopping"
                };
                info!(instance = %name, "VRRP instance {what}");
                stopping.spawn(self.stop(r));
            }
        }
    }

    /// Takes `r` out of the registry and supervision; the returned future stops it.
    fn stop(&self, r: Running) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.registry.write().remove(&r.config.name);
        self.supervisor.retire(r.worker);
        r.tracker.abort();
        let bound = stop_bound(&r.config);
        let name = r.config.name.clone();
        async move {
            if tokio::time::timeout(bound, r.handle.stop(true))
                .await
                .is_err()
            {
                warn!(instance = %name, "VRRP instance did not stop within {bound:?}; going on without it");
            }
        }
    }

    /// Applies an [`ReloadChange::InPlace`] change to the running instance: the runner
    /// takes its new settings without a state change, and a changed `track` list gets a
    /// new tracker.
    async fn reconfigure(&mut self, new: &VrrpInstance) {
        let Some(r) = self.running.get_mut(&new.name) else {
            return;
        };
        let runner = runner_config(new);
        if runner != runner_config(&r.config) {
            let message = Control::Reconfigure(Box::new(runner));
            // A runner with a full queue is busy for a moment; one that does not take
            // it within the bound is stuck (its supervision says so).
            match tokio::time::timeout(Duration::from_secs(5), r.handle.control.send(message)).await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    warn!(instance = %new.name, "VRRP instance ended: change not applied")
                }
                Err(_) => {
                    warn!(instance = %new.name, "VRRP instance does not take requests: change not applied")
                }
            }
        }
        if r.config.track != new.track {
            r.tracker.abort();
            // The runner keeps the summary it has until every new program has run once,
            // so a failing one does not count as up for a moment.
            r.tracker = tokio::spawn(track(
                new.clone(),
                r.handle.control.clone(),
                self.vs_health.subscribe(),
                self.ipvs_faults.subscribe(),
                true,
            ));
        }
        info!(instance = %new.name, "VRRP instance changed: applied in place");
        r.config = new.clone();
    }

    /// Stops every instance gracefully (make-before-break for masters), in parallel.
    async fn shutdown(&mut self) {
        let mut stopping = JoinSet::new();
        for (_, r) in std::mem::take(&mut self.running) {
            stopping.spawn(self.stop(r));
        }
        while stopping.join_next().await.is_some() {}
        self.sync_task.abort();
    }
}

/// One message per instance whose adverts would not fit its interface's MTU, asked of
/// `mtu` (vigil-config must not look at the running system, docs/design.md). An
/// interface that cannot be asked (not there yet) is left to the runner, which checks
/// again when it appears.
pub fn adverts_over_mtu(config: &Config, mtu: &dyn Fn(&str) -> Option<u32>) -> Vec<String> {
    config
        .vrrp
        .iter()
        .filter_map(|v| vio::advert_too_big(&runner_config(v), mtu(&v.interface)?))
        .collect()
}

/// The interface's MTU, `None` when it cannot be read.
pub fn interface_mtu(name: &str) -> Option<u32> {
    vio::iface::mtu(name).ok()
}

/// The runner's view of a configured instance.
pub fn runner_config(v: &VrrpInstance) -> RunnerConfig {
    RunnerConfig {
        name: v.name.clone(),
        interface: v.interface.clone(),
        vrid: v.vrid,
        version: match v.version {
            VrrpVersion::V2 => Version::V2,
            VrrpVersion::V3 => Version::V3,
        },
        priority: v.priority,
        advert_interval: v.advert_interval,
        preempt: v.preempt,
        preempt_delay: v.preempt_delay,
        family: match v.family {
            vigil_config::AddressFamily::Ipv4 => Family::Ipv4,
            vigil_config::AddressFamily::Ipv6 => Family::Ipv6,
        },
        vips: v.vips.iter().map(|p| (p.addr, p.prefix_len)).collect(),
        vips_excluded: v
            .vips_excluded
            .iter()
            .map(|p| (p.addr, p.prefix_len))
            .collect(),
        unicast_peers: v.unicast_peers.clone(),
        unicast_source: v.unicast_source,
        allowed_peers: v.allowed_peers.clone(),
        unicast_accept_any_ttl: v.unicast_accept_any_ttl,
        learned_interval_factor: v.learned_interval_factor,
        // Validation bounds the password to 1..=8 bytes, so Password::new cannot fail.
        auth: match v
            .auth_password
            .as_deref()
            .map(|p| Password::new(p.as_bytes()))
        {
            Some(Ok(password)) => Auth::SimplePassword(password),
            _ => Auth::None,
        },
        garp: vio::GarpConfig {
            repeat: v.garp.repeat,
            interval: v.garp.interval,
            refresh: v.garp.refresh,
        },
        notify: v.notify.clone(),
    }
}

/// What a reload does to a running instance configured as `old`, now `new`: the
/// runner's fields as [`vio::reload_change`] decides; besides them `sync_group` (the
/// groups are rebuilt on every reload), `accept` (not enforced yet) and `track` (a new
/// tracker) apply in place.
pub fn reload_change(old: &VrrpInstance, new: &VrrpInstance) -> ReloadChange {
    if old == new {
        return ReloadChange::Unchanged;
    }
    match vio::reload_change(&runner_config(old), &runner_config(new)) {
        ReloadChange::Restart => ReloadChange::Restart,
        ReloadChange::InPlace | ReloadChange::Unchanged => ReloadChange::InPlace,
    }
}

/// How often sync groups' faults are reconciled besides on every state change.
pub const SYNC_RECONCILE: Duration = Duration::from_millis(200);

/// Feeds each state change of a sync-group member to the others as directives, and keeps
/// group faults consistent: a group is in Fault exactly while one of its members has a
/// fault of its own.
async fn sync_groups(registry: Arc<Registry>, groups: Arc<RwLock<BTreeMap<String, Vec<String>>>>) {
    let mut events = registry.subscribe();
    let mut tick = tokio::time::interval(SYNC_RECONCILE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Ok(e) => Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!("sync groups missed {n} state changes");
                    None
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => None,
        };
        let all: Vec<Vec<String>> = groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        if let Some(event) = &event
            && let Some(members) = all.iter().find(|m| m.contains(&event.instance))
        {
            follow_leader(&registry, members, event).await;
        }
        for members in &all {
            reconcile_faults(&registry, members).await;
        }
    }
}

async fn follow_leader(registry: &Registry, members: &[String], event: &StateEvent) {
    let Some(leader) = members.iter().position(|m| *m == event.instance) else {
        return;
    };
    let states: Vec<State> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            if i == leader {
                event.transition.to
            } else {
                registry.status(m).map_or(State::Initialize, |s| s.state)
            }
        })
        .collect();
    for (index, directive) in
        vigil_vrrp::sync_group_directives(&states, leader, event.transition.from)
    {
        if let Some(member) = members.get(index)
            && let Some(control) = registry.control(member)
        {
            debug!(leader = %event.instance, member = %member, ?directive, "sync group");
            let _ = control.send(Control::Sync(directive)).await;
        }
    }
}

/// Directives cross in flight (a member pulled into Fault by a peer that was itself
/// pulled in by it), so the group's fault is recomputed from the members' own faults:
/// while one has its own, the others are held in Fault; once none has, every member in
/// Fault is released.
async fn reconcile_faults(registry: &Registry, members: &[String]) {
    let statuses: Vec<(String, InstanceStatus)> = members
        .iter()
        .filter_map(|m| registry.status(m).map(|s| (m.clone(), s)))
        .collect();
    let group_fault = statuses.iter().any(|(_, s)| s.own_fault);
    for (member, status) in &statuses {
        let directive = match status.state {
            State::Backup | State::Master if group_fault => vigil_vrrp::SyncDirective::EnterFault,
            State::Fault if !group_fault => vigil_vrrp::SyncDirective::LeaveFault,
            _ => continue,
        };
        if let Some(control) = registry.control(member) {
            debug!(member = %member, ?directive, "sync group fault reconciled");
            let _ = control.send(Control::Sync(directive)).await;
        }
    }
}

/// One tracked object's current state.
struct Tracker {
    weight: i32,
    kind: TrackerKind,
}

enum TrackerKind {
    Interface(String),
    /// `None` until the program's first run ended.
    Exec(watch::Receiver<Option<bool>>),
    VirtualServer(String),
}

/// Watches an instance's tracked objects and sends their summary whenever it changes.
/// A program not run yet counts as up; with `await_execs` (a tracker replaced by a reload,
/// while the runner still holds the old summary) a summary such a program would decide
/// is held back until it has run, at most [`AWAIT_EXECS_MAX`].
async fn track(
    v: VrrpInstance,
    control: mpsc::Sender<Control>,
    mut vs_health: watch::Receiver<HashMap<String, bool>>,
    mut ipvs_faults: watch::Receiver<HashMap<String, String>>,
    await_execs: bool,
) {
    let mut execs = JoinSet::new();
    // The instance's own interface: without a link it can neither hear nor be heard.
    let mut trackers = vec![Tracker {
        weight: 0,
        kind: TrackerKind::Interface(v.interface.clone()),
    }];
    for t in &v.track {
        let kind = match &t.target {
            TrackTarget::Interface(name) => TrackerKind::Interface(name.clone()),
            TrackTarget::VirtualServer(name) => TrackerKind::VirtualServer(name.clone()),
            TrackTarget::Exec {
                command,
                interval,
                timeout,
                user,
            } => {
                let (tx, rx) = watch::channel(None);
                execs.spawn(run_exec_track(
                    v.name.clone(),
                    command.clone(),
                    *interval,
                    *timeout,
                    user.clone(),
                    tx,
                ));
                TrackerKind::Exec(rx)
            }
        };
        trackers.push(Tracker {
            weight: t.weight,
            kind,
        });
    }
    let mut last = None;
    let hold_until = await_execs.then(|| tokio::time::Instant::now() + AWAIT_EXECS_MAX);
    // Links followed from the kernel's link events (RTNLGRP_LINK), not polled: a link
    // going down reaches the runner at once. Without the subscription, every link is
    // asked once a second.
    let mut links = open_link_watch(&v.name).await;
    loop {
        let health = vs_health.borrow_and_update().clone();
        // `None`: an exec program that has not run yet.
        let states: Vec<(i32, Option<bool>)> = trackers
            .iter_mut()
            .map(|t| {
                let up = match &mut t.kind {
                    // An interface that cannot be queried (gone) is down.
                    TrackerKind::Interface(name) => Some(match &links {
                        Some(watch) => watch.table().is_running(name),
                        None => vigil_vrrp::io::iface::is_running(name).unwrap_or(false),
                    }),
                    // Marked seen, so `exec_changed` waits for the next result.
                    TrackerKind::Exec(rx) => *rx.borrow_and_update(),
                    TrackerKind::VirtualServer(name) => {
                        Some(health.get(name).copied().unwrap_or(true))
                    }
                };
                (t.weight, up)
            })
            .collect();
        // Held in fault while IPVS cannot be programmed (weight 0: a fault of its own).
        let mut states = states;
        states.push((
            0,
            Some(!ipvs_faults.borrow_and_update().contains_key(&v.name)),
        ));
        let holding = hold_until.is_some_and(|until| tokio::time::Instant::now() < until);
        let (summary, hold) = tracked_summary(&states, holding);
        if last != Some(summary) && !hold {
            if last.is_some() || summary.fault || summary.weight != 0 {
                info!(instance = %v.name, weight = summary.weight, fault = summary.fault, "tracked objects changed");
            }
            last = Some(summary);
            let message = Control::Tracked {
                weight: summary.weight,
                fault: summary.fault,
            };
            if control.send(message).await.is_err() {
                return;
            }
        }
        tokio::select! {
            changed = link_changed(&mut links) => {
                if let Err(e) = changed {
                    warn!(instance = %v.name, "link events lost, asking links every second: {e}");
                    links = None;
                }
            }
            () = exec_changed(&mut trackers) => {}
            // The end of the hold wakes the loop, which then sends what it held back.
            () = async {
                match hold_until {
                    Some(until) if holding => tokio::time::sleep_until(until).await,
                    _ => std::future::pending().await,
                }
            } => {}
            _ = vs_health.changed() => {}
            _ = ipvs_faults.changed() => {}
        }
        if links.is_none() {
            // Retried on every turn; a failure leaves the once-a-second asking in place.
            links = vigil_netlink::LinkWatch::open().await.ok();
        }
    }
}

async fn open_link_watch(instance: &str) -> Option<vigil_netlink::LinkWatch> {
    match vigil_netlink::LinkWatch::open().await {
        Ok(watch) => Some(watch),
        Err(e) => {
            warn!(instance = %instance, "cannot follow link events, asking links every second: {e}");
            None
        }
    }
}

/// The next link change, or a second without the subscription.
async fn link_changed(
    links: &mut Option<vigil_netlink::LinkWatch>,
) -> Result<(), vigil_netlink::Error> {
    match links {
        Some(watch) => watch.changed().await,
        None => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        }
    }
}

/// The next end of a tracking program's run that changed its result; never without one.
async fn exec_changed(trackers: &mut [Tracker]) {
    let mut waits: Vec<_> = trackers
        .iter_mut()
        .filter_map(|t| match &mut t.kind {
            TrackerKind::Exec(rx) => Some(Some(Box::pin(rx.changed()))),
            _ => None,
        })
        .collect();
    std::future::poll_fn(|cx| {
        for slot in &mut waits {
            let Some(wait) = slot else { continue };
            if let std::task::Poll::Ready(result) = wait.as_mut().poll(cx) {
                *slot = None;
                // A program whose task ended (its sender gone) stays as it last was.
                if result.is_ok() {
                    return std::task::Poll::Ready(());
                }
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The instances whose mastership is worth nothing without IPVS: one of their VIPs is a
/// virtual server's address, or they `track` a virtual server. An instance that only
/// floats an address (a gateway) is not among them, nor is one tied to a fwmark service
/// only by firewall rules (give it a `track = [{ virtual_server = ... }]` to tie it).
pub fn instances_carrying_virtual_servers(config: &Config) -> Vec<String> {
    let addresses: Vec<IpAddr> = config
        .virtual_servers
        .iter()
        .filter_map(|vs| match vs.key {
            vigil_config::ServiceKey::Address { address, .. } => Some(address.ip()),
            vigil_config::ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    config
        .vrrp
        .iter()
        .filter(|v| {
            v.vips
                .iter()
                .chain(&v.vips_excluded)
                .any(|p| addresses.contains(&p.addr))
                || v.track
                    .iter()
                    .any(|t| matches!(t.target, TrackTarget::VirtualServer(_)))
        })
        .map(|v| v.name.clone())
        .collect()
}

/// The summary of tracked objects' `(weight, up)`, `up` being `None` for a program that
/// has not run yet (counted as up), and whether to hold it back: only while `holding`
/// and such a program decides it.
fn tracked_summary(states: &[(i32, Option<bool>)], holding: bool) -> (TrackedSummary, bool) {
    let with_unknown = |assumed: bool| {
        summarize(states.iter().map(|&(weight, up)| Tracked {
            weight,
            up: up.unwrap_or(assumed),
        }))
    };
    let summary = with_unknown(true);
    (summary, holding && summary != with_unknown(false))
}

/// How long a tracker replaced by a reload holds its summary back for programs that have
/// not run yet; after that they count as up, as at start.
const AWAIT_EXECS_MAX: Duration = Duration::from_secs(5);

/// Runs a tracking program every `interval`; up while it exits 0 within `timeout`. It
/// runs sandboxed (vigil-child: no capabilities, a cleared environment plus
/// `VIGIL_INSTANCE`, its whole tree killed at the timeout and when it exits) as `user`;
/// a user that cannot be looked up counts as down, never as the daemon's own.
async fn run_exec_track(
    instance: String,
    command: Vec<String>,
    interval: Duration,
    timeout: Duration,
    user: String,
    up: watch::Sender<Option<bool>>,
) {
    let Some(program) = command.first() else {
        return;
    };
    let run_as = resolve_user(&user);
    if let Err(e) = &run_as {
        warn!(instance = %instance, "track program {program} cannot run: {e}");
    }
    let mut child = vigil_child::Command::new(program.clone());
    child.args = command.iter().skip(1).cloned().collect();
    child.env = vec![("VIGIL_INSTANCE".into(), instance.clone())];
    child.timeout = timeout;
    child.output_limit = 1024;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_failure = None;
    loop {
        tick.tick().await;
        let failure = match run_as {
            Ok(run_as) => {
                child.run_as = run_as;
                match vigil_child::run(&child).await {
                    Ok(out) if out.success() => None,
                    Ok(out) => Some(match out.first_line() {
                        Some(line) => format!("{} {}: {line}", program, out.describe(timeout)),
                        None => format!("{} {}", program, out.describe(timeout)),
                    }),
                    Err(e) => Some(format!("{program} cannot start: {e}")),
                }
            }
            Err(_) => Some(String::new()),
        };
        if failure != last_failure
            && let Some(why) = &failure
            && !why.is_empty()
        {
            warn!(instance = %instance, "track program {why}");
        }
        let ok = failure.is_none();
        last_failure = failure;
        up.send_if_modified(|v| {
            let changed = *v != Some(ok);
            *v = Some(ok);
            changed
        });
    }
}

/// Whom tracking programs run as. Validation rejects unknown users; one removed since
/// is an error here (the program then counts as down).
fn resolve_user(user: &str) -> Result<vigil_child::RunAs, vigil_child::UserError> {
    vigil_child::lookup_user(user)
}

/// The live part of one instance's `vrrp` reply.
pub fn status_json(status: &InstanceStatus) -> serde_json::Value {
    use serde_json::json;
    let ip = |a: Option<IpAddr>| a.map(|a| a.to_string());
    json!({
        "state": status.state.as_str(),
        "effective_priority": status.priority,
        "master": ip(status.master),
        "primary_address": ip(status.primary_address),
        "holds_vips": status.holds_vips,
        "standing_down": status.standing_down,
        "own_fault": status.own_fault,
        "transitions": status.transitions,
        "last_transition": status.last_transition.map(|t| transition_json(&t)),
        "adverts_sent": status.adverts_sent,
        "adverts_received": status.adverts_received,
        "replies_limited": status.replies_limited,
        "send_errors": status.send_errors,
        "drops": status.drops,
        "error": status.error,
    })
}

pub fn transition_json(t: &vio::Transition) -> serde_json::Value {
    serde_json::json!({
        "from": t.from.as_str(),
        "to": t.to.as_str(),
        "reason": t.reason.as_str(),
        "priority": t.priority,
        "at_unix": t.at_unix,
    })
}

/// One `vrrp-watch` event line.
pub fn event_json(e: &StateEvent) -> serde_json::Value {
    let mut v = transition_json(&e.transition);
    if let serde_json::Value::Object(o) = &mut v {
        o.insert("event".into(), "vrrp_state".into());
        o.insert("instance".into(), e.instance.clone().into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_status_render_as_documented() {
        let transition = vio::Transition {
            from: State::Backup,
            to: State::Master,
            reason: vigil_vrrp::TransitionReason::MasterDown,
            priority: 100,
            at_unix: 1.5,
        };
        let event = event_json(&StateEvent {
            instance: "web".into(),
            transition,
        });
        assert_eq!(
            event,
            serde_json::json!({"event": "vrrp_state", "instance": "web", "from": "backup",
                "to": "master", "reason": "master_down", "priority": 100, "at_unix": 1.5})
        );
        let status = InstanceStatus {
            name: "web".into(),
            state: State::Master,
            priority: 100,
            master: Some("10.0.0.1".parse().unwrap()),
            primary_address: Some("10.0.0.1".parse().unwrap()),
            holds_vips: true,
            standing_down: false,
            own_fault: false,
            last_transition: Some(transition),
            transitions: 2,
            adverts_sent: 7,
            adverts_received: 1,
            replies_limited: 4,
            drops: [("vrid", 3)].into_iter().collect(),
            send_errors: 0,
            error: None,
        };
        let v = status_json(&status);
        assert_eq!(v["state"], "master");
        assert_eq!(v["master"], "10.0.0.1");
        assert_eq!(v["drops"]["vrid"], 3);
        assert_eq!(v["replies_limited"], 4);
        assert_eq!(v["last_transition"]["reason"], "master_down");
    }

    #[test]
    fn a_replaced_tracker_holds_back_what_a_program_not_run_yet_decides() {
        let summary = |weight, fault| TrackedSummary { weight, fault };
        // At start (not holding) a program not run yet counts as up.
        assert_eq!(
            tracked_summary(&[(0, Some(true)), (-100, None)], false),
            (summary(0, false), false)
        );
        // After a reload it is held back while that program decides the outcome...
        assert_eq!(
            tracked_summary(&[(0, Some(true)), (-100, None)], true),
            (summary(0, false), true)
        );
        // ...but not when the outcome is the same either way (a fault decides alone)...
        assert_eq!(
            tracked_summary(&[(0, Some(false)), (0, None)], true),
            (summary(0, true), false)
        );
        // ...nor once it has run.
        assert_eq!(
            tracked_summary(&[(0, Some(true)), (-100, Some(false))], true),
            (summary(-100, false), false)
        );
    }

    fn one_instance(extra: &str) -> VrrpInstance {
        let text = format!(
            "[director]\nname = \"a\"\n\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 7\npriority = 150\nvips = [\"10.0.0.100/24\"]\n{extra}\n"
        );
        let loaded = vigil_config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        loaded.config.vrrp[0].clone()
    }

    #[test]
    fn reload_applies_announcements_hooks_and_election_inputs_in_place() {
        let old = one_instance("");
        let kind = |extra: &str| reload_change(&old, &one_instance(extra));
        assert_eq!(kind(""), ReloadChange::Unchanged);
        for extra in [
            "garp_repeat = 2",
            "garp_interval = \"100ms\"",
            "garp_refresh = \"10s\"",
            "notify = [\"/bin/true\"]",
            "preempt = false",
            "preempt_delay = \"5s\"",
            "sync_group = \"g\"",
            "track = [{ interface = \"eth1\", weight = -50 }]",
        ] {
            assert_eq!(kind(extra), ReloadChange::InPlace, "{extra}");
        }
        // The address list, by replacing the instance's `vips` line.
        let more = vigil_config::parse(
            std::path::Path::new("t.toml"),
            "[director]\nname = \"a\"\n\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 7\npriority = 150\nvips = [\"10.0.0.100/24\", \"10.0.0.101/24\"]\n",
        )
        .unwrap();
        assert_eq!(
            reload_change(&old, &more.config.vrrp[0]),
            ReloadChange::InPlace
        );
        let mut lower = old.clone();
        lower.priority = 90;
        assert_eq!(reload_change(&old, &lower), ReloadChange::InPlace);
        for extra in ["advert_interval = \"2s\"", "unicast_peers = [\"10.0.0.2\"]"] {
            assert_eq!(kind(extra), ReloadChange::Restart, "{extra}");
        }
        let mut moved = old.clone();
        moved.vrid = 8;
        assert_eq!(reload_change(&old, &moved), ReloadChange::Restart);
        let mut owner = old.clone();
        owner.priority = 255;
        assert_eq!(reload_change(&old, &owner), ReloadChange::Restart);
    }

    #[test]
    fn instances_carrying_virtual_servers_are_those_with_their_addresses_or_tracking_them() {
        let loaded = vigil_config::parse(
            std::path::Path::new("t.toml"),
            r#"
[director]
name = "a"

[vrrp.web]
interface = "eth0"
vrid = 1
vips = ["10.0.0.100/24", "10.0.0.101/24"]

[vrrp.gateway]
interface = "eth0"
vrid = 2
vips = ["10.0.0.1/24"]

[vrrp.marked]
interface = "eth0"
vrid = 3
vips = ["10.0.0.102/24"]
track = [{ virtual_server = "mail" }]

[[virtual_server]]
name = "web"
address = "10.0.0.101:443"
real_server = [{ address = "10.0.1.1" }]

[[virtual_server]]
name = "mail"
fwmark = 7
real_server = [{ address = "10.0.1.2:25" }]
"#,
        )
        .unwrap();
        let mut names = instances_carrying_virtual_servers(&loaded.config);
        names.sort();
        assert_eq!(names, ["marked", "web"]);
    }

    #[test]
    fn adverts_must_fit_the_interface_mtu() {
        let loaded = vigil_config::parse(
            std::path::Path::new("t.toml"),
            r#"
[director]
name = "a"

[vrrp.web]
interface = "eth0"
vrid = 7
vips = ["2001:db8::1/64", "2001:db8::2/64"]
vips_excluded = ["2001:db8::3/64"]

[vrrp.gone]
interface = "eth9"
vrid = 8
vips = ["10.0.0.1/24"]
"#,
        )
        .unwrap();
        let mtu = |m: u32| move |name: &str| (name == "eth0").then_some(m);
        // IPv6: 40 + 8 + 16 x 2 = 80 bytes; excluded addresses are not in the advert.
        assert!(adverts_over_mtu(&loaded.config, &mtu(80)).is_empty());
        assert_eq!(
            adverts_over_mtu(&loaded.config, &mtu(79)),
            [
                "instance web: an advert of its 2 virtual addresses is 80 bytes, more than the MTU 79 of eth0; move addresses to vips_excluded or raise the MTU"
            ]
        );
    }

    #[test]
    fn runner_config_maps_the_cluster_file() {
        let loaded = vigil_config::parse(
            std::path::Path::new("t.toml"),
            r#"
[director]
name = "a"

[vrrp.web]
interface = "eth0"
vrid = 7
priority = 150
version = 2
advert_interval = "1s"
auth_password = "pw"
vips = ["10.0.0.100/24"]
vips_excluded = ["10.0.0.200/24"]
"#,
        )
        .unwrap();
        let c = runner_config(&loaded.config.vrrp[0]);
        assert_eq!(c.version, Version::V2);
        assert_eq!(c.vips, vec![("10.0.0.100".parse().unwrap(), 24)]);
        assert_eq!(c.vips_excluded, vec![("10.0.0.200".parse().unwrap(), 24)]);
        assert!(matches!(c.auth, Auth::SimplePassword(_)));
        assert_eq!(c.garp.repeat, 5);
    }
}
