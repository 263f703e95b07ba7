//! Supervision and a main loop that never waits behind slow work, on the real `vigild`:
//! a worker that dies makes the daemon exit non-zero, the systemd watchdog is fed only
//! while every worker is fresh, a drain is answered while a slow reload runs, and special
//! files are refused as cluster files. Faults are injected with `VIGIL_TEST_FAULT`, which
//! only debug builds read.

#![allow(clippy::unwrap_used)]

#[path = "vrrp_support.rs"]
mod vrrp_support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vigil_testlab::{LabChild, NetnsLab, bin_path, require_root_or_skip, wait_for};
use vigil_tests::{Daemon, StatusClient, isolated, minimal_config, output_text};

/// A cluster with every kind of worker: a checked virtual server (checker thread), IPVS
/// threads, and a VRRP instance on an interface that does not exist (its runner waits
/// for it, so nothing is sent anywhere).
fn every_worker(dir: &Path) -> String {
    format!(
        "{}\n[vrrp.web]\ninterface = \"vigil-none0\"\nvrid = 7\nvips = [\"192.0.2.7/32\"]\n\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\ncheck = {{ kind = \"tcp\", interval = \"1s\" }}\nreal_server = [{{ address = \"127.0.0.1:9\" }}]\n",
        minimal_config(dir, "supervised"),
    )
}

fn spawn(dir: &Path, config: &Path, env: &[(&str, &str)]) -> LabChild {
    let mut cmd = isolated(&bin_path("vigild"));
    cmd.arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    LabChild::spawn(&mut cmd).expect("spawn vigild")
}

fn stderr_of(child: &mut LabChild) -> String {
    let mut out = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut out);
    }
    out
}

/// Runs vigild with `fault` and expects it to exit 1 soon, naming `worker` and `why`.
fn dies_with(fault: &str, worker: &str, why: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, every_worker(dir.path())).unwrap();
    let started = Instant::now();
    let mut child = spawn(dir.path(), &config, &[("VIGIL_TEST_FAULT", fault)]);
    let status = child
        .wait_timeout(Duration::from_secs(30))
        .unwrap()
        .unwrap_or_else(|| {
            let _ = child.terminate(Duration::from_secs(5));
            panic!(
                "vigild kept running after {fault}:\n{}",
                stderr_of(&mut child)
            )
        });
    let log = stderr_of(&mut child);
    println!(
        "{fault}: vigild exited with {status} after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(status.code(), Some(1), "{fault}: {status}\n{log}");
    let line = format!("worker {worker} ended unexpectedly: {why}");
    assert!(log.contains(&line), "{fault}: no \"{line}\" in:\n{log}");
    assert!(
        log.contains(&format!(
            "vigild stopped: stopped because worker {worker} ended unexpectedly"
        )),
        "{log}"
    );
}

#[test]
fn a_panicking_ipvs_thread_stops_vigild_non_zero() {
    dies_with(
        "panic:ipvs@1s",
        "ipvs",
        "panicked: test fault: IPVS thread panics",
    );
}

#[test]
fn a_returning_ipvs_sync_thread_stops_vigild_non_zero() {
    dies_with("end:ipvs-sync@1s", "ipvs-sync", "returned");
}

#[test]
fn a_returning_director_task_stops_vigild_non_zero() {
    dies_with("end:director@1s", "director", "returned");
}

#[test]
fn a_panicking_checker_thread_stops_vigild_non_zero() {
    dies_with(
        "panic:checker@1s",
        "checker",
        "panicked: test fault: checker panics",
    );
}

#[test]
fn a_returning_vrrp_runner_stops_vigild_non_zero() {
    dies_with("end:vrrp-runner@1s", "vrrp-runner web", "returned");
}

#[test]
fn a_panicking_vrrp_task_stops_vigild_non_zero() {
    dies_with(
        "panic:vrrp@1s",
        "vrrp",
        "panicked: test fault: VRRP task panics",
    );
}

/// The watchdog is fed while every worker is fresh and stops once one hangs (here after
/// 3 s): `stall` makes the worker stop turning its loop without ending.
fn watchdog_stops_when_stalled(worker: &str, stale_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = dir.path().join("cluster.toml");
    std::fs::write(&config, every_worker(dir.path())).unwrap();
    let fault = format!("stall:{worker}@3s");
    let mut child = spawn(
        dir.path(),
        &config,
        &[
            ("NOTIFY_SOCKET", notify_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
            ("VIGIL_TEST_FAULT", &fault),
        ],
    );
    let started = Instant::now();
    let mut pings = Vec::new();
    let mut buf = [0u8; 4096];
    // Until the pings have stopped for 3 s (a stale worker is declared 5 s after its last
    // heartbeat), or 40 s at most.
    while started.elapsed() < Duration::from_secs(40) {
        if let Ok(n) = notify.recv(&mut buf)
            && String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "WATCHDOG=1")
        {
            pings.push(started.elapsed());
        }
        if let Some(last) = pings.last()
            && started.elapsed() > *last + Duration::from_secs(3)
        {
            break;
        }
    }
    let _ = child.terminate(Duration::from_secs(5));
    let log = stderr_of(&mut child);
    let last = pings.last().copied().unwrap_or_default();
    println!(
        "stall:{worker}: {} WATCHDOG=1 pings, the last {:.1} s after start (stalled at 3 s)",
        pings.len(),
        last.as_secs_f64()
    );
    assert!(
        pings.len() >= 5,
        "the watchdog was never fed: {pings:?}\n{log}"
    );
    assert!(
        started.elapsed() > last + Duration::from_secs(3),
        "WATCHDOG=1 never stopped: {pings:?}\n{log}"
    );
    assert!(
        log.contains(&format!("worker {stale_name} is stale: no heartbeat for")),
        "{log}"
    );
    assert!(
        log.contains("the systemd watchdog is no longer fed"),
        "{log}"
    );
}

#[test]
fn the_watchdog_stops_when_the_director_hangs() {
    watchdog_stops_when_stalled("director", "director");
}

#[test]
fn the_watchdog_stops_when_a_checker_thread_hangs() {
    watchdog_stops_when_stalled("checker", "checker");
}

/// A cluster file of `tables` virtual servers, each with one error: slow to validate.
fn huge_invalid(base: &str, tables: usize) -> String {
    let mut text = String::with_capacity(tables * 120 + base.len());
    text.push_str(base);
    for i in 0..tables {
        text.push_str(&format!(
            "\n[[virtual_server]]\nname = \"vs{i}\"\naddress = \"10.{}.{}.{}:80\"\nreal_server = [{{ address = \"10.0.0.1\", wieght = 1 }}]\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    text
}

/// A drain is answered while a reload of a huge invalid file is still validating, and a
/// second reload meanwhile is refused with a clear error.
#[test]
fn a_drain_is_answered_while_a_slow_reload_runs() {
    let d = Daemon::start_with(|dir| {
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\nreal_server = [{{ address = \"127.0.0.1:8080\" }}]\n",
            minimal_config(dir, "slow-reload")
        )
    });
    let base = std::fs::read_to_string(&d.config).unwrap();
    d.write_config(&huge_invalid(&base, 150_000));
    let size = std::fs::metadata(&d.config).unwrap().len();

    let mut reloader = StatusClient::connect(&d.socket);
    reloader
        .stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    let reload_sent = Instant::now();
    reloader.send_line(r#"{"command":"reload"}"#);
    // Let the reload reach its blocking thread.
    std::thread::sleep(Duration::from_millis(100));

    let asked = Instant::now();
    let drained =
        d.request(r#"{"command":"drain","virtual_server":"web","real_server":"127.0.0.1:8080"}"#);
    let drain_took = asked.elapsed();
    assert_eq!(drained["ok"], true, "{drained}");
    // Answered before the reload was: its outcome is not in the history yet.
    let status = d.result("status");
    let reloads = status["reloads"].as_array().map_or(0, Vec::len);
    let second = d.request(r#"{"command":"reload"}"#);
    // The file was read when the reload started: put the good one back and ask again by
    // SIGHUP, which waits for the running reload instead of being refused.
    d.write_config(&base);
    // SAFETY: kill(2) on the PID of a child we have not reaped.
    assert_eq!(
        unsafe { libc::kill(d.pid() as libc::pid_t, libc::SIGHUP) },
        0
    );

    let reply = reloader.read_reply().expect("the reload's reply");
    let reload_took = reload_sent.elapsed();
    println!(
        "{size} byte file: drain answered in {:.1} ms while the reload ran; the reload failed after {:.1} s",
        drain_took.as_secs_f64() * 1e3,
        reload_took.as_secs_f64()
    );
    assert_eq!(
        reloads, 0,
        "the reload finished before the drain was answered (too fast to show anything): {status}"
    );
    assert_eq!(second["ok"], false, "{second}");
    assert_eq!(second["error"]["code"], "reload_in_progress", "{second}");
    assert!(
        second["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("is still running; try again when it is done"),
        "{second}"
    );
    assert_eq!(reply["ok"], false, "{reply}");
    assert_eq!(reply["error"]["code"], "reload_failed", "{reply}");
    let message = reply["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("more errors (only the first 200 are reported)"),
        "{}",
        &message[message.len().saturating_sub(300)..]
    );
    // The SIGHUP sent during the slow reload (after the good file was written back) runs
    // once it is done, and takes the good file.
    assert!(
        wait_for(Duration::from_secs(60), || d.generation() == 2),
        "the SIGHUP queued during the reload did not run"
    );
    let reloads = d.result("status")["reloads"].clone();
    assert_eq!(reloads[1]["trigger"], "sighup", "{reloads}");
    assert_eq!(reloads[1]["ok"], true, "{reloads}");
}

/// The real `vigild check-config` on a 0.95 MB file with 34,000 errors (69 s before
/// positions were computed in one pass): the time is printed, the output capped.
#[test]
fn check_config_reports_34000_errors_in_bounded_time() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("errors.toml");
    let mut text = String::from("[director]\nname = \"lb\"\n");
    for i in 0..34_000 {
        text.push_str(&format!("unknown_key_{i:06} = \"value\"\n"));
    }
    std::fs::write(&file, &text).unwrap();
    let started = Instant::now();
    let out = Command::new(bin_path("vigild"))
        .arg("check-config")
        .arg(&file)
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "check-config of {} bytes with 34,000 errors: {:.2} s, {} bytes of output",
        text.len(),
        took.as_secs_f64(),
        out.stderr.len()
    );
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr.contains("and 33800 more errors (only the first 200 are reported)"),
        "{}",
        &stderr[stderr.len().saturating_sub(500)..]
    );
    assert!(
        stderr.trim_end().ends_with("34000 errors"),
        "{}",
        &stderr[stderr.len().saturating_sub(300)..]
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

/// A FIFO or a device given as the cluster file is refused before it is read, by
/// check-config, at start and at reload, with the kind of file named.
#[test]
fn special_files_are_refused_at_check_config_start_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    mkfifo(&fifo);
    for (file, kind) in [
        (fifo.as_path(), "a FIFO"),
        (Path::new("/dev/zero"), "a character device"),
    ] {
        let expected = format!(
            "{}: not a regular file ({kind}); a cluster file must be a regular file",
            file.display()
        );
        let out = Command::new(bin_path("vigild"))
            .arg("check-config")
            .arg(file)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&expected),
            "{}",
            output_text(&out)
        );

        let mut child = spawn(dir.path(), file, &[]);
        let status = child.wait_timeout(Duration::from_secs(20)).unwrap();
        let log = stderr_of(&mut child);
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
        assert!(log.contains(&expected), "{log}");
    }

    // At reload: the file is replaced by a FIFO under the same name.
    let d = Daemon::start("fifo-reload");
    std::fs::remove_file(&d.config).unwrap();
    mkfifo(&d.config);
    let started = Instant::now();
    let reply = d.request(r#"{"command":"reload"}"#);
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not a regular file (a FIFO)"),
        "{reply}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(wait_for(Duration::from_secs(1), || d.generation() == 1));
}

/// On a kernel without IPVS a config with virtual servers can never be programmed: the
/// VRRP instance whose VIP carries a virtual server is held in fault (its peer, which can
/// program IPVS, should serve the address), with the reason in `vrrp`, the log and the
/// events; an instance that only floats an address is left alone. Once the instance no
/// longer carries a virtual server (a reload), it is released.
#[test]
fn ipvs_unprogrammable_holds_instances_carrying_virtual_servers_in_fault() {
    require_root_or_skip!();
    if Path::new("/proc/net/ip_vs").exists() {
        println!("SKIPPED: this kernel has IPVS; the test needs one without");
        return;
    }
    use vrrp_support::{Vigild, has_addr, instance};
    let lab = NetnsLab::up(&["lb1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (vip, gw) = (lab.subnet_addr(100), lab.subnet_addr(101));
    let instances = |with_vs: bool| {
        let mut text = instance("web", 51, 150, "100ms", &[format!("{vip}/24")], "");
        text.push_str(&instance("gw", 52, 150, "100ms", &[format!("{gw}/24")], ""));
        if with_vs {
            text.push_str(&format!(
                "\n[[virtual_server]]\nname = \"web\"\naddress = \"{vip}:80\"\nreal_server = [{{ address = \"{}\" }}]\n",
                lab.subnet_addr(20)
            ));
        }
        text
    };
    let lb1 = Vigild::start(&lab, dir.path(), "lb1", &instances(true));
    lb1.expect_state("gw", "master", vrrp_support::SETTLE);
    lb1.expect_state("web", "fault", vrrp_support::SETTLE);
    let web = lb1.instance("web").unwrap();
    let reason = web["fault_reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.starts_with("IPVS cannot be programmed: "),
        "{web}\n{}",
        lb1.log_text()
    );
    assert_eq!(web["own_fault"], true, "{web}");
    assert!(lb1.instance("gw").unwrap()["fault_reason"].is_null());
    assert!(!has_addr(&lab, "lb1", &vip.to_string()));
    let table = vigil_tests::vigilctl(&lb1.socket, &["vrrp"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains(&format!("web: held in fault: {reason}")),
        "{text}"
    );
    assert!(
        lb1.log_text()
            .contains(": VRRP instances web held in fault (a peer that can program IPVS serves their addresses)"),
        "{}",
        lb1.log_text()
    );

    // Without the virtual server the instance is released and becomes master.
    let mut events = StatusClient::connect(&lb1.socket);
    events.send_line(r#"{"command":"events"}"#);
    assert!(events.read_reply().is_some());
    lb1.rewrite(&instances(false));
    assert_eq!(lb1.request(r#"{"command":"reload"}"#).unwrap()["ok"], true);
    let released = (0..20)
        .filter_map(|_| events.read_reply())
        .find(|e| e["event"] == "ipvs_fault");
    let released = released.expect("an ipvs_fault event");
    assert_eq!(
        released["released"],
        serde_json::json!(["web"]),
        "{released}"
    );
    lb1.expect_state("web", "master", vrrp_support::SETTLE);
    assert!(lb1.instance("web").unwrap()["fault_reason"].is_null());
    assert!(
        lb1.log_text().contains(
            "VRRP instances web released from fault: they no longer carry virtual servers"
        ),
        "{}",
        lb1.log_text()
    );
    drop(events);
    drop(lb1);
    lab.down().unwrap();
}

/// A reload that restarts a VRRP master (its VRID changed) makes the old instance hand
/// over make-before-break, which without a peer waits out Master_Down_Interval (~3.6 s at
/// 1 s adverts). The daemon loop does not wait for it: a drain, `status` and a handover
/// request are answered while the instance is still stopping (shown as `init`).
#[test]
fn a_restarting_vrrp_master_does_not_hold_up_the_daemon_loop() {
    require_root_or_skip!();
    use vrrp_support::{Vigild, instance};
    let lab = NetnsLab::up(&["lb1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vip = lab.subnet_addr(100);
    let config = |vrid: u8| {
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\nreal_server = [{{ address = \"127.0.0.1:8080\" }}]\n",
            instance("web", vrid, 150, "1s", &[format!("{vip}/24")], "")
        )
    };
    let lb1 = Vigild::start(&lab, dir.path(), "lb1", &config(51));
    lb1.expect_state("web", "master", Duration::from_secs(20));
    lb1.rewrite(&config(52));
    let reload = lb1.request(r#"{"command":"reload"}"#).unwrap();
    assert_eq!(reload["ok"], true, "{reload}");
    let asked = Instant::now();
    let drained = lb1
        .request(r#"{"command":"drain","virtual_server":"web","real_server":"127.0.0.1:8080"}"#)
        .unwrap();
    let drain_took = asked.elapsed();
    let handover = lb1
        .request(r#"{"command":"vrrp-handover","instance":"web"}"#)
        .unwrap();
    let state_meanwhile = lb1.state("web");
    println!(
        "drain answered in {:.1} ms while the restarted master was handing over",
        drain_took.as_secs_f64() * 1e3
    );
    assert_eq!(drained["ok"], true, "{drained}");
    assert_eq!(
        state_meanwhile, "init",
        "the old instance had already stopped: nothing shown"
    );
    // Not running yet: refused at once, not queued behind the stop.
    assert_eq!(handover["error"]["code"], "unknown_instance", "{handover}");
    lb1.expect_state("web", "master", Duration::from_secs(20));
    assert_eq!(lb1.instance("web").unwrap()["vrid"], 52);
    drop(lb1);
    lab.down().unwrap();
}

/// A runner that panics while running the protocol (not waiting for its interface) is
/// reported by name with its panic message, and vigild exits 1.
#[test]
fn a_panicking_running_vrrp_runner_stops_vigild_non_zero() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["lb1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lb1.toml");
    std::fs::write(
        &config,
        format!(
            "{}{}",
            vrrp_support::director(dir.path(), "lb1"),
            vrrp_support::instance(
                "web",
                51,
                150,
                "100ms",
                &[format!("{}/24", lab.subnet_addr(100))],
                ""
            )
        ),
    )
    .unwrap();
    let mut cmd = lab.cmd(
        "lb1",
        [
            bin_path("vigild").as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ],
    );
    cmd.env("VIGIL_TEST_FAULT", "panic:vrrp-runner@2s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = LabChild::spawn(&mut cmd).unwrap();
    let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
    let log = stderr_of(&mut child);
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{log}");
    assert!(
        log.contains("backup -> master"),
        "the runner never ran:\n{log}"
    );
    assert!(
        log.contains(
            "worker vrrp-runner web ended unexpectedly: panicked: test fault: VRRP runner panics"
        ),
        "{log}"
    );
    drop(child);
    lab.down().unwrap();
}
