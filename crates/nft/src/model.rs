//! What vigil's nftables table holds, in vigil's terms: per virtual service, how a real
//! server is chosen and how many slots each one has. [`crate::render::plan`] builds it
//! from a desired table; [`crate::readback`] rebuilds it from `nft -j list table`, so
//! "unchanged" is decided on this model, not on nft's text.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use vigil_ipvs::ServiceKey;

/// The owned table: `table inet vigil`.
pub const TABLE: &str = "vigil";
/// Its family.
pub const FAMILY: &str = "inet";
/// The jhash seed: fixed, so a restarted director (or its VRRP peer) sends each client
/// to the same real server as before.
pub const HASH_SEED: u32 = 0;

/// How a service picks a real server for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Selector {
    /// `numgen random mod TOTAL`: weighted random (IPVS `rr` / `wrr`).
    Random,
    /// `jhash ip saddr [. th sport] mod TOTAL`: source hash (IPVS `sh`).
    SourceHash {
        /// Hash the source port too (`sh-port`).
        port: bool,
    },
}

/// One service as rendered: its selector and each real server's share of the slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftService {
    /// How a real server is chosen.
    pub selector: Selector,
    /// Slots per real server (all above 0), laid out in address order from slot 0. A
    /// port of 0 keeps the packet's destination port (fwmark services).
    pub slots: BTreeMap<SocketAddr, u32>,
}

impl NftService {
    /// The modulus: all slots together.
    pub fn total(&self) -> u64 {
        self.slots.values().map(|&n| u64::from(n)).sum()
    }

    /// `(first, last, real server)` for each real server, in slot order.
    pub fn ranges(&self) -> Vec<(u32, u32, SocketAddr)> {
        let mut out = Vec::with_capacity(self.slots.len());
        let mut next: u32 = 0;
        for (addr, &n) in &self.slots {
            let last = next.saturating_add(n.saturating_sub(1));
            out.push((next, last, *addr));
            next = last.saturating_add(1);
        }
        out
    }
}

/// The whole owned table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Model {
    /// Every virtual service, with or without real servers.
    pub services: BTreeMap<ServiceKey, NftService>,
    /// Real-server addresses whose DNATed connections are masqueraded (source NAT to the
    /// director) so that replies return through it without routing.
    pub masquerade: BTreeSet<IpAddr>,
}

/// How the table is rendered, beyond what the desired table says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Masquerade connections to the real servers (full NAT): real servers need no route
    /// back through the director, but see the director's address instead of the client's.
    /// Off: the return path must be routed via the director (IPVS NAT's rule).
    pub masquerade: bool,
}
