//! The inotify watch behind file checks: the directory of each checked file is watched
//! (a file that is replaced by a rename, or removed and made again, keeps being seen),
//! and a write, move or removal of the file makes its checks due at once. keepalived
//! watches its track files the same way (IN_CLOSE_WRITE, IN_DELETE, IN_MOVE).
//!
//! Where inotify cannot be had (no instances left, a directory that does not exist when
//! the checks are set), nothing is watched and the checks' interval is the poll.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use tokio::io::unix::AsyncFd;

use crate::target::CheckKey;

const MASK: u32 = libc::IN_CLOSE_WRITE | libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_MOVED_TO;

#[derive(Debug)]
pub(crate) struct FileWatch {
    fd: AsyncFd<OwnedFd>,
    /// Per watch descriptor (a directory): the checks of each file name in it.
    dirs: HashMap<i32, HashMap<OsString, Vec<CheckKey>>>,
    /// What the watch was made for, to know when a reload changes it.
    files: BTreeMap<PathBuf, Vec<CheckKey>>,
}

impl FileWatch {
    /// A watch on `files` (each with its checks); `None` when there is nothing to watch
    /// or inotify cannot be had (the poll does it all then).
    pub(crate) fn new(files: BTreeMap<PathBuf, Vec<CheckKey>>) -> Option<Self> {
        if files.is_empty() {
            return None;
        }
        // SAFETY: inotify_init1 takes flags only; a valid descriptor is owned below.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh descriptor nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut dirs: HashMap<i32, HashMap<OsString, Vec<CheckKey>>> = HashMap::new();
        for (path, keys) in &files {
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            let Ok(c_dir) = CString::new(dir.as_os_str().as_bytes()) else {
                continue;
            };
            // SAFETY: a valid descriptor and a NUL-terminated path.
            let wd = unsafe { libc::inotify_add_watch(owned.as_raw_fd(), c_dir.as_ptr(), MASK) };
            if wd < 0 {
                continue;
            }
            dirs.entry(wd)
                .or_default()
                .entry(name.to_os_string())
                .or_default()
                .extend(keys.iter().copied());
        }
        if dirs.is_empty() {
            return None;
        }
        // SAFETY: the OwnedFd owns its descriptor for as long as the AsyncFd holds it,
        // and its as_raw_fd always returns that same descriptor.
        let fd = unsafe { AsyncFd::register(owned) }.ok()?;
        Some(FileWatch { fd, dirs, files })
    }

    pub(crate) fn files(&self) -> &BTreeMap<PathBuf, Vec<CheckKey>> {
        &self.files
    }

    /// Waits for changes and returns the checks of the files that changed (possibly
    /// none, for events about other files of the same directories).
    pub(crate) async fn changed(&self) -> Vec<CheckKey> {
        let mut keys = Vec::new();
        let Ok(mut guard) = self.fd.readable().await else {
            // The descriptor broke: never ready again, the poll goes on.
            return std::future::pending().await;
        };
        let mut buf = [0u8; 4096];
        loop {
            let read = guard.try_io(|fd| {
                // SAFETY: reads into a buffer of the length given.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n.unsigned_abs())
                }
            });
            match read {
                Ok(Ok(n)) if n > 0 => self.events(&buf[..n], &mut keys),
                // Drained (would block, readiness cleared) or an error: done for now.
                _ => break,
            }
        }
        let mut seen = std::collections::HashSet::new();
        keys.retain(|k| seen.insert(*k));
        keys
    }

    /// The checks named by the inotify events in `buf`.
    fn events(&self, buf: &[u8], keys: &mut Vec<CheckKey>) {
        const HEADER: usize = std::mem::size_of::<libc::inotify_event>();
        let mut at = 0;
        while at + HEADER <= buf.len() {
            let field = |o: usize| {
                let b = &buf[at + o..at + o + 4];
                [b[0], b[1], b[2], b[3]]
            };
            // struct inotify_event { int wd; u32 mask; u32 cookie; u32 len; char name[]; }
            let wd = i32::from_ne_bytes(field(0));
            let len = u32::from_ne_bytes(field(12)) as usize;
            let name_end = (at + HEADER + len).min(buf.len());
            let raw_name = &buf[at + HEADER..name_end];
            let name = raw_name.split(|b| *b == 0).next().unwrap_or_default();
            if let Some(files) = self.dirs.get(&wd)
                && let Some(ks) = files.get(OsStr::from_bytes(name))
            {
                keys.extend(ks.iter().copied());
            }
            at = name_end;
        }
    }
}

/// The file of every file check among `probes`, with its checks.
pub(crate) fn files_of<'a>(
    probes: impl IntoIterator<Item = (&'a CheckKey, &'a crate::probe::Probe)>,
) -> BTreeMap<PathBuf, Vec<CheckKey>> {
    let mut files: BTreeMap<PathBuf, Vec<CheckKey>> = BTreeMap::new();
    for (key, probe) in probes {
        if let Some(path) = probe.watched_file() {
            files.entry(path.to_path_buf()).or_default().push(*key);
        }
    }
    // In a fixed order, so that an unchanged set compares equal.
    for keys in files.values_mut() {
        keys.sort_by_key(|k| (k.real, k.index));
    }
    files
}
