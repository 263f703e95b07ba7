//! The network-namespace lab guard, a thin owner of `tests/lab/netns-lab`.

use crate::{LabError, lab_dir, show_cmd};
use std::ffi::OsStr;
use std::net::Ipv4Addr;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Where `ip netns` keeps its namespace names.
const NETNS_DIR: &str = "/run/netns";

/// Linux capability numbers (linux/capability.h) the labs need.
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// A running netns lab: hosts on one bridge, each in its own network namespace.
///
/// Dropping it kills every process inside the lab's namespaces and removes them
/// (`netns-lab down`), also while unwinding from a panic.
#[derive(Debug)]
pub struct NetnsLab {
    prefix: String,
    hosts: Vec<(String, Ipv4Addr)>,
    subnet: String,
    down: bool,
}

impl NetnsLab {
    /// Whether labs can be built here: root with CAP_SYS_ADMIN and CAP_NET_ADMIN (bind
    /// mounts of namespaces, links), `ip`, `flock`, and the `netns-lab` script.
    pub fn available() -> Result<(), String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(format!(
                "not root (euid {euid}): netns labs need root, e.g. `sudo -E cargo test`"
            ));
        }
        let caps = effective_caps().map_err(|e| format!("cannot read capabilities: {e}"))?;
        for (bit, name) in [
            (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
            (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
        ] {
            if caps & (1u64 << bit) == 0 {
                return Err(format!("root without {name} (a restricted container?)"));
            }
        }
        crate::have_tools(&["ip", "flock", "bash"])?;
        let script = script();
        if !script.is_file() {
            return Err(format!("lab script {} not found", script.display()));
        }
        Ok(())
    }

    /// Builds a lab with these hosts (names `[a-z][a-z0-9_]{0,12}`, not `br`), which get
    /// `10.99.0.1`, `.2`, ... in this order.
    pub fn up(hosts: &[&str]) -> Result<NetnsLab, LabError> {
        Self::up_with_subnet(hosts, "10.99.0")
    }

    /// Like [`NetnsLab::up`] with another /24 (three octets, e.g. `"192.168.7"`). Labs
    /// are isolated from each other, so this is only needed for what a test itself wants.
    pub fn up_with_subnet(hosts: &[&str], subnet: &str) -> Result<NetnsLab, LabError> {
        Self::available().map_err(LabError::Unavailable)?;
        let owner = std::process::id().to_string();
        // A dead test process with our PID may have left a lab with the same prefix
        // behind; --exclusive tells us (status 3), and we move on to the next counter.
        loop {
            let prefix = next_prefix();
            let mut lab = NetnsLab {
                prefix: prefix.clone(),
                hosts: Vec::new(),
                subnet: subnet.to_owned(),
                down: false,
            };
            let joined = hosts.join(",");
            let args = [
                "up",
                "--prefix",
                &prefix,
                "--hosts",
                &joined,
                "--subnet",
                subnet,
                "--exclusive",
                "--owner",
                &owner,
            ];
            match run_script(&args) {
                Ok(out) => {
                    lab.hosts = parse_list(&prefix, &out, &show_cmd(args))?;
                    return Ok(lab);
                }
                Err(LabError::Failed { status, .. }) if status.code() == Some(3) => {
                    // Not ours: forget it without tearing it down.
                    lab.down = true;
                    continue;
                }
                // `lab` drops here and removes whatever `up` managed to build.
                Err(e) => return Err(e),
            }
        }
    }

    /// Adds hosts to the running lab; existing hosts keep their addresses.
    pub fn add_hosts(&mut self, hosts: &[&str]) -> Result<(), LabError> {
        let joined = hosts.join(",");
        let args = [
            "up",
            "--prefix",
            &self.prefix,
            "--hosts",
            &joined,
            "--subnet",
            &self.subnet,
        ];
        let out = run_script(&args)?;
        self.hosts = parse_list(&self.prefix, &out, &show_cmd(args))?;
        Ok(())
    }

    /// The lab's prefix: namespaces are `PREFIX-HOST`, the bridge's is `PREFIX-br`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hosts, in address order.
    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.hosts.iter().map(|(h, _)| h.as_str())
    }

    /// The host's address on the lab's bridge (its `eth0`, a /24).
    ///
    /// # Panics
    ///
    /// If the lab has no such host.
    pub fn ip(&self, host: &str) -> Ipv4Addr {
        match self.hosts.iter().find(|(h, _)| h == host) {
            Some((_, ip)) => *ip,
            None => panic!(
                "lab {} has no host {host:?} (hosts: {:?})",
                self.prefix,
                self.host_names()
            ),
        }
    }

    /// An address in the lab's subnet that no host has: `.N` (use 100 and up for VIPs).
    pub fn subnet_addr(&self, last_octet: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.ip_any().octets();
        Ipv4Addr::new(a, b, c, last_octet)
    }

    /// The namespace name of `host` (`"br"` is the bridge's namespace), as `ip netns`
    /// and `ip -n` take it.
    pub fn netns_name(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// The namespace file of `host`, e.g. for `setns(2)`.
    pub fn netns_path(&self, host: &str) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(self.netns_name(host))
    }

    /// A command that runs `argv` inside `host`'s namespace (`"br"`: the bridge's).
    /// `ip netns exec` execs the program, so the child's PID is the program's own.
    ///
    /// # Panics
    ///
    /// If `argv` is empty.
    pub fn cmd<I, S>(&self, host: &str, argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut argv = argv.into_iter().peekable();
        assert!(argv.peek().is_some(), "NetnsLab::cmd({host:?}): empty argv");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec"])
            .arg(self.netns_name(host))
            .args(argv);
        cmd
    }

    /// Starts `argv` in `host`'s namespace (stdin from /dev/null, output inherited);
    /// the returned guard kills it when dropped.
    pub fn spawn<I, S>(&self, host: &str, argv: I) -> Result<LabChild, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(host, argv);
        cmd.stdin(Stdio::null());
        LabChild::spawn(&mut cmd)
    }

    /// Runs `argv` in `host`'s namespace to completion and returns its stdout; an error
    /// (with its stderr) unless it exits with 0.
    pub fn run<I, S>(&self, host: &str, argv: I) -> Result<String, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cmd(host, argv);
        output_of(&mut cmd)
    }

    /// Calls `f` on a fresh thread that has entered `host`'s network namespace, and
    /// returns its result ([`run_in_netns`]).
    pub fn run_in<T, F>(&self, host: &str, f: F) -> Result<T, LabError>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        run_in_netns(self.netns_path(host), f)
    }

    /// [`NetnsLab::run_in`] in the background ([`spawn_in_netns`]): `f` runs on a new
    /// thread in `host`'s network namespace while the caller goes on (e.g. changes the
    /// director under a client's traffic). Join the handle for `f`'s result.
    pub fn spawn_in<T, F>(
        &self,
        host: &str,
        f: F,
    ) -> Result<std::thread::JoinHandle<Result<T, LabError>>, LabError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        spawn_in_netns(self.netns_path(host), f)
    }

    /// Plugs (`true`) or unplugs `host`'s cable: its bridge port goes up or down. With a
    /// SIGKILL of the daemon this simulates a host crash (a killed daemon leaves its VIP).
    pub fn set_link(&self, host: &str, up: bool) -> Result<(), LabError> {
        let port = format!("v-{host}");
        let state = if up { "up" } else { "down" };
        let mut cmd = Command::new("ip");
        cmd.args(["-n", &self.netns_name("br"), "link", "set", &port, state]);
        output_of(&mut cmd).map(drop)
    }

    /// Removes the lab now, reporting failure (dropping it does the same, but can only
    /// print a failure).
    pub fn down(mut self) -> Result<(), LabError> {
        self.down = true;
        run_script(&["down", "--prefix", &self.prefix]).map(drop)
    }

    fn host_names(&self) -> Vec<&str> {
        self.hosts().collect()
    }

    fn ip_any(&self) -> Ipv4Addr {
        match self.hosts.first() {
            Some((_, ip)) => *ip,
            None => panic!("lab {} has no hosts", self.prefix),
        }
    }
}

impl Drop for NetnsLab {
    fn drop(&mut self) {
        if self.down {
            return;
        }
        if let Err(e) = run_script(&["down", "--prefix", &self.prefix]) {
            // Can't fail a test from here (and must not panic while unwinding): shout.
            eprintln!(
                "NETNS LAB LEAK: could not remove lab {}: {e}\n  clean up with: {} down {}",
                self.prefix,
                script().display(),
                self.prefix
            );
        }
    }
}

/// A process started in a lab; killed (SIGKILL) and reaped when dropped unless it has
/// already ended. Derefs to [`std::process::Child`].
#[derive(Debug)]
pub struct LabChild {
    child: Child,
}

impl LabChild {
    /// Spawns a prepared command (e.g. from [`NetnsLab::cmd`] with piped output).
    pub fn spawn(cmd: &mut Command) -> Result<LabChild, LabError> {
        let what = show_cmd(std::iter::once(cmd.get_program()).chain(cmd.get_args()));
        let child = cmd
            .spawn()
            .map_err(|source| LabError::Spawn { what, source })?;
        Ok(LabChild { child })
    }

    /// Sends a signal (`libc::SIGTERM`, `libc::SIGKILL`, `libc::SIGSTOP`, ...).
    pub fn signal(&self, sig: libc::c_int) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(std::io::Error::other)?;
        // SAFETY: plain syscall on a PID we own and have not reaped (so not reused).
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Waits up to `timeout` for the process to end.
    pub fn wait_timeout(&mut self, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
        let mut result = Ok(None);
        crate::wait_for(timeout, || {
            result = self.child.try_wait();
            !matches!(result, Ok(None))
        });
        result
    }

    /// SIGTERM, then SIGKILL if it has not ended after `grace`; returns how it ended.
    pub fn terminate(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.signal(libc::SIGTERM)?;
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok(status);
        }
        self.child.kill()?;
        self.child.wait()
    }
}

impl Deref for LabChild {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for LabChild {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for LabChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn script() -> PathBuf {
    lab_dir().join("netns-lab")
}

/// `t`, then the PID in base 36 at a fixed width of 5 (PIDs < 36^5 = 60M, above
/// Linux's 4M limit), then a per-process counter in base 36: unique across processes
/// and calls, and within netns-lab's `[a-z][a-z0-9]{0,9}` for up to 36^4 labs per
/// process. The fixed width keeps (pid, counter) pairs from colliding; the leading `t`
/// marks test labs.
fn next_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    assert!(n < 36u32.pow(4), "more than 36^4 netns labs in one process");
    format!("t{:0>5}{}", base36(std::process::id()), base36(n))
}

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs `netns-lab ARGS`, returning stdout; non-zero exit is an error carrying stderr.
fn run_script(args: &[&str]) -> Result<String, LabError> {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args);
    output_of(&mut cmd)
}

fn output_of(cmd: &mut Command) -> Result<String, LabError> {
    let what = show_cmd(std::iter::once(cmd.get_program()).chain(cmd.get_args()));
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            what: what.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(LabError::Failed {
            what,
            status: out.status,
            stderr,
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Parses `netns-lab list P` output: `P-HOST   A.B.C.N/24` per line.
fn parse_list(prefix: &str, out: &str, what: &str) -> Result<Vec<(String, Ipv4Addr)>, LabError> {
    let bad = |line: &str| LabError::Parse {
        what: what.to_owned(),
        line: line.to_owned(),
    };
    let mut hosts = Vec::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split_whitespace();
        let (Some(ns), Some(cidr)) = (fields.next(), fields.next()) else {
            return Err(bad(line));
        };
        let host = ns.strip_prefix(prefix).and_then(|h| h.strip_prefix('-'));
        let addr = cidr
            .split('/')
            .next()
            .and_then(|a| a.parse::<Ipv4Addr>().ok());
        match (host, addr) {
            (Some(h), Some(a)) => hosts.push((h.to_owned(), a)),
            _ => return Err(bad(line)),
        }
    }
    hosts.sort_by_key(|(_, ip)| *ip);
    Ok(hosts)
}

/// The effective capability set of this process, from /proc/self/status.
fn effective_caps() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| std::io::Error::other("no CapEff line"))
}

/// Calls `f` on a fresh thread that has entered the network namespace at `path` (a
/// lab host's `/run/netns/NAME`, a daemon's `/proc/PID/ns/net`), and returns its result.
/// Sockets created in `f` stay in that namespace wherever they are used afterwards. A
/// panic in `f` is passed on.
pub fn run_in_netns<T, F>(path: impl Into<PathBuf>, f: F) -> Result<T, LabError>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    let (path, ns) = open_netns(path.into())?;
    // setns() moves only the calling thread, so a dedicated thread keeps the test's own
    // threads (and any async runtime) in the host's namespace.
    std::thread::scope(|s| {
        let worker = s.spawn(|| {
            enter_netns(&path, &ns)?;
            Ok(f())
        });
        match worker.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// [`run_in_netns`] in the background: `f` runs on a new thread that has entered the
/// namespace at `path`, while the caller goes on. Join the handle for `f`'s result.
pub fn spawn_in_netns<T, F>(
    path: impl Into<PathBuf>,
    f: F,
) -> Result<std::thread::JoinHandle<Result<T, LabError>>, LabError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (path, ns) = open_netns(path.into())?;
    Ok(std::thread::spawn(move || {
        enter_netns(&path, &ns)?;
        Ok(f())
    }))
}

fn open_netns(path: PathBuf) -> Result<(PathBuf, std::fs::File), LabError> {
    match std::fs::File::open(&path) {
        Ok(ns) => Ok((path, ns)),
        Err(source) => Err(LabError::Setns { path, source }),
    }
}

/// Moves the calling thread into the network namespace open as `ns` (at `path`).
fn enter_netns(path: &Path, ns: &std::fs::File) -> Result<(), LabError> {
    use std::os::fd::AsRawFd;
    // SAFETY: `ns` is an open namespace file; setns() moves only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(LabError::Setns {
            path: path.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_and_valid() {
        let a = next_prefix();
        let b = next_prefix();
        assert_ne!(a, b);
        for p in [&a, &b] {
            assert!(p.len() <= 10 && p.starts_with('t'), "{p}");
            assert!(
                p.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                "{p}"
            );
        }
        assert_eq!(base36(0), "0");
        assert_eq!(base36(36), "10");
        // Linux's largest PID still fits the fixed width of 5.
        assert!(base36(4_194_304).len() <= 5);
    }

    #[test]
    fn parses_list_output() {
        let out =
            "t1-lb1           10.99.0.1/24\nt1-client        10.99.0.3/24\nt1-lb2 10.99.0.2/24\n";
        let hosts = parse_list("t1", out, "x").unwrap();
        let names: Vec<_> = hosts.iter().map(|(h, _)| h.as_str()).collect();
        assert_eq!(names, ["lb1", "lb2", "client"]);
        assert_eq!(hosts[2].1, Ipv4Addr::new(10, 99, 0, 3));
        assert!(parse_list("t1", "t2-a 10.0.0.1/24", "x").is_err());
        assert!(parse_list("t1", "t1-a nonsense", "x").is_err());
    }
}
