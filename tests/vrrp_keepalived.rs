//! Wire compatibility with keepalived (the Debian package) in a netns lab: vigil master
//! with a keepalived backup and the reverse, VRRPv2 (with keepalived's `auth_type PASS`)
//! and VRRPv3, multicast and unicast, IPv4 and (VRRPv3) IPv6. In each, the backup accepts the master's adverts
//! (no drops), takes over when the master crashes, and hands mastership back when the
//! higher-priority node returns (preemption, RFC 5798 §6.4.2); a graceful stop of the
//! master (priority 0, §6.4.3) moves it too.

// Helpers outside #[test] functions unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

#[path = "vrrp_support.rs"]
mod vrrp_support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use vigil_testlab::{
    LabChild, NetnsLab, have_tools, require_or_skip, require_root_or_skip, wait_for,
};
use vrrp_support::*;

const HOSTS: [&str; 2] = ["lb1", "lb2"];
/// keepalived at advert 1 s needs 3 x 1 s + skew to take over, and more to preempt.
const SLOW: Duration = Duration::from_secs(15);

#[derive(Clone, Copy)]
struct Setup {
    version: u8,
    unicast: bool,
    ipv6: bool,
}

impl Setup {
    fn advert_secs(self) -> f64 {
        if self.version == 2 { 1.0 } else { 0.1 }
    }

    fn vip(self, lab: &NetnsLab) -> String {
        if self.ipv6 {
            "fd00:99::100".into()
        } else {
            lab.subnet_addr(100).to_string()
        }
    }

    fn prefix_len(self) -> u8 {
        if self.ipv6 { 64 } else { 24 }
    }

    /// IPv6: gives the client an address in the VIP's prefix, and waits until the
    /// directors' link-local addresses have finished duplicate detection (keepalived
    /// started before that fails its first sends with EINVAL).
    fn prepare(self, lab: &NetnsLab) {
        if !self.ipv6 {
            return;
        }
        lab.run(
            "client",
            ["ip", "addr", "add", "fd00:99::3/64", "dev", "eth0", "nodad"],
        )
        .unwrap();
        for host in HOSTS {
            assert!(wait_for(SETTLE, || lab
                .run(
                    host,
                    ["ip", "-6", "addr", "show", "dev", "eth0", "tentative"]
                )
                .is_ok_and(|out| out.trim().is_empty())));
        }
    }
}

/// A keepalived (`--vrrp` only) in a lab host: the parent and its VRRP child.
struct Keepalived {
    host: String,
    conf: PathBuf,
    log: PathBuf,
    vrrp_pid: PathBuf,
    parent: Option<LabChild>,
}

impl Keepalived {
    fn start(lab: &NetnsLab, dir: &Path, host: &str, conf_text: &str) -> Keepalived {
        let conf = dir.join(format!("ka-{host}.conf"));
        std::fs::write(&conf, conf_text).unwrap();
        let mut k = Keepalived {
            host: host.into(),
            conf,
            log: dir.join(format!("ka-{host}.log")),
            vrrp_pid: dir.join(format!("ka-{host}-vrrp.pid")),
            parent: None,
        };
        k.restart(lab, dir);
        k
    }

    fn restart(&mut self, lab: &NetnsLab, dir: &Path) {
        let _ = std::fs::remove_file(&self.vrrp_pid);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let pid = dir.join(format!("ka-{}.pid", self.host));
        let mut cmd = lab.cmd(
            &self.host,
            [
                "keepalived".as_ref(),
                "--vrrp".as_ref(),
                "-n".as_ref(),
                "-l".as_ref(),
                "-D".as_ref(),
                "-f".as_ref(),
                self.conf.as_os_str(),
                "--pid".as_ref(),
                pid.as_os_str(),
                "--vrrp_pid".as_ref(),
                self.vrrp_pid.as_os_str(),
            ],
        );
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.parent = Some(LabChild::spawn(&mut cmd).unwrap());
        assert!(
            wait_for(SETTLE, || self.child_pid().is_some()),
            "keepalived on {} did not start:\n{}",
            self.host,
            self.log_text()
        );
    }

    fn child_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.vrrp_pid)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A crash: SIGKILL the VRRP child first (else the parent makes it resign), then the
    /// parent (tests/lab/README.md).
    fn crash(&mut self) {
        if let Some(pid) = self.child_pid() {
            // SAFETY: plain kill(2) of keepalived's VRRP child, which we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(p) = &mut self.parent {
            let _ = p.signal(libc::SIGKILL);
            let _ = p.wait();
        }
    }

    fn stop(&mut self) {
        if let Some(p) = &mut self.parent {
            let _ = p.terminate(Duration::from_secs(10));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn entered(&self, state: &str) -> usize {
        self.log_text()
            .matches(&format!("Entering {state} STATE"))
            .count()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        // The lab's teardown kills what is left too; the child is not ours to reap.
        self.crash();
    }
}

fn keepalived_conf(
    s: Setup,
    lab: &NetnsLab,
    host: &str,
    peer: &str,
    priority: u8,
    vip: &str,
) -> String {
    let auth = if s.version == 2 {
        "  authentication {\n    auth_type PASS\n    auth_pass vigil42\n  }\n"
    } else {
        ""
    };
    let unicast = if s.unicast {
        format!(
            "  unicast_src_ip {}\n  unicast_peer {{\n    {}\n  }}\n",
            lab.ip(host),
            lab.ip(peer)
        )
    } else {
        String::new()
    };
    format!(
        "global_defs {{\n  router_id {host}\n  vrrp_version {}\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int {}\n{auth}{unicast}  virtual_ipaddress {{\n    {vip}/{} dev eth0\n  }}\n}}\n",
        s.version,
        s.advert_secs(),
        s.prefix_len()
    )
}

fn vigil_instance(s: Setup, lab: &NetnsLab, peer: &str, priority: u8, vip: &str) -> String {
    let mut extra = format!("version = {}\n", s.version);
    if s.version == 2 {
        extra.push_str("auth_password = \"vigil42\"\n");
    }
    if s.unicast {
        extra.push_str(&format!("unicast_peers = [\"{}\"]\n", lab.ip(peer)));
    }
    let advert = if s.version == 2 { "1s" } else { "100ms" };
    instance(
        "web",
        51,
        priority,
        advert,
        &[format!("{vip}/{}", s.prefix_len())],
        &extra,
    )
}

fn require_keepalived() -> bool {
    require_or_skip!(have_tools(&["keepalived"]), false);
    true
}

/// vigil (lb1, priority 150) is master and keepalived (lb2, 100) backup.
fn vigil_master(s: Setup) {
    require_root_or_skip!();
    if !require_keepalived() {
        return;
    }
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vip = s.vip(&lab);
    s.prepare(&lab);
    let mut ka = Keepalived::start(
        &lab,
        dir.path(),
        "lb2",
        &keepalived_conf(s, &lab, "lb2", "lb1", 100, &vip),
    );
    let mut vigil = Vigild::start(
        &lab,
        dir.path(),
        "lb1",
        &vigil_instance(s, &lab, "lb2", 150, &vip),
    );
    vigil.expect_state("web", "master", SLOW);
    expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);
    assert!(
        wait_for(SLOW, || ka.entered("BACKUP") >= 1),
        "keepalived never became backup:\n{}",
        ka.log_text()
    );
    // keepalived stays backup: it accepts vigil's adverts. (At 100 ms it may have been
    // master for a moment before vigil started; count from here.)
    let masters = ka.entered("MASTER");
    std::thread::sleep(Duration::from_secs_f64(s.advert_secs() * 5.0));
    assert_eq!(ka.entered("MASTER"), masters, "{}", ka.log_text());
    expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);

    // vigil crashes: keepalived takes over.
    vigil.kill();
    lab.set_link("lb1", false).unwrap();
    assert!(
        wait_for(SLOW, || has_addr(&lab, "lb2", &vip)),
        "keepalived did not take over:\n{}",
        ka.log_text()
    );
    // vigil comes back (with its stale VIP) and preempts keepalived, which must accept
    // vigil's higher-priority adverts.
    lab.set_link("lb1", true).unwrap();
    vigil.restart(&lab);
    vigil.expect_state("web", "master", SLOW);
    expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);
    let live = vigil.instance("web").unwrap();
    assert!(live["adverts_received"].as_u64() > Some(0), "{live}");
    assert_eq!(live["drops"], serde_json::json!({}), "{live}");

    // Graceful stop: keepalived takes over after its skew time.
    assert!(vigil.stop().success());
    assert!(
        wait_for(SLOW, || has_addr(&lab, "lb2", &vip)
            && !has_addr(&lab, "lb1", &vip)),
        "keepalived did not take over after a graceful stop:\n{}",
        ka.log_text()
    );
    assert!(wait_for(SETTLE, || lab
        .run("client", ["ping", "-c", "1", "-W", "1", &vip])
        .is_ok()));
    ka.stop();
    assert_clean_log(&ka);
}

/// keepalived complained about none of vigil's adverts (checksum, auth, address list,
/// interval, TTL).
fn assert_clean_log(ka: &Keepalived) {
    let log = ka.log_text().to_lowercase();
    // A restarted higher-priority keepalived discards the lower-priority master's adverts
    // until its own timer fires (its normal preemption; tests/lab/README.md).
    let log: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("received lower priority"))
        .collect();
    for complaint in [
        "invalid",
        "bad ",
        "mismatch",
        "not present",
        "discard",
        "error",
    ] {
        let hits: Vec<&&str> = log.iter().filter(|l| l.contains(complaint)).collect();
        assert!(
            hits.is_empty(),
            "keepalived logged {complaint:?}: {hits:#?}"
        );
    }
}

/// keepalived (lb1, priority 150) is master and vigil (lb2, 100) backup.
fn keepalived_master(s: Setup) {
    require_root_or_skip!();
    if !require_keepalived() {
        return;
    }
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vip = s.vip(&lab);
    s.prepare(&lab);
    let vigil = Vigild::start(
        &lab,
        dir.path(),
        "lb2",
        &vigil_instance(s, &lab, "lb1", 100, &vip),
    );
    let mut ka = Keepalived::start(
        &lab,
        dir.path(),
        "lb1",
        &keepalived_conf(s, &lab, "lb1", "lb2", 150, &vip),
    );
    assert!(
        wait_for(SLOW, || ka.entered("MASTER") >= 1
            && has_addr(&lab, "lb1", &vip)),
        "keepalived never became master:\n{}\n{}",
        ka.log_text(),
        vigil.log_text()
    );
    // vigil hears keepalived's adverts and settles as backup with no drops.
    // keepalived advertises from its primary IPv4 address, or its IPv6 link-local one.
    let ka_ip = lab.ip("lb1").to_string();
    let from_keepalived = |master: &serde_json::Value| match master.as_str() {
        Some(m) if s.ipv6 => m.starts_with("fe80:"),
        Some(m) => m == ka_ip,
        None => false,
    };
    assert!(
        wait_for(SLOW, || {
            let i = vigil.instance("web").unwrap();
            i["state"] == "backup" && from_keepalived(&i["master"])
        }),
        "{}",
        vigil.instance("web").unwrap()
    );
    std::thread::sleep(Duration::from_secs_f64(s.advert_secs() * 5.0));
    let live = vigil.instance("web").unwrap();
    assert_eq!(live["state"], "backup", "{live}");
    assert!(live["adverts_received"].as_u64() >= Some(3), "{live}");
    assert_eq!(live["drops"], serde_json::json!({}), "{live}");
    expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);

    // keepalived crashes: vigil takes over.
    ka.crash();
    lab.set_link("lb1", false).unwrap();
    vigil.expect_state("web", "master", SLOW);
    assert_eq!(
        vigil.instance("web").unwrap()["last_transition"]["reason"],
        "master_down"
    );
    assert!(has_addr(&lab, "lb2", &vip));

    // keepalived returns (it removes its stale VIP at startup) and preempts vigil: it
    // must accept vigil's adverts as a lower-priority master's.
    lab.set_link("lb1", true).unwrap();
    ka.restart(&lab, dir.path());
    vigil.expect_state("web", "backup", SLOW);
    expect_addr_only_on(&lab, &vip, "lb1", &HOSTS);
    assert_eq!(
        vigil.instance("web").unwrap()["last_transition"]["reason"],
        "higher_priority_master"
    );

    // A graceful keepalived stop (priority 0): vigil takes over after Skew_Time.
    ka.stop();
    vigil.expect_state("web", "master", SLOW);
    assert_eq!(
        vigil.instance("web").unwrap()["last_transition"]["reason"],
        "master_resigned"
    );
    expect_addr_only_on(&lab, &vip, "lb2", &HOSTS);
    assert_clean_log(&ka);
}

#[test]
fn v3_vigil_master_keepalived_backup() {
    vigil_master(Setup {
        version: 3,
        unicast: false,
        ipv6: false,
    });
}

#[test]
fn v3_keepalived_master_vigil_backup() {
    keepalived_master(Setup {
        version: 3,
        unicast: false,
        ipv6: false,
    });
}

#[test]
fn v2_vigil_master_keepalived_backup() {
    vigil_master(Setup {
        version: 2,
        unicast: false,
        ipv6: false,
    });
}

#[test]
fn v2_keepalived_master_vigil_backup() {
    keepalived_master(Setup {
        version: 2,
        unicast: false,
        ipv6: false,
    });
}

#[test]
fn v3_unicast_keepalived_master_vigil_backup() {
    keepalived_master(Setup {
        version: 3,
        unicast: true,
        ipv6: false,
    });
}

#[test]
fn v3_unicast_vigil_master() {
    vigil_master(Setup {
        version: 3,
        unicast: true,
        ipv6: false,
    });
}

#[test]
fn v3_ipv6_vigil_master_keepalived_backup() {
    vigil_master(Setup {
        version: 3,
        unicast: false,
        ipv6: true,
    });
}

#[test]
fn v3_ipv6_keepalived_master_vigil_backup() {
    keepalived_master(Setup {
        version: 3,
        unicast: false,
        ipv6: true,
    });
}
