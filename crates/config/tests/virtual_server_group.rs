//! A virtual server's group form (`addresses`, `fwmarks`): keepalived's
//! `virtual_server_group`.

mod common;
use common::*;

/// A director and one virtual server `web` whose lines 5 on are `body`.
fn group(body: &str) -> String {
    format!("[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\n{body}")
}

fn tcp(s: &str) -> ServiceKey {
    ServiceKey::Address {
        protocol: Protocol::Tcp,
        address: sa(s),
    }
}

#[test]
fn addresses_ranges_and_fwmarks_expand_to_services() {
    let l = ok(&group(
        "addresses = [\"192.0.2.10:80\", \"192.0.2.20-22:80\"]\nfwmarks = [5, 6]\ncheck = { kind = \"tcp\" }\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2:8080\" }]\n",
    ));
    let v = &l.config.virtual_servers[0];
    assert_eq!(v.key, tcp("192.0.2.10:80"));
    let fw = |mark| ServiceKey::Fwmark {
        mark,
        family: AddressFamily::Ipv4,
    };
    assert_eq!(
        v.group,
        [
            tcp("192.0.2.20:80"),
            tcp("192.0.2.21:80"),
            tcp("192.0.2.22:80"),
            fw(5),
            fw(6)
        ]
    );
    assert_eq!(v.keys().count(), 6);
    // One set of real servers (a bare IP takes the addresses' common port), one check each.
    assert_eq!(v.real_servers[0].address, sa("10.0.0.1:80"));
    assert_eq!(v.real_servers[0].checks.len(), 1);
    assert_eq!(l.config.real_server_count(), 2);
}

#[test]
fn protocol_and_family_apply_to_the_group() {
    let l = ok(&group(
        "addresses = [\"[2001:db8::fe-100]:53\"]\nprotocol = \"udp\"\nfwmarks = [53]\n",
    ));
    let v = &l.config.virtual_servers[0];
    assert_eq!(
        v.key,
        ServiceKey::Address {
            protocol: Protocol::Udp,
            address: sa("[2001:db8::fe]:53")
        }
    );
    assert_eq!(v.group.len(), 3);
    // The marks take the addresses' family.
    assert_eq!(
        v.group[2],
        ServiceKey::Fwmark {
            mark: 53,
            family: AddressFamily::Ipv6
        }
    );
    let marks = ok(&group("fwmarks = [1, 2]\nfamily = \"ipv6\"\n"));
    let v = &marks.config.virtual_servers[0];
    assert_eq!(
        v.key,
        ServiceKey::Fwmark {
            mark: 1,
            family: AddressFamily::Ipv6
        }
    );
}

#[test]
fn a_single_service_has_no_group() {
    let l = ok(&group("address = \"192.0.2.1:80\"\n"));
    assert!(l.config.virtual_servers[0].group.is_empty());
    assert_eq!(l.config.virtual_servers[0].keys().count(), 1);
}

#[test]
fn bad_ranges_and_entries_are_reported_at_the_entry() {
    assert_error(
        &group("addresses = [\"192.0.2.1:80\", \"192.0.2.20-10:80\"]\n"),
        "t.toml:5:30: error: `virtual_server.web.addresses[1]`: \"192.0.2.20-10:80\" is not a range: its end 10 is not above its start 20",
    );
    assert_error(
        &group("addresses = [\"192.0.2.20-300:80\"]\n"),
        "t.toml:5:14: error: `virtual_server.web.addresses[0]`: \"192.0.2.20-300:80\" is not a range: its end \"300\" must be the last byte, 0 to 255",
    );
    assert_error(
        &group("addresses = [\"192.0.2.1\"]\n"),
        "t.toml:5:14: error: `virtual_server.web.addresses[0]`: \"192.0.2.1\" is not an address with a port",
    );
    assert_error(
        &group("fwmarks = [0]\n"),
        "t.toml:5:12: error: `virtual_server.web.fwmarks[0]` = 0 is out of range 1–4294967295",
    );
}

#[test]
fn the_single_and_the_group_form_do_not_mix() {
    assert_error(
        &group("address = \"192.0.2.1:80\"\naddresses = [\"192.0.2.2:80\"]\n"),
        "t.toml:5:11: error: `virtual_server.web` has both `address` and `addresses`/`fwmarks`: give one form",
    );
    assert_error(
        &group("addresses = []\n"),
        "t.toml:3:1: error: `virtual_server.web` has empty `addresses` and `fwmarks`: give at least one",
    );
}

#[test]
fn one_family_per_group() {
    assert_error(
        &group("addresses = [\"192.0.2.1:80\", \"[2001:db8::1]:80\"]\n"),
        "t.toml:5:30: error: `virtual_server.web.addresses[1]`: [2001:db8::1]:80 is IPv6 but the group's first address is IPv4",
    );
    assert_error(
        &group("addresses = [\"192.0.2.1:80\"]\nfwmarks = [1]\nfamily = \"ipv6\"\n"),
        "t.toml:7:10: error: `virtual_server.web.family` is IPv6 but the group's addresses are IPv4",
    );
}

#[test]
fn too_many_services() {
    let ranges: Vec<String> = (0..5).map(|b| format!("\"10.0.{b}.0-255:80\"")).collect();
    assert_error(
        &group(&format!("addresses = [{}]\n", ranges.join(", "))),
        "t.toml:3:1: error: `virtual_server.web` expands to 1280 IPVS services: at most 1024",
    );
}

#[test]
fn a_service_is_in_one_virtual_server_once() {
    // Within the group: a range covering a listed address.
    assert_error(
        &group("addresses = [\"192.0.2.21:80\", \"192.0.2.20-22:80\"]\n"),
        "t.toml:5:31: error: virtual service tcp 192.0.2.21:80 is defined twice",
    );
    // Across virtual servers, either way round.
    let src = group(
        "addresses = [\"192.0.2.20-22:80\"]\n[[virtual_server]]\nname = \"other\"\naddress = \"192.0.2.22:80\"\n",
    );
    assert_error(
        &src,
        "t.toml:8:11: error: virtual service tcp 192.0.2.22:80 is defined twice",
    );
    assert_eq!(
        help_of(
            &src,
            "t.toml:8:11: error: virtual service tcp 192.0.2.22:80 is defined twice"
        )
        .as_deref(),
        Some("first defined on line 5")
    );
    let src = "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"m\"\nfwmark = 7\n[[virtual_server]]\nname = \"g\"\nfwmarks = [6, 7]\n";
    assert_error(
        src,
        "t.toml:8:15: error: virtual service fwmark 7 IPv4 is defined twice",
    );
}

#[test]
fn real_servers_need_a_port_when_the_addresses_differ_and_dr_holds_for_every_service() {
    assert_error(
        &group(
            "addresses = [\"192.0.2.1:80\", \"192.0.2.2:8080\"]\nreal_server = [{ address = \"10.0.0.1\" }]\n",
        ),
        "t.toml:6:28: error: `virtual_server.web.real_server[0].address`: \"10.0.0.1\" has no port",
    );
    assert_error(
        &group(
            "addresses = [\"192.0.2.1:80\", \"192.0.2.2:8080\"]\nforwarding = \"dr\"\nreal_server = [{ address = \"10.0.0.1:80\" }]\n",
        ),
        "t.toml:7:28: error: `virtual_server.web.real_server`: 10.0.0.1:80 has port 80 but dr forwarding cannot change the port of the service (8080)",
    );
    // A real server on one of the group's own addresses.
    assert_error(
        &group("addresses = [\"192.0.2.1-2:80\"]\nreal_server = [{ address = \"192.0.2.2\" }]\n"),
        "t.toml:6:28: error: `virtual_server.web.real_server`: 192.0.2.2:80 is on the service's own address 192.0.2.2",
    );
}

#[test]
fn addresses_no_vrrp_instance_carries_are_one_warning() {
    let src = "[director]\nname = \"lb\"\n[vrrp.v]\ninterface = \"eth0\"\nvrid = 1\nvips = [\"192.0.2.1/24\"]\n[[virtual_server]]\nname = \"web\"\naddresses = [\"192.0.2.1:80\", \"192.0.2.2-4:80\"]\n";
    assert_eq!(
        warnings(src),
        [
            "t.toml:9:30: warning: virtual server \"web\" listens on 192.0.2.2 (and 2 more of its addresses), which no VRRP instance carries"
        ]
    );
}
