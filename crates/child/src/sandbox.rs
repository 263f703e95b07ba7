//! fork + exec of one sandboxed child. Everything the child needs is prepared before the
//! fork; between fork and exec the child makes only raw, async-signal-safe system calls
//! (no allocation, no locks), reporting a failed step through a close-on-exec pipe.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::SpawnError;
use crate::caps;

/// A child ready to be started: C strings built and the identity decided.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) program: CString,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    /// Switch to this uid and gid (clearing supplementary groups); `None` keeps the
    /// daemon's.
    pub(crate) ids: Option<(u32, u32)>,
    /// The child ends up as uid 0: it must be made unable to regain capabilities.
    pub(crate) as_root: bool,
}

/// What the spawning thread may do for a child.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Privileges {
    /// CAP_SETPCAP in the spawning thread: securebits and the bounding set can be set.
    pub(crate) setpcap: bool,
    pub(crate) last_cap: u32,
}

/// A started child: the pid (unreaped, so it cannot be reused), a pidfd to poll for its
/// exit, and the read ends of its stdout and stderr.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: i32,
    pub(crate) pidfd: OwnedFd,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

// Steps between fork and exec, reported with errno when one fails.
const STEP_FDS: i32 = 1;
const STEP_SETSID: i32 = 2;
const STEP_CGROUP: i32 = 3;
const STEP_NO_NEW_PRIVS: i32 = 4;
const STEP_SECUREBITS: i32 = 5;
const STEP_BOUNDING: i32 = 6;
const STEP_GROUPS: i32 = 7;
const STEP_GID: i32 = 8;
const STEP_UID: i32 = 9;
const STEP_AMBIENT: i32 = 10;
const STEP_CAPSET: i32 = 11;
const STEP_PDEATHSIG: i32 = 12;
const STEP_CHDIR: i32 = 13;
const STEP_EXEC: i32 = 14;

fn step_name(step: i32) -> &'static str {
    match step {
        STEP_FDS => "set up stdin, stdout and stderr",
        STEP_SETSID => "start a session",
        STEP_CGROUP => "join its cgroup",
        STEP_NO_NEW_PRIVS => "set no_new_privs",
        STEP_SECUREBITS => "lock securebits",
        STEP_BOUNDING => "clear the capability bounding set",
        STEP_GROUPS => "clear supplementary groups",
        STEP_GID => "switch group",
        STEP_UID => "switch user",
        STEP_AMBIENT => "clear ambient capabilities",
        STEP_CAPSET => "clear capabilities",
        STEP_PDEATHSIG => "set the parent-death signal",
        STEP_CHDIR => "change to /",
        STEP_EXEC => "execute",
        _ => "start",
    }
}

// securebits (linux/securebits.h): root gets no capabilities from exec, setuid does not
// touch capabilities, ambient capabilities cannot be raised; each locked.
const SECBITS_NOROOT_LOCKED: libc::c_ulong = 0b1110_1111;
const PR_SET_SECUREBITS: libc::c_int = 28;

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn null_terminated(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Starts `plan`. Must run on a thread holding the capabilities the plan needs
/// (CAP_SETUID/CAP_SETGID to switch user, CAP_SETPCAP for a root child): the child
/// inherits the forking thread's sets.
pub(crate) fn spawn(
    plan: &Plan,
    devnull: BorrowedFd<'_>,
    cgroup_procs: Option<BorrowedFd<'_>>,
    privs: Privileges,
) -> Result<Spawned, SpawnError> {
    let io_err = |what: &'static str| {
        let e = io::Error::last_os_error();
        move |_| SpawnError::Setup(format!("{what}: {e}"))
    };
    if plan.as_root && !privs.setpcap {
        return Err(SpawnError::Refused(
            "a program run as root would regain every capability: vigild needs CAP_SETPCAP to lock it out (securebits), or give the program another user".into(),
        ));
    }
    let (out_r, out_w) = pipe().map_err(|e| SpawnError::Setup(format!("pipe: {e}")))?;
    let (err_r, err_w) = pipe().map_err(|e| SpawnError::Setup(format!("pipe: {e}")))?;
    let (report_r, report_w) = pipe().map_err(|e| SpawnError::Setup(format!("pipe: {e}")))?;
    let argv = null_terminated(&plan.argv);
    let envp = null_terminated(&plan.envp);
    let zero_caps = [caps::Data::default(); 2];
    let mut cap_header = caps::header();
    let mut sigset_empty: libc::sigset_t = unsafe_zeroed();
    // SAFETY: initialises the set we own.
    unsafe { libc::sigemptyset(&mut sigset_empty) };
    let parent = std::process::id() as libc::pid_t;
    let fds = [devnull.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
    let cgroup_fd = cgroup_procs.map(|f| f.as_raw_fd());
    let report_fd = report_w.as_raw_fd();

    // SAFETY: fork in a multithreaded process: the child below makes only
    // async-signal-safe raw system calls on data prepared above, then execs or _exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io_err("fork")(()));
    }
    if pid == 0 {
        // SAFETY: we are the child; see `child`.
        unsafe {
            child(ChildArgs {
                fds,
                cgroup_fd,
                report_fd,
                plan,
                argv: &argv,
                envp: &envp,
                zero_caps: &zero_caps,
                cap_header: &mut cap_header,
                sigset_empty: &sigset_empty,
                parent,
                privs,
            })
        }
    }
    drop(out_w);
    drop(err_w);
    drop(report_w);
    // SAFETY: pidfd_open on our own unreaped child.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let pidfd = if pidfd < 0 {
        Err(io::Error::last_os_error())
    } else {
        // SAFETY: a fresh descriptor we own (pidfds are close-on-exec).
        Ok(unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) })
    };
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: reads into the rest of `buf`.
        let n = unsafe {
            libc::read(
                report_r.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            break;
        }
        got += n as usize;
    }
    if got == 0 {
        // EOF: the exec happened (the pipe closed on exec).
        let pidfd = match pidfd {
            Ok(fd) => fd,
            Err(e) => {
                // SAFETY: kill and reap our own child; we cannot watch it.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
                return Err(SpawnError::Setup(format!(
                    "pidfd_open (Linux 5.3 or later is needed): {e}"
                )));
            }
        };
        return Ok(Spawned {
            pid,
            pidfd,
            stdout: out_r,
            stderr: err_r,
        });
    }
    // The child failed before exec and _exits: reap it here, it is not registered.
    // SAFETY: our own child, which is exiting.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    let step = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let errno = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let e = io::Error::from_raw_os_error(errno);
    Err(SpawnError::Child {
        step: step_name(step),
        error: strip_os_error(&e.to_string()),
        not_found: step == STEP_EXEC && errno == libc::ENOENT,
    })
}

/// "No such file or directory (os error 2)" without the number, for reasons.
fn strip_os_error(s: &str) -> String {
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

fn unsafe_zeroed<T: Copy>() -> T {
    // SAFETY: only used for plain C structs (sigset_t) for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

struct ChildArgs<'a> {
    fds: [RawFd; 3],
    cgroup_fd: Option<RawFd>,
    report_fd: RawFd,
    plan: &'a Plan,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    zero_caps: &'a [caps::Data; 2],
    cap_header: &'a mut caps::Header,
    sigset_empty: &'a libc::sigset_t,
    parent: libc::pid_t,
    privs: Privileges,
}

/// Reports `step` and the current errno to the parent and exits.
unsafe fn fail(report_fd: RawFd, step: i32) -> ! {
    // SAFETY: errno location is per thread and always valid.
    let errno = unsafe { *libc::__errno_location() };
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&step.to_be_bytes());
    msg[4..].copy_from_slice(&errno.to_be_bytes());
    // SAFETY: write and _exit are async-signal-safe.
    unsafe {
        libc::write(report_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// The child between fork and exec. Only raw system calls: no allocation, no locks.
unsafe fn child(a: ChildArgs<'_>) -> ! {
    macro_rules! check {
        ($step:expr, $call:expr) => {
            if $call < 0 {
                fail(a.report_fd, $step)
            }
        };
    }
    // SAFETY: every call below is an async-signal-safe system call on prepared data.
    unsafe {
        // stdin from /dev/null, stdout and stderr to the capture pipes. Duplicated
        // above 2 first, so a source that happens to be 0..2 is not overwritten.
        let mut high = [0 as RawFd; 3];
        for (i, fd) in a.fds.iter().enumerate() {
            high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3);
            check!(STEP_FDS, high[i]);
        }
        for (i, fd) in high.iter().enumerate() {
            check!(STEP_FDS, libc::dup2(*fd, i as RawFd));
        }
        // Signals: the daemon's ignored ones (SIGPIPE) would be inherited; a clean mask.
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        libc::sigprocmask(libc::SIG_SETMASK, a.sigset_empty, std::ptr::null_mut());
        // Its own session and process group: no controlling terminal, and a group the
        // fallback reaper can signal as a whole.
        check!(STEP_SETSID, libc::setsid());
        if let Some(fd) = a.cgroup_fd {
            // "0" moves the writing process; done before the uid changes, while the
            // delegated cgroup's owner is still who we are.
            check!(STEP_CGROUP, libc::write(fd, b"0".as_ptr().cast(), 1));
        }
        // vigild turns transparent huge pages off for itself (vigild::memory); a child
        // program starts with the system's setting. Not checked: kernels before 3.15
        // have neither the flag nor the call.
        libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0);
        check!(
            STEP_NO_NEW_PRIVS,
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        );
        if a.privs.setpcap {
            if a.plan.as_root {
                check!(
                    STEP_SECUREBITS,
                    libc::prctl(PR_SET_SECUREBITS, SECBITS_NOROOT_LOCKED, 0, 0, 0)
                );
            }
            for cap in 0..=a.privs.last_cap {
                check!(
                    STEP_BOUNDING,
                    libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)
                );
            }
        }
        if let Some((uid, gid)) = a.plan.ids {
            // Raw system calls: they change this (the only) thread, which is what we
            // want, without libc's all-threads broadcast.
            check!(
                STEP_GROUPS,
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>())
            );
            check!(STEP_GID, libc::syscall(libc::SYS_setresgid, gid, gid, gid));
            check!(STEP_UID, libc::syscall(libc::SYS_setresuid, uid, uid, uid));
        }
        check!(
            STEP_AMBIENT,
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0
            )
        );
        check!(
            STEP_CAPSET,
            libc::syscall(
                libc::SYS_capset,
                a.cap_header as *mut caps::Header,
                a.zero_caps.as_ptr()
            )
        );
        // After the uid change, which clears it. If the daemon dies, so does the child.
        check!(
            STEP_PDEATHSIG,
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0
            )
        );
        if libc::getppid() != a.parent {
            libc::_exit(127);
        }
        check!(STEP_CHDIR, libc::chdir(c"/".as_ptr()));
        libc::execve(a.plan.program.as_ptr(), a.argv.as_ptr(), a.envp.as_ptr());
        fail(a.report_fd, STEP_EXEC)
    }
}
