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

use crate::fsm::{
    Action, Config as FsmConfig, ConfigError, Event, Instance, State, TransitionReason,
};
use crate::io::announce::Announcer;
use crate::io::iface;
use crate::io::socket::{AdvertSocket, Datagram};
use crate::packet::{
    Advertisement, Auth, Family, MULTICAST_V4, MULTICAST_V6, Version, VirtualAddresses,
    advert_packet_len,
};
use crate::receive::{DropReason, IpFacts, ReceiveRules, decode, is_for_sibling};
use crate::sync_group::SyncDirective;

/// Gratuitous ARP / NA schedule of a new master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpConfig {
    /// Announcements per address on becoming master (at least 1).
    pub repeat: u32,
    /// Gap between those announcements.
    pub interval: Duration,
    /// Announce again this often while master.
    pub refresh: Option<Duration>,
}

impl RunnerConfig {
    /// Every address the master holds: the advertised ones, then the excluded ones.
    pub fn held(&self) -> impl Iterator<Item = &(IpAddr, u8)> {
        self.vips.iter().chain(&self.vips_excluded)
    }
}

/// Everything one runner needs, from the cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: Version,
    /// Base priority (255 = address owner).
    pub priority: u8,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub family: Family,
    /// Virtual addresses with their prefix lengths.
    pub vips: Vec<(IpAddr, u8)>,
    /// Held and announced with `vips` but not listed in adverts (keepalived's
    /// `virtual_ipaddress_excluded`).
    pub vips_excluded: Vec<(IpAddr, u8)>,
    /// Empty: multicast to 224.0.0.18 / ff02::12.
    pub unicast_peers: Vec<IpAddr>,
    pub unicast_source: Option<IpAddr>,
    /// Multicast mode: when not empty, adverts from other sources are dropped as
    /// `unknown_peer` (unicast mode restricts to `unicast_peers` already).
    pub allowed_peers: Vec<IpAddr>,
    /// Unicast mode: accept adverts whatever their TTL / hop limit (peers behind
    /// routers); otherwise RFC 5798 §7.1's 255 is required in both modes.
    pub unicast_accept_any_ttl: bool,
    /// Bounds on the learned Master_Adver_Interval: `advert_interval` times or divided
    /// by this ([`crate::learned_interval`]).
    pub learned_interval_factor: u32,
    pub auth: Auth,
    pub garp: GarpConfig,
    /// Program and arguments, run without a shell on every state change with the
    /// instance name, new state and priority appended.
    pub notify: Option<Vec<String>>,
}

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

/// A fault the daemon's supervision tests inject into a runner (debug builds only).
#[cfg(debug_assertions)]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFault {
    Panic,
    End,
    /// The task never runs again (a hang).
    Stall,
}

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

/// What a reloaded configuration of a running instance takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadChange {
    Unchanged,
    /// [`Control::Reconfigure`]: the instance keeps its state, addresses and timers.
    InPlace,
    /// A new runner: stop this one (make-before-break) and start another.
    Restart,
}

/// Decides, field by field, what a reload needs (see docs/config.md "Reloads"):
///
/// - in place: the gratuitous ARP / NA schedule and the notify hook (they only shape
///   what happens at the next transition); the receive filters `allowed_peers` and
///   `unicast_accept_any_ttl` (they only decide which later adverts count); the base
///   priority, Preempt_Mode and preempt_delay, which the running machine takes like any
///   priority change ([`Instance::reconfigure`], RFC 5798 §6.4.2/§6.4.3 rules applied
///   from then on); the virtual addresses (a master adds and removes the difference and
///   announces only the added ones; the adverts carry the new list, §5.2.9);
/// - restart: what names the virtual router or how it talks — interface, VRID, version,
///   family (RFC 5798 §7.1 keys adverts by VRID on an interface), the advert interval
///   (VRRPv2 peers must match it, RFC 3768 §7.1), unicast peers and source,
///   authentication, the learned-interval factor (part of the machine's config) — and
///   becoming or ceasing to be the address owner (priority 255, §6.4.1).
pub fn reload_change(old: &RunnerConfig, new: &RunnerConfig) -> ReloadChange {
    if old == new {
        return ReloadChange::Unchanged;
    }
    let owner = |c: &RunnerConfig| c.priority == u8::MAX;
    let rest_unchanged = RunnerConfig {
        priority: old.priority,
        preempt: old.preempt,
        preempt_delay: old.preempt_delay,
        garp: old.garp,
        notify: old.notify.clone(),
        vips: old.vips.clone(),
        vips_excluded: old.vips_excluded.clone(),
        allowed_peers: old.allowed_peers.clone(),
        unicast_accept_any_ttl: old.unicast_accept_any_ttl,
        ..new.clone()
    } == *old;
    if rest_unchanged && owner(old) == owner(new) {
        ReloadChange::InPlace
    } else {
        ReloadChange::Restart
    }
}

/// One state change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub reason: TransitionReason,
    /// Effective priority after the change.
    pub priority: u8,
    pub at_unix: f64,
}

/// A state change of a named instance, as broadcast to watchers and sync groups.
#[derive(Debug, Clone, PartialEq)]
pub struct StateEvent {
    pub instance: String,
    pub transition: Transition,
}

/// The live view of one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceStatus {
    pub name: String,
    pub state: State,
    pub priority: u8,
    /// The current master's address, when known (ours while master).
    pub master: Option<IpAddr>,
    /// The address adverts go out from, once the interface is resolved.
    pub primary_address: Option<IpAddr>,
    pub holds_vips: bool,
    pub standing_down: bool,
    /// A weight-0 tracked object of this instance is down (its own fault, as opposed to
    /// one its sync group imposed).
    pub own_fault: bool,
    pub last_transition: Option<Transition>,
    pub transitions: u64,
    pub adverts_sent: u64,
    pub adverts_received: u64,
    /// Received adverts not answered by an advert of their own because of the reply rate
    /// limit (RFC 5798 §6.4.3 replies; see [`crate::resign_reply_gap`]).
    pub replies_limited: u64,
    /// Dropped packets by [`DropReason::as_str`] (`unknown_peer`: a source not among the
    /// unicast peers or `allowed_peers`), plus the shell's own `malformed_ip`.
    pub drops: BTreeMap<&'static str, u64>,
    pub send_errors: u64,
    /// Why the runner is not (yet) running the protocol, e.g. a missing interface.
    pub error: Option<String>,
}

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
    let notify = config
        .notify
        .is_some()
        .then(|| spawn_notifier(config.name.clone()));
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

fn fsm_config(config: &RunnerConfig, primary: IpAddr) -> FsmConfig {
    FsmConfig {
        version: config.version,
        priority: config.priority,
        advert_interval: config.advert_interval,
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        primary_address: primary,
        advert_on_lower_priority: true,
        learned_interval_factor: config.learned_interval_factor,
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

/// Marks the status error of adverts the link refuses as too big.
const TOO_BIG: &str = "advert too big for the link";

/// Why `config`'s adverts cannot be sent on a link of `mtu` bytes, naming instance, size
/// and MTU; `None` when they fit.
pub fn advert_too_big(config: &RunnerConfig, mtu: u32) -> Option<String> {
    let size = advert_packet_len(config.version, config.family, config.vips.len());
    (u32::try_from(size).unwrap_or(u32::MAX) > mtu).then(|| {
        format!(
            "instance {}: an advert of its {} virtual addresses is {size} bytes, more than the MTU {mtu} of {}; move addresses to vips_excluded or raise the MTU",
            config.name,
            config.vips.len(),
            config.interface
        )
    })
}

/// The receive rules an instance's adverts are checked against (RFC 5798 §7.1,
/// RFC 3768 §7.1).
pub fn receive_rules(config: &RunnerConfig) -> ReceiveRules {
    ReceiveRules {
        version: config.version,
        family: config.family,
        vrid: config.vrid,
        local_is_owner: config.priority == u8::MAX,
        auth: config.auth,
        advert_interval: config.advert_interval,
        expected_addresses: Some(config.vips.iter().map(|(a, _)| *a).collect()),
        // RFC 9568 senders checksum VRRPv3/IPv4 without the pseudo-header; accepting both
        // costs nothing and keepalived's form is still what we send.
        accept_message_only_ipv4_checksum: true,
        // Unicast mode answers only to its peers; multicast mode to `allowed_peers` if set.
        allowed_sources: if !config.unicast_peers.is_empty() {
            Some(config.unicast_peers.clone())
        } else if !config.allowed_peers.is_empty() {
            Some(config.allowed_peers.clone())
        } else {
            None
        },
        // keepalived skips the TTL check of unicast adverts (they may cross routers);
        // vigil keeps RFC 5798 §7.1's check unless the operator waives it.
        waive_ttl: !config.unicast_peers.is_empty() && config.unicast_accept_any_ttl,
    }
}

/// What the runner holds once the interface is resolved.
struct Io {
    ifindex: u32,
    primary: IpAddr,
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
                info!(instance = %self.config.name, "stopped");
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
        if index == io.ifindex {
            return false;
        }
        match self.setup() {
            Ok(mut fresh) => {
                info!(
                    instance = %self.config.name,
                    "interface {} was re-created (index {} -> {index}): sockets reopened",
                    self.config.interface,
                    io.ifindex
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
        let ifindex =
            iface::index(&c.interface).map_err(|e| format!("interface {}: {e}", c.interface))?;
        let mut netlink = vigil_netlink::Route::open().map_err(|e| format!("netlink: {e}"))?;
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
                    .addresses(ifindex)
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
        let socket = AdvertSocket::open(c.family, &c.interface, ifindex, multicast)
            .map_err(|e| format!("advert socket on {}: {e}", c.interface))?;
        // Interfaces without an Ethernet address (e.g. tun) cannot be announced on;
        // the protocol still runs.
        let announcer = iface::mac(&c.interface)
            .and_then(|mac| {
                Announcer::open(
                    &c.interface,
                    ifindex,
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
        if config.notify.is_some() && self.notify.is_none() {
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
                    self.publish();
                    let _ = self.events.send(StateEvent {
                        instance: self.config.name.clone(),
                        transition,
                    });
                    if let (Some(notify), Some(argv)) = (&self.notify, &self.config.notify) {
                        let _ = notify.send((argv.clone(), transition));
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

/// How long one notify hook may run before its whole process tree is killed so the next
/// can start.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// How many transitions may wait behind a running hook. When an instance changes state
/// faster than its hook runs, the newest waiting one is replaced: hooks still run in
/// order and the latest state is always delivered, but a flapping instance cannot queue
/// hundreds of runs.
pub const NOTIFY_QUEUE: usize = 4;

/// Of a failing hook's stdout and stderr, this much is kept for the log.
const NOTIFY_OUTPUT: usize = 1024;

/// Runs the notify hook (as configured when the transition happened) for each
/// transition, one at a time and in order, so a hook never races its successor for the
/// same instance. Hooks run sandboxed (vigil-child): as the daemon's user but without
/// its capabilities, with a cleared environment plus the `VIGIL_*` variables below.
struct Notifier {
    instance: String,
    hooks: vigil_child::hook::HookRunner,
}

impl Notifier {
    /// Queues the hook for `t`; false when `argv` is empty.
    fn send(&self, (argv, t): (Vec<String>, Transition)) -> bool {
        let Some(command) = hook_command(&argv, &self.instance, &t) else {
            return false;
        };
        self.hooks.submit(command);
        true
    }
}

fn spawn_notifier(instance: String) -> Notifier {
    Notifier {
        hooks: vigil_child::hook::HookRunner::spawn(format!("notify {instance}"), NOTIFY_QUEUE),
        instance,
    }
}

/// The hook's argument list: the configured argv, then instance, state and priority.
pub fn hook_args(argv: &[String], instance: &str, transition: &Transition) -> Vec<String> {
    let mut args: Vec<String> = argv.iter().skip(1).cloned().collect();
    args.push(instance.to_string());
    args.push(transition.to.as_str().to_string());
    args.push(transition.priority.to_string());
    args
}

/// The sandboxed command for one transition; `None` for an empty argv.
pub fn hook_command(
    argv: &[String],
    instance: &str,
    t: &Transition,
) -> Option<vigil_child::Command> {
    let program = argv.first()?;
    let mut command = vigil_child::Command::new(program.clone());
    command.args = hook_args(argv, instance, t);
    command.env = [
        ("VIGIL_INSTANCE", instance.to_string()),
        ("VIGIL_STATE", t.to.as_str().to_string()),
        ("VIGIL_PREVIOUS_STATE", t.from.as_str().to_string()),
        ("VIGIL_REASON", t.reason.as_str().to_string()),
        ("VIGIL_PRIORITY", t.priority.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    command.timeout = NOTIFY_TIMEOUT;
    command.output_limit = NOTIFY_OUTPUT;
    Some(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunnerConfig {
        RunnerConfig {
            name: "web".into(),
            interface: "eth0".into(),
            vrid: 51,
            version: Version::V3,
            priority: 100,
            advert_interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            family: Family::Ipv4,
            vips: vec![("10.0.0.100".parse().unwrap(), 24)],
            vips_excluded: vec![],
            unicast_peers: vec![],
            unicast_source: None,
            allowed_peers: vec![],
            unicast_accept_any_ttl: false,
            learned_interval_factor: 3,
            auth: Auth::None,
            garp: GarpConfig {
                repeat: 5,
                interval: Duration::from_millis(10),
                refresh: None,
            },
            notify: None,
        }
    }

    #[test]
    fn hook_gets_instance_state_and_priority_after_its_own_args() {
        let t = Transition {
            from: State::Backup,
            to: State::Master,
            reason: TransitionReason::MasterDown,
            priority: 150,
            at_unix: 0.0,
        };
        let argv = vec!["/usr/bin/hook".to_string(), "--flag".to_string()];
        assert_eq!(
            hook_args(&argv, "web", &t),
            ["--flag", "web", "master", "150"]
        );
        let c = hook_command(&argv, "web", &t).expect("a command");
        assert_eq!(c.program, "/usr/bin/hook");
        assert_eq!(c.args, ["--flag", "web", "master", "150"]);
        assert_eq!(c.run_as, vigil_child::RunAs::Daemon);
        assert_eq!(c.timeout, NOTIFY_TIMEOUT);
        let env: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            env,
            [
                "VIGIL_INSTANCE=web",
                "VIGIL_STATE=master",
                "VIGIL_PREVIOUS_STATE=backup",
                "VIGIL_REASON=master_down",
                "VIGIL_PRIORITY=150"
            ]
        );
        assert!(hook_command(&[], "web", &t).is_none());
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

    #[test]
    fn reload_changes_are_classified_field_by_field() {
        let old = config();
        let kind = |change: &dyn Fn(&mut RunnerConfig)| {
            let mut new = old.clone();
            change(&mut new);
            reload_change(&old, &new)
        };
        assert_eq!(kind(&|_| {}), ReloadChange::Unchanged);
        // What shapes only the next transition, and the election inputs the running
        // machine takes like any priority change (RFC 5798 §6.4.2/§6.4.3).
        let in_place: [&dyn Fn(&mut RunnerConfig); 13] = [
            &|c| c.allowed_peers = vec!["10.0.0.2".parse().unwrap()],
            &|c| c.unicast_accept_any_ttl = true,
            &|c| c.vips.push(("10.0.0.101".parse().unwrap(), 24)),
            &|c| c.vips = vec![("10.0.0.100".parse().unwrap(), 32)],
            &|c| c.vips_excluded = vec![("10.0.0.200".parse().unwrap(), 24)],
            &|c| c.garp.repeat = 1,
            &|c| c.garp.interval = Duration::from_millis(100),
            &|c| c.garp.refresh = Some(Duration::from_secs(30)),
            &|c| c.notify = Some(vec!["/bin/true".into()]),
            &|c| c.priority = 254,
            &|c| c.priority = 1,
            &|c| c.preempt = false,
            &|c| c.preempt_delay = Duration::from_secs(5),
        ];
        for change in in_place {
            assert_eq!(kind(change), ReloadChange::InPlace);
        }
        // Several in-place changes together are still in place.
        assert_eq!(
            kind(&|c| {
                c.priority = 120;
                c.garp.repeat = 2;
                c.notify = None;
            }),
            ReloadChange::InPlace
        );
        // What names the virtual router or how it talks (RFC 5798 §7.1: VRID on an
        // interface; RFC 3768 §7.1 the v2 interval), and ownership (priority 255,
        // §6.4.1).
        let restart: [&dyn Fn(&mut RunnerConfig); 10] = [
            &|c| c.learned_interval_factor = 10,
            &|c| c.interface = "eth1".into(),
            &|c| c.vrid = 52,
            &|c| c.version = Version::V2,
            &|c| c.family = Family::Ipv6,
            &|c| c.advert_interval = Duration::from_millis(500),
            &|c| c.unicast_peers = vec!["10.0.0.2".parse().unwrap()],
            &|c| c.unicast_source = Some("10.0.0.1".parse().unwrap()),
            &|c| c.auth = Auth::SimplePassword(crate::Password::new(b"pw").unwrap()),
            &|c| c.priority = 255,
        ];
        for change in restart {
            assert_eq!(kind(change), ReloadChange::Restart);
        }
        // A restart-worthy field wins over in-place ones changed with it.
        assert_eq!(
            kind(&|c| {
                c.garp.repeat = 1;
                c.vrid = 9;
            }),
            ReloadChange::Restart
        );
        let mut owner = old.clone();
        owner.priority = 255;
        let mut lower = owner.clone();
        lower.priority = 200;
        assert_eq!(reload_change(&owner, &lower), ReloadChange::Restart);
    }

    #[test]
    fn rules_follow_the_config() {
        // RFC 5798 §7.1: the owner (priority 255) drops every advert for its VRID.
        let mut c = config();
        c.priority = 255;
        let rules = receive_rules(&c);
        assert!(rules.local_is_owner);
        assert_eq!(rules.vrid, 51);
        assert_eq!(
            rules.expected_addresses,
            Some(vec!["10.0.0.100".parse().unwrap()])
        );
        // Multicast: anyone, unless allowed_peers lists the sources; the TTL rule of
        // RFC 5798 §7.1 always applies.
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let mut c = config();
        assert_eq!(receive_rules(&c).allowed_sources, None);
        c.allowed_peers = vec![peer];
        c.unicast_accept_any_ttl = true;
        let rules = receive_rules(&c);
        assert_eq!(rules.allowed_sources, Some(vec![peer]));
        assert!(!rules.waive_ttl);
        // Unicast: the peers, and the TTL waived only when asked.
        c.allowed_peers = vec![];
        c.unicast_peers = vec![peer];
        assert_eq!(receive_rules(&c).allowed_sources, Some(vec![peer]));
        assert!(receive_rules(&c).waive_ttl);
        c.unicast_accept_any_ttl = false;
        assert!(!receive_rules(&c).waive_ttl);
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
