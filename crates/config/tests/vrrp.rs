//! `[vrrp.NAME]`: VRRP instances.

mod common;
use common::*;

/// A director and one instance with the required fields, then `extra` lines (from line 6).
fn inst(extra: &str) -> String {
    format!(
        "[director]\nname = \"lb\"\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 51\n{extra}{}",
        if extra.contains("vips") {
            ""
        } else {
            "vips = [\"192.0.2.100/24\"]\n"
        }
    )
}

#[test]
fn defaults() {
    let l = ok(&inst(""));
    let v = &l.config.vrrp[0];
    assert_eq!(v.name, "web");
    assert_eq!(v.interface, "eth0");
    assert_eq!(v.vrid, 51);
    assert_eq!(v.priority, 100);
    assert_eq!(v.version, VrrpVersion::V3);
    assert_eq!(v.advert_interval, secs(1));
    assert!(v.preempt);
    assert_eq!(v.preempt_delay, secs(0));
    assert!(!v.accept);
    assert!(v.unicast_peers.is_empty());
    assert_eq!(v.unicast_source, None);
    assert!(v.allowed_peers.is_empty());
    assert!(!v.unicast_accept_any_ttl);
    assert_eq!(v.learned_interval_factor, 3);
    assert_eq!(
        v.vips,
        [IpPrefix {
            addr: ip("192.0.2.100"),
            prefix_len: 24
        }]
    );
    assert_eq!(v.family, AddressFamily::Ipv4);
    assert_eq!(v.auth_password, None);
    assert_eq!(
        v.garp,
        Garp {
            repeat: 5,
            interval: ms(10),
            refresh: None
        }
    );
    assert!(v.track.is_empty());
    assert_eq!(v.hooks.notify, None);
    assert_eq!(v.sync_group, None);
    assert!(l.warnings.is_empty());
}

#[test]
fn every_field_is_read() {
    let l = ok(&inst(
        r#"priority = 255
version = 2
advert_interval = "3s"
preempt = false
preempt_delay = "1m"
accept = true
vips = ["192.0.2.100/24", "192.0.2.101/32"]
unicast_peers = ["192.0.2.3", "192.0.2.4"]
unicast_source = "192.0.2.2"
auth_password = "secret"
garp_repeat = 100
garp_interval = "1s"
garp_refresh = "30s"
notify = ["/usr/local/bin/notify", "web"]
"#,
    ));
    let v = &l.config.vrrp[0];
    assert_eq!(v.priority, 255);
    assert_eq!(v.version, VrrpVersion::V2);
    assert_eq!(v.advert_interval, secs(3));
    assert!(!v.preempt);
    assert_eq!(v.preempt_delay, secs(60));
    assert!(v.accept);
    assert_eq!(v.vips.len(), 2);
    assert_eq!(v.unicast_peers, [ip("192.0.2.3"), ip("192.0.2.4")]);
    assert_eq!(v.unicast_source, Some(ip("192.0.2.2")));
    assert_eq!(v.auth_password.as_deref(), Some("secret"));
    assert_eq!(
        v.garp,
        Garp {
            repeat: 100,
            interval: secs(1),
            refresh: Some(secs(30))
        }
    );
    assert_eq!(
        v.hooks.notify,
        Some(vec!["/usr/local/bin/notify".to_string(), "web".to_string()])
    );
}

#[test]
fn instances_keep_file_order_and_lookup_by_name() {
    let l = ok(r#"[director]
name = "lb"
[vrrp.zeta]
interface = "eth0"
vrid = 2
vips = ["192.0.2.2/24"]
[vrrp.alpha]
interface = "eth0"
vrid = 1
vips = ["192.0.2.1/24"]
"#);
    let names: Vec<&str> = l.config.vrrp.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["zeta", "alpha"]);
    assert_eq!(l.config.vrrp_instance("alpha").map(|v| v.vrid), Some(1));
    assert!(l.config.vrrp_instance("beta").is_none());
}

#[test]
fn vrrp_must_be_a_table_of_tables() {
    assert_error(
        "vrrp = 1\n[director]\nname = \"lb\"\n",
        "t.toml:1:8: error: `vrrp` must be a table, found an integer",
    );
    assert_error(
        "[director]\nname = \"lb\"\n[vrrp]\nweb = \"eth0\"\n",
        "t.toml:4:7: error: `vrrp.web` must be a table, found a string",
    );
}

#[test]
fn instance_names_are_plain() {
    let src = "[director]\nname = \"lb\"\n[vrrp.\"web 1\"]\ninterface = \"eth0\"\n";
    let help = assert_error(
        src,
        "t.toml:3:7: error: VRRP instance name \"web 1\" is not a valid name",
    );
    assert_eq!(
        help.as_deref(),
        Some("use 1 to 64 letters, digits, '-', '_' or '.'")
    );
}

#[test]
fn required_fields_are_reported_at_the_header() {
    assert_errors(
        "[director]\nname = \"lb\"\n\n[vrrp.web]\npriority = 10\n",
        &[
            "t.toml:4:1: error: missing required field `vrrp.web.interface`",
            "t.toml:4:1: error: missing required field `vrrp.web.vips`",
            "t.toml:4:1: error: missing required field `vrrp.web.vrid`",
        ],
    );
}

#[test]
fn interface_names_follow_ifnamsiz() {
    for (name, col) in [
        ("eth0:1", 13),
        ("a/b", 13),
        ("a b", 13),
        ("", 13),
        (".", 13),
        ("..", 13),
        ("sixteen-chars-xx", 13),
    ] {
        let src = format!(
            "[director]\nname = \"lb\"\n[vrrp.web]\ninterface = \"{name}\"\nvrid = 1\nvips = [\"192.0.2.1/24\"]\n"
        );
        assert_error(
            &src,
            &format!(
                "t.toml:4:{col}: error: `vrrp.web.interface`: \"{name}\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)"
            ),
        );
    }
    let src = "[director]\nname = \"lb\"\n[vrrp.web]\ninterface = \"fifteen-chars-x\"\nvrid = 1\nvips = [\"192.0.2.1/24\"]\n";
    ok(src);
}

#[test]
fn vrid_is_1_to_255() {
    let src = "[director]\nname = \"lb\"\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 300\nvips = [\"192.0.2.1/24\"]\n";
    assert_error(
        src,
        "t.toml:5:8: error: `vrrp.web.vrid` = 300 is out of range 1–255",
    );
    let src = src.replace("300", "0");
    assert_error(
        &src,
        "t.toml:5:8: error: `vrrp.web.vrid` = 0 is out of range 1–255",
    );
    ok(&src.replace("vrid = 0", "vrid = 255"));
    ok(&src.replace("vrid = 0", "vrid = 0xff"));
    ok(&src.replace("vrid = 0", "vrid = 1_0"));
    assert_error(
        &src.replace("vrid = 0", "vrid = \"51\""),
        "t.toml:5:8: error: `vrrp.web.vrid` must be an integer, found a string",
    );
    assert_error(
        &src.replace("vrid = 0", "vrid = 5.0"),
        "t.toml:5:8: error: `vrrp.web.vrid` must be an integer, found a float",
    );
    assert_error(
        &src.replace("vrid = 0", "vrid = 99999999999999999999"),
        "t.toml:5:8: error: `vrrp.web.vrid` = 99999999999999999999 is out of range 1–255",
    );
}

#[test]
fn priority_is_1_to_255() {
    assert_error(
        &inst("priority = 0\n"),
        "t.toml:6:12: error: `vrrp.web.priority` = 0 is out of range 1–255",
    );
    assert_error(
        &inst("priority = 256\n"),
        "t.toml:6:12: error: `vrrp.web.priority` = 256 is out of range 1–255",
    );
    assert_error(
        &inst("priority = -1\n"),
        "t.toml:6:12: error: `vrrp.web.priority` = -1 is out of range 1–255",
    );
    assert_eq!(ok(&inst("priority = 1\n")).config.vrrp[0].priority, 1);
}

#[test]
fn version_is_2_or_3() {
    assert_error(
        &inst("version = 4\n"),
        "t.toml:6:11: error: `vrrp.web.version` = 4 is out of range 2–3",
    );
    assert_eq!(
        ok(&inst("version = 3\n")).config.vrrp[0].version,
        VrrpVersion::V3
    );
}

#[test]
fn an_invalid_version_does_not_cause_version_rules_to_fire() {
    // Before: the bad version fell back to 3 and auth_password was reported as v2-only.
    assert_error(
        &inst("version = 4\nauth_password = \"pw\"\nadvert_interval = \"5ms\"\n"),
        "t.toml:6:11: error: `vrrp.web.version` = 4 is out of range 2–3",
    );
}

#[test]
fn v3_advert_interval_is_centiseconds_from_10ms_to_40_95s() {
    for good in ["10ms", "100ms", "1s", "40.95s", "1.5s"] {
        let l = ok(&inst(&format!("advert_interval = \"{good}\"\n")));
        assert_eq!(
            l.config.vrrp[0].advert_interval,
            parse_duration(good).unwrap()
        );
    }
    for bad in ["5ms", "15ms", "41s", "0s", "1m"] {
        let help = assert_error(
            &inst(&format!("advert_interval = \"{bad}\"\n")),
            "t.toml:6:19: error: `vrrp.web.advert_interval` must be a multiple of 10ms from 10ms to 40.95s for VRRP version 3",
        );
        assert_eq!(
            help.as_deref(),
            Some("RFC 5798 carries the interval in centiseconds (12 bits)")
        );
    }
}

#[test]
fn v2_advert_interval_is_whole_seconds_from_1s_to_255s() {
    for good in ["1s", "255s", "2m"] {
        ok(&inst(&format!(
            "version = 2\nadvert_interval = \"{good}\"\n"
        )));
    }
    for bad in ["100ms", "1.5s", "0s", "256s"] {
        let help = assert_error(
            &inst(&format!("version = 2\nadvert_interval = \"{bad}\"\n")),
            "t.toml:7:19: error: `vrrp.web.advert_interval` must be a whole number of seconds from 1s to 255s for VRRP version 2",
        );
        assert_eq!(
            help.as_deref(),
            Some(
                "VRRPv2 (RFC 3768) counts the advert interval in seconds; use version = 3 for sub-second adverts"
            )
        );
    }
}

#[test]
fn durations_are_strings_with_units() {
    let src = inst("advert_interval = 1\n");
    let help = assert_error(
        &src,
        "t.toml:6:19: error: `vrrp.web.advert_interval` must be a duration string, found an integer",
    );
    assert_eq!(
        help.as_deref(),
        Some("durations carry a unit: write \"500ms\", \"2s\" or \"1m\"")
    );
    let help = assert_error(
        &inst("advert_interval = 1.5\n"),
        "t.toml:6:19: error: `vrrp.web.advert_interval` must be a duration string, found a float",
    );
    assert!(help.is_some());
    let help = assert_error(
        &inst("advert_interval = true\n"),
        "t.toml:6:19: error: `vrrp.web.advert_interval` must be a duration string, found a boolean",
    );
    assert_eq!(help, None);

    let cases = [
        ("\"\"", "empty duration"),
        ("\"1\"", "\"1\" has a number without a unit"),
        (
            "\"1sec\"",
            "\"1sec\" has an unknown unit \"sec\" (use ms, s, m or h)",
        ),
        ("\"1 s\"", "\"1 s\" is not a duration"),
        ("\"-1s\"", "\"-1s\" is not a duration"),
        (
            "\"0.0000001s\"",
            "\"0.0000001s\" is finer than a microsecond",
        ),
        (
            "\"99999999999999999999999h\"",
            "\"99999999999999999999999h\" is too long",
        ),
    ];
    for (text, why) in cases {
        let help = assert_error(
            &inst(&format!("advert_interval = {text}\n")),
            &format!("t.toml:6:19: error: `vrrp.web.advert_interval`: {why}"),
        );
        assert_eq!(
            help.as_deref(),
            Some("write a number and a unit: \"250ms\", \"2s\", \"1m30s\", \"1h\"")
        );
    }
}

#[test]
fn preempt_and_accept_are_booleans() {
    assert_error(
        &inst("preempt = \"no\"\n"),
        "t.toml:6:11: error: `vrrp.web.preempt` must be true or false, found a string",
    );
    assert_error(
        &inst("accept = 1\n"),
        "t.toml:6:10: error: `vrrp.web.accept` must be true or false, found an integer",
    );
}

#[test]
fn preempt_delay_is_at_most_1000s() {
    assert_eq!(
        ok(&inst("preempt_delay = \"1000s\"\n")).config.vrrp[0].preempt_delay,
        secs(1000)
    );
    assert_error(
        &inst("preempt_delay = \"1001s\"\n"),
        "t.toml:6:17: error: `vrrp.web.preempt_delay` must be at most 1000s",
    );
}

#[test]
fn vips_must_be_a_non_empty_array() {
    assert_error(
        &inst("vips = []\n"),
        "t.toml:6:8: error: `vrrp.web.vips` is empty: an instance needs at least one virtual address",
    );
    assert_error(
        &inst("vips = \"192.0.2.1/24\"\n"),
        "t.toml:6:8: error: `vrrp.web.vips` must be an array, found a string",
    );
    assert_error(
        &inst("vips = [24]\n"),
        "t.toml:6:9: error: `vrrp.web.vips[0]` must be a string, found an integer",
    );
}

#[test]
fn vips_are_address_and_prefix() {
    let src = inst(
        "vips = [\"192.0.2.1\", \"web/24\", \"192.0.2.1/33\", \"2001:db8::1/129\", \"192.0.2.1/x\"]\n",
    );
    assert_errors(
        &src,
        &[
            "t.toml:6:9: error: `vrrp.web.vips[0]`: \"192.0.2.1\" has no prefix length",
            "t.toml:6:22: error: `vrrp.web.vips[1]`: \"web/24\" is not an IP address",
            "t.toml:6:32: error: `vrrp.web.vips[2]`: \"192.0.2.1/33\" has a prefix length outside 0–32",
            "t.toml:6:48: error: `vrrp.web.vips[3]`: \"2001:db8::1/129\" has a prefix length outside 0–128",
            "t.toml:6:67: error: `vrrp.web.vips[4]`: \"192.0.2.1/x\" has a prefix length outside 0–32",
        ],
    );
    assert_eq!(
        help_of(
            &src,
            "t.toml:6:9: error: `vrrp.web.vips[0]`: \"192.0.2.1\" has no prefix length"
        )
        .as_deref(),
        Some("write ADDRESS/PREFIX, e.g. \"192.0.2.100/24\" or \"2001:db8::100/64\"")
    );
}

#[test]
fn vips_must_be_unicast_host_addresses() {
    let src = inst(
        "vips = [\"192.0.2.0/24\", \"192.0.2.255/24\", \"224.0.0.18/32\", \"0.0.0.0/0\", \"127.0.0.2/8\", \"255.255.255.255/32\"]\n",
    );
    assert_errors(
        &src,
        &[
            "t.toml:6:9: error: `vrrp.web.vips[0]`: 192.0.2.0/24 is the network address of 192.0.2.0/24",
            "t.toml:6:25: error: `vrrp.web.vips[1]`: 192.0.2.255/24 is the broadcast address of 192.0.2.0/24",
            "t.toml:6:43: error: `vrrp.web.vips[2]`: 224.0.0.18/32 is a multicast address",
            "t.toml:6:60: error: `vrrp.web.vips[3]`: 0.0.0.0/0 is the unspecified address",
            "t.toml:6:73: error: `vrrp.web.vips[4]`: 127.0.0.2/8 is a loopback address",
            "t.toml:6:88: error: `vrrp.web.vips[5]`: 255.255.255.255/32 is the limited broadcast address",
        ],
    );
    assert_eq!(
        help_of(
            &src,
            "t.toml:6:43: error: `vrrp.web.vips[2]`: 224.0.0.18/32 is a multicast address"
        )
        .as_deref(),
        Some(
            "a virtual address must be a unicast host address of its subnet, e.g. \"192.0.2.100/24\""
        )
    );
    assert_errors(
        &inst("vips = [\"2001:db8::/64\", \"ff02::12/128\", \"::1/128\"]\n"),
        &[
            "t.toml:6:9: error: `vrrp.web.vips[0]`: 2001:db8::/64 is the subnet-router anycast address of 2001:db8::/64",
            "t.toml:6:26: error: `vrrp.web.vips[1]`: ff02::12/128 is a multicast address",
            "t.toml:6:42: error: `vrrp.web.vips[2]`: ::1/128 is a loopback address",
        ],
    );
    // Point-to-point and host prefixes have no network or broadcast address; the
    // boundaries of the subnet are fine.
    ok(&inst(
        "vips = [\"192.0.2.0/31\", \"192.0.2.1/31\", \"192.0.2.255/32\", \"10.0.0.1/8\", \"10.255.255.254/8\"]\n",
    ));
    ok(&inst(
        "vips = [\"2001:db8::/128\", \"2001:db8:1::/127\", \"2001:db8::1/64\", \"fe80::1/64\"]\n",
    ));
}

#[test]
fn a_vip_listed_twice_in_one_instance_says_so() {
    // Before: reported as "carried by two VRRP instances".
    assert_error(
        &inst("vips = [\"192.0.2.1/24\", \"192.0.2.1/32\"]\n"),
        "t.toml:6:25: error: `vrrp.web.vips[1]`: 192.0.2.1 is listed twice",
    );
}

#[test]
fn family_comes_from_the_vips_and_is_one_per_instance() {
    let l = ok(&inst("vips = [\"2001:db8::10/64\", \"2001:db8::11/64\"]\n"));
    assert_eq!(l.config.vrrp[0].family, AddressFamily::Ipv6);
    let src = inst("vips = [\"192.0.2.1/24\", \"2001:db8::1/64\"]\n");
    let help = assert_error(
        &src,
        "t.toml:6:25: error: `vrrp.web.vips`: 2001:db8::1/64 is IPv6 but the first virtual address is IPv4",
    );
    assert_eq!(
        help.as_deref(),
        Some(
            "one VRRP instance carries one address family (RFC 5798 §5.2.9); make a second instance for the other family"
        )
    );
}

#[test]
fn v2_cannot_carry_ipv6() {
    let src = inst("version = 2\nvips = [\"2001:db8::1/64\"]\n");
    let help = assert_error(
        &src,
        "t.toml:7:9: error: `vrrp.web.vips`: 2001:db8::1/64 is IPv6, which VRRP version 2 cannot carry",
    );
    assert_eq!(help.as_deref(), Some("use version = 3 for IPv6 (RFC 5798)"));
}

/// `n` distinct addresses of 10.0.0.0/16 as a TOML array body.
fn many(n: usize) -> String {
    (0..n)
        .map(|i| format!("\"10.0.{}.{}/16\"", i / 250, i % 250 + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn an_advert_lists_at_most_255_addresses() {
    // RFC 5798 §5.2.5 / RFC 3768 §5.3.5: Count IPvX Addr is one byte.
    ok(&inst(&format!("vips = [{}]\n", many(255))));
    let src = inst(&format!("vips = [{}]\n", many(256)));
    let help = assert_error(
        &src,
        "t.toml:6:8: error: `vrrp.web.vips`: instance \"web\" advertises 256 addresses, more than the 255 an advert can list",
    );
    assert_eq!(
        help.as_deref(),
        Some(
            "the advert's address count is one byte (RFC 5798 §5.2.5, RFC 3768 §5.3.5); move the rest to `vips_excluded` or another instance"
        )
    );
    // Excluded addresses are not advertised, so they do not count.
    let l = ok(&inst(&format!(
        "vips = [\"192.0.2.1/24\"]\nvips_excluded = [{}]\n",
        many(300)
    )));
    assert_eq!(l.config.vrrp[0].vips_excluded.len(), 300);
}

#[test]
fn vips_excluded_are_read_like_vips() {
    let l = ok(&inst(
        "vips = [\"192.0.2.1/24\"]\nvips_excluded = [\"192.0.2.2/24\", \"198.51.100.1/32\"]\n",
    ));
    let v = &l.config.vrrp[0];
    assert_eq!(v.vips.len(), 1);
    assert_eq!(
        v.vips_excluded
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>(),
        ["192.0.2.2/24", "198.51.100.1/32"]
    );
    assert!(ok(&inst("")).config.vrrp[0].vips_excluded.is_empty());
    ok(&inst("vips = [\"192.0.2.1/24\"]\nvips_excluded = []\n"));
    assert_errors(
        &inst(
            "vips = [\"192.0.2.1/24\"]\nvips_excluded = [\"192.0.2.1/32\", \"192.0.2.0/24\", \"192.0.2.9/24\", \"192.0.2.9/24\", \"2001:db8::1/64\"]\n",
        ),
        &[
            "t.toml:7:18: error: `vrrp.web.vips_excluded[0]`: 192.0.2.1 is also in `vips`",
            "t.toml:7:34: error: `vrrp.web.vips_excluded[1]`: 192.0.2.0/24 is the network address of 192.0.2.0/24",
            "t.toml:7:66: error: `vrrp.web.vips_excluded[3]`: 192.0.2.9 is listed twice",
            "t.toml:7:82: error: `vrrp.web.vips_excluded`: 2001:db8::1/64 is IPv6 but the first virtual address is IPv4",
        ],
    );
    assert_error(
        &inst("vips = [\"192.0.2.1/24\"]\nvips_excluded = \"192.0.2.2/24\"\n"),
        "t.toml:7:17: error: `vrrp.web.vips_excluded` must be an array, found a string",
    );
}

#[test]
fn unicast_peers_match_the_family_and_are_distinct() {
    assert_errors(
        &inst("unicast_peers = [\"192.0.2.3\", \"2001:db8::3\", \"192.0.2.3\", \"peer\"]\n"),
        &[
            "t.toml:6:31: error: `vrrp.web.unicast_peers[1]`: peer 2001:db8::3 is not IPv4 like the instance's virtual addresses",
            "t.toml:6:46: error: `vrrp.web.unicast_peers[2]`: peer 192.0.2.3 is listed twice",
            "t.toml:6:59: error: `vrrp.web.unicast_peers[3]`: \"peer\" is not an IP address",
        ],
    );
    let src = inst("unicast_peers = [\"peer\"]\n");
    assert_eq!(
        help_of(
            &src,
            "t.toml:6:18: error: `vrrp.web.unicast_peers[0]`: \"peer\" is not an IP address"
        )
        .as_deref(),
        Some("for example \"192.0.2.1\"")
    );
    assert_error(
        &inst("unicast_peers = \"192.0.2.3\"\n"),
        "t.toml:6:17: error: `vrrp.web.unicast_peers` must be an array, found a string",
    );
}

#[test]
fn advert_guards_are_read() {
    let l = ok(&inst(
        "allowed_peers = [\"192.0.2.3\", \"192.0.2.4\"]\nlearned_interval_factor = 1\n",
    ));
    let v = &l.config.vrrp[0];
    assert_eq!(v.allowed_peers, [ip("192.0.2.3"), ip("192.0.2.4")]);
    assert_eq!(v.learned_interval_factor, 1);
    let l = ok(&inst(
        "unicast_peers = [\"192.0.2.3\"]\nunicast_accept_any_ttl = true\n",
    ));
    assert!(l.config.vrrp[0].unicast_accept_any_ttl);
}

#[test]
fn allowed_peers_are_multicast_only_distinct_and_of_the_family() {
    assert_errors(
        &inst("allowed_peers = [\"192.0.2.3\", \"2001:db8::3\", \"192.0.2.3\", \"peer\"]\n"),
        &[
            "t.toml:6:31: error: `vrrp.web.allowed_peers[1]`: peer 2001:db8::3 is not IPv4 like the instance's virtual addresses",
            "t.toml:6:46: error: `vrrp.web.allowed_peers[2]`: peer 192.0.2.3 is listed twice",
            "t.toml:6:59: error: `vrrp.web.allowed_peers[3]`: \"peer\" is not an IP address",
        ],
    );
    let help = assert_error(
        &inst("allowed_peers = []\n"),
        "t.toml:6:17: error: `vrrp.web.allowed_peers` is empty",
    );
    assert!(help.is_some_and(|h| h.contains("remove the field")));
    let help = assert_error(
        &inst("unicast_peers = [\"192.0.2.3\"]\nallowed_peers = [\"192.0.2.3\"]\n"),
        "t.toml:7:17: error: `vrrp.web.allowed_peers` is for multicast mode",
    );
    assert!(help.is_some_and(|h| h.contains("unicast_peers")));
}

#[test]
fn the_ttl_waiver_needs_unicast_peers() {
    // RFC 5798 §7.1: multicast adverts must have TTL 255.
    let help = assert_error(
        &inst("unicast_accept_any_ttl = true\n"),
        "t.toml:6:26: error: `vrrp.web.unicast_accept_any_ttl` needs `unicast_peers`",
    );
    assert!(help.is_some_and(|h| h.contains("TTL 255")));
    // Saying false (the default) is always fine.
    ok(&inst("unicast_accept_any_ttl = false\n"));
    assert_error(
        &inst("unicast_peers = [\"192.0.2.3\"]\nunicast_accept_any_ttl = 1\n"),
        "t.toml:7:26: error: `vrrp.web.unicast_accept_any_ttl` must be true or false, found an integer",
    );
}

#[test]
fn learned_interval_factor_is_v3_only_and_bounded() {
    assert_error(
        &inst("learned_interval_factor = 0\n"),
        "t.toml:6:27: error: `vrrp.web.learned_interval_factor` = 0 is out of range 1–100",
    );
    let help = assert_error(
        &inst("version = 2\nlearned_interval_factor = 2\n"),
        "t.toml:7:27: error: `vrrp.web.learned_interval_factor` is only for VRRP version 3",
    );
    assert!(help.is_some_and(|h| h.contains("RFC 3768 §7.1")));
}

#[test]
fn unicast_source_matches_the_family() {
    assert_error(
        &inst("unicast_source = \"2001:db8::2\"\n"),
        "t.toml:6:18: error: `vrrp.web.unicast_source`: 2001:db8::2 is not IPv4 like the instance's virtual addresses",
    );
    assert_error(
        &inst("unicast_source = \"eth0\"\n"),
        "t.toml:6:18: error: `vrrp.web.unicast_source`: \"eth0\" is not an IP address",
    );
}

#[test]
fn auth_password_is_v2_only_and_1_to_8_bytes() {
    let help = assert_error(
        &inst("auth_password = \"pw\"\n"),
        "t.toml:6:17: error: `vrrp.web.auth_password` is only for VRRP version 2",
    );
    assert_eq!(
        help.as_deref(),
        Some("RFC 5798 removed authentication from VRRPv3")
    );
    assert_error(
        &inst("version = 2\nauth_password = \"123456789\"\n"),
        "t.toml:7:17: error: `vrrp.web.auth_password` must be 1 to 8 bytes (RFC 3768 §5.3.6.1)",
    );
    assert_error(
        &inst("version = 2\nauth_password = \"\"\n"),
        "t.toml:7:17: error: `vrrp.web.auth_password` must be 1 to 8 bytes (RFC 3768 §5.3.6.1)",
    );
    let l = ok(&inst("version = 2\nauth_password = \"12345678\"\n"));
    assert_eq!(l.config.vrrp[0].auth_password.as_deref(), Some("12345678"));
}

#[test]
fn garp_ranges() {
    assert_error(
        &inst("garp_repeat = 0\n"),
        "t.toml:6:15: error: `vrrp.web.garp_repeat` = 0 is out of range 1–100",
    );
    assert_error(
        &inst("garp_repeat = 101\n"),
        "t.toml:6:15: error: `vrrp.web.garp_repeat` = 101 is out of range 1–100",
    );
    assert_error(
        &inst("garp_interval = \"1.5s\"\n"),
        "t.toml:6:17: error: `vrrp.web.garp_interval` must be at most 1s",
    );
    assert_eq!(
        ok(&inst("garp_interval = \"0s\"\n")).config.vrrp[0]
            .garp
            .interval,
        secs(0)
    );
    assert_error(
        &inst("garp_refresh = \"500ms\"\n"),
        "t.toml:6:16: error: `vrrp.web.garp_refresh` must be at least 1s (or \"0s\" for off)",
    );
    assert_eq!(
        ok(&inst("garp_refresh = \"0s\"\n")).config.vrrp[0]
            .garp
            .refresh,
        None
    );
    assert_eq!(
        ok(&inst("garp_refresh = \"1s\"\n")).config.vrrp[0]
            .garp
            .refresh,
        Some(secs(1))
    );
}

#[test]
fn notify_is_an_absolute_program_with_arguments() {
    let help = assert_error(
        &inst("notify = \"/bin/notify web\"\n"),
        "t.toml:6:10: error: `vrrp.web.notify` must be an array, found a string",
    );
    assert_eq!(help, None);
    let help = assert_error(
        &inst("notify = [\"notify.sh\", \"web\"]\n"),
        "t.toml:6:10: error: `vrrp.web.notify`: program \"notify.sh\" must be an absolute path",
    );
    assert_eq!(
        help.as_deref(),
        Some(
            "programs are run directly, never through a shell or $PATH, e.g. [\"/usr/local/bin/notify\", \"arg\"]"
        )
    );
    assert_error(
        &inst("notify = []\n"),
        "t.toml:6:10: error: `vrrp.web.notify` is empty: give the program and its arguments",
    );
    assert_error(
        &inst("notify = [\"/bin/notify\", 3]\n"),
        "t.toml:6:26: error: `vrrp.web.notify[1]` must be a string, found an integer",
    );
}

#[test]
fn sync_group_names_are_plain() {
    assert_error(
        &inst("sync_group = \"edge group\"\n"),
        "t.toml:6:14: error: sync group name \"edge group\" is not a valid name",
    );
}

#[test]
fn unknown_instance_fields_suggest_the_closest() {
    let src = inst("priorty = 10\n");
    let help = assert_error(&src, "t.toml:6:1: error: unknown field `vrrp.web.priorty`");
    assert_eq!(help.as_deref(), Some("did you mean `priority`?"));
    let src = inst("virtual_router_id = 10\n");
    let help = assert_error(
        &src,
        "t.toml:6:1: error: unknown field `vrrp.web.virtual_router_id`",
    );
    assert_eq!(
        help.as_deref(),
        Some("vigil calls keepalived's virtual_router_id `vrid`")
    );
}

#[test]
fn track_defaults() {
    let l = ok(r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 51
vips = ["192.0.2.100/24"]
track = [
  { virtual_server = "web" },
  { interface = "eth1", weight = -20 },
  { exec = ["/usr/bin/check", "x"] },
  { exec = ["/usr/bin/check"], interval = "10s", timeout = "3s", user = "vigil", weight = 254 },
  { exec = ["/usr/bin/check"], interval = "5s" },
]
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
"#);
    let t = &l.config.vrrp[0].track;
    assert_eq!(
        t[0],
        Track {
            target: TrackTarget::VirtualServer("web".into()),
            weight: 0,
            reverse: false
        }
    );
    assert_eq!(
        t[1],
        Track {
            target: TrackTarget::Interface("eth1".into()),
            weight: -20,
            reverse: false
        }
    );
    assert_eq!(
        t[2],
        Track {
            target: TrackTarget::Exec {
                command: vec!["/usr/bin/check".into(), "x".into()],
                interval: secs(2),
                timeout: secs(1),
                user: "nobody".into(),
                rise: 1,
                fall: 1,
                init_fail: false
            },
            weight: 0,
            reverse: false
        }
    );
    assert_eq!(
        t[3].target,
        TrackTarget::Exec {
            command: vec!["/usr/bin/check".into()],
            interval: secs(10),
            timeout: secs(3),
            user: "vigil".into(),
            rise: 1,
            fall: 1,
            init_fail: false
        }
    );
    assert_eq!(t[3].weight, 254);
    // The timeout defaults to half the interval.
    assert!(matches!(
        &t[4].target,
        TrackTarget::Exec { timeout, .. } if *timeout == ms(2500)
    ));
}

#[test]
fn track_names_exactly_one_target() {
    let src =
        inst("track = [{ weight = -10 }, { interface = \"eth1\", virtual_server = \"web\" }]\n");
    assert_errors(
        &src,
        &[
            "t.toml:6:10: error: `vrrp.web.track[0]` must name exactly one of `virtual_server`, `interface`, `exec`, `file` or `process`",
            "t.toml:6:28: error: `vrrp.web.track[1]` must name exactly one of `virtual_server`, `interface`, `exec`, `file` or `process`",
        ],
    );
    assert_eq!(
        help_of(&src, "t.toml:6:10: error: `vrrp.web.track[0]` must name exactly one of `virtual_server`, `interface`, `exec`, `file` or `process`").as_deref(),
        Some("e.g. { virtual_server = \"web\", weight = -50 } or { interface = \"eth1\" }")
    );
    assert_error(
        &inst("track = [\"web\"]\n"),
        "t.toml:6:10: error: `vrrp.web.track[0]` must be a table, found a string",
    );
    assert_error(
        &inst("track = { interface = \"eth1\" }\n"),
        "t.toml:6:9: error: `vrrp.web.track` must be an array, found a table",
    );
}

#[test]
fn track_weight_is_within_254() {
    assert_error(
        &inst("track = [{ interface = \"eth1\", weight = -255 }]\n"),
        "t.toml:6:41: error: `vrrp.web.track[0].weight` = -255 is out of range -254–254",
    );
    assert_error(
        &inst("track = [{ interface = \"eth1\", weight = 255 }]\n"),
        "t.toml:6:41: error: `vrrp.web.track[0].weight` = 255 is out of range -254–254",
    );
}

#[test]
fn exec_options_apply_only_to_exec_tracking() {
    assert_errors(
        &inst(
            "track = [{ interface = \"eth1\", interval = \"1s\", timeout = \"1s\", user = \"u\" }]\n",
        ),
        &[
            "t.toml:6:43: error: `vrrp.web.track[0].interval` applies only to `exec` and `process` tracking",
            "t.toml:6:59: error: `vrrp.web.track[0].timeout` applies only to `exec` tracking",
            "t.toml:6:72: error: `vrrp.web.track[0].user` applies only to `exec` tracking",
        ],
    );
}

#[test]
fn track_interface_and_exec_are_checked() {
    assert_error(
        &inst("track = [{ interface = \"eth1:0\" }]\n"),
        "t.toml:6:24: error: `vrrp.web.track[0].interface`: \"eth1:0\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)",
    );
    assert_error(
        &inst("track = [{ exec = [\"check-uplink\"] }]\n"),
        "t.toml:6:19: error: `vrrp.web.track[0].exec`: program \"check-uplink\" must be an absolute path",
    );
    assert_error(
        &inst("track = [{ exec = [] }]\n"),
        "t.toml:6:19: error: `vrrp.web.track[0].exec` is empty: give the program and its arguments",
    );
}

#[test]
fn track_exec_timeout_is_shorter_than_its_interval() {
    assert_error(
        &inst("track = [{ exec = [\"/c\"], interval = \"2s\", timeout = \"2s\" }]\n"),
        "t.toml:6:54: error: `vrrp.web.track[0].timeout` must be above zero and shorter than the interval (2s)",
    );
    assert_error(
        &inst("track = [{ exec = [\"/c\"], timeout = \"0s\" }]\n"),
        "t.toml:6:37: error: `vrrp.web.track[0].timeout` must be above zero and shorter than the interval (2s)",
    );
}

#[test]
fn track_exec_interval_is_10ms_to_1h() {
    // Before: "0s" was accepted, with a zero timeout: the program would run in a loop.
    assert_error(
        &inst("track = [{ exec = [\"/c\"], interval = \"0s\" }]\n"),
        "t.toml:6:38: error: `vrrp.web.track[0].interval` must be from 10ms to 1h",
    );
    assert_error(
        &inst("track = [{ exec = [\"/c\"], interval = \"2h\" }]\n"),
        "t.toml:6:38: error: `vrrp.web.track[0].interval` must be from 10ms to 1h",
    );
}

#[test]
fn unknown_track_fields_suggest_the_closest() {
    let src = inst("track = [{ interface = \"eth1\", wieght = 3 }]\n");
    let help = assert_error(
        &src,
        "t.toml:6:32: error: unknown field `vrrp.web.track[0].wieght`",
    );
    assert_eq!(help.as_deref(), Some("did you mean `weight`?"));
}

#[test]
fn all_instance_errors_are_reported_together() {
    assert_errors(
        r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 0
priority = 300
advert_interval = "1"
vips = ["192.0.2.1"]
garp_repeat = 0
[vrrp.api]
interface = "eth 1"
vrid = 2
vips = ["192.0.2.2/24"]
"#,
        &[
            "t.toml:5:8: error: `vrrp.web.vrid` = 0 is out of range 1–255",
            "t.toml:6:12: error: `vrrp.web.priority` = 300 is out of range 1–255",
            "t.toml:7:19: error: `vrrp.web.advert_interval`: \"1\" has a number without a unit",
            "t.toml:8:9: error: `vrrp.web.vips[0]`: \"192.0.2.1\" has no prefix length",
            "t.toml:9:15: error: `vrrp.web.garp_repeat` = 0 is out of range 1–100",
            "t.toml:11:13: error: `vrrp.api.interface`: \"eth 1\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)",
        ],
    );
}

#[test]
fn keepalived_notify_family_is_read() {
    let src = inst(
        "notify = [\"/n\"]\nnotify_args = \"keepalived\"\nnotify_master = [\"/m\", \"a\"]\nnotify_backup = [\"/b\"]\nnotify_fault = [\"/f\"]\nnotify_stop = [\"/s\"]\nsync_group = \"g\"\nvips = [\"192.0.2.100/24\"]\n[sync_group.g]\nnotify = [\"/gn\"]\nnotify_args = \"keepalived\"\nnotify_master = [\"/gm\"]\n",
    );
    let config = ok(&src).config;
    let h = &config.vrrp[0].hooks;
    assert_eq!(h.notify_args, NotifyArgs::Keepalived);
    assert_eq!(
        h.notify_master,
        Some(vec!["/m".to_string(), "a".to_string()])
    );
    assert_eq!(h.notify_stop, Some(vec!["/s".to_string()]));
    assert_eq!(config.sync_groups.len(), 1);
    assert_eq!(config.sync_groups[0].name, "g");
    assert_eq!(
        config.sync_groups[0].hooks.notify_args,
        NotifyArgs::Keepalived
    );
    assert_eq!(
        config.sync_groups[0].hooks.notify_master,
        Some(vec!["/gm".to_string()])
    );
    // The default stays vigil's own convention.
    assert_eq!(
        ok(&inst("")).config.vrrp[0].hooks.notify_args,
        NotifyArgs::Vigil
    );
}

#[test]
fn exec_tracking_reads_rise_fall_init_fail_and_reverse() {
    let l = ok(&inst(
        "track = [{ exec = [\"/bin/true\"], rise = 3, fall = 2, init_fail = true, weight = 20, reverse = true }]\n",
    ));
    let t = &l.config.vrrp[0].track[0];
    assert!(t.reverse);
    assert_eq!(t.weight, 20);
    assert!(matches!(
        t.target,
        TrackTarget::Exec {
            rise: 3,
            fall: 2,
            init_fail: true,
            ..
        }
    ));
    assert_errors(
        &inst("track = [{ exec = [\"/bin/true\"], rise = 0, fall = 1001 }]\n"),
        &[
            "t.toml:6:41: error: `vrrp.web.track[0].rise` = 0 is out of range 1–1000",
            "t.toml:6:51: error: `vrrp.web.track[0].fall` = 1001 is out of range 1–1000",
        ],
    );
    assert_errors(
        &inst("track = [{ interface = \"eth1\", rise = 2, init_fail = true }]\n"),
        &[
            "t.toml:6:39: error: `vrrp.web.track[0].rise` applies only to `exec` tracking",
            "t.toml:6:54: error: `vrrp.web.track[0].init_fail` applies only to `exec` tracking",
        ],
    );
}

#[test]
fn keepalived_notify_family_errors_name_the_field() {
    assert_error(
        &inst("notify_args = \"upper\"\n"),
        "t.toml:6:15: error: `vrrp.web.notify_args`: unknown value \"upper\"",
    );
    assert_error(
        &inst("notify_master = [\"master.sh\"]\n"),
        "t.toml:6:17: error: `vrrp.web.notify_master`: program \"master.sh\" must be an absolute path",
    );
    assert_error(
        &inst("vips = [\"192.0.2.100/24\"]\n[sync_group.g]\nnotify_stop = []\n"),
        "t.toml:8:15: error: `sync_group.g.notify_stop` is empty: give the program and its arguments",
    );
    assert_error(
        &inst("vips = [\"192.0.2.100/24\"]\n[sync_group.g]\nnotify = [\"/n\"]\n"),
        "t.toml:7:13: error: sync group \"g\" has no members",
    );
    assert_error(
        &inst(
            "sync_group = \"g\"\nvips = [\"192.0.2.100/24\"]\n[sync_group.g]\nnotfy = [\"/n\"]\n",
        ),
        "t.toml:9:1: error: unknown field `sync_group.g.notfy`",
    );
    assert_error(
        "[director]\nname = \"lb\"\nvrrp_notify_fifo = \"notify.fifo\"\n",
        "t.toml:3:20: error: `director.vrrp_notify_fifo`: \"notify.fifo\" must be an absolute path",
    );
}

#[test]
fn file_tracking_reads_an_absolute_path() {
    let l = ok(&inst(
        "track = [{ file = \"/run/vigil/prio\", weight = 10 }, { file = \"/run/x\", reverse = true }]\n",
    ));
    let t = &l.config.vrrp[0].track;
    assert_eq!(
        t[0],
        Track {
            target: TrackTarget::File("/run/vigil/prio".into()),
            weight: 10,
            reverse: false
        }
    );
    assert_eq!(t[1].weight, 0);
    assert!(t[1].reverse);
    assert_error(
        &inst("track = [{ file = \"prio\" }]\n"),
        "t.toml:6:19: error: `vrrp.web.track[0].file`: \"prio\" must be an absolute path",
    );
    assert_error(
        &inst("track = [{ file = \"/run/p\", quorum = 2 }]\n"),
        "t.toml:6:38: error: `vrrp.web.track[0].quorum` applies only to `process` tracking",
    );
}

#[test]
fn process_tracking_reads_keepalived_options() {
    let l = ok(&inst(
        "track = [{ process = [\"haproxy\"] }, { process = [\"/usr/sbin/app\", \"-f\"], param_match = \"initial\", quorum = 2, quorum_max = 4, delay = \"1500ms\", interval = \"200ms\", weight = -30 }, { process = [\"x\"], fork_delay = \"1s\", full_command = true }]\n",
    ));
    let t = &l.config.vrrp[0].track;
    assert_eq!(
        t[0].target,
        TrackTarget::Process(ProcessTrack {
            command: vec!["haproxy".into()],
            full_command: false,
            param_match: None,
            quorum: 1,
            quorum_max: None,
            fork_delay: secs(0),
            terminate_delay: secs(0),
            interval: secs(1),
        })
    );
    assert_eq!(
        t[1].target,
        TrackTarget::Process(ProcessTrack {
            command: vec!["/usr/sbin/app".into(), "-f".into()],
            full_command: true,
            param_match: Some(ParamMatch::Initial),
            quorum: 2,
            quorum_max: Some(4),
            fork_delay: ms(1500),
            terminate_delay: ms(1500),
            interval: ms(200),
        })
    );
    assert!(matches!(
        &t[2].target,
        TrackTarget::Process(p) if p.full_command && p.fork_delay == secs(1) && p.terminate_delay == secs(0)
    ));
    // Arguments alone mean exactly these arguments (keepalived).
    let l = ok(&inst("track = [{ process = [\"/bin/app\", \"-d\"] }]\n"));
    assert!(matches!(
        &l.config.vrrp[0].track[0].target,
        TrackTarget::Process(p) if p.full_command && p.param_match == Some(ParamMatch::Exact)
    ));
}

#[test]
fn process_tracking_errors_name_the_field() {
    assert_error(
        &inst("track = [{ process = [\"a\"], quorum = 3, quorum_max = 2 }]\n"),
        "t.toml:6:54: error: `vrrp.web.track[0].quorum_max` (2) is below `quorum` (3): the process could never be up",
    );
    assert_error(
        &inst("track = [{ process = [\"a\"], delay = \"1s\", fork_delay = \"2s\" }]\n"),
        "t.toml:6:37: error: `vrrp.web.track[0].delay` sets both `fork_delay` and `terminate_delay`: give it or them, not both",
    );
    assert_error(
        &inst("track = [{ process = [] }]\n"),
        "t.toml:6:22: error: `vrrp.web.track[0].process` is empty: give the process name and any arguments to match",
    );
    assert_error(
        &inst("track = [{ process = [\"a\"], interval = \"10ms\" }]\n"),
        "t.toml:6:40: error: `vrrp.web.track[0].interval` must be from 100ms to 1h",
    );
    assert_error(
        &inst("track = [{ process = [\"a\"], param_match = \"fuzzy\" }]\n"),
        "t.toml:6:43: error: `vrrp.web.track[0].param_match`: unknown value \"fuzzy\"",
    );
    assert_error(
        &inst("track = [{ interface = \"eth1\", full_command = true }]\n"),
        "t.toml:6:47: error: `vrrp.web.track[0].full_command` applies only to `process` tracking",
    );
}
