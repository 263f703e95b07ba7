//! The VRRP task and its command channel: it owns the runners, starts, reconfigures and
//! stops them as reloads say, and carries out handovers; the daemon loop never waits for it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{error, info, warn};
use vigil_config::{Config, VrrpInstance};
use vigil_proto::{ErrorCode, Event, IpvsFaultEvent, ProtocolError, VrrpAction, VrrpControlReply};
use vigil_vrrp::State;
use vigil_vrrp::io::{self as vio, Control, ReloadChange, RunnerHandle};

use super::registry::{Entry, Registry};
use super::sync_groups::{GroupSpec, sync_groups};
use super::trackers::track;
use super::view::state_view;
use super::{instances_carrying_virtual_servers, reload_change, runner_config};
use crate::notify_fifo::NotifyFifos;
use crate::supervise::{Armed, Guard, Supervisor, TestFaults, WorkerId};
use vigil_vrrp::io::notify::NOTIFY_STOP_WAIT;

struct Running {
    config: VrrpInstance,
    handle: RunnerHandle,
    tracker: JoinHandle<()>,
    /// The runner as the supervisor watches it; its end is recorded here.
    worker: WorkerId,
    end: Arc<OnceLock<String>>,
}

/// What the daemon asks of the VRRP task.
pub(super) enum Command {
    Apply(Arc<Config>),
    /// `vigilctl vrrp handover` (`handover`) or `reclaim`.
    Control {
        instance: String,
        handover: bool,
        reply: oneshot::Sender<Result<VrrpControlReply, ProtocolError>>,
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
    groups: Arc<RwLock<BTreeMap<String, GroupSpec>>>,
    /// Every configured instance's (interface, family, VRID), shared with the runners so
    /// they do not count each other's adverts as drops.
    local: vio::LocalRouters,
    sync_task: JoinHandle<()>,
    /// Tells the sync task the instances have stopped (it reports and runs the last hooks).
    sync_stop: Option<oneshot::Sender<()>>,
    supervisor: Supervisor,
    runner_fault: Armed,
    /// The configuration applied last (for which instances carry virtual servers).
    config: Arc<Config>,
    /// Why IPVS cannot be programmed, from the IPVS thread.
    ipvs_fault: watch::Receiver<Option<String>>,
    /// The instances held in fault for it, with the reason; read by their trackers.
    ipvs_faults: Arc<watch::Sender<HashMap<String, String>>>,
    /// Daemon events for `events` watchers.
    published: broadcast::Sender<Event>,
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
        published: broadcast::Sender<Event>,
        fifos: Arc<NotifyFifos>,
    ) -> VrrpHandle {
        let groups = Arc::new(RwLock::new(BTreeMap::new()));
        let (sync_stop, stopped) = oneshot::channel();
        let sync_task = tokio::spawn(sync_groups(
            registry.clone(),
            groups.clone(),
            fifos,
            stopped,
        ));
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
            sync_stop: Some(sync_stop),
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
        let _ = self.published.send(Event::IpvsFault(IpvsFaultEvent {
            reason: fault.clone(),
            held: held.iter().map(|s| s.to_string()).collect(),
            released: released.iter().map(|s| s.to_string()).collect(),
            at_unix_ms: crate::state::unix_now_ms(),
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
                let _ = r.handle.control.try_send(Control::TestFault(kind));
            }
            #[cfg(not(debug_assertions))]
            let _ = (kind, r);
        }
    }

    /// Hands over (or reclaims) instance `name`: the request is queued to the runner,
    /// never waited for.
    fn control(&self, name: &str, handover: bool) -> Result<VrrpControlReply, ProtocolError> {
        let (Some(status), Some(control)) =
            (self.registry.status(name), self.registry.control(name))
        else {
            return Err(ProtocolError::new(
                ErrorCode::UnknownInstance,
                format!("no running VRRP instance \"{name}\""),
            ));
        };
        if handover && status.state != State::Master {
            return Err(ProtocolError::new(
                ErrorCode::NotMaster,
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
                ErrorCode::InstanceBusy,
                format!("instance \"{name}\" has too many requests queued; try again"),
            ),
            mpsc::error::TrySendError::Closed(_) => {
                ProtocolError::new(ErrorCode::ShuttingDown, "the instance is stopping")
            }
        })?;
        Ok(VrrpControlReply {
            instance: name.to_string(),
            action: if handover {
                VrrpAction::Handover
            } else {
                VrrpAction::Reclaim
            },
            state_before: state_view(status.state),
        })
    }

    fn start_new(&mut self, config: &Config) {
        // Before any new runner starts: its first adverts must not count as drops at
        // the siblings already running.
        self.local.replace(config.vrrp.iter().map(|v| {
            let c = runner_config(v);
            (c.interface, c.family, c.vrid)
        }));
        // Before the runners start: their first change must find its group.
        let mut groups: BTreeMap<String, GroupSpec> = BTreeMap::new();
        for v in &config.vrrp {
            if let Some(g) = &v.sync_group {
                groups
                    .entry(g.clone())
                    .or_default()
                    .members
                    .push(v.name.clone());
            }
        }
        for g in &config.sync_groups {
            if let Some(spec) = groups.get_mut(&g.name) {
                spec.hooks = super::notify_hooks(&g.hooks);
            }
        }
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = groups;
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
        // The sync task reports the stops and runs the last hooks, bounded.
        if let Some(stop) = self.sync_stop.take() {
            let _ = stop.send(());
        }
        let sync_task = &mut self.sync_task;
        if tokio::time::timeout(NOTIFY_STOP_WAIT + Duration::from_secs(1), sync_task)
            .await
            .is_err()
        {
            self.sync_task.abort();
        }
    }
}
