//! The typed model of what IPVS holds: services, destinations, statistics, the sync daemon
//! and timeouts.
//!
//! Keys ([`ServiceKey`], [`DestinationKey`]) are `Eq + Hash + Ord` so a table can be kept
//! in maps and a desired table diffed against a dumped one. The configurable parts
//! ([`Service`], [`Destination`]) hold exactly what the kernel stores and dumps back, so a
//! service written and dumped again compares equal; counters and statistics live beside
//! them in [`ServiceEntry`] and [`DestinationEntry`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Address family (`AF_INET` = 2, `AF_INET6` = 10 in `linux/socket.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4.
    Inet,
    /// IPv6.
    Inet6,
}

impl Family {
    /// The `AF_*` value.
    pub fn to_raw(self) -> u16 {
        match self {
            Family::Inet => libc::AF_INET as u16,
            Family::Inet6 => libc::AF_INET6 as u16,
        }
    }

    /// From an `AF_*` value.
    pub fn from_raw(af: u16) -> Option<Family> {
        match i32::from(af) {
            libc::AF_INET => Some(Family::Inet),
            libc::AF_INET6 => Some(Family::Inet6),
            _ => None,
        }
    }

    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Inet,
            IpAddr::V6(_) => Family::Inet6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Inet => "IPv4",
            Family::Inet6 => "IPv6",
        })
    }
}

/// Transport protocol of a service (`IPPROTO_*` in `linux/in.h`). IPVS accepts TCP, UDP
/// and SCTP; other values are kept so a dump never fails on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// `IPPROTO_TCP` (6).
    Tcp,
    /// `IPPROTO_UDP` (17).
    Udp,
    /// `IPPROTO_SCTP` (132).
    Sctp,
    /// Anything else.
    Other(u16),
}

impl Protocol {
    /// The `IPPROTO_*` value.
    pub fn to_raw(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Other(p) => p,
        }
    }

    /// From an `IPPROTO_*` value.
    pub fn from_raw(p: u16) -> Protocol {
        match p {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            p => Protocol::Other(p),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Sctp => f.write_str("sctp"),
            Protocol::Other(p) => write!(f, "proto-{p}"),
        }
    }
}

/// What identifies a virtual service in the kernel: protocol + address + port, or a
/// firewall mark + family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceKey {
    /// A service on an address and port (`ipvsadm -t/-u/--sctp-service`). Port 0 means
    /// all ports (only with persistence).
    Addr {
        /// Protocol.
        protocol: Protocol,
        /// Virtual address and port; its family is the service's.
        addr: SocketAddr,
    },
    /// A firewall-mark service (`ipvsadm -f`).
    Fwmark {
        /// Family of the packets it matches.
        family: Family,
        /// The mark (non-zero).
        mark: u32,
    },
}

impl ServiceKey {
    /// TCP service on `addr`.
    pub fn tcp(addr: SocketAddr) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr,
        }
    }

    /// UDP service on `addr`.
    pub fn udp(addr: SocketAddr) -> ServiceKey {
        ServiceKey::Addr {
            protocol: Protocol::Udp,
            addr,
        }
    }

    /// Firewall-mark service.
    pub fn fwmark(family: Family, mark: u32) -> ServiceKey {
        ServiceKey::Fwmark { family, mark }
    }

    /// The service's address family.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(&addr.ip()),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr } => write!(f, "{protocol} {addr}"),
            ServiceKey::Fwmark { family, mark } => write!(f, "fwmark {mark} ({family})"),
        }
    }
}

/// Why a text is not a [`ServiceKey`] in its [`Display`](fmt::Display) form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{text}\" is not a service key (expected \"tcp 10.0.0.1:80\", \"udp [2001:db8::1]:53\", \"sctp ...\", \"proto-N ...\" or \"fwmark 7 (IPv4)\")"
)]
pub struct ServiceKeyParseError {
    /// The text that was given.
    pub text: String,
}

/// Reads back what [`Display`](fmt::Display) writes, e.g. from a state file: the keys a
/// director owned must survive a restart in a form an operator can read.
impl std::str::FromStr for ServiceKey {
    type Err = ServiceKeyParseError;

    fn from_str(text: &str) -> Result<ServiceKey, ServiceKeyParseError> {
        let bad = || ServiceKeyParseError {
            text: text.to_string(),
        };
        let (head, rest) = text.trim().split_once(' ').ok_or_else(bad)?;
        if head == "fwmark" {
            let (mark, family) = rest.split_once(' ').ok_or_else(bad)?;
            let mark: u32 = mark.parse().map_err(|_| bad())?;
            let family = match family {
                "(IPv4)" => Family::Inet,
                "(IPv6)" => Family::Inet6,
                _ => return Err(bad()),
            };
            return Ok(ServiceKey::Fwmark { family, mark });
        }
        let protocol = match head {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            other => Protocol::Other(
                other
                    .strip_prefix("proto-")
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(bad)?,
            ),
        };
        let addr = rest.parse().map_err(|_| bad())?;
        Ok(ServiceKey::Addr { protocol, addr })
    }
}

/// Service flags (`IP_VS_SVC_F_*` in `linux/ip_vs.h`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// `IP_VS_SVC_F_PERSISTENT`: persistent service (`ipvsadm -p`).
    pub const PERSISTENT: ServiceFlags = ServiceFlags(0x0001);
    /// `IP_VS_SVC_F_HASHED`: kernel-internal; never sent, stripped from dumps.
    pub const HASHED: ServiceFlags = ServiceFlags(0x0002);
    /// `IP_VS_SVC_F_ONEPACKET`: one-packet scheduling (`ipvsadm -o`, UDP).
    pub const ONE_PACKET: ServiceFlags = ServiceFlags(0x0004);
    /// `IP_VS_SVC_F_SCHED1`: scheduler flag 1.
    pub const SCHED1: ServiceFlags = ServiceFlags(0x0008);
    /// `IP_VS_SVC_F_SCHED2`: scheduler flag 2.
    pub const SCHED2: ServiceFlags = ServiceFlags(0x0010);
    /// `IP_VS_SVC_F_SCHED3`: scheduler flag 3.
    pub const SCHED3: ServiceFlags = ServiceFlags(0x0020);
    /// `IP_VS_SVC_F_SCHED_SH_FALLBACK` (= SCHED1): `sh` falls back to another real if the
    /// chosen one is unavailable. `mh` uses the same bit (`mh-fallback`).
    pub const SH_FALLBACK: ServiceFlags = Self::SCHED1;
    /// `IP_VS_SVC_F_SCHED_SH_PORT` (= SCHED2): `sh` hashes the source port too. `mh` uses
    /// the same bit (`mh-port`).
    pub const SH_PORT: ServiceFlags = Self::SCHED2;

    /// The empty set.
    pub const fn empty() -> ServiceFlags {
        ServiceFlags(0)
    }

    /// Raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// All of `other` is set.
    pub const fn contains(self, other: ServiceFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for ServiceFlags {
    type Output = ServiceFlags;
    fn bitor(self, rhs: ServiceFlags) -> ServiceFlags {
        ServiceFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for ServiceFlags {
    fn bitor_assign(&mut self, rhs: ServiceFlags) {
        self.0 |= rhs.0;
    }
}

/// The persistence granularity (`IPVS_SVC_ATTR_NETMASK`): clients in the same network
/// stick to the same real server. The kernel stores an IPv4 mask in network order and an
/// IPv6 prefix length as a plain number in the same 32-bit field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Netmask {
    /// IPv4 mask, e.g. 255.255.255.255 (the default: per client address).
    V4(Ipv4Addr),
    /// IPv6 prefix length, 1 to 128 (128 is the default).
    V6(u8),
}

impl Netmask {
    /// The per-client default: `/32` for IPv4, `/128` for IPv6 (what `ipvsadm` uses).
    pub fn host(family: Family) -> Netmask {
        match family {
            Family::Inet => Netmask::V4(Ipv4Addr::BROADCAST),
            Family::Inet6 => Netmask::V6(128),
        }
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(m) => write!(f, "{m}"),
            Netmask::V6(p) => write!(f, "/{p}"),
        }
    }
}

/// A virtual service: its key and its settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Service {
    /// What identifies it.
    pub key: ServiceKey,
    /// Scheduler name (`rr`, `wrr`, `lc`, `wlc`, `lblc`, `lblcr`, `dh`, `sh`, `sed`, `nq`,
    /// `fo`, `ovf`, `mh`, `twos`, ...), at most 15 bytes. The kernel dumps `none` for a
    /// service without scheduler.
    pub scheduler: String,
    /// Flags; `HASHED` is never sent and is stripped from dumps.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (meaningful with `PERSISTENT`).
    pub timeout: u32,
    /// Persistence granularity.
    pub netmask: Netmask,
    /// Persistence engine (`sip`), if any; at most 15 bytes.
    pub pe_name: Option<String>,
}

impl Service {
    /// A service with `scheduler`, no flags, no persistence and the per-client netmask.
    pub fn new(key: ServiceKey, scheduler: impl Into<String>) -> Service {
        Service {
            netmask: Netmask::host(key.family()),
            key,
            scheduler: scheduler.into(),
            flags: ServiceFlags::empty(),
            timeout: 0,
            pe_name: None,
        }
    }

    /// Makes the service persistent for `timeout` seconds (`ipvsadm -p TIMEOUT`).
    pub fn persistent(mut self, timeout: u32) -> Service {
        self.flags |= ServiceFlags::PERSISTENT;
        self.timeout = timeout;
        self
    }
}

/// How packets reach a real server (`IP_VS_CONN_F_*` & `IP_VS_CONN_F_FWD_MASK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForwardMethod {
    /// `IP_VS_CONN_F_MASQ` (0): NAT (`ipvsadm -m`).
    Masquerade,
    /// `IP_VS_CONN_F_LOCALNODE` (1): local delivery.
    Local,
    /// `IP_VS_CONN_F_TUNNEL` (2): IP-in-IP / GUE / GRE tunnel (`ipvsadm -i`).
    Tunnel,
    /// `IP_VS_CONN_F_DROUTE` (3): direct routing (`ipvsadm -g`).
    DirectRoute,
    /// `IP_VS_CONN_F_BYPASS` (4): cache bypass (kernel-internal, kept for dumps).
    Bypass,
}

impl ForwardMethod {
    /// The `IP_VS_CONN_F_*` value.
    pub fn to_raw(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => 0,
            ForwardMethod::Local => 1,
            ForwardMethod::Tunnel => 2,
            ForwardMethod::DirectRoute => 3,
            ForwardMethod::Bypass => 4,
        }
    }

    /// From an `IP_VS_CONN_F_*` value (after `IP_VS_CONN_F_FWD_MASK`).
    pub fn from_raw(v: u32) -> Option<ForwardMethod> {
        Some(match v {
            0 => ForwardMethod::Masquerade,
            1 => ForwardMethod::Local,
            2 => ForwardMethod::Tunnel,
            3 => ForwardMethod::DirectRoute,
            4 => ForwardMethod::Bypass,
            _ => return None,
        })
    }
}

/// Tunnel encapsulation (`IP_VS_CONN_F_TUNNEL_TYPE_*`), used with [`ForwardMethod::Tunnel`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelType {
    /// `IP_VS_CONN_F_TUNNEL_TYPE_IPIP` (0), the default.
    #[default]
    Ipip,
    /// `IP_VS_CONN_F_TUNNEL_TYPE_GUE` (1): needs a tunnel port.
    Gue,
    /// `IP_VS_CONN_F_TUNNEL_TYPE_GRE` (2).
    Gre,
}

impl TunnelType {
    /// The raw value.
    pub fn to_raw(self) -> u8 {
        match self {
            TunnelType::Ipip => 0,
            TunnelType::Gue => 1,
            TunnelType::Gre => 2,
        }
    }

    /// From the raw value.
    pub fn from_raw(v: u8) -> Option<TunnelType> {
        Some(match v {
            0 => TunnelType::Ipip,
            1 => TunnelType::Gue,
            2 => TunnelType::Gre,
            _ => return None,
        })
    }
}

/// Tunnel settings of a destination (`IPVS_DEST_ATTR_TUN_*`). The kernel stores and
/// dumps them for every destination; they only matter with [`ForwardMethod::Tunnel`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tunnel {
    /// Encapsulation.
    pub kind: TunnelType,
    /// UDP port for GUE (0 otherwise).
    pub port: u16,
    /// `IP_VS_TUNNEL_ENCAP_FLAG_*`: 0 = no checksum, 1 = `CSUM`, 2 = `REMCSUM`.
    pub flags: u16,
}

/// What identifies a destination within its service: address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationKey(pub SocketAddr);

impl fmt::Display for DestinationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A real server of a service: key and settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// Address and port of the real server. Its family may differ from the service's only
    /// with [`ForwardMethod::Tunnel`].
    pub addr: SocketAddr,
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Weight (0 = quiesced, no new connections); at most `i32::MAX`.
    pub weight: u32,
    /// Upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// Lower connection threshold (0 = none).
    pub lower_threshold: u32,
    /// Tunnel settings.
    pub tunnel: Tunnel,
}

impl Destination {
    /// A destination with weight 1, no thresholds and default tunnel settings.
    pub fn new(addr: SocketAddr, forward: ForwardMethod) -> Destination {
        Destination {
            addr,
            forward,
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: Tunnel::default(),
        }
    }

    /// Sets the weight.
    pub fn weight(mut self, weight: u32) -> Destination {
        self.weight = weight;
        self
    }

    /// The key within the service.
    pub fn key(&self) -> DestinationKey {
        DestinationKey(self.addr)
    }
}

/// Traffic counters and rates (`IPVS_STATS_ATTR_*`). From `IPVS_*_ATTR_STATS64` when the
/// kernel sends it (4.1+), else from the 32-bit `IPVS_*_ATTR_STATS`. The kernel refreshes
/// them from per-CPU counters every 2 seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Connections scheduled.
    pub conns: u64,
    /// Incoming packets.
    pub inpkts: u64,
    /// Outgoing packets.
    pub outpkts: u64,
    /// Incoming bytes.
    pub inbytes: u64,
    /// Outgoing bytes.
    pub outbytes: u64,
    /// Connection rate (per second).
    pub cps: u64,
    /// Incoming packet rate.
    pub inpps: u64,
    /// Outgoing packet rate.
    pub outpps: u64,
    /// Incoming byte rate.
    pub inbps: u64,
    /// Outgoing byte rate.
    pub outbps: u64,
}

/// A service as dumped: settings and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service.
    pub service: Service,
    /// Its statistics.
    pub stats: Stats,
}

/// A destination as dumped: settings, connection counts and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationEntry {
    /// The destination.
    pub destination: Destination,
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS`.
    pub active_conns: u32,
    /// `IPVS_DEST_ATTR_INACT_CONNS`.
    pub inactive_conns: u32,
    /// `IPVS_DEST_ATTR_PERSIST_CONNS`.
    pub persist_conns: u32,
    /// Its statistics.
    pub stats: Stats,
}

/// Role of a connection-sync daemon (`IP_VS_STATE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SyncState {
    /// `IP_VS_STATE_MASTER` (1): sends connection state.
    Master,
    /// `IP_VS_STATE_BACKUP` (2): receives it.
    Backup,
}

impl SyncState {
    /// Raw value.
    pub fn to_raw(self) -> u32 {
        match self {
            SyncState::Master => 1,
            SyncState::Backup => 2,
        }
    }

    /// From the raw value.
    pub fn from_raw(v: u32) -> Option<SyncState> {
        match v {
            1 => Some(SyncState::Master),
            2 => Some(SyncState::Backup),
            _ => None,
        }
    }
}

impl fmt::Display for SyncState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncState::Master => "master",
            SyncState::Backup => "backup",
        })
    }
}

/// A connection-synchronisation daemon (`IPVS_DAEMON_ATTR_*`). The optional fields are
/// the newer (4.3+) sync parameters; `None` lets the kernel choose (and a dump from a
/// 4.3+ kernel always fills them in).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SyncDaemon {
    /// Master or backup.
    pub state: SyncState,
    /// Multicast interface, at most 15 bytes.
    pub interface: String,
    /// Sync id (0 to 255).
    pub sync_id: u8,
    /// `IPVS_DAEMON_ATTR_SYNC_MAXLEN`: UDP payload size.
    pub sync_maxlen: Option<u16>,
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP`/`GROUP6`: multicast group.
    pub mcast_group: Option<IpAddr>,
    /// `IPVS_DAEMON_ATTR_MCAST_PORT`: base port (host order on the wire).
    pub mcast_port: Option<u16>,
    /// `IPVS_DAEMON_ATTR_MCAST_TTL`.
    pub mcast_ttl: Option<u8>,
}

impl SyncDaemon {
    /// A daemon with kernel defaults for the optional parameters.
    pub fn new(state: SyncState, interface: impl Into<String>, sync_id: u8) -> SyncDaemon {
        SyncDaemon {
            state,
            interface: interface.into(),
            sync_id,
            sync_maxlen: None,
            mcast_group: None,
            mcast_port: None,
            mcast_ttl: None,
        }
    }
}

/// Connection timeouts in seconds (`IPVS_CMD_ATTR_TIMEOUT_*`). When setting, 0 leaves a
/// value unchanged (that is the kernel's rule).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Timeouts {
    /// Established TCP connections.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// General IPVS information (`IPVS_CMD_GET_INFO`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// `IPVS_INFO_ATTR_VERSION`: `IP_VS_VERSION_CODE`, e.g. 0x010201 for 1.2.1.
    pub version: u32,
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE`: size of the connection hash table.
    pub conn_tab_size: u32,
}

impl Info {
    /// The version as (major, minor, patch).
    pub fn version_triple(&self) -> (u8, u8, u8) {
        let [_, a, b, c] = self.version.to_be_bytes();
        (a, b, c)
    }
}

/// What an operation was about, for error messages: `adding destination 10.0.0.11:80 to
/// tcp 192.0.2.100:80`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Resolving the "IPVS" generic-netlink family.
    ResolveFamily,
    /// Opening or configuring the socket.
    Open,
    /// `IPVS_CMD_GET_INFO`.
    GetInfo,
    /// `IPVS_CMD_NEW_SERVICE`.
    AddService(ServiceKey),
    /// `IPVS_CMD_SET_SERVICE`.
    UpdateService(ServiceKey),
    /// `IPVS_CMD_DEL_SERVICE`.
    DeleteService(ServiceKey),
    /// `IPVS_CMD_GET_SERVICE`.
    GetService(ServiceKey),
    /// `IPVS_CMD_GET_SERVICE` dump.
    ListServices,
    /// `IPVS_CMD_NEW_DEST`.
    AddDestination(ServiceKey, DestinationKey),
    /// `IPVS_CMD_SET_DEST`.
    UpdateDestination(ServiceKey, DestinationKey),
    /// `IPVS_CMD_DEL_DEST`.
    DeleteDestination(ServiceKey, DestinationKey),
    /// `IPVS_CMD_GET_DEST` dump.
    ListDestinations(ServiceKey),
    /// `IPVS_CMD_NEW_DAEMON`.
    StartSyncDaemon(SyncState),
    /// `IPVS_CMD_DEL_DAEMON`.
    StopSyncDaemon(SyncState),
    /// `IPVS_CMD_GET_DAEMON` dump.
    ListSyncDaemons,
    /// `IPVS_CMD_GET_CONFIG`.
    GetTimeouts,
    /// `IPVS_CMD_SET_CONFIG`.
    SetTimeouts,
    /// `IPVS_CMD_ZERO`.
    Zero(Option<ServiceKey>),
    /// `IPVS_CMD_FLUSH`.
    Flush,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::ResolveFamily => f.write_str("resolving generic netlink family IPVS"),
            Operation::Open => f.write_str("opening the netlink socket"),
            Operation::GetInfo => f.write_str("getting IPVS info"),
            Operation::AddService(s) => write!(f, "adding service {s}"),
            Operation::UpdateService(s) => write!(f, "updating service {s}"),
            Operation::DeleteService(s) => write!(f, "deleting service {s}"),
            Operation::GetService(s) => write!(f, "getting service {s}"),
            Operation::ListServices => f.write_str("listing services"),
            Operation::AddDestination(s, d) => write!(f, "adding destination {d} to {s}"),
            Operation::UpdateDestination(s, d) => write!(f, "updating destination {d} of {s}"),
            Operation::DeleteDestination(s, d) => {
                write!(f, "deleting destination {d} from {s}")
            }
            Operation::ListDestinations(s) => write!(f, "listing destinations of {s}"),
            Operation::StartSyncDaemon(st) => write!(f, "starting the {st} sync daemon"),
            Operation::StopSyncDaemon(st) => write!(f, "stopping the {st} sync daemon"),
            Operation::ListSyncDaemons => f.write_str("listing sync daemons"),
            Operation::GetTimeouts => f.write_str("getting timeouts"),
            Operation::SetTimeouts => f.write_str("setting timeouts"),
            Operation::Zero(None) => f.write_str("zeroing all counters"),
            Operation::Zero(Some(s)) => write!(f, "zeroing counters of {s}"),
            Operation::Flush => f.write_str("flushing the IPVS table"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keys_read_back_what_display_writes() {
        let keys = [
            ServiceKey::tcp("10.0.0.1:80".parse().unwrap()),
            ServiceKey::udp("[2001:db8::1]:53".parse().unwrap()),
            ServiceKey::Addr {
                protocol: Protocol::Sctp,
                addr: "192.0.2.1:0".parse().unwrap(),
            },
            ServiceKey::Addr {
                protocol: Protocol::Other(99),
                addr: "192.0.2.1:9".parse().unwrap(),
            },
            ServiceKey::fwmark(Family::Inet, 7),
            ServiceKey::fwmark(Family::Inet6, u32::MAX),
        ];
        for key in keys {
            let text = key.to_string();
            assert_eq!(text.parse::<ServiceKey>(), Ok(key), "{text}");
        }
    }

    #[test]
    fn bad_service_keys_are_refused_with_the_text() {
        for text in [
            "",
            "tcp",
            "tcp 10.0.0.1",
            "icmp 10.0.0.1:80",
            "proto-x 10.0.0.1:80",
            "fwmark 7",
            "fwmark x (IPv4)",
            "fwmark 7 (IPv5)",
        ] {
            let e = text.parse::<ServiceKey>().unwrap_err();
            assert_eq!(e.text, text);
            assert!(e.to_string().contains("is not a service key"), "{e}");
        }
    }
}
