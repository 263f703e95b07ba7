//! The `children` thread: the only thread that forks children, and the only one that
//! waits for them. It polls one pidfd per child; when a child ends (or is told to be
//! killed) it kills the rest of the child's tree (its cgroup, or its process group and
//! every orphan reparented to the daemon) and reaps.

use std::collections::{HashMap, HashSet};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::mpsc;

use tokio::sync::oneshot;
use tracing::warn;

use crate::sandbox::{self, Plan, Privileges};
use crate::{SpawnError, cgroup};

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    Exited(i32),
    Signaled(i32),
}

pub(crate) struct Started {
    pub(crate) id: u64,
    /// Armed from the start: if the caller is gone before it took this (its future was
    /// dropped with the reply still in the channel), dropping the reply kills the tree.
    pub(crate) guard: crate::KillOnDrop,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
    pub(crate) ended: oneshot::Receiver<Ended>,
}

pub(crate) enum Request {
    Spawn {
        plan: Plan,
        reply: oneshot::Sender<Result<Started, SpawnError>>,
    },
    /// Kill the child's whole tree now (timeout, or its owner went away).
    Kill(u64),
    /// Kill every child's tree (the daemon is stopping); answered once all are reaped
    /// and their cgroups removed, or after the caller's patience ran out.
    KillAll(mpsc::Sender<()>),
}

struct Entry {
    pid: i32,
    pidfd: OwnedFd,
    ended: Option<oneshot::Sender<Ended>>,
    cgroup: Option<PathBuf>,
}

pub(crate) struct Supervisor {
    pub(crate) requests: mpsc::Receiver<Request>,
    pub(crate) wake: OwnedFd,
    pub(crate) devnull: OwnedFd,
    pub(crate) cgroup: Option<cgroup::Base>,
    /// The daemon is a child subreaper and this thread reaps every child of the process
    /// (orphans included); off where other code has children of its own (library tests).
    pub(crate) own_all: bool,
    pub(crate) privs: Privileges,
    entries: HashMap<u64, Entry>,
    /// Reparented orphans being killed, by pid.
    orphans: HashMap<i32, OwnedFd>,
    /// Children's cgroups whose processes are dying; removed once empty.
    draining: Vec<PathBuf>,
    next_id: u64,
    warned_eperm: bool,
    /// Told when everything is gone after a [`Request::KillAll`].
    stopping: Option<mpsc::Sender<()>>,
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

impl Supervisor {
    pub(crate) fn new(
        requests: mpsc::Receiver<Request>,
        wake: OwnedFd,
        devnull: OwnedFd,
        cgroup: Option<cgroup::Base>,
        own_all: bool,
        privs: Privileges,
    ) -> Self {
        Supervisor {
            requests,
            wake,
            devnull,
            cgroup,
            own_all,
            privs,
            entries: HashMap::new(),
            orphans: HashMap::new(),
            draining: Vec::new(),
            next_id: 1,
            warned_eperm: false,
            stopping: None,
        }
    }

    pub(crate) fn run(mut self) {
        loop {
            let mut fds = vec![pollfd(self.wake.as_raw_fd())];
            let mut keys: Vec<Key> = Vec::new();
            for (id, e) in &self.entries {
                fds.push(pollfd(e.pidfd.as_raw_fd()));
                keys.push(Key::Child(*id));
            }
            for (pid, fd) in &self.orphans {
                fds.push(pollfd(fd.as_raw_fd()));
                keys.push(Key::Orphan(*pid));
            }
            // Draining cgroups are retried often; a periodic sweep catches orphans whose
            // arrival nothing announced.
            let timeout = if !self.draining.is_empty() {
                20
            } else if self.own_all {
                5_000
            } else {
                -1
            };
            // SAFETY: poll on the descriptors above, all open while `self` lives.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                continue;
            }
            let mut scan = n == 0 && self.own_all;
            if fds[0].revents != 0 {
                let mut v = [0u8; 8];
                // SAFETY: reading the eventfd's counter into 8 bytes.
                unsafe { libc::read(self.wake.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
                loop {
                    match self.requests.try_recv() {
                        Ok(r) => self.handle(r),
                        Err(mpsc::TryRecvError::Empty) => break,
                        Err(mpsc::TryRecvError::Disconnected) => return,
                    }
                }
            }
            for (fd, key) in fds[1..].iter().zip(keys) {
                if fd.revents == 0 {
                    continue;
                }
                match key {
                    Key::Child(id) => {
                        if self.reap_child(id) {
                            scan = true;
                        }
                    }
                    Key::Orphan(pid) => {
                        // Readable: it has exited. Reaped through its pidfd, and out of
                        // the map either way, so a later process with its pid is never
                        // mistaken for it.
                        if let Some(fd) = self.orphans.get(&pid)
                            && (wait_fd(fd, false).is_some() || gone(fd))
                        {
                            self.orphans.remove(&pid);
                            scan = true;
                        }
                    }
                }
            }
            if scan && self.own_all {
                self.sweep_orphans();
            }
            self.draining.retain(|dir| !cgroup::remove(dir));
            if self.entries.is_empty()
                && self.orphans.is_empty()
                && self.draining.is_empty()
                && let Some(done) = self.stopping.take()
            {
                let _ = done.send(());
            }
        }
    }

    fn handle(&mut self, request: Request) {
        match request {
            Request::Spawn { plan, reply } => {
                // The caller may have stopped waiting (its timeout) before the child
                // started: then nobody would ever kill it, so it is killed now.
                if let Err(Ok(started)) = reply.send(self.spawn(plan))
                    && let Some(e) = self.entries.get(&started.id)
                {
                    let (pid, cg) = (e.pid, e.cgroup.clone());
                    self.kill_tree(pid, cg.as_deref());
                }
            }
            Request::Kill(id) => {
                if let Some(e) = self.entries.get(&id) {
                    let (pid, cg) = (e.pid, e.cgroup.clone());
                    self.kill_tree(pid, cg.as_deref());
                }
            }
            Request::KillAll(done) => {
                let all: Vec<(i32, Option<PathBuf>)> = self
                    .entries
                    .values()
                    .map(|e| (e.pid, e.cgroup.clone()))
                    .collect();
                for (pid, cg) in all {
                    self.kill_tree(pid, cg.as_deref());
                }
                self.stopping = Some(done);
            }
        }
    }

    fn spawn(&mut self, plan: Plan) -> Result<Started, SpawnError> {
        let id = self.next_id;
        self.next_id += 1;
        let cg = match &self.cgroup {
            Some(base) => Some(base.create(id).map_err(|e| {
                SpawnError::Setup(format!("cannot create the child's cgroup: {e}"))
            })?),
            None => None,
        };
        let spawned = sandbox::spawn(
            &plan,
            self.devnull.as_fd(),
            cg.as_ref().map(|(_, fd)| fd.as_fd()),
            self.privs,
        );
        let cg_dir = cg.map(|(dir, _)| dir);
        let spawned = match spawned {
            Ok(s) => s,
            Err(e) => {
                if let Some(dir) = cg_dir {
                    self.draining.push(dir);
                }
                return Err(e);
            }
        };
        let (tx, rx) = oneshot::channel();
        self.entries.insert(
            id,
            Entry {
                pid: spawned.pid,
                pidfd: spawned.pidfd,
                ended: Some(tx),
                cgroup: cg_dir,
            },
        );
        Ok(Started {
            id,
            guard: crate::KillOnDrop { id, armed: true },
            stdout: spawned.stdout,
            stderr: spawned.stderr,
            ended: rx,
        })
    }

    /// Reaps child `id` if it has ended; then kills whatever it left behind.
    fn reap_child(&mut self, id: u64) -> bool {
        let Some(e) = self.entries.get(&id) else {
            return false;
        };
        let (pid, cg) = (e.pid, e.cgroup.clone());
        if wait_fd(&e.pidfd, true).is_none() {
            return false;
        }
        // Killed before the reap: until then the pid (and group id) cannot be reused.
        self.kill_tree(pid, cg.as_deref());
        let Some(mut e) = self.entries.remove(&id) else {
            return false;
        };
        let ended = wait_fd(&e.pidfd, false).unwrap_or(Ended::Signaled(libc::SIGKILL));
        if let Some(tx) = e.ended.take() {
            let _ = tx.send(ended);
        }
        if let Some(dir) = e.cgroup {
            self.draining.push(dir);
        }
        true
    }

    fn kill_tree(&mut self, pid: i32, cg: Option<&std::path::Path>) {
        if let Some(dir) = cg {
            match cgroup::kill(dir) {
                Ok(()) => return,
                Err(e) => warn!("cgroup.kill of {} failed: {e}", dir.display()),
            }
        }
        // SAFETY: signals to our child's process group and to the child itself (still
        // unreaped, or its group id still held by its members).
        let r = unsafe { libc::kill(-pid, libc::SIGKILL) };
        let e1 = io::Error::last_os_error();
        // SAFETY: as above.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        if r < 0 && e1.raw_os_error() == Some(libc::EPERM) {
            self.eperm();
        }
    }

    fn eperm(&mut self) {
        // With a cgroup, cgroup.kill gets every process; a refused kill() is moot.
        if !self.warned_eperm && self.cgroup.is_none() {
            self.warned_eperm = true;
            warn!(
                "cannot kill a child running as another user (EPERM): vigild needs CAP_KILL or a delegated cgroup (see docs/operations.md, Child processes)"
            );
        }
    }

    /// Kills and reaps children of the daemon it did not start: orphans of its
    /// children's trees, reparented to it as the subreaper. An orphan still in the
    /// session of a running child belongs to that child and is left alone.
    fn sweep_orphans(&mut self) {
        // A program the daemon runs itself (see `ExternalChild`): swept at a later turn.
        if crate::external_running() {
            return;
        }
        let live: HashSet<i32> = self.entries.values().map(|e| e.pid).collect();
        for pid in our_children() {
            if live.contains(&pid) || self.orphans.contains_key(&pid) {
                continue;
            }
            if let Some(sid) = session_of(pid)
                && live.contains(&sid)
            {
                continue;
            }
            // SAFETY: SIGKILL to our own (unreaped) child.
            if unsafe { libc::kill(pid, libc::SIGKILL) } < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
            {
                self.eperm();
            }
            // SAFETY: pidfd_open on our own unreaped child.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
            if fd >= 0 {
                // SAFETY: a fresh descriptor we own.
                self.orphans
                    .insert(pid, unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            } else {
                reap(pid);
            }
        }
    }
}

enum Key {
    Child(u64),
    Orphan(i32),
}

/// waitid(P_PIDFD): by the pidfd, never by a pid number that may have been reused.
const P_PIDFD: libc::idtype_t = 3;

/// How the process behind `pidfd` ended, if it has: reaped unless `peek`.
fn wait_fd(pidfd: &OwnedFd, peek: bool) -> Option<Ended> {
    // SAFETY: a zeroed siginfo_t is valid; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::__WALL | if peek { libc::WNOWAIT } else { 0 };
    // SAFETY: waitid on a pidfd we own.
    let r = unsafe { libc::waitid(P_PIDFD, pidfd.as_raw_fd() as libc::id_t, &mut info, flags) };
    // SAFETY: si_pid/si_status are set by waitid when a child was found (else 0).
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if r != 0 || pid == 0 {
        return None;
    }
    Some(if info.si_code == libc::CLD_EXITED {
        Ended::Exited(status)
    } else {
        Ended::Signaled(status)
    })
}

/// Whether `pidfd` refers to something we can no longer wait for (reaped already, or
/// not our child): the entry is stale.
fn gone(pidfd: &OwnedFd) -> bool {
    // SAFETY: as in `wait_fd`.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on a pidfd we own.
    let r = unsafe {
        libc::waitid(
            P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
        )
    };
    r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD)
}

/// waitpid without blocking, for an orphan without a pidfd (pidfd_open failed): it is
/// our unreaped child, so its pid cannot have been reused.
fn reap(pid: i32) -> Option<Ended> {
    let mut status = 0;
    // SAFETY: waitpid on a pid that is our child.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG | libc::__WALL) };
    if r != pid {
        return None;
    }
    Some(if libc::WIFEXITED(status) {
        Ended::Exited(libc::WEXITSTATUS(status))
    } else {
        Ended::Signaled(libc::WTERMSIG(status))
    })
}

/// The daemon's direct children, from every thread's `children` list (or, without
/// CONFIG_PROC_CHILDREN, a scan of /proc).
fn our_children() -> Vec<i32> {
    let me = std::process::id();
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{me}/task")) else {
        return out;
    };
    let mut had_file = false;
    for t in tasks.flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
            had_file = true;
            out.extend(s.split_whitespace().filter_map(|p| p.parse::<i32>().ok()));
        }
    }
    if !had_file && let Ok(all) = std::fs::read_dir("/proc") {
        for p in all.flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if stat_fields(pid).is_some_and(|(ppid, _)| ppid == me as i32) {
                out.push(pid);
            }
        }
    }
    out
}

/// (ppid, session) from /proc/PID/stat.
fn stat_fields(pid: i32) -> Option<(i32, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&s)
}

pub(crate) fn parse_stat(s: &str) -> Option<(i32, i32)> {
    // "PID (COMM) STATE PPID PGRP SESSION ...": COMM may hold spaces and parentheses.
    let rest = &s[s.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let _state = f.next()?;
    let ppid = f.next()?.parse().ok()?;
    let _pgrp = f.next()?;
    let session = f.next()?.parse().ok()?;
    Some((ppid, session))
}

fn session_of(pid: i32) -> Option<i32> {
    stat_fields(pid).map(|(_, sid)| sid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_past_odd_command_names() {
        assert_eq!(parse_stat("42 (a) b) (c) S 7 42 40 0 -1"), Some((7, 40)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
