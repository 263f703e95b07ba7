//! The validated configuration of one cluster. Every value here has passed validation:
//! consumers never re-check ranges or references.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// One cluster file, parsed and validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    pub director: Director,
    /// VRRP instances in file order.
    pub vrrp: Vec<VrrpInstance>,
    pub ipvs_sync: Option<IpvsSync>,
    /// The kernel's IPVS connection timeouts, set at start and on reload.
    pub ipvs_timeouts: Option<IpvsTimeouts>,
    /// Virtual servers in file order.
    pub virtual_servers: Vec<VirtualServer>,
    /// `[sync_group.NAME]` tables (hooks of a group), in file order. A group named only
    /// by its members' `sync_group` needs none.
    pub sync_groups: Vec<SyncGroup>,
    /// `[[alert]]` webhooks in file order.
    pub alerts: Vec<crate::Alert>,
    /// `[announce]`: where announced virtual servers' routes go (needed by any
    /// virtual server with `announce = true`).
    pub announce: Option<Announce>,
}

impl Config {
    pub fn vrrp_instance(&self, name: &str) -> Option<&VrrpInstance> {
        self.vrrp.iter().find(|v| v.name == name)
    }

    pub fn virtual_server(&self, name: &str) -> Option<&VirtualServer> {
        self.virtual_servers.iter().find(|v| v.name == name)
    }

    pub fn real_server_count(&self) -> usize {
        self.virtual_servers
            .iter()
            .map(|v| v.real_servers.len())
            .sum()
    }
}

/// This director: identity and the operator-facing endpoints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Director {
    pub name: String,
    pub status_socket: PathBuf,
    /// Group that owns the status socket (mode 0660); `None` keeps the daemon's group.
    pub status_socket_group: Option<String>,
    /// Group whose members may also change things over the status socket (drain, reload,
    /// handover); root and the daemon's own user always may. `None`: only those two.
    pub status_socket_admin_group: Option<String>,
    pub metrics_listen: Option<SocketAddr>,
    /// Where operator overrides (drains) are kept across restarts.
    pub state_file: PathBuf,
    /// keepalived's `notify_fifo`: every VRRP and health line below, to one FIFO.
    pub notify_fifo: Option<PathBuf>,
    /// keepalived's `vrrp_notify_fifo`: `INSTANCE` and `GROUP` lines.
    pub vrrp_notify_fifo: Option<PathBuf>,
    /// keepalived's `lvs_notify_fifo`: `VS` and `RS` lines.
    pub lvs_notify_fifo: Option<PathBuf>,
    /// Which kernel datapath serves the virtual servers (chosen when vigild starts).
    pub datapath: Datapath,
    /// nftables datapath: masquerade (source NAT to the director) the connections it
    /// forwards, so real servers need no route back through the director.
    pub nftables_masquerade: bool,
    /// nftables datapath: when a real server goes down by its checks (not a drain),
    /// delete the conntrack entries of each of its services' connections to it.
    pub nftables_flush_on_failure: bool,
}

/// `director.datapath`: the kernel side of the virtual servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Datapath {
    /// IPVS (the default: what vigil always used; a kernel without it keeps being retried).
    #[default]
    Ipvs,
    /// One nftables table, `inet vigil` (docs/datapath-nftables.md).
    Nftables,
    /// IPVS when the kernel has its generic netlink family, else nftables.
    Auto,
}

impl Datapath {
    pub const NAMES: &'static [&'static str] = &["ipvs", "nftables", "auto"];

    pub fn name(self) -> &'static str {
        match self {
            Datapath::Ipvs => "ipvs",
            Datapath::Nftables => "nftables",
            Datapath::Auto => "auto",
        }
    }
}

/// The part of a virtual server a datapath's refusal is about, so the error points at it
/// in the file (see [`crate::System::nftables_unsupported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatapathField {
    /// The service as a whole (its address, protocol or port).
    Service,
    Scheduler,
    SchedulerFlags,
    Persistence,
    OnePacket,
    /// A real server (or the sorry server) by its address.
    RealServer(SocketAddr),
}

pub const DEFAULT_STATUS_SOCKET: &str = "/run/vigil/vigil.sock";
pub const DEFAULT_STATE_FILE: &str = "/var/lib/vigil/state.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VrrpVersion {
    /// RFC 3768: IPv4 only, advert interval in whole seconds, optional simple password.
    V2,
    /// RFC 5798: IPv4 or IPv6, advert interval in centiseconds.
    V3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressFamily {
    Ipv4,
    Ipv6,
}

impl AddressFamily {
    pub fn of(addr: &IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => AddressFamily::Ipv4,
            IpAddr::V6(_) => AddressFamily::Ipv6,
        }
    }

    pub fn max_prefix(self) -> u8 {
        match self {
            AddressFamily::Ipv4 => 32,
            AddressFamily::Ipv6 => 128,
        }
    }
}

impl std::fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressFamily::Ipv4 => "IPv4",
            AddressFamily::Ipv6 => "IPv6",
        })
    }
}

/// An address with a prefix length, e.g. `192.0.2.100/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl std::fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// One VRRP virtual router on one interface.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VrrpInstance {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    /// 1–254, or 255 for the address owner.
    pub priority: u8,
    pub version: VrrpVersion,
    #[serde(serialize_with = "crate::duration::serialize")]
    pub advert_interval: Duration,
    pub preempt: bool,
    #[serde(serialize_with = "crate::duration::serialize")]
    pub preempt_delay: Duration,
    /// RFC 5798 Accept_Mode: accept packets addressed to the VIPs while master even when
    /// not the address owner.
    pub accept: bool,
    /// Unicast peers; empty means multicast (224.0.0.18 / ff02::12).
    pub unicast_peers: Vec<IpAddr>,
    /// Source address for adverts; `None` uses the interface's primary address.
    pub unicast_source: Option<IpAddr>,
    /// Multicast mode: accept adverts only from these sources (empty: from anyone).
    pub allowed_peers: Vec<IpAddr>,
    /// Unicast mode: accept adverts whatever their TTL / hop limit (peers behind
    /// routers) instead of RFC 5798 §7.1's 255.
    pub unicast_accept_any_ttl: bool,
    /// VRRPv3: a learned Master_Adver_Interval is kept within `advert_interval` times
    /// and divided by this.
    pub learned_interval_factor: u32,
    /// All of one address family (RFC 5798 §5.2.9: one instance is IPv4 or IPv6).
    pub vips: Vec<IpPrefix>,
    /// Held with the VIPs but not listed in adverts (keepalived's
    /// `virtual_ipaddress_excluded`); same family as `vips`.
    pub vips_excluded: Vec<IpPrefix>,
    pub family: AddressFamily,
    /// VRRPv2 simple text authentication (RFC 3768 §5.3.6.1), at most 8 bytes.
    pub auth_password: Option<String>,
    pub garp: Garp,
    pub track: Vec<Track>,
    /// Programs run on state changes (never through a shell).
    #[serde(flatten)]
    pub hooks: NotifyHooks,
    pub sync_group: Option<String>,
    /// keepalived's `virtual_routes`: installed while this node holds the addresses.
    pub virtual_routes: Vec<VirtualRoute>,
    /// keepalived's `virtual_rules`: likewise.
    pub virtual_rules: Vec<VirtualRule>,
    /// `use_vmac`: the addresses live on a macvlan with the RFC 5798 §7.3 virtual MAC.
    pub vmac: Option<Vmac>,
}

/// One `virtual_routes` entry (as `ip route` takes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualRoute {
    pub to: IpPrefix,
    pub via: Option<IpAddr>,
    pub dev: Option<String>,
    /// Preferred source address.
    pub src: Option<IpAddr>,
    /// 254 (main) unless given.
    pub table: u32,
    pub metric: Option<u32>,
    /// `RT_SCOPE_*`: 0 global, 200 site, 253 link, 254 host; `None` as `ip route`.
    pub scope: Option<u8>,
    /// `RTPROT_*` (4, static, unless given).
    pub protocol: u8,
    pub kind: RouteKind,
}

/// What a route does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    Unicast,
    Blackhole,
    Unreachable,
    Prohibit,
}

/// One `virtual_rules` entry (as `ip rule` takes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VirtualRule {
    pub family: AddressFamily,
    pub from: Option<IpPrefix>,
    pub to: Option<IpPrefix>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    pub priority: Option<u32>,
    pub action: RuleAction,
}

/// What a rule does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Look them up in this table.
    Table(u32),
    Blackhole,
    Unreachable,
    Prohibit,
}

/// An instance's virtual MAC interface (`use_vmac`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vmac {
    /// The macvlan's name: `vmac_name`, by default `vrrp.VRID` as keepalived's.
    pub name: String,
    /// `vmac_xmit_base`: adverts leave from the instance's interface.
    pub xmit_base: bool,
}

/// Programs run on the state changes of a VRRP instance or sync group: keepalived's
/// notify family.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NotifyHooks {
    /// Run on every state change, with the arguments `notify_args` names appended.
    pub notify: Option<Vec<String>>,
    pub notify_args: NotifyArgs,
    /// Run as given (nothing appended) on becoming master.
    pub notify_master: Option<Vec<String>>,
    /// ... on becoming backup.
    pub notify_backup: Option<Vec<String>>,
    /// ... on entering fault.
    pub notify_fault: Option<Vec<String>>,
    /// ... when the instance (or group) stops: the daemon stops or a reload removes it.
    pub notify_stop: Option<Vec<String>>,
}

impl NotifyHooks {
    pub fn is_empty(&self) -> bool {
        self.notify.is_none()
            && self.notify_master.is_none()
            && self.notify_backup.is_none()
            && self.notify_fault.is_none()
            && self.notify_stop.is_none()
    }
}

/// What `notify` gets after its configured arguments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyArgs {
    /// `NAME STATE PRIORITY`, the state in lower case, and `VIGIL_*` variables.
    #[default]
    Vigil,
    /// keepalived's: `INSTANCE|GROUP NAME STATE PRIORITY`, the state in upper case.
    Keepalived,
}

/// A `[sync_group.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncGroup {
    pub name: String,
    #[serde(flatten)]
    pub hooks: NotifyHooks,
}

/// Gratuitous ARP / unsolicited neighbour advertisements sent on becoming master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Garp {
    pub repeat: u32,
    #[serde(serialize_with = "crate::duration::serialize")]
    pub interval: Duration,
    /// Re-announce periodically while master; `None` = only on transition.
    #[serde(serialize_with = "crate::duration::serialize_option")]
    pub refresh: Option<Duration>,
}

/// Something whose state moves a VRRP instance's priority.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Track {
    pub target: TrackTarget,
    /// As keepalived: a positive weight is added while the target is up, a negative one
    /// while it is down; 0 means "down puts the instance in Fault". For a `File` target,
    /// the file's number times this (keepalived's track_file).
    pub weight: i32,
    /// keepalived's `reverse`: the weight applies in the other direction (a positive weight
    /// is taken away while up, a negative one given back while down; weight 0 faults while
    /// up; a file's value counts negated).
    pub reverse: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackTarget {
    /// Down when the virtual server has lost quorum.
    VirtualServer(String),
    /// Down when the link is down.
    Interface(String),
    /// Down when the program exits non-zero or times out.
    Exec {
        command: Vec<String>,
        #[serde(serialize_with = "crate::duration::serialize")]
        interval: Duration,
        #[serde(serialize_with = "crate::duration::serialize")]
        timeout: Duration,
        user: String,
        /// Consecutive successes that bring a down program up (keepalived's `rise`).
        rise: u32,
        /// Consecutive failures that bring an up program down (keepalived's `fall`).
        fall: u32,
        /// Counts as down until it has risen (keepalived's `init_fail`); otherwise its first
        /// result decides alone.
        init_fail: bool,
    },
    /// A number read from a file whenever it changes (keepalived's `track_file`): a missing
    /// or empty file reads 0.
    File(PathBuf),
    /// Up while the number of matching processes is within the quorum
    /// (keepalived's `vrrp_track_process`).
    Process(ProcessTrack),
}

/// Which processes a `track` `process` entry counts, and when it is up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessTrack {
    /// The process name, then the arguments to match (if any).
    pub command: Vec<String>,
    /// Match the name against the command line's first word instead of the kernel's
    /// process name (`comm`, at most 15 bytes); implied by arguments or `param_match`.
    pub full_command: bool,
    /// How arguments are matched; `None`: arguments are not looked at.
    pub param_match: Option<ParamMatch>,
    /// At least this many matching processes for up.
    pub quorum: u32,
    /// At most this many matching processes for up.
    pub quorum_max: Option<u32>,
    /// How long a quorum must hold after being gained before it counts.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub fork_delay: Duration,
    /// How long a quorum must be lost before it counts.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub terminate_delay: Duration,
    /// How often /proc is scanned.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub interval: Duration,
}

/// keepalived's `param_match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamMatch {
    /// Exactly these arguments (none if none are given).
    Exact,
    /// These arguments first; more may follow.
    Partial,
    /// These arguments first, the last one a prefix of the process's; more may follow.
    Initial,
}

/// `[announce]`: announced VIPs become host routes in a kernel routing table that a BGP
/// speaker (BIRD, FRR) exports; the VIP itself sits on a local interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Announce {
    /// The kernel routing table vigild writes (never 0, 253, 254 or 255).
    pub table: u32,
    /// The route protocol (`rtm_protocol`) vigild's routes carry: routes of it in
    /// `table` are vigild's, and those left by a crash are removed at start.
    pub protocol: u8,
    /// The device of the announced VIPs' `local` routes (in the kernel's local table),
    /// which make the director accept their traffic.
    pub interface: String,
    /// How long vigild waits after withdrawing a route before it removes or drains the
    /// service (drain, stop, reload): the routers' time to converge.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub withdraw_delay: Duration,
}

/// vigil's route protocol number: not used by the kernel, iproute2's rt_protos or a
/// routing daemon we know of.
pub const DEFAULT_ANNOUNCE_PROTOCOL: u8 = 252;
pub const DEFAULT_WITHDRAW_DELAY: Duration = Duration::from_secs(2);
pub const MAX_WITHDRAW_DELAY: Duration = Duration::from_secs(60);

/// The IPVS connection sync daemon, whose role follows a VRRP instance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IpvsSync {
    pub interface: String,
    pub sync_id: u8,
    /// The instance whose role decides master (active) or backup (standby).
    pub instance: String,
    /// Largest sync message (UDP payload); `None`: the kernel's (from the MTU).
    pub maxlen: Option<u16>,
    /// UDP port; `None`: the kernel's 8848.
    pub port: Option<u16>,
    /// Multicast TTL; `None`: the kernel's 1.
    pub ttl: Option<u8>,
    /// Multicast group; `None`: the kernel's 224.0.0.81.
    pub group: Option<IpAddr>,
}

/// The kernel's IPVS connection timeouts (keepalived's `lvs_timeouts`); `None` leaves
/// that one as the kernel has it. Whole seconds, at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IpvsTimeouts {
    #[serde(serialize_with = "crate::duration::serialize_option")]
    pub tcp: Option<Duration>,
    #[serde(serialize_with = "crate::duration::serialize_option")]
    pub tcp_fin: Option<Duration>,
    #[serde(serialize_with = "crate::duration::serialize_option")]
    pub udp: Option<Duration>,
}

/// Encapsulation of tunnel forwarding (ipvsadm's `--tun-type`, keepalived's
/// `lvs_method TUN type ...`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelType {
    /// IP-in-IP (the kernel's default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation (Linux 5.2+), to `port`.
    Gue,
    /// GRE (Linux 5.3+).
    Gre,
}

impl TunnelType {
    pub const NAMES: &'static [&'static str] = &["ipip", "gue", "gre"];
}

/// Tunnel checksums (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelChecksum {
    #[default]
    None,
    /// Checksums in the outer header (GUE, GRE).
    Csum,
    /// Remote checksum offload (GUE only).
    Remcsum,
}

impl TunnelChecksum {
    pub const NAMES: &'static [&'static str] = &["none", "csum", "remcsum"];
}

/// How tunnel forwarding encapsulates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Tunnel {
    pub kind: TunnelType,
    /// The real server's GUE port (`Some` exactly with [`TunnelType::Gue`]).
    pub port: Option<u16>,
    pub checksum: TunnelChecksum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const NAMES: &'static [&'static str] = &["tcp", "udp", "sctp"];

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// How a virtual server is keyed in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKey {
    Address {
        protocol: Protocol,
        address: SocketAddr,
    },
    Fwmark {
        mark: u32,
        family: AddressFamily,
    },
}

impl ServiceKey {
    pub fn family(&self) -> AddressFamily {
        match self {
            ServiceKey::Address { address, .. } => AddressFamily::of(&address.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceKey::Address { protocol, address } => {
                write!(f, "{} {}", protocol.name(), address)
            }
            ServiceKey::Fwmark { mark, family } => write!(f, "fwmark {mark} {family}"),
        }
    }
}

/// IPVS scheduler names the config accepts (those of Linux 6.x).
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulerFlag {
    /// sh/mh: fall back to another server when the chosen one is unavailable.
    Fallback,
    /// sh/mh: include the source port in the hash.
    Port,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Forwarding {
    /// Masquerading: the director rewrites the destination; replies return through it.
    Nat,
    /// Direct routing: same L2 segment, the real server holds the VIP on a loopback.
    Dr,
    /// IP-in-IP tunnelling to the real server.
    Tunnel,
}

impl Forwarding {
    pub const NAMES: &'static [&'static str] = &["nat", "dr", "tunnel"];

    /// DR and tunnelling deliver the packet unchanged, so they cannot change its port.
    pub fn can_remap_port(self) -> bool {
        self == Forwarding::Nat
    }

    pub fn name(self) -> &'static str {
        match self {
            Forwarding::Nat => "nat",
            Forwarding::Dr => "dr",
            Forwarding::Tunnel => "tunnel",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Persistence {
    #[serde(serialize_with = "crate::duration::serialize")]
    pub timeout: Duration,
    /// Clients are grouped by this prefix length of their address.
    pub prefix_len: u8,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VirtualServer {
    pub name: String,
    pub key: ServiceKey,
    pub scheduler: String,
    pub scheduler_flags: Vec<SchedulerFlag>,
    pub forwarding: Forwarding,
    pub persistence: Option<Persistence>,
    /// Fewer healthy real servers than this and the sorry server takes over.
    pub quorum: u32,
    pub hysteresis: u32,
    pub sorry_server: Option<SocketAddr>,
    /// A failed real server keeps its place with weight 0 (existing connections drain)
    /// instead of being removed.
    pub inhibit_on_failure: bool,
    /// One-packet scheduling (keepalived's `ops`): every UDP datagram is scheduled on its
    /// own, no connection entry is kept.
    pub one_packet: bool,
    /// The sorry server's (and the real servers' default) encapsulation; `Some` exactly
    /// with tunnel forwarding.
    pub tunnel: Option<Tunnel>,
    pub real_servers: Vec<RealServer>,
    /// `[[virtual_server.real_servers_from_dns]]`: more real servers, from DNS names
    /// resolved by the daemon (not part of `real_servers`).
    pub real_servers_from_dns: Vec<DnsRealServers>,
    /// What `quorum` and `hysteresis` count: live real servers, or their summed weights.
    pub quorum_by: QuorumBy,
    /// Run when the service gains its quorum (keepalived's `quorum_up`).
    pub quorum_up: Option<Vec<String>>,
    /// Run when the service loses its quorum (keepalived's `quorum_down`).
    pub quorum_down: Option<Vec<String>>,
    /// At shutdown, run `quorum_down` (if it has quorum) and the real servers'
    /// `notify_down` (those up), as keepalived's `omega` does.
    pub omega: bool,
    /// The group form (`addresses`/`fwmarks`, keepalived's `virtual_server_group`): the
    /// services after `key` that share this definition, its real servers and their
    /// checks. Empty for a single service. Health, quorum and hooks stay keyed by `key`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group: Vec<ServiceKey>,
    /// Announce the VIP (a host route in `[announce]`'s table) while the service is
    /// healthy here; address services only.
    pub announce: bool,
}

impl VirtualServer {
    /// Every IPVS service of this virtual server: `key`, then the group's.
    pub fn keys(&self) -> impl Iterator<Item = &ServiceKey> {
        std::iter::once(&self.key).chain(&self.group)
    }
}

/// What a virtual server's quorum counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuorumBy {
    /// Live real servers (vigil's default).
    Servers,
    /// The summed configured weights of live real servers (keepalived's rule).
    Weight,
}

impl QuorumBy {
    pub const NAMES: &'static [&'static str] = &["servers", "weight"];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RealServer {
    pub address: SocketAddr,
    pub weight: u32,
    pub forwarding: Forwarding,
    pub upper_threshold: Option<u32>,
    pub lower_threshold: Option<u32>,
    /// Whether a failed server is kept with weight 0: its own setting, else the virtual
    /// server's.
    pub inhibit_on_failure: bool,
    /// Run when the server's health goes up (keepalived's `notify_up`).
    pub notify_up: Option<Vec<String>>,
    /// Run when the server's health goes down (keepalived's `notify_down`).
    pub notify_down: Option<Vec<String>>,
    /// The effective encapsulation (its own, else the virtual server's); `Some` exactly
    /// with tunnel forwarding.
    pub tunnel: Option<Tunnel>,
    /// The effective checks (the virtual server's default merged with this server's
    /// override), all of which must pass (keepalived counts every checker of a
    /// real_server); empty means the server is always considered up.
    pub checks: Vec<Check>,
}

impl RealServer {
    /// Whether any check moves this server's weight (exec `dynamic_weight`, file
    /// `weight`): then the weight IPVS gets is the checks', not only `weight`.
    pub fn has_dynamic_weight(&self) -> bool {
        self.checks.iter().any(|c| c.kind.moves_weight())
    }
}

/// A health check with its schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub kind: CheckKind,
    #[serde(serialize_with = "crate::duration::serialize")]
    pub interval: Duration,
    #[serde(serialize_with = "crate::duration::serialize")]
    pub timeout: Duration,
    /// Consecutive passes to go up.
    pub rise: u32,
    /// Consecutive failures to go down.
    pub fall: u32,
    pub initial_state: InitialState,
    /// Delay before the next attempt after a failure; `None` = the normal interval.
    #[serde(serialize_with = "crate::duration::serialize_option")]
    pub retry_delay: Option<Duration>,
    /// The first run of each check is spread uniformly over this window.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub start_spread: Duration,
    /// Probe this address instead of the real server's.
    pub address: Option<IpAddr>,
    /// Probe this port instead of the real server's.
    pub port: Option<u16>,
    /// Source address to bind probes to.
    pub bind: Option<IpAddr>,
    /// Source port to bind probes to (keepalived's `bind_port`).
    pub bind_port: Option<u16>,
    /// Interface the probes leave by (`SO_BINDTODEVICE`; keepalived's `bind_if`).
    pub bind_interface: Option<String>,
    /// Firewall mark on the probes' packets (`SO_MARK`; keepalived's `fwmark`).
    pub fwmark: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InitialState {
    Up,
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CheckKind {
    Tcp {
        send: Option<String>,
        /// Regular expression the reply must match.
        expect: Option<String>,
    },
    Http(HttpCheck),
    Dns(DnsCheck),
    Udp {
        /// The datagram (`send` or `send_hex`); may be empty.
        send: Vec<u8>,
        /// Regular expression the reply must match (needs `require_reply`).
        expect: Option<String>,
        /// Fail without a reply. False: pass unless an ICMP port unreachable comes back
        /// within the timeout (keepalived's UDP_CHECK default).
        require_reply: bool,
    },
    Icmp,
    /// SMTP: the 220 greeting, `HELO helo_name` answered 2xx, then `QUIT`.
    Smtp {
        /// Default [`DEFAULT_HELO_NAME`].
        helo_name: String,
    },
    Exec {
        command: Vec<String>,
        user: String,
        /// keepalived's `misc_dynamic`: exit 0 passes and keeps the weight, 1 fails,
        /// 2–255 pass and set the real server's weight to the status minus 2.
        dynamic_weight: bool,
    },
    /// keepalived's FILE_CHECK / track_file: the server's state (or weight) from a
    /// number in a file, read when it changes (inotify) and every `interval`.
    File(FileCheck),
}

/// A file check: the file holds an integer (a missing or empty file reads as 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileCheck {
    pub path: PathBuf,
    /// 0: a non-zero value is down (a zero value with `reverse`). Otherwise the value
    /// times this (negated with `reverse`) is added to the real server's weight.
    pub weight: i32,
    pub reverse: bool,
}

impl CheckKind {
    pub const NAMES: &'static [&'static str] = &[
        "tcp", "http", "https", "dns", "udp", "icmp", "smtp", "exec", "file",
    ];

    /// Whether results of this check can change the real server's weight.
    pub fn moves_weight(&self) -> bool {
        match self {
            CheckKind::Exec { dynamic_weight, .. } => *dynamic_weight,
            CheckKind::File(f) => f.weight != 0,
            _ => false,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Http(h) if h.tls.is_some() => "https",
            CheckKind::Http(_) => "http",
            CheckKind::Dns(_) => "dns",
            CheckKind::Udp { .. } => "udp",
            CheckKind::Icmp => "icmp",
            CheckKind::Smtp { .. } => "smtp",
            CheckKind::Exec { .. } => "exec",
            CheckKind::File(_) => "file",
        }
    }
}

/// The HELO name of smtp checks. keepalived's default is `smtpchecker.keepalived.org`;
/// ours is a name under `.invalid` (RFC 6761), shaped like the domain HELO asks for.
pub const DEFAULT_HELO_NAME: &str = "vigil-check.invalid";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum HttpMethod {
    Get,
    Head,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpCheck {
    pub method: HttpMethod,
    /// Host header (virtual host); `None` = the probed address.
    pub host: Option<String>,
    /// The URLs requested, one after another, each on a fresh connection; the check passes
    /// when all pass (keepalived's `url` blocks). Never empty.
    pub urls: Vec<HttpUrl>,
    /// At most this much of each body is read; a longer one is cut there.
    pub max_body_bytes: u64,
    /// Present for https.
    pub tls: Option<Tls>,
}

/// One URL of an http check and what its response must be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpUrl {
    pub path: String,
    /// Inclusive ranges of accepted status codes.
    pub expect_status: Vec<(u16, u16)>,
    pub body_regex: Option<String>,
    /// Pass when `body_regex` does NOT match (keepalived's `regex_no_match`).
    pub regex_no_match: bool,
    /// Lower-case hex SHA-256 of the expected body.
    pub body_sha256: Option<String>,
    /// Lower-case hex MD5 of the expected body (keepalived's `digest`).
    pub body_md5: Option<String>,
}

impl HttpUrl {
    /// `path` with the defaults: any 2xx, no body check.
    pub fn new(path: impl Into<String>) -> Self {
        HttpUrl {
            path: path.into(),
            expect_status: vec![(200, 299)],
            body_regex: None,
            regex_no_match: false,
            body_sha256: None,
            body_md5: None,
        }
    }

    /// Whether the body must be kept to be judged.
    pub fn checks_body(&self) -> bool {
        self.body_regex.is_some() || self.body_sha256.is_some() || self.body_md5.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tls {
    pub verify: bool,
    /// CA certificates to verify against; when set, `trust` is not used.
    pub ca_file: Option<PathBuf>,
    /// Which roots verify the server when there is no `ca_file`.
    pub trust: TlsTrust,
    /// SNI and the name the certificate must carry; `None` = the Host header, else the
    /// probed address.
    pub server_name: Option<String>,
    /// Send the server name in the handshake (SNI); it is verified either way.
    pub sni: bool,
    /// Client certificate chain and its key (PEM), both or neither.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Tls {
    /// The defaults: verify against the bundled public roots, SNI on, no client certificate.
    pub fn verifying() -> Self {
        Tls {
            verify: true,
            ca_file: None,
            trust: TlsTrust::Bundled,
            server_name: None,
            sni: true,
            client_cert: None,
            client_key: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsTrust {
    /// The public roots compiled into vigil (Mozilla's, via webpki-roots).
    Bundled,
    /// The system's CA bundle (e.g. /etc/ssl/certs/ca-certificates.crt).
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DnsType {
    A,
    Aaaa,
    Soa,
    Ns,
    Mx,
    Txt,
    Cname,
}

impl DnsType {
    pub const NAMES: &'static [&'static str] = &["A", "AAAA", "SOA", "NS", "MX", "TXT", "CNAME"];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DnsRcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
}

impl DnsRcode {
    pub const NAMES: &'static [&'static str] = &[
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsTransport {
    Udp,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsCheck {
    pub name: String,
    pub qtype: DnsType,
    pub expect_rcode: DnsRcode,
    /// Addresses that must all be in the answer (A/AAAA).
    pub expect_addresses: Vec<IpAddr>,
    pub transport: DnsTransport,
    /// Send an EDNS(0) OPT record with the query (RFC 6891).
    pub edns: bool,
}

/// Real servers taken from a DNS name: every address (A/AAAA) or target (SRV) of the
/// answer becomes a real server shaped like `template`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DnsRealServers {
    pub lookup: DnsLookup,
    /// Everything of each real server but its address (and, for SRV, its weight): the
    /// address is unspecified, the port the entry's (0 for SRV).
    pub template: RealServer,
}

impl DnsRealServers {
    /// The real server for one resolved destination; `weight` is an SRV record's.
    pub fn real_server(&self, address: SocketAddr, weight: Option<u32>) -> RealServer {
        let mut rs = self.template.clone();
        rs.address = address;
        if let Some(w) = weight {
            rs.weight = w;
        }
        rs
    }
}

/// What a `real_servers_from_dns` entry asks of DNS, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DnsLookup {
    /// The name looked up, as written (a name without a final dot may be searched in the
    /// resolver's domains).
    pub name: String,
    pub record: DnsRecord,
    /// A/AAAA: the port of every address; `None` for SRV (the records give it).
    pub port: Option<u16>,
    pub resolver: DnsResolver,
    /// The record's TTL is kept within these: re-resolved no sooner than `min_ttl` and no
    /// later than `max_ttl` after the last answer (a failure retries after `min_ttl`).
    #[serde(serialize_with = "crate::duration::serialize")]
    pub min_ttl: Duration,
    #[serde(serialize_with = "crate::duration::serialize")]
    pub max_ttl: Duration,
}

/// The record type a `real_servers_from_dns` entry resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DnsRecord {
    A,
    Aaaa,
    /// RFC 2782: port and weight from each record; the target resolved to A or AAAA
    /// by the service's family.
    Srv,
}

impl DnsRecord {
    pub const NAMES: &'static [&'static str] = &["A", "AAAA", "SRV"];

    pub fn name(self) -> &'static str {
        match self {
            DnsRecord::A => "A",
            DnsRecord::Aaaa => "AAAA",
            DnsRecord::Srv => "SRV",
        }
    }
}

/// Which DNS servers answer, and how long each may take.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct DnsResolver {
    /// Asked in order; empty: those of /etc/resolv.conf (and its options).
    pub nameservers: Vec<SocketAddr>,
    #[serde(serialize_with = "crate::duration::serialize")]
    pub timeout: Duration,
    /// Tries per name server before the resolution fails.
    pub attempts: u32,
}

pub const DEFAULT_DNS_MIN_TTL: Duration = Duration::from_secs(5);
pub const DEFAULT_DNS_MAX_TTL: Duration = Duration::from_secs(300);
pub const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
pub const DEFAULT_DNS_ATTEMPTS: u32 = 2;
