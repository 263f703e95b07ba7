//! The status socket: a Unix stream socket serving the protocol (`vigil_proto`) to any
//! number of clients, none of which can stall or crash the daemon.
//!
//! One socket for everyone: each connection's credentials (SO_PEERCRED, SO_PEERGROUPS)
//! decide whether it may change things (`access::Policy`) and which connection slots it
//! may take (`access::Admission`); every write is logged with the uid and pid that made
//! it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::access::{Admission, Peer, Policy, refusal_message};
use crate::protocol::{self, ErrorCode, MAX_LINE, ProtocolError, Request};
use crate::state::{Refusal, Shared, recv_or_never};
use vigil_proto::{ConfigReply, DrainReply, Event, LaggedEvent, PONG, ReloadRecord};

pub use crate::access::MAX_CLIENTS;
/// A reply that cannot be written within this long means a client that does not read.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A new connection must complete its first request within this long.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// After a reply, the next request must be complete within this long. Both deadlines are
/// absolute: bytes trickling in without a newline do not extend them.
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
    #[error("status_socket_admin_group \"{0}\" does not exist")]
    NoSuchAdminGroup(String),
}

/// A request the main loop must handle (it owns reloading).
pub enum Control {
    Reload(oneshot::Sender<Result<ReloadRecord, ProtocolError>>),
    /// For the director (services, drains), passed on by the main loop.
    Director(crate::director::Command),
}

/// The bound socket; removes its file (and releases the lock) when dropped.
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
    _lock: Flock<File>,
    policy: Policy,
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
    /// Members of `admin_group` (and root, and the daemon's user) may change things.
    pub fn bind(
        path: &Path,
        group: Option<&str>,
        admin_group: Option<&str>,
    ) -> Result<Self, SocketError> {
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
        let admin_group = match admin_group {
            Some(name) => Some((
                name.to_string(),
                nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| SocketError::NoSuchAdminGroup(name.to_string()))?
                    .gid
                    .as_raw(),
            )),
            None => None,
        };
        let policy = Policy {
            daemon_uid: nix::unistd::geteuid().as_raw(),
            admin_group,
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
            policy,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts clients until the task is dropped.
    pub async fn serve(self: Arc<Self>, shared: Arc<Shared>, control: mpsc::Sender<Control>) {
        let admission = Arc::new(Mutex::new(Admission::default()));
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
            let peer = match Peer::of(&stream) {
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, "status socket: cannot read the client's credentials; closing it");
                    continue;
                }
            };
            let admin = self.policy.is_admin(&peer);
            let admitted = lock(&admission).connect(peer.uid, admin);
            if let Err(refusal) = admitted {
                shared.status_socket.count(refusal);
                debug!(
                    uid = peer.uid,
                    pid = peer.pid.unwrap_or(0),
                    "status socket: refused ({})",
                    refusal.as_str()
                );
                refuse(stream, refusal, peer.uid);
                continue;
            }
            shared
                .status_socket
                .accepted
                .fetch_add(1, Ordering::Relaxed);
            shared.status_socket.open.fetch_add(1, Ordering::Relaxed);
            let client = Client {
                peer,
                admin,
                subscribed: false,
                admission: admission.clone(),
                policy: self.policy.clone(),
                shared: shared.clone(),
            };
            let control = control.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_client(stream, client, control).await {
                    debug!(error = %e, "status client closed");
                }
            });
        }
    }
}

fn lock(admission: &Mutex<Admission>) -> std::sync::MutexGuard<'_, Admission> {
    // Counters only: a panic elsewhere cannot leave them torn in a way worth stopping for.
    admission.lock().unwrap_or_else(|e| e.into_inner())
}

/// One admitted connection: who it is and what it holds; gives its slots back when the
/// connection ends.
struct Client {
    peer: Peer,
    admin: bool,
    subscribed: bool,
    admission: Arc<Mutex<Admission>>,
    policy: Policy,
    shared: Arc<Shared>,
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut a = lock(&self.admission);
        a.disconnect(self.peer.uid);
        if self.subscribed {
            a.unsubscribe();
            self.shared
                .status_socket
                .subscribers
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.shared
            .status_socket
            .open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tells a connection it is refused, without waiting (a fresh socket's buffer has room
/// for one line; if not, the close alone must do), then closes it. Written with a plain
/// non-blocking write: tokio's `try_write` may not yet know a fresh socket is writable.
fn refuse(stream: UnixStream, refusal: Refusal, uid: u32) {
    let line = protocol::reply_line(
        Err::<(), _>(ProtocolError::new(
            ErrorCode::Busy,
            refusal_message(refusal, uid),
        )),
        None,
    );
    if let Ok(mut s) = stream.into_std() {
        let _ = std::io::Write::write(&mut s, &line);
    }
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
    mut client: Client,
    control: mpsc::Sender<Control>,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 8192];
    let (mut deadline, mut waited) = (
        Instant::now() + FIRST_REQUEST_TIMEOUT,
        FIRST_REQUEST_TIMEOUT,
    );
    loop {
        // Serve every complete line already buffered.
        while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (reply, watch) = handle_line(line, &mut client, &control).await;
            write_reply(&mut stream, &reply).await?;
            // A `services` reply is MiBs at 10,000 real servers: once it is written, its
            // pages go back at once rather than beside the next reload's (issue 18).
            if reply.len() >= crate::memory::BIG_REPLY {
                drop(reply);
                crate::memory::release_soon();
            }
            if let Some(watch) = watch {
                return stream_events(stream, watch).await;
            }
            (deadline, waited) = (Instant::now() + IDLE_TIMEOUT, IDLE_TIMEOUT);
        }
        if buf.len() > MAX_LINE {
            let reply = protocol::reply_line(
                Err::<(), _>(ProtocolError::new(
                    ErrorCode::LineTooLong,
                    format!("request line longer than {MAX_LINE} bytes"),
                )),
                None,
            );
            write_reply(&mut stream, &reply).await?;
            close_gracefully(stream).await;
            return Ok(());
        }
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(r) => r?,
            Err(_) => {
                client.shared.status_socket.count(Refusal::Idle);
                let reply = protocol::reply_line(
                    Err::<(), _>(ProtocolError::new(
                        ErrorCode::Idle,
                        format!("no complete request within {} s; closing", waited.as_secs()),
                    )),
                    None,
                );
                write_reply(&mut stream, &reply).await?;
                close_gracefully(stream).await;
                return Ok(());
            }
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
    real_server: Option<String>,
    drain: bool,
) -> Result<DrainReply, ProtocolError> {
    let (reply, rx) = oneshot::channel();
    let command = crate::director::Command::Drain {
        virtual_server,
        real_server,
        drain,
        reply,
    };
    if control.send(Control::Director(command)).await.is_err() {
        return Err(ProtocolError::shutting_down());
    }
    rx.await
        .unwrap_or_else(|_| Err(ProtocolError::shutting_down()))
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
    daemon: Option<broadcast::Receiver<Event>>,
    vrrp: Option<broadcast::Receiver<vigil_vrrp::io::StateEvent>>,
}

/// After a `vrrp-watch` or `events` reply: one JSON line per event until the client
/// closes (anything it sends is ignored) or no stream is left. A client too slow to keep
/// up is told how many events it missed (`{"event": "lagged", "missed": N}`) rather than
/// blocking anyone.
async fn stream_events(mut stream: UnixStream, mut watch: Watch) -> io::Result<()> {
    use broadcast::error::RecvError;
    let mut chunk = [0u8; 1024];
    let lagged = |missed| Event::Lagged(LaggedEvent { missed });
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
                Ok(e) => crate::vrrp::state_event(&e),
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
        write_reply(&mut stream, &line.to_line()).await?;
    }
}

/// Refuses a write by a non-admin, logs one by an admin (with who made it), and takes a
/// subscriber slot for a stream; `None` lets the request through.
fn authorize(request: &Request, client: &mut Client) -> Option<ProtocolError> {
    let peer = &client.peer;
    if request.is_write() {
        // The client's own words, escaped: a name with a newline must not forge a line.
        let what = format!("{} {}", request.command(), request.target().escape_debug());
        let what = what.trim_end();
        let command = request.command();
        if !client.admin {
            client.shared.status_socket.count(Refusal::Forbidden);
            warn!(
                uid = peer.uid,
                gid = peer.gid,
                pid = peer.pid.unwrap_or(0),
                "status socket: refused {what}: not an admin"
            );
            return Some(ProtocolError::new(
                ErrorCode::Forbidden,
                client.policy.needs(command, peer),
            ));
        }
        info!(
            uid = peer.uid,
            gid = peer.gid,
            pid = peer.pid.unwrap_or(0),
            "status socket: {what}"
        );
    }
    if matches!(request, Request::Events | Request::VrrpWatch) && !client.subscribed {
        if let Err(refusal) = lock(&client.admission).subscribe(client.admin) {
            client.shared.status_socket.count(refusal);
            return Some(ProtocolError::new(
                ErrorCode::Busy,
                refusal_message(refusal, peer.uid),
            ));
        }
        client.subscribed = true;
        client
            .shared
            .status_socket
            .subscribers
            .fetch_add(1, Ordering::Relaxed);
    }
    None
}

async fn handle_line(
    line: &[u8],
    client: &mut Client,
    control: &mpsc::Sender<Control>,
) -> (Vec<u8>, Option<Watch>) {
    let (request, id) = protocol::parse_request(line);
    let request = match request {
        Ok(r) => match authorize(&r, client) {
            Some(refused) => Err(refused),
            None => Ok(r),
        },
        Err(e) => Err(e),
    };
    let shared = client.shared.clone();
    let shared = &*shared;
    let request = match request {
        Ok(r) => r,
        Err(e) => return (protocol::reply_line(Err::<(), _>(e), id), None),
    };
    // Each reply is written straight from its typed form: at 10,000 real servers a
    // `Value` tree of `services` would cost tens of MiB that the allocator then keeps.
    let line = match request {
        Request::Events => {
            let watch = Watch {
                daemon: Some(shared.events.subscribe()),
                vrrp: Some(shared.vrrp.subscribe()),
            };
            let line = protocol::reply_line(Ok(Event::Subscribed), id);
            return (line, Some(watch));
        }
        Request::Ping => protocol::reply_line(Ok(PONG), id),
        Request::Status => {
            protocol::reply_line(Ok(protocol::status(shared, &shared.snapshot())), id)
        }
        Request::Config => {
            let snap = shared.snapshot();
            let reply = ConfigReply {
                generation: snap.generation,
                file: snap.config_file.clone(),
                config: &*snap.config,
            };
            protocol::reply_line(Ok(reply), id)
        }
        Request::Services => {
            let (tx, rx) = oneshot::channel();
            let asked = control
                .send(Control::Director(crate::director::Command::Services(tx)))
                .await;
            let reply = match (asked, rx.await) {
                (Ok(()), Ok(view)) => Ok(view),
                _ => Err(ProtocolError::shutting_down()),
            };
            protocol::reply_line(reply, id)
        }
        Request::Drain {
            virtual_server,
            real_server,
        } => protocol::reply_line(drain(control, virtual_server, real_server, true).await, id),
        Request::Enable {
            virtual_server,
            real_server,
        } => protocol::reply_line(drain(control, virtual_server, real_server, false).await, id),
        Request::Vrrp => protocol::reply_line(Ok(protocol::vrrp(shared, &shared.snapshot())), id),
        Request::VrrpWatch => {
            // Subscribed before the snapshot is taken, so no change falls between them.
            let watch = Watch {
                daemon: None,
                vrrp: Some(shared.vrrp.subscribe()),
            };
            let line = protocol::reply_line(Ok(protocol::vrrp(shared, &shared.snapshot())), id);
            return (line, Some(watch));
        }
        Request::VrrpHandover { instance } => {
            protocol::reply_line(shared.vrrp.request(&instance, true).await, id)
        }
        Request::VrrpReclaim { instance } => {
            protocol::reply_line(shared.vrrp.request(&instance, false).await, id)
        }
        Request::Reload => {
            let (tx, rx) = oneshot::channel();
            let reply = if control.send(Control::Reload(tx)).await.is_err() {
                Err(ProtocolError::shutting_down())
            } else {
                rx.await
                    .unwrap_or_else(|_| Err(ProtocolError::shutting_down()))
            };
            protocol::reply_line(reply, id)
        }
    };
    (line, None)
}
