//! Shared helpers for the cross-crate integration tests: a real `vigild` process with a
//! cluster file and status socket of its own, and ways to talk to it as `vigilctl` and as
//! a raw status-socket client.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use vigil_testlab::{LabChild, bin_path, wait_for};

pub mod bgp_lab;

/// How long a daemon gets to come up or go down before the test fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A minimal valid cluster file whose status socket and state file live in `dir` (the
/// default /var/lib/vigil/state.json is shared by every daemon on the machine, and a
/// root daemon leaves it unreadable to sandboxed ones).
pub fn minimal_config(dir: &Path, director: &str) -> String {
    format!(
        r#"[director]
name = "{director}"
status_socket = "{}"
state_file = "{}"
"#,
        dir.join("vigil.sock").display(),
        dir.join("state.json").display()
    )
}

/// A running `vigild --config FILE` with its own temporary directory; stopped (SIGTERM,
/// then SIGKILL) when dropped.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub child: LabChild,
}

impl Daemon {
    /// Writes `config_text` (which must put the status socket at `dir/vigil.sock`; use
    /// [`Daemon::start_with`] to build it from the directory) and starts vigild on it.
    pub fn start_with(make_config: impl FnOnce(&Path) -> String) -> Daemon {
        Daemon::spawn(make_config, isolated(&bin_path("vigild")))
    }

    /// [`Daemon::start_with`] without a network namespace of its own, for tests that
    /// must reach something it listens on (metrics) over the host's loopback.
    pub fn start_plain_with(make_config: impl FnOnce(&Path) -> String) -> Daemon {
        Daemon::spawn(make_config, Command::new(bin_path("vigild")))
    }

    fn spawn(make_config: impl FnOnce(&Path) -> String, mut command: Command) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("cluster.toml");
        let socket = dir.path().join("vigil.sock");
        std::fs::write(&config, make_config(dir.path())).expect("write config");
        let child = LabChild::spawn(
            command
                .arg("--config")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::piped()),
        )
        .expect("spawn vigild");
        let mut d = Daemon {
            dir,
            config,
            socket,
            child,
        };
        let up = wait_for(START_TIMEOUT, || {
            UnixStream::connect(&d.socket).is_ok() || matches!(d.child.try_wait(), Ok(Some(_)))
        });
        if !up || matches!(d.child.try_wait(), Ok(Some(_))) {
            let stderr = d.stderr_now();
            panic!(
                "vigild did not come up on {}:\n{stderr}",
                d.socket.display()
            );
        }
        d
    }

    pub fn start(director: &str) -> Daemon {
        Daemon::start_with(|dir| minimal_config(dir, director))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Calls `f` on a thread in the daemon's network namespace (one `start_with` gave
    /// it its own): sockets `f` opens stay there, to reach what it serves on loopback.
    pub fn run_in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        vigil_testlab::run_in_netns(format!("/proc/{}/ns/net", self.pid()), f)
            .expect("enter the daemon's netns")
    }

    /// Stops the daemon and returns everything it logged.
    pub fn stderr_now(&mut self) -> String {
        let _ = self.child.terminate(Duration::from_secs(5));
        let mut out = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut out);
        }
        out
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(&self.config, text).expect("rewrite config");
    }

    /// Runs the real `vigilctl` against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        vigilctl(&self.socket, args)
    }

    /// One request line, one reply line, on a fresh connection.
    pub fn request(&self, line: &str) -> Value {
        let mut c = StatusClient::connect(&self.socket);
        c.send_line(line);
        c.read_reply().expect("a reply")
    }

    /// The `result` of a successful request.
    pub fn result(&self, command: &str) -> Value {
        let reply = self.request(&format!(r#"{{"command":"{command}"}}"#));
        assert_eq!(reply["ok"], Value::Bool(true), "{command} failed: {reply}");
        reply["result"].clone()
    }

    pub fn generation(&self) -> u64 {
        self.result("status")["config_generation"]
            .as_u64()
            .expect("config_generation")
    }
}

/// A command that runs `program` in a network namespace of its own (only `lo`, up), so
/// whatever a daemon under test does on the network (health checks, VRRP adverts,
/// addresses) stays inside it. The status socket is a file, reachable from outside.
/// `ip netns exec`-style: the child's PID is the program's. Without root (no namespace
/// can be made) the program runs as it is, and tests must use loopback addresses only.
pub fn isolated(program: &Path) -> Command {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Command::new(program);
    }
    let mut c = Command::new("unshare");
    c.args([
        "--net",
        "--",
        "sh",
        "-c",
        "ip link set lo up && exec \"$0\" \"$@\"",
    ])
    .arg(program);
    c
}

pub fn vigilctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(bin_path("vigilctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run vigilctl")
}

/// A raw client of the status socket.
pub struct StatusClient {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl StatusClient {
    pub fn connect(socket: &Path) -> StatusClient {
        let stream = UnixStream::connect(socket).expect("connect to the status socket");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        StatusClient { stream, reader }
    }

    pub fn send_line(&mut self, line: &str) {
        self.stream.write_all(line.as_bytes()).expect("write");
        self.stream.write_all(b"\n").expect("write");
    }

    /// The next reply, or `None` when the daemon closed the connection.
    pub fn read_reply(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => None,
            Ok(_) => Some(serde_json::from_str(&line).expect("reply is JSON")),
            Err(e) => panic!("reading a reply: {e}"),
        }
    }
}

/// stdout and stderr of a finished command, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
