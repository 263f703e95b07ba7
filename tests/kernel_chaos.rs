//! The fault soak (`tests/lab/chaos`) for a minute in CI: a real vigild pair with three
//! real servers and a client load in the IPVS kernel lab, under seeded random faults,
//! with the soak's invariants (one master, the master's table, drains, leaks) checked
//! after each one. The soak prints its seed; `VIGIL_CHAOS_SEED=N` replays that fault
//! sequence, `VIGIL_CHAOS_SECS` changes the length (default 60).
//!
//! `cargo build --bins && cargo test -p vigil-tests --test kernel_chaos`

// harness = false: clippy cannot tell this is a test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use vigil_testlab::{bin_path, kernel, lab_dir};

/// The fault kinds the CI run injects: all of the soak's kinds.
const FAULTS: &str = "kill,stop,real,link,reload,state,forge";

fn main() {
    if !kernel::inside() {
        remember_python();
    }
    kernel::main(vec![kernel::trial("chaos_soak", chaos_soak)]);
}

fn chaos_soak() {
    let python = std::env::var("VIGIL_CHAOS_PYTHON").unwrap_or_else(|_| "python3".into());
    let secs = std::env::var("VIGIL_CHAOS_SECS").unwrap_or_else(|_| "60".into());
    let vigild = bin_path("vigild");
    bin_path("vigilctl");
    let mut cmd = Command::new(&python);
    cmd.arg(lab_dir().join("chaos"))
        .args(["--duration", &secs, "--faults", FAULTS, "--bin-dir"])
        .arg(vigild.parent().unwrap());
    if let Ok(seed) = std::env::var("VIGIL_CHAOS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let status = cmd.status().unwrap();
    assert!(
        status.success(),
        "the chaos soak failed ({status}): see its report above"
    );
}

/// Starting a pyenv shim costs ~13 s in the emulated VM and the interpreter itself ~1 s:
/// find the real interpreter here on the host, where it is cheap, for the VM run (which
/// gets this process's environment).
fn remember_python() {
    if std::env::var_os("VIGIL_CHAOS_PYTHON").is_some() {
        return;
    }
    let Ok(out) = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
    else {
        return;
    };
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() && !exe.is_empty() {
        // SAFETY: still single-threaded: nothing else reads or writes the environment.
        unsafe { std::env::set_var("VIGIL_CHAOS_PYTHON", exe) };
    }
}
