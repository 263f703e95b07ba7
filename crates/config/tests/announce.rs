//! `[announce]` and `announce = true` on virtual servers (issue 16).

mod common;
use common::*;

const HEAD: &str = "[director]\nname = \"lb\"\n";

fn vs(announce: &str) -> String {
    format!(
        "[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.10:80\"\n{announce}\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"
    )
}

#[test]
fn defaults_and_every_field() {
    let l = ok(&format!(
        "{HEAD}[announce]\ntable = 100\n{}",
        vs("announce = true")
    ));
    let a = l.config.announce.as_ref().unwrap();
    assert_eq!(a.table, 100);
    assert_eq!(a.protocol, DEFAULT_ANNOUNCE_PROTOCOL);
    assert_eq!(a.protocol, 252);
    assert_eq!(a.interface, "lo");
    assert_eq!(a.withdraw_delay, secs(2));
    assert!(l.config.virtual_servers[0].announce);

    let l = ok(&format!(
        "{HEAD}[announce]\ntable = 4000\nprotocol = 99\ninterface = \"dummy0\"\nwithdraw_delay = \"500ms\"\n{}",
        vs("")
    ));
    let a = l.config.announce.as_ref().unwrap();
    assert_eq!(
        (a.table, a.protocol, a.interface.as_str(), a.withdraw_delay),
        (4000, 99, "dummy0", ms(500))
    );
    assert!(!l.config.virtual_servers[0].announce);
    // Off by default, and no section needed then.
    assert_eq!(ok(&format!("{HEAD}{}", vs(""))).config.announce, None);
    ok(&format!("{HEAD}{}", vs("announce = false")));
}

#[test]
fn announce_needs_the_section() {
    let help = assert_error(
        &format!("{HEAD}{}", vs("announce = true")),
        "t.toml:6:12: error: `virtual_server.web.announce` needs an [announce] section",
    );
    assert!(help.unwrap().contains("`table`"));
}

#[test]
fn table_is_required_and_not_the_kernels() {
    assert_error(
        &format!("{HEAD}[announce]\ninterface = \"lo\"\n"),
        "t.toml:3:1: error: missing required field `announce.table`",
    );
    for (n, name) in [
        (0, "unspec"),
        (253, "default"),
        (254, "main"),
        (255, "local"),
    ] {
        assert_error(
            &format!("{HEAD}[announce]\ntable = {n}\n"),
            &format!("t.toml:4:9: error: `announce.table`: {n} is the kernel's `{name}` table"),
        );
    }
    assert_error(
        &format!("{HEAD}[announce]\ntable = -1\n"),
        "t.toml:4:9: error: `announce.table` = -1 is out of range 0–4294967295",
    );
}

#[test]
fn protocol_is_not_someone_elses() {
    for (n, who) in [
        (2, "kernel"),
        (12, "bird"),
        (186, "bgp (FRR)"),
        (11, "zebra (FRR)"),
    ] {
        let help = assert_error(
            &format!("{HEAD}[announce]\ntable = 100\nprotocol = {n}\n"),
            &format!("t.toml:5:12: error: `announce.protocol`: {n} is the route protocol of {who}"),
        );
        assert!(help.unwrap().contains("252"));
    }
    assert_error(
        &format!("{HEAD}[announce]\ntable = 100\nprotocol = 256\n"),
        "t.toml:5:12: error: `announce.protocol` = 256 is out of range 0–255",
    );
}

#[test]
fn interface_delay_and_unknown_fields() {
    assert_errors(
        &format!(
            "{HEAD}[announce]\ntable = 100\ninterface = \"a/b\"\nwithdraw_delay = \"2m\"\ntabel = 1\n"
        ),
        &[
            "t.toml:5:13: error: `announce.interface`: \"a/b\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)",
            "t.toml:6:18: error: `announce.withdraw_delay` must be at most 1m",
            "t.toml:7:1: error: unknown field `announce.tabel`",
        ],
    );
}

#[test]
fn fwmark_services_cannot_be_announced() {
    let src = format!(
        "{HEAD}[announce]\ntable = 100\n[[virtual_server]]\nname = \"m\"\nfwmark = 7\nannounce = true\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n"
    );
    assert_error(
        &src,
        "t.toml:8:12: error: `virtual_server.m.announce` applies only to address services, not fwmark ones",
    );
}

#[test]
fn vrrp_and_bgp_mix_per_address() {
    let vrrp =
        "[vrrp.v]\ninterface = \"eth0\"\nvrid = 1\npriority = 100\nvips = [\"192.0.2.20/24\"]\n";
    // An announced service on an address no instance carries: no warning.
    let src = format!(
        "{HEAD}[announce]\ntable = 100\n{vrrp}{}",
        vs("announce = true")
    );
    assert_eq!(warnings(&src), Vec::<String>::new());
    // The same address announced and moved by VRRP: an error.
    let src = src.replace("192.0.2.20/24", "192.0.2.10/24");
    let help = assert_error(
        &src,
        "t.toml:13:12: error: virtual server \"web\" is announced over BGP, but 192.0.2.10 is a VIP of VRRP instance \"v\"",
    );
    assert!(help.unwrap().contains("either announced"));
}
