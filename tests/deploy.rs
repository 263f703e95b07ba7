//! The files in deploy/ are checked as they would be used.

use std::path::{Path, PathBuf};
use std::process::Command;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file)
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&["systemd-analyze"]));
    let unit = std::fs::read_to_string(deploy("vigild.service")).unwrap();
    // Point the unit at the binary we built, as an installed /usr/sbin/vigild would be.
    let vigild = vigil_testlab::bin_path("vigild");
    let unit = unit.replace("/usr/sbin/vigild", &vigild.display().to_string());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigild.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
}

#[test]
fn the_unit_grants_exactly_the_capabilities_vigild_checks_for() {
    let unit = std::fs::read_to_string(deploy("vigild.service")).unwrap();
    for key in ["AmbientCapabilities=", "CapabilityBoundingSet="] {
        let line = unit
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key}"));
        assert_eq!(
            line,
            format!("{key}CAP_NET_ADMIN CAP_NET_RAW CAP_SETUID CAP_SETGID CAP_KILL")
        );
    }
    // Children's trees are killed through the delegated cgroup (docs/operations.md).
    assert!(unit.contains("\nDelegate=yes\n"));
    assert!(!unit.contains("\nProtectControlGroups=yes\n"));
    assert!(unit.contains("\nType=notify\n"));
    assert!(unit.contains("\nExecReload=/bin/kill -HUP $MAINPID\n"));
    assert!(unit.contains("\nUser=vigil\n"));
}

#[test]
fn the_demo_script_is_valid_bash() {
    let out = Command::new("bash")
        .arg("-n")
        .arg(deploy("demo.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
