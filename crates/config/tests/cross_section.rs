//! Rules across sections: uniqueness, references, and the warnings.

mod common;
use common::*;

#[test]
fn virtual_server_names_are_unique() {
    let src = r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
[[virtual_server]]
name = "web"
address = "192.0.2.100:443"
"#;
    let help = assert_error(
        src,
        "t.toml:6:1: error: virtual server name \"web\" is used twice",
    );
    assert_eq!(help.as_deref(), Some("first defined on line 3"));
}

#[test]
fn a_name_used_twice_is_reported_even_when_one_server_has_errors() {
    // Before: only servers without errors of their own were compared.
    assert_errors(
        r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100"
[[virtual_server]]
name = "web"
address = "192.0.2.100:443"
"#,
        &[
            "t.toml:5:11: error: `virtual_server.web.address`: \"192.0.2.100\" has no port",
            "t.toml:6:1: error: virtual server name \"web\" is used twice",
        ],
    );
}

#[test]
fn virtual_services_are_unique() {
    let src = r#"[director]
name = "lb"
[[virtual_server]]
name = "a"
address = "192.0.2.100:80"
[[virtual_server]]
name = "b"
address = "192.0.2.100:80"
[[virtual_server]]
name = "c"
address = "192.0.2.100:80"
protocol = "udp"
[[virtual_server]]
name = "m1"
fwmark = 7
[[virtual_server]]
name = "m2"
fwmark = 7
[[virtual_server]]
name = "m3"
fwmark = 7
family = "ipv6"
"#;
    let d = diags(src);
    let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
    assert_eq!(
        lines,
        [
            "t.toml:8:11: error: virtual service tcp 192.0.2.100:80 is defined twice",
            "t.toml:18:10: error: virtual service fwmark 7 IPv4 is defined twice",
        ]
    );
    assert_eq!(
        d.errors().map(|e| e.help.clone()).collect::<Vec<_>>(),
        [
            Some("first defined on line 5".to_string()),
            Some("first defined on line 15".to_string())
        ]
    );
}

#[test]
fn vrids_are_unique_per_interface_and_family() {
    let src = r#"[director]
name = "lb"
[vrrp.a]
interface = "eth0"
vrid = 10
vips = ["192.0.2.1/24"]
[vrrp.b]
interface = "eth0"
vrid = 10
vips = ["192.0.2.2/24"]
"#;
    let help = assert_error(
        src,
        "t.toml:9:8: error: VRID 10 is used twice for IPv4 on interface eth0",
    );
    assert_eq!(help.as_deref(), Some("first defined on line 5"));
    // Another family or another interface may reuse it.
    ok(&src.replace("192.0.2.2/24", "2001:db8::2/64"));
    ok(&src.replace(
        "interface = \"eth0\"\nvrid = 10\nvips = [\"192.0.2.2/24\"]",
        "interface = \"eth1\"\nvrid = 10\nvips = [\"192.0.2.2/24\"]",
    ));
}

#[test]
fn a_vip_is_carried_by_one_instance() {
    let src = r#"[director]
name = "lb"
[vrrp.a]
interface = "eth0"
vrid = 1
vips = ["192.0.2.1/24"]
[vrrp.b]
interface = "eth1"
vrid = 2
vips = ["192.0.2.5/24", "192.0.2.1/32"]
"#;
    let help = assert_error(
        src,
        "t.toml:10:25: error: virtual address 192.0.2.1 is carried by two VRRP instances",
    );
    assert_eq!(help.as_deref(), Some("first defined on line 6"));
}

#[test]
fn an_excluded_vip_is_carried_by_one_instance_only() {
    let src = r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 1
vips = ["192.0.2.1/24"]
[vrrp.db]
interface = "eth0"
vrid = 2
vips = ["192.0.2.5/24"]
vips_excluded = ["192.0.2.1/32"]
"#;
    let help = assert_error(
        src,
        "t.toml:11:18: error: virtual address 192.0.2.1 is carried by two VRRP instances",
    );
    assert_eq!(help.as_deref(), Some("first defined on line 6"));
}

#[test]
fn tracked_virtual_servers_must_exist() {
    let src = r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 1
vips = ["192.0.2.100/24"]
track = [{ virtual_server = "web-htp" }, { virtual_server = "mail" }]
[[virtual_server]]
name = "web-http"
address = "192.0.2.100:80"
"#;
    assert_errors(
        src,
        &[
            "t.toml:7:29: error: `vrrp.web.track`: there is no virtual server \"web-htp\"",
            "t.toml:7:61: error: `vrrp.web.track`: there is no virtual server \"mail\"",
        ],
    );
    assert_eq!(
        help_of(
            src,
            "t.toml:7:29: error: `vrrp.web.track`: there is no virtual server \"web-htp\""
        )
        .as_deref(),
        Some("did you mean \"web-http\"?")
    );
    assert_eq!(
        help_of(
            src,
            "t.toml:7:61: error: `vrrp.web.track`: there is no virtual server \"mail\""
        ),
        None
    );
}

#[test]
fn tracking_a_broken_virtual_server_reports_only_its_own_error() {
    assert_error(
        r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 1
vips = ["192.0.2.100/24"]
track = [{ virtual_server = "web" }]
[[virtual_server]]
name = "web"
address = "192.0.2.100"
"#,
        "t.toml:10:11: error: `virtual_server.web.address`: \"192.0.2.100\" has no port",
    );
}

#[test]
fn ipvs_sync_defaults_and_fields() {
    let src = r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 51
vips = ["192.0.2.100/24"]
[ipvs_sync]
interface = "eth1"
instance = "web"
"#;
    let l = ok(src);
    // Like keepalived, the sync id defaults to the instance's VRID.
    assert_eq!(
        l.config.ipvs_sync,
        Some(IpvsSync {
            interface: "eth1".into(),
            sync_id: 51,
            instance: "web".into(),
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        })
    );
    let l = ok(&format!("{src}sync_id = 0\n"));
    assert_eq!(l.config.ipvs_sync.map(|s| s.sync_id), Some(0));
    assert_error(
        &format!("{src}sync_id = 256\n"),
        "t.toml:10:11: error: `ipvs_sync.sync_id` = 256 is out of range 0–255",
    );
    assert_error(
        &src.replace("interface = \"eth1\"", "interface = \"eth1 \""),
        "t.toml:8:13: error: `ipvs_sync.interface`: \"eth1 \" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)",
    );
    let help = assert_error(
        &format!("{src}syncid = 3\n"),
        "t.toml:10:1: error: unknown field `ipvs_sync.syncid`",
    );
    assert_eq!(help.as_deref(), Some("did you mean `sync_id`?"));
}

#[test]
fn ipvs_sync_needs_interface_and_instance() {
    assert_errors(
        "[director]\nname = \"lb\"\n[ipvs_sync]\n",
        &[
            "t.toml:3:1: error: missing required field `ipvs_sync.instance`",
            "t.toml:3:1: error: missing required field `ipvs_sync.interface`",
        ],
    );
    assert_error(
        "ipvs_sync = true\n[director]\nname = \"lb\"\n",
        "t.toml:1:13: error: `ipvs_sync` must be a table, found a boolean",
    );
}

#[test]
fn ipvs_sync_instance_must_exist() {
    let base = r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 51
vips = ["192.0.2.100/24"]
[vrrp.api]
interface = "eth0"
vrid = 52
vips = ["192.0.2.101/24"]
[ipvs_sync]
interface = "eth0"
"#;
    let help = assert_error(
        &format!("{base}instance = \"wbe\"\n"),
        "t.toml:13:12: error: `ipvs_sync.instance`: there is no VRRP instance \"wbe\"",
    );
    assert_eq!(help.as_deref(), Some("did you mean \"web\"?"));
    let help = assert_error(
        &format!("{base}instance = \"mail\"\n"),
        "t.toml:13:12: error: `ipvs_sync.instance`: there is no VRRP instance \"mail\"",
    );
    assert_eq!(help.as_deref(), Some("instances: web, api"));
    let help = assert_error(
        "[director]\nname = \"lb\"\n[ipvs_sync]\ninterface = \"eth0\"\ninstance = \"web\"\n",
        "t.toml:5:12: error: `ipvs_sync.instance`: there is no VRRP instance \"web\"",
    );
    assert_eq!(
        help.as_deref(),
        Some("the sync daemon's role follows a VRRP instance: define one under [vrrp.NAME]")
    );
}

#[test]
fn ipvs_sync_dangling_instance_is_reported_even_when_another_instance_is_broken() {
    // Before: any broken instance silenced this error.
    assert_errors(
        r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 0
vips = ["192.0.2.100/24"]
[ipvs_sync]
interface = "eth0"
instance = "wbe"
"#,
        &[
            "t.toml:5:8: error: `vrrp.web.vrid` = 0 is out of range 1–255",
            "t.toml:9:12: error: `ipvs_sync.instance`: there is no VRRP instance \"wbe\"",
        ],
    );
    // A reference to the broken instance itself is not reported twice.
    assert_error(
        r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 0
vips = ["192.0.2.100/24"]
[ipvs_sync]
interface = "eth0"
instance = "web"
"#,
        "t.toml:5:8: error: `vrrp.web.vrid` = 0 is out of range 1–255",
    );
}

#[test]
fn a_sync_group_of_one_is_a_warning() {
    let src = r#"[director]
name = "lb"
[vrrp.a]
interface = "eth0"
vrid = 1
vips = ["192.0.2.1/24"]
sync_group = "edge"
[vrrp.b]
interface = "eth0"
vrid = 2
vips = ["192.0.2.2/24"]
sync_group = "edge"
[vrrp.c]
interface = "eth0"
vrid = 3
vips = ["192.0.2.3/24"]
sync_group = "egde"
"#;
    let l = ok(src);
    assert_eq!(l.config.vrrp[0].sync_group.as_deref(), Some("edge"));
    assert_eq!(
        warnings(src),
        ["t.toml:17:14: warning: sync group \"egde\" has only one instance"]
    );
    let w = l.warnings.warnings().next().map(|w| w.help.clone());
    assert_eq!(w, Some(Some("did you mean \"edge\"?".to_string())));
    // Without a near name there is no suggestion.
    let l = ok(&src.replace("\"egde\"", "\"core\""));
    let w = l.warnings.warnings().next().map(|w| w.help.clone());
    assert_eq!(w, Some(None));
}

#[test]
fn a_service_on_an_address_no_instance_carries_is_a_warning() {
    let src = r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 1
vips = ["192.0.2.100/24"]
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
[[virtual_server]]
name = "mail"
address = "192.0.2.25:25"
[[virtual_server]]
name = "marked"
fwmark = 1
"#;
    let l = ok(src);
    assert_eq!(
        warnings(src),
        [
            "t.toml:12:11: warning: virtual server \"mail\" listens on 192.0.2.25, which no VRRP instance carries"
        ]
    );
    assert_eq!(
        l.warnings
            .warnings()
            .next()
            .and_then(|w| w.help.clone())
            .as_deref(),
        Some("add the address to an instance's `vips` so it moves with failover")
    );
    // Warnings render like errors.
    assert_eq!(
        l.warnings.to_string(),
        "t.toml:12:11: warning: virtual server \"mail\" listens on 192.0.2.25, which no VRRP instance carries\n   |\n12 | address = \"192.0.2.25:25\"\n   |           ^^^^^^^^^^^^^^^\n   = help: add the address to an instance's `vips` so it moves with failover"
    );
    // A director without VRRP (a single director) gets no such warning.
    let single = "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"mail\"\naddress = \"192.0.2.25:25\"\n";
    assert!(warnings(single).is_empty());
}

#[test]
fn warnings_do_not_make_a_file_invalid_but_accompany_errors() {
    let src = r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 1
vips = ["192.0.2.100/24"]
sync_group = "solo"
[[virtual_server]]
name = "mail"
address = "192.0.2.25:25"
quorum = -1
"#;
    let d = diags(src);
    let all: Vec<String> = d.items().iter().map(|i| d.one_line(i)).collect();
    assert_eq!(
        all,
        [
            "t.toml:7:14: warning: sync group \"solo\" has only one instance",
            "t.toml:11:10: error: `virtual_server.mail.quorum` = -1 is out of range 0–100000",
        ]
    );
    assert_eq!(d.errors().count(), 1);
    assert_eq!(d.warnings().count(), 1);
}

#[test]
fn many_errors_across_all_sections_are_reported_in_one_run_in_file_order() {
    let src = r#"[director]
name = "lb 1"

[vrrp.web]
interface = "eth0"
vrid = 300
vips = ["192.0.2.100/24"]
track = [{ virtual_server = "nope" }]

[vrrp.api]
interface = "eth0"
vrid = 52
version = 2
advert_interval = "100ms"
vips = ["192.0.2.101/24"]

[ipvs_sync]
interface = "eth0"
instance = "wbe"

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
forwarding = "dr"
check = { kind = "http", timeout = "5s" }
real_server = [{ address = "10.0.0.1:8080" }]

[[virtual_server]]
name = "web"
address = "192.0.2.100:443"
"#;
    assert_errors(
        src,
        &[
            "t.toml:2:8: error: director name \"lb 1\" is not a valid name",
            "t.toml:6:8: error: `vrrp.web.vrid` = 300 is out of range 1–255",
            "t.toml:14:19: error: `vrrp.api.advert_interval` must be a whole number of seconds from 1s to 255s for VRRP version 2",
            "t.toml:19:12: error: `ipvs_sync.instance`: there is no VRRP instance \"wbe\"",
            "t.toml:25:36: error: `virtual_server.web.check.timeout` (5s) must be shorter than the interval (2s)",
            "t.toml:26:28: error: `virtual_server.web.real_server`: 10.0.0.1:8080 has port 8080 but dr forwarding cannot change the port of the service (80)",
            "t.toml:28:1: error: virtual server name \"web\" is used twice",
        ],
    );
    let d = diags(src);
    assert_eq!(ConfigError::Invalid(d).error_count(), 7);
}
