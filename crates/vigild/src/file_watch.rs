//! Watching one file's content: read at start and again whenever inotify reports a change
//! to its name in its directory (written, replaced by a rename, created or removed), with a
//! slow re-read as a safety net (inotify misses changes made through another mount).
//!
//! Self-contained (nix inotify + tokio, no vigild state) so real-server file checks can
//! share it; also holds keepalived's reading of such a file as a number.
//! Must not: interpret what the number means (the caller does).

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

/// How often the file is read again without an inotify event (also while its directory
/// cannot be watched, e.g. it does not exist yet).
pub const REREAD: Duration = Duration::from_secs(5);

/// At most this much of the file is read (keepalived reads 127 bytes).
pub const READ_LIMIT: u64 = 4096;

/// The file's content now: `None` when it is missing or unreadable.
pub fn read(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// keepalived's number in a tracked file (`strtol(buf, NULL, 0)`): leading blanks, a sign,
/// then decimal, `0x` hex or `0` octal digits up to the first other character; no digits
/// read 0, and a missing file is read as empty. `None`: beyond a 32-bit int, which
/// keepalived ignores (the last value stays).
pub fn parse_number(content: &[u8]) -> Option<i64> {
    let s = content.trim_ascii_start();
    let (negative, s) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) = match s {
        [b'0', b'x' | b'X', rest @ ..] if rest.first().is_some_and(u8::is_ascii_hexdigit) => {
            (16, rest)
        }
        [b'0', rest @ ..] => (8, rest),
        _ => (10, s),
    };
    let mut value: i64 = 0;
    for &b in digits {
        let Some(d) = char::from(b).to_digit(radix) else {
            break;
        };
        value = value
            .checked_mul(i64::from(radix))?
            .checked_add(i64::from(d))?;
        if value > i64::from(u32::MAX) {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    (i64::from(i32::MIN)..=i64::from(i32::MAX))
        .contains(&value)
        .then_some(value)
}

struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Calls `changed` with the file's content at start and after every change of it, for
/// ever (the caller drops the future to stop). Content that did not change is not
/// reported again.
pub async fn watch(path: PathBuf, mut changed: impl FnMut(Option<Vec<u8>>)) {
    let watcher = directory_watch(&path);
    if let Err(e) = &watcher {
        tracing::debug!(
            "{}: no inotify watch ({e}); reading every {REREAD:?}",
            path.display()
        );
    }
    let mut watcher = watcher.ok();
    let mut last: Option<Option<Vec<u8>>> = None;
    loop {
        let now = read(&path);
        if last.as_ref() != Some(&now) {
            changed(now.clone());
            last = Some(now);
        }
        let event = async {
            match &mut watcher {
                Some(w) => wait_for_name(w, &path).await,
                None => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            watching = event => Some(watching),
            _ = tokio::time::sleep(REREAD) => None,
        };
        if outcome == Some(false) {
            // The directory went away: watch it again once it is back.
            watcher = None;
        }
        if watcher.is_none() {
            watcher = directory_watch(&path).ok();
        }
    }
}

/// An inotify watch on the file's directory: watching the file itself would lose it when
/// it is replaced by a rename (the usual atomic update) or removed and created again.
fn directory_watch(path: &Path) -> io::Result<AsyncFd<Fd>> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
    inotify.add_watch(
        dir,
        AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF,
    )?;
    // SAFETY: the Inotify owns its descriptor for as long as the AsyncFd holds it, and
    // as_raw_fd always returns that same descriptor.
    unsafe { AsyncFd::register(Fd(inotify)) }.map_err(|e| e.into_parts().1)
}

/// Returns once an event names the file: `true`, or `false` when the directory itself
/// went away (the watch is gone with it).
async fn wait_for_name(w: &mut AsyncFd<Fd>, path: &Path) -> bool {
    let name = path.file_name();
    let gone =
        AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED;
    loop {
        let Ok(mut ready) = w.readable().await else {
            return false;
        };
        match ready.get_inner().0.read_events() {
            Ok(events) => {
                if events.iter().any(|e| e.mask.intersects(gone)) {
                    return false;
                }
                // An overflowed queue lost events: read the file again to be sure.
                if events.iter().any(|e| {
                    e.name.as_deref() == name || e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                }) {
                    return true;
                }
            }
            Err(nix::errno::Errno::EAGAIN) => ready.clear_ready(),
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real files in a temporary directory: written in place, replaced by a rename,
    /// removed, and the directory removed and made again.
    #[tokio::test]
    async fn every_change_of_the_file_is_seen() {
        let Ok(dir) = tempfile::tempdir() else {
            return;
        };
        let sub = dir.path().join("d");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("value");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = tokio::spawn(watch(path.clone(), move |c| {
            let _ = tx.send(c);
        }));
        let next = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Option<Vec<u8>>>| {
            tokio::time::timeout(Duration::from_secs(3), rx.recv())
                .await
                .ok()
                .flatten()
        };
        assert_eq!(next(&mut rx).await, Some(None), "missing at start");
        std::fs::write(&path, "1").unwrap();
        assert_eq!(next(&mut rx).await, Some(Some(b"1".to_vec())));
        std::fs::write(sub.join("tmp"), "2").unwrap();
        std::fs::rename(sub.join("tmp"), &path).unwrap();
        assert_eq!(next(&mut rx).await, Some(Some(b"2".to_vec())));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(next(&mut rx).await, Some(None));
        std::fs::remove_dir(&sub).unwrap();
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(&path, "3").unwrap();
        // Seen by the re-read at the latest, which also watches the directory again.
        let again = tokio::time::timeout(REREAD * 2, rx.recv())
            .await
            .ok()
            .flatten();
        assert_eq!(again, Some(Some(b"3".to_vec())));
        std::fs::write(&path, "4").unwrap();
        assert_eq!(next(&mut rx).await, Some(Some(b"4".to_vec())));
        watcher.abort();
    }

    #[test]
    fn numbers_read_as_keepalived_reads_them() {
        assert_eq!(parse_number(b"42\n"), Some(42));
        assert_eq!(parse_number(b"  -7 apples"), Some(-7));
        assert_eq!(parse_number(b"+3"), Some(3));
        assert_eq!(parse_number(b"0x1f"), Some(31));
        assert_eq!(parse_number(b"010"), Some(8));
        assert_eq!(parse_number(b"0"), Some(0));
        assert_eq!(parse_number(b""), Some(0));
        assert_eq!(parse_number(b"up"), Some(0));
        assert_eq!(parse_number(b"12abc"), Some(12));
        assert_eq!(parse_number(b"2147483647"), Some(2_147_483_647));
        assert_eq!(parse_number(b"-2147483648"), Some(-2_147_483_648));
        assert_eq!(parse_number(b"2147483648"), None);
        assert_eq!(parse_number(b"99999999999999999999999"), None);
    }
}
