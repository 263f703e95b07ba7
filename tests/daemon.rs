//! The real `vigild` and `vigilctl` binaries: start, status, reload (good and bad file, by
//! SIGHUP and by vigilctl), stop, and the start-up refusals an operator can run into.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vigil_testlab::{bin_path, wait_for};
use vigil_tests::{Daemon, minimal_config, output_text, vigilctl};

fn workspace_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) on the PID of a child we have not reaped.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig})");
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_config_accepts_every_example_cluster() {
    let mut files: Vec<_> = std::fs::read_dir(workspace_file("conf"))
        .expect("conf/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "conf/ holds at least three example clusters"
    );
    let out = Command::new(bin_path("vigild"))
        .arg("check-config")
        .args(&files)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", output_text(&out));
    let text = stdout(&out);
    for f in &files {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{}: ok: director ", f.display())));
        assert!(
            line.is_some(),
            "no summary line for {}:\n{text}",
            f.display()
        );
    }
}

#[test]
fn check_config_reports_every_error_with_position_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[director]\nname = \"lb-a\"\n\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 300\nvips = [\"192.0.2.1/24\"]\nprioity = 5\n",
    )
    .unwrap();
    let good = workspace_file("conf/web-dr.toml");
    let out = Command::new(bin_path("vigild"))
        .arg("check-config")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let err = stderr(&out);
    let b = bad.display();
    assert!(
        err.contains(&format!(
            "{b}:6:8: error: `vrrp.web.vrid` = 300 is out of range 1–255"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{b}:8:1: error: unknown field `vrrp.web.prioity`")),
        "{err}"
    );
    assert!(err.contains("did you mean `priority`?"), "{err}");
    assert!(err.contains("6 | vrid = 300\n  |        ^^^"), "{err}");
    assert!(err.contains(&format!("{b}: 2 errors")), "{err}");
    // The good file is still reported as good.
    assert!(
        stdout(&out).contains(": ok: director lb-a"),
        "{}",
        output_text(&out)
    );

    let missing = Command::new(bin_path("vigild"))
        .args(["check-config", "/nonexistent/cluster.toml"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("/nonexistent/cluster.toml: cannot read"),
        "{}",
        output_text(&missing)
    );
}

#[test]
fn vigild_without_config_explains_itself() {
    let out = Command::new(bin_path("vigild"))
        .env_remove("VIGIL_CONFIG")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("give --config FILE"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn status_services_and_vrrp_through_the_real_vigilctl() {
    // The VRRP instance names an interface that does not exist: the engine reports it and
    // waits, so this test never adds addresses or sends adverts on the host's network.
    let d = Daemon::start_with(|dir| {
        format!(
            "{}\n[vrrp.web]\ninterface = \"vigil-none0\"\nvrid = 7\nvips = [\"192.0.2.7/32\"]\n\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.7:80\"\nscheduler = \"wrr\"\ncheck = {{ kind = \"http\", path = \"/healthz\", interval = \"1s\" }}\nreal_server = [{{ address = \"10.0.0.1\", weight = 10 }}, {{ address = \"10.0.0.2\" }}]\n",
            minimal_config(dir, "ctl-test")
        )
    });
    let status = d.ctl(&["status"]);
    assert!(status.status.success(), "{}", output_text(&status));
    let text = stdout(&status);
    assert!(
        text.contains(&format!(
            "director    ctl-test (vigild {}, pid {})",
            env!("CARGO_PKG_VERSION"),
            d.pid()
        )),
        "{text}"
    );
    assert!(text.contains("(generation 1, loaded "), "{text}");
    assert!(
        text.contains("cluster     1 VRRP instance, 1 virtual server, 2 real servers"),
        "{text}"
    );

    let services = stdout(&d.ctl(&["services"]));
    assert!(services.contains("TCP 192.0.2.7:80 (web)"), "{services}");
    assert!(services.contains("  -> 10.0.0.1:80"), "{services}");
    assert!(
        services.contains("http GET /healthz every 1s"),
        "{services}"
    );

    let vrrp = stdout(&d.ctl(&["vrrp"]));
    assert!(
        vrrp.lines().any(|l| l.starts_with("web")
            && l.contains("vigil-none0")
            && l.contains("192.0.2.7/32")),
        "{vrrp}"
    );

    // The running config as the daemon holds it, durations in the file's own syntax.
    let config = d.result("config");
    assert_eq!(config["config"]["vrrp"][0]["advert_interval"], "1s");
    assert_eq!(
        config["config"]["virtual_servers"][0]["real_servers"][0]["checks"][0]["timeout"],
        "500ms"
    );

    let json = d.ctl(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    assert_eq!(v["director"], "ctl-test");
    assert_eq!(v["counts"]["real_servers"], 2);
}

#[test]
fn reload_by_sighup_and_vigilctl_good_and_bad_files() {
    let mut d = Daemon::start("reload-test");
    let base = minimal_config(d.dir.path(), "reload-test");

    // A good file by SIGHUP: a new generation.
    d.write_config(&format!(
        "{base}\n[[virtual_server]]\nname = \"dns\"\naddress = \"192.0.2.53:53\"\nprotocol = \"udp\"\nreal_server = [{{ address = \"10.0.0.53\" }}]\n"
    ));
    signal(d.pid(), libc::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), || d.generation() == 2),
        "SIGHUP did not reload"
    );
    assert_eq!(d.result("status")["counts"]["virtual_servers"], 1);

    // A bad file by SIGHUP: nothing changes, the failure is in the history.
    d.write_config(&format!(
        "{base}\n[[virtual_server]]\nname = \"dns\"\nadress = \"x\"\n"
    ));
    signal(d.pid(), libc::SIGHUP);
    let rejected = wait_for(Duration::from_secs(10), || {
        d.result("status")["reloads"]
            .as_array()
            .is_some_and(|r| r.len() == 2)
    });
    assert!(rejected, "the bad reload was not recorded");
    let status = d.result("status");
    assert_eq!(
        status["config_generation"], 2,
        "a bad file must not replace the config"
    );
    assert_eq!(status["counts"]["virtual_servers"], 1);
    let last = &status["reloads"][1];
    assert_eq!(last["ok"], false);
    assert_eq!(last["trigger"], "sighup");
    let errors = last["errors"].to_string();
    assert!(errors.contains("cluster.toml:"), "{errors}");
    assert!(
        errors.contains("unknown field `virtual_server.dns.adress`"),
        "{errors}"
    );

    // vigilctl reload of the bad file: exit 1 and the error names file, line and field.
    let out = d.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let err = stderr(&out);
    assert!(err.contains("reload_failed"), "{err}");
    assert!(
        err.contains("cluster.toml:8:1: error: unknown field `virtual_server.dns.adress`"),
        "{err}"
    );
    assert_eq!(d.generation(), 2);
    // The human status shows the rejection.
    let text = stdout(&d.ctl(&["status"]));
    assert!(text.contains("(last: REJECTED at "), "{text}");

    // vigilctl reload of a good file: exit 0, generation 3.
    d.write_config(&base);
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        stdout(&out).starts_with("reloaded: generation 3 in "),
        "{}",
        output_text(&out)
    );
    assert_eq!(d.result("status")["counts"]["virtual_servers"], 0);

    // SIGTERM: a clean exit, the socket is gone, vigilctl says the daemon is not running.
    signal(d.pid(), libc::SIGTERM);
    let status = d.child.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        status.is_some_and(|s| s.success()),
        "vigild did not exit cleanly: {status:?}"
    );
    assert!(
        !d.socket.exists(),
        "the socket file must be removed on stop"
    );
    let out = vigilctl(&d.socket, &["status"]);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("vigild is not running"),
        "{}",
        output_text(&out)
    );
    let log = d.stderr_now();
    assert!(
        log.contains("reload rejected, keeping generation 2"),
        "{log}"
    );
    assert!(log.contains("SIGTERM: stopping"), "{log}");
}

#[test]
fn sigint_stops_cleanly() {
    let mut d = Daemon::start("sigint-test");
    signal(d.pid(), libc::SIGINT);
    let status = d.child.wait_timeout(Duration::from_secs(10)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(!d.socket.exists());
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = Daemon::start("first");
    let out = Command::new(bin_path("vigild"))
        .arg("--config")
        .arg(&d.config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains(&format!(
            "another vigild is already serving {}",
            d.socket.display()
        )),
        "{}",
        output_text(&out)
    );
    // The first one is unharmed.
    assert_eq!(d.result("status")["director"], "first");
}

#[test]
fn a_stale_socket_is_replaced_but_other_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("vigil.sock");
    // A socket file whose listener is gone, as a crashed daemon leaves it.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let config = dir.path().join("c.toml");
    std::fs::write(&config, minimal_config(dir.path(), "stale")).unwrap();
    let mut child = vigil_testlab::LabChild::spawn(
        Command::new(bin_path("vigild"))
            .arg("--config")
            .arg(&config)
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || vigilctl(&sock, &["status"])
            .status
            .success()),
        "vigild did not replace the stale socket"
    );
    child.terminate(Duration::from_secs(5)).unwrap();

    // A regular file where the socket should be is someone else's: refuse.
    std::fs::write(&sock, "not a socket").unwrap();
    let out = Command::new(bin_path("vigild"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        stderr(&out).contains("exists and is not a socket; refusing to replace it"),
        "{}",
        output_text(&out)
    );
    assert_eq!(std::fs::read_to_string(&sock).unwrap(), "not a socket");
}

#[test]
fn the_socket_has_mode_0660_and_the_configured_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // `daemon` (gid 1) exists on every Debian system.
    let d = Daemon::start_with(|dir| {
        format!(
            "{}status_socket_group = \"daemon\"\n",
            minimal_config(dir, "perm")
        )
    });
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), 1);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}status_socket_group = \"no-such-group-xyz\"\n",
            minimal_config(dir.path(), "perm")
        ),
    )
    .unwrap();
    let out = Command::new(bin_path("vigild"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("status_socket_group \"no-such-group-xyz\" does not exist"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn an_invalid_file_at_start_is_refused_with_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[director]\nname = \"x\"\nstatus_socket = 5\n").unwrap();
    let out = Command::new(bin_path("vigild"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "c.toml:3:17: error: `director.status_socket` must be a string, found an integer"
        ),
        "{err}"
    );
}

#[test]
fn missing_capabilities_are_refused_with_a_clear_message() {
    // Drop CAP_NET_ADMIN and CAP_NET_RAW from the bounding set, as an unprivileged
    // service user would lack them.
    vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&["setpriv"]));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.1:80\"\nreal_server = [{{ address = \"10.0.0.1\" }}]\n",
            minimal_config(dir.path(), "caps")
        ),
    )
    .unwrap();
    let out = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-net_admin,-net_raw",
            "--inh-caps",
            "-all",
            "--",
        ])
        .arg(bin_path("vigild"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("CAP_NET_ADMIN is needed to program IPVS virtual servers"),
        "{err}"
    );
    assert!(
        !dir.path().join("vigil.sock").exists(),
        "nothing may be started without the capabilities"
    );
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, minimal_config(dir.path(), "notify")).unwrap();
    let mut child = vigil_testlab::LabChild::spawn(
        Command::new(bin_path("vigild"))
            .arg("--config")
            .arg(&config)
            .env("NOTIFY_SOCKET", &notify_path)
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let mut buf = [0u8; 4096];
    let mut next = || {
        let n = notify.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let ready = next();
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(ready.contains("STATUS=director notify"), "{ready}");
    // The socket is served by the time systemd hears READY=1.
    assert!(
        vigilctl(&dir.path().join("vigil.sock"), &["status"])
            .status
            .success()
    );

    signal(child.id(), libc::SIGHUP);
    let reloading = next();
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    // systemd 253+ requires the monotonic time with RELOADING=1.
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    let ready_again = next();
    assert!(ready_again.lines().any(|l| l == "READY=1"), "{ready_again}");

    signal(child.id(), libc::SIGTERM);
    let stopping = next();
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
    assert!(
        child
            .wait_timeout(Duration::from_secs(10))
            .unwrap()
            .is_some_and(|s| s.success())
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, minimal_config(dir.path(), "json-logs")).unwrap();
    let mut child = vigil_testlab::LabChild::spawn(
        Command::new(bin_path("vigild"))
            .arg("--config")
            .arg(&config)
            .args(["--log-format", "json"])
            .stderr(std::process::Stdio::piped()),
    )
    .unwrap();
    let sock = dir.path().join("vigil.sock");
    assert!(wait_for(Duration::from_secs(20), || vigilctl(
        &sock,
        &["status"]
    )
    .status
    .success()));
    child.terminate(Duration::from_secs(10)).unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for line in lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
    }
    assert!(log.contains("\"message\":\"vigild 0.1.0 started"), "{log}");
}

/// GET `path` from `addr` over plain HTTP/1.1; returns (status line, body).
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("http_get");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("http_get");
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("http_get");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("http_get");
    let (head, body) = text.split_once("\r\n\r\n").expect("http_get");
    (
        head.lines().next().expect("http_get").to_string(),
        body.to_string(),
    )
}

#[test]
fn prometheus_metrics_show_health_reloads_and_ipvs() {
    // Loopback only: real servers are a local listener and a closed port.
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = up.local_addr().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let metrics_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], metrics_port).into();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}metrics_listen = \"{metrics}\"\n\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\ncheck = {{ kind = \"tcp\", interval = \"200ms\", timeout = \"100ms\", rise = 1, fall = 1 }}\nreal_server = [{{ address = \"{up_addr}\" }}, {{ address = \"{closed_addr}\" }}]\n",
            minimal_config(dir.path(), "metrics"),
        ),
    )
    .unwrap();
    let mut child = vigil_testlab::LabChild::spawn(
        Command::new(bin_path("vigild"))
            .arg("--config")
            .arg(&config)
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let up_line =
        format!("vigil_real_server_up{{virtual_server=\"web\",real_server=\"{up_addr}\"}} 1");
    let down_line =
        format!("vigil_real_server_up{{virtual_server=\"web\",real_server=\"{closed_addr}\"}} 0");
    let mut body = String::new();
    let settled = wait_for(Duration::from_secs(20), || {
        if std::net::TcpStream::connect(metrics).is_err() {
            return false;
        }
        body = http_get(metrics, "/metrics").1;
        body.contains(&up_line) && body.contains(&down_line)
    });
    assert!(settled, "{body}");
    for line in [
        "# TYPE vigil_config_generation gauge",
        "vigil_config_generation 1",
        "vigil_config_reloads_total{result=\"ok\"} 0",
        "vigil_ipvs_available 0",
        "vigil_checks{kind=\"tcp\",health=\"up\"} 1",
        "vigil_checks{kind=\"tcp\",health=\"down\"} 1",
        "# TYPE vigil_checks_total counter",
        "# TYPE vigil_check_duration_seconds histogram",
    ] {
        assert!(
            body.lines().any(|l| l == line),
            "no line {line:?} in:\n{body}"
        );
    }
    // Results and a latency histogram per kind: every probe is in the +Inf bucket, and
    // the buckets are cumulative.
    let sample = |prefix: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    let passed = sample("vigil_checks_total{kind=\"tcp\",result=\"pass\"}");
    let failed = sample("vigil_checks_total{kind=\"tcp\",result=\"fail\"}");
    let inf = sample("vigil_check_duration_seconds_bucket{kind=\"tcp\",le=\"+Inf\"}");
    let count = sample("vigil_check_duration_seconds_count{kind=\"tcp\"}");
    let short = sample("vigil_check_duration_seconds_bucket{kind=\"tcp\",le=\"0.0005\"}");
    assert!(passed.is_some_and(|p| p >= 1.0), "{body}");
    assert!(failed.is_some_and(|f| f >= 1.0), "{body}");
    assert_eq!(inf, count, "{body}");
    assert_eq!(inf, passed.zip(failed).map(|(p, f)| p + f), "{body}");
    assert!(short.zip(inf).is_some_and(|(s, i)| s <= i), "{body}");
    // Failures by cause: the closed port refuses, and that is every failure.
    let refused = sample("vigil_check_failures_total{kind=\"tcp\",reason=\"refused\"}");
    assert_eq!(refused, failed, "{body}");
    // The healthy server is weighted in; the failed one is not in the table.
    assert!(
        body.contains(&format!(
            "vigil_real_server_weight{{virtual_server=\"web\",real_server=\"{up_addr}\"}} 1"
        )),
        "{body}"
    );
    assert!(
        !body.contains(&format!(
            "vigil_real_server_weight{{virtual_server=\"web\",real_server=\"{closed_addr}\"}}"
        )),
        "{body}"
    );

    signal(child.id(), libc::SIGHUP);
    assert!(wait_for(Duration::from_secs(10), || http_get(
        metrics, "/metrics"
    )
    .1
    .contains("vigil_config_reloads_total{result=\"ok\"} 1")));
    let (status, _) = http_get(metrics, "/nope");
    assert!(status.contains("404"), "{status}");
    child.terminate(Duration::from_secs(10)).unwrap();
}

#[test]
fn events_stream_health_drains_and_reloads() {
    // Loopback only: one real server is a local listener, the other a closed port.
    let up = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let up_addr = up.local_addr().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\ncheck = {{ kind = \"tcp\", interval = \"300ms\", timeout = \"100ms\", rise = 1, fall = 1, start_spread = \"0s\" }}\nreal_server = [{{ address = \"{up_addr}\" }}, {{ address = \"{closed_addr}\" }}]\n",
            minimal_config(dir.path(), "events"),
        ),
    )
    .unwrap();
    let sock = dir.path().join("vigil.sock");
    // Subscribe before the daemon's first checks can finish: start it, then connect at
    // once (events from before the subscription are not replayed).
    let mut child = vigil_testlab::LabChild::spawn(
        Command::new(bin_path("vigild"))
            .arg("--config")
            .arg(&config)
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    assert!(wait_for(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(&sock).is_ok()
    }));
    let mut watcher = vigil_tests::StatusClient::connect(&sock);
    watcher.send_line(r#"{"command":"events"}"#);
    assert_eq!(
        watcher.read_reply().unwrap()["result"]["event"],
        "subscribed"
    );

    // Wait until the first checks have settled (before the subscription, so not seen).
    assert!(wait_for(Duration::from_secs(20), || {
        let v: Value = serde_json::from_slice(&vigilctl(&sock, &["services", "--json"]).stdout)
            .unwrap_or(Value::Null);
        v["virtual_servers"][0]["real_servers"][0]["health"] == "up"
            && v["virtual_servers"][0]["real_servers"][1]["health"] == "down"
    }));
    // The closed port's last failure is shown by cause; the listener never failed.
    let v: Value = serde_json::from_slice(&vigilctl(&sock, &["services", "--json"]).stdout)
        .unwrap_or(Value::Null);
    let rs = &v["virtual_servers"][0]["real_servers"];
    assert_eq!(rs[0]["last_failure"], Value::Null, "{v}");
    assert_eq!(rs[1]["last_failure"], "refused", "{v}");
    assert!(rs[1]["last_failure_unix_ms"].as_u64().is_some(), "{v}");
    let table = stdout(&vigilctl(&sock, &["services"]));
    assert!(
        table
            .lines()
            .any(|l| l.contains(&closed_addr.to_string()) && l.contains("refused ")),
        "{table}"
    );
    // While watching: the up server goes away, a drain, a reload.
    drop(up);
    // Unknown names are refused, naming what exists.
    let bad = vigilctl(&sock, &["drain", "nope", &up_addr.to_string()]);
    assert_eq!(bad.status.code(), Some(1), "{}", output_text(&bad));
    assert!(
        stderr(&bad)
            .contains("no_such_virtual_server: no virtual server \"nope\" (virtual servers: web)"),
        "{}",
        output_text(&bad)
    );
    let bad = vigilctl(&sock, &["enable", "web", "10.9.9.9:1"]);
    assert_eq!(bad.status.code(), Some(1), "{}", output_text(&bad));
    assert!(
        stderr(&bad).contains(
            "no_such_real_server: virtual server \"web\" has no real server \"10.9.9.9:1\""
        ),
        "{}",
        output_text(&bad)
    );
    let d = vigilctl(&sock, &["drain", "web", &up_addr.to_string()]);
    assert!(d.status.success(), "{}", output_text(&d));
    assert!(
        stdout(&d).starts_with(&format!("drained {up_addr} of web")),
        "{}",
        output_text(&d)
    );
    signal(child.id(), libc::SIGHUP);

    let mut seen = Vec::new();
    let want = |seen: &[Value]| {
        let has = |f: &dyn Fn(&Value) -> bool| seen.iter().any(f);
        has(&|e| e["event"] == "drain" && e["drained"] == true)
            && has(&|e| e["event"] == "reload" && e["ok"] == true && e["generation"] == 2)
            && has(&|e| {
                e["event"] == "health"
                    && e["real_server"] == up_addr.to_string()
                    && e["health"] == "down"
                    && e["reason"].as_str().is_some_and(|r| r.contains("refused"))
            })
    };
    while !want(&seen) {
        match watcher.read_reply() {
            Some(e) => seen.push(e),
            None => panic!("the event stream ended: {seen:?}"),
        }
    }
    // The human form, through the real vigilctl.
    let mut ctl = std::process::Command::new(bin_path("vigilctl"))
        .arg("--socket")
        .arg(&sock)
        .arg("events")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let e = vigilctl(&sock, &["enable", "web", &up_addr.to_string()]);
    assert!(e.status.success(), "{}", output_text(&e));
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(ctl.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(
        line.contains(&format!("drain   web {up_addr} enabled")),
        "{line}"
    );
    let _ = ctl.kill();
    let _ = ctl.wait();
    child.terminate(Duration::from_secs(10)).unwrap();
}

#[test]
fn the_open_files_soft_limit_is_raised_to_the_hard_limit() {
    // Thousands of probes in flight each hold a socket: 1,024 would make checks fail.
    vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&["prlimit"]));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, minimal_config(dir.path(), "nofile")).unwrap();
    let mut child = vigil_testlab::LabChild::spawn(
        Command::new("prlimit")
            .arg("--nofile=1024:20000")
            .arg("--")
            .arg(bin_path("vigild"))
            .arg("--config")
            .arg(&config)
            .stderr(std::process::Stdio::null()),
    )
    .unwrap();
    let sock = dir.path().join("vigil.sock");
    assert!(wait_for(Duration::from_secs(20), || vigilctl(
        &sock,
        &["status"]
    )
    .status
    .success()));
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[3..5], ["20000", "20000"], "{line}");
    child.terminate(Duration::from_secs(10)).unwrap();
}

/// Starts vigild on `config` and waits for its socket, or returns its output if it exits.
fn start_or_exit(
    config: &Path,
    sock: &Path,
    extra: &[&str],
) -> Result<vigil_testlab::LabChild, String> {
    let mut child = vigil_testlab::LabChild::spawn(
        Command::new(bin_path("vigild"))
            .arg("--config")
            .arg(config)
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    )
    .expect("spawn vigild");
    let up = wait_for(Duration::from_secs(20), || {
        std::os::unix::net::UnixStream::connect(sock).is_ok()
            || matches!(child.try_wait(), Ok(Some(_)))
    });
    assert!(up, "vigild neither came up nor exited");
    if let Ok(Some(status)) = child.try_wait() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(format!("{status}\n{err}"));
    }
    Ok(child)
}

fn drained_in(sock: &Path, real: &str) -> bool {
    let v: Value = serde_json::from_slice(&vigilctl(sock, &["services", "--json"]).stdout)
        .unwrap_or(Value::Null);
    v["virtual_servers"][0]["real_servers"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|r| r["address"] == real && r["drained"] == true)
}

#[test]
fn a_corrupt_state_file_never_loses_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    let state = dir.path().join("state.json");
    let real = "127.0.0.1:9";
    std::fs::write(
        &config,
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\nreal_server = [{{ address = \"{real}\" }}, {{ address = \"127.0.0.2:9\" }}]\n",
            minimal_config(dir.path(), "state"),
        ),
    )
    .unwrap();
    let sock = dir.path().join("vigil.sock");
    let mut first = start_or_exit(&config, &sock, &[]).unwrap();
    let d = vigilctl(&sock, &["drain", "web", real]);
    assert!(d.status.success(), "{}", output_text(&d));
    first.terminate(Duration::from_secs(10)).unwrap();
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    // The file broke (a disk, a hand edit): the drain comes back from the copy, and
    // the broken file is kept aside, not overwritten.
    std::fs::write(&state, "{\"drains\": {\"web\": [").unwrap();
    let mut second = start_or_exit(&config, &sock, &[]).unwrap();
    assert!(drained_in(&sock, real), "the drain was lost");
    second.terminate(Duration::from_secs(10)).unwrap();
    let mut log = String::new();
    if let Some(mut e) = second.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut log);
    }
    assert!(log.contains("the state file is corrupt"), "{log}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.json.corrupt-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read_to_string(aside[0].path()).unwrap(),
        "{\"drains\": {\"web\": ["
    );

    // Both broken: the start is refused, saying how to go on, and nothing is touched.
    std::fs::write(&state, "garbage").unwrap();
    std::fs::write(dir.path().join("state.json.bak"), "").unwrap();
    let Err(err) = start_or_exit(&config, &sock, &[]) else {
        panic!("vigild started on two corrupt state files");
    };
    assert!(err.contains("--discard-corrupt-state"), "{err}");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "garbage");
    assert!(!sock.exists(), "nothing may be served");

    // Told to, vigild keeps both aside and starts without the drain.
    let mut third =
        start_or_exit(&config, &sock, &["--discard-corrupt-state"]).expect("an explicit start");
    assert!(!drained_in(&sock, real));
    third.terminate(Duration::from_secs(10)).unwrap();
}

#[test]
fn keepalived_dump_signals_write_files_and_never_stop_the_daemon() {
    // SIGUSR1, SIGUSR2 and SIGRTMIN+2 are keepalived's data, stats and JSON dumps; their
    // default action would end vigild (a failover) when a keepalived user sends them.
    let mut d = Daemon::start("dumps");
    let dir = d.socket.parent().expect("socket dir").to_path_buf();
    let rtmin2 = libc::SIGRTMIN() + 2;
    for (sig, file) in [
        (libc::SIGUSR1, "vigild.data"),
        (libc::SIGUSR2, "vigild.stats"),
        (rtmin2, "vigild.json"),
    ] {
        signal(d.pid(), sig);
        let path = dir.join(file);
        assert!(
            wait_for(Duration::from_secs(10), || path.exists()),
            "{file} was not written after signal {sig}"
        );
        assert!(
            matches!(d.child.try_wait(), Ok(None)),
            "vigild ended on signal {sig}"
        );
    }
    let data: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vigild.data")).unwrap()).unwrap();
    assert_eq!(data["status"]["director"], "dumps", "{data}");
    assert!(
        data["vrrp"].is_object() && data["services"].is_object(),
        "{data}"
    );
    let json = std::fs::read_to_string(dir.join("vigild.json")).unwrap();
    assert_eq!(json.lines().count(), 1, "one compact line: {json}");
    let stats = std::fs::read_to_string(dir.join("vigild.stats")).unwrap();
    assert!(stats.contains("vigil_build_info"), "{stats}");
    assert_eq!(d.generation(), 1, "still serving");
    let log = d.stderr_now();
    assert!(log.contains("SIGUSR1: wrote"), "{log}");
}

/// vigild's allocator returns memory in the background (docs/design.md, "Memory"): the
/// jemalloc purging thread runs, was started after the main thread gave the children
/// thread's capabilities up (it has no more than the main thread), and child programs
/// were still set up while vigild had a single thread. Transparent huge pages are off
/// for vigild, whatever the kernel's setting.
#[test]
fn the_allocator_purges_on_a_thread_without_the_childrens_capabilities() {
    let mut d = Daemon::start("memory-test");
    let cap_eff = |status: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| v.trim().to_owned())
    };
    let main = std::fs::read_to_string(format!("/proc/{0}/task/{0}/status", d.pid())).unwrap();
    let tasks = std::fs::read_dir(format!("/proc/{}/task", d.pid())).unwrap();
    let purger: Vec<String> = tasks
        .filter_map(|t| {
            let dir = t.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            (comm.trim() == "jemalloc_bg_thd")
                .then(|| std::fs::read_to_string(dir.join("status")).unwrap_or_default())
        })
        .collect();
    let stderr = d.stderr_now();
    assert!(
        !purger.is_empty(),
        "no jemalloc background thread in vigild:\n{stderr}"
    );
    for status in &purger {
        assert_eq!(cap_eff(status), cap_eff(&main), "{status}");
    }
    assert!(!stderr.contains("set up after other threads"), "{stderr}");
    assert!(!stderr.contains("memory freed after a reload"), "{stderr}");
    assert!(main.contains("THP_enabled:\t0"), "{main}");
}
