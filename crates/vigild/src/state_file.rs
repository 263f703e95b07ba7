//! The state file (`director.state_file`): what must outlive the process.
//!
//! * the operator's drains, so a restart keeps a drained server drained;
//! * the IPVS services this director created or adopted ("owned"), so that a service
//!   removed from the cluster file while vigild was down is still recognised as ours and
//!   deleted at the next start, while services someone else made stay untouched.
//!
//! One JSON object, written whole and atomically (a temporary file renamed over the old
//! one) by whichever part changed: the director task (drains) or the IPVS thread (owned
//! services), serialised by a mutex. A file written by an older vigild (drains only) reads
//! as having no owned services. A missing file is an empty state; an unreadable or broken
//! one is reported and ignored, because the daemon must start anyway.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::warn;
use vigil_ipvs::ServiceKey;

use crate::overrides::Drains;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Contents {
    #[serde(default)]
    drains: Drains,
    /// In [`ServiceKey`]'s display form (`tcp 10.0.0.1:80`, `fwmark 7 (IPv4)`).
    #[serde(default)]
    ipvs_owned_services: BTreeSet<String>,
}

/// What the state file held at start.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Restored {
    pub drains: Drains,
    pub owned_services: Vec<ServiceKey>,
}

/// The state file, shared by the director task and the IPVS thread.
#[derive(Debug, Clone)]
pub struct StateFile {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    contents: Contents,
}

impl StateFile {
    /// Reads `path`; problems are logged and leave the state empty.
    pub fn load(path: &Path) -> (StateFile, Restored) {
        let contents = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Contents>(&bytes).unwrap_or_else(|e| {
                warn!(file = %path.display(), "state file is not valid, ignoring it (no drains or owned IPVS services restored): {e}");
                Contents::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contents::default(),
            Err(e) => {
                warn!(file = %path.display(), "cannot read the state file, nothing restored: {e}");
                Contents::default()
            }
        };
        let mut owned_services = Vec::new();
        for text in &contents.ipvs_owned_services {
            match text.parse::<ServiceKey>() {
                Ok(k) => owned_services.push(k),
                Err(e) => {
                    warn!(file = %path.display(), "state file: ignoring an owned IPVS service: {e}")
                }
            }
        }
        let restored = Restored {
            drains: contents.drains.clone(),
            owned_services,
        };
        let file = StateFile {
            inner: Arc::new(Mutex::new(Inner {
                path: path.to_path_buf(),
                contents,
            })),
        };
        (file, restored)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn path(&self) -> PathBuf {
        self.lock().path.clone()
    }

    /// A reload moved the file: the state is written to the new place at once.
    pub fn set_path(&self, path: &Path) -> std::io::Result<()> {
        let mut inner = self.lock();
        if inner.path == path {
            return Ok(());
        }
        inner.path = path.to_path_buf();
        inner.save()
    }

    pub fn save_drains(&self, drains: &Drains) -> std::io::Result<()> {
        let mut inner = self.lock();
        if inner.contents.drains == *drains {
            return Ok(());
        }
        inner.contents.drains = drains.clone();
        inner.save()
    }

    /// Records the owned services; writes only when the set changed.
    pub fn save_owned_services(&self, owned: &BTreeSet<ServiceKey>) -> std::io::Result<()> {
        let mut inner = self.lock();
        let texts: BTreeSet<String> = owned.iter().map(ToString::to_string).collect();
        if inner.contents.ipvs_owned_services == texts {
            return Ok(());
        }
        inner.contents.ipvs_owned_services = texts;
        inner.save()
    }
}

impl Inner {
    fn save(&self) -> std::io::Result<()> {
        let path = &self.path;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&self.contents).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn drains_and_owned_services_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state.json");
        let (file, restored) = StateFile::load(&path);
        assert_eq!(restored, Restored::default());
        let mut drains = Drains::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        drains.set("web", a, true);
        file.save_drains(&drains).unwrap();
        let owned: BTreeSet<ServiceKey> = [
            ServiceKey::tcp("10.0.0.100:80".parse().unwrap()),
            ServiceKey::fwmark(vigil_ipvs::Family::Inet6, 9),
        ]
        .into();
        file.save_owned_services(&owned).unwrap();
        let (_, back) = StateFile::load(&path);
        assert!(back.drains.contains("web", a));
        assert_eq!(
            back.owned_services.into_iter().collect::<BTreeSet<_>>(),
            owned
        );
    }

    #[test]
    fn a_file_of_an_older_vigild_keeps_its_drains() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, r#"{ "drains": { "web": ["10.0.0.1:80"] } }"#).unwrap();
        let (_, back) = StateFile::load(&path);
        assert!(back.drains.contains("web", "10.0.0.1:80".parse().unwrap()));
        assert!(back.owned_services.is_empty());
    }

    #[test]
    fn a_broken_or_missing_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{ not json").unwrap();
        assert_eq!(StateFile::load(&path).1, Restored::default());
        assert_eq!(
            StateFile::load(&dir.path().join("missing.json")).1,
            Restored::default()
        );
        // One bad owned key is skipped, the rest is kept.
        std::fs::write(
            &path,
            r#"{ "ipvs_owned_services": ["tcp 10.0.0.1:80", "bogus"] }"#,
        )
        .unwrap();
        assert_eq!(
            StateFile::load(&path).1.owned_services,
            vec![ServiceKey::tcp("10.0.0.1:80".parse().unwrap())]
        );
    }

    #[test]
    fn a_moved_file_is_written_at_its_new_place() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = StateFile::load(&dir.path().join("a.json"));
        let mut drains = Drains::default();
        drains.set("web", "10.0.0.1:80".parse().unwrap(), true);
        file.save_drains(&drains).unwrap();
        let b = dir.path().join("b.json");
        file.set_path(&b).unwrap();
        assert!(
            StateFile::load(&b)
                .1
                .drains
                .contains("web", "10.0.0.1:80".parse().unwrap())
        );
    }
}
