//! Child processes for vigil: every program the daemon runs (exec health checks, VRRP
//! track programs, notify hooks) is started, sandboxed, captured, killed and reaped here.
//!
//! Owns: spawning a sandboxed child, capturing its output up to a limit, killing its
//! whole process tree, reaping every child of the daemon, and the capability split that
//! makes this possible ([`init`]). Also a small hook runner ([`hook::HookRunner`]), and
//! the [`TestFault`] the daemon's supervision tests inject into its workers (here because
//! the checker and the VRRP runner, which take it, both depend on this crate).
//!
//! Must not: know what a check, a VRRP instance or a hook means; callers build the
//! [`Command`] (program, arguments, extra environment, user, timeout).
//!
//! # What a child gets
//!
//! - No capabilities: empty effective, permitted, inheritable and ambient sets, and
//!   `no_new_privs` (setuid bits and file capabilities grant nothing). Where the spawning
//!   thread has CAP_SETPCAP, the bounding set is emptied too; a child that runs as uid 0
//!   additionally gets locked securebits (NOROOT), and without CAP_SETPCAP running a
//!   program as root is refused (root would regain every capability at exec).
//! - The user it is configured to run as (uid, gid, no supplementary groups), or the
//!   daemon's own.
//! - A cleared environment: [`ENV_ALLOWED`] plus what the caller adds (the `VIGIL_*`
//!   variables of each kind).
//! - Its own session and process group, stdin from /dev/null, cwd `/`, default signal
//!   dispositions, a parent-death signal (SIGKILL) so it dies with the daemon.
//! - stdout and stderr captured, each up to [`Command::output_limit`] bytes.
//!
//! # Killing the whole tree
//!
//! When a child exits, times out, or its caller stops waiting (the future is dropped),
//! everything it started is killed, whatever its uid and however it detached:
//!
//! - **Delegated cgroup** (systemd `Delegate=yes`): each child runs in a cgroup of its own
//!   under the daemon's (`vigil-child-N`), and `cgroup.kill` ends all of it. No
//!   capability is needed for that.
//! - **Fallback**: the daemon is a child subreaper; the child's process group is killed,
//!   and every process reparented to the daemon that is not in the session of a running
//!   child is killed and reaped. Killing another uid's processes needs CAP_KILL, which
//!   only the `children` thread keeps.
//!
//! # Threads and capabilities
//!
//! [`init`] (first thing in `main`, before any other thread exists) starts the
//! `children` thread, which alone forks children and waits for them. Capabilities are
//! per thread on Linux: that thread keeps CAP_SETUID, CAP_SETGID and CAP_SETPCAP (to
//! switch a child's user and lock it out) and, in fallback mode, CAP_KILL; the calling
//! (main) thread then drops all four, so every thread created after it, and every child,
//! never has them. One thread owns all reaping, so nothing else may wait for children
//! (no `tokio::process`, no `std::process::Command::status` in the daemon). The one
//! exception is a program that needs the daemon's own capabilities (`nft`, for the
//! nftables datapath): its caller holds an [`ExternalChild`] guard from spawn to wait,
//! so the sweep of orphans leaves it alone.

mod caps;
mod cgroup;
pub mod hook;
mod sandbox;
mod supervisor;

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{OnceLock, mpsc};
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::sandbox::{Plan, Privileges};
use crate::supervisor::{Ended, Request, Supervisor};

/// A fault the daemon's supervision tests inject into a worker (`VIGIL_TEST_FAULT`; only
/// debug builds act on it): the checker's schedulers, VRRP runners and vigild's threads.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFault {
    Panic,
    /// The worker returns as if it were done.
    End,
    /// The worker never runs again (a hang).
    Stall,
}

/// The environment every child gets, before what its caller adds: a fixed `PATH` (not
/// the daemon's) and the daemon's `LANG`, if set.
pub const ENV_ALLOWED: &[&str] = &["PATH", "LANG"];

/// The `PATH` children get.
pub const CHILD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// After a child exits, how long its output may still arrive (a grandchild holding the
/// pipe is killed with the tree, so this is rarely waited for in full).
const OUTPUT_GRACE: Duration = Duration::from_millis(100);
/// After a kill, how long to wait for the child to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Why a child could not be started.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SpawnError {
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Refused(String),
    #[error("cannot {step}: {error}")]
    Child {
        step: &'static str,
        error: String,
        not_found: bool,
    },
    #[error("argument or environment holds a NUL byte")]
    Nul,
    #[error("the children thread is not running")]
    Gone,
}

/// Why a user name cannot be used.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user \"{0}\" does not exist on this system")]
    Unknown(String),
    #[error("cannot look up user \"{0}\": {1}")]
    Lookup(String, String),
}

/// Whom a child runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// The daemon's own uid and gid (still without capabilities).
    Daemon,
    User {
        uid: u32,
        gid: u32,
    },
}

impl RunAs {
    /// Whether starting the child needs CAP_SETUID/CAP_SETGID (another uid or gid).
    pub fn switches(self) -> bool {
        match self {
            RunAs::Daemon => false,
            // SAFETY: geteuid/getegid have no preconditions.
            RunAs::User { uid, gid } => unsafe { uid != libc::geteuid() || gid != libc::getegid() },
        }
    }

    /// Whether the child would run as uid 0.
    pub fn is_root(self) -> bool {
        match self {
            // SAFETY: geteuid has no preconditions.
            RunAs::Daemon => (unsafe { libc::geteuid() }) == 0,
            RunAs::User { uid, .. } => uid == 0,
        }
    }
}

/// Looks `name` up in the system's user database (NSS).
pub fn lookup_user(name: &str) -> Result<RunAs, UserError> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Ok(RunAs::User {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }),
        Ok(None) => Err(UserError::Unknown(name.to_string())),
        Err(e) => Err(UserError::Lookup(name.to_string(), e.desc().to_string())),
    }
}

/// One program to run.
#[derive(Debug, Clone)]
pub struct Command {
    /// An absolute path; run directly, never through a shell or `PATH`.
    pub program: String,
    pub args: Vec<String>,
    /// Added to [`ENV_ALLOWED`].
    pub env: Vec<(String, String)>,
    pub run_as: RunAs,
    /// Killed (the whole tree) after this long.
    pub timeout: Duration,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_limit: usize,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            run_as: RunAs::Daemon,
            timeout: Duration::from_secs(60),
            output_limit: 4096,
        }
    }

    fn plan(&self) -> Result<Plan, SpawnError> {
        let c = |s: &str| CString::new(s).map_err(|_| SpawnError::Nul);
        let program = c(&self.program)?;
        let mut argv = vec![program.clone()];
        for a in &self.args {
            argv.push(c(a)?);
        }
        let mut env = vec![("PATH".to_string(), CHILD_PATH.to_string())];
        if let Ok(lang) = std::env::var("LANG") {
            env.push(("LANG".into(), lang));
        }
        for (k, v) in &self.env {
            env.retain(|(have, _)| have != k);
            env.push((k.clone(), v.clone()));
        }
        let envp = env
            .iter()
            .map(|(k, v)| c(&format!("{k}={v}")))
            .collect::<Result<_, _>>()?;
        let ids = match self.run_as {
            RunAs::User { uid, gid } if self.run_as.switches() => Some((uid, gid)),
            _ => None,
        };
        Ok(Plan {
            program,
            argv,
            envp,
            ids,
            as_root: self.run_as.is_root(),
        })
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Exited(i32),
    Signaled(i32),
    /// It ran past its timeout; `killed` is false when it could not be reaped within
    /// a short wait after the kill (it runs as another user and vigild may not kill it).
    TimedOut {
        killed: bool,
    },
}

/// What a finished child left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: Status,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }

    /// The first non-empty line of stderr, else of stdout: trimmed, printable, at most
    /// 160 characters. For failure reasons and logs.
    pub fn first_line(&self) -> Option<String> {
        first_line(&self.stderr).or_else(|| first_line(&self.stdout))
    }

    /// `exited with status 2`, `was killed by signal 9`, `did not exit within 1s`.
    pub fn describe(&self, timeout: Duration) -> String {
        match self.status {
            Status::Exited(c) => format!("exited with status {c}"),
            Status::Signaled(s) => format!("was killed by signal {s}"),
            Status::TimedOut { killed: true } => {
                format!("did not exit within {timeout:?}: its process tree was killed")
            }
            Status::TimedOut { killed: false } => {
                format!("did not exit within {timeout:?} and could not be killed")
            }
        }
    }
}

fn first_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(line.chars().filter(|c| !c.is_control()).take(160).collect())
}

/// How children's trees are killed in this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillMode {
    /// A cgroup per child under this delegated cgroup.
    Cgroup(PathBuf),
    /// Process group, subreaper and orphan sweep; `why` says why there is no cgroup.
    Reaper { why: String },
}

/// What [`init`] set up, for the start-up capability check and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub mode: KillMode,
    /// The children thread holds CAP_SETUID and CAP_SETGID.
    pub can_switch_users: bool,
    /// The children thread holds CAP_SETPCAP (root children, the bounding set).
    pub can_lock_root: bool,
    /// Trees of children running as another uid can be killed (cgroup, or CAP_KILL).
    pub can_kill_other_users: bool,
    /// Other threads existed at [`init`]: they keep the capabilities it drops.
    pub late: bool,
}

impl Report {
    /// Every capability (or set-up) missing to run children as `run_as`, with `why`
    /// (`"to run exec checks as nobody"`), one message per problem.
    pub fn missing_for(&self, run_as: RunAs, why: &str) -> Vec<String> {
        let mut out = Vec::new();
        if run_as.switches() && !self.can_switch_users {
            out.push(format!("CAP_SETUID and CAP_SETGID are needed {why}"));
        }
        if run_as.is_root() && !self.can_lock_root {
            out.push(format!(
                "CAP_SETPCAP is needed {why} as root without capabilities (or choose another user)"
            ));
        }
        // SAFETY: geteuid has no preconditions.
        let other_uid =
            matches!(run_as, RunAs::User { uid, .. } if uid != unsafe { libc::geteuid() });
        if other_uid && !self.can_kill_other_users {
            out.push(format!(
                "CAP_KILL or a delegated cgroup (systemd Delegate=yes) is needed {why}: a timed-out program of another user could not be killed"
            ));
        }
        out
    }
}

struct Handle {
    requests: mpsc::Sender<Request>,
    wake: OwnedFd,
    report: Report,
}

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// Live [`ExternalChild`] guards.
static EXTERNAL: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// While one is alive, the `children` thread leaves children it did not start alone
/// (its sweep of orphans waits). The one exception to "only vigil-child spawns": `nft`,
/// which needs the daemon's CAP_NET_ADMIN that sandboxed children never get, is run and
/// waited for by its caller holding this guard from before the spawn to after the wait.
#[derive(Debug)]
pub struct ExternalChild(());

/// Takes an [`ExternalChild`] guard.
pub fn external_child() -> ExternalChild {
    EXTERNAL.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    ExternalChild(())
}

impl Drop for ExternalChild {
    fn drop(&mut self) {
        EXTERNAL.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Whether an [`ExternalChild`] guard is held: no sweep now.
pub(crate) fn external_running() -> bool {
    EXTERNAL.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Options for [`init`].
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Make the process a child subreaper and reap every child it has (orphans of
    /// children's trees included). Only for a process where nothing else waits for
    /// children: the daemon, not a test binary.
    pub own_all_children: bool,
    /// Use a delegated cgroup when there is one.
    pub use_cgroup: bool,
}

/// Why [`init`] failed.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("child processes are already set up")]
    Again,
    #[error("cannot set up child processes: {0}")]
    Setup(String),
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(1, |d| d.count())
}

/// Sets up child processes for this process: the kill mode, the subreaper, the
/// `children` thread, and drops CAP_SETUID, CAP_SETGID, CAP_SETPCAP and CAP_KILL from
/// the calling thread. Call it first in `main`, before other threads exist.
pub fn init(options: Options) -> Result<&'static Report, InitError> {
    // One set-up per process, even when callers race (a second children thread would
    // take the first one's children for orphans and reap them).
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    if HANDLE.get().is_some() {
        return Err(InitError::Again);
    }
    let late = thread_count() > 1;
    let mode_and_base = if options.use_cgroup {
        cgroup::detect().and_then(cgroup::Base::set_up)
    } else {
        Err("cgroups not used".to_string())
    };
    let held = caps::get().map_err(|e| InitError::Setup(format!("capget: {e}")))?;
    let has = |c| held.effective & caps::bit(c) != 0 || held.permitted & caps::bit(c) != 0;
    let (mode, base) = match mode_and_base {
        Ok(base) => (KillMode::Cgroup(base.dir.clone()), Some(base)),
        Err(why) => (KillMode::Reaper { why }, None),
    };
    if options.own_all_children {
        // SAFETY: prctl with plain integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(InitError::Setup(format!(
                "PR_SET_CHILD_SUBREAPER: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    let privs = Privileges {
        setpcap: has(caps::CAP_SETPCAP),
        last_cap: caps::last_cap(),
    };
    let cgroup_mode = base.is_some();
    let mut keep =
        caps::bit(caps::CAP_SETUID) | caps::bit(caps::CAP_SETGID) | caps::bit(caps::CAP_SETPCAP);
    if !cgroup_mode {
        keep |= caps::bit(caps::CAP_KILL);
    }
    let report = Report {
        mode,
        can_switch_users: has(caps::CAP_SETUID) && has(caps::CAP_SETGID),
        can_lock_root: privs.setpcap,
        can_kill_other_users: cgroup_mode || has(caps::CAP_KILL),
        late,
    };
    let (tx, rx) = mpsc::channel();
    // SAFETY: eventfd with flags; the result is checked.
    let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if wake < 0 {
        return Err(InitError::Setup(format!(
            "eventfd: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: a fresh descriptor we own.
    let wake = unsafe { OwnedFd::from_raw_fd(wake) };
    let wake_thread = wake
        .try_clone()
        .map_err(|e| InitError::Setup(format!("eventfd: {e}")))?;
    let devnull: OwnedFd = std::fs::File::open("/dev/null")
        .map_err(|e| InitError::Setup(format!("/dev/null: {e}")))?
        .into();
    let own_all = options.own_all_children;
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("children".into())
        .spawn(move || {
            // Only what children need; the daemon's network capabilities are not.
            let kept = caps::keep_only_in_thread(keep);
            let _ = ready_tx.send(kept);
            Supervisor::new(rx, wake_thread, devnull, base, own_all, privs).run();
        })
        .map_err(|e| InitError::Setup(format!("cannot start the children thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(InitError::Setup(format!("capset (children thread): {e}"))),
        Err(_) => return Err(InitError::Setup("the children thread died".into())),
    }
    caps::drop_from_thread(
        caps::bit(caps::CAP_SETUID)
            | caps::bit(caps::CAP_SETGID)
            | caps::bit(caps::CAP_SETPCAP)
            | caps::bit(caps::CAP_KILL),
    )
    .map_err(|e| InitError::Setup(format!("capset: {e}")))?;
    let handle = Handle {
        requests: tx,
        wake,
        report,
    };
    if HANDLE.set(handle).is_err() {
        return Err(InitError::Again);
    }
    HANDLE
        .get()
        .map(|h| &h.report)
        .ok_or(InitError::Setup("lost the handle".into()))
}

/// What [`init`] set up, if it ran.
pub fn report() -> Option<&'static Report> {
    HANDLE.get().map(|h| &h.report)
}

/// Kills every running child's tree and waits (at most `patience`) until all are
/// reaped: for a daemon that is stopping, so nothing it started outlives it.
pub fn kill_all(patience: Duration) {
    let Some(h) = HANDLE.get() else {
        return;
    };
    let (tx, rx) = mpsc::channel();
    if h.send(Request::KillAll(tx)).is_ok() {
        let _ = rx.recv_timeout(patience);
    }
}

/// The handle; without [`init`] (library tests, tools), a minimal set-up on first use:
/// no subreaper and no cgroup, nothing dropped from other threads.
fn handle() -> Result<&'static Handle, SpawnError> {
    if let Some(h) = HANDLE.get() {
        return Ok(h);
    }
    let _ = init(Options {
        own_all_children: false,
        use_cgroup: false,
    });
    HANDLE.get().ok_or(SpawnError::Gone)
}

impl Handle {
    fn send(&self, r: Request) -> Result<(), SpawnError> {
        self.requests.send(r).map_err(|_| SpawnError::Gone)?;
        let one = 1u64.to_ne_bytes();
        // SAFETY: an 8-byte write to our eventfd.
        unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&self.wake),
                one.as_ptr().cast(),
                8,
            )
        };
        Ok(())
    }
}

/// Kills the child's tree when the caller stops waiting before it ended.
pub(crate) struct KillOnDrop {
    pub(crate) id: u64,
    pub(crate) armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed
            && let Some(h) = HANDLE.get()
        {
            let _ = h.send(Request::Kill(self.id));
        }
    }
}

/// Runs `command` to its end (or its timeout) and returns what it left. Dropping the
/// future kills the child's whole tree.
pub async fn run(command: &Command) -> Result<Output, SpawnError> {
    let plan = command.plan()?;
    let h = handle()?;
    let (reply, started) = tokio::sync::oneshot::channel();
    h.send(Request::Spawn { plan, reply })?;
    let started = started.await.map_err(|_| SpawnError::Gone)??;
    let mut guard = started.guard;
    let limit = command.output_limit;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let stdout = pipe_reader(started.stdout);
    let stderr = pipe_reader(started.stderr);
    let mut ended = started.ended;
    let status;
    {
        let reading = async {
            tokio::join!(
                read_capped(stdout, &mut out, limit),
                read_capped(stderr, &mut err, limit)
            )
        };
        tokio::pin!(reading);
        let waiting = async {
            match tokio::time::timeout(command.timeout, &mut ended).await {
                Ok(Ok(e)) => Ok(match e {
                    Ended::Exited(c) => Status::Exited(c),
                    Ended::Signaled(s) => Status::Signaled(s),
                }),
                Ok(Err(_)) => Err(SpawnError::Gone),
                Err(_) => {
                    h.send(Request::Kill(started.id))?;
                    let killed =
                        matches!(tokio::time::timeout(KILL_WAIT, &mut ended).await, Ok(Ok(_)));
                    Ok(Status::TimedOut { killed })
                }
            }
        };
        tokio::pin!(waiting);
        let mut read_done = false;
        status = loop {
            tokio::select! {
                _ = &mut reading, if !read_done => read_done = true,
                s = &mut waiting => break s,
            }
        };
        // Ended (and its tree killed), or not killable: either way, stop waiting soon.
        guard.armed = !matches!(
            status,
            Ok(Status::Exited(_) | Status::Signaled(_)) | Ok(Status::TimedOut { killed: true })
        );
        if !read_done {
            let _ = tokio::time::timeout(OUTPUT_GRACE, &mut reading).await;
        }
    }
    drop(guard);
    Ok(Output {
        status: status?,
        stdout: out,
        stderr: err,
    })
}

fn pipe_reader(fd: OwnedFd) -> Option<tokio::net::unix::pipe::Receiver> {
    tokio::net::unix::pipe::Receiver::from_owned_fd(fd).ok()
}

/// Reads to EOF, keeping the first `limit` bytes.
async fn read_capped(
    r: Option<tokio::net::unix::pipe::Receiver>,
    keep: &mut Vec<u8>,
    limit: usize,
) {
    let Some(mut r) = r else {
        return;
    };
    let mut chunk = [0u8; 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let room = limit.saturating_sub(keep.len());
                keep.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
}
