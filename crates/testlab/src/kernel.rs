//! Harness for test binaries that need IPVS: runs the whole binary inside the kernel
//! lab VM (`tests/lab/in-ipvs-kernel`) once, not once per test.
//!
//! Declare the binary with `harness = false`, name it `kernel_*` (nextest's default
//! filter leaves those to `cargo test`, see the crate doc), and end `main` with
//! [`main`].

use crate::{find_in_path, lab_dir, labs_required};
use libtest_mimic::{Arguments, Trial};
use std::path::PathBuf;
use std::process::Command;

/// Default for `VIGIL_KERNEL_LAB_TIMEOUT`: generous, since the VM emulates its CPU
/// (TCG) and runs code several times slower than the host.
const DEFAULT_TIMEOUT_SECS: u64 = 600;

/// True inside the kernel lab VM (`in-ipvs-kernel` exports `IN_IPVS_KERNEL=1`).
pub fn inside() -> bool {
    std::env::var_os("IN_IPVS_KERNEL").is_some()
}

/// Whether the kernel lab can run here: root, `in-ipvs-kernel` in the lab folder, the
/// lab installed (`$IPVS_LAB_DIR/ready`, default `/opt/ipvs-kernel-lab`) and qemu.
pub fn available() -> Result<(), String> {
    let install = format!(
        "install it with: sudo bash {}",
        lab_dir().join("install-kernel-lab").display()
    );
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root: the kernel lab (qemu over the host's /) needs root".to_owned());
    }
    let runner = lab_dir().join("in-ipvs-kernel");
    if !runner.is_file() {
        return Err(format!("{} not found", runner.display()));
    }
    let dir = std::env::var_os("IPVS_LAB_DIR")
        .map_or_else(|| PathBuf::from("/opt/ipvs-kernel-lab"), PathBuf::from);
    if !dir.join("ready").is_file() {
        return Err(format!(
            "kernel lab not installed in {}; {install}",
            dir.display()
        ));
    }
    if find_in_path("qemu-system-x86_64").is_none() {
        return Err(format!("qemu-system-x86_64 not in PATH; {install}"));
    }
    Ok(())
}

/// A trial from a test function that, like a `#[test]`, fails by panicking.
pub fn trial(name: impl Into<String>, f: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        f();
        Ok(())
    })
}

/// Runs this test binary's trials under a kernel with IPVS, then exits.
///
/// * In the VM (`IN_IPVS_KERNEL` set), or when only listing (`--list`), or when the
///   arguments select no trial: runs/lists them right here, like libtest would.
/// * On the host with the lab installed: re-runs this executable with the same
///   arguments through `in-ipvs-kernel --timeout N` (N: `VIGIL_KERNEL_LAB_TIMEOUT`,
///   default 600 s) and exits with its status: 124 = timed out, 125 = the VM failed.
/// * Lab not available: prints `SKIPPED` and exits 0, or exits 101 (a test failure)
///   when `VIGIL_REQUIRE_LABS=1`.
pub fn main(tests: Vec<Trial>) -> ! {
    let args = Arguments::from_args();
    let selected = tests
        .iter()
        .any(|t| !args.is_filtered_out(t) && !args.is_ignored(t));
    if inside() || args.list || !selected {
        libtest_mimic::run(&args, tests).exit();
    }
    let name = binary_name();
    if let Err(why) = available() {
        if labs_required() {
            eprintln!(
                "FAILED: {name}: kernel lab required (VIGIL_REQUIRE_LABS=1) but unavailable: {why}"
            );
            std::process::exit(101);
        }
        crate::note_skip(&format!(
            "SKIPPED: {name}: all {} tests of this binary need the IPVS kernel lab: {why}",
            tests.len()
        ));
        std::process::exit(0);
    }
    if std::env::var_os("NEXTEST").is_some() {
        eprintln!(
            "note: {name} runs under nextest, which boots one VM per test; \
             `cargo test --test {name}` boots one for the whole binary"
        );
    }
    std::process::exit(run_in_vm(&name));
}

/// For benchmarks (`harness = false`): re-runs this executable with the same arguments
/// inside the kernel lab VM (`in-ipvs-kernel --timeout timeout_secs`), booted with the
/// TSC as its clock source unless `IPVS_LAB_KARGS` says otherwise (an emulated HPET
/// would trap every `clock_gettime`), and exits with its status. Check [`available`]
/// first.
pub fn rerun_bench_in_vm(timeout_secs: u64) -> ! {
    let exe = std::env::current_exe().expect("the running executable");
    let mut cmd = Command::new("bash");
    cmd.arg(lab_dir().join("in-ipvs-kernel"))
        .args(["--timeout", &timeout_secs.to_string(), "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1));
    if std::env::var_os("IPVS_LAB_KARGS").is_none() {
        cmd.env("IPVS_LAB_KARGS", "tsc=reliable");
    }
    let status = cmd.status().expect("bash runs in-ipvs-kernel");
    std::process::exit(status.code().unwrap_or(101));
}

fn run_in_vm(name: &str) -> i32 {
    let timeout = std::env::var("VIGIL_KERNEL_LAB_TIMEOUT")
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TIMEOUT_SECS);
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("{name}: cannot find the running executable: {e}");
            return 101;
        }
    };
    let runner = lab_dir().join("in-ipvs-kernel");
    eprintln!("{name}: running inside the IPVS kernel lab (booting a VM, ~4 s)");
    let status = Command::new("bash")
        .arg(&runner)
        .arg("--timeout")
        .arg(timeout.to_string())
        .arg("--")
        .arg(&exe)
        .args(std::env::args_os().skip(1))
        .status();
    match status.map(|s| s.code()) {
        Ok(Some(0)) => 0,
        Ok(Some(124)) => {
            eprintln!(
                "{name}: the kernel lab timed out after {timeout} s \
                 (raise VIGIL_KERNEL_LAB_TIMEOUT if the tests are just slow)"
            );
            124
        }
        Ok(Some(125)) => {
            eprintln!("{name}: the kernel lab VM failed before the tests finished (see above)");
            125
        }
        Ok(Some(code)) => code,
        Ok(None) => {
            eprintln!("{name}: {} was killed by a signal", runner.display());
            101
        }
        Err(e) => {
            eprintln!("{name}: cannot run {}: {e}", runner.display());
            101
        }
    }
}

/// The test binary's name without cargo's `-<hash>` suffix, e.g. `kernel_lab`.
fn binary_name() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "test binary".to_owned());
    match stem.rsplit_once('-') {
        Some((base, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            base.to_owned()
        }
        _ => stem,
    }
}
