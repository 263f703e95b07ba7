//! What is checked: one real server of one virtual server, with its effective check.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use vigil_config::{Check, Config, ServiceKey};

/// The identity of a check: check number `index` (in file order, from 0) of the real
/// server `real` of the virtual server `service`.
///
/// The same keys as the reconciler and the status socket use, so that on reload an
/// unchanged (key, check) pair keeps its state and its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CheckKey {
    pub service: ServiceKey,
    pub real: SocketAddr,
    pub index: u16,
}

impl CheckKey {
    /// The real server this check is one of the checks of.
    pub fn real_server(&self) -> (ServiceKey, SocketAddr) {
        (self.service, self.real)
    }
}

impl std::fmt::Display for CheckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.service, self.real)?;
        if self.index > 0 {
            write!(f, " check {}", self.index + 1)?;
        }
        Ok(())
    }
}

/// One check to run: its identity, the virtual server's name (for people) and the check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub key: CheckKey,
    pub virtual_server: String,
    pub check: Check,
    /// The real server's configured weight, which dynamic checks move.
    pub weight: u32,
    /// How many checks the real server has (all of them must pass).
    pub checks: u16,
}

impl Target {
    /// The address probed: the check's `address`/`port` overrides, else the real server's.
    pub fn probe_address(&self) -> SocketAddr {
        let ip: IpAddr = self.check.address.unwrap_or(self.key.real.ip());
        let port = self.check.port.unwrap_or(self.key.real.port());
        SocketAddr::new(ip, port)
    }
}

/// Every check of a configuration, in file order. Real servers without a check are
/// always up and have no target.
pub fn targets_from_config(config: &Config) -> Vec<Target> {
    // Sized first: at 10,000 real servers the targets are MiBs, and growing the vector
    // by doubling would hold up to twice that during a reload.
    let count = config
        .virtual_servers
        .iter()
        .flat_map(|vs| &vs.real_servers)
        .map(|rs| rs.checks.len().min(usize::from(u16::MAX)))
        .sum();
    let mut targets = Vec::with_capacity(count);
    targets.extend(config.virtual_servers.iter().flat_map(|vs| {
        vs.real_servers.iter().flat_map(move |rs| {
            // Validation keeps a real server's checks far below u16::MAX.
            let count = u16::try_from(rs.checks.len()).unwrap_or(u16::MAX);
            rs.checks
                .iter()
                .take(usize::from(u16::MAX))
                .enumerate()
                .map(move |(i, check)| Target {
                    key: CheckKey {
                        service: vs.key,
                        real: rs.address,
                        index: u16::try_from(i).unwrap_or(u16::MAX),
                    },
                    virtual_server: vs.name.clone(),
                    check: check.clone(),
                    weight: rs.weight,
                    checks: count,
                })
        })
    }));
    targets
}
