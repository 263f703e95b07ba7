//! The status socket: a Unix stream socket serving the protocol in `protocol.rs` to any
//! number of clients, none of which can stall or crash the daemon.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};
use tracing::{debug, info, warn};

use crate::protocol::{self, MAX_LINE, ProtocolError, Request};
use crate::state::{Shared, recv_or_never};

/// Clients served at once; more are told so and closed.
pub const MAX_CLIENTS: usize = 256;
/// A reply that cannot be written within this long means a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no complete request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("another vigild is already serving {}", .0.display())]
    InUse(PathBuf),
    #[error("{} exists and is not a socket; refusing to replace it", .0.display())]
    NotASocket(PathBuf),
    #[error("cannot create the status socket directory {}: {}", .0.display(), .1)]
    Directory(PathBuf, #[source] io::Error),
    #[error("cannot lock {}: {}", .0.display(), .1)]
    Lock(PathBuf, #[source] io::Error),
    #[error("cannot bind {}: {}", .0.display(), .1)]
    Bind(PathBuf, #[source] io::Error),
    #[error("cannot set owner or mode of {}: {}", .0.display(), .1)]
    Permissions(PathBuf, #[source] io::Error),
    #[error("status_socket_group \"{0}\" does not exist")]
    NoSuchGroup(String),
}

/// A request the main loop must handle (it owns reloading).
pub enum Control {
    Reload(oneshot::Sender<Result<Value, ProtocolError>>),
    /// For the director (services, drains), passed on by the main loop.
    Director(crate::director::Command),
}

/// The bound socket; removes its file (and releases the lock) when dropped.
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
    _lock: Flock<File>,
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl StatusSocket {
    /// Binds `path` with mode 0660 (group `group` if given). A stale socket from a dead
    /// daemon is replaced; a live daemon's socket, or any other kind of file, is not.
    pub fn bind(path: &Path, group: Option<&str>) -> Result<Self, SocketError> {
        let gid = match group {
            Some(name) => Some(
                nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| SocketError::NoSuchGroup(name.to_string()))?
                    .gid,
            ),
            None => None,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| SocketError::Directory(dir.into(), e))?;
        }
        // The lock makes "is it stale?" race-free between two starting daemons.
        let lock_file = lock_path(path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_file)
            .map_err(|e| SocketError::Lock(lock_file.clone(), e))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
            if errno == nix::errno::Errno::EWOULDBLOCK {
                SocketError::InUse(path.to_path_buf())
            } else {
                SocketError::Lock(lock_file.clone(), io::Error::from(errno))
            }
        })?;
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                // Someone without our lock (an older daemon, or another tool) may still
                // answer on it.
                if std::os::unix::net::UnixStream::connect(path).is_ok() {
                    return Err(SocketError::InUse(path.to_path_buf()));
                }
                info!(path = %path.display(), "replacing stale status socket");
                std::fs::remove_file(path).map_err(|e| SocketError::Bind(path.into(), e))?;
            }
            Ok(_) => return Err(SocketError::NotASocket(path.to_path_buf())),
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(|e| SocketError::Bind(path.into(), e))?;
        let perm = |e| SocketError::Permissions(path.into(), e);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(perm)?;
        if let Some(gid) = gid {
            nix::unistd::chown(path, None, Some(gid)).map_err(|e| perm(io::Error::from(e)))?;
        }
        Ok(StatusSocket {
            listener,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts clients until the task is dropped.
    pub async fn serve(self: Arc<Self>, shared: Arc<Shared>, control: mpsc::Sender<Control>) {
        let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
        loop {
            let stream = match self.listener.accept().await {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, "status socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                tokio::spawn(refuse(stream));
                continue;
            };
            let (shared, control) = (shared.clone(), control.clone());
            tokio::spawn(async move {
                if let Err(e) = serve_client(stream, shared, control).await {
                    debug!(error = %e, "status client closed");
                }
                drop(permit);
            });
        }
    }
}

async fn refuse(mut stream: UnixStream) {
    let line = protocol::reply_line(
        Err::<Value, _>(ProtocolError::new(
            "busy",
            format!("more than {MAX_CLIENTS} clients connected"),
        )),
        None,
    );
    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&line)).await;
}

async fn write_reply(stream: &mut UnixStream, line: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(line)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client does not read its replies",
        )),
    }
}

async fn serve_client(
    mut stream: UnixStream,
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    loop {
        // Serve every complete line already buffered.
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (reply, watch) = handle_line(line, &shared, &control).await;
            write_reply(&mut stream, &reply).await?;
            if let Some(watch) = watch {
                return stream_events(stream, watch).await;
            }
        }
        if buf.len() > MAX_LINE {
            let reply = protocol::reply_line(
                Err::<Value, _>(ProtocolError::new(
                    "line_too_long",
                    format!("request line longer than {MAX_LINE} bytes"),
                )),
                None,
            );
            write_reply(&mut stream, &reply).await?;
            close_gracefully(stream).await;
            return Ok(());
        }
        let n = match tokio::time::timeout(IDLE_TIMEOUT, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn drain(
    control: &mpsc::Sender<Control>,
    virtual_server: String,
    real_server: String,
    drain: bool,
) -> Result<Value, ProtocolError> {
    let (reply, rx) = oneshot::channel();
    let command = crate::director::Command::Drain {
        virtual_server,
        real_server,
        drain,
        reply,
    };
    if control.send(Control::Director(command)).await.is_err() {
        return Err(ProtocolError::new(
            "shutting_down",
            "the daemon is stopping",
        ));
    }
    match rx.await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err((code, message))) => Err(ProtocolError::new(code, message)),
        Err(_) => Err(ProtocolError::new(
            "shutting_down",
            "the daemon is stopping",
        )),
    }
}

/// Closing a socket with unread input makes the kernel send a reset, which can destroy
/// the error reply before the client reads it. So: stop writing, then discard what the
/// client still sends (bounded in time and bytes), then close.
async fn close_gracefully(mut stream: UnixStream) {
    let _ = stream.shutdown().await;
    let mut chunk = [0u8; 8192];
    let mut budget: usize = 1 << 20;
    let drain = async {
        while budget > 0 {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => budget = budget.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// A streaming request's subscriptions, taken before its first reply line is built so
/// that no event falls between the two: `vrrp-watch` follows VRRP only, `events` also
/// the daemon's own events.
struct Watch {
    daemon: Option<broadcast::Receiver<Value>>,
    vrrp: Option<broadcast::Receiver<vigil_vrrp::io::StateEvent>>,
}

/// After a `vrrp-watch` or `events` reply: one JSON line per event until the client
/// closes (anything it sends is ignored) or no stream is left. A client too slow to keep
/// up is told how many events it missed (`{"event": "lagged", "missed": N}`) rather than
/// blocking anyone.
async fn stream_events(mut stream: UnixStream, mut watch: Watch) -> io::Result<()> {
    use broadcast::error::RecvError;
    let mut chunk = [0u8; 1024];
    let lagged = |n| json!({"event": "lagged", "missed": n});
    loop {
        if watch.daemon.is_none() && watch.vrrp.is_none() {
            return Ok(());
        }
        let line = tokio::select! {
            e = recv_or_never(&mut watch.daemon) => match e {
                Ok(v) => v,
                Err(RecvError::Lagged(n)) => lagged(n),
                Err(RecvError::Closed) => {
                    watch.daemon = None;
                    continue;
                }
            },
            e = recv_or_never(&mut watch.vrrp) => match e {
                Ok(e) => crate::vrrp::event_json(&e),
                Err(RecvError::Lagged(n)) => lagged(n),
                // No VRRP (or it stopped): keep serving the other events, if any.
                Err(RecvError::Closed) => {
                    watch.vrrp = None;
                    continue;
                }
            },
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return Ok(()),
                Ok(_) => continue,
            },
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        write_reply(&mut stream, &bytes).await?;
    }
}

async fn handle_line(
    line: &[u8],
    shared: &Shared,
    control: &mpsc::Sender<Control>,
) -> (Vec<u8>, Option<Watch>) {
    let (request, id) = protocol::parse_request(line);
    let mut watch = None;
    let result = match request {
        Err(e) => Err(e),
        Ok(Request::Events) => {
            watch = Some(Watch {
                daemon: Some(shared.events.subscribe()),
                vrrp: Some(shared.vrrp.subscribe()),
            });
            Ok(json!({"event": "subscribed"}))
        }
        Ok(Request::Ping) => Ok(json!("pong")),
        Ok(Request::Status) => Ok(protocol::status(shared, &shared.snapshot())),
        Ok(Request::Config) => {
            let snap = shared.snapshot();
            serde_json::to_value(&*snap.config)
                .map(|c| json!({ "generation": snap.generation, "file": snap.config_file, "config": c }))
                .map_err(|e| ProtocolError::new("internal", e.to_string()))
        }
        Ok(Request::Services) => {
            let (tx, rx) = oneshot::channel();
            let asked = control
                .send(Control::Director(crate::director::Command::Services(tx)))
                .await;
            // Written straight from its typed form: at 10,000 real servers a `Value`
            // tree of it would cost tens of MiB that the allocator then keeps.
            let reply = match (asked, rx.await) {
                (Ok(()), Ok(view)) => Ok(view),
                _ => Err(ProtocolError::new(
                    "shutting_down",
                    "the daemon is stopping",
                )),
            };
            return (protocol::reply_line(reply, id), watch);
        }
        Ok(Request::Drain {
            virtual_server,
            real_server,
        }) => drain(control, virtual_server, real_server, true).await,
        Ok(Request::Enable {
            virtual_server,
            real_server,
        }) => drain(control, virtual_server, real_server, false).await,
        Ok(Request::Vrrp) => Ok(protocol::vrrp(shared, &shared.snapshot())),
        Ok(Request::VrrpWatch) => {
            // Subscribed before the snapshot is taken, so no change falls between them.
            watch = Some(Watch {
                daemon: None,
                vrrp: Some(shared.vrrp.subscribe()),
            });
            Ok(protocol::vrrp(shared, &shared.snapshot()))
        }
        Ok(Request::VrrpHandover(name)) => vrrp_control(shared, &name, true).await,
        Ok(Request::VrrpReclaim(name)) => vrrp_control(shared, &name, false).await,
        Ok(Request::Reload) => {
            let (tx, rx) = oneshot::channel();
            if control.send(Control::Reload(tx)).await.is_err() {
                Err(ProtocolError::new(
                    "shutting_down",
                    "the daemon is stopping",
                ))
            } else {
                rx.await.unwrap_or_else(|_| {
                    Err(ProtocolError::new(
                        "shutting_down",
                        "the daemon is stopping",
                    ))
                })
            }
        }
    };
    (protocol::reply_line(result, id), watch)
}

/// Hands over (or reclaims) instance `name`, through the VRRP task.
async fn vrrp_control(shared: &Shared, name: &str, handover: bool) -> Result<Value, ProtocolError> {
    shared.vrrp.request(name, handover).await
}
