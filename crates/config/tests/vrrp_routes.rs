//! `[vrrp.NAME]`'s `virtual_routes`, `virtual_rules`, `use_vmac`, `vmac_name` and
//! `vmac_xmit_base`.

mod common;
use common::*;

/// A director and one instance, then `extra` lines (from line 7).
fn inst(extra: &str) -> String {
    format!(
        "[director]\nname = \"lb\"\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 51\nvips = [\"192.0.2.100/24\"]\n{extra}"
    )
}

#[test]
fn routes_rules_and_vmac_are_read() {
    let l = ok(&inst(
        r#"virtual_routes = [
  { to = "10.1.0.0/16", via = "192.0.2.254", dev = "eth0", src = "192.0.2.100", table = 100, metric = 7, scope = "global", protocol = "keepalived" },
  { to = "default", via = "192.0.2.1" },
  { to = "198.51.100.0/24", type = "blackhole", table = "main" },
]
virtual_rules = [
  { from = "192.0.2.100/32", table = 100, priority = 100 },
  { to = "2001:db8::/32", iif = "eth0", oif = "eth1", fwmark = 7, fwmask = 255, action = "unreachable" },
]
use_vmac = true
"#,
    ));
    let v = &l.config.vrrp[0];
    assert_eq!(
        v.virtual_routes[0],
        VirtualRoute {
            to: IpPrefix {
                addr: ip("10.1.0.0"),
                prefix_len: 16
            },
            via: Some(ip("192.0.2.254")),
            dev: Some("eth0".into()),
            src: Some(ip("192.0.2.100")),
            table: 100,
            metric: Some(7),
            scope: Some(0),
            protocol: 18,
            kind: RouteKind::Unicast,
        }
    );
    assert_eq!(v.virtual_routes[1].to.to_string(), "0.0.0.0/0");
    assert_eq!(v.virtual_routes[1].table, 254);
    assert_eq!(v.virtual_routes[1].protocol, 4);
    assert_eq!(v.virtual_routes[2].kind, RouteKind::Blackhole);
    assert_eq!(v.virtual_rules[0].action, RuleAction::Table(100));
    assert_eq!(v.virtual_rules[0].family, AddressFamily::Ipv4);
    assert_eq!(v.virtual_rules[1].family, AddressFamily::Ipv6);
    assert_eq!(v.virtual_rules[1].action, RuleAction::Unreachable);
    assert_eq!(v.virtual_rules[1].fwmask, Some(255));
    // keepalived's default name.
    assert_eq!(
        v.vmac,
        Some(Vmac {
            name: "vrrp.51".into(),
            xmit_base: false
        })
    );
    let l = ok(&inst(
        "use_vmac = true\nvmac_name = \"vm51\"\nvmac_xmit_base = true\n",
    ));
    assert_eq!(
        l.config.vrrp[0].vmac,
        Some(Vmac {
            name: "vm51".into(),
            xmit_base: true
        })
    );
    let l = ok(&inst(""));
    assert_eq!(l.config.vrrp[0].vmac, None);
    assert!(l.config.vrrp[0].virtual_routes.is_empty());
}

#[test]
fn bad_routes_are_named_with_their_place() {
    assert_error(
        &inst("virtual_routes = [{ to = \"10.1.2.3/16\", dev = \"eth0\" }]\n"),
        "t.toml:7:26: error: `vrrp.web.virtual_routes[0].to`: 10.1.2.3/16 has host bits set",
    );
    assert_error(
        &inst("virtual_routes = [{ to = \"10.1.0.0/16\" }]\n"),
        "t.toml:7:19: error: `vrrp.web.virtual_routes[0]`: a route to 10.1.0.0/16 needs `via` or `dev`",
    );
    assert_error(
        &inst("virtual_routes = [{ to = \"10.1.0.0/16\", via = \"2001:db8::1\" }]\n"),
        "t.toml:7:47: error: `vrrp.web.virtual_routes[0].via`: 2001:db8::1 is not IPv4 like `to` (10.1.0.0/16)",
    );
    assert_error(
        &inst(
            "virtual_routes = [{ to = \"10.1.0.0/16\", dev = \"eth0\", type = \"blackhole\" }]\n",
        ),
        "t.toml:7:62: error: `vrrp.web.virtual_routes[0].type`: a route that drops packets has no `via` or `dev`",
    );
    assert_error(
        &inst("virtual_routes = [{ to = \"10.1.0.0/16\", dev = \"eth0\", table = 0 }]\n"),
        "t.toml:7:63: error: `vrrp.web.virtual_routes[0].table` = 0 is out of range 1–4294967295",
    );
    assert_error(
        &inst(
            "virtual_routes = [{ to = \"10.1.0.0/16\", dev = \"eth0\", gateway = \"10.0.0.1\" }]\n",
        ),
        "t.toml:7:55: error: unknown field `vrrp.web.virtual_routes[0].gateway`",
    );
}

#[test]
fn bad_rules_are_named_with_their_place() {
    assert_error(
        &inst("virtual_rules = [{ from = \"192.0.2.100/32\" }]\n"),
        "t.toml:7:18: error: `vrrp.web.virtual_rules[0]`: the rule needs a `table` to look packets up in",
    );
    assert_error(
        &inst(
            "virtual_rules = [{ from = \"192.0.2.100/32\", table = 5, action = \"blackhole\" }]\n",
        ),
        "t.toml:7:53: error: `vrrp.web.virtual_rules[0].table`: a rule with action \"blackhole\" looks up no table",
    );
    assert_error(
        &inst("virtual_rules = [{ fwmask = 255, table = 5 }]\n"),
        "t.toml:7:29: error: `vrrp.web.virtual_rules[0].fwmask` needs `fwmark`",
    );
    assert_error(
        &inst("virtual_rules = [{ from = \"192.0.2.0/24\", to = \"2001:db8::/32\", table = 5 }]\n"),
        "t.toml:7:48: error: `vrrp.web.virtual_rules[0].to`: 2001:db8::/32 is not IPv4 like `from` (192.0.2.0/24)",
    );
}

#[test]
fn vmac_keys_need_use_vmac_and_distinct_names() {
    assert_error(
        &inst("vmac_name = \"vm51\"\n"),
        "t.toml:7:13: error: `vrrp.web.vmac_name` needs `use_vmac = true`",
    );
    assert_error(
        &inst("use_vmac = true\nvmac_name = \"a/b\"\n"),
        "t.toml:8:13: error: `vrrp.web.vmac_name`: \"a/b\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)",
    );
    // IPv4 and IPv6 instances of one VRID share keepalived's default name.
    let two = "[director]\nname = \"lb\"\n[vrrp.a]\ninterface = \"eth0\"\nvrid = 51\nvips = [\"192.0.2.100/24\"]\nuse_vmac = true\n[vrrp.b]\ninterface = \"eth0\"\nvrid = 51\nvips = [\"2001:db8::100/64\"]\nuse_vmac = true\n";
    assert_error(
        two,
        "t.toml:12:12: error: virtual MAC interface vrrp.51 is used by two VRRP instances (set `vmac_name`)",
    );
}
