//! The Debian package: `deploy/build-deb` packages the binaries these tests run (no
//! extra build), the package's contents are checked, and, as root, it is installed with
//! dpkg on this machine, used, and purged, leaving nothing behind.
//!
//! One test at a time per machine installs it (a lock file), and a package installed by
//! someone else is never touched: the test is skipped then.

// Test code: the helpers below fail the test on what they cannot do.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        out.status,
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the package must hold (beyond the docs).
const FILES: &[&str] = &[
    "/usr/sbin/vigild",
    "/usr/bin/vigilctl",
    "/usr/lib/systemd/system/vigild.service",
    "/usr/lib/sysusers.d/vigil.conf",
    "/usr/lib/tmpfiles.d/vigil.conf",
    "/etc/vigil/cluster.toml",
    "/usr/share/man/man8/vigild.8.gz",
    "/usr/share/man/man8/vigilctl.8.gz",
    "/usr/share/man/man5/vigil.toml.5.gz",
    "/usr/share/man/man8/vigild-check-config.8.gz",
    "/usr/share/man/man8/vigilctl-vrrp-handover.8.gz",
    "/usr/share/bash-completion/completions/vigild",
    "/usr/share/bash-completion/completions/vigilctl",
    "/usr/share/zsh/vendor-completions/_vigild",
    "/usr/share/zsh/vendor-completions/_vigilctl",
    "/usr/share/doc/vigil/README.md",
    "/usr/share/doc/vigil/copyright",
    "/usr/share/doc/vigil/docs/operations.md",
];

#[test]
fn the_packaged_example_cluster_file_is_valid() {
    let vigild = vigil_testlab::bin_path("vigild");
    let out = run(Command::new(vigild)
        .arg("check-config")
        .arg(repo().join("deploy/cluster.toml")));
    assert!(out.contains(": ok: director lb-a"), "{out}");
}

/// Builds the package from the test binaries into `dir`; returns its path.
fn build(dir: &Path) -> PathBuf {
    let vigild = vigil_testlab::bin_path("vigild");
    let bin_dir = vigild.parent().unwrap();
    let out = run(Command::new("bash")
        .arg(repo().join("deploy/build-deb"))
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(dir)
        // The contents are what is tested; gzip takes a quarter of xz's time.
        .args(["--compress", "gzip"]));
    PathBuf::from(out.lines().last().unwrap_or_default())
}

/// Serialises the tests that install the package, across processes (worktrees, runs).
struct MachineLock {
    _file: File,
}

impl MachineLock {
    fn take() -> MachineLock {
        let file = File::create("/tmp/vigil-deb-test.lock").unwrap();
        // SAFETY: flock on a descriptor we own; blocks until the other holder is done.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        MachineLock { _file: file }
    }
}

/// Runs dpkg, waiting for its lock while someone else (apt in another test run) holds it.
#[track_caller]
fn dpkg(args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let out = Command::new("dpkg")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap();
        if out.status.success() {
            return text(&out);
        }
        let why = text(&out);
        if why.contains("lock") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(2));
            continue;
        }
        panic!("dpkg {args:?}: {}\n{why}", out.status);
    }
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", "vigil"])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout) != "unknown ok not-installed"
        })
}

fn exists(what: &str, name: &str) -> bool {
    Command::new("getent")
        .args([what, name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Purges the package if the test dies after installing it.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        if installed() {
            let _ = Command::new("dpkg").args(["--purge", "vigil"]).status();
        }
    }
}

#[test]
fn the_package_installs_works_and_purges_without_a_trace() {
    vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&[
        "dpkg", "dpkg-deb", "gzip", "objdump", "strip"
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let deb = build(tmp.path());
    let version = env!("CARGO_PKG_VERSION");
    let arch = run(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(
        deb.file_name().unwrap().to_string_lossy(),
        format!("vigil_{version}_{}.deb", arch.trim())
    );
    let size = std::fs::metadata(&deb).unwrap().len();
    // A figure for the record, not a limit.
    eprintln!("package {}: {size} bytes", deb.display());

    // ---- contents, as dpkg-deb reads them (any user) ----
    let listing = run(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.'))
        .collect();
    for file in FILES {
        assert!(
            paths.contains(file),
            "{file} not in the package:\n{listing}"
        );
    }
    for line in listing.lines() {
        assert!(line.contains(" root/root "), "not owned by root: {line}");
    }
    let conffiles = run(Command::new("dpkg-deb")
        .arg("--info")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/vigil/cluster.toml");
    let depends = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&deb)
        .arg("Depends"));
    assert!(depends.starts_with("libc6 (>= 2."), "{depends}");
    assert!(
        depends.contains("systemd | systemd-standalone-sysusers"),
        "{depends}"
    );
    // Man pages render without warnings (from the package, before any install).
    let x = tmp.path().join("x");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let mut pages = 0;
    for section in ["man5", "man8"] {
        for page in std::fs::read_dir(x.join("usr/share/man").join(section)).unwrap() {
            check_man_page(&page.unwrap().path());
            pages += 1;
        }
    }
    // vigild(8) and its 3 subcommands, vigilctl(8) and its 9 (vrrp handover and reclaim
    // included), vigil.toml(5).
    assert_eq!(pages, 15);

    // ---- install, as root, on this machine ----
    vigil_testlab::require_or_skip!(if unsafe { libc::geteuid() } == 0 {
        Ok(())
    } else {
        Err("installing a package needs root")
    });
    let _lock = MachineLock::take();
    vigil_testlab::require_or_skip!(if installed() {
        Err("a vigil package is already installed here: not touching it")
    } else {
        Ok(())
    });
    let user_before = exists("passwd", "vigil");
    let group_before = exists("group", "vigil");
    let guard = Installed;
    // Slim container images exclude man pages and docs from every install
    // (dpkg path-exclude): include ours, which this test checks.
    let deb_arg = deb.display().to_string();
    dpkg(&[
        "--path-include=/usr/share/man/*",
        "--path-include=/usr/share/doc/vigil/*",
        "--install",
        &deb_arg,
    ]);
    for file in FILES {
        assert!(Path::new(file).exists(), "{file} not installed");
    }
    // Every installed file is the package's (DEBIAN/md5sums).
    run(Command::new("dpkg").args(["--verify", "vigil"]));
    let sbin = std::fs::metadata("/usr/sbin/vigild").unwrap();
    assert_eq!(sbin.permissions().mode() & 0o7777, 0o755);
    assert!(exists("passwd", "vigil") && exists("group", "vigil"));
    let state = std::fs::metadata("/var/lib/vigil").unwrap();
    assert_eq!(state.permissions().mode() & 0o7777, 0o750);
    assert_eq!(
        run(Command::new("id").args(["-u", "vigil"])).trim(),
        state.uid().to_string()
    );
    // Installed, but neither enabled nor started: the operator configures first.
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/vigild.service").exists());

    // The unit as installed (its man: link points to the installed page).
    if vigil_testlab::have_tools(&["systemd-analyze"]).is_ok() {
        let out = Command::new("systemd-analyze")
            .args(["verify", "/usr/lib/systemd/system/vigild.service"])
            .env("SYSTEMD_LOG_LEVEL", "warning")
            .output()
            .unwrap();
        assert!(
            out.status.success() && text(&out).trim().is_empty(),
            "{}",
            text(&out)
        );
    } else {
        eprintln!("note: systemd-analyze missing: the installed unit was not verified");
    }
    let check =
        run(Command::new("/usr/sbin/vigild").args(["check-config", "/etc/vigil/cluster.toml"]));
    assert!(check.contains("ok"), "{check}");
    let help = run(Command::new("/usr/bin/vigilctl").arg("--help"));
    assert!(help.contains("handover") || help.contains("vrrp"), "{help}");
    let man = run(Command::new("man")
        .args(["-P", "cat", "8", "vigilctl"])
        .env("MANWIDTH", "80"));
    assert!(man.contains("vigilctl"), "{man}");
    let complete = run(Command::new("bash")
        .arg("-c")
        .arg("source /usr/share/bash-completion/completions/vigilctl && complete -p vigilctl"));
    assert!(complete.contains("vigilctl"), "{complete}");
    if vigil_testlab::have_tools(&["zsh"]).is_ok() {
        run(Command::new("zsh").args(["-n", "/usr/share/zsh/vendor-completions/_vigilctl"]));
    }

    // A reinstall keeps an edited conffile and does not duplicate anything.
    std::fs::write(
        "/etc/vigil/cluster.toml",
        "# edited\n[director]\nname = \"x\"\n",
    )
    .unwrap();
    dpkg(&["--force-confold", "--install", &deb_arg]);
    assert_eq!(
        std::fs::read_to_string("/etc/vigil/cluster.toml").unwrap(),
        "# edited\n[director]\nname = \"x\"\n"
    );

    // ---- purge: nothing left ----
    dpkg(&["--purge", "vigil"]);
    drop(guard);
    assert!(!installed());
    for file in FILES {
        assert!(!Path::new(file).exists(), "{file} left after purge");
    }
    for dir in [
        "/etc/vigil",
        "/var/lib/vigil",
        "/run/vigil",
        "/usr/share/doc/vigil",
    ] {
        assert!(!Path::new(dir).exists(), "{dir} left after purge");
    }
    assert_eq!(exists("passwd", "vigil"), user_before, "user vigil");
    assert_eq!(exists("group", "vigil"), group_before, "group vigil");
}

/// The page renders with `man` (groff through man-db), without a warning.
fn check_man_page(path: &Path) {
    vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&["man"]));
    let out = Command::new("man")
        .args(["--warnings", "-l", "-P", "cat"])
        .arg(path)
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{}: {stderr}",
        path.display()
    );
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains("NAME") && page.lines().count() > 20,
        "{}:\n{page}",
        path.display()
    );
}
