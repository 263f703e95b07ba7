//! Operator overrides: real servers drained with `vigilctl drain`. Keyed by virtual
//! server name and real server address, so a reload that keeps both keeps the drain;
//! [`crate::state_file`] keeps them across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Drains {
    drains: BTreeMap<String, BTreeSet<SocketAddr>>,
}

impl Drains {
    pub fn contains(&self, virtual_server: &str, real: SocketAddr) -> bool {
        self.drains
            .get(virtual_server)
            .is_some_and(|s| s.contains(&real))
    }

    /// Returns whether anything changed.
    pub fn set(&mut self, virtual_server: &str, real: SocketAddr, drained: bool) -> bool {
        if drained {
            self.drains
                .entry(virtual_server.to_string())
                .or_default()
                .insert(real)
        } else {
            let Some(set) = self.drains.get_mut(virtual_server) else {
                return false;
            };
            let changed = set.remove(&real);
            if set.is_empty() {
                self.drains.remove(virtual_server);
            }
            changed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_and_enable_report_whether_anything_changed() {
        let mut d = Drains::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(d.set("web", a, true));
        assert!(!d.set("web", a, true));
        assert!(d.contains("web", a));
        assert!(!d.contains("api", a));
        assert!(d.set("web", a, false));
        assert!(!d.set("web", a, false));
        assert_eq!(d, Drains::default());
    }
}
