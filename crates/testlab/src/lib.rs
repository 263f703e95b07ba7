//! Test support for vigil's real-kernel tests.
//!
//! Owns: the network-namespace lab guard (`NetnsLab`), a load-balancing lab built on it
//! ([`lb`]), and the harness that runs a whole test binary inside the IPVS kernel lab. The lab scripts themselves live in `tests/lab/`.
//!
//! Must not: be a dependency of anything but tests, or fake the kernel.
//!
//! # Network-namespace labs (VRRP, health checks, datapath)
//!
//! [`NetnsLab::up`] builds an isolated L2 network (one bridge, one namespace per host,
//! addresses `10.99.0.1`, `.2`, ... in the order given) with `tests/lab/netns-lab`, and
//! tears it down when dropped, also when the test panics. Needs root; a test that is not
//! root skips loudly, or fails when `VIGIL_REQUIRE_LABS=1` (CI sets it):
//!
//! ```no_run
//! use vigil_testlab::{bin_path, require_root_or_skip, wait_for, NetnsLab};
//! use std::time::Duration;
//!
//! #[test]
//! fn backup_takes_over() {
//!     require_root_or_skip!();
//!     let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
//!     let vigild = bin_path("vigild");
//!     let _lb1 = lab.spawn("lb1", [vigild.as_os_str(), "--config".as_ref()]).unwrap();
//!     let ok = wait_for(Duration::from_secs(5), || {
//!         lab.cmd("client", ["true"]).status().is_ok_and(|s| s.success())
//!     });
//!     assert!(ok, "{} never answered", lab.ip("lb1"));
//! } // children are killed, then the lab is removed
//! ```
//!
//! Each lab gets a prefix unique per process and per call (`t` + the PID + a counter,
//! e.g. `t00j4x3`), so tests in one binary and test binaries run side by side never
//! share a lab. Every lab records its creator (`netns-lab up --owner`), so that
//! `netns-lab gc` can remove labs of test processes that died without unwinding
//! (SIGKILL, `panic = "abort"`, a CI timeout); `tests/run.sh` also tags the labs of its
//! run and removes them on exit.
//!
//! # The IPVS kernel lab
//!
//! The development kernel may have no IPVS, so tests that program IPVS run inside a
//! throw-away VM with Debian's stock kernel (`tests/lab/in-ipvs-kernel`, ~4 s to boot
//! under emulation). Such a test binary is named `kernel_*`, is declared with
//! `harness = false`, and hands its trials to [`kernel::main`]:
//!
//! ```no_run
//! use vigil_testlab::kernel;
//!
//! fn main() {
//!     kernel::main(vec![
//!         kernel::trial("ipvsadm_lists", || {
//!             let out = std::process::Command::new("ipvsadm").arg("-Ln").output().unwrap();
//!             assert!(out.status.success());
//!         }),
//!     ]);
//! }
//! ```
//!
//! With `harness = false` clippy can't tell the binary is a test, so the workspace's
//! allow-unwrap-in-tests does not apply: such binaries start with
//! `#![allow(clippy::unwrap_used)]`.
//!
//! On the host, [`kernel::main`] re-runs the whole binary (same arguments) in the VM once
//! and exits with its status; inside the VM it runs the trials. Listing (`--list`) never
//! boots the VM, nor does a name filter that selects none of the binary's trials. When
//! the lab is not installed the binary prints `SKIPPED` and succeeds, or fails under
//! `VIGIL_REQUIRE_LABS=1`.
//!
//! cargo-nextest runs every test in its own process, which would boot one VM per test.
//! So the workspace's `.config/nextest.toml` excludes `binary(/^kernel_/)` by default,
//! and `tests/run.sh` runs each `kernel_*` binary with `cargo test --test NAME`. Under
//! nextest anyway (`--ignore-default-filter`), the harness still works, one VM per test.
//!
//! # Environment
//!
//! | variable | effect |
//! | --- | --- |
//! | `VIGIL_REQUIRE_LABS=1` | a missing lab prerequisite fails instead of skipping |
//! | `VIGIL_LAB_DIR` | where the lab scripts are (default: this workspace's `tests/lab`) |
//! | `VIGIL_KERNEL_LAB_TIMEOUT` | seconds before the VM is killed (default 600) |
//! | `IPVS_LAB_DIR`, `IPVS_LAB_*` | see `tests/lab/README.md` |
//! | `NETNS_LAB_TAG` | tag for labs created (see `netns-lab --help`) |
//! | `VIGIL_SKIP_LOG` | file that skip notes are appended to (`tests/run.sh` lists them) |

pub mod kernel;
pub mod lb;
mod netns;

pub use netns::{LabChild, NetnsLab, run_in_netns, spawn_in_netns};

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A prerequisite is missing (not root, no `ip`, lab not installed, ...).
    #[error("lab unavailable: {0}")]
    Unavailable(String),
    /// A command could not be started at all.
    #[error("cannot run {what}: {source}")]
    Spawn {
        /// The command line, for the message.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("{what} failed ({status}): {stderr}")]
    Failed {
        /// The command line, for the message.
        what: String,
        /// How it ended.
        status: std::process::ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
    /// A lab script printed something this crate does not understand.
    #[error("unexpected output from {what}: {line:?}")]
    Parse {
        /// The command line, for the message.
        what: String,
        /// The offending line.
        line: String,
    },
    /// Entering a host's namespace failed.
    #[error("cannot enter namespace {path}: {source}")]
    Setns {
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The folder holding the lab scripts (`netns-lab`, `in-ipvs-kernel`, ...).
///
/// `VIGIL_LAB_DIR` overrides it; by default it is `tests/lab` of the workspace this
/// crate was built in.
pub fn lab_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("VIGIL_LAB_DIR") {
        return PathBuf::from(dir);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Resolve the `..`s so paths in messages and in the VM's command line read well.
    let dir = here.join("../../tests/lab");
    dir.canonicalize().unwrap_or(dir)
}

/// Path of a binary of this workspace (e.g. `"vigild"`), built into the same target
/// directory as the running test executable.
///
/// # Panics
///
/// If the binary is not there: cargo builds a package's own binaries for its
/// integration tests only, so tests of another package need `cargo build --bins` first.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("bin_path({name:?}): cannot find the running test executable: {e}"),
    };
    // Test executables live in target/<profile>/deps/; binaries in target/<profile>/.
    let dir = exe.parent().and_then(Path::parent);
    let Some(dir) = dir else {
        panic!(
            "bin_path({name:?}): unexpected test executable path {}",
            exe.display()
        )
    };
    let bin = dir.join(name);
    if !bin.is_file() {
        panic!(
            "bin_path({name:?}): {} does not exist. Build the workspace's binaries into the \
             same target directory first: `cargo build --bins` (with the same profile and \
             CARGO_TARGET_DIR as the tests)",
            bin.display()
        );
    }
    bin
}

/// Polls `cond` (every 20 ms) until it returns true or `timeout` has passed. Returns
/// whether it became true. `cond` is always called at least once, and once more at the
/// deadline, so a slow machine never makes a true condition look false.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    wait_for_some(timeout, || cond().then_some(())).is_some()
}

/// Like [`wait_for`], for a condition that produces a value: polls until `f` returns
/// `Some`, or `timeout` has passed.
pub fn wait_for_some<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last_chance = Instant::now() >= deadline;
        if let Some(v) = f() {
            return Some(v);
        }
        if last_chance {
            return None;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(20)));
    }
}

/// True when missing lab prerequisites must fail tests (`VIGIL_REQUIRE_LABS=1`, set in
/// CI) rather than skip them.
pub fn labs_required() -> bool {
    std::env::var_os("VIGIL_REQUIRE_LABS").is_some_and(|v| v == "1")
}

/// Reports a test that cannot run here: prints `SKIPPED: <test>: <reason>` to stderr
/// (and appends it to the file `VIGIL_SKIP_LOG` names, if set), or panics when
/// [`labs_required`]. Used by [`require_or_skip!`].
#[track_caller]
pub fn skip_or_fail(reason: &str) {
    let thread = std::thread::current();
    // libtest names each test's thread after the test.
    let test = thread.name().unwrap_or("test");
    if labs_required() {
        panic!("{test}: required lab prerequisite missing (VIGIL_REQUIRE_LABS=1): {reason}");
    }
    note_skip(&format!("SKIPPED: {test}: {reason}"));
}

/// Prints a skip note to stderr and, when `VIGIL_SKIP_LOG` names a file, appends it
/// there: test runners capture the output of passing tests, and `tests/run.sh` wants to
/// list every skip at the end of a run.
pub(crate) fn note_skip(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("VIGIL_SKIP_LOG") {
        use std::io::Write;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path);
        // One write per line, so parallel tests appending to the file don't interleave.
        if let Ok(mut file) = file {
            let _ = file.write_all(format!("{line}\n").as_bytes());
        }
    }
}

/// Runs a program (`argv[0]` with the rest as arguments), panicking with its status and
/// stderr unless it succeeds; returns its stdout. For test steps like `ipvsadm -Ln`.
#[track_caller]
pub fn run_ok(argv: &[&str]) -> String {
    let out = match std::process::Command::new(argv[0])
        .args(&argv[1..])
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!("{argv:?}: cannot run: {e}"),
    };
    assert!(
        out.status.success(),
        "{argv:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks that each program is found in `PATH`, for [`require_or_skip!`].
pub fn have_tools(tools: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| find_in_path(t).is_none())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing programs in PATH: {}", missing.join(", ")))
    }
}

pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Renders a command line for error messages.
pub(crate) fn show_cmd<S: AsRef<OsStr>>(argv: impl IntoIterator<Item = S>) -> String {
    argv.into_iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Skips (returns early from) the calling test when `check` is `Err(reason)`; fails it
/// instead when `VIGIL_REQUIRE_LABS=1`. `check` is any `Result<_, String>`-like
/// expression whose error displays. Give a return value for tests that return one.
///
/// ```no_run
/// # fn t() {
/// vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&["keepalived"]));
/// # }
/// ```
#[macro_export]
macro_rules! require_or_skip {
    ($check:expr) => {
        $crate::require_or_skip!($check, ())
    };
    ($check:expr, $ret:expr) => {
        if let ::std::result::Result::Err(why) = $check {
            $crate::skip_or_fail(&why.to_string());
            return $ret;
        }
    };
}

/// Skips (or, with `VIGIL_REQUIRE_LABS=1`, fails) the calling test unless network-
/// namespace labs can be built here (root, `ip`, the lab scripts): see
/// [`NetnsLab::available`].
#[macro_export]
macro_rules! require_root_or_skip {
    () => {
        $crate::require_or_skip!($crate::NetnsLab::available())
    };
    ($ret:expr) => {
        $crate::require_or_skip!($crate::NetnsLab::available(), $ret)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_sees_late_truth() {
        let start = Instant::now();
        assert!(wait_for(Duration::from_secs(2), || start.elapsed()
            > Duration::from_millis(50)));
        assert!(!wait_for(Duration::from_millis(30), || false));
        assert_eq!(wait_for_some(Duration::ZERO, || Some(7)), Some(7));
    }

    #[test]
    fn lab_dir_has_the_scripts() {
        assert!(
            lab_dir().join("netns-lab").is_file(),
            "{}",
            lab_dir().display()
        );
        assert!(lab_dir().join("in-ipvs-kernel").is_file());
    }

    #[test]
    fn have_tools_names_the_missing() {
        assert!(have_tools(&["sh"]).is_ok());
        let err = have_tools(&["sh", "no-such-tool-xyz"]).unwrap_err();
        assert!(
            err.contains("no-such-tool-xyz") && !err.contains("sh,"),
            "{err}"
        );
    }
}
