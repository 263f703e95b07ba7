//! What is checked: one real server of one virtual server, with its effective check.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;
use vigil_config::{Check, Config, ServiceKey};

/// The identity of a check: the real server `real` of the virtual server `service`.
///
/// The same keys as the reconciler and the status socket use, so that on reload an
/// unchanged (key, check) pair keeps its state and its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct CheckKey {
    pub service: ServiceKey,
    pub real: SocketAddr,
}

impl std::fmt::Display for CheckKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.service, self.real)
    }
}

/// One check to run: its identity, the virtual server's name (for people) and the check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub key: CheckKey,
    pub virtual_server: String,
    pub check: Check,
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
    config
        .virtual_servers
        .iter()
        .flat_map(|vs| {
            vs.real_servers.iter().filter_map(move |rs| {
                rs.check.as_ref().map(|check| Target {
                    key: CheckKey {
                        service: vs.key,
                        real: rs.address,
                    },
                    virtual_server: vs.name.clone(),
                    check: check.clone(),
                })
            })
        })
        .collect()
}
