//! `virtual_routes`, `virtual_rules` and `use_vmac` between real peers in a netns lab:
//! routes and rules appear on the master and vanish from the node that leaves mastership
//! (read with `ip route` / `ip rule` in the namespaces); with `use_vmac` the adverts on
//! the wire and the VIP's ARP answers carry the RFC 5798 §7.3 virtual MAC
//! (00-00-5E-00-01-{VRID} for IPv4; IPv6 VIPs' neighbour answers 00-00-5E-00-02-{VRID}),
//! a virtual MAC interface left by a crash is adopted, and keepalived with `use_vmac`
//! interoperates with vigil with `use_vmac`.

// Helpers outside #[test] functions unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

#[path = "vrrp_support.rs"]
mod vrrp_support;

use std::time::Duration;

use vigil_testlab::{NetnsLab, have_tools, require_or_skip, require_root_or_skip, wait_for};
use vrrp_support::*;

/// RFC 5798 §7.3: the IPv4 virtual router MAC of VRID 51 (0x33).
const VMAC_51: &str = "00:00:5e:00:01:33";

/// Whether `host`'s interface `dev` carries `addr`.
fn has_addr_on(lab: &NetnsLab, host: &str, dev: &str, addr: &str) -> bool {
    lab.run(host, ["ip", "-o", "addr", "show", "dev", dev])
        .map(|out| out.contains(&format!(" {addr}/")))
        .unwrap_or(false)
}

fn output(lab: &NetnsLab, host: &str, argv: &[&str]) -> String {
    lab.run(host, argv).unwrap_or_default()
}

/// What `host` routes for the instance: its main-table route, its table-100 routes and
/// its rules, as `ip` prints them.
fn routing(lab: &NetnsLab, host: &str) -> (String, String, String) {
    (
        output(lab, host, &["ip", "route", "show", "10.200.0.0/16"]),
        output(lab, host, &["ip", "route", "show", "table", "100"]),
        output(lab, host, &["ip", "rule", "show"]),
    )
}

fn routes_installed(lab: &NetnsLab, host: &str, vip: &str) -> bool {
    let (main, table, rules) = routing(lab, host);
    main.contains("via")
        && table.contains("blackhole 10.201.0.0/16")
        && table.contains(&format!("src {vip}"))
        && rules.contains(&format!("from {vip} lookup 100"))
}

fn routes_absent(lab: &NetnsLab, host: &str) -> bool {
    let (main, table, rules) = routing(lab, host);
    main.trim().is_empty() && table.trim().is_empty() && !rules.contains("lookup 100")
}

#[test]
fn routes_and_rules_follow_mastership() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vip = lab.subnet_addr(100).to_string();
    let gateway = lab.subnet_addr(254).to_string();
    let extra = format!(
        r#"virtual_routes = [
  {{ to = "10.200.0.0/16", via = "{gateway}" }},
  {{ to = "10.201.0.0/16", type = "blackhole", table = 100 }},
  {{ to = "10.202.0.0/16", dev = "eth0", src = "{vip}", table = 100 }},
]
virtual_rules = [{{ from = "{vip}/32", table = 100, priority = 1000 }}]
"#
    );
    let conf = |prio| instance("web", 51, prio, "100ms", &[format!("{vip}/24")], &extra);
    let mut lb1 = Vigild::start(&lab, dir.path(), "lb1", &conf(150));
    let lb2 = Vigild::start(&lab, dir.path(), "lb2", &conf(100));
    lb1.expect_state("web", "master", SETTLE);
    lb2.expect_state("web", "backup", SETTLE);
    assert!(
        wait_for(SETTLE, || routes_installed(&lab, "lb1", &vip)),
        "{:?}\n{}",
        routing(&lab, "lb1"),
        lb1.log_text()
    );
    assert!(routes_absent(&lab, "lb2"), "{:?}", routing(&lab, "lb2"));

    // Failover: the master stops; the backup installs them, the old master removed them.
    assert!(lb1.stop().success());
    lb2.expect_state("web", "master", SETTLE);
    assert!(
        wait_for(SETTLE, || routes_installed(&lab, "lb2", &vip)),
        "{:?}\n{}",
        routing(&lab, "lb2"),
        lb2.log_text()
    );
    assert!(routes_absent(&lab, "lb1"), "{:?}", routing(&lab, "lb1"));

    // lb1 returns and preempts: lb2, back to backup, removes them.
    lb1.restart(&lab);
    lb1.expect_state("web", "master", SETTLE);
    lb2.expect_state("web", "backup", SETTLE);
    assert!(wait_for(SETTLE, || routes_installed(&lab, "lb1", &vip)));
    assert!(
        wait_for(SETTLE, || routes_absent(&lab, "lb2")),
        "{:?}",
        routing(&lab, "lb2")
    );

    // A crash leaves them behind; the restarted node removes them while backup.
    lb1.kill();
    lab.set_link("lb1", false).unwrap();
    lb2.expect_state("web", "master", SETTLE);
    assert!(routes_installed(&lab, "lb1", &vip));
    // Without the cable lb1 would be master alone: give it a lower priority first.
    lb1.rewrite(&conf(50));
    lab.set_link("lb1", true).unwrap();
    lb1.restart(&lab);
    lb1.expect_state("web", "backup", SLOW);
    assert!(
        wait_for(SETTLE, || routes_absent(&lab, "lb1")),
        "{:?}\n{}",
        routing(&lab, "lb1"),
        lb1.log_text()
    );
    assert!(routes_installed(&lab, "lb2", &vip));
}

/// Source MACs of the VRRP adverts seen on the wire (the bridge) within a few seconds.
fn advert_sources(lab: &NetnsLab) -> String {
    let argv = [
        "timeout", "5", "tcpdump", "-c", "3", "-nei", "br0", "-l", "vrrp",
    ];
    // Said in the assertion that finds no adverts (tcpdump missing, capture refused).
    lab.run("br", argv)
        .unwrap_or_else(|e| format!("tcpdump on br0 failed: {e}"))
}

/// The client's neighbour entry for `vip` after a fresh resolution (a ping).
fn client_sees(lab: &NetnsLab, vip: &str) -> String {
    let _ = lab.run("client", ["ip", "neigh", "flush", "dev", "eth0"]);
    let _ = lab.run("client", ["ping", "-c", "1", "-W", "1", vip]);
    output(lab, "client", &["ip", "neigh", "show", vip])
}

#[test]
fn vmac_adverts_and_arp_answers_carry_the_virtual_mac() {
    require_root_or_skip!();
    require_or_skip!(have_tools(&["tcpdump"]));
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vip = lab.subnet_addr(100).to_string();
    let conf = |prio| {
        instance(
            "web",
            51,
            prio,
            "100ms",
            &[format!("{vip}/24")],
            "use_vmac = true\n",
        )
    };
    let mut lb1 = Vigild::start(&lab, dir.path(), "lb1", &conf(150));
    let lb2 = Vigild::start(&lab, dir.path(), "lb2", &conf(100));
    lb1.expect_state("web", "master", SETTLE);
    lb2.expect_state("web", "backup", SETTLE);
    // The macvlan, private mode, with the virtual MAC, on both nodes; the VIP on the
    // master's only.
    for host in HOSTS {
        let link = output(&lab, host, &["ip", "-d", "link", "show", "vrrp.51"]);
        assert!(link.contains(VMAC_51), "{host}: {link}");
        assert!(link.contains("macvlan mode private"), "{host}: {link}");
    }
    assert!(wait_for(SETTLE, || has_addr_on(
        &lab, "lb1", "vrrp.51", &vip
    )));
    assert!(!has_addr_on(&lab, "lb2", "vrrp.51", &vip));
    assert!(!has_addr(&lab, "lb1", &vip), "the VIP must not be on eth0");

    // RFC 5798 §7.3: the master's adverts leave with the virtual MAC as source.
    let wire = advert_sources(&lab);
    let adverts: Vec<&str> = wire.lines().filter(|l| l.contains("VRRP")).collect();
    assert!(!adverts.is_empty(), "no adverts captured: {wire}");
    for l in &adverts {
        assert!(
            l.starts_with(&format!("{VMAC_51} >")) || l.contains(&format!(" {VMAC_51} >")),
            "{l}"
        );
    }
    // ... and the VIP is answered with it.
    let neigh = client_sees(&lab, &vip);
    assert!(neigh.contains(&format!("lladdr {VMAC_51}")), "{neigh}");

    // Failover keeps the MAC: the client's entry need not even change.
    assert!(lb1.stop().success());
    lb2.expect_state("web", "master", SETTLE);
    assert!(wait_for(SETTLE, || has_addr_on(
        &lab, "lb2", "vrrp.51", &vip
    )));
    assert!(
        output(&lab, "lb1", &["ip", "link", "show", "vrrp.51"]).is_empty(),
        "a stopped node removes its virtual MAC interface"
    );
    let neigh = client_sees(&lab, &vip);
    assert!(neigh.contains(&format!("lladdr {VMAC_51}")), "{neigh}");
    assert!(
        lab.run("client", ["ping", "-c", "1", "-W", "1", &vip])
            .is_ok()
    );

    // A crash leaves the interface (and the VIP on it); the restarted node adopts it.
    lb1.restart(&lab);
    lb1.expect_state("web", "master", SETTLE);
    lb1.kill();
    lab.set_link("lb1", false).unwrap();
    lb2.expect_state("web", "master", SETTLE);
    assert!(has_addr_on(&lab, "lb1", "vrrp.51", &vip));
    lab.set_link("lb1", true).unwrap();
    lb1.restart(&lab);
    lb1.expect_state("web", "master", SLOW);
    lb2.expect_state("web", "backup", SETTLE);
    assert!(lb1.log_text().contains("adopted"), "{}", lb1.log_text());
    let links = output(
        &lab,
        "lb1",
        &["ip", "-o", "link", "show", "type", "macvlan"],
    );
    assert_eq!(links.lines().count(), 1, "{links}");
    let neigh = client_sees(&lab, &vip);
    assert!(neigh.contains(&format!("lladdr {VMAC_51}")), "{neigh}");
}

#[test]
fn keepalived_interop_with_use_vmac_on_both_sides() {
    require_root_or_skip!();
    require_or_skip!(have_tools(&["tcpdump"]));
    if !require_keepalived() {
        return;
    }
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let vip = lab.subnet_addr(100).to_string();
    let ka_conf = format!(
        "global_defs {{\n  router_id lb2\n  vrrp_version 3\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  use_vmac\n  virtual_router_id 51\n  priority 100\n  advert_int 0.1\n  virtual_ipaddress {{\n    {vip}/24\n  }}\n}}\n"
    );
    let mut ka = Keepalived::start(&lab, dir.path(), "lb2", &ka_conf);
    let mut vigil = Vigild::start(
        &lab,
        dir.path(),
        "lb1",
        &instance(
            "web",
            51,
            150,
            "100ms",
            &[format!("{vip}/24")],
            "use_vmac = true\n",
        ),
    );
    vigil.expect_state("web", "master", SLOW);
    assert!(
        wait_for(SLOW, || ka.entered("BACKUP") >= 1),
        "keepalived never became backup:\n{}",
        ka.log_text()
    );
    // keepalived hears vigil's adverts from the virtual MAC interface and stays backup.
    let masters = ka.entered("MASTER");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ka.entered("MASTER"), masters, "{}", ka.log_text());
    assert!(wait_for(SETTLE, || has_addr_on(
        &lab, "lb1", "vrrp.51", &vip
    )));
    assert!(!has_addr_on(&lab, "lb2", "vrrp.51", &vip));
    let neigh = client_sees(&lab, &vip);
    assert!(neigh.contains(&format!("lladdr {VMAC_51}")), "{neigh}");

    // vigil crashes: keepalived takes over, on its own vrrp.51 with the same MAC.
    vigil.kill();
    lab.set_link("lb1", false).unwrap();
    assert!(
        wait_for(SLOW, || has_addr_on(&lab, "lb2", "vrrp.51", &vip)),
        "keepalived did not take over:\n{}",
        ka.log_text()
    );
    let wire = advert_sources(&lab);
    let adverts: Vec<&str> = wire.lines().filter(|l| l.contains("VRRP")).collect();
    assert!(
        !adverts.is_empty() && adverts.iter().all(|l| l.contains(&format!(" {VMAC_51} >"))),
        "{wire}"
    );
    // (Not the client's ARP entry: keepalived leaves its base interface's ARP settings
    // as they are, so its replies' ARP requests teach the client the base's MAC.)
    assert!(wait_for(SETTLE, || lab
        .run("client", ["ping", "-c", "1", "-W", "1", &vip])
        .is_ok()));

    // vigil returns (adopting its interface) and preempts: keepalived accepts its adverts.
    lab.set_link("lb1", true).unwrap();
    vigil.restart(&lab);
    vigil.expect_state("web", "master", SLOW);
    assert!(
        wait_for(SLOW, || !has_addr_on(&lab, "lb2", "vrrp.51", &vip)),
        "keepalived kept the VIP:\n{}",
        ka.log_text()
    );
    let live = vigil.instance("web").unwrap();
    assert!(live["adverts_received"].as_u64() > Some(0), "{live}");
    assert_eq!(live["drops"], serde_json::json!({}), "{live}");
    assert!(
        lab.run("client", ["ping", "-c", "1", "-W", "1", &vip])
            .is_ok()
    );
    ka.stop();
    assert_clean_log(&ka);
}

#[test]
fn ipv6_vips_on_the_vmac_are_answered_with_the_virtual_mac() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Setup {
        version: 3,
        unicast: false,
        ipv6: true,
    };
    s.prepare(&lab);
    let vip = s.vip(&lab);
    // RFC 5798 §7.3: 00-00-5E-00-02-{VRID} for IPv6.
    let vmac6 = "00:00:5e:00:02:33";
    let conf = |prio| {
        instance(
            "web",
            51,
            prio,
            "100ms",
            &[format!("{vip}/64")],
            "use_vmac = true\n",
        )
    };
    let mut lb1 = Vigild::start(&lab, dir.path(), "lb1", &conf(150));
    let lb2 = Vigild::start(&lab, dir.path(), "lb2", &conf(100));
    lb1.expect_state("web", "master", SETTLE);
    lb2.expect_state("web", "backup", SETTLE);
    let link = output(&lab, "lb1", &["ip", "-d", "link", "show", "vrrp.51"]);
    assert!(link.contains(vmac6), "{link}");
    assert!(wait_for(SETTLE, || has_addr_on(
        &lab, "lb1", "vrrp.51", &vip
    )));
    let neigh6 = |lab: &NetnsLab| {
        let _ = lab.run("client", ["ip", "-6", "neigh", "flush", "dev", "eth0"]);
        let _ = lab.run("client", ["ping", "-6", "-c", "1", "-W", "1", &vip]);
        output(lab, "client", &["ip", "-6", "neigh", "show", &vip])
    };
    assert!(
        wait_for(SETTLE, || neigh6(&lab).contains(&format!("lladdr {vmac6}"))),
        "{}",
        neigh6(&lab)
    );
    assert!(lb1.stop().success());
    lb2.expect_state("web", "master", SETTLE);
    assert!(wait_for(SETTLE, || has_addr_on(
        &lab, "lb2", "vrrp.51", &vip
    )));
    assert!(
        wait_for(SETTLE, || neigh6(&lab).contains(&format!("lladdr {vmac6}"))),
        "{}",
        neigh6(&lab)
    );
}
