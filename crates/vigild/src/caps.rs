//! Which Linux capabilities the daemon holds and which a configuration needs, so it can
//! refuse to start with a clear message instead of failing on the first netlink write.

use vigil_config::{CheckKind, Config};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// IPVS, addresses and routes (CAP_NET_ADMIN = 12).
    NetAdmin,
    /// Raw VRRP sockets, gratuitous ARP, raw ICMP (CAP_NET_RAW = 13).
    NetRaw,
}

impl Capability {
    fn bit(self) -> u32 {
        match self {
            Capability::NetAdmin => 12,
            Capability::NetRaw => 13,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::NetRaw => "CAP_NET_RAW",
        }
    }
}

/// The capabilities `config` needs, each with the reason.
pub fn required(config: &Config) -> Vec<(Capability, &'static str)> {
    let mut need = Vec::new();
    if !config.virtual_servers.is_empty() {
        need.push((Capability::NetAdmin, "to program IPVS virtual servers"));
    }
    if !config.vrrp.is_empty() {
        need.push((
            Capability::NetAdmin,
            "to add and remove VRRP virtual addresses",
        ));
        need.push((Capability::NetRaw, "to send and receive VRRP adverts"));
    }
    if config.ipvs_sync.is_some() {
        need.push((
            Capability::NetAdmin,
            "to run the IPVS connection sync daemon",
        ));
    }
    need.dedup_by_key(|(c, _)| *c);
    need
}

/// Parses `CapEff` from /proc/self/status.
fn effective_set() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

pub fn has(cap: Capability) -> bool {
    effective_set().is_some_and(|set| set & (1u64 << cap.bit()) != 0)
}

/// Every capability the config needs that this process lacks, as a message per line;
/// those of child programs (switching users, killing their trees) come from
/// [`crate::children::missing`].
pub fn missing(config: &Config) -> Vec<String> {
    let mut out: Vec<String> = required(config)
        .into_iter()
        .filter(|(cap, _)| !has(*cap))
        .map(|(cap, why)| format!("{} is needed {why}", cap.name()))
        .collect();
    out.extend(crate::children::missing(config));
    out
}

/// ICMP checks can use unprivileged ping sockets where the kernel allows them, so they
/// only warrant a warning.
pub fn icmp_checks_without_raw(config: &Config) -> bool {
    let uses_icmp = config.virtual_servers.iter().any(|vs| {
        vs.real_servers
            .iter()
            .flat_map(|rs| &rs.checks)
            .any(|c| matches!(c.kind, CheckKind::Icmp))
    });
    uses_icmp && !has(Capability::NetRaw)
}
