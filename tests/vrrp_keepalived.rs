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

use std::time::Duration;

use vigil_testlab::{NetnsLab, require_root_or_skip, wait_for};
use vrrp_support::*;

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
