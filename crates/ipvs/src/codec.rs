//! The IPVS generic-netlink codec: requests to bytes, reply attributes to model types.
//! Pure: no sockets. Constants carry the names from `include/uapi/linux/ip_vs.h`.
//!
//! Wire facts worth knowing (checked against `net/netfilter/ipvs/ip_vs_ctl.c`):
//! - Ports (`IPVS_SVC_ATTR_PORT`, `IPVS_DEST_ATTR_PORT`, `IPVS_DEST_ATTR_TUN_PORT`) are
//!   network order; the sync daemon's `IPVS_DAEMON_ATTR_MCAST_PORT` is host order.
//! - Addresses are a 16-byte `union nf_inet_addr`; IPv4 uses the first 4 bytes.
//! - `IPVS_SVC_ATTR_NETMASK` is an IPv4 mask in network order, or for IPv6 a prefix
//!   length as a host-order number.
//! - `IPVS_SVC_ATTR_FLAGS` is `struct ip_vs_flags { u32 flags; u32 mask; }`; the kernel
//!   applies `(old & ~mask) | (flags & mask)`. We always send mask = all ones so the
//!   flags written are exactly the flags wanted.
//! - The kernel nests without `NLA_F_NESTED` (`nla_nest_start_noflag`) and parses
//!   without requiring it; we set it when sending and ignore it when reading.
//! - Dumps answer with `IPVS_CMD_NEW_SERVICE`/`NEW_DEST`/`NEW_DAEMON` messages;
//!   `GET_CONFIG` answers `SET_CONFIG`, `GET_INFO` answers `SET_INFO`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::error::{DecodeError, EncodeError};
use crate::model::{
    Destination, DestinationEntry, DestinationKey, Family, ForwardMethod, Info, Netmask, Operation,
    Protocol, Service, ServiceEntry, ServiceFlags, ServiceKey, Stats, SyncDaemon, SyncState,
    Timeouts, Tunnel, TunnelType,
};
use crate::netlink::{self, Attr, MessageWriter, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};

/// `IPVS_GENL_NAME`.
pub const IPVS_GENL_NAME: &str = "IPVS";
/// `IPVS_GENL_VERSION`.
pub const IPVS_GENL_VERSION: u8 = 1;

/// `IP_VS_SCHEDNAME_MAXLEN` (16, with the NUL).
pub const IP_VS_SCHEDNAME_MAXLEN: usize = 16;
/// `IP_VS_PENAME_MAXLEN` (16, with the NUL).
pub const IP_VS_PENAME_MAXLEN: usize = 16;
/// `IP_VS_IFNAME_MAXLEN` (16, with the NUL).
pub const IP_VS_IFNAME_MAXLEN: usize = 16;
/// `IP_VS_CONN_F_FWD_MASK`.
pub const IP_VS_CONN_F_FWD_MASK: u32 = 0x0007;

/// Generic-netlink commands (`enum { IPVS_CMD_* }`).
pub mod cmd {
    /// `IPVS_CMD_NEW_SERVICE`.
    pub const NEW_SERVICE: u8 = 1;
    /// `IPVS_CMD_SET_SERVICE`.
    pub const SET_SERVICE: u8 = 2;
    /// `IPVS_CMD_DEL_SERVICE`.
    pub const DEL_SERVICE: u8 = 3;
    /// `IPVS_CMD_GET_SERVICE`.
    pub const GET_SERVICE: u8 = 4;
    /// `IPVS_CMD_NEW_DEST`.
    pub const NEW_DEST: u8 = 5;
    /// `IPVS_CMD_SET_DEST`.
    pub const SET_DEST: u8 = 6;
    /// `IPVS_CMD_DEL_DEST`.
    pub const DEL_DEST: u8 = 7;
    /// `IPVS_CMD_GET_DEST`.
    pub const GET_DEST: u8 = 8;
    /// `IPVS_CMD_NEW_DAEMON`.
    pub const NEW_DAEMON: u8 = 9;
    /// `IPVS_CMD_DEL_DAEMON`.
    pub const DEL_DAEMON: u8 = 10;
    /// `IPVS_CMD_GET_DAEMON`.
    pub const GET_DAEMON: u8 = 11;
    /// `IPVS_CMD_SET_CONFIG`.
    pub const SET_CONFIG: u8 = 12;
    /// `IPVS_CMD_GET_CONFIG`.
    pub const GET_CONFIG: u8 = 13;
    /// `IPVS_CMD_SET_INFO` (only in `GET_INFO` replies).
    pub const SET_INFO: u8 = 14;
    /// `IPVS_CMD_GET_INFO`.
    pub const GET_INFO: u8 = 15;
    /// `IPVS_CMD_ZERO`.
    pub const ZERO: u8 = 16;
    /// `IPVS_CMD_FLUSH`.
    pub const FLUSH: u8 = 17;
}

/// First-level attributes (`IPVS_CMD_ATTR_*`).
pub mod cmd_attr {
    /// `IPVS_CMD_ATTR_SERVICE`, nested.
    pub const SERVICE: u16 = 1;
    /// `IPVS_CMD_ATTR_DEST`, nested.
    pub const DEST: u16 = 2;
    /// `IPVS_CMD_ATTR_DAEMON`, nested.
    pub const DAEMON: u16 = 3;
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP`, u32.
    pub const TIMEOUT_TCP: u16 = 4;
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN`, u32.
    pub const TIMEOUT_TCP_FIN: u16 = 5;
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP`, u32.
    pub const TIMEOUT_UDP: u16 = 6;
}

/// Service attributes (`IPVS_SVC_ATTR_*`), inside `IPVS_CMD_ATTR_SERVICE`.
pub mod svc_attr {
    /// `IPVS_SVC_ATTR_AF`, u16.
    pub const AF: u16 = 1;
    /// `IPVS_SVC_ATTR_PROTOCOL`, u16.
    pub const PROTOCOL: u16 = 2;
    /// `IPVS_SVC_ATTR_ADDR`, 16-byte `nf_inet_addr`.
    pub const ADDR: u16 = 3;
    /// `IPVS_SVC_ATTR_PORT`, be16.
    pub const PORT: u16 = 4;
    /// `IPVS_SVC_ATTR_FWMARK`, u32.
    pub const FWMARK: u16 = 5;
    /// `IPVS_SVC_ATTR_SCHED_NAME`, string.
    pub const SCHED_NAME: u16 = 6;
    /// `IPVS_SVC_ATTR_FLAGS`, `struct ip_vs_flags`.
    pub const FLAGS: u16 = 7;
    /// `IPVS_SVC_ATTR_TIMEOUT`, u32 seconds.
    pub const TIMEOUT: u16 = 8;
    /// `IPVS_SVC_ATTR_NETMASK`, be32 mask (IPv4) or u32 prefix (IPv6).
    pub const NETMASK: u16 = 9;
    /// `IPVS_SVC_ATTR_STATS`, nested.
    pub const STATS: u16 = 10;
    /// `IPVS_SVC_ATTR_PE_NAME`, string.
    pub const PE_NAME: u16 = 11;
    /// `IPVS_SVC_ATTR_STATS64`, nested.
    pub const STATS64: u16 = 12;
}

/// Destination attributes (`IPVS_DEST_ATTR_*`), inside `IPVS_CMD_ATTR_DEST`.
pub mod dest_attr {
    /// `IPVS_DEST_ATTR_ADDR`, 16-byte `nf_inet_addr`.
    pub const ADDR: u16 = 1;
    /// `IPVS_DEST_ATTR_PORT`, be16.
    pub const PORT: u16 = 2;
    /// `IPVS_DEST_ATTR_FWD_METHOD`, u32.
    pub const FWD_METHOD: u16 = 3;
    /// `IPVS_DEST_ATTR_WEIGHT`, u32 (an `int` in the kernel).
    pub const WEIGHT: u16 = 4;
    /// `IPVS_DEST_ATTR_U_THRESH`, u32.
    pub const U_THRESH: u16 = 5;
    /// `IPVS_DEST_ATTR_L_THRESH`, u32.
    pub const L_THRESH: u16 = 6;
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS`, u32.
    pub const ACTIVE_CONNS: u16 = 7;
    /// `IPVS_DEST_ATTR_INACT_CONNS`, u32.
    pub const INACT_CONNS: u16 = 8;
    /// `IPVS_DEST_ATTR_PERSIST_CONNS`, u32.
    pub const PERSIST_CONNS: u16 = 9;
    /// `IPVS_DEST_ATTR_STATS`, nested.
    pub const STATS: u16 = 10;
    /// `IPVS_DEST_ATTR_ADDR_FAMILY`, u16.
    pub const ADDR_FAMILY: u16 = 11;
    /// `IPVS_DEST_ATTR_STATS64`, nested.
    pub const STATS64: u16 = 12;
    /// `IPVS_DEST_ATTR_TUN_TYPE`, u8.
    pub const TUN_TYPE: u16 = 13;
    /// `IPVS_DEST_ATTR_TUN_PORT`, be16.
    pub const TUN_PORT: u16 = 14;
    /// `IPVS_DEST_ATTR_TUN_FLAGS`, u16.
    pub const TUN_FLAGS: u16 = 15;
}

/// Sync daemon attributes (`IPVS_DAEMON_ATTR_*`), inside `IPVS_CMD_ATTR_DAEMON`.
pub mod daemon_attr {
    /// `IPVS_DAEMON_ATTR_STATE`, u32.
    pub const STATE: u16 = 1;
    /// `IPVS_DAEMON_ATTR_MCAST_IFN`, string.
    pub const MCAST_IFN: u16 = 2;
    /// `IPVS_DAEMON_ATTR_SYNC_ID`, u32.
    pub const SYNC_ID: u16 = 3;
    /// `IPVS_DAEMON_ATTR_SYNC_MAXLEN`, u16.
    pub const SYNC_MAXLEN: u16 = 4;
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP`, `in_addr` (network order).
    pub const MCAST_GROUP: u16 = 5;
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP6`, `in6_addr`.
    pub const MCAST_GROUP6: u16 = 6;
    /// `IPVS_DAEMON_ATTR_MCAST_PORT`, u16 host order.
    pub const MCAST_PORT: u16 = 7;
    /// `IPVS_DAEMON_ATTR_MCAST_TTL`, u8.
    pub const MCAST_TTL: u16 = 8;
}

/// Statistics attributes (`IPVS_STATS_ATTR_*`), inside `*_ATTR_STATS`/`STATS64`.
pub mod stats_attr {
    /// `IPVS_STATS_ATTR_CONNS`.
    pub const CONNS: u16 = 1;
    /// `IPVS_STATS_ATTR_INPKTS`.
    pub const INPKTS: u16 = 2;
    /// `IPVS_STATS_ATTR_OUTPKTS`.
    pub const OUTPKTS: u16 = 3;
    /// `IPVS_STATS_ATTR_INBYTES`.
    pub const INBYTES: u16 = 4;
    /// `IPVS_STATS_ATTR_OUTBYTES`.
    pub const OUTBYTES: u16 = 5;
    /// `IPVS_STATS_ATTR_CPS`.
    pub const CPS: u16 = 6;
    /// `IPVS_STATS_ATTR_INPPS`.
    pub const INPPS: u16 = 7;
    /// `IPVS_STATS_ATTR_OUTPPS`.
    pub const OUTPPS: u16 = 8;
    /// `IPVS_STATS_ATTR_INBPS`.
    pub const INBPS: u16 = 9;
    /// `IPVS_STATS_ATTR_OUTBPS`.
    pub const OUTBPS: u16 = 10;
    /// `IPVS_STATS_ATTR_PAD`: alignment padding for u64s, skipped.
    pub const PAD: u16 = 11;
}

/// `GET_INFO` reply attributes (`IPVS_INFO_ATTR_*`), at the first level.
pub mod info_attr {
    /// `IPVS_INFO_ATTR_VERSION`, u32.
    pub const VERSION: u16 = 1;
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE`, u32.
    pub const CONN_TAB_SIZE: u16 = 2;
}

/// One IPVS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `IPVS_CMD_GET_INFO`.
    GetInfo,
    /// `IPVS_CMD_NEW_SERVICE`.
    AddService(Service),
    /// `IPVS_CMD_SET_SERVICE`: replaces scheduler, flags, timeout, netmask, PE.
    UpdateService(Service),
    /// `IPVS_CMD_DEL_SERVICE` (its destinations go with it).
    DeleteService(ServiceKey),
    /// `IPVS_CMD_GET_SERVICE` (one service).
    GetService(ServiceKey),
    /// `IPVS_CMD_GET_SERVICE` with `NLM_F_DUMP`.
    ListServices,
    /// `IPVS_CMD_NEW_DEST`.
    AddDestination(ServiceKey, Destination),
    /// `IPVS_CMD_SET_DEST`.
    UpdateDestination(ServiceKey, Destination),
    /// `IPVS_CMD_DEL_DEST`.
    DeleteDestination(ServiceKey, DestinationKey),
    /// `IPVS_CMD_GET_DEST` with `NLM_F_DUMP`.
    ListDestinations(ServiceKey),
    /// `IPVS_CMD_NEW_DAEMON`.
    StartSyncDaemon(SyncDaemon),
    /// `IPVS_CMD_DEL_DAEMON`.
    StopSyncDaemon(SyncState),
    /// `IPVS_CMD_GET_DAEMON` with `NLM_F_DUMP`.
    ListSyncDaemons,
    /// `IPVS_CMD_GET_CONFIG`.
    GetTimeouts,
    /// `IPVS_CMD_SET_CONFIG`.
    SetTimeouts(Timeouts),
    /// `IPVS_CMD_ZERO`: one service's counters, or all.
    Zero(Option<ServiceKey>),
    /// `IPVS_CMD_FLUSH`: deletes every service and destination.
    Flush,
}

impl Request {
    /// The `IPVS_CMD_*` command.
    pub fn command(&self) -> u8 {
        match self {
            Request::GetInfo => cmd::GET_INFO,
            Request::AddService(_) => cmd::NEW_SERVICE,
            Request::UpdateService(_) => cmd::SET_SERVICE,
            Request::DeleteService(_) => cmd::DEL_SERVICE,
            Request::GetService(_) | Request::ListServices => cmd::GET_SERVICE,
            Request::AddDestination(..) => cmd::NEW_DEST,
            Request::UpdateDestination(..) => cmd::SET_DEST,
            Request::DeleteDestination(..) => cmd::DEL_DEST,
            Request::ListDestinations(_) => cmd::GET_DEST,
            Request::StartSyncDaemon(_) => cmd::NEW_DAEMON,
            Request::StopSyncDaemon(_) => cmd::DEL_DAEMON,
            Request::ListSyncDaemons => cmd::GET_DAEMON,
            Request::GetTimeouts => cmd::GET_CONFIG,
            Request::SetTimeouts(_) => cmd::SET_CONFIG,
            Request::Zero(_) => cmd::ZERO,
            Request::Flush => cmd::FLUSH,
        }
    }

    /// A dump (`NLM_F_DUMP`): answered by several messages and `NLMSG_DONE`, no ack.
    pub fn is_dump(&self) -> bool {
        matches!(
            self,
            Request::ListServices | Request::ListDestinations(_) | Request::ListSyncDaemons
        )
    }

    /// The `nlmsg_flags` we send: dumps `REQUEST|DUMP`, the rest `REQUEST|ACK` so every
    /// request is answered (an ack, or an error) and can be matched by sequence number.
    pub fn flags(&self) -> u16 {
        if self.is_dump() {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        }
    }

    /// What this request is about, for errors.
    pub fn operation(&self) -> Operation {
        match self {
            Request::GetInfo => Operation::GetInfo,
            Request::AddService(s) => Operation::AddService(s.key),
            Request::UpdateService(s) => Operation::UpdateService(s.key),
            Request::DeleteService(k) => Operation::DeleteService(*k),
            Request::GetService(k) => Operation::GetService(*k),
            Request::ListServices => Operation::ListServices,
            Request::AddDestination(k, d) => Operation::AddDestination(*k, d.key()),
            Request::UpdateDestination(k, d) => Operation::UpdateDestination(*k, d.key()),
            Request::DeleteDestination(k, d) => Operation::DeleteDestination(*k, *d),
            Request::ListDestinations(k) => Operation::ListDestinations(*k),
            Request::StartSyncDaemon(d) => Operation::StartSyncDaemon(d.state),
            Request::StopSyncDaemon(s) => Operation::StopSyncDaemon(*s),
            Request::ListSyncDaemons => Operation::ListSyncDaemons,
            Request::GetTimeouts => Operation::GetTimeouts,
            Request::SetTimeouts(_) => Operation::SetTimeouts,
            Request::Zero(k) => Operation::Zero(*k),
            Request::Flush => Operation::Flush,
        }
    }

    /// Appends this request as one netlink message to `buf`, for family id `family` and
    /// sequence number `seq`. On error `buf` is left as it was.
    pub fn encode(&self, family: u16, seq: u32, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.validate()?;
        let mut w = MessageWriter::new(
            buf,
            family,
            self.flags(),
            seq,
            self.command(),
            IPVS_GENL_VERSION,
        );
        match self {
            Request::GetInfo
            | Request::ListServices
            | Request::ListSyncDaemons
            | Request::GetTimeouts
            | Request::Flush
            | Request::Zero(None) => {}
            Request::AddService(s) | Request::UpdateService(s) => put_service(&mut w, s),
            Request::DeleteService(k)
            | Request::GetService(k)
            | Request::ListDestinations(k)
            | Request::Zero(Some(k)) => put_service_key(&mut w, k),
            Request::AddDestination(k, d) | Request::UpdateDestination(k, d) => {
                put_service_key(&mut w, k);
                put_destination(&mut w, d);
            }
            Request::DeleteDestination(k, d) => {
                put_service_key(&mut w, k);
                let t = w.begin_nested(cmd_attr::DEST);
                put_dest_key(&mut w, d.0);
                w.end_nested(t);
            }
            Request::StartSyncDaemon(d) => put_daemon(&mut w, d),
            Request::StopSyncDaemon(s) => {
                let t = w.begin_nested(cmd_attr::DAEMON);
                w.put_u32(daemon_attr::STATE, s.to_raw());
                w.end_nested(t);
            }
            Request::SetTimeouts(t) => {
                w.put_u32(cmd_attr::TIMEOUT_TCP, t.tcp);
                w.put_u32(cmd_attr::TIMEOUT_TCP_FIN, t.tcp_fin);
                w.put_u32(cmd_attr::TIMEOUT_UDP, t.udp);
            }
        }
        w.finish();
        Ok(())
    }

    fn validate(&self) -> Result<(), EncodeError> {
        match self {
            Request::AddService(s) | Request::UpdateService(s) => validate_service(s),
            Request::DeleteService(k)
            | Request::GetService(k)
            | Request::ListDestinations(k)
            | Request::Zero(Some(k))
            | Request::DeleteDestination(k, _) => validate_key(k),
            Request::AddDestination(k, d) | Request::UpdateDestination(k, d) => {
                validate_key(k)?;
                if d.weight > i32::MAX as u32 {
                    return Err(EncodeError::OutOfRange {
                        what: "weight",
                        value: u64::from(d.weight),
                    });
                }
                Ok(())
            }
            Request::StartSyncDaemon(d) => {
                check_name("sync daemon interface", &d.interface, IP_VS_IFNAME_MAXLEN)
            }
            Request::SetTimeouts(t) => {
                // The kernel multiplies by HZ into an int and rejects what overflows.
                for (what, v) in [("tcp timeout", t.tcp), ("tcp_fin timeout", t.tcp_fin)]
                    .into_iter()
                    .chain([("udp timeout", t.udp)])
                {
                    if v > i32::MAX as u32 / 1000 {
                        return Err(EncodeError::OutOfRange {
                            what,
                            value: u64::from(v),
                        });
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

fn check_name(what: &'static str, name: &str, max_with_nul: usize) -> Result<(), EncodeError> {
    if name.len() >= max_with_nul {
        return Err(EncodeError::NameTooLong {
            what,
            name: name.to_owned(),
            max: max_with_nul - 1,
        });
    }
    if name.as_bytes().contains(&0) {
        return Err(EncodeError::NameHasNul {
            what,
            name: name.to_owned(),
        });
    }
    Ok(())
}

fn validate_key(k: &ServiceKey) -> Result<(), EncodeError> {
    match k {
        // The kernel reads fwmark 0 as "no fwmark" and then wants an address.
        ServiceKey::Fwmark { mark: 0, .. } => Err(EncodeError::OutOfRange {
            what: "fwmark",
            value: 0,
        }),
        _ => Ok(()),
    }
}

fn validate_service(s: &Service) -> Result<(), EncodeError> {
    validate_key(&s.key)?;
    check_name("scheduler name", &s.scheduler, IP_VS_SCHEDNAME_MAXLEN)?;
    if let Some(pe) = &s.pe_name {
        check_name("persistence engine name", pe, IP_VS_PENAME_MAXLEN)?;
    }
    match (s.key.family(), s.netmask) {
        (Family::Inet, Netmask::V4(_)) => Ok(()),
        (Family::Inet6, Netmask::V6(p)) if (1..=128).contains(&p) => Ok(()),
        (Family::Inet6, Netmask::V6(p)) => Err(EncodeError::OutOfRange {
            what: "IPv6 netmask prefix length",
            value: u64::from(p),
        }),
        (family, m) => Err(EncodeError::NetmaskFamily {
            netmask: m.to_string(),
            family,
        }),
    }
}

/// `union nf_inet_addr`: 16 bytes, IPv4 in the first 4.
fn inet_addr(ip: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => b[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => b = v6.octets(),
    }
    b
}

fn put_service_key_attrs(w: &mut MessageWriter<'_>, k: &ServiceKey) {
    w.put_u16(svc_attr::AF, k.family().to_raw());
    match k {
        ServiceKey::Fwmark { mark, .. } => w.put_u32(svc_attr::FWMARK, *mark),
        ServiceKey::Addr { protocol, addr } => {
            w.put_u16(svc_attr::PROTOCOL, protocol.to_raw());
            w.put(svc_attr::ADDR, &inet_addr(addr.ip()));
            w.put_be16(svc_attr::PORT, addr.port());
        }
    }
}

fn put_service_key(w: &mut MessageWriter<'_>, k: &ServiceKey) {
    let t = w.begin_nested(cmd_attr::SERVICE);
    put_service_key_attrs(w, k);
    w.end_nested(t);
}

fn put_service(w: &mut MessageWriter<'_>, s: &Service) {
    let t = w.begin_nested(cmd_attr::SERVICE);
    put_service_key_attrs(w, &s.key);
    w.put_str(svc_attr::SCHED_NAME, &s.scheduler);
    if let Some(pe) = &s.pe_name {
        w.put_str(svc_attr::PE_NAME, pe);
    }
    let flags = s.flags.bits() & !ServiceFlags::HASHED.bits();
    let mut fl = [0u8; 8];
    fl[..4].copy_from_slice(&flags.to_ne_bytes());
    fl[4..].copy_from_slice(&u32::MAX.to_ne_bytes());
    w.put(svc_attr::FLAGS, &fl);
    w.put_u32(svc_attr::TIMEOUT, s.timeout);
    match s.netmask {
        Netmask::V4(m) => w.put(svc_attr::NETMASK, &m.octets()),
        Netmask::V6(p) => w.put_u32(svc_attr::NETMASK, u32::from(p)),
    }
    w.end_nested(t);
}

fn put_dest_key(w: &mut MessageWriter<'_>, addr: SocketAddr) {
    w.put_u16(dest_attr::ADDR_FAMILY, Family::of(&addr.ip()).to_raw());
    w.put(dest_attr::ADDR, &inet_addr(addr.ip()));
    w.put_be16(dest_attr::PORT, addr.port());
}

fn put_destination(w: &mut MessageWriter<'_>, d: &Destination) {
    let t = w.begin_nested(cmd_attr::DEST);
    put_dest_key(w, d.addr);
    w.put_u32(dest_attr::FWD_METHOD, d.forward.to_raw());
    w.put_u32(dest_attr::WEIGHT, d.weight);
    w.put_u32(dest_attr::U_THRESH, d.upper_threshold);
    w.put_u32(dest_attr::L_THRESH, d.lower_threshold);
    if d.forward == ForwardMethod::Tunnel || d.tunnel != Tunnel::default() {
        w.put_u8(dest_attr::TUN_TYPE, d.tunnel.kind.to_raw());
        w.put_be16(dest_attr::TUN_PORT, d.tunnel.port);
        w.put_u16(dest_attr::TUN_FLAGS, d.tunnel.flags);
    }
    w.end_nested(t);
}

fn put_daemon(w: &mut MessageWriter<'_>, d: &SyncDaemon) {
    let t = w.begin_nested(cmd_attr::DAEMON);
    w.put_u32(daemon_attr::STATE, d.state.to_raw());
    w.put_str(daemon_attr::MCAST_IFN, &d.interface);
    w.put_u32(daemon_attr::SYNC_ID, u32::from(d.sync_id));
    if let Some(v) = d.sync_maxlen {
        w.put_u16(daemon_attr::SYNC_MAXLEN, v);
    }
    match d.mcast_group {
        Some(IpAddr::V4(g)) => w.put(daemon_attr::MCAST_GROUP, &g.octets()),
        Some(IpAddr::V6(g)) => w.put(daemon_attr::MCAST_GROUP6, &g.octets()),
        None => {}
    }
    if let Some(v) = d.mcast_port {
        w.put_u16(daemon_attr::MCAST_PORT, v);
    }
    if let Some(v) = d.mcast_ttl {
        w.put_u8(daemon_attr::MCAST_TTL, v);
    }
    w.end_nested(t);
}

// ---------------------------------------------------------------------------------------
// Decoding

/// A decoded IPVS data message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `IPVS_CMD_NEW_SERVICE`: a service (dump or `GET_SERVICE`).
    Service(ServiceEntry),
    /// `IPVS_CMD_NEW_DEST`: a destination (dump).
    Destination(DestinationEntry),
    /// `IPVS_CMD_NEW_DAEMON`: a running sync daemon (dump).
    SyncDaemon(SyncDaemon),
    /// `IPVS_CMD_SET_CONFIG`: timeouts (`GET_CONFIG`).
    Timeouts(Timeouts),
    /// `IPVS_CMD_SET_INFO`: general info (`GET_INFO`).
    Info(Info),
}

/// Decodes the attribute area of an IPVS data message with command `command`.
/// `dest_family` is the family assumed for a destination whose reply lacks
/// `IPVS_DEST_ATTR_ADDR_FAMILY` (kernels before 3.18): its service's family.
pub fn decode_reply(command: u8, attrs: &[u8], dest_family: Family) -> Result<Reply, DecodeError> {
    match command {
        cmd::NEW_SERVICE => decode_service(attrs).map(Reply::Service),
        cmd::NEW_DEST => decode_destination(attrs, dest_family).map(Reply::Destination),
        cmd::NEW_DAEMON => decode_daemon(attrs).map(Reply::SyncDaemon),
        cmd::SET_CONFIG => decode_timeouts(attrs).map(Reply::Timeouts),
        cmd::SET_INFO => decode_info(attrs).map(Reply::Info),
        other => Err(DecodeError::Unexpected {
            what: format!("IPVS command {other} in a reply"),
        }),
    }
}

/// Finds the first-level attribute `kind` and returns it.
fn find_top<'a>(attrs: &'a [u8], kind: u16, what: &'static str) -> Result<Attr<'a>, DecodeError> {
    for a in netlink::attrs(attrs) {
        let a = a?;
        if a.kind == kind {
            return Ok(a);
        }
    }
    Err(DecodeError::MissingAttr { what })
}

fn decode_addr(payload: &[u8], family: Family, what: &'static str) -> Result<IpAddr, DecodeError> {
    let bad = || DecodeError::BadLength {
        what,
        len: payload.len(),
    };
    if payload.len() > 16 {
        return Err(bad());
    }
    match family {
        Family::Inet => {
            let b: [u8; 4] = payload
                .get(..4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?;
            Ok(IpAddr::V4(Ipv4Addr::from(b)))
        }
        Family::Inet6 => {
            let b: [u8; 16] = payload.try_into().map_err(|_| bad())?;
            Ok(IpAddr::V6(Ipv6Addr::from(b)))
        }
    }
}

fn decode_family(v: u16, what: &'static str) -> Result<Family, DecodeError> {
    Family::from_raw(v).ok_or(DecodeError::InvalidValue {
        what,
        value: i64::from(v),
    })
}

/// Decodes the attribute area of an `IPVS_CMD_NEW_SERVICE` message.
pub fn decode_service(attrs: &[u8]) -> Result<ServiceEntry, DecodeError> {
    let nest = find_top(attrs, cmd_attr::SERVICE, "IPVS_CMD_ATTR_SERVICE")?;
    let mut af = None;
    let mut protocol = None;
    let mut addr: Option<&[u8]> = None;
    let mut port = None;
    let mut fwmark = None;
    let mut sched = None;
    let mut pe = None;
    let mut flags = None;
    let mut timeout = None;
    let mut netmask: Option<[u8; 4]> = None;
    let mut stats = None;
    let mut stats64 = None;
    for a in nest.nested() {
        let a = a?;
        match a.kind {
            svc_attr::AF => af = Some(a.u16("IPVS_SVC_ATTR_AF")?),
            svc_attr::PROTOCOL => protocol = Some(a.u16("IPVS_SVC_ATTR_PROTOCOL")?),
            svc_attr::ADDR => addr = Some(a.payload),
            svc_attr::PORT => port = Some(a.be16("IPVS_SVC_ATTR_PORT")?),
            svc_attr::FWMARK => fwmark = Some(a.u32("IPVS_SVC_ATTR_FWMARK")?),
            svc_attr::SCHED_NAME => sched = Some(a.string("IPVS_SVC_ATTR_SCHED_NAME")?),
            svc_attr::PE_NAME => pe = Some(a.string("IPVS_SVC_ATTR_PE_NAME")?),
            svc_attr::FLAGS => {
                let b: [u8; 8] = a.payload.try_into().map_err(|_| DecodeError::BadLength {
                    what: "IPVS_SVC_ATTR_FLAGS",
                    len: a.payload.len(),
                })?;
                flags = Some(u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
            }
            svc_attr::TIMEOUT => timeout = Some(a.u32("IPVS_SVC_ATTR_TIMEOUT")?),
            svc_attr::NETMASK => {
                netmask = Some(a.payload.try_into().map_err(|_| DecodeError::BadLength {
                    what: "IPVS_SVC_ATTR_NETMASK",
                    len: a.payload.len(),
                })?);
            }
            svc_attr::STATS => stats = Some(decode_stats(a)?),
            svc_attr::STATS64 => stats64 = Some(decode_stats(a)?),
            _ => {}
        }
    }
    let missing = |what| DecodeError::MissingAttr { what };
    let family = decode_family(af.ok_or(missing("IPVS_SVC_ATTR_AF"))?, "IPVS_SVC_ATTR_AF")?;
    let key = match fwmark {
        Some(mark) if mark != 0 => ServiceKey::Fwmark { family, mark },
        _ => {
            let protocol = protocol.ok_or(missing("IPVS_SVC_ATTR_PROTOCOL"))?;
            let ip = decode_addr(
                addr.ok_or(missing("IPVS_SVC_ATTR_ADDR"))?,
                family,
                "IPVS_SVC_ATTR_ADDR",
            )?;
            let port = port.ok_or(missing("IPVS_SVC_ATTR_PORT"))?;
            ServiceKey::Addr {
                protocol: Protocol::from_raw(protocol),
                addr: SocketAddr::new(ip, port),
            }
        }
    };
    let netmask = netmask.ok_or(missing("IPVS_SVC_ATTR_NETMASK"))?;
    let netmask = match family {
        Family::Inet => Netmask::V4(Ipv4Addr::from(netmask)),
        Family::Inet6 => {
            let p = u32::from_ne_bytes(netmask);
            Netmask::V6(u8::try_from(p).map_err(|_| DecodeError::InvalidValue {
                what: "IPVS_SVC_ATTR_NETMASK",
                value: i64::from(p),
            })?)
        }
    };
    let flags = flags.ok_or(missing("IPVS_SVC_ATTR_FLAGS"))? & !ServiceFlags::HASHED.bits();
    Ok(ServiceEntry {
        service: Service {
            key,
            scheduler: sched.ok_or(missing("IPVS_SVC_ATTR_SCHED_NAME"))?,
            flags: ServiceFlags(flags),
            timeout: timeout.ok_or(missing("IPVS_SVC_ATTR_TIMEOUT"))?,
            netmask,
            pe_name: pe,
        },
        stats: stats64.or(stats).unwrap_or_default(),
    })
}

/// Decodes `IPVS_*_ATTR_STATS` (u32 counters, u64 byte counts) or `*_STATS64` (all
/// u64): each counter is read by its width.
fn decode_stats(nest: Attr<'_>) -> Result<Stats, DecodeError> {
    let mut s = Stats::default();
    for a in nest.nested() {
        let a = a?;
        let slot = match a.kind {
            stats_attr::CONNS => &mut s.conns,
            stats_attr::INPKTS => &mut s.inpkts,
            stats_attr::OUTPKTS => &mut s.outpkts,
            stats_attr::INBYTES => &mut s.inbytes,
            stats_attr::OUTBYTES => &mut s.outbytes,
            stats_attr::CPS => &mut s.cps,
            stats_attr::INPPS => &mut s.inpps,
            stats_attr::OUTPPS => &mut s.outpps,
            stats_attr::INBPS => &mut s.inbps,
            stats_attr::OUTBPS => &mut s.outbps,
            _ => continue, // IPVS_STATS_ATTR_PAD and anything newer
        };
        *slot = match a.payload.len() {
            4 => u64::from(a.u32("IPVS_STATS_ATTR_*")?),
            _ => a.u64("IPVS_STATS_ATTR_*")?,
        };
    }
    Ok(s)
}

/// Decodes the attribute area of an `IPVS_CMD_NEW_DEST` message. `service_family` is
/// used when the kernel does not say the destination's family.
pub fn decode_destination(
    attrs: &[u8],
    service_family: Family,
) -> Result<DestinationEntry, DecodeError> {
    let nest = find_top(attrs, cmd_attr::DEST, "IPVS_CMD_ATTR_DEST")?;
    let mut addr: Option<&[u8]> = None;
    let mut port = None;
    let mut fwd = None;
    let mut weight = None;
    let mut u_thresh = 0;
    let mut l_thresh = 0;
    let mut active = 0;
    let mut inact = 0;
    let mut persist = 0;
    let mut af = None;
    let mut tunnel = Tunnel::default();
    let mut stats = None;
    let mut stats64 = None;
    for a in nest.nested() {
        let a = a?;
        match a.kind {
            dest_attr::ADDR => addr = Some(a.payload),
            dest_attr::PORT => port = Some(a.be16("IPVS_DEST_ATTR_PORT")?),
            dest_attr::FWD_METHOD => fwd = Some(a.u32("IPVS_DEST_ATTR_FWD_METHOD")?),
            dest_attr::WEIGHT => weight = Some(a.u32("IPVS_DEST_ATTR_WEIGHT")?),
            dest_attr::U_THRESH => u_thresh = a.u32("IPVS_DEST_ATTR_U_THRESH")?,
            dest_attr::L_THRESH => l_thresh = a.u32("IPVS_DEST_ATTR_L_THRESH")?,
            dest_attr::ACTIVE_CONNS => active = a.u32("IPVS_DEST_ATTR_ACTIVE_CONNS")?,
            dest_attr::INACT_CONNS => inact = a.u32("IPVS_DEST_ATTR_INACT_CONNS")?,
            dest_attr::PERSIST_CONNS => persist = a.u32("IPVS_DEST_ATTR_PERSIST_CONNS")?,
            dest_attr::ADDR_FAMILY => af = Some(a.u16("IPVS_DEST_ATTR_ADDR_FAMILY")?),
            dest_attr::TUN_TYPE => {
                let v = a.u8("IPVS_DEST_ATTR_TUN_TYPE")?;
                tunnel.kind = TunnelType::from_raw(v).ok_or(DecodeError::InvalidValue {
                    what: "IPVS_DEST_ATTR_TUN_TYPE",
                    value: i64::from(v),
                })?;
            }
            dest_attr::TUN_PORT => tunnel.port = a.be16("IPVS_DEST_ATTR_TUN_PORT")?,
            dest_attr::TUN_FLAGS => tunnel.flags = a.u16("IPVS_DEST_ATTR_TUN_FLAGS")?,
            dest_attr::STATS => stats = Some(decode_stats(a)?),
            dest_attr::STATS64 => stats64 = Some(decode_stats(a)?),
            _ => {}
        }
    }
    let missing = |what| DecodeError::MissingAttr { what };
    let family = match af {
        Some(v) => decode_family(v, "IPVS_DEST_ATTR_ADDR_FAMILY")?,
        None => service_family,
    };
    let ip = decode_addr(
        addr.ok_or(missing("IPVS_DEST_ATTR_ADDR"))?,
        family,
        "IPVS_DEST_ATTR_ADDR",
    )?;
    let port = port.ok_or(missing("IPVS_DEST_ATTR_PORT"))?;
    let fwd = fwd.ok_or(missing("IPVS_DEST_ATTR_FWD_METHOD"))? & IP_VS_CONN_F_FWD_MASK;
    let forward = ForwardMethod::from_raw(fwd).ok_or(DecodeError::InvalidValue {
        what: "IPVS_DEST_ATTR_FWD_METHOD",
        value: i64::from(fwd),
    })?;
    Ok(DestinationEntry {
        destination: Destination {
            addr: SocketAddr::new(ip, port),
            forward,
            weight: weight.ok_or(missing("IPVS_DEST_ATTR_WEIGHT"))?,
            upper_threshold: u_thresh,
            lower_threshold: l_thresh,
            tunnel,
        },
        active_conns: active,
        inactive_conns: inact,
        persist_conns: persist,
        stats: stats64.or(stats).unwrap_or_default(),
    })
}

/// Decodes the attribute area of an `IPVS_CMD_NEW_DAEMON` message.
pub fn decode_daemon(attrs: &[u8]) -> Result<SyncDaemon, DecodeError> {
    let nest = find_top(attrs, cmd_attr::DAEMON, "IPVS_CMD_ATTR_DAEMON")?;
    let mut state = None;
    let mut ifn = None;
    let mut sync_id = None;
    let mut d = SyncDaemon::new(SyncState::Master, "", 0);
    for a in nest.nested() {
        let a = a?;
        match a.kind {
            daemon_attr::STATE => state = Some(a.u32("IPVS_DAEMON_ATTR_STATE")?),
            daemon_attr::MCAST_IFN => ifn = Some(a.string("IPVS_DAEMON_ATTR_MCAST_IFN")?),
            daemon_attr::SYNC_ID => sync_id = Some(a.u32("IPVS_DAEMON_ATTR_SYNC_ID")?),
            daemon_attr::SYNC_MAXLEN => {
                d.sync_maxlen = Some(a.u16("IPVS_DAEMON_ATTR_SYNC_MAXLEN")?);
            }
            daemon_attr::MCAST_GROUP => {
                let b: [u8; 4] = a.payload.try_into().map_err(|_| DecodeError::BadLength {
                    what: "IPVS_DAEMON_ATTR_MCAST_GROUP",
                    len: a.payload.len(),
                })?;
                d.mcast_group = Some(IpAddr::V4(Ipv4Addr::from(b)));
            }
            daemon_attr::MCAST_GROUP6 => {
                let b: [u8; 16] = a.payload.try_into().map_err(|_| DecodeError::BadLength {
                    what: "IPVS_DAEMON_ATTR_MCAST_GROUP6",
                    len: a.payload.len(),
                })?;
                d.mcast_group = Some(IpAddr::V6(Ipv6Addr::from(b)));
            }
            daemon_attr::MCAST_PORT => d.mcast_port = Some(a.u16("IPVS_DAEMON_ATTR_MCAST_PORT")?),
            daemon_attr::MCAST_TTL => d.mcast_ttl = Some(a.u8("IPVS_DAEMON_ATTR_MCAST_TTL")?),
            _ => {}
        }
    }
    let state = state.ok_or(DecodeError::MissingAttr {
        what: "IPVS_DAEMON_ATTR_STATE",
    })?;
    d.state = SyncState::from_raw(state).ok_or(DecodeError::InvalidValue {
        what: "IPVS_DAEMON_ATTR_STATE",
        value: i64::from(state),
    })?;
    d.interface = ifn.ok_or(DecodeError::MissingAttr {
        what: "IPVS_DAEMON_ATTR_MCAST_IFN",
    })?;
    let id = sync_id.ok_or(DecodeError::MissingAttr {
        what: "IPVS_DAEMON_ATTR_SYNC_ID",
    })?;
    d.sync_id = u8::try_from(id).map_err(|_| DecodeError::InvalidValue {
        what: "IPVS_DAEMON_ATTR_SYNC_ID",
        value: i64::from(id),
    })?;
    Ok(d)
}

/// Decodes the attribute area of an `IPVS_CMD_SET_CONFIG` reply. A protocol compiled out
/// of the kernel leaves its timeouts absent; they read as 0.
pub fn decode_timeouts(attrs: &[u8]) -> Result<Timeouts, DecodeError> {
    let mut t = Timeouts::default();
    for a in netlink::attrs(attrs) {
        let a = a?;
        match a.kind {
            cmd_attr::TIMEOUT_TCP => t.tcp = a.u32("IPVS_CMD_ATTR_TIMEOUT_TCP")?,
            cmd_attr::TIMEOUT_TCP_FIN => t.tcp_fin = a.u32("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?,
            cmd_attr::TIMEOUT_UDP => t.udp = a.u32("IPVS_CMD_ATTR_TIMEOUT_UDP")?,
            _ => {}
        }
    }
    Ok(t)
}

/// Decodes the attribute area of an `IPVS_CMD_SET_INFO` reply.
pub fn decode_info(attrs: &[u8]) -> Result<Info, DecodeError> {
    let mut version = None;
    let mut size = None;
    for a in netlink::attrs(attrs) {
        let a = a?;
        match a.kind {
            info_attr::VERSION => version = Some(a.u32("IPVS_INFO_ATTR_VERSION")?),
            info_attr::CONN_TAB_SIZE => size = Some(a.u32("IPVS_INFO_ATTR_CONN_TAB_SIZE")?),
            _ => {}
        }
    }
    Ok(Info {
        version: version.ok_or(DecodeError::MissingAttr {
            what: "IPVS_INFO_ATTR_VERSION",
        })?,
        conn_tab_size: size.ok_or(DecodeError::MissingAttr {
            what: "IPVS_INFO_ATTR_CONN_TAB_SIZE",
        })?,
    })
}

/// Parses a whole datagram as the kernel's IPVS replies and decodes every data message.
/// This is what the fuzz target drives; it must never panic.
pub fn decode_datagram(datagram: &[u8], dest_family: Family) -> Vec<Result<Reply, DecodeError>> {
    let mut out = Vec::new();
    for m in netlink::messages(datagram) {
        match m {
            Ok(netlink::Message::Data { cmd, attrs, .. }) => {
                out.push(decode_reply(cmd, attrs, dest_family));
            }
            Ok(_) => {}
            Err(e) => out.push(Err(e)),
        }
    }
    out
}
