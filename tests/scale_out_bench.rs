//! Issue 16's figures (scale-out over BGP), printed, never asserted: the lab of
//! `kernel_bgp` (`tests/bgp_lab.rs`: a BIRD router with ECMP, two directors with BIRD and
//! vigild, two DR real servers, a client) in the IPVS kernel lab VM.
//!
//! * `crash_outage_*`: a director crashes (vigild and BIRD killed, its link cut) while the
//!   client opens a connection to the VIP every 20 ms (each answered within 1 s or
//!   counted failed). Printed: the time until the router dropped the route, and the
//!   client-visible outage (the window in which new requests failed: from the first
//!   failed send to the first answered send after the last failure). Without BFD (BGP
//!   hold time 3 s), with BFD at 100 ms x 3 and at 300 ms x 3. Before each crash the
//!   route is watched for 20 s: BFD sessions that flap under the emulated CPU show there.
//! * `health_loss_to_withdrawal`: a director's real servers fail its checks (every
//!   500 ms, fall 2); the time until the router's route loses that next hop.
//!
//! `cargo build -p vigild -p vigilctl && cargo bench -p vigil-tests --bench scale_out
//! --profile dev` (root, kernel lab installed; bird, ipvsadm, busybox, python3; a trial's
//! name as a filter runs that one). `--profile dev` runs the debug vigild beside it (the
//! figures are mostly the router's and BIRD's; vigild's part is its decision, see
//! docs/benchmarks.md); without it, build the release binaries first. One VM for all
//! trials (guest clock: the TSC); they run one at a time.

// harness = false: clippy cannot tell this is not production code.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil_testlab::{have_tools, kernel};
use vigil_tests::bgp_lab::{Lab, unix_ms};

/// Crashes per configuration.
const CRASHES: usize = 3;

/// Set in the run without `--bench`.
const RERUN: &str = "VIGIL_SCALE_OUT_RERUN";

/// One trial at a time: timing figures on two emulated CPUs.
static SERIAL: Mutex<()> = Mutex::new(());

fn main() {
    let trials = vec![
        kernel::trial("crash_outage_hold_time", || crash_outage(None, 71)),
        kernel::trial("crash_outage_bfd_100ms", || {
            crash_outage(Some((100, 3)), 72)
        }),
        kernel::trial("crash_outage_bfd_300ms", || {
            crash_outage(Some((300, 3)), 73)
        }),
        kernel::trial("health_loss_to_withdrawal", health_loss_to_withdrawal),
    ];
    if kernel::inside() || std::env::var_os(RERUN).is_some() {
        kernel::main(trials);
    }
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!(
            "scale_out benchmark: run it with `cargo bench -p vigil-tests --bench scale_out`"
        );
        return;
    }
    // libtest-mimic skips plain trials under `--bench`: run this binary again without
    // it, which boots the VM (kernel::main), with the TSC as the guest's clock (an
    // emulated HPET traps every clock read, and BIRD's BFD timers read it often).
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(std::env::args_os().skip(1).filter(|a| a != "--bench"))
        .env(RERUN, "1");
    if std::env::var_os("IPVS_LAB_KARGS").is_none() {
        cmd.env("IPVS_LAB_KARGS", "tsc=reliable");
    }
    if std::env::var_os("VIGIL_KERNEL_LAB_TIMEOUT").is_none() {
        cmd.env("VIGIL_KERNEL_LAB_TIMEOUT", "3600");
    }
    let status = cmd.status().unwrap();
    std::process::exit(status.code().unwrap_or(101));
}

/// A director joins (again): its cable in, BIRD and vigild started.
fn join(l: &mut Lab, d: &str) {
    l.lab.set_link(d, true).unwrap();
    l.sloppy_tcp(d);
    l.bird_director(d);
    l.vigild(d);
}

/// How often the router's BGP sessions came up so far (`dN: State changed to up`, a
/// trace of the router's `debug protocols { states }`).
fn sessions_up(l: &Lab) -> usize {
    let log = l.log("bird-r").to_lowercase();
    ["d1", "d2"]
        .iter()
        .map(|d| log.matches(&format!("{d}: state changed to up")).count())
        .sum()
}

fn crash_outage(bfd: Option<(u32, u32)>, vip_octet: u8) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    vigil_testlab::require_root_or_skip!();
    vigil_testlab::require_or_skip!(have_tools(&["bird", "ipvsadm", "busybox", "python3"]));
    let label = match bfd {
        Some((ms, mult)) => format!("BFD {ms} ms x {mult}"),
        None => "BGP hold time 3 s, no BFD".to_string(),
    };
    let mut l = Lab::new(vip_octet);
    l.fall = 5;
    l.inhibit = true;
    l.bfd = bfd;
    l.client_via_router();
    l.bird_router();
    for d in ["d1", "d2"] {
        join(&mut l, d);
    }
    l.wait_hops(&["d1", "d2"], "both announced");
    for round in 1..=CRASHES {
        // Steady before the crash? Sessions that flap drop the route for a moment.
        let ups = sessions_up(&l);
        let (mut short, polls) = (0, 80);
        for _ in 0..polls {
            if l.next_hops() != ["d1", "d2"] {
                short += 1;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        let flaps = sessions_up(&l) - ups;
        l.wait_hops(&["d1", "d2"], "both announced");

        let tag = format!("requests{round}");
        l.start_requests(&tag, 20, 1);
        std::thread::sleep(Duration::from_secs(3));
        let crashed_at = unix_ms();
        let start = Instant::now();
        l.crash("d1");
        l.wait_hops(&["d2"], "d1 crashed");
        let gone_ms = start.elapsed().as_millis();
        std::thread::sleep(Duration::from_secs(3));
        let r = l.finish_requests(&tag);
        let outage = r
            .outage_ms()
            .map_or_else(|| "none".to_string(), |ms| format!("{ms} ms"));
        println!(
            "FIGURE director crash, {label}, run {round}: route gone at the router after {gone_ms} ms; client outage {outage} ({} of {} requests sent from the crash on failed; 20 s before: {flaps} session flaps, route short of a next hop in {short} of {polls} polls)",
            r.all
                .iter()
                .filter(|x| x.0 >= crashed_at && x.2.is_none())
                .count(),
            r.sent_between(crashed_at, u64::MAX),
        );
        if round < CRASHES {
            join(&mut l, "d1");
            l.wait_hops(&["d1", "d2"], "d1 back");
        }
    }
}

fn health_loss_to_withdrawal() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    vigil_testlab::require_root_or_skip!();
    vigil_testlab::require_or_skip!(have_tools(&["bird", "ipvsadm", "busybox", "python3"]));
    let mut l = Lab::new(74);
    l.bird_router();
    for d in ["d1", "d2"] {
        l.bird_director(d);
        l.vigild(d);
    }
    l.wait_hops(&["d1", "d2"], "both announced");
    for round in 1..=5 {
        let lost_at = unix_ms();
        l.set_check_file("d1", false);
        let seen = l.wait_hops(&["d2"], "d1's real servers failed");
        let seen_unix = unix_ms();
        let decided = l.announce_view("d1")["since_unix_ms"]
            .as_u64()
            .unwrap_or(lost_at);
        println!(
            "FIGURE health loss to withdrawal at the router, run {round}: {} ms (checks every 500 ms, fall 2); vigild's decision to the router: {} ms",
            seen.as_millis(),
            seen_unix.saturating_sub(decided.max(lost_at))
        );
        l.set_check_file("d1", true);
        l.wait_hops(&["d1", "d2"], "d1 healthy again");
    }
}
