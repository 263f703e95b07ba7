//! Operator overrides that outlive the process: real servers drained with
//! `vigilctl drain`, kept in the state file (`director.state_file`) so a restart keeps
//! them drained. Keyed by virtual server name and real server address, so a reload that
//! keeps both keeps the drain.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracing::warn;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drains {
    drains: BTreeMap<String, BTreeSet<SocketAddr>>,
}

impl Drains {
    /// Reads the state file; a missing file is no drains, an unreadable one is reported
    /// and ignored (the daemon must start anyway).
    pub fn load(path: &Path) -> Drains {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(file = %path.display(), "state file is not valid, ignoring its drains: {e}");
                Drains::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Drains::default(),
            Err(e) => {
                warn!(file = %path.display(), "cannot read the state file, no drains restored: {e}");
                Drains::default()
            }
        }
    }

    /// Writes atomically (a temporary file renamed over the old one).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp_name);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }

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
    fn drains_round_trip_through_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let mut d = Drains::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert!(d.set("web", a, true));
        assert!(!d.set("web", a, true));
        d.save(&path).unwrap();
        let back = Drains::load(&path);
        assert!(back.contains("web", a));
        assert!(!back.contains("api", a));
        let mut back = back;
        assert!(back.set("web", a, false));
        assert_eq!(back, Drains::default());
    }

    #[test]
    fn a_broken_state_file_means_no_drains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{ not json").unwrap();
        assert_eq!(Drains::load(&path), Drains::default());
        assert_eq!(
            Drains::load(&dir.path().join("missing.json")),
            Drains::default()
        );
    }
}
