//! The director: health results, operator drains and VRRP roles become what IPVS holds.
//!
//! One task owns the health checker's events, the drains (kept in the state file), each
//! service's quorum memory, and the IPVS thread. On every health change it recomputes the
//! affected service with `vigil_ipvs::policy` and hands it to the IPVS thread, which
//! writes only the difference. It also moves the IPVS connection sync daemon between
//! master and backup as the VRRP instance named in `[ipvs_sync]` changes role, and tells
//! VRRP when a virtual server gains or loses its quorum (for `track`). Quorum and
//! real-server changes all pass through [`Director::transition`], which runs their hooks
//! (`director_hooks`). Virtual servers with `announce` have their VIP routes decided here
//! (`announce`) and written by the announcer thread (`announce_worker`); withdrawing
//! comes before a whole drain, a stop or a reload's removal reaches IPVS.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};
use vigil_check::{
    Checker, CheckerOptions, Health, HealthEvent, HealthEvents, targets_from_config,
};
use vigil_config::{Config, ServiceKey, VirtualServer};
use vigil_ipvs::{DesiredTable, SyncState, policy};
use vigil_vrrp::State;

use crate::announce::{self, Verdict};
use crate::announce_worker::{AnnounceWorker, Desired};
use crate::datapath::{Chosen, Datapath, Kind, nftables::NftWorker};
use crate::director_hooks::{self, Hooks, Transition};
use crate::ipvs_worker::{IpvsWorker, Job};
use crate::overrides::Drains;
use crate::services::ServicesView;
use crate::state::{
    DirectorStats, DirectorView, RealServerStats, Shared, VirtualServerStats, recv_or_never,
    unix_ms, unix_now_ms,
};
use crate::state_file::{Restored, StateFile};
use crate::supervise::{Armed, FaultKind, Guard, HEARTBEAT, Supervisor, TestFaults};
use crate::table::{self, Known};
use crate::vrrp::Registry;
use vigil_proto::{
    AnnounceEvent, AnnounceView, DrainEvent, DrainReply, ErrorCode, Event, IpvsView, ProtocolError,
    QuorumEvent, RealServerView, ServicesReply, VirtualServerView,
};

/// What the daemon asks of the director.
pub enum Command {
    Reload(Arc<Config>),
    /// Drain (`true`) or enable (`false`) a real server of a virtual server (by name).
    Drain {
        virtual_server: String,
        /// `None`: every real server of the virtual server.
        real_server: Option<String>,
        drain: bool,
        reply: oneshot::Sender<Result<DrainReply, ProtocolError>>,
    },
    Services(oneshot::Sender<ServicesReply>),
    Stop(oneshot::Sender<()>),
    /// A `real_servers_from_dns` name was resolved (or failed to be).
    DnsResolved(crate::dns_real_servers::Resolution),
}

/// The director's messages to the daemon loop.
pub enum Notice {
    /// A virtual server has (`true`) or has lost (`false`) its quorum: VRRP tracking.
    Quorum(String, bool),
}

#[derive(Debug, Clone)]
struct HealthRecord {
    known: Known,
    /// The weight the server's dynamic checks give it.
    weight: Option<u32>,
    reason: String,
    since_unix_ms: u64,
}

pub struct Director {
    config: Arc<Config>,
    checker: Checker,
    events: HealthEvents,
    /// The kernel side, IPVS or nftables (`crate::datapath`).
    datapath: Box<dyn Datapath>,
    health: HashMap<(ServiceKey, SocketAddr), HealthRecord>,
    drains: Drains,
    /// Where the drains (and the IPVS thread's owned services) are kept.
    state_file: StateFile,
    /// Each service's quorum as last computed (the hysteresis memory).
    quorum: HashMap<ServiceKey, Option<bool>>,
    notices: mpsc::UnboundedSender<Notice>,
    vrrp: Arc<Registry>,
    /// keepalived's notify FIFOs: `VS` and `RS` lines.
    fifos: Arc<crate::notify_fifo::NotifyFifos>,
    /// Daemon events for `events` watchers.
    published: broadcast::Sender<Event>,
    /// Where metrics read the director's state without asking this task.
    view: Arc<DirectorView>,
    /// Something metrics show changed since the last publication.
    stats_dirty: bool,
    stats_published_at: Instant,
    /// Test faults (debug builds) for the director itself and the checker.
    fault: Armed,
    checker_fault: Armed,
    /// Quorum and real-server hooks.
    hooks: Hooks,
    /// Each real server's place in `config`, for its hooks and initial state.
    places: HashMap<(ServiceKey, SocketAddr), (usize, usize)>,
    /// Each service's last decided quorum as transitions reported it: a reload that
    /// makes a quorum undecided for a while must not make its next decision look like
    /// the first.
    quorum_reported: HashMap<ServiceKey, bool>,
    /// The file's config and the real servers DNS gave it; `config` is their sum.
    dns: crate::dns_real_servers::sets::DnsSets,
    /// BGP announcement (docs/scale-out.md); empty without `[announce]`.
    bgp: Bgp,
    supervisor: Supervisor,
}

/// The announcer's side of the director.
#[derive(Default)]
struct Bgp {
    /// Started with the first `[announce]`.
    worker: Option<AnnounceWorker>,
    /// The settings last used (kept when a reload drops `[announce]`, to withdraw).
    settings: Option<vigil_config::Announce>,
    /// What was last sent to the worker.
    sent: Option<Desired>,
    /// Each announced virtual server's verdict and since when (Unix ms).
    verdicts: HashMap<String, (Verdict, u64)>,
    /// Drains (virtual server, real server) held back from IPVS until this instant: they
    /// drained an announced service whole, whose route is withdrawn first.
    drain_hold: HashMap<(String, SocketAddr), Instant>,
    /// Failures (virtual server, real server) held back from IPVS until this instant:
    /// they cost an announced service its quorum, whose route is withdrawn first; until
    /// the routers moved the flows, the failed servers keep their place and weight here.
    health_hold: HashMap<(String, SocketAddr), Instant>,
    /// Services a reload removed while announced: IPVS keeps them until `until`.
    lingering: Vec<Lingering>,
    /// The daemon is stopping: every route is withdrawn.
    stopping: bool,
    /// After a stop's withdraw delay: the VIP addresses go too.
    release_addresses: bool,
}

struct Lingering {
    key: ServiceKey,
    desired: vigil_ipvs::DesiredService,
    vip: IpAddr,
    until: Instant,
}

/// How long queued hooks (omega's among them) may still run at shutdown: within the
/// daemon's 10 s wait for the director.
const HOOKS_AT_STOP: Duration = Duration::from_secs(8);

/// The director's stats are published at most this often; a change within it waits for
/// the next tick (at 10,000 real servers a rebuild per health event would cost more than
/// the health events themselves).
const STATS_INTERVAL: Duration = Duration::from_secs(1);

impl Director {
    /// Starts checking and programming IPVS for `config`. Must run inside the runtime.
    /// `state` is the state file as loaded at start, with what it restored; `shared` gives
    /// the VRRP registry, the event stream and the view metrics read. The director
    /// task, the checker threads and the IPVS threads are registered with `supervisor`.
    /// `ipvs_programmable` follows why IPVS cannot be programmed (if so).
    pub fn spawn(
        config: Arc<Config>,
        (state_file, restored): (StateFile, Restored),
        shared: &Shared,
        supervisor: &Supervisor,
        faults: &TestFaults,
        ipvs_programmable: tokio::sync::watch::Sender<Option<String>>,
        datapath: &Chosen,
    ) -> (mpsc::Sender<Command>, mpsc::UnboundedReceiver<Notice>) {
        // Registered before the workers it owns: when it ends they end with it, and
        // the supervisor reports in order of registration, the cause first.
        let guard = supervisor.guard("director", Duration::ZERO);
        let (checker, events) =
            Checker::spawn(targets_from_config(&config), CheckerOptions::default());
        for l in checker.liveness() {
            supervisor.watch(l.name, Some(l.beats), l.end, Duration::ZERO);
        }
        let (notices, notice_rx) = mpsc::unbounded_channel();
        let vrrp = shared.vrrp.clone();
        let published = shared.events.clone();
        let view = shared.director.clone();
        let worker: Box<dyn Datapath> = match datapath.kind {
            Kind::Ipvs => Box::new(IpvsWorker::start(
                restored.owned_services,
                state_file.clone(),
                supervisor,
                faults,
                ipvs_programmable,
            )),
            Kind::Nftables => Box::new(NftWorker::start(
                vigil_nft::Nft::with_command([crate::datapath::nftables::nft_program()]),
                crate::datapath::nftables::options_at_start(&config.director),
                supervisor,
                faults,
                ipvs_programmable,
            )),
        };
        view.attach(worker.status_handle(), checker.clone());
        let places = director_hooks::index(&config);
        let dns = crate::dns_real_servers::sets::DnsSets::new(config.clone());
        let director = Director {
            dns,
            fault: Armed::new(faults, "director"),
            checker_fault: Armed::new(faults, "checker"),
            datapath: worker,
            config,
            checker,
            events,
            health: HashMap::new(),
            drains: restored.drains,
            state_file,
            quorum: HashMap::new(),
            notices,
            vrrp,
            fifos: shared.fifos.clone(),
            published,
            view,
            stats_dirty: false,
            stats_published_at: Instant::now(),
            hooks: Hooks::default(),
            places,
            quorum_reported: HashMap::new(),
            bgp: Bgp::default(),
            supervisor: supervisor.clone(),
        };
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(director.run(rx, guard));
        (tx, notice_rx)
    }

    async fn run(mut self, mut commands: mpsc::Receiver<Command>, guard: Guard) {
        let mut vrrp_events = Some(self.vrrp.subscribe());
        self.update_timeouts();
        self.sync_all();
        self.update_sync_daemon();
        self.publish_stats();
        let mut stats_tick = tokio::time::interval(STATS_INTERVAL);
        stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut checker_open = true;
        loop {
            guard.beat();
            let deadline = self.next_bgp_deadline();
            tokio::select! {
                _ = stats_tick.tick(), if self.stats_dirty => self.publish_stats(),
                () = sleep_until_some(deadline), if deadline.is_some() => self.release_held(),
                _ = heartbeat.tick() => {
                    // The datapath's state is read, not told: follow it here.
                    self.update_announcements();
                    let now = std::time::Instant::now();
                    if let Some(kind) = self.fault.due(now) {
                        crate::supervise::test_fault_async(kind, "director").await;
                        break;
                    }
                    if let Some(kind) = self.checker_fault.due(now) {
                        self.checker_test_fault(kind);
                    }
                }
                event = self.events.recv(), if checker_open => match event {
                    Some(e) => self.on_health(e),
                    // The checker ended: its own supervision reports it (and why).
                    None => checker_open = false,
                },
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Stop(reply)) => {
                        self.withdraw_all().await;
                        self.omega_and_hooks().await;
                        self.stop();
                        let _ = reply.send(());
                        guard.finish();
                        return;
                    }
                    Some(c) => self.on_command(c).await,
                },
                e = recv_or_never(&mut vrrp_events) => match e {
                    Ok(e) if self.config.ipvs_sync.as_ref().is_some_and(|s| s.instance == e.instance) => {
                        self.update_sync_daemon();
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => self.update_sync_daemon(),
                    Err(broadcast::error::RecvError::Closed) => {
                        // No VRRP: nothing more to follow.
                        vrrp_events = None;
                    }
                },
            }
        }
        // An end nobody asked for: recorded before the workers this one owns end with it.
        drop(guard);
        self.stop();
    }

    fn stop(self) {
        // The kernel table stays: a restart adopts it without a gap.
        self.datapath.stop();
        if let Some(w) = self.bgp.worker {
            w.stop();
        }
    }

    /// At a requested stop: withdraws every route, waits `withdraw_delay` for the routers
    /// (only if something was announced), then removes the VIP addresses.
    async fn withdraw_all(&mut self) {
        if self.bgp.worker.is_none() {
            return;
        }
        let announced = self.bgp.verdicts.values().any(|(v, _)| v.announced);
        self.bgp.stopping = true;
        self.update_announcements();
        self.flush_announcer();
        if announced && let Some(s) = &self.bgp.settings {
            info!(
                "routes withdrawn; waiting {} for the routers before stopping",
                vigil_config::format_duration(s.withdraw_delay)
            );
            tokio::time::sleep(s.withdraw_delay).await;
        }
        self.bgp.release_addresses = true;
        self.update_announcements();
        self.flush_announcer();
    }

    fn flush_announcer(&self) {
        if let Some(w) = &self.bgp.worker {
            // Netlink answers at once; the bound only guards a stuck socket.
            tokio::task::block_in_place(|| w.flush(Duration::from_secs(3)));
        }
    }

    /// The earliest end of a held drain or failure, or of a lingering service.
    fn next_bgp_deadline(&self) -> Option<Instant> {
        let drains = self.bgp.drain_hold.values().copied();
        let failures = self.bgp.health_hold.values().copied();
        let lingering = self.bgp.lingering.iter().map(|l| l.until);
        drains.chain(failures).chain(lingering).min()
    }

    /// Held drains and lingering services whose time has come reach IPVS.
    fn release_held(&mut self) {
        let now = Instant::now();
        let mut released: Vec<String> = Vec::new();
        self.bgp.drain_hold.retain(|(vs, _), until| {
            let keep = *until > now;
            if !keep && !released.contains(vs) {
                released.push(vs.clone());
            }
            keep
        });
        let mut failed: Vec<(String, SocketAddr)> = Vec::new();
        self.bgp.health_hold.retain(|(vs, rs), until| {
            let keep = *until > now;
            if !keep {
                failed.push((vs.clone(), *rs));
            }
            keep
        });
        let config = self.config.clone();
        for name in released {
            if let Some(vs) = config.virtual_server(&name) {
                info!(virtual_server = %name, "withdraw delay over: drain applied");
                self.sync_service(&vs.key, &[]);
            }
        }
        let mut names: Vec<&String> = failed.iter().map(|(vs, _)| vs).collect();
        names.dedup();
        for name in names {
            if let Some(vs) = config.virtual_server(name) {
                info!(virtual_server = %name, "withdraw delay over: failures applied");
                // Still down: their connections may be flushed now.
                let down: Vec<SocketAddr> = failed
                    .iter()
                    .filter(|(v, rs)| v == name && self.known(&vs.key, *rs) == Known::Down)
                    .map(|&(_, rs)| rs)
                    .collect();
                self.sync_service(&vs.key, &down);
            }
        }
        let before = self.bgp.lingering.len();
        self.bgp.lingering.retain(|l| l.until > now);
        if self.bgp.lingering.len() != before {
            info!("withdraw delay over: removed virtual servers leave IPVS");
            self.sync_all();
        }
    }

    /// Whether the datapath (IPVS or nftables) holds what the director asked for; why
    /// not, if it does not.
    fn datapath_problem(&self) -> Option<String> {
        let st = self.datapath.status();
        if !st.available {
            // No error yet: the datapath thread has not connected (at start).
            Some(
                st.error
                    .unwrap_or_else(|| "the datapath is not connected yet".into()),
            )
        } else if st.pending_retries {
            Some("a datapath write waits for a retry".into())
        } else {
            None
        }
    }

    /// Decides every announced virtual server's route (`announce::decide`), hands the
    /// routes and addresses to the announcer thread when they changed, and publishes
    /// each change of verdict.
    fn update_announcements(&mut self) {
        if self.config.announce.is_some() {
            self.bgp.settings.clone_from(&self.config.announce);
        }
        let Some(settings) = self.bgp.settings.clone() else {
            return;
        };
        let config = self.config.clone();
        let all_drained = |vs: &VirtualServer| {
            !vs.real_servers.is_empty()
                && vs
                    .real_servers
                    .iter()
                    .all(|rs| self.drains.contains(&vs.name, rs.address))
        };
        let inputs: Vec<announce::Input<'_>> = config
            .virtual_servers
            .iter()
            .filter(|vs| vs.announce)
            .filter_map(|vs| match vs.key {
                ServiceKey::Address { address, .. } => Some(announce::Input {
                    name: &vs.name,
                    vip: address.ip(),
                    quorum: self.quorum.get(&vs.key).copied().flatten(),
                    drained: all_drained(vs),
                }),
                ServiceKey::Fwmark { .. } => None,
            })
            .collect();
        let datapath = self.datapath_problem();
        let verdicts = announce::decide(&inputs, datapath.as_deref(), self.bgp.stopping);
        let mut addresses: BTreeSet<IpAddr> = inputs.iter().map(|i| i.vip).collect();
        addresses.extend(self.bgp.lingering.iter().map(|l| l.vip));
        if self.bgp.release_addresses {
            addresses.clear();
        }
        let desired = Desired {
            settings,
            routes: announce::routes(&verdicts),
            addresses,
        };
        if self.bgp.sent.as_ref() != Some(&desired) {
            let worker = self
                .bgp
                .worker
                .get_or_insert_with(|| AnnounceWorker::start(&self.supervisor));
            worker.apply(desired.clone());
            self.bgp.sent = Some(desired);
        }
        let now = unix_now_ms();
        let mut changed = false;
        for v in verdicts {
            let before = self.bgp.verdicts.get(&v.name).map(|(b, _)| b);
            if before.is_some_and(|b| *b == v) {
                continue;
            }
            changed = true;
            // A change of reason alone is shown, not announced as an event.
            if before.is_none_or(|b| b.announced != v.announced) {
                info!(
                    virtual_server = %v.name,
                    address = %v.vip,
                    "{}: {}",
                    if v.announced { "announced" } else { "withdrawn" },
                    v.why
                );
                let _ = self.published.send(Event::Announce(AnnounceEvent {
                    virtual_server: v.name.clone(),
                    address: v.vip,
                    announced: v.announced,
                    reason: v.why.to_string(),
                    at_unix_ms: now,
                }));
            }
            self.bgp.verdicts.insert(v.name.clone(), (v, now));
        }
        if changed {
            self.stats_changed();
        }
    }

    /// At a reload: announced services the new file removes stay in IPVS for the
    /// withdraw delay (their route goes at once); verdicts of removed ones are dropped.
    fn linger_removed(&mut self, new: &Config) {
        let delay = self
            .bgp
            .settings
            .as_ref()
            .map_or(Duration::ZERO, |s| s.withdraw_delay);
        let old = self.config.clone();
        let until = Instant::now() + delay;
        for vs in old.virtual_servers.iter().filter(|v| v.announce) {
            let announced = self
                .bgp
                .verdicts
                .get(&vs.name)
                .is_some_and(|(v, _)| v.announced);
            let ServiceKey::Address { address, .. } = vs.key else {
                continue;
            };
            if announced && !new.virtual_servers.iter().any(|n| n.key == vs.key) {
                let desired = self.evaluation(vs).desired;
                self.bgp.lingering.push(Lingering {
                    key: vs.key,
                    desired,
                    vip: address.ip(),
                    until,
                });
                info!(virtual_server = %vs.name, "removed by the reload: withdrawn first");
                let _ = self.published.send(Event::Announce(AnnounceEvent {
                    virtual_server: vs.name.clone(),
                    address: address.ip(),
                    announced: false,
                    reason: "removed by a reload".into(),
                    at_unix_ms: unix_now_ms(),
                }));
            }
        }
        // Added back before its time: the new file's service takes its place.
        self.bgp
            .lingering
            .retain(|l| !new.virtual_servers.iter().any(|n| n.key == l.key));
        self.bgp.verdicts.retain(|name, _| {
            new.virtual_servers
                .iter()
                .any(|v| v.announce && v.name == *name)
        });
        self.bgp
            .drain_hold
            .retain(|(name, _), _| new.virtual_servers.iter().any(|v| v.name == *name));
        self.bgp
            .health_hold
            .retain(|(name, _), _| new.virtual_servers.iter().any(|v| v.name == *name));
    }

    /// At a requested stop: queues omega's down hooks, then lets every queued hook run
    /// (bounded by [`HOOKS_AT_STOP`]).
    async fn omega_and_hooks(&mut self) {
        let config = self.config.clone();
        for vs in &config.virtual_servers {
            if !vs.omega {
                continue;
            }
            let e = self.evaluation(vs);
            // Up as the table sees it: a pending server is its initial state.
            let up = |rs: &vigil_config::RealServer| match self.known(&vs.key, rs.address) {
                Known::Up => true,
                Known::Down => false,
                Known::Pending => director_hooks::initially_up(rs),
            };
            let previous = self.quorum.get(&vs.key).copied().flatten();
            for t in director_hooks::omega(vs, up, previous, e.counted) {
                self.transition(&t);
            }
        }
        let hooks = std::mem::take(&mut self.hooks);
        if !hooks.finish(HOOKS_AT_STOP).await {
            warn!(
                "hooks still queued after {}s at shutdown were dropped",
                HOOKS_AT_STOP.as_secs()
            );
        }
    }

    /// The one place quorum and real-server changes pass: their hooks run and their
    /// notify FIFO lines (keepalived's `VS ...` / `RS ...`) are written from here.
    fn transition(&mut self, t: &Transition<'_>) {
        self.fifos.lvs(&Self::lvs_line(t));
        self.hooks.run(t);
    }

    fn lvs_line(t: &Transition<'_>) -> String {
        match *t {
            Transition::Quorum { vs, up, .. } => {
                crate::notify_fifo::lvs_line(None, &lvs_name(vs), up)
            }
            Transition::RealServer { vs, rs, up, .. } => {
                let real = crate::notify_fifo::lvs_endpoint(rs.address, service_protocol(&vs.key));
                crate::notify_fifo::lvs_line(Some(&real), &lvs_name(vs), up)
            }
        }
    }

    #[cfg(debug_assertions)]
    fn checker_test_fault(&self, kind: FaultKind) {
        self.checker.test_fault(kind);
    }

    #[cfg(not(debug_assertions))]
    fn checker_test_fault(&self, _kind: FaultKind) {}

    fn known(&self, service: &ServiceKey, real: SocketAddr) -> Known {
        self.health
            .get(&(*service, real))
            .map_or(Known::Pending, |h| h.known)
    }

    /// What IPVS should hold for `vs` now. Read-only: between two changes (each of which
    /// goes through [`Director::evaluate`]) it gives the same answer as the last sync, so
    /// status and metrics use it without touching the quorum memory.
    fn evaluation(&self, vs: &VirtualServer) -> policy::Evaluation {
        self.evaluation_as(vs, true)
    }

    /// [`Director::evaluation`]; with `held` false, as if no failure were held back for
    /// the routers (the quorum the hooks and the announcement follow).
    fn evaluation_as(&self, vs: &VirtualServer, held: bool) -> policy::Evaluation {
        let p = table::policy(
            vs,
            |rs| {
                if held && self.bgp.health_hold.contains_key(&(vs.name.clone(), rs)) {
                    Known::Up
                } else {
                    self.known(&vs.key, rs)
                }
            },
            |rs| self.health.get(&(vs.key, rs)).and_then(|h| h.weight),
            // A drain held for the routers to converge is not in IPVS yet.
            |rs| {
                self.drains.contains(&vs.name, rs)
                    && !self.bgp.drain_hold.contains_key(&(vs.name.clone(), rs))
            },
        );
        let previous = self.quorum.get(&vs.key).copied().flatten();
        policy::evaluate(&p, previous)
    }

    /// [`Director::evaluation`], remembered as the quorum's hysteresis memory; a change of
    /// quorum is logged, told to VRRP tracking and published.
    fn evaluate(&mut self, vs: &VirtualServer) -> policy::Evaluation {
        let e = self.evaluation_as(vs, false);
        let before = self.quorum.insert(vs.key, e.quorum).flatten();
        if let Some(q) = e.quorum
            && before != Some(q)
        {
            if before.is_some() || !q {
                info!(virtual_server = %vs.name, "quorum {}", if q { "regained" } else { "lost" });
            }
            let reported = self.quorum_reported.insert(vs.key, q);
            // keepalived at start (ipwrapper.c, update_quorum_state(init)): `quorum_up`
            // and `VS .. UP` when the quorum is met, `quorum_down` and `VS .. DOWN` only
            // with a sorry server to add; its hook and FIFO line always go together.
            // After that every change of the decided quorum is one.
            let notify = match reported {
                None => q || vs.sorry_server.is_some(),
                Some(r) => r != q,
            };
            if notify {
                self.transition(&Transition::Quorum {
                    vs,
                    up: q,
                    counted: e.counted,
                    shutdown: false,
                });
            }
            let _ = self.notices.send(Notice::Quorum(vs.name.clone(), q));
            let _ = self.published.send(Event::Quorum(QuorumEvent {
                virtual_server: vs.name.clone(),
                has_quorum: q,
                at_unix_ms: unix_now_ms(),
            }));
        }
        if self
            .bgp
            .health_hold
            .keys()
            .any(|(name, _)| *name == vs.name)
        {
            // IPVS keeps the held failures until the routers moved the flows.
            return self.evaluation_as(vs, true);
        }
        e
    }

    /// Holds `failed` back from IPVS for the withdraw delay when they cost an announced
    /// virtual server its quorum (or join failures already held): the route goes at once,
    /// and flows the routers still send here meanwhile reach the servers they had.
    fn hold_failures(&mut self, vs: &VirtualServer, failed: &[SocketAddr]) {
        let delay = self
            .bgp
            .settings
            .as_ref()
            .map_or(Duration::ZERO, |s| s.withdraw_delay);
        if failed.is_empty() || !vs.announce || delay.is_zero() {
            return;
        }
        let held = self
            .bgp
            .health_hold
            .iter()
            .find(|((name, _), _)| *name == vs.name)
            .map(|(_, until)| *until);
        let announced = self
            .bgp
            .verdicts
            .get(&vs.name)
            .is_some_and(|(v, _)| v.announced);
        let until = match held {
            Some(until) => until,
            None if announced && self.evaluation_as(vs, false).quorum == Some(false) => {
                info!(
                    virtual_server = %vs.name,
                    "quorum lost: withdrawn first, IPVS follows in {}",
                    vigil_config::format_duration(delay)
                );
                Instant::now() + delay
            }
            None => return,
        };
        for &rs in failed {
            self.bgp.health_hold.insert((vs.name.clone(), rs), until);
        }
    }

    fn sync_all(&mut self) {
        let config = self.config.clone();
        let mut table = DesiredTable::new();
        for vs in &config.virtual_servers {
            let e = self.evaluate(vs);
            table.extend(table::group_desired(vs, e.desired));
        }
        for l in &self.bgp.lingering {
            table.insert(table::service_key(&l.key), l.desired.clone());
        }
        self.datapath.send(Job::SyncAll(table));
        self.stats_changed();
        self.update_announcements();
    }

    /// Syncs the virtual server `key`; `failed` are its real servers just found down,
    /// whose connections are flushed after (with `director.nftables_flush_on_failure`).
    fn sync_service(&mut self, key: &ServiceKey, failed: &[SocketAddr]) {
        let config = self.config.clone();
        if let Some(vs) = config.virtual_servers.iter().find(|v| v.key == *key) {
            self.hold_failures(vs, failed);
            let e = self.evaluate(vs);
            // A group's services follow its one evaluation (one check per real server).
            for (k, desired) in table::group_desired(vs, e.desired) {
                self.datapath.send(Job::SyncService(k, Some(desired)));
                if config.director.nftables_flush_on_failure {
                    // A held failure is flushed when the hold ends.
                    for &real in failed {
                        if !self.bgp.health_hold.contains_key(&(vs.name.clone(), real)) {
                            self.datapath.flush_connections(k, real);
                        }
                    }
                }
            }
            self.stats_changed();
            self.update_announcements();
        }
    }

    /// Records `e` and every other health change already queued, then syncs each
    /// virtual server they touch once: at startup thousands arrive together, and one
    /// sync per change would rebuild and diff a whole service each time.
    fn on_health(&mut self, e: HealthEvent) {
        let mut touched = vec![e.key.service];
        let mut failed: Vec<(ServiceKey, SocketAddr)> = Vec::new();
        let key = e.key;
        if self.record_health(e) {
            failed.push((key.service, key.real));
        }
        while let Ok(e) = self.events.try_recv() {
            if !touched.contains(&e.key.service) {
                touched.push(e.key.service);
            }
            let key = e.key;
            if self.record_health(e) {
                failed.push((key.service, key.real));
            }
        }
        for key in touched {
            let down: Vec<SocketAddr> = failed
                .iter()
                .filter(|(s, _)| *s == key)
                .map(|&(_, r)| r)
                .collect();
            self.sync_service(&key, &down);
        }
    }

    /// Records a health event; true when it takes a real server down.
    fn record_health(&mut self, e: HealthEvent) -> bool {
        let mut went_down = false;
        let known = match e.health {
            Health::Up => Known::Up,
            Health::Down => Known::Down,
        };
        let before = self.known(&e.key.service, e.key.real);
        let config = self.config.clone();
        if let Some(&(vi, ri)) = self.places.get(&(e.key.service, e.key.real))
            && let Some(vs) = config.virtual_servers.get(vi)
            && let Some(rs) = vs.real_servers.get(ri)
            && let Some(up) =
                director_hooks::real_server_change(before, director_hooks::initially_up(rs), known)
        {
            went_down = !up;
            self.transition(&Transition::RealServer {
                vs,
                rs,
                up,
                reason: &e.reason,
            });
        }
        match e.weight {
            Some(w) => info!(
                virtual_server = %e.virtual_server,
                real_server = %e.key.real,
                "real server {}, weight {w}: {}",
                e.health,
                e.reason
            ),
            None => info!(
                virtual_server = %e.virtual_server,
                real_server = %e.key.real,
                "real server {}: {}",
                e.health,
                e.reason
            ),
        }
        let _ = self.published.send(Event::Health(vigil_proto::HealthEvent {
            virtual_server: e.virtual_server.clone(),
            real_server: e.key.real,
            health: match e.health {
                Health::Up => vigil_proto::Health::Up,
                Health::Down => vigil_proto::Health::Down,
            },
            reason: e.reason.clone(),
            latency_us: u64::try_from(e.latency.as_micros()).unwrap_or(u64::MAX),
            at_unix_ms: unix_ms(e.at),
        }));
        self.health.insert(
            (e.key.service, e.key.real),
            HealthRecord {
                known,
                weight: e.weight,
                reason: e.reason,
                since_unix_ms: unix_ms(e.at),
            },
        );
        went_down
    }

    async fn on_command(&mut self, c: Command) {
        match c {
            Command::Reload(config) => {
                let config = self.dns.reload(config);
                self.apply_config(config);
            }
            Command::DnsResolved(r) => {
                let resolved = self
                    .dns
                    .resolved(&r.key, r.outcome, r.at_unix_ms, r.next_unix_ms);
                if let Some(e) = resolved.event {
                    if e.ok {
                        info!(virtual_server = %e.virtual_server, name = %e.name, added = ?e.added, removed = ?e.removed, "DNS {} {}: real servers changed", e.record, e.name);
                    } else {
                        warn!(virtual_server = %e.virtual_server, name = %e.name, "DNS {} {}: {}; keeping the last good set", e.record, e.name, e.error.as_deref().unwrap_or_default());
                    }
                    let _ = self.published.send(Event::DnsResolution(e));
                }
                if let Some(config) = resolved.config {
                    self.apply_config(config);
                }
                self.stats_changed();
            }
            Command::Drain {
                virtual_server,
                real_server,
                drain,
                reply,
            } => {
                let _ = reply.send(self.drain(&virtual_server, real_server.as_deref(), drain));
            }
            Command::Services(reply) => self.services(reply),
            Command::Stop(_) => {}
        }
    }

    /// A new config (a reload's, or DNS's servers added to it): the checker gets the new
    /// targets, what no longer exists is forgotten, the rest is kept (no re-rise), and
    /// IPVS gets the difference.
    fn apply_config(&mut self, config: Arc<Config>) {
        self.linger_removed(&config);
        if let Err(e) = self.checker.update(targets_from_config(&config)) {
            warn!("health checker: {e}");
        }
        // Forget what no longer exists, keep the rest (no re-rise).
        let keys: std::collections::HashSet<_> = config
            .virtual_servers
            .iter()
            .flat_map(|vs| vs.real_servers.iter().map(move |rs| (vs.key, rs.address)))
            .collect();
        self.health.retain(|k, _| keys.contains(k));
        self.quorum
            .retain(|k, _| config.virtual_servers.iter().any(|v| v.key == *k));
        self.places = director_hooks::index(&config);
        self.hooks.retain(&config, &self.places);
        self.quorum_reported
            .retain(|k, _| config.virtual_servers.iter().any(|v| v.key == *k));
        if let Err(e) = self.state_file.set_path(&config.director.state_file) {
            warn!(
                "cannot write the state file at its new place {}: {e}",
                config.director.state_file.display()
            );
        }
        self.config = config;
        self.update_timeouts();
        self.sync_all();
        self.update_sync_daemon();
        // The old config and the targets built for the checker are freed by now.
        crate::memory::release_soon();
    }

    /// Drains (or enables) one real server of a virtual server, or every one with
    /// `rs_text` `None`. A drain that leaves an announced virtual server drained whole
    /// withdraws its route at once and reaches IPVS `withdraw_delay` later, whether it
    /// came one server at a time or in one command.
    fn drain(
        &mut self,
        vs_name: &str,
        rs_text: Option<&str>,
        drain: bool,
    ) -> Result<DrainReply, ProtocolError> {
        let config = self.config.clone();
        let Some(vs) = config.virtual_server(vs_name) else {
            let names: Vec<&str> = config
                .virtual_servers
                .iter()
                .map(|v| v.name.as_str())
                .collect();
            return Err(ProtocolError::new(
                ErrorCode::NoSuchVirtualServer,
                format!(
                    "no virtual server \"{vs_name}\" (virtual servers: {})",
                    names.join(", ")
                ),
            ));
        };
        let targets: Vec<SocketAddr> = match rs_text {
            None => vs.real_servers.iter().map(|rs| rs.address).collect(),
            Some(rs_text) => {
                let rs = vs.real_servers.iter().find(|rs| {
                    rs.address.to_string() == rs_text || rs.address.ip().to_string() == rs_text
                });
                let Some(rs) = rs else {
                    let list: Vec<String> = vs
                        .real_servers
                        .iter()
                        .map(|r| r.address.to_string())
                        .collect();
                    return Err(ProtocolError::new(
                        ErrorCode::NoSuchRealServer,
                        format!(
                            "virtual server \"{vs_name}\" has no real server \"{rs_text}\" (real servers: {})",
                            list.join(", ")
                        ),
                    ));
                };
                vec![rs.address]
            }
        };
        let announced_before = self
            .bgp
            .verdicts
            .get(&vs.name)
            .is_some_and(|(v, _)| v.announced);
        let changed: Vec<SocketAddr> = targets
            .iter()
            .copied()
            .filter(|&rs| self.drains.set(&vs.name, rs, drain))
            .collect();
        let mut warnings = Vec::new();
        if targets.is_empty() {
            warnings.push(format!(
                "virtual server \"{}\" has no real servers: nothing to {}",
                vs.name,
                if drain { "drain" } else { "enable" }
            ));
        }
        let drained_whole = vs
            .real_servers
            .iter()
            .all(|r| self.drains.contains(&vs.name, r.address));
        if !drain {
            for rs in &targets {
                self.bgp.drain_hold.remove(&(vs.name.clone(), *rs));
            }
        } else if !changed.is_empty()
            && announce::hold_drain(announced_before, drained_whole)
            && let Some(s) = &config.announce
        {
            // Withdraw first; IPVS gets the drains once the routers moved the flows.
            let until = Instant::now() + s.withdraw_delay;
            for rs in &changed {
                self.bgp.drain_hold.insert((vs.name.clone(), *rs), until);
            }
            warnings.push(format!(
                "the virtual server is drained whole: its route is withdrawn now, the drain reaches IPVS in {}",
                vigil_config::format_duration(s.withdraw_delay)
            ));
        }
        if !changed.is_empty() {
            if let Err(e) = self.state_file.save_drains(&self.drains) {
                let w = format!(
                    "applied, but not saved to {} (it will not survive a restart): {e}",
                    self.state_file.path().display()
                );
                warn!("{w}");
                warnings.push(w);
            }
            for rs in &changed {
                info!(
                    virtual_server = %vs.name,
                    real_server = %rs,
                    "{} by the operator",
                    if drain { "drained" } else { "enabled" }
                );
            }
            self.sync_service(&vs.key, &[]);
            for rs in &changed {
                let _ = self.published.send(Event::Drain(DrainEvent {
                    virtual_server: vs.name.clone(),
                    real_server: *rs,
                    drained: drain,
                    at_unix_ms: unix_now_ms(),
                }));
            }
        }
        let whole = rs_text.is_none();
        Ok(DrainReply {
            virtual_server: vs.name.clone(),
            real_server: if whole {
                None
            } else {
                targets.first().copied()
            },
            real_servers: if whole { targets } else { Vec::new() },
            drained: drain,
            changed: !changed.is_empty(),
            warnings,
        })
    }

    fn update_sync_daemon(&mut self) {
        let Some(sync) = &self.config.ipvs_sync else {
            self.datapath.set_sync_daemon(None);
            return;
        };
        let state = match self.vrrp.status(&sync.instance).map(|s| s.state) {
            Some(State::Master) => SyncState::Master,
            _ => SyncState::Backup,
        };
        self.datapath
            .set_sync_daemon(Some(table::sync_daemon(sync, state)));
    }

    /// `[ipvs_timeouts]` to the kernel (start, reload); without it the kernel's stay.
    fn update_timeouts(&self) {
        if let Some(t) = &self.config.ipvs_timeouts {
            self.datapath.send(Job::Timeouts(table::timeouts(t)));
        }
    }

    /// Publishes the stats now if the last publication is old enough, else at the next
    /// tick.
    fn stats_changed(&mut self) {
        if self.stats_published_at.elapsed() >= STATS_INTERVAL {
            self.publish_stats();
        } else {
            self.stats_dirty = true;
        }
    }

    /// What metrics show of the director: per virtual server its quorum, per real server
    /// its health, wanted weight and drain (read-only, like `services`).
    fn publish_stats(&mut self) {
        let virtual_servers = self
            .config
            .virtual_servers
            .iter()
            .map(|vs| {
                let e = self.evaluation(vs);
                let real_servers = vs
                    .real_servers
                    .iter()
                    .map(|rs| RealServerStats {
                        address: rs.address,
                        up: match rs.checks.first() {
                            None => Some(true),
                            Some(_) => match self.known(&vs.key, rs.address) {
                                Known::Up => Some(true),
                                Known::Down => Some(false),
                                Known::Pending => None,
                            },
                        },
                        weight: e
                            .desired
                            .destinations
                            .get(&vigil_ipvs::DestinationKey(rs.address))
                            .map(|d| d.weight),
                        drained: self.drains.contains(&vs.name, rs.address),
                    })
                    .collect();
                VirtualServerStats {
                    announce: self
                        .bgp
                        .verdicts
                        .get(&vs.name)
                        .map(|(v, _)| (v.announced, v.why.code())),
                    name: vs.name.clone(),
                    quorum: e.quorum,
                    quorum_counted: e.counted,
                    quorum_needed: vs.quorum,
                    real_servers,
                }
            })
            .collect();
        self.view.publish(DirectorStats {
            virtual_servers,
            dns: self.dns.all_views(),
        });
        self.stats_dirty = false;
        self.stats_published_at = Instant::now();
    }

    /// The director's half of `services` (see [`crate::services`]): filled in one pass
    /// here, completed with the checker's results and the kernel's counters on a task of
    /// its own, so health changes never wait for it.
    fn services(&self, reply: oneshot::Sender<ServicesReply>) {
        let ipvs = self.datapath.status();
        let virtual_servers = self
            .config
            .virtual_servers
            .iter()
            .map(|vs| self.virtual_server_view(vs))
            .collect();
        let keys = self
            .config
            .virtual_servers
            .iter()
            .map(|vs| vs.key)
            .collect();
        let group_keys = self
            .config
            .virtual_servers
            .iter()
            .map(|vs| vs.group.clone())
            .collect();
        let view = ServicesView {
            keys,
            group_keys,
            reply: ServicesReply {
                virtual_servers,
                ipvs: IpvsView {
                    available: ipvs.available,
                    error: ipvs.error,
                    writes: ipvs.writes,
                    write_errors: ipvs.write_errors,
                    pending_retries: ipvs.pending_retries,
                    sync_daemon: ipvs.sync_daemon,
                },
            },
        };
        let checker = self.checker.clone();
        tokio::spawn(async move {
            let _ = reply.send(view.complete(checker).await);
            // The reply (several MiB at 10,000 real servers) is written and freed soon.
            crate::memory::trim_soon();
        });
    }

    fn virtual_server_view(&self, vs: &VirtualServer) -> VirtualServerView {
        let e = self.evaluation(vs);
        let real_servers = vs
            .real_servers
            .iter()
            .map(|rs| {
                let record = self.health.get(&(vs.key, rs.address));
                let health = match (rs.checks.first(), record.map(|r| r.known)) {
                    (None, _) => vigil_proto::Health::Unchecked,
                    (Some(_), Some(Known::Up)) => vigil_proto::Health::Up,
                    (Some(_), Some(Known::Down)) => vigil_proto::Health::Down,
                    (Some(_), _) => vigil_proto::Health::Pending,
                };
                RealServerView {
                    address: rs.address,
                    weight: rs.weight,
                    kernel_weight: None,
                    forwarding: rs.forwarding.name().into(),
                    health,
                    drained: self.drains.contains(&vs.name, rs.address),
                    reason: record.map(|r| r.reason.clone()),
                    since_unix_ms: record.map(|r| r.since_unix_ms),
                    last_latency_us: None,
                    last_failure: None,
                    last_failure_unix_ms: None,
                    active_conns: None,
                    inactive_conns: None,
                    check: crate::protocol::check_summary(rs.checks.first()),
                    dynamic_weight: record.and_then(|r| r.weight),
                    checks: rs
                        .checks
                        .iter()
                        .filter_map(|c| crate::protocol::check_summary(Some(c)))
                        .map(|summary| vigil_proto::CheckView {
                            summary,
                            ..Default::default()
                        })
                        .collect(),
                }
            })
            .collect();
        let (protocol, address, fwmark) = match vs.key {
            ServiceKey::Address { protocol, address } => (
                Some(protocol.name().into()),
                Some(address.to_string()),
                None,
            ),
            ServiceKey::Fwmark { mark, .. } => (None, None, Some(mark)),
        };
        VirtualServerView {
            name: vs.name.clone(),
            protocol,
            address,
            fwmark,
            family: match vs.key.family() {
                vigil_config::AddressFamily::Ipv4 => vigil_proto::Family::Ipv4,
                vigil_config::AddressFamily::Ipv6 => vigil_proto::Family::Ipv6,
            },
            scheduler: vs.scheduler.clone(),
            forwarding: vs.forwarding.name().into(),
            persistence: vs
                .persistence
                .map(|p| vigil_config::format_duration(p.timeout)),
            quorum: vs.quorum,
            has_quorum: e.quorum,
            quorum_by: match vs.quorum_by {
                vigil_config::QuorumBy::Servers => "servers".into(),
                vigil_config::QuorumBy::Weight => "weight".into(),
            },
            quorum_counted: e.counted,
            sorry_server: vs.sorry_server,
            sorry_active: e.sorry_active,
            in_kernel: None,
            real_servers,
            dns: self.dns.view(&vs.name),
            group: vs
                .group
                .iter()
                .map(|k| vigil_proto::GroupServiceView {
                    service: k.to_string(),
                    in_kernel: None,
                })
                .collect(),
            announce: self.announce_view(vs),
        }
    }

    fn announce_view(&self, vs: &VirtualServer) -> Option<AnnounceView> {
        let ServiceKey::Address { address, .. } = vs.key else {
            return None;
        };
        if !vs.announce {
            return None;
        }
        let verdict = self.bgp.verdicts.get(&vs.name);
        let mut reason = verdict.map_or_else(|| "pending".to_string(), |(v, _)| v.why.to_string());
        if let Some(w) = &self.bgp.worker
            && let Some(e) = w.error.lock().unwrap_or_else(|e| e.into_inner()).as_deref()
        {
            reason = format!("{reason}; routes not written: {e}");
        }
        Some(AnnounceView {
            address: address.ip(),
            announced: verdict.is_some_and(|(v, _)| v.announced),
            reason,
            since_unix_ms: verdict.map(|(_, since)| *since),
        })
    }
}

/// Sleeps until `at` (never called without one).
async fn sleep_until_some(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}

/// keepalived's name of a virtual server in its notify FIFO lines: a group is one line
/// under its name, `[NAME]:0` (keepalived's `format_vs` for `virtual_server group NAME`,
/// whose port is 0), not one per service.
fn lvs_name(vs: &VirtualServer) -> String {
    if vs.group.is_empty() {
        lvs_service(&vs.key)
    } else {
        format!("[{}]:0", vs.name)
    }
}

/// keepalived's name of a service in its notify FIFO lines: `[VIP]:tcp:80`, `FWM 1`.
fn lvs_service(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Address { address, .. } => {
            crate::notify_fifo::lvs_endpoint(*address, service_protocol(key))
        }
        ServiceKey::Fwmark { mark, .. } => format!("FWM {mark}"),
    }
}

/// The protocol word keepalived uses for a real server's address; a fwmark service's
/// real servers are written as TCP, as keepalived does.
fn service_protocol(key: &ServiceKey) -> &'static str {
    match key {
        ServiceKey::Address { protocol, .. } => protocol.name(),
        ServiceKey::Fwmark { .. } => "tcp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_writes_one_fifo_line_under_its_name_as_keepalived() {
        let text = "[director]\nname = \"t\"\n[[virtual_server]]\nname = \"g\"\naddresses = [\"192.0.2.1-2:80\"]\nreal_server = [{ address = \"10.0.0.1\" }]\n[[virtual_server]]\nname = \"one\"\naddress = \"192.0.2.9:80\"\nreal_server = [{ address = \"10.0.0.1\" }]\n";
        let c = vigil_config::parse(std::path::Path::new("t.toml"), text)
            .expect("valid")
            .config;
        let (g, one) = (&c.virtual_servers[0], &c.virtual_servers[1]);
        let quorum = |vs| Transition::Quorum {
            vs,
            up: true,
            counted: 1,
            shutdown: false,
        };
        // keepalived's format_vs: `[GROUP]:0` for `virtual_server group GROUP`.
        assert_eq!(Director::lvs_line(&quorum(g)), "VS [g]:0 UP\n");
        assert_eq!(
            Director::lvs_line(&quorum(one)),
            "VS [192.0.2.9]:tcp:80 UP\n"
        );
        let rs = Transition::RealServer {
            vs: g,
            rs: &g.real_servers[0],
            up: false,
            reason: "refused",
        };
        assert_eq!(Director::lvs_line(&rs), "RS [10.0.0.1]:tcp:80 [g]:0 DOWN\n");
    }
}
