//! The director end to end in a real IPVS kernel: a real `vigild` in a lab namespace
//! health-checks three real HTTP servers (busybox httpd in their own namespaces) and
//! programs a NAT virtual service that a client namespace uses. `ipvsadm -Ln` is the
//! independent witness of what the kernel holds.
//!
//! Runs inside the kernel lab VM (see crates/testlab): `cargo test -p vigil-tests --test
//! kernel_director`.

// harness = false: clippy cannot tell this is a test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use vigil_testlab::{LabChild, NetnsLab, bin_path, kernel, run_ok, wait_for};
use vigil_tests::vigilctl;

fn main() {
    kernel::main(vec![
        kernel::trial(
            "health_drains_and_restarts_drive_ipvs",
            health_drains_and_restarts_drive_ipvs,
        ),
        kernel::trial(
            "pair_failover_keeps_established_connections",
            pair_failover_keeps_established_connections,
        ),
        kernel::trial(
            "quorum_by_weight_inhibit_per_server_and_quorum_hooks_in_ipvs",
            quorum_by_weight_inhibit_per_server_and_quorum_hooks_in_ipvs,
        ),
        kernel::trial(
            "ipvs_options_reach_the_kernel",
            ipvs_options_reach_the_kernel,
        ),
        kernel::trial(
            "lvs_notify_fifo_lines_match_keepalived",
            lvs_notify_fifo_lines_match_keepalived,
        ),
        kernel::trial(
            "a_group_is_n_services_with_one_check_per_real_server",
            a_group_is_n_services_with_one_check_per_real_server,
        ),
    ]);
}

/// Generous: the VM is emulated and several namespaces share two virtual CPUs.
const SETTLE: Duration = Duration::from_secs(60);
// The clusters' checks (1 s interval, 900 ms timeout, fall 3) leave the same room: one
// slow busybox fork under load must not take a healthy server out mid-assertion.

struct Cluster {
    lab: NetnsLab,
    vip: Ipv4Addr,
    dir: tempfile::TempDir,
    httpd: BTreeMap<&'static str, LabChild>,
}

impl Cluster {
    fn new() -> Cluster {
        let lab = NetnsLab::up(&["lb", "rs1", "rs2", "rs3", "client"]).unwrap();
        let (lb, client) = (lab.ip("lb"), lab.ip("client"));
        let vip = lab.subnet_addr(100);
        lab.run(
            "lb",
            [
                "sh",
                "-ec",
                &format!(
                    "ip addr add {vip}/32 dev eth0
                     sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
                       net.ipv4.conf.eth0.send_redirects=0"
                ),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            lab,
            vip,
            dir,
            httpd: BTreeMap::new(),
        };
        for rs in ["rs1", "rs2", "rs3"] {
            // NAT's return path: replies to the client go back through the director.
            c.lab
                .run(
                    rs,
                    [
                        "ip",
                        "route",
                        "add",
                        &format!("{client}/32"),
                        "via",
                        &lb.to_string(),
                    ],
                )
                .unwrap();
            let root = c.dir.path().join(rs);
            std::fs::create_dir_all(&root).unwrap();
            std::fs::write(root.join("id"), format!("{rs}\n")).unwrap();
            c.start_httpd(rs);
        }
        c
    }

    fn start_httpd(&mut self, rs: &'static str) {
        let root = self.dir.path().join(rs);
        let child = self
            .lab
            .spawn(
                rs,
                [
                    "busybox",
                    "httpd",
                    "-f",
                    "-p",
                    "8080",
                    "-h",
                    root.to_str().unwrap(),
                ],
            )
            .unwrap();
        self.httpd.insert(rs, child);
    }

    fn stop_httpd(&mut self, rs: &str) {
        let mut child = self.httpd.remove(rs).unwrap();
        child.terminate(Duration::from_secs(5)).unwrap();
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("cluster.toml")
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("vigil.sock")
    }

    /// The cluster file with `extra` lines in the virtual server and `reals` (the TOML
    /// array's items, `{rs1}` replaced by rs1's address and so on).
    fn write_config_with(&self, extra: &str, reals: &str) {
        let mut reals = reals.to_string();
        for rs in ["rs1", "rs2", "rs3"] {
            reals = reals.replace(&format!("{{{rs}}}"), &self.lab.ip(rs).to_string());
        }
        std::fs::write(
            self.config_path(),
            format!(
                r#"[director]
name = "lab-lb"
status_socket = "{}"
state_file = "{}"

[[virtual_server]]
name = "web"
address = "{}:80"
scheduler = "wrr"
forwarding = "nat"
{extra}
check = {{ kind = "http", path = "/id", interval = "1s", timeout = "900ms", rise = 2, fall = 3 }}
real_server = [{reals}]
"#,
                self.socket().display(),
                self.dir.path().join("state.json").display(),
                self.vip,
            ),
        )
        .unwrap();
    }

    fn write_config(&self) {
        let reals: Vec<String> = ["rs1", "rs2", "rs3"]
            .iter()
            .map(|rs| format!("{{ address = \"{}:8080\" }}", self.lab.ip(rs)))
            .collect();
        std::fs::write(
            self.config_path(),
            format!(
                r#"[director]
name = "lab-lb"
status_socket = "{}"
state_file = "{}"

[[virtual_server]]
name = "web"
address = "{}:80"
scheduler = "rr"
forwarding = "nat"
check = {{ kind = "http", path = "/id", interval = "1s", timeout = "900ms", rise = 2, fall = 3 }}
real_server = [{}]
"#,
                self.socket().display(),
                self.dir.path().join("state.json").display(),
                self.vip,
                reals.join(", ")
            ),
        )
        .unwrap();
    }

    fn start_vigild(&self) -> LabChild {
        let mut cmd = self
            .lab
            .cmd("lb", [bin_path("vigild").to_str().unwrap(), "--config"]);
        cmd.arg(self.config_path())
            .stderr(Stdio::null())
            .stdout(Stdio::null());
        let child = LabChild::spawn(&mut cmd).unwrap();
        assert!(
            wait_for(SETTLE, || vigilctl(&self.socket(), &["status"])
                .status
                .success()),
            "vigild did not come up"
        );
        child
    }

    fn services(&self) -> Value {
        let out = vigilctl(&self.socket(), &["services", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Real server address → weight in the kernel, from `ipvsadm -Ln` (the witness).
    fn kernel_weights(&self) -> BTreeMap<String, u32> {
        let out = self.lab.run("lb", ["ipvsadm", "-Ln"]).unwrap();
        let mut in_ours = false;
        let mut weights = BTreeMap::new();
        for line in out.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() == Some(&"TCP") {
                in_ours = words.get(1) == Some(&format!("{}:80", self.vip).as_str());
            } else if in_ours
                && words.first() == Some(&"->")
                && words.len() >= 4
                && let Ok(w) = words[3].parse()
            {
                weights.insert(words[1].to_string(), w);
            }
        }
        weights
    }

    fn rs(&self, name: &str) -> String {
        format!("{}:8080", self.lab.ip(name))
    }

    /// Which real servers answer `n` requests to the VIP.
    fn who_answers(&self, n: usize) -> BTreeMap<String, usize> {
        let vip = SocketAddr::from((self.vip, 80));
        self.lab
            .run_in("client", move || {
                let mut seen = BTreeMap::new();
                for _ in 0..n {
                    let mut c = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).unwrap();
                    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                    c.write_all(b"GET /id HTTP/1.0\r\n\r\n").unwrap();
                    let mut reply = String::new();
                    c.read_to_string(&mut reply).unwrap();
                    let who = reply
                        .rsplit("\r\n\r\n")
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string();
                    *seen.entry(who).or_insert(0) += 1;
                }
                seen
            })
            .unwrap()
    }
}

fn expect_weights(c: &Cluster, want: &[(&str, u32)], what: &str) {
    let want: BTreeMap<String, u32> = want.iter().map(|(rs, w)| (c.rs(rs), *w)).collect();
    let ok = wait_for(SETTLE, || c.kernel_weights() == want);
    assert!(
        ok,
        "{what}: kernel has {:?}, want {want:?}\n{}",
        c.kernel_weights(),
        c.services()
    );
}

fn writes(c: &Cluster) -> u64 {
    c.services()["ipvs"]["writes"].as_u64().unwrap()
}

fn health_drains_and_restarts_drive_ipvs() {
    let mut c = Cluster::new();
    c.write_config();
    let mut vigild = c.start_vigild();

    // All three pass their checks and enter the kernel; traffic spreads over them.
    expect_weights(&c, &[("rs1", 1), ("rs2", 1), ("rs3", 1)], "after start");
    let seen = c.who_answers(9);
    assert_eq!(
        seen.len(),
        3,
        "round robin over three healthy servers: {seen:?}"
    );
    let services = c.services();
    let reals = services["virtual_servers"][0]["real_servers"]
        .as_array()
        .unwrap();
    assert!(reals.iter().all(|r| r["health"] == "up"), "{services}");
    assert_eq!(services["virtual_servers"][0]["has_quorum"], true);

    // rs2 dies: out of the kernel after `fall` failed checks; clients only see the others.
    c.stop_httpd("rs2");
    expect_weights(&c, &[("rs1", 1), ("rs3", 1)], "after rs2 stopped");
    let seen = c.who_answers(8);
    assert!(
        !seen.contains_key("rs2"),
        "a failed server still got traffic: {seen:?}"
    );
    let rs2 = c.services()["virtual_servers"][0]["real_servers"][1].clone();
    assert_eq!(rs2["health"], "down", "{rs2}");
    assert!(rs2["reason"].as_str().unwrap().contains("refused"), "{rs2}");

    // rs2 returns: back after `rise` passes.
    c.start_httpd("rs2");
    expect_weights(
        &c,
        &[("rs1", 1), ("rs2", 1), ("rs3", 1)],
        "after rs2 returned",
    );

    // An operator drains rs1: weight 0 (existing connections finish), no new ones.
    let out = vigilctl(&c.socket(), &["drain", "web", &c.rs("rs1")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_weights(&c, &[("rs1", 0), ("rs2", 1), ("rs3", 1)], "after drain");
    let seen = c.who_answers(8);
    assert!(
        !seen.contains_key("rs1"),
        "a drained server got new connections: {seen:?}"
    );
    let text = String::from_utf8_lossy(&vigilctl(&c.socket(), &["services"]).stdout).into_owned();
    assert!(text.contains("up (drained)"), "{text}");
    // The drain is in the state file, so it survives a restart.
    let state = std::fs::read_to_string(c.dir.path().join("state.json")).unwrap();
    assert!(state.contains(&c.rs("rs1")), "{state}");

    // A bad reload changes nothing.
    let good = std::fs::read_to_string(c.config_path()).unwrap();
    std::fs::write(c.config_path(), format!("{good}\nbogus = 1\n")).unwrap();
    let out = vigilctl(&c.socket(), &["reload"]);
    assert_eq!(out.status.code(), Some(1));
    std::fs::write(c.config_path(), &good).unwrap();
    expect_weights(
        &c,
        &[("rs1", 0), ("rs2", 1), ("rs3", 1)],
        "after a rejected reload",
    );

    // A good reload that adds a service leaves the existing one alone: no re-rise (each
    // real server keeps its health and the time it last changed), no writes to it.
    let since = |c: &Cluster| -> Vec<Value> {
        c.services()["virtual_servers"][0]["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["since_unix_ms"].clone())
            .collect()
    };
    let before = since(&c);
    let writes_before = writes(&c);
    let rs1 = c.rs("rs1");
    std::fs::write(
        c.config_path(),
        format!(
            "{good}\n[[virtual_server]]\nname = \"extra\"\naddress = \"{}:81\"\nreal_server = [{{ address = \"{rs1}\" }}]\n",
            c.vip
        ),
    )
    .unwrap();
    let out = vigilctl(&c.socket(), &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_for(SETTLE, || c
            .lab
            .run("lb", ["ipvsadm", "-Ln"])
            .unwrap()
            .contains(&format!("{}:81", c.vip))),
        "the new service is not in the kernel"
    );
    assert_eq!(
        since(&c),
        before,
        "a reload must not reset the health of unchanged checks"
    );
    // The new service and its one real server: two writes, nothing for the old one. The
    // count is published after the batch, so the service can be in the kernel before it.
    wait_for(SETTLE, || writes(&c) - writes_before >= 2);
    assert_eq!(writes(&c) - writes_before, 2);
    expect_weights(
        &c,
        &[("rs1", 0), ("rs2", 1), ("rs3", 1)],
        "after a good reload",
    );
    // And away again: the removed service is deleted (it was ours).
    std::fs::write(c.config_path(), &good).unwrap();
    assert!(vigilctl(&c.socket(), &["reload"]).status.success());
    assert!(
        wait_for(SETTLE, || !c
            .lab
            .run("lb", ["ipvsadm", "-Ln"])
            .unwrap()
            .contains(&format!("{}:81", c.vip))),
        "a service removed from the file stayed in the kernel"
    );

    // kill -9 and start again: the kernel table is adopted with zero writes, and the
    // drain is still in force. A client keeps sending requests the whole time: none fails.
    let probing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let vip = SocketAddr::from((c.vip, 80));
    let flag = probing.clone();
    let prober = c
        .lab
        .spawn_in("client", move || {
            let (mut ok, mut failed) = (0u32, Vec::new());
            while flag.load(std::sync::atomic::Ordering::Relaxed) {
                let r = (|| -> std::io::Result<String> {
                    let mut c = TcpStream::connect_timeout(&vip, Duration::from_secs(5))?;
                    c.set_read_timeout(Some(Duration::from_secs(10)))?;
                    c.write_all(b"GET /id HTTP/1.0\r\n\r\n")?;
                    let mut reply = String::new();
                    c.read_to_string(&mut reply)?;
                    Ok(reply)
                })();
                match r {
                    Ok(reply) if reply.starts_with("HTTP/1.") && reply.contains(" 200 ") => ok += 1,
                    Ok(reply) => failed.push(reply),
                    Err(e) => failed.push(e.to_string()),
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (ok, failed)
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    vigild.signal(libc::SIGKILL).unwrap();
    vigild.wait().unwrap();
    let before = c.kernel_weights();
    let mut vigild = c.start_vigild();
    // Let every check reach its verdict.
    let settled = wait_for(SETTLE, || {
        c.services()["virtual_servers"][0]["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["health"] == "up")
    });
    assert!(
        settled,
        "checks did not settle after the restart: {}",
        c.services()
    );
    probing.store(false, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = prober.join().unwrap().unwrap();
    assert!(
        ok > 0 && failed.is_empty(),
        "{ok} requests ok, failed during the restart: {failed:?}"
    );
    assert_eq!(
        c.kernel_weights(),
        before,
        "the restart changed the kernel table"
    );
    assert_eq!(
        writes(&c),
        0,
        "a restart with unchanged config and health must write nothing"
    );
    let seen = c.who_answers(6);
    assert!(!seen.contains_key("rs1") && seen.len() == 2, "{seen:?}");

    // Enable rs1 again.
    let out = vigilctl(&c.socket(), &["enable", "web", &c.rs("rs1")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    expect_weights(&c, &[("rs1", 1), ("rs2", 1), ("rs3", 1)], "after enable");

    // A real server that died while the director was down is removed after the restart,
    // once its check confirms it (`fall` failures), not kept because it was adopted.
    vigild.signal(libc::SIGKILL).unwrap();
    vigild.wait().unwrap();
    c.stop_httpd("rs3");
    let mut vigild = c.start_vigild();
    expect_weights(
        &c,
        &[("rs1", 1), ("rs2", 1)],
        "after a restart with rs3 dead",
    );
    let seen = c.who_answers(6);
    assert!(!seen.contains_key("rs3"), "{seen:?}");

    // A service removed from the file while vigild is down: the state file says it was
    // ours, so the next start deletes it; a service someone else made stays untouched.
    let extra = format!("{}:81", c.vip);
    let foreign = format!("{}:82", c.vip);
    std::fs::write(
        c.config_path(),
        format!(
            "{good}\n[[virtual_server]]\nname = \"extra\"\naddress = \"{extra}\"\nreal_server = [{{ address = \"{rs1}\" }}]\n"
        ),
    )
    .unwrap();
    assert!(vigilctl(&c.socket(), &["reload"]).status.success());
    let in_kernel = |c: &Cluster, service: &str| {
        c.lab
            .run("lb", ["ipvsadm", "-Ln"])
            .unwrap()
            .contains(service)
    };
    assert!(
        wait_for(SETTLE, || in_kernel(&c, &extra)),
        "the new service is not in the kernel"
    );
    let state_file = c.dir.path().join("state.json");
    assert!(
        wait_for(SETTLE, || std::fs::read_to_string(&state_file)
            .unwrap_or_default()
            .contains(&format!("tcp {extra}"))),
        "the owned service is not in the state file"
    );
    c.lab
        .run("lb", ["ipvsadm", "-A", "-t", &foreign, "-s", "rr"])
        .unwrap();
    vigild.signal(libc::SIGKILL).unwrap();
    vigild.wait().unwrap();
    std::fs::write(c.config_path(), &good).unwrap();
    let _vigild = c.start_vigild();
    assert!(
        wait_for(SETTLE, || !in_kernel(&c, &extra)),
        "a service removed from the file while vigild was down stayed in the kernel"
    );
    assert!(
        in_kernel(&c, &foreign),
        "a service vigild never owned was touched"
    );
    // The owned set is saved after the kernel write: wait for the file too.
    assert!(
        wait_for(SETTLE, || !std::fs::read_to_string(&state_file)
            .unwrap()
            .contains(&extra)),
        "{}",
        std::fs::read_to_string(&state_file).unwrap()
    );
}

/// Two directors with VRRP and the IPVS connection sync daemon, direct routing to two
/// echo servers: a client's established TCP connection goes on through the standby after
/// the master crashes, because the standby learned the connection from the sync daemon.
fn pair_failover_keeps_established_connections() {
    let lab = NetnsLab::up(&["lb1", "lb2", "rs1", "rs2", "client"]).unwrap();
    let vip = lab.subnet_addr(100);
    let dir = tempfile::tempdir().unwrap();
    // Real servers: the VIP on lo, never answering ARP for it (direct routing), and an
    // echo server on port 7000 (this test's own threads, listening in their namespace).
    for rs in ["rs1", "rs2"] {
        lab.run(
            rs,
            [
                "sh",
                "-ec",
                &format!(
                    "ip addr add {vip}/32 dev lo
                     sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \\
                       net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2"
                ),
            ],
        )
        .unwrap();
        let listener = lab
            .run_in(rs, || {
                std::net::TcpListener::bind(("0.0.0.0", 7000)).unwrap()
            })
            .unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
    }
    let reals: Vec<String> = ["rs1", "rs2"]
        .iter()
        .map(|rs| format!("{{ address = \"{}:7000\" }}", lab.ip(rs)))
        .collect();
    let start = |lb: &str, priority: u8| {
        let config = dir.path().join(format!("{lb}.toml"));
        std::fs::write(
            &config,
            format!(
                r#"[director]
name = "{lb}"
status_socket = "{sock}"
state_file = "{state}"

[vrrp.web]
interface = "eth0"
vrid = 61
priority = {priority}
advert_interval = "100ms"
vips = ["{vip}/24"]

[ipvs_sync]
interface = "eth0"
instance = "web"

[[virtual_server]]
name = "echo"
address = "{vip}:7000"
scheduler = "rr"
forwarding = "dr"
check = {{ kind = "tcp", interval = "500ms", timeout = "300ms" }}
real_server = [{reals}]
"#,
                sock = dir.path().join(format!("{lb}.sock")).display(),
                state = dir.path().join(format!("{lb}.json")).display(),
                reals = reals.join(", ")
            ),
        )
        .unwrap();
        let mut cmd = lab.cmd(lb, [bin_path("vigild").to_str().unwrap(), "--config"]);
        let log = std::fs::File::create(dir.path().join(format!("{lb}.log"))).unwrap();
        cmd.arg(&config).stderr(log).stdout(Stdio::null());
        LabChild::spawn(&mut cmd).unwrap()
    };
    let sock = |lb: &str| dir.path().join(format!("{lb}.sock"));
    let state = |lb: &str| -> String {
        let out = vigilctl(&sock(lb), &["vrrp", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["instances"][0]["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let healthy = |lb: &str| -> bool {
        let out = vigilctl(&sock(lb), &["services", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["virtual_servers"][0]["real_servers"]
            .as_array()
            .is_some_and(|r| r.len() == 2 && r.iter().all(|x| x["kernel_weight"] == 1))
    };
    let lb1 = start("lb1", 150);
    let _lb2 = start("lb2", 100);
    assert!(
        wait_for(SETTLE, || state("lb1") == "master"
            && state("lb2") == "backup"),
        "no election"
    );
    assert!(
        wait_for(SETTLE, || healthy("lb1") && healthy("lb2")),
        "real servers not in both tables:\nlb1: {}\n{}\nlb2: {}\n{}\nlb2 log:\n{}",
        String::from_utf8_lossy(&vigilctl(&sock("lb1"), &["services", "--json"]).stdout),
        lab.run("lb1", ["ipvsadm", "-Ln"]).unwrap_or_default(),
        String::from_utf8_lossy(&vigilctl(&sock("lb2"), &["services", "--json"]).stdout),
        lab.run("lb2", ["ipvsadm", "-Ln"]).unwrap_or_default(),
        std::fs::read_to_string(dir.path().join("lb2.log")).unwrap_or_default(),
    );
    // Both sync daemons run, in the roles VRRP gave them.
    let sync = |lb: &str| lab.run(lb, ["ipvsadm", "-L", "--daemon"]).unwrap();
    assert!(
        wait_for(SETTLE, || sync("lb1").contains("master sync daemon")),
        "{}",
        sync("lb1")
    );
    assert!(
        wait_for(SETTLE, || sync("lb2").contains("backup sync daemon")),
        "{}",
        sync("lb2")
    );

    // A long-lived connection through lb1.
    let mut conn = lab
        .run_in("client", || {
            std::net::TcpStream::connect_timeout(
                &SocketAddr::from((vip, 7000)),
                Duration::from_secs(10),
            )
            .unwrap()
        })
        .unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut echo = |msg: &str| -> String {
        conn.write_all(msg.as_bytes()).unwrap();
        let mut buf = vec![0u8; msg.len()];
        conn.read_exact(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    };
    for i in 0..10 {
        assert_eq!(echo(&format!("before {i}\n")), format!("before {i}\n"));
    }
    // The standby knows the connection before the crash.
    let client_ip = lab.ip("client").to_string();
    assert!(
        wait_for(SETTLE, || lab
            .run("lb2", ["ipvsadm", "-Lnc"])
            .unwrap()
            .contains(&client_ip)),
        "the backup never learned the connection:\n{}",
        lab.run("lb2", ["ipvsadm", "-Lnc"]).unwrap()
    );

    // lb1 crashes: vigild killed and its cable cut.
    lb1.signal(libc::SIGKILL).unwrap();
    lab.set_link("lb1", false).unwrap();
    assert!(
        wait_for(SETTLE, || state("lb2") == "master"),
        "lb2 did not take over"
    );
    // The same connection goes on through lb2.
    for i in 0..10 {
        assert_eq!(echo(&format!("after {i}\n")), format!("after {i}\n"));
    }
}

/// keepalived's quorum (summed weights, with a sorry server) and inhibit_on_failure per
/// real server, as `ipvsadm -Ln` sees them, and the quorum hooks run with the table.
fn quorum_by_weight_inhibit_per_server_and_quorum_hooks_in_ipvs() {
    let mut c = Cluster::new();
    let sorry = c.lab.subnet_addr(50);
    let log = c.dir.path().join("hooks.log");
    let hook = |arg: &str| {
        format!(
            "[\"/bin/sh\", \"-c\", \"echo $VIGIL_EVENT $VIGIL_QUORUM_COUNTED >> {}\", \"{arg}\"]",
            log.display()
        )
    };
    // Weights 3 + 1 + 1, quorum 3 by weight: rs1 alone holds it. inhibit_on_failure on
    // the service, off for rs3.
    c.write_config_with(
        &format!(
            "quorum_by = \"weight\"\nquorum = 3\ninhibit_on_failure = true\nsorry_server = \"{sorry}:8080\"\nquorum_up = {}\nquorum_down = {}",
            hook("up"),
            hook("down")
        ),
        "{ address = \"{rs1}:8080\", weight = 3 }, { address = \"{rs2}:8080\" }, { address = \"{rs3}:8080\", inhibit_on_failure = false }",
    );
    let mut vigild = c.start_vigild();
    expect_weights(&c, &[("rs1", 3), ("rs2", 1), ("rs3", 1)], "after start");
    let hooks = || std::fs::read_to_string(&log).unwrap_or_default();

    // rs3 fails: removed (its own inhibit_on_failure = false).
    c.stop_httpd("rs3");
    expect_weights(&c, &[("rs1", 3), ("rs2", 1)], "after rs3 failed");
    // rs2 fails: kept at weight 0 (the service's inhibit_on_failure); rs1's weight 3
    // still meets the quorum, so no sorry server.
    c.stop_httpd("rs2");
    expect_weights(&c, &[("rs1", 3), ("rs2", 0)], "after rs2 failed");
    assert_eq!(c.services()["virtual_servers"][0]["has_quorum"], true);
    assert_eq!(c.services()["virtual_servers"][0]["quorum_counted"], 3);

    // rs1 fails: quorum lost, the sorry server in, the reals withdrawn (kept at 0 where
    // inhibited), and quorum_down ran with what counted.
    let before = hooks().lines().count();
    c.stop_httpd("rs1");
    let sorry_rs = format!("{sorry}:8080");
    let want_sorry = |c: &Cluster| {
        let w = c.kernel_weights();
        w.get(&sorry_rs) == Some(&1)
            && w.get(&c.rs("rs1")) == Some(&0)
            && w.get(&c.rs("rs2")) == Some(&0)
            && !w.contains_key(&c.rs("rs3"))
    };
    assert!(
        wait_for(SETTLE, || want_sorry(&c)),
        "after quorum lost: {:?}",
        c.kernel_weights()
    );
    // Hooks written since rs1 was stopped (the emulated VM may flap a check at start).
    let new_hooks = |from: usize| hooks().lines().skip(from).collect::<Vec<_>>().join("\n");
    assert!(
        wait_for(SETTLE, || new_hooks(before).contains("quorum_down 0")),
        "{}",
        hooks()
    );

    // rs1 returns: quorum regained with weight 3, the sorry server leaves, quorum_up ran.
    c.start_httpd("rs1");
    expect_weights(&c, &[("rs1", 3), ("rs2", 0)], "after rs1 returned");
    assert!(
        wait_for(SETTLE, || hooks().lines().last() == Some("quorum_up 3")),
        "{}",
        hooks()
    );
    // Each hook is a change: up and down alternate.
    let events: Vec<String> = hooks()
        .lines()
        .map(|l| l.split(' ').next().unwrap_or("").to_string())
        .collect();
    assert!(events.windows(2).all(|w| w[0] != w[1]), "{}", hooks());
    vigild.terminate(Duration::from_secs(10)).unwrap();
}

/// The cluster file of [`ipvs_options_reach_the_kernel`]: `sync_port`, the UDP timeout
/// and `one_packet` are what its reload changes.
fn options_config(
    dir: &std::path::Path,
    vip: Ipv4Addr,
    sync_port: u16,
    udp: u32,
    one_packet: bool,
) -> String {
    format!(
        r#"[director]
name = "opts"
status_socket = "{dir}/vigil.sock"
state_file = "{dir}/state.json"

# Fault (dummy0 is down), so the sync daemon is the backup one: stopping a backup daemon
# is quick, where the kernel can take a minute to stop a master just started.
[vrrp.web]
interface = "eth0"
vrid = 51
vips = ["{vip}/24"]
track = [{{ interface = "dummy0" }}]

[ipvs_sync]
interface = "eth0"
instance = "web"
maxlen = 1400
port = {sync_port}
ttl = 2
group = "239.1.2.3"

[ipvs_timeouts]
tcp = "7201s"
tcp_fin = "121s"
udp = "{udp}s"

[[virtual_server]]
name = "dns"
address = "{vip}:53"
protocol = "udp"
one_packet = {one_packet}
real_server = [{{ address = "10.77.1.1" }}]

[[virtual_server]]
name = "tun"
address = "{vip}:80"
forwarding = "tunnel"
tunnel_type = "gue"
tunnel_port = 6080
tunnel_checksum = "csum"
real_server = [
  {{ address = "10.77.1.1" }},
  {{ address = "10.77.1.2", tunnel_type = "gre", tunnel_checksum = "csum" }},
  {{ address = "10.77.1.3", tunnel_type = "ipip" }},
]
"#,
        dir = dir.display()
    )
}

/// keepalived's IPVS options as vigil's keys, read back with ipvsadm: one-packet
/// scheduling (`ops`), GUE/GRE tunnels with port and checksum flags, `lvs_timeouts`, and
/// the sync daemon's maxlen/port/ttl/group; a reload changes them in the kernel.
fn ipvs_options_reach_the_kernel() {
    let lab = NetnsLab::up(&["lb"]).unwrap();
    let vip = lab.subnet_addr(100);
    lab.run("lb", ["ip", "link", "add", "dummy0", "type", "dummy"])
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cluster.toml");
    let socket = dir.path().join("vigil.sock");
    std::fs::write(&config, options_config(dir.path(), vip, 8850, 31, true)).unwrap();
    let mut cmd = lab.cmd("lb", [bin_path("vigild").to_str().unwrap(), "--config"]);
    cmd.arg(&config).stderr(Stdio::null()).stdout(Stdio::null());
    let _vigild = LabChild::spawn(&mut cmd).unwrap();
    // Paced polls, one shell per look: the other trials of this VM time their checks in
    // hundreds of ms, and process starts are what the emulated CPU is slowest at.
    let paced = |cond: &mut dyn FnMut() -> bool| {
        wait_for(SETTLE, || {
            cond() || {
                std::thread::sleep(Duration::from_millis(500));
                false
            }
        })
    };
    assert!(
        paced(&mut || vigilctl(&socket, &["status"]).status.success()),
        "vigild did not come up"
    );
    // ipvsadm -Sn, -Ln --timeout, -Ln --daemon, -Ln --tun-info.
    let look = || -> Vec<String> {
        let out = lab
            .run(
                "lb",
                [
                    "sh",
                    "-c",
                    "ipvsadm -Sn; echo @@; ipvsadm -Ln --timeout; echo @@; \
                     ipvsadm -Ln --daemon; echo @@; ipvsadm -Ln --tun-info",
                ],
            )
            .unwrap();
        out.split("@@\n").map(str::to_string).collect()
    };
    let line = |saved: &str, start: &str| -> String {
        saved
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or("")
            .to_string()
    };
    let dns = format!("-A -u {vip}:53 ");
    let tun = |rs: &str| format!("-a -t {vip}:80 -r {rs}:80 ");
    let mut seen = Vec::new();
    let programmed = paced(&mut || {
        seen = look();
        seen.len() == 4
            && seen[0].lines().filter(|l| l.starts_with("-a ")).count() == 4
            && seen[1].contains("7201 121 31")
            && seen[2].contains("backup sync daemon")
    });
    let w = seen.join("@@\n");
    assert!(programmed, "never programmed:\n{w}");
    let saved = &seen[0];
    assert!(
        line(saved, &dns).contains(" -o"),
        "one-packet scheduling:\n{w}"
    );
    let rs1 = line(saved, &tun("10.77.1.1"));
    assert!(
        rs1.contains(" -i") && rs1.contains("--tun-type gue --tun-port 6080 --tun-csum"),
        "GUE inherited from the virtual server:\n{w}"
    );
    let rs2 = line(saved, &tun("10.77.1.2"));
    assert!(
        rs2.contains("--tun-type gre") && rs2.contains("--tun-csum"),
        "GRE of the real server:\n{w}"
    );
    let rs3 = line(saved, &tun("10.77.1.3"));
    assert!(
        rs3.contains(" -i") && !rs3.contains("gue") && !rs3.contains("gre"),
        "IP-in-IP of the real server:\n{w}"
    );
    assert!(
        seen[1].contains("Timeout (tcp tcpfin udp): 7201 121 31"),
        "timeouts:\n{w}"
    );
    for want in [
        "backup sync daemon (mcast=eth0, syncid=51",
        "group=239.1.2.3",
        "port=8850",
        "ttl=2",
    ] {
        assert!(seen[2].contains(want), "sync daemon lacks {want}:\n{w}");
    }

    // A reload changes the UDP timeout (the others stay), drops one-packet scheduling
    // and restarts the sync daemon on the new port.
    std::fs::write(&config, options_config(dir.path(), vip, 8851, 32, false)).unwrap();
    let out = vigilctl(&socket, &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reloaded = paced(&mut || {
        seen = look();
        let dns_line = line(&seen[0], &dns);
        seen.len() == 4
            && seen[1].contains("7201 121 32")
            && seen[2].contains("port=8851")
            && !dns_line.is_empty()
            && !dns_line.contains(" -o")
    });
    assert!(reloaded, "after the reload:\n{}", seen.join("@@\n"));
}

/// One daemon's `lvs_notify_fifo` through the same steps: `cat` reads the FIFO from before
/// the daemon starts until it stops; rs1 goes down, then up. Returns the lines read.
fn lvs_fifo_run(c: &mut Cluster, fifo: &std::path::Path, argv: &[&str], what: &str) -> String {
    let out_path = fifo.with_extension("out");
    run_ok(&["mkfifo", "-m", "0600", fifo.to_str().unwrap()]);
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cat = LabChild::spawn(
        std::process::Command::new("cat")
            .arg(fifo)
            .stdin(Stdio::null())
            .stdout(out),
    )
    .unwrap();
    let log = std::fs::File::create(fifo.with_extension("log")).unwrap();
    let mut daemon = LabChild::spawn(
        c.lab
            .cmd("lb", argv)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log),
    )
    .unwrap();
    let read = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let both = |c: &Cluster| {
        let w = c.kernel_weights();
        w.contains_key(&c.rs("rs1")) && w.contains_key(&c.rs("rs2"))
    };
    assert!(
        wait_for(SETTLE, || both(c)),
        "{what}: reals not in IPVS: {:?}\n{}",
        c.kernel_weights(),
        std::fs::read_to_string(fifo.with_extension("log")).unwrap_or_default()
    );
    // Let the first checks pass: whatever start-up writes is written by now.
    std::thread::sleep(Duration::from_secs(4));
    let rs1 = format!("RS [{}]:tcp:8080", c.lab.ip("rs1"));
    c.stop_httpd("rs1");
    assert!(
        wait_for(SETTLE, || read()
            .lines()
            .any(|l| l.starts_with(&rs1) && l.ends_with("DOWN"))),
        "{what}: no rs1 DOWN line: {:?}",
        read()
    );
    std::thread::sleep(Duration::from_secs(3));
    c.start_httpd("rs1");
    assert!(
        wait_for(SETTLE, || read()
            .lines()
            .any(|l| l.starts_with(&rs1) && l.ends_with("UP"))),
        "{what}: no rs1 UP line: {:?}",
        read()
    );
    std::thread::sleep(Duration::from_secs(3));
    daemon.terminate(Duration::from_secs(15)).unwrap();
    // The daemon held the FIFO's only write end: cat sees EOF once it has gone.
    if cat.wait_timeout(Duration::from_secs(10)).unwrap().is_none() {
        cat.terminate(Duration::from_secs(1)).unwrap();
    }
    read()
}

/// keepalived's `lvs_notify_fifo` lines (`RS ...`, `VS ...`) against vigild's, run on the
/// file `vigild import-keepalived` makes of the same keepalived.conf, through the same
/// steps: start, a real server down then up (quorum 2 of 2, so the service too), stop.
fn lvs_notify_fifo_lines_match_keepalived() {
    let mut c = Cluster::new();
    let dir = c.dir.path().to_path_buf();
    let (k_fifo, v_fifo) = (dir.join("keepalived.fifo"), dir.join("vigild.fifo"));
    let conf = dir.join("keepalived.conf");
    let real = |rs: &str| {
        format!(
            "    real_server {} 8080 {{\n        TCP_CHECK {{\n            connect_timeout 1\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n",
            c.lab.ip(rs)
        )
    };
    std::fs::write(
        &conf,
        format!(
            "global_defs {{\n    router_id lab-lb\n    lvs_notify_fifo {}\n}}\n\nvirtual_server {} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind NAT\n    protocol TCP\n    quorum 2\n{}{}}}\n",
            k_fifo.display(),
            c.vip,
            real("rs1"),
            real("rs2"),
        ),
    )
    .unwrap();
    let keepalived = lvs_fifo_run(
        &mut c,
        &k_fifo,
        &[
            "keepalived",
            "--check",
            "-n",
            "-l",
            "-D",
            "-f",
            conf.to_str().unwrap(),
        ],
        "keepalived",
    );

    let imported = run_ok(&[
        bin_path("vigild").to_str().unwrap(),
        "import-keepalived",
        conf.to_str().unwrap(),
    ]);
    let k = k_fifo.display().to_string();
    assert!(imported.contains(&k), "{imported}");
    let toml = c.config_path();
    std::fs::write(&toml, imported.replace(&k, &v_fifo.display().to_string())).unwrap();
    let vigild = lvs_fifo_run(
        &mut c,
        &v_fifo,
        &[
            bin_path("vigild").to_str().unwrap(),
            "--config",
            toml.to_str().unwrap(),
        ],
        "vigild",
    );
    println!("keepalived's lvs_notify_fifo:\n{keepalived}");
    println!("vigild's lvs_notify_fifo:\n{vigild}");
    assert_eq!(vigild, keepalived, "imported file:\n{imported}");
}

/// `GET /metrics` from vigild's metrics listener inside the lab's `lb` namespace.
fn metrics(c: &Cluster, port: u16) -> String {
    c.lab
        .run_in("lb", move || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).ok()?;
            Some(out)
        })
        .unwrap()
        .unwrap_or_default()
}

/// The sum of a metric's samples whose line starts with `prefix` (name and labels).
fn metric_sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// keepalived's virtual_server_group as vigil's group form: three `addresses` entries
/// (one a range of two) and a fwmark are five IPVS services with the same real servers
/// (read back with `ipvsadm -Sn`); a failing real server leaves all five and returns to
/// all five; its check runs once per interval, not once per service (the checker's own
/// counters, `vigil_checks_total`).
fn a_group_is_n_services_with_one_check_per_real_server() {
    let mut c = Cluster::new();
    let net = |o: u8| c.lab.subnet_addr(o);
    let (a, b, r) = (net(100), net(101), net(102));
    let metrics_port = 9478;
    std::fs::write(
        c.config_path(),
        format!(
            r#"[director]
name = "lab-lb"
status_socket = "{}"
state_file = "{}"
metrics_listen = "127.0.0.1:{metrics_port}"

[[virtual_server]]
name = "farm"
addresses = ["{a}:80", "{b}:80", "{r}-103:80"]
fwmarks = [7]
scheduler = "rr"
check = {{ kind = "http", path = "/id", interval = "500ms", timeout = "400ms", rise = 1, fall = 1 }}
real_server = [{{ address = "{}" }}, {{ address = "{}" }}, {{ address = "{}" }}]
"#,
            c.socket().display(),
            c.dir.path().join("state.json").display(),
            c.rs("rs1"),
            c.rs("rs2"),
            c.rs("rs3"),
        ),
    )
    .unwrap();
    let mut vigild = c.start_vigild();
    let services = [
        format!("-t {a}:80"),
        format!("-t {b}:80"),
        format!("-t {r}:80"),
        format!("-t {}:80", net(103)),
        "-f 7".to_string(),
    ];
    // Each service's real servers as `ipvsadm -Sn` saves them (`-a SERVICE -r RS ...`).
    let saved = |c: &Cluster| c.lab.run("lb", ["ipvsadm", "-Sn"]).unwrap();
    let reals_of = |text: &str, svc: &str| -> Vec<String> {
        let mut v: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(&format!("-a {svc} -r ")))
            .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
            .collect();
        v.sort();
        v
    };
    let want_all = |c: &Cluster, names: &[&str]| {
        let mut want: Vec<String> = names.iter().map(|n| c.rs(n)).collect();
        want.sort();
        let text = saved(c);
        let services_there = services.iter().all(|svc| {
            text.lines()
                .any(|l| l.starts_with(&format!("-A {svc} -s rr")))
        });
        services_there && services.iter().all(|svc| reals_of(&text, svc) == want)
    };
    assert!(
        wait_for(SETTLE, || want_all(&c, &["rs1", "rs2", "rs3"])),
        "after start, want 5 services with rs1-3:\n{}",
        saved(&c)
    );
    // Exactly these five services in the kernel (the range expanded, nothing more).
    assert_eq!(
        saved(&c).lines().filter(|l| l.starts_with("-A ")).count(),
        5,
        "{}",
        saved(&c)
    );
    let v = c.services();
    let farm = &v["virtual_servers"][0];
    assert_eq!(farm["in_kernel"], true, "{v}");
    assert_eq!(farm["group"].as_array().map(Vec::len), Some(4), "{v}");
    assert_eq!(
        farm["real_servers"].as_array().map(Vec::len),
        Some(3),
        "{v}"
    );

    // One check per real server, not per service: 3 configured, and the runs over a
    // window are what 3 checks at 500 ms make (5 services each checked would be 5x).
    let m = metrics(&c, metrics_port);
    assert_eq!(metric_sum(&m, "vigil_checks{kind=\"http\""), 3.0, "{m}");
    let runs = |c: &Cluster| {
        metric_sum(
            &metrics(c, metrics_port),
            "vigil_checks_total{kind=\"http\"",
        )
    };
    let (before, t0) = (runs(&c), std::time::Instant::now());
    std::thread::sleep(Duration::from_secs(5));
    let (after, took) = (runs(&c), t0.elapsed());
    let most = 3.0 * (took.as_secs_f64() / 0.5 + 2.0);
    println!(
        "group: {} check runs in {:.1}s for 3 real servers at 500ms (at most {most:.0} once each per interval)",
        after - before,
        took.as_secs_f64()
    );
    assert!(
        after - before >= 3.0 && after - before <= most,
        "check runs in {took:?}: {}, want 3..={most}",
        after - before
    );

    // rs2 fails: it leaves all five services at once; it returns to all five.
    c.stop_httpd("rs2");
    assert!(
        wait_for(SETTLE, || want_all(&c, &["rs1", "rs3"])),
        "after rs2 failed:\n{}",
        saved(&c)
    );
    c.start_httpd("rs2");
    assert!(
        wait_for(SETTLE, || want_all(&c, &["rs1", "rs2", "rs3"])),
        "after rs2 returned:\n{}",
        saved(&c)
    );
    // A drain of the group's real server applies to every service.
    let out = vigilctl(&c.socket(), &["drain", "farm", &c.rs("rs3")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let weights_of_rs3 = |c: &Cluster| -> Vec<String> {
        let rs3 = c.rs("rs3");
        saved(c)
            .lines()
            .filter(|l| l.starts_with("-a ") && l.contains(&format!(" -r {rs3} ")))
            .filter_map(|l| l.split_whitespace().last().map(str::to_string))
            .collect()
    };
    assert!(
        wait_for(SETTLE, || weights_of_rs3(&c) == vec!["0".to_string(); 5]),
        "after draining rs3:\n{}",
        saved(&c)
    );

    // A reload that drops the range and the mark from the group removes just those
    // three services.
    let text = std::fs::read_to_string(c.config_path()).unwrap();
    let smaller = text
        .replace(&format!(", \"{r}-103:80\""), "")
        .replace("fwmarks = [7]\n", "");
    assert_ne!(smaller, text);
    std::fs::write(c.config_path(), smaller).unwrap();
    let out = vigilctl(&c.socket(), &["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = |c: &Cluster| -> Vec<String> {
        let mut v: Vec<String> = saved(c)
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let mut want = vec![format!("-A -t {a}:80 -s rr"), format!("-A -t {b}:80 -s rr")];
    want.sort();
    assert!(
        wait_for(SETTLE, || left(&c) == want),
        "after the reload:\n{}",
        saved(&c)
    );
    vigild.terminate(Duration::from_secs(10)).unwrap();
}
