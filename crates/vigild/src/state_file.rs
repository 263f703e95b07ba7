//! The state file (`director.state_file`): what must outlive the process.
//!
//! * the operator's drains, so a restart keeps a drained server drained;
//! * the IPVS services this director created or adopted ("owned"), so that a service
//!   removed from the cluster file while vigild was down is still recognised as ours and
//!   deleted at the next start, while services someone else made stay untouched.
//!
//! One JSON object, written whole and atomically by whichever part changed: the director
//! task (drains) or the IPVS thread (owned services), serialised by a mutex. Every save
//! writes the file and then an identical copy beside it (`PATH.bak`), each through a new
//! private temporary file (`O_EXCL|O_NOFOLLOW`, mode 0600), fsync, rename and an fsync of
//! the directory, so a crash or power loss leaves at least one whole copy.
//!
//! A missing file is an empty state. A corrupt one is never silently dropped: a drained
//! server must not go back into rotation because a file broke. Loading falls back to the
//! copy (and keeps the corrupt file aside as `PATH.corrupt-UNIXTIME`, logged as an error);
//! when neither can be read, vigild refuses to start unless told to discard them
//! (`vigild --discard-corrupt-state`). A file written by an older vigild (drains only)
//! reads as having no owned services.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::{error, warn};
use vigil_ipvs::ServiceKey;

use crate::atomic_file;
use crate::overrides::Drains;

/// A state file larger than this is not one vigild wrote (a few KiB at 10,000 drains).
const MAX_STATE_FILE: u64 = 16 << 20;

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

/// Why the state could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error(
        "the state file {path} cannot be used ({reason}), and neither can its copy {backup} ({backup_reason}). \
         vigild does not start with an empty state on its own: drained real servers would go back into rotation. \
         Repair or remove the files, or start once with --discard-corrupt-state to keep them aside and start without drains"
    )]
    Unusable {
        path: String,
        reason: String,
        backup: String,
        backup_reason: String,
    },
}

/// How one copy of the state read.
enum Read {
    Missing,
    Good(Contents),
    Bad(String),
}

fn read_copy(path: &Path) -> Read {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Missing,
        Err(e) => return Read::Bad(format!("cannot read it: {e}")),
    };
    if !meta.file_type().is_file() {
        return Read::Bad("not a regular file".into());
    }
    if meta.len() > MAX_STATE_FILE {
        return Read::Bad(format!(
            "{} bytes, more than the {MAX_STATE_FILE} a state file can be",
            meta.len()
        ));
    }
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return Read::Bad(format!("cannot read it: {e}")),
    };
    match serde_json::from_slice::<Contents>(&bytes) {
        Ok(c) => Read::Good(c),
        Err(e) => Read::Bad(format!("not valid: {e}")),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The copy written beside the state file at every save.
pub fn backup_path(path: &Path) -> PathBuf {
    with_suffix(path, ".bak")
}

/// Renames a corrupt copy out of the way (never deletes it), and says where it went.
fn keep_aside(path: &Path) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let aside = with_suffix(path, &format!(".corrupt-{now}"));
    match std::fs::rename(path, &aside) {
        Ok(()) => format!("kept aside as {}", aside.display()),
        Err(e) => format!("could not be moved aside ({e})"),
    }
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
    /// Reads `path`, falling back to its copy when it is corrupt. Neither usable is an
    /// error unless `discard_corrupt`, which keeps both aside and starts empty.
    pub fn load(
        path: &Path,
        discard_corrupt: bool,
    ) -> Result<(StateFile, Restored), StateFileError> {
        let backup = backup_path(path);
        let mut repair = false;
        // A missing file is a reset (first start, or deleted by hand): the copy is only
        // a stand-in for a corrupt file, since a save never leaves the file missing.
        let contents = match read_copy(path) {
            Read::Missing => Contents::default(),
            Read::Good(c) => c,
            Read::Bad(reason) => match read_copy(&backup) {
                Read::Good(c) => {
                    let aside = keep_aside(path);
                    error!(
                        file = %path.display(),
                        "the state file is corrupt ({reason}); it was {aside}; restored the drains and owned IPVS services from {}",
                        backup.display()
                    );
                    repair = true;
                    c
                }
                other => {
                    let backup_reason = match other {
                        Read::Bad(r) => r,
                        _ => "missing".to_string(),
                    };
                    if !discard_corrupt {
                        return Err(StateFileError::Unusable {
                            path: path.display().to_string(),
                            reason,
                            backup: backup.display().to_string(),
                            backup_reason,
                        });
                    }
                    let aside = keep_aside(path);
                    let backup_aside = if backup.exists() {
                        format!("; its copy was {}", keep_aside(&backup))
                    } else {
                        String::new()
                    };
                    error!(
                        file = %path.display(),
                        "--discard-corrupt-state: the state file is corrupt ({reason}) and so is its copy ({backup_reason}); it was {aside}{backup_aside}; starting with no drains and no owned IPVS services"
                    );
                    Contents::default()
                }
            },
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
        let inner = Inner {
            path: path.to_path_buf(),
            contents,
        };
        if repair && let Err(e) = inner.save() {
            error!(file = %path.display(), "cannot rewrite the state file from its copy: {e}");
        }
        let file = StateFile {
            inner: Arc::new(Mutex::new(inner)),
        };
        Ok((file, restored))
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
    /// The file, then its copy: each through a private temporary file, fsync, rename
    /// and an fsync of the directory, so each name always holds a whole state.
    fn save(&self) -> std::io::Result<()> {
        let path = &self.path;
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let bytes = serde_json::to_vec_pretty(&self.contents).map_err(std::io::Error::other)?;
        atomic_file::replace(path, &bytes, 0o600)?;
        atomic_file::replace(&backup_path(path), &bytes, 0o600)
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
        let (file, restored) = StateFile::load(&path, false).unwrap();
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
        let (_, back) = StateFile::load(&path, false).unwrap();
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
        let (_, back) = StateFile::load(&path, false).unwrap();
        assert!(back.drains.contains("web", "10.0.0.1:80".parse().unwrap()));
        assert!(back.owned_services.is_empty());
    }

    #[test]
    fn a_missing_file_is_an_empty_state_and_a_bad_owned_key_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(
            StateFile::load(&dir.path().join("missing.json"), false)
                .unwrap()
                .1,
            Restored::default()
        );
        std::fs::write(
            &path,
            r#"{ "ipvs_owned_services": ["tcp 10.0.0.1:80", "bogus"] }"#,
        )
        .unwrap();
        assert_eq!(
            StateFile::load(&path, false).unwrap().1.owned_services,
            vec![ServiceKey::tcp("10.0.0.1:80".parse().unwrap())]
        );
    }

    fn drained_state(path: &Path) -> SocketAddr {
        let (file, _) = StateFile::load(path, false).unwrap();
        let mut drains = Drains::default();
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        drains.set("web", a, true);
        file.save_drains(&drains).unwrap();
        a
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_corrupt_file_is_kept_aside_and_the_drains_come_from_its_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let a = drained_state(&path);
        std::fs::write(&path, "{ not json").unwrap();
        let (_, back) = StateFile::load(&path, false).unwrap();
        assert!(back.drains.contains("web", a));
        let names = names_in(dir.path());
        assert!(
            names.iter().any(|n| n.starts_with("state.json.corrupt-")),
            "{names:?}"
        );
        // The file itself was rewritten from the copy.
        let (_, again) = StateFile::load(&path, false).unwrap();
        assert!(again.drains.contains("web", a));
    }

    #[test]
    fn with_no_usable_copy_the_start_is_refused_and_nothing_is_moved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        drained_state(&path);
        std::fs::write(&path, "{ not json").unwrap();
        std::fs::write(backup_path(&path), [0u8; 7]).unwrap();
        let before = names_in(dir.path());
        let err = StateFile::load(&path, false).unwrap_err().to_string();
        assert!(err.contains("--discard-corrupt-state"), "{err}");
        assert!(err.contains("state.json.bak"), "{err}");
        assert_eq!(names_in(dir.path()), before);
        // Told to, it keeps both aside and starts empty.
        let (_, back) = StateFile::load(&path, true).unwrap();
        assert_eq!(back, Restored::default());
        let after = names_in(dir.path());
        assert_eq!(
            after.iter().filter(|n| n.contains(".corrupt-")).count(),
            2,
            "{after:?}"
        );
    }

    #[test]
    fn a_directory_or_symlink_in_place_of_the_file_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::os::unix::fs::symlink("/dev/zero", &path).unwrap();
        assert!(StateFile::load(&path, false).is_err());
    }

    #[test]
    fn saves_are_private_and_never_follow_a_planted_temporary_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("state.json.tmp")).unwrap();
        drained_state(&path);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        for p in [path.clone(), backup_path(&path)] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", p.display());
        }
    }

    #[test]
    fn a_moved_file_is_written_at_its_new_place() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = StateFile::load(&dir.path().join("a.json"), false).unwrap();
        let mut drains = Drains::default();
        drains.set("web", "10.0.0.1:80".parse().unwrap(), true);
        file.save_drains(&drains).unwrap();
        let b = dir.path().join("b.json");
        file.set_path(&b).unwrap();
        assert!(
            StateFile::load(&b, false)
                .unwrap()
                .1
                .drains
                .contains("web", "10.0.0.1:80".parse().unwrap())
        );
    }
}
