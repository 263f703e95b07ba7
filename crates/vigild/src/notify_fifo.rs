//! keepalived's notify FIFOs (`notify_fifo`, `vrrp_notify_fifo`, `lvs_notify_fifo`): one
//! line per VRRP or health change, in keepalived's format (`vigil_vrrp::notify` and
//! [`lvs_line`]), for readers written for keepalived.
//!
//! Like keepalived, the daemon creates a missing FIFO (mode 0600) and holds it open for
//! reading and writing, so lines written before a reader starts wait in the pipe. A write
//! never blocks the daemon: a line that does not fit (no reader and a full pipe, or a
//! slow one) is dropped and counted.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tracing::warn;
use vigil_config::Director;

#[derive(Debug, thiserror::Error)]
pub enum FifoError {
    #[error("notify FIFO {path}: cannot create it: {source}")]
    Create { path: PathBuf, source: nix::Error },
    #[error("notify FIFO {path}: exists and is not a FIFO")]
    NotAFifo { path: PathBuf },
    #[error("notify FIFO {path}: cannot open it: {source}")]
    Open { path: PathBuf, source: io::Error },
}

/// One open FIFO.
struct Fifo {
    path: PathBuf,
    file: File,
}

impl Fifo {
    fn open(path: &Path) -> Result<Fifo, FifoError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_fifo() => {}
            Ok(_) => return Err(FifoError::NotAFifo { path: path.into() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
                    .map_err(|source| FifoError::Create {
                        path: path.into(),
                        source,
                    })?;
            }
            Err(source) => {
                return Err(FifoError::Open {
                    path: path.into(),
                    source,
                });
            }
        }
        // Read and write: never ENXIO for want of a reader, and early lines wait.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|source| FifoError::Open {
                path: path.into(),
                source,
            })?;
        Ok(Fifo {
            path: path.into(),
            file,
        })
    }

    /// One `write`: lines are far below PIPE_BUF, so a line goes in whole or not at all.
    fn write(&self, line: &str) -> bool {
        match (&self.file).write(line.as_bytes()) {
            Ok(n) if n == line.len() => true,
            Ok(_) => false,
            Err(e) => {
                if e.kind() != io::ErrorKind::WouldBlock {
                    warn!(fifo = %self.path.display(), "notify FIFO write failed: {e}");
                }
                false
            }
        }
    }
}

#[derive(Default)]
struct Open {
    all: Option<Fifo>,
    vrrp: Option<Fifo>,
    lvs: Option<Fifo>,
    paths: [Option<PathBuf>; 3],
}

/// The daemon's notify FIFOs, replaced as a whole when a reload changes their paths.
#[derive(Default)]
pub struct NotifyFifos {
    open: RwLock<Arc<Open>>,
    dropped: AtomicU64,
}

impl NotifyFifos {
    fn paths(director: &Director) -> [Option<PathBuf>; 3] {
        [
            director.notify_fifo.clone(),
            director.vrrp_notify_fifo.clone(),
            director.lvs_notify_fifo.clone(),
        ]
    }

    /// Opens (creating when missing) the FIFOs `director` names, unless they are the ones
    /// open now. On an error nothing changes.
    pub fn configure(&self, director: &Director) -> Result<(), FifoError> {
        let paths = Self::paths(director);
        if self.current().paths == paths {
            return Ok(());
        }
        let [all, vrrp, lvs] = &paths;
        // A path named twice gets each line once.
        let distinct = |p: &Option<PathBuf>| -> Result<Option<Fifo>, FifoError> {
            match p {
                Some(p) if Some(p) != all.as_ref() => Fifo::open(p).map(Some),
                _ => Ok(None),
            }
        };
        let open = Open {
            all: all.as_deref().map(Fifo::open).transpose()?,
            vrrp: distinct(vrrp)?,
            lvs: distinct(lvs)?,
            paths,
        };
        *self.open.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(open);
        Ok(())
    }

    fn current(&self) -> Arc<Open> {
        self.open.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A VRRP line (`INSTANCE` / `GROUP`): to `notify_fifo` and `vrrp_notify_fifo`.
    pub fn vrrp(&self, line: &str) {
        let open = self.current();
        self.write([&open.all, &open.vrrp], line);
    }

    /// A health line (`VS` / `RS`): to `notify_fifo` and `lvs_notify_fifo`.
    pub fn lvs(&self, line: &str) {
        let open = self.current();
        self.write([&open.all, &open.lvs], line);
    }

    fn write(&self, fifos: [&Option<Fifo>; 2], line: &str) {
        for fifo in fifos.into_iter().flatten() {
            if !fifo.write(line) {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because a FIFO was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// keepalived's `[ADDR]:proto:PORT` form of a service or real server address, or
/// `fwmark:N` for a fwmark service.
pub fn lvs_endpoint(addr: SocketAddr, protocol: &str) -> String {
    format!("[{}]:{}:{}", addr.ip(), protocol, addr.port())
}

/// `VS [VIP]:tcp:80 UP` and `RS [RIP]:tcp:80 [VIP]:tcp:80 DOWN` lines.
pub fn lvs_line(real_server: Option<&str>, service: &str, up: bool) -> String {
    let state = if up { "UP" } else { "DOWN" };
    match real_server {
        Some(rs) => format!("RS {rs} {service} {state}\n"),
        None => format!("VS {service} {state}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lvs_lines_match_keepalived() {
        let vs = lvs_endpoint("192.168.201.15:80".parse().unwrap(), "tcp");
        let rs = lvs_endpoint("1.2.3.4:80".parse().unwrap(), "tcp");
        assert_eq!(lvs_line(None, &vs, true), "VS [192.168.201.15]:tcp:80 UP\n");
        assert_eq!(
            lvs_line(Some(&rs), &vs, false),
            "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN\n"
        );
    }

    #[test]
    fn lines_wait_in_the_pipe_and_overflow_is_counted() {
        let dir = std::env::temp_dir().join(format!("vigil-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.fifo");
        let fifos = NotifyFifos::default();
        let mut director = test_director();
        director.vrrp_notify_fifo = Some(path.clone());
        fifos.configure(&director).unwrap();
        assert!(
            std::fs::symlink_metadata(&path)
                .unwrap()
                .file_type()
                .is_fifo()
        );
        fifos.vrrp("INSTANCE \"a\" MASTER 100\n");
        fifos.lvs("VS [1.2.3.4]:tcp:80 UP\n"); // not an LVS FIFO: goes nowhere
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        let mut buf = [0u8; 128];
        let n = std::io::Read::read(&mut &reader, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"INSTANCE \"a\" MASTER 100\n");
        // Nobody reads: the pipe fills, the daemon goes on and counts.
        let line = "x".repeat(100) + "\n";
        for _ in 0..2000 {
            fifos.vrrp(&line);
        }
        assert!(fifos.dropped() > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_path_that_is_not_a_fifo_is_refused() {
        let dir = std::env::temp_dir().join(format!("vigil-fifo-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plain");
        std::fs::write(&path, "").unwrap();
        let mut director = test_director();
        director.notify_fifo = Some(path.clone());
        let err = NotifyFifos::default().configure(&director).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("notify FIFO {}: exists and is not a FIFO", path.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn test_director() -> Director {
        vigil_config::parse(Path::new("t.toml"), "[director]\nname = \"t\"\n")
            .unwrap()
            .config
            .director
    }
}
