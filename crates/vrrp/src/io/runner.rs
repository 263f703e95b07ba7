//! The per-instance runner: a tokio task that owns one sans-IO [`Instance`] and carries
//! out its actions on real sockets, addresses and hooks.
//!
//! Loop: receive → [`decode`] → [`Instance::handle`]; timers from
//! [`Instance::next_deadline`] → [`Instance::poll_timeout`]; control inputs (handover,
//! reclaim, tracked priority and faults, sync directives, stop) → `handle`. Every batch of
//! actions is carried out in order, then the [`InstanceStatus`] is published on a watch
//! channel and state changes go out as [`StateEvent`]s on a broadcast channel and to the
//! notify hook.
//!
//! A graceful stop of a master is make-before-break: it resigns (priority-0 advert) but
//! keeps answering for the virtual addresses until the new master's first advert is heard
//! (bounded by the slowest backup's Master_Down_Interval), then removes them and exits.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::drop_reason::DropReason;
use crate::fsm::{Action, ConfigError, Event, Instance, State, SyncDirective};
use crate::io::announce::Announcer;
use crate::io::iface;
use crate::io::notify::{Notifier, spawn_notifier};
use crate::io::socket::{AdvertSocket, Datagram};
use crate::io::status::{InstanceStatus, StateEvent, Transition};
use crate::packet::{Advertisement, Family, MULTICAST_V4, MULTICAST_V6, Version, VirtualAddresses};
use crate::receive::{IpFacts, ReceiveRules, decode, is_for_sibling};
use crate::runner_config::{
    ReloadChange, RunnerConfig, advert_too_big, fsm_config, receive_rules, reload_change,
};
use crate::vmac::{VmacConfig, VmacSetup, adverts_from_vmac, virtual_mac, vmac_setup};

/// Every virtual router this daemon runs, as (interface, family, VRID): how a runner
/// tells a sibling instance's adverts from unknown VRIDs ([`crate::is_for_sibling`],
/// RFC 5798 §7.1 "configured on the receiving interface"). One shared set; the daemon
/// replaces it whenever its instances change (before starting new ones).
#[derive(Debug, Clone, Default)]
pub struct LocalRouters(Arc<RwLock<HashSet<(String, Family, u8)>>>);

impl LocalRouters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole set.
    pub fn replace(&self, routers: impl IntoIterator<Item = (String, Family, u8)>) {
        let set = routers.into_iter().collect();
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = set;
    }

    /// Whether this daemon runs `vrid` for `family` on `interface`.
    pub fn contains(&self, interface: &str, family: Family, vrid: u8) -> bool {
        // A panicked writer can only have left a whole set behind.
        let set = self.0.read().unwrap_or_else(|e| e.into_inner());
        // Allocation-free lookup would need a borrowed key type; sets are tiny and this
        // runs only for adverts that are not ours.
        set.contains(&(interface.to_string(), family, vrid))
    }
}

/// Inputs from the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Planned failover: resign make-before-break and do not preempt until `Reclaim`.
    Handover,
    Reclaim,
    /// The tracked objects' summary ([`crate::summarize`]).
    Tracked {
        weight: i32,
        fault: bool,
    },
    Sync(SyncDirective),
    /// Stop the runner; `graceful` hands over make-before-break first.
    Stop {
        graceful: bool,
    },
    /// A reloaded configuration that [`reload_change`] found [`ReloadChange::InPlace`]:
    /// taken without a state change, a gratuitous announcement or an advert (unless the
    /// priority of a master changed). Anything else is refused with a warning.
    Reconfigure(Box<RunnerConfig>),
    /// Supervision tests (debug builds only): panic, end or hang the runner.
    #[cfg(debug_assertions)]
    #[doc(hidden)]
    TestFault(TestFault),
}

#[cfg(debug_assertions)]
use vigil_child::TestFault;

#[cfg(debug_assertions)]
async fn test_fault(fault: TestFault) {
    match fault {
        TestFault::Panic => panic!("test fault: VRRP runner panics"),
        TestFault::End => {}
        TestFault::Stall => std::future::pending().await,
    }
}

/// How often an idle runner still turns its loop, stamping its heartbeat.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Why a runner could not be started.
#[derive(Debug, Error)]
pub enum RunnerError {
    #[error("instance {name}: {source}")]
    Config {
        name: String,
        #[source]
        source: ConfigError,
    },
}

/// The daemon's handle on a running instance.
#[derive(Debug)]
pub struct RunnerHandle {
    pub control: mpsc::Sender<Control>,
    pub status: watch::Receiver<InstanceStatus>,
    /// Bumped on every turn of the runner's loop, at least every [`HEARTBEAT`].
    pub beats: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl RunnerHandle {
    /// Asks the runner to stop and waits for it to finish.
    pub async fn stop(self, graceful: bool) {
        // A runner that already ended has dropped its receiver; nothing to ask then.
        let _ = self.control.send(Control::Stop { graceful }).await;
        let _ = self.task.await;
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Why the runner's task ended (`returned`, `panicked: MESSAGE`), once it has; `None`
    /// while it runs. Answers once: a task is not joined twice.
    pub fn ended(&mut self) -> Option<String> {
        use std::future::Future;
        if !self.task.is_finished() {
            return None;
        }
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match std::pin::Pin::new(&mut self.task).poll(&mut cx) {
            std::task::Poll::Ready(Ok(())) => Some("returned".to_string()),
            std::task::Poll::Ready(Err(e)) if e.is_panic() => {
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(no message)".to_string());
                Some(format!("panicked: {message}"))
            }
            std::task::Poll::Ready(Err(e)) => Some(e.to_string()),
            std::task::Poll::Pending => None,
        }
    }
}

/// Starts a runner for `config` on the current tokio runtime.
/// `local` is the daemon's set of virtual routers (this one included), shared by all its
/// runners.
pub fn spawn(
    config: RunnerConfig,
    events: broadcast::Sender<StateEvent>,
    local: LocalRouters,
) -> Result<RunnerHandle, RunnerError> {
    let primary_guess = config.unicast_source.unwrap_or(match config.family {
        Family::Ipv4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        Family::Ipv6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    });
    // Validate now so a bad instance fails at load, not in the task.
    Instance::new(fsm_config(&config, primary_guess)).map_err(|source| RunnerError::Config {
        name: config.name.clone(),
        source,
    })?;
    let status = InstanceStatus {
        name: config.name.clone(),
        state: State::Initialize,
        priority: config.priority,
        master: None,
        primary_address: None,
        holds_vips: false,
        standing_down: false,
        own_fault: false,
        last_transition: None,
        transitions: 0,
        adverts_sent: 0,
        adverts_received: 0,
        replies_limited: 0,
        drops: BTreeMap::new(),
        send_errors: 0,
        error: None,
    };
    let (status_tx, status_rx) = watch::channel(status.clone());
    let (control_tx, control_rx) = mpsc::channel(64);
    let notify = (!config.notify.is_empty()).then(|| spawn_notifier(config.name.clone()));
    let beats = Arc::new(AtomicU64::new(0));
    let runner = Runner {
        beats: beats.clone(),
        config,
        status,
        status_tx,
        events,
        local,
        notify,
        tracked_weight: 0,
        tracked_fault: false,
        garp_left: 0,
        next_garp: None,
        next_refresh: None,
        drain_until: None,
        stopping: false,
    };
    let task = tokio::spawn(runner.run(control_rx));
    Ok(RunnerHandle {
        control: control_tx,
        status: status_rx,
        beats,
        task,
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Marks the status error of adverts the link refuses as too big.
const TOO_BIG: &str = "advert too big for the link";

/// What the runner holds once the interface is resolved.
struct Io {
    /// Where the virtual addresses go: the virtual MAC interface with `use_vmac`, else
    /// the instance's interface.
    ifindex: u32,
    /// The instance's interface (adverts are received there).
    base_ifindex: u32,
    /// The virtual MAC interface this runner created or adopted (deleted at stop).
    vmac_index: Option<u32>,
    primary: IpAddr,
    /// Adverts are sent and received here: on the virtual MAC interface with
    /// `use_vmac` (IPv4 multicast, [`adverts_from_vmac`]), else on the base interface.
    socket: AdvertSocket,
    netlink: vigil_netlink::Route,
    announcer: Option<Announcer>,
    destinations: Vec<IpAddr>,
    addresses: VirtualAddresses,
    rules: ReceiveRules,
    instance: Instance,
}

enum Wake {
    Control(Option<Control>),
    Datagram(io::Result<Datagram>),
    Timer,
    /// Nothing to do: only the heartbeat is due.
    Beat,
}

struct Runner {
    beats: Arc<AtomicU64>,
    config: RunnerConfig,
    status: InstanceStatus,
    status_tx: watch::Sender<InstanceStatus>,
    events: broadcast::Sender<StateEvent>,
    local: LocalRouters,
    /// The hook runner, once a hook was configured (kept across reloads, so hooks stay
    /// in order when the hook changes).
    notify: Option<Notifier>,
    tracked_weight: i32,
    tracked_fault: bool,
    garp_left: u32,
    next_garp: Option<Instant>,
    next_refresh: Option<Instant>,
    /// A resigned master that heard the new master removes its addresses at this instant
    /// (see [`DRAIN`]).
    drain_until: Option<Instant>,
    stopping: bool,
}

/// How long a node that handed over keeps its addresses after hearing the new master.
/// The new master has already announced itself (its gratuitous ARP / NA goes out before
/// its first advert), but packets a client sent the old way just before may still be in
/// flight; dropping the address on the spot would drop them. Shorter than the default
/// gratuitous burst (5 x 10 ms), so should the old node answer an ARP request in this
/// window, a later gratuitous ARP of the new master still overrides it.
pub const DRAIN: Duration = Duration::from_millis(20);

/// How long setup waits before trying a missing interface or address again.
const SETUP_RETRY: Duration = Duration::from_secs(1);

impl Runner {
    async fn run(mut self, mut control: mpsc::Receiver<Control>) {
        let Some(mut io) = self.setup_until_ready(&mut control).await else {
            return;
        };
        let vips_present = self.vips_present(&mut io);
        if vips_present {
            info!(instance = %self.config.name, "virtual addresses already present: keeping them until another master is heard");
        } else {
            // Left by a run that ended without removing them (a crash): this node holds
            // nothing, so it routes nothing either.
            remove_routes(
                &mut io,
                &self.config.name,
                &self.config.routes,
                &self.config.rules,
            );
        }
        let actions = self.startup(&mut io, vips_present);
        self.apply(&mut io, actions).await;

        let mut buf = vec![0u8; 65536];
        let mut control_open = true;
        loop {
            self.beats.fetch_add(1, Ordering::Relaxed);
            let deadline = [
                io.instance.next_deadline(),
                self.next_garp,
                self.next_refresh,
                self.drain_until,
            ]
            .into_iter()
            .flatten()
            .min();
            // Timers before the socket: a flood of packets must not hold back our own
            // adverts (a backup would take over). A closed control channel is not
            // polled again (it would be ready forever).
            let wake = tokio::select! {
                biased;
                c = control.recv(), if control_open => Wake::Control(c),
                () = sleep_until(deadline) => Wake::Timer,
                d = io.socket.recv(&mut buf) => Wake::Datagram(d),
                () = tokio::time::sleep(HEARTBEAT) => Wake::Beat,
            };
            match wake {
                // The daemon dropped its handle: stop as if asked to, gracefully.
                Wake::Control(None) => {
                    control_open = false;
                    self.on_control(&mut io, Control::Stop { graceful: true })
                        .await
                }
                #[cfg(debug_assertions)]
                Wake::Control(Some(Control::TestFault(fault))) => {
                    test_fault(fault).await;
                    return;
                }
                Wake::Control(Some(c)) => self.on_control(&mut io, c).await,
                Wake::Beat => {}
                Wake::Datagram(d) => self.on_datagram(&mut io, d, &buf).await,
                Wake::Timer => self.on_timer(&mut io).await,
            }
            if self.stopping && !io.instance.holds_vips() && self.drain_until.is_none() {
                let actions = io.instance.handle(Event::Shutdown, Instant::now());
                self.apply(&mut io, actions).await;
                if let Some(index) = io.vmac_index
                    && let Err(e) = io.netlink.del_link(index)
                {
                    warn!(instance = %self.config.name, "cannot remove the virtual MAC interface: {e}");
                }
                info!(instance = %self.config.name, "stopped");
                if let Some(notify) = self.notify.take() {
                    notify.finish().await;
                }
                return;
            }
        }
    }

    /// RFC 5798 §6.4.1 Startup of a fresh machine, after the tracked inputs known so far
    /// (they may have arrived during setup).
    fn startup(&mut self, io: &mut Io, vips_present: bool) -> Vec<Action> {
        let now = Instant::now();
        let mut actions = Vec::new();
        if self.tracked_weight != 0 {
            actions.extend(io.instance.handle(
                Event::PriorityChanged {
                    tracked_weight: self.tracked_weight,
                },
                now,
            ));
        }
        if self.tracked_fault {
            actions.extend(io.instance.handle(Event::FaultDetected, now));
        }
        actions.extend(io.instance.handle(Event::Startup { vips_present }, now));
        actions
    }

    /// When the interface came back under a new index (deleted and re-created, e.g. a
    /// VLAN or bond rebuilt by a network restart), sockets bound to the old one are
    /// dead: open new ones and start the election over. `true` when that happened.
    async fn reopen_if_recreated(&mut self, io: &mut Io) -> bool {
        let Ok(index) = iface::index(&self.config.interface) else {
            return false;
        };
        if index == io.base_ifindex {
            return false;
        }
        match self.setup() {
            Ok(mut fresh) => {
                info!(
                    instance = %self.config.name,
                    "interface {} was re-created (index {} -> {index}): sockets reopened",
                    self.config.interface,
                    io.base_ifindex
                );
                std::mem::swap(io, &mut fresh);
                self.status.primary_address = Some(io.primary);
                // The old machine is in Fault and holds no addresses; it is dropped.
                let present = self.vips_present(io);
                let actions = self.startup(io, present);
                self.apply(io, actions).await;
                true
            }
            Err(e) => {
                warn!(instance = %self.config.name, "interface {} re-created but not usable yet: {e}", self.config.interface);
                false
            }
        }
    }

    /// Resolves the interface and opens the sockets, retrying every second while the
    /// interface (or a usable address on it) is missing. `None`: stopped meanwhile.
    async fn setup_until_ready(&mut self, control: &mut mpsc::Receiver<Control>) -> Option<Io> {
        loop {
            self.beats.fetch_add(1, Ordering::Relaxed);
            match self.setup() {
                Ok(io) => {
                    if self.status.error.take().is_some() {
                        info!(instance = %self.config.name, "interface {} ready", self.config.interface);
                    }
                    self.status.primary_address = Some(io.primary);
                    self.publish();
                    return Some(io);
                }
                Err(e) => {
                    if self.status.error.as_deref() != Some(e.as_str()) {
                        warn!(instance = %self.config.name, "cannot run yet (retrying every {SETUP_RETRY:?}): {e}");
                        self.status.error = Some(e);
                        self.publish();
                    }
                }
            }
            let deadline = tokio::time::Instant::now() + SETUP_RETRY;
            loop {
                tokio::select! {
                    c = control.recv() => match c {
                        None | Some(Control::Stop { .. }) => return None,
                        Some(Control::Tracked { weight, fault }) => {
                            self.tracked_weight = weight;
                            self.tracked_fault = fault;
                        }
                        // Nothing runs yet: the next setup simply uses it.
                        Some(Control::Reconfigure(config)) => self.take_config(*config),
                        #[cfg(debug_assertions)]
                        Some(Control::TestFault(fault)) => {
                            test_fault(fault).await;
                            return None;
                        }
                        Some(_) => {}
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                }
            }
        }
    }

    fn setup(&self) -> Result<Io, String> {
        let c = &self.config;
        let base_ifindex =
            iface::index(&c.interface).map_err(|e| format!("interface {}: {e}", c.interface))?;
        let mut netlink = vigil_netlink::Route::open().map_err(|e| format!("netlink: {e}"))?;
        let vmac_mac = virtual_mac(c.family, c.vrid);
        let vmac_index = match &c.vmac {
            Some(v) => Some(ensure_vmac(
                &mut netlink,
                base_ifindex,
                v,
                vmac_mac,
                &c.name,
            )?),
            None => None,
        };
        let ifindex = vmac_index.unwrap_or(base_ifindex);
        // The advert must fit the link (adverts are not fragmented): otherwise the
        // instance would run without ever being heard, and two masters would follow.
        let mtu = iface::mtu(&c.interface).map_err(|e| format!("MTU of {}: {e}", c.interface))?;
        if let Some(e) = advert_too_big(c, mtu) {
            return Err(e);
        }
        let vip_addrs: Vec<IpAddr> = c.vips.iter().map(|(a, _)| *a).collect();
        // Excluded addresses are ours while master too: never advertise from them.
        let held_addrs: Vec<IpAddr> = c.held().map(|(a, _)| *a).collect();
        let primary = match c.unicast_source {
            Some(source) => source,
            None => {
                let present = netlink
                    .addresses(base_ifindex)
                    .map_err(|e| format!("addresses of {}: {e}", c.interface))?;
                // IPv6 unicast to peers named by global address: advertise from a
                // global address too, or they would not know us (see
                // iface::global_ipv6_address).
                let routed_peers = c
                    .unicast_peers
                    .iter()
                    .any(|p| matches!(p, IpAddr::V6(v6) if !v6.is_unicast_link_local()));
                let global = if routed_peers {
                    iface::global_ipv6_address(&present, &held_addrs)
                } else {
                    None
                };
                global
                    .or_else(|| iface::primary_address(&present, c.family, &held_addrs))
                    .ok_or_else(|| {
                        format!(
                            "no usable {} address on {} to advertise from",
                            match c.family {
                                Family::Ipv4 => "IPv4",
                                Family::Ipv6 => "IPv6 link-local",
                            },
                            c.interface
                        )
                    })?
            }
        };
        let multicast = c.unicast_peers.is_empty();
        // With use_vmac (IPv4 multicast), adverts are sent and heard on the macvlan: the
        // macvlan driver hands a multicast frame whose source is its virtual MAC (a
        // peer's advert) to the macvlan alone, taking it for its own frame reflected.
        let socket = match (&c.vmac, vmac_index) {
            (Some(v), Some(index)) if adverts_from_vmac(c.vmac.as_ref(), c.family, !multicast) => {
                AdvertSocket::open(c.family, &v.name, index, multicast)
                    .map_err(|e| format!("advert socket on {}: {e}", v.name))?
            }
            _ => AdvertSocket::open(c.family, &c.interface, base_ifindex, multicast)
                .map_err(|e| format!("advert socket on {}: {e}", c.interface))?,
        };
        // Announcements carry the virtual MAC with use_vmac: ARP from the macvlan; NAs
        // (which need a link-local source the macvlan lacks) from the base interface,
        // naming the virtual MAC as the target's link-layer address.
        let announce_on = match (&c.vmac, vmac_index) {
            (Some(v), Some(index)) if c.family == Family::Ipv4 => {
                Ok((v.name.as_str(), index, vmac_mac))
            }
            (Some(_), Some(_)) => Ok((c.interface.as_str(), base_ifindex, vmac_mac)),
            // Interfaces without an Ethernet address (e.g. tun) cannot be announced on;
            // the protocol still runs.
            _ => iface::mac(&c.interface).map(|mac| (c.interface.as_str(), base_ifindex, mac)),
        };
        let announcer = announce_on
            .and_then(|(name, index, mac)| {
                Announcer::open(
                    name,
                    index,
                    mac,
                    c.family == Family::Ipv4,
                    c.family == Family::Ipv6,
                )
            })
            .map_err(|e| warn!(instance = %c.name, "gratuitous ARP/NA disabled: {e}"))
            .ok();
        let destinations = if multicast {
            vec![match c.family {
                Family::Ipv4 => IpAddr::V4(MULTICAST_V4),
                Family::Ipv6 => IpAddr::V6(MULTICAST_V6),
            }]
        } else {
            c.unicast_peers.clone()
        };
        let addresses = VirtualAddresses::from_ip_addrs(c.family, &vip_addrs)
            .ok_or_else(|| "virtual addresses of mixed families".to_string())?;
        let instance = Instance::new(fsm_config(c, primary)).map_err(|e| e.to_string())?;
        Ok(Io {
            ifindex,
            base_ifindex,
            vmac_index,
            primary,
            socket,
            netlink,
            announcer,
            destinations,
            addresses,
            rules: receive_rules(c),
            instance,
        })
    }

    fn vips_present(&self, io: &mut Io) -> bool {
        match io.netlink.addresses(io.ifindex) {
            Ok(present) => self
                .config
                .held()
                .any(|(vip, _)| present.iter().any(|p| p.address == *vip)),
            Err(e) => {
                warn!(instance = %self.config.name, "cannot list addresses of {}: {e}", self.config.interface);
                false
            }
        }
    }

    async fn on_control(&mut self, io: &mut Io, control: Control) {
        let now = Instant::now();
        let actions = match control {
            Control::Handover => {
                info!(instance = %self.config.name, "handover requested");
                io.instance.handle(Event::Handover, now)
            }
            Control::Reclaim => io.instance.handle(Event::Reclaim, now),
            Control::Tracked { weight, fault } => {
                if self.tracked_fault && !fault {
                    // A fresh machine would start with the new inputs; otherwise they are
                    // fed to the running one below.
                    let before = (self.tracked_weight, self.tracked_fault);
                    (self.tracked_weight, self.tracked_fault) = (weight, fault);
                    if self.reopen_if_recreated(io).await {
                        return;
                    }
                    (self.tracked_weight, self.tracked_fault) = before;
                }
                let mut actions = Vec::new();
                if weight != self.tracked_weight {
                    self.tracked_weight = weight;
                    actions.extend(io.instance.handle(
                        Event::PriorityChanged {
                            tracked_weight: weight,
                        },
                        now,
                    ));
                }
                if fault != self.tracked_fault {
                    self.tracked_fault = fault;
                    let event = if fault {
                        Event::FaultDetected
                    } else {
                        Event::FaultCleared
                    };
                    actions.extend(io.instance.handle(event, now));
                }
                actions
            }
            Control::Sync(directive) => io.instance.handle(Event::Sync(directive), now),
            Control::Reconfigure(config) => self.reconfigure(io, *config, now),
            // Handled by the loop before it gets here.
            #[cfg(debug_assertions)]
            Control::TestFault(_) => Vec::new(),
            Control::Stop { graceful } => {
                self.stopping = true;
                if graceful && io.instance.state() == State::Master {
                    info!(instance = %self.config.name, "stopping: handing over make-before-break");
                    io.instance.handle(Event::Handover, now)
                } else {
                    io.instance.handle(Event::Shutdown, now)
                }
            }
        };
        self.apply(io, actions).await;
    }

    /// [`Control::Reconfigure`] on a running instance: the machine takes the new
    /// priority and preemption settings, the shell the announcement schedule and hook.
    /// Nothing is announced here: the addresses are where they were.
    fn reconfigure(&mut self, io: &mut Io, config: RunnerConfig, now: Instant) -> Vec<Action> {
        match reload_change(&self.config, &config) {
            ReloadChange::InPlace => {}
            ReloadChange::Unchanged => return Vec::new(),
            ReloadChange::Restart => {
                warn!(instance = %self.config.name, "configuration change needs a restart: ignored");
                return Vec::new();
            }
        }
        let actions = match io.instance.reconfigure(
            config.priority,
            config.preempt,
            config.preempt_delay,
            now,
        ) {
            Ok(actions) => actions,
            Err(e) => {
                warn!(instance = %self.config.name, "configuration change refused: {e}");
                return Vec::new();
            }
        };
        if config.garp != self.config.garp {
            // A burst in progress goes on at the new pace, never longer than the new
            // repeat; a running refresh is rescheduled (none is sent now).
            self.garp_left = self.garp_left.min(config.garp.repeat.saturating_sub(1));
            if self.garp_left == 0 {
                self.next_garp = None;
            }
            if config.garp.refresh != self.config.garp.refresh
                && (self.next_refresh.is_some() || io.instance.state() == State::Master)
            {
                self.next_refresh = config.garp.refresh.map(|r| now + r);
            }
        }
        if config.vips != self.config.vips || config.vips_excluded != self.config.vips_excluded {
            self.move_vips(io, &config);
        }
        if (config.routes != self.config.routes || config.rules != self.config.rules)
            && (io.instance.holds_vips() || self.drain_until.is_some())
        {
            fn gone<T: Clone + PartialEq>(old: &[T], new: &[T]) -> Vec<T> {
                old.iter().filter(|r| !new.contains(r)).cloned().collect()
            }
            remove_routes(
                io,
                &config.name,
                &gone(&self.config.routes, &config.routes),
                &gone(&self.config.rules, &config.rules),
            );
            add_routes(io, &config.name, &config.routes, &config.rules);
        }
        io.rules = receive_rules(&config);
        info!(instance = %config.name, "configuration changed: applied in place, state {} kept", io.instance.state().as_str());
        self.take_config(config);
        actions
    }

    /// A changed address list on a running instance: the adverts carry the new list from
    /// the next one on (RFC 5798 §5.2.9); addresses held here are added or removed one by
    /// one, and only the added ones are announced, once (they are new on the link; the
    /// others' neighbours are still right). A backup finishing a handover gives removed
    /// addresses up at once and never takes added ones.
    fn move_vips(&mut self, io: &mut Io, config: &RunnerConfig) {
        let addrs: Vec<IpAddr> = config.vips.iter().map(|(a, _)| *a).collect();
        if let Some(addresses) = VirtualAddresses::from_ip_addrs(config.family, &addrs) {
            io.addresses = addresses;
        }
        let holding = io.instance.holds_vips();
        let old: Vec<(IpAddr, u8)> = self.config.held().copied().collect();
        let new: Vec<(IpAddr, u8)> = config.held().copied().collect();
        if holding || self.drain_until.is_some() {
            for (vip, prefix) in old.iter().filter(|v| !new.contains(v)) {
                if let Err(e) = io.netlink.del_address(io.ifindex, *vip, *prefix) {
                    warn!(instance = %config.name, "cannot remove {vip}/{prefix}: {e}");
                }
            }
        }
        if holding {
            let added: Vec<(IpAddr, u8)> =
                new.iter().filter(|v| !old.contains(v)).copied().collect();
            for (vip, prefix) in &added {
                if let Err(e) = io.netlink.add_address(io.ifindex, *vip, *prefix) {
                    warn!(instance = %config.name, "cannot add {vip}/{prefix}: {e}");
                }
            }
            if io.instance.state() == State::Master {
                self.announce_these(io, added.iter().map(|(vip, _)| *vip));
            }
        }
    }

    /// Adopts `config` as this runner's (in-place fields only). A changed hook runs from
    /// the next transition on, after the hooks already queued, on the same notifier.
    fn take_config(&mut self, config: RunnerConfig) {
        if !config.notify.is_empty() && self.notify.is_none() {
            self.notify = Some(spawn_notifier(config.name.clone()));
        }
        self.config = config;
    }

    async fn on_datagram(&mut self, io: &mut Io, datagram: io::Result<Datagram>, buf: &[u8]) {
        let datagram = match datagram {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                self.count_drop("malformed_ip");
                return;
            }
            Err(e) => {
                debug!(instance = %self.config.name, "receive failed: {e}");
                // A socket that keeps failing must not spin the runtime.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return;
            }
        };
        let message = buf.get(datagram.payload.clone()).unwrap_or_default();
        let facts = datagram.facts;
        // Our own adverts (a unicast peer list naming ourselves, a looped-back packet)
        // are not another router.
        if facts.source == io.primary {
            return;
        }
        // RFC 5798 §7.1: the VRID is checked against those configured on the receiving
        // interface. Every raw socket on the interface sees every advert, so a sibling
        // instance's adverts reach this one too: they are the sibling's to check and
        // count (before the unicast peer check, which would count them as well).
        let (interface, family) = (&self.config.interface, self.config.family);
        if is_for_sibling(message, &io.rules, |vrid| {
            self.local.contains(interface, family, vrid)
        }) {
            return;
        }
        // The peer allow-list and the TTL rule are in `io.rules` (see receive_rules).
        let unicast = !self.config.unicast_peers.is_empty();
        let mut result = decode(message, &facts, &io.rules);
        if unicast
            && result == Err(DropReason::Checksum)
            && self.config.version == Version::V3
            && self.config.family == Family::Ipv4
        {
            // Older keepalived (unicast_chksum_compat) sums the multicast group into the
            // VRRPv3/IPv4 pseudo-header even when sending unicast.
            let compat = IpFacts {
                destination: IpAddr::V4(MULTICAST_V4),
                ..facts
            };
            if let Ok(received) = decode(message, &compat, &io.rules) {
                result = Ok(received);
            }
        }
        match result {
            Ok(received) => {
                self.status.adverts_received += 1;
                if received.address_list_matches == Some(false) {
                    debug!(instance = %self.config.name, from = %received.source, "advert's address list differs from ours");
                }
                if io.instance.state() != State::Master {
                    self.status.master = (received.advert.priority > 0).then_some(received.source);
                }
                let limited_before = io.instance.replies_limited();
                let actions = io
                    .instance
                    .handle(Event::AdvertReceived((&received).into()), Instant::now());
                // Counted here, not read off the machine: a re-created interface starts a
                // fresh one.
                self.status.replies_limited +=
                    io.instance.replies_limited().saturating_sub(limited_before);
                self.apply(io, actions).await;
            }
            Err(reason) => {
                debug!(instance = %self.config.name, from = %facts.source, "dropped advert: {reason}");
                self.count_drop(reason.as_str());
            }
        }
    }

    fn count_drop(&mut self, reason: &'static str) {
        *self.status.drops.entry(reason).or_insert(0) += 1;
        self.publish();
    }

    async fn on_timer(&mut self, io: &mut Io) {
        let now = Instant::now();
        let mut actions = Vec::new();
        if io.instance.next_deadline().is_some_and(|d| d <= now) {
            actions = io.instance.poll_timeout(now);
        }
        if self.next_garp.is_some_and(|d| d <= now) {
            self.announce(io);
            self.garp_left = self.garp_left.saturating_sub(1);
            self.next_garp = (self.garp_left > 0).then(|| now + self.config.garp.interval);
        }
        if self.next_refresh.is_some_and(|d| d <= now) {
            self.announce(io);
            self.next_refresh = self.config.garp.refresh.map(|r| now + r);
        }
        if self.drain_until.is_some_and(|d| d <= now) {
            self.drain_until = None;
            // Master again meanwhile (e.g. the new master vanished): keep them.
            if !io.instance.holds_vips() {
                self.remove_vips(io);
            }
        }
        self.apply(io, actions).await;
    }

    fn announce(&self, io: &Io) {
        self.announce_these(io, self.config.held().map(|(vip, _)| *vip));
    }

    fn announce_these(&self, io: &Io, vips: impl Iterator<Item = IpAddr>) {
        let Some(announcer) = &io.announcer else {
            return;
        };
        for vip in vips {
            if let Err(e) = announcer.announce(vip) {
                debug!(instance = %self.config.name, "announcing {vip} failed: {e}");
            }
        }
    }

    async fn send_advert(&mut self, io: &mut Io, priority: u8) {
        let c = &self.config;
        let advert = match Advertisement::new(
            c.version,
            c.vrid,
            priority,
            c.advert_interval,
            c.auth,
            io.addresses.clone(),
        ) {
            Ok(a) => a,
            Err(e) => {
                warn!(instance = %c.name, "cannot build advert: {e}");
                return;
            }
        };
        for destination in io.destinations.clone() {
            let sent = match advert.encode(io.primary, destination) {
                Ok(message) => io.socket.send(io.primary, destination, &message).await,
                Err(e) => Err(io::Error::other(e)),
            };
            match sent {
                Ok(()) => {
                    self.status.adverts_sent += 1;
                    if self
                        .status
                        .error
                        .as_deref()
                        .is_some_and(|e| e.contains(TOO_BIG))
                    {
                        info!(instance = %self.config.name, "adverts fit the link again");
                        self.status.error = None;
                    }
                }
                // The MTU shrank under a running instance: peers no longer hear it. Said
                // loudly once (and in the status); the instance keeps its state.
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    self.status.send_errors += 1;
                    if self
                        .status
                        .error
                        .as_deref()
                        .is_none_or(|e| !e.contains(TOO_BIG))
                    {
                        let mtu = iface::mtu(&self.config.interface).unwrap_or(0);
                        let why = advert_too_big(&self.config, mtu).unwrap_or_else(|| {
                            format!(
                                "instance {}: advert to {destination} {TOO_BIG}: {e}",
                                self.config.name
                            )
                        });
                        error!(instance = %self.config.name, "{why}");
                        self.status.error = Some(format!("{TOO_BIG}: {why}"));
                    }
                }
                Err(e) => {
                    // A pulled cable makes every send fail: count, log quietly.
                    self.status.send_errors += 1;
                    debug!(instance = %self.config.name, to = %destination, "advert not sent: {e}");
                }
            }
        }
    }

    fn remove_vips(&mut self, io: &mut Io) {
        remove_routes(
            io,
            &self.config.name,
            &self.config.routes,
            &self.config.rules,
        );
        for (vip, prefix) in self.config.held() {
            if let Err(e) = io.netlink.del_address(io.ifindex, *vip, *prefix) {
                warn!(instance = %self.config.name, "cannot remove {vip}/{prefix}: {e}");
            }
        }
        self.next_garp = None;
        self.next_refresh = None;
    }

    async fn apply(&mut self, io: &mut Io, actions: Vec<Action>) {
        // A removal without a state change is a backup letting go of addresses it held
        // on (after a handover, or found at startup) because another master was heard:
        // that one is drained, every other removal is immediate.
        let drained = !actions
            .iter()
            .any(|a| matches!(a, Action::StateChanged { .. }))
            && io.instance.state() == State::Backup;
        for action in make_before_advert(actions) {
            match action {
                Action::SendAdvert { priority } => self.send_advert(io, priority).await,
                Action::AddVips => {
                    self.drain_until = None;
                    for (vip, prefix) in self.config.held() {
                        match io.netlink.add_address(io.ifindex, *vip, *prefix) {
                            Ok(_) => {}
                            Err(e) => {
                                warn!(instance = %self.config.name, "cannot add {vip}/{prefix}: {e}")
                            }
                        }
                    }
                    // After the addresses: a route may name one as its source.
                    add_routes(
                        io,
                        &self.config.name,
                        &self.config.routes,
                        &self.config.rules,
                    );
                }
                Action::RemoveVips if drained => {
                    self.drain_until = Some(Instant::now() + DRAIN);
                }
                Action::RemoveVips => {
                    self.drain_until = None;
                    self.remove_vips(io);
                }
                Action::SendGratuitous => {
                    let now = Instant::now();
                    self.announce(io);
                    self.garp_left = self.config.garp.repeat.saturating_sub(1);
                    self.next_garp = (self.garp_left > 0).then(|| now + self.config.garp.interval);
                    self.next_refresh = self.config.garp.refresh.map(|r| now + r);
                }
                Action::StateChanged { from, to, reason } => {
                    let transition = Transition {
                        from,
                        to,
                        reason,
                        priority: io.instance.priority(),
                        at_unix: unix_now(),
                        stopping: self.stopping,
                    };
                    info!(
                        instance = %self.config.name,
                        "{} -> {} ({}), priority {}",
                        from.as_str(),
                        to.as_str(),
                        reason.as_str(),
                        transition.priority
                    );
                    self.status.master = match to {
                        State::Master => Some(io.primary),
                        State::Backup => None,
                        State::Initialize | State::Fault => None,
                    };
                    self.status.last_transition = Some(transition);
                    self.status.transitions += 1;
                    // Published before the event goes out: whoever reacts to the event
                    // (the sync group) must find this state, not the one before.
                    self.status.state = to;
                    // With the fault that caused it: a sync group reading a member that
                    // left Fault must not find its old fault and pull it back in.
                    self.status.own_fault = self.tracked_fault;
                    self.publish();
                    let _ = self.events.send(StateEvent {
                        instance: self.config.name.clone(),
                        transition,
                    });
                    if let Some(notify) = &self.notify {
                        notify.send(&self.config.notify, &transition);
                    }
                }
            }
        }
        self.status.state = io.instance.state();
        self.status.priority = io.instance.priority();
        self.status.holds_vips = io.instance.holds_vips();
        self.status.standing_down = io.instance.is_standing_down();
        self.status.own_fault = self.tracked_fault;
        if io.instance.state() != State::Master
            && self.next_refresh.is_some()
            && !io.instance.holds_vips()
        {
            self.next_refresh = None;
        }
        self.publish();
    }

    fn publish(&self) {
        self.status_tx.send_replace(self.status.clone());
    }
}

/// Installs the instance's routes and rules (adding is idempotent). Rules after routes:
/// a rule pointing at a table must not send traffic to it before it is filled.
fn add_routes(
    io: &mut Io,
    name: &str,
    routes: &[vigil_netlink::RouteSpec],
    rules: &[vigil_netlink::RuleSpec],
) {
    for route in routes {
        if let Err(e) = io.netlink.add_route(route) {
            warn!(instance = %name, "{e}");
        }
    }
    for rule in rules {
        if let Err(e) = io.netlink.add_rule(rule) {
            warn!(instance = %name, "{e}");
        }
    }
}

/// Removes the instance's rules and routes (in the reverse order of [`add_routes`];
/// removing what is not there is no error).
fn remove_routes(
    io: &mut Io,
    name: &str,
    routes: &[vigil_netlink::RouteSpec],
    rules: &[vigil_netlink::RuleSpec],
) {
    for rule in rules {
        if let Err(e) = io.netlink.del_rule(rule) {
            warn!(instance = %name, "{e}");
        }
    }
    for route in routes {
        if let Err(e) = io.netlink.del_route(route) {
            warn!(instance = %name, "{e}");
        }
    }
}

/// The virtual MAC interface of `vmac` on `base`: found and adopted, re-created, or
/// created ([`vmac_setup`]); configured as keepalived configures its own (the macvlan
/// sends no IPv6 of its own and answers ARP only for its addresses; the base interface
/// answers ARP only for its own addresses, so the VIPs are answered with the virtual
/// MAC alone) and set up. Returns its index.
fn ensure_vmac(
    netlink: &mut vigil_netlink::Route,
    base: u32,
    vmac: &VmacConfig,
    mac: [u8; 6],
    instance: &str,
) -> Result<u32, String> {
    use vigil_netlink::vmac::devconf;
    let name = &vmac.name;
    let found = match netlink.link(name) {
        Ok(link) => Some(link),
        Err(e) if e.raw_os_error() == Some(libc::ENODEV) => None,
        Err(e) => return Err(format!("looking up {name}: {e}")),
    };
    let index = match vmac_setup(found.as_ref(), base, mac) {
        VmacSetup::Adopt(index) => {
            info!(instance = %instance, "virtual MAC interface {name} found: adopted");
            index
        }
        VmacSetup::Recreate(old) => {
            info!(instance = %instance, "virtual MAC interface {name} has another address: re-created");
            netlink.del_link(old).map_err(|e| e.to_string())?;
            netlink
                .add_macvlan(name, base, mac)
                .map_err(|e| e.to_string())?
        }
        VmacSetup::Create => netlink
            .add_macvlan(name, base, mac)
            .map_err(|e| e.to_string())?,
        VmacSetup::Refuse(why) => return Err(why),
    };
    let settings = [
        (
            index,
            &[
                (devconf::ARP_IGNORE, 1),
                (devconf::ACCEPT_LOCAL, 1),
                (devconf::RP_FILTER, 0),
            ][..],
        ),
        // arp_announce 2: replies from a VIP may leave through the base interface (its
        // prefix route comes first); the base's ARP requests for them must not name
        // the VIP, or neighbours would learn the VIP at the base's MAC.
        (
            base,
            &[
                (devconf::ARP_IGNORE, 1),
                (devconf::ARPFILTER, 1),
                (devconf::ARP_ANNOUNCE, 2),
            ][..],
        ),
    ];
    for (link, values) in settings {
        if let Err(e) = netlink.set_ipv4_conf(link, values) {
            warn!(instance = %instance, "{e}");
        }
    }
    if let Err(e) = netlink.no_ipv6_address_generation(index) {
        // IPv6 may be off in this namespace altogether; then there is nothing to stop.
        debug!(instance = %instance, "{e}");
    }
    netlink
        .set_link_up(index, true)
        .map_err(|e| e.to_string())?;
    Ok(index)
}

/// A new master's batch is (RFC 5798 §6.4.2) advert, addresses, gratuitous ARP. A
/// master handing over make-before-break drops the addresses the moment it hears that
/// advert, so sending it first would open a gap until our addresses and ARP are out.
/// Within one batch the shell therefore configures and announces first and advertises
/// right after (microseconds later); the order of everything else is kept.
pub(crate) fn make_before_advert(actions: Vec<Action>) -> Vec<Action> {
    if !actions.contains(&Action::AddVips) {
        return actions;
    }
    let (adverts, mut rest): (Vec<Action>, Vec<Action>) = actions
        .into_iter()
        .partition(|a| matches!(a, Action::SendAdvert { .. }));
    let last_vip_action = rest
        .iter()
        .rposition(|a| matches!(a, Action::AddVips | Action::SendGratuitous))
        .map_or(rest.len(), |i| i + 1);
    rest.splice(last_vip_action..last_vip_action, adverts);
    rest
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fsm::TransitionReason;

    fn config() -> RunnerConfig {
        crate::runner_config::example()
    }

    #[test]
    fn a_new_master_configures_and_announces_before_it_advertises() {
        let change = Action::StateChanged {
            from: State::Backup,
            to: State::Master,
            reason: TransitionReason::MasterDown,
        };
        let batch = vec![
            change,
            Action::SendAdvert { priority: 100 },
            Action::AddVips,
            Action::SendGratuitous,
        ];
        assert_eq!(
            make_before_advert(batch),
            vec![
                change,
                Action::AddVips,
                Action::SendGratuitous,
                Action::SendAdvert { priority: 100 }
            ]
        );
        // Batches without addresses keep their order.
        let resign = vec![
            change,
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
        ];
        assert_eq!(make_before_advert(resign.clone()), resign);
    }

    #[tokio::test]
    async fn a_runner_without_its_interface_reports_why_and_stops() {
        let mut c = config();
        c.interface = "no-such-if9".into();
        let (events, _) = broadcast::channel(4);
        let handle = spawn(c, events, LocalRouters::new()).unwrap();
        let mut status = handle.status.clone();
        let seen = tokio::time::timeout(
            Duration::from_secs(5),
            status.wait_for(|s| s.error.is_some()),
        )
        .await
        .map(|r| r.map(|s| s.state));
        assert!(matches!(seen, Ok(Ok(State::Initialize))));
        handle.stop(true).await;
    }

    #[test]
    fn invalid_instances_fail_at_spawn() {
        let mut c = config();
        c.advert_interval = Duration::from_millis(5);
        let (events, _) = broadcast::channel(4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(spawn(c, events, LocalRouters::new()).is_err());
        });
    }
}
