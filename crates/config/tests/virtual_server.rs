//! `[[virtual_server]]` and its real servers (checks are in checks.rs).

mod common;
use common::*;

/// A director and one virtual server named `web` on 192.0.2.100:80 (line 3 is the
/// header), then `extra` lines from line 6.
fn vs(extra: &str) -> String {
    format!(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\n{extra}"
    )
}

#[test]
fn defaults() {
    let l = ok(&vs("real_server = [{ address = \"10.0.0.1\" }]\n"));
    let v = &l.config.virtual_servers[0];
    assert_eq!(v.name, "web");
    assert_eq!(
        v.key,
        ServiceKey::Address {
            protocol: Protocol::Tcp,
            address: sa("192.0.2.100:80")
        }
    );
    assert_eq!(v.scheduler, "wlc");
    assert!(v.scheduler_flags.is_empty());
    assert_eq!(v.forwarding, Forwarding::Nat);
    assert_eq!(v.persistence, None);
    assert_eq!(v.quorum, 1);
    assert_eq!(v.hysteresis, 0);
    assert_eq!(v.sorry_server, None);
    assert!(!v.inhibit_on_failure);
    let rs = &v.real_servers[0];
    // A bare IP takes the service's port.
    assert_eq!(rs.address, sa("10.0.0.1:80"));
    assert_eq!(rs.weight, 1);
    assert_eq!(rs.forwarding, Forwarding::Nat);
    assert_eq!(rs.upper_threshold, None);
    assert_eq!(rs.lower_threshold, None);
    assert_eq!(rs.checks, []);
    assert_eq!(l.config.real_server_count(), 1);
    assert_eq!(
        l.config.virtual_server("web").map(|v| v.key.to_string()),
        Some("tcp 192.0.2.100:80".to_string())
    );
}

#[test]
fn every_field_is_read() {
    let l = ok(&vs(r#"protocol = "udp"
scheduler = "sh"
scheduler_flags = ["fallback", "port"]
forwarding = "nat"
persistence = "5m"
persistence_prefix = 24
quorum = 2
hysteresis = 1
sorry_server = "10.0.0.9:8080"
inhibit_on_failure = true
real_server = [
  { address = "10.0.0.1:8080", weight = 0, upper_threshold = 100, lower_threshold = 50 },
  { address = "[2001:db8::1]:80", forwarding = "tunnel" },
]
"#));
    let v = &l.config.virtual_servers[0];
    assert_eq!(
        v.key,
        ServiceKey::Address {
            protocol: Protocol::Udp,
            address: sa("192.0.2.100:80")
        }
    );
    assert_eq!(v.scheduler, "sh");
    assert_eq!(
        v.scheduler_flags,
        [SchedulerFlag::Fallback, SchedulerFlag::Port]
    );
    assert_eq!(
        v.persistence,
        Some(Persistence {
            timeout: secs(300),
            prefix_len: 24
        })
    );
    assert_eq!((v.quorum, v.hysteresis), (2, 1));
    assert_eq!(v.sorry_server, Some(sa("10.0.0.9:8080")));
    assert!(v.inhibit_on_failure);
    let rs = &v.real_servers;
    assert_eq!(rs[0].address, sa("10.0.0.1:8080"));
    assert_eq!(rs[0].weight, 0);
    assert_eq!(
        (rs[0].upper_threshold, rs[0].lower_threshold),
        (Some(100), Some(50))
    );
    assert_eq!(rs[1].forwarding, Forwarding::Tunnel);
}

#[test]
fn array_of_tables_syntax_works_too() {
    let l = ok(r#"[director]
name = "lb"

[[virtual_server]]
name = "web"
address = "192.0.2.100:80"

[virtual_server.check]
kind = "tcp"

[[virtual_server.real_server]]
address = "10.0.0.1"

[[virtual_server.real_server]]
address = "10.0.0.2"
weight = 5
"#);
    let v = &l.config.virtual_servers[0];
    assert_eq!(v.real_servers.len(), 2);
    assert_eq!(v.real_servers[1].weight, 5);
    assert!(v.real_servers.iter().all(|r| !r.checks.is_empty()));
}

#[test]
fn choices_are_case_insensitive() {
    let l = ok(&vs(
        "protocol = \"SCTP\"\nscheduler = \"RR\"\nforwarding = \"DR\"\n",
    ));
    let v = &l.config.virtual_servers[0];
    assert!(matches!(
        v.key,
        ServiceKey::Address {
            protocol: Protocol::Sctp,
            ..
        }
    ));
    assert_eq!(v.scheduler, "rr");
    assert_eq!(v.forwarding, Forwarding::Dr);
}

#[test]
fn every_linux_scheduler_is_accepted() {
    for s in SCHEDULERS {
        let l = ok(&vs(&format!("scheduler = \"{s}\"\n")));
        assert_eq!(l.config.virtual_servers[0].scheduler, *s);
    }
}

#[test]
fn virtual_server_must_be_an_array_of_tables() {
    assert_error(
        "[director]\nname = \"lb\"\n[virtual_server]\nname = \"web\"\n",
        "t.toml:3:1: error: `virtual_server` must be an array, found a table",
    );
    assert_error(
        "virtual_server = [1]\n[director]\nname = \"lb\"\n",
        "t.toml:1:19: error: `virtual_server[0]` must be a table, found an integer",
    );
}

#[test]
fn name_is_required_and_plain() {
    assert_error(
        "[director]\nname = \"lb\"\n[[virtual_server]]\naddress = \"192.0.2.100:80\"\n",
        "t.toml:3:1: error: missing required field `virtual_server[0].name`",
    );
    let help = assert_error(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web server\"\naddress = \"192.0.2.100:80\"\n",
        "t.toml:4:8: error: virtual server name \"web server\" is not a valid name",
    );
    assert_eq!(
        help.as_deref(),
        Some("use 1 to 64 letters, digits, '-', '_' or '.'")
    );
}

#[test]
fn needs_address_or_fwmark() {
    let src = "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\n";
    let help = assert_error(
        src,
        "t.toml:3:1: error: `virtual_server.web` needs `address` (IP:PORT) or `fwmark`",
    );
    assert_eq!(help.as_deref(), Some("e.g. address = \"192.0.2.100:80\""));
    assert_error(
        &vs("fwmark = 1\n"),
        "t.toml:5:11: error: `virtual_server.web` has both `address` and `fwmark`: give one",
    );
}

#[test]
fn address_needs_ip_and_port() {
    let base = "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = ";
    let help = assert_error(
        &format!("{base}\"192.0.2.100\"\n"),
        "t.toml:5:11: error: `virtual_server.web.address`: \"192.0.2.100\" has no port",
    );
    assert_eq!(
        help.as_deref(),
        Some("write IP:PORT, e.g. \"192.0.2.100:80\" or \"[2001:db8::100]:80\"")
    );
    assert_error(
        &format!("{base}\"192.0.2.100:0\"\n"),
        "t.toml:5:11: error: `virtual_server.web.address`: port 0 is not a valid port",
    );
    assert_error(
        &format!("{base}\"2001:db8::1:80\"\n"),
        "t.toml:5:11: error: `virtual_server.web.address`: \"2001:db8::1:80\" has no port",
    );
    assert_error(
        &format!("{base}\"www:80\"\n"),
        "t.toml:5:11: error: `virtual_server.web.address`: \"www:80\" is not an address with a port",
    );
    let l = ok(&format!("{base}\"[2001:db8::1]:80\"\n"));
    assert_eq!(
        l.config.virtual_servers[0].key.family(),
        AddressFamily::Ipv6
    );
}

#[test]
fn protocol_is_tcp_udp_or_sctp() {
    let help = assert_error(
        &vs("protocol = \"icmp\"\n"),
        "t.toml:6:12: error: `virtual_server.web.protocol`: unknown value \"icmp\"",
    );
    assert_eq!(help.as_deref(), Some("one of: tcp, udp, sctp"));
    let help = assert_error(
        &vs("protocol = \"upd\"\n"),
        "t.toml:6:12: error: `virtual_server.web.protocol`: unknown value \"upd\"",
    );
    assert_eq!(
        help.as_deref(),
        Some("did you mean \"udp\"? (one of: tcp, udp, sctp)")
    );
}

#[test]
fn family_applies_only_to_fwmark() {
    let help = assert_error(
        &vs("family = \"ipv4\"\n"),
        "t.toml:6:10: error: `virtual_server.web.family` applies only to fwmark services",
    );
    assert_eq!(
        help.as_deref(),
        Some("an address service takes its family from `address`")
    );
}

#[test]
fn fwmark_services() {
    let base = "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"dns\"\n";
    let l = ok(&format!(
        "{base}fwmark = 53\nreal_server = [{{ address = \"10.0.0.1:53\" }}]\n"
    ));
    let v = &l.config.virtual_servers[0];
    assert_eq!(
        v.key,
        ServiceKey::Fwmark {
            mark: 53,
            family: AddressFamily::Ipv4
        }
    );
    assert_eq!(v.key.to_string(), "fwmark 53 IPv4");
    let l = ok(&format!("{base}fwmark = 4294967295\nfamily = \"ipv6\"\n"));
    assert_eq!(
        l.config.virtual_servers[0].key,
        ServiceKey::Fwmark {
            mark: u32::MAX,
            family: AddressFamily::Ipv6
        }
    );
    assert_error(
        &format!("{base}fwmark = 0\n"),
        "t.toml:5:10: error: `virtual_server.dns.fwmark` = 0 is out of range 1–4294967295",
    );
    let help = assert_error(
        &format!("{base}fwmark = 1\nprotocol = \"udp\"\n"),
        "t.toml:6:12: error: `virtual_server.dns.protocol` does not apply to fwmark services",
    );
    assert_eq!(
        help.as_deref(),
        Some("a fwmark service matches whatever the firewall marked; the mark decides")
    );
    let help = assert_error(
        &format!("{base}fwmark = 1\nfamily = \"inet6\"\n"),
        "t.toml:6:10: error: `virtual_server.dns.family`: unknown value \"inet6\"",
    );
    assert_eq!(help.as_deref(), Some("one of: ipv4, ipv6"));
    // Real servers of a fwmark service have no service port to inherit.
    assert_error(
        &format!("{base}fwmark = 1\nreal_server = [{{ address = \"10.0.0.1\" }}]\n"),
        "t.toml:6:28: error: `virtual_server.dns.real_server[0].address`: \"10.0.0.1\" has no port",
    );
    // ... and may use any port, even with DR.
    ok(&format!(
        "{base}fwmark = 1\nforwarding = \"dr\"\nreal_server = [{{ address = \"10.0.0.1:53\" }}, {{ address = \"10.0.0.2:5353\" }}]\n"
    ));
}

#[test]
fn scheduler_must_be_known() {
    let help = assert_error(
        &vs("scheduler = \"roundrobin\"\n"),
        "t.toml:6:13: error: `virtual_server.web.scheduler`: unknown value \"roundrobin\"",
    );
    assert_eq!(
        help.as_deref(),
        Some("one of: rr, wrr, lc, wlc, lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos")
    );
    let help = assert_error(
        &vs("scheduler = \"wrrr\"\n"),
        "t.toml:6:13: error: `virtual_server.web.scheduler`: unknown value \"wrrr\"",
    );
    assert!(help.unwrap().starts_with("did you mean \"wrr\"?"));
}

#[test]
fn scheduler_flags_belong_to_sh_and_mh() {
    assert_error(
        &vs("scheduler = \"wrr\"\nscheduler_flags = [\"port\"]\n"),
        "t.toml:7:19: error: `virtual_server.web.scheduler_flags` apply only to the sh and mh schedulers, not wrr",
    );
    // The default scheduler is wlc.
    assert_error(
        &vs("scheduler_flags = [\"port\"]\n"),
        "t.toml:6:19: error: `virtual_server.web.scheduler_flags` apply only to the sh and mh schedulers, not wlc",
    );
    let help = assert_error(
        &vs("scheduler = \"mh\"\nscheduler_flags = [\"fallback\", \"prot\"]\n"),
        "t.toml:7:32: error: `virtual_server.web.scheduler_flags[1]`: unknown value \"prot\"",
    );
    assert_eq!(
        help.as_deref(),
        Some("did you mean \"port\"? (one of: fallback, port)")
    );
}

#[test]
fn an_unknown_scheduler_does_not_make_its_flags_wrong_too() {
    // Before: the flags were also reported, against the default scheduler wlc.
    assert_error(
        &vs("scheduler = \"mhh\"\nscheduler_flags = [\"port\"]\n"),
        "t.toml:6:13: error: `virtual_server.web.scheduler`: unknown value \"mhh\"",
    );
}

#[test]
fn forwarding_is_nat_dr_or_tunnel() {
    let help = assert_error(
        &vs("forwarding = \"masq\"\n"),
        "t.toml:6:14: error: `virtual_server.web.forwarding`: unknown value \"masq\"",
    );
    assert_eq!(help.as_deref(), Some("one of: nat, dr, tunnel"));
}

#[test]
fn persistence_is_whole_seconds() {
    let l = ok(&vs("persistence = \"300s\"\n"));
    assert_eq!(
        l.config.virtual_servers[0].persistence,
        Some(Persistence {
            timeout: secs(300),
            prefix_len: 32
        })
    );
    for bad in ["1.5s", "0s", "500ms"] {
        assert_error(
            &vs(&format!("persistence = \"{bad}\"\n")),
            "t.toml:6:15: error: `virtual_server.web.persistence` must be a whole number of seconds, at least 1s",
        );
    }
    assert_error(
        &vs("persistence = 300\n"),
        "t.toml:6:15: error: `virtual_server.web.persistence` must be a duration string, found an integer",
    );
}

#[test]
fn persistence_prefix_fits_the_family_and_needs_persistence() {
    assert_error(
        &vs("persistence = \"60s\"\npersistence_prefix = 33\n"),
        "t.toml:7:22: error: `virtual_server.web.persistence_prefix` must be at most 32 for an IPv4 service",
    );
    assert_error(
        &vs("persistence = \"60s\"\npersistence_prefix = 129\n"),
        "t.toml:7:22: error: `virtual_server.web.persistence_prefix` = 129 is out of range 0–128",
    );
    assert_error(
        &vs("persistence_prefix = 24\n"),
        "t.toml:6:22: error: `virtual_server.web.persistence_prefix` needs `persistence` (the timeout) as well",
    );
    let l = ok(r#"[director]
name = "lb"
[[virtual_server]]
name = "web6"
address = "[2001:db8::100]:80"
persistence = "60s"
"#);
    assert_eq!(
        l.config.virtual_servers[0].persistence,
        Some(Persistence {
            timeout: secs(60),
            prefix_len: 128
        })
    );
    let l = ok(r#"[director]
name = "lb"
[[virtual_server]]
name = "web6"
address = "[2001:db8::100]:80"
persistence = "60s"
persistence_prefix = 64
"#);
    assert_eq!(
        l.config.virtual_servers[0]
            .persistence
            .map(|p| p.prefix_len),
        Some(64)
    );
}

#[test]
fn quorum_and_hysteresis_ranges() {
    assert_error(
        &vs("quorum = 100001\n"),
        "t.toml:6:10: error: `virtual_server.web.quorum` = 100001 is out of range 0–100000",
    );
    assert_error(
        &vs("hysteresis = -1\n"),
        "t.toml:6:14: error: `virtual_server.web.hysteresis` = -1 is out of range 0–100000",
    );
    // With no real servers at all, any quorum is accepted (the sorry server serves).
    assert_eq!(ok(&vs("quorum = 5\n")).config.virtual_servers[0].quorum, 5);
    assert_eq!(ok(&vs("quorum = 0\n")).config.virtual_servers[0].quorum, 0);
}

#[test]
fn quorum_must_be_reachable() {
    assert_error(
        &vs("quorum = 3\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\" }]\n"),
        "t.toml:6:10: error: `virtual_server.web.quorum` = 3 can never be met: there are only 2 real servers",
    );
    assert_error(
        &vs("quorum = 2\nreal_server = [{ address = \"10.0.0.1\" }]\n"),
        "t.toml:6:10: error: `virtual_server.web.quorum` = 2 can never be met: there is only 1 real server",
    );
    ok(&vs(
        "quorum = 2\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\" }]\n",
    ));
}

#[test]
fn quorum_counts_real_servers_that_have_errors_too() {
    // Before: the broken second server was not counted, adding a wrong quorum error.
    assert_error(
        &vs("quorum = 2\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"bad\" }]\n"),
        "t.toml:7:54: error: `virtual_server.web.real_server[1].address`: \"bad\" is not an address with a port",
    );
}

#[test]
fn hysteresis_must_be_below_quorum() {
    // Reported at the hysteresis (before: at the quorum, or the table when quorum was
    // left at its default).
    assert_error(
        &vs("quorum = 2\nhysteresis = 2\n"),
        "t.toml:7:14: error: `virtual_server.web.hysteresis` (2) must be smaller than the quorum (2)",
    );
    assert_error(
        &vs("hysteresis = 1\n"),
        "t.toml:6:14: error: `virtual_server.web.hysteresis` (1) must be smaller than the quorum (1)",
    );
    // An invalid quorum is reported alone.
    assert_error(
        &vs("quorum = -1\nhysteresis = 1\n"),
        "t.toml:6:10: error: `virtual_server.web.quorum` = -1 is out of range 0–100000",
    );
    ok(&vs("quorum = 3\nhysteresis = 2\n"));
    ok(&vs("quorum = 0\nhysteresis = 0\n"));
}

#[test]
fn sorry_server_takes_the_service_port_by_default() {
    let l = ok(&vs("sorry_server = \"10.0.0.9\"\n"));
    assert_eq!(
        l.config.virtual_servers[0].sorry_server,
        Some(sa("10.0.0.9:80"))
    );
    let l = ok(&vs(
        "sorry_server = \"[2001:db8::9]\"\nforwarding = \"tunnel\"\n",
    ));
    assert_eq!(
        l.config.virtual_servers[0].sorry_server,
        Some(sa("[2001:db8::9]:80"))
    );
    let help = assert_error(
        &vs("sorry_server = \"sorry.example.org\"\n"),
        "t.toml:6:16: error: `virtual_server.web.sorry_server`: \"sorry.example.org\" is not an address with a port",
    );
    assert_eq!(
        help.as_deref(),
        Some("write IP:PORT or IP, e.g. \"10.0.0.11:80\", \"10.0.0.11\" or \"[2001:db8::11]:80\"")
    );
}

#[test]
fn dr_and_tunnel_cannot_remap_ports() {
    for fwd in ["dr", "tunnel"] {
        let src = vs(&format!(
            "forwarding = \"{fwd}\"\nsorry_server = \"10.0.0.9:8080\"\nreal_server = [{{ address = \"10.0.0.1:8080\" }}, {{ address = \"10.0.0.2\" }}]\n"
        ));
        assert_errors(
            &src,
            &[
                &format!(
                    "t.toml:7:16: error: `virtual_server.web.sorry_server`: 10.0.0.9:8080 has port 8080 but {fwd} forwarding cannot change the port of the service (80)"
                ),
                &format!(
                    "t.toml:8:28: error: `virtual_server.web.real_server`: 10.0.0.1:8080 has port 8080 but {fwd} forwarding cannot change the port of the service (80)"
                ),
            ],
        );
        assert_eq!(
            help_of(&src, &format!("t.toml:8:28: error: `virtual_server.web.real_server`: 10.0.0.1:8080 has port 8080 but {fwd} forwarding cannot change the port of the service (80)")).as_deref(),
            Some("use port 80 (or leave the port out), or forwarding = \"nat\"")
        );
    }
    // A real server's own forwarding decides.
    ok(&vs(
        "forwarding = \"dr\"\nreal_server = [{ address = \"10.0.0.1:8080\", forwarding = \"nat\" }]\n",
    ));
    assert_error(
        &vs("real_server = [{ address = \"10.0.0.1:8080\", forwarding = \"dr\" }]\n"),
        "t.toml:6:28: error: `virtual_server.web.real_server`: 10.0.0.1:8080 has port 8080 but dr forwarding cannot change the port of the service (80)",
    );
}

#[test]
fn only_tunnel_mixes_address_families() {
    let src = vs(
        "sorry_server = \"[2001:db8::9]:80\"\nreal_server = [{ address = \"[2001:db8::1]:80\" }]\n",
    );
    assert_errors(
        &src,
        &[
            "t.toml:6:16: error: `virtual_server.web.sorry_server`: [2001:db8::9]:80 is IPv6 but the service is IPv4",
            "t.toml:7:28: error: `virtual_server.web.real_server`: [2001:db8::1]:80 is IPv6 but the service is IPv4",
        ],
    );
    assert_eq!(
        help_of(&src, "t.toml:7:28: error: `virtual_server.web.real_server`: [2001:db8::1]:80 is IPv6 but the service is IPv4").as_deref(),
        Some("only tunnel forwarding can mix address families")
    );
    ok(&vs(
        "forwarding = \"tunnel\"\nreal_server = [{ address = \"[2001:db8::1]:80\" }]\n",
    ));
    ok(&vs(
        "real_server = [{ address = \"[2001:db8::1]:80\", forwarding = \"tunnel\" }]\n",
    ));
    // Family rules apply to fwmark services too.
    assert_error(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"m\"\nfwmark = 1\nfamily = \"ipv6\"\nreal_server = [{ address = \"10.0.0.1:80\" }]\n",
        "t.toml:7:28: error: `virtual_server.m.real_server`: 10.0.0.1:80 is IPv4 but the service is IPv6",
    );
}

#[test]
fn a_destination_on_the_service_address_is_an_error() {
    // New rule: the director would forward the service to itself.
    let src = vs(
        "sorry_server = \"192.0.2.100:8080\"\nreal_server = [{ address = \"192.0.2.100:8080\" }, { address = \"192.0.2.100\" }]\n",
    );
    assert_errors(
        &src,
        &[
            "t.toml:6:16: error: `virtual_server.web.sorry_server`: 192.0.2.100:8080 is on the service's own address 192.0.2.100",
            "t.toml:7:28: error: `virtual_server.web.real_server`: 192.0.2.100:8080 is on the service's own address 192.0.2.100",
            "t.toml:7:62: error: `virtual_server.web.real_server`: 192.0.2.100:80 is on the service's own address 192.0.2.100",
        ],
    );
    assert_eq!(
        help_of(&src, "t.toml:6:16: error: `virtual_server.web.sorry_server`: 192.0.2.100:8080 is on the service's own address 192.0.2.100").as_deref(),
        Some("the director would forward the service to itself: use another host's address")
    );
}

#[test]
fn real_servers_are_tables_with_an_address() {
    assert_error(
        &vs("real_server = [\"10.0.0.1\"]\n"),
        "t.toml:6:16: error: `virtual_server.web.real_server[0]` must be a table, found a string",
    );
    assert_error(
        &vs("real_server = { address = \"10.0.0.1\" }\n"),
        "t.toml:6:15: error: `virtual_server.web.real_server` must be an array, found a table",
    );
    assert_error(
        &vs("real_server = [{ weight = 1 }]\n"),
        "t.toml:6:16: error: missing required field `virtual_server.web.real_server[0].address`",
    );
    assert_error(
        &vs("real_server = [{ address = \"10.0.0.1:0\" }]\n"),
        "t.toml:6:28: error: `virtual_server.web.real_server[0].address`: port 0 is not a valid port",
    );
}

#[test]
fn real_server_addresses_are_unique_per_service() {
    let src =
        vs("real_server = [\n  { address = \"10.0.0.1\" },\n  { address = \"10.0.0.1:80\" },\n]\n");
    let help = assert_error(
        &src,
        "t.toml:8:15: error: real server 10.0.0.1:80 appears twice in `virtual_server.web`",
    );
    assert_eq!(help.as_deref(), Some("first defined on line 7"));
    // Same IP, other port: fine (NAT).
    ok(&vs(
        "real_server = [{ address = \"10.0.0.1:80\" }, { address = \"10.0.0.1:81\" }]\n",
    ));
}

#[test]
fn real_server_weight_and_thresholds() {
    assert_error(
        &vs("real_server = [{ address = \"10.0.0.1\", weight = 65536 }]\n"),
        "t.toml:6:49: error: `virtual_server.web.real_server[0].weight` = 65536 is out of range 0–65535",
    );
    assert_error(
        &vs("real_server = [{ address = \"10.0.0.1\", upper_threshold = -1 }]\n"),
        "t.toml:6:58: error: `virtual_server.web.real_server[0].upper_threshold` = -1 is out of range 0–4294967295",
    );
    assert_error(
        &vs(
            "real_server = [{ address = \"10.0.0.1\", upper_threshold = 10, lower_threshold = 11 }]\n",
        ),
        "t.toml:6:80: error: `virtual_server.web.real_server[0].lower_threshold` (11) must not exceed `upper_threshold` (10)",
    );
    let l = ok(&vs(
        "real_server = [{ address = \"10.0.0.1\", weight = 65535, lower_threshold = 7 }]\n",
    ));
    let rs = &l.config.virtual_servers[0].real_servers[0];
    assert_eq!(rs.weight, 65535);
    assert_eq!((rs.upper_threshold, rs.lower_threshold), (None, Some(7)));
}

#[test]
fn real_server_forwarding_inherits_and_overrides() {
    let l = ok(&vs(
        "forwarding = \"tunnel\"\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\", forwarding = \"dr\" }]\n",
    ));
    let rs = &l.config.virtual_servers[0].real_servers;
    assert_eq!(rs[0].forwarding, Forwarding::Tunnel);
    assert_eq!(rs[1].forwarding, Forwarding::Dr);
    assert_error(
        &vs("real_server = [{ address = \"10.0.0.1\", forwarding = \"tun\" }]\n"),
        "t.toml:6:53: error: `virtual_server.web.real_server[0].forwarding`: unknown value \"tun\"",
    );
}

#[test]
fn unknown_fields_in_services_and_real_servers() {
    let help = assert_error(
        &vs("lb_algo = \"wrr\"\n"),
        "t.toml:6:1: error: unknown field `virtual_server.web.lb_algo`",
    );
    assert!(
        help.unwrap()
            .starts_with("known fields here: name, address, fwmark")
    );
    let help = assert_error(
        &vs("sorry_sever = \"10.0.0.9\"\n"),
        "t.toml:6:1: error: unknown field `virtual_server.web.sorry_sever`",
    );
    assert_eq!(help.as_deref(), Some("did you mean `sorry_server`?"));
    let help = assert_error(
        &vs("real_server = [{ address = \"10.0.0.1\", wieght = 2 }]\n"),
        "t.toml:6:40: error: unknown field `virtual_server.web.real_server[0].wieght`",
    );
    assert_eq!(help.as_deref(), Some("did you mean `weight`?"));
}

#[test]
fn inhibit_on_failure_is_a_boolean() {
    assert_error(
        &vs("inhibit_on_failure = \"yes\"\n"),
        "t.toml:6:22: error: `virtual_server.web.inhibit_on_failure` must be true or false, found a string",
    );
}

#[test]
fn messages_name_the_server_by_index_until_its_name_is_known() {
    assert_errors(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = 5\naddress = \"192.0.2.1:80\"\nquorum = -1\n",
        &[
            "t.toml:4:8: error: `virtual_server[0].name` must be a string, found an integer",
            "t.toml:6:10: error: `virtual_server[0].quorum` = -1 is out of range 0–100000",
        ],
    );
}

#[test]
fn all_errors_of_several_servers_are_reported_together() {
    assert_errors(
        r#"[director]
name = "lb"
[[virtual_server]]
name = "a"
address = "192.0.2.1"
scheduler = "fastest"
[[virtual_server]]
name = "b"
address = "192.0.2.1:443"
forwarding = "dr"
real_server = [{ address = "10.0.0.1:8443" }, { address = "10.0.0.2", weight = -1 }]
"#,
        &[
            "t.toml:5:11: error: `virtual_server.a.address`: \"192.0.2.1\" has no port",
            "t.toml:6:13: error: `virtual_server.a.scheduler`: unknown value \"fastest\"",
            "t.toml:11:28: error: `virtual_server.b.real_server`: 10.0.0.1:8443 has port 8443 but dr forwarding cannot change the port of the service (443)",
            "t.toml:11:80: error: `virtual_server.b.real_server[1].weight` = -1 is out of range 0–65535",
        ],
    );
}

#[test]
fn keepalived_quorum_hooks_and_inhibit_per_real_server() {
    let l = ok(&vs(concat!(
        "quorum_by = \"weight\"\nquorum = 3\nhysteresis = 1\ninhibit_on_failure = true\n",
        "quorum_up = [\"/usr/local/bin/q\", \"up\"]\nquorum_down = [\"/usr/local/bin/q\", \"down\"]\n",
        "omega = true\n",
        "real_server = [{ address = \"10.0.0.1\", weight = 2, inhibit_on_failure = false,",
        " notify_up = [\"/bin/up\"], notify_down = [\"/bin/down\", \"x\"] },",
        " { address = \"10.0.0.2\" }]\n",
    )));
    let v = &l.config.virtual_servers[0];
    assert_eq!(v.quorum_by, QuorumBy::Weight);
    assert_eq!(
        v.quorum_up.as_deref(),
        Some(&["/usr/local/bin/q".to_string(), "up".into()][..])
    );
    assert_eq!(v.quorum_down.as_ref().map(|a| a[1].as_str()), Some("down"));
    assert!(v.omega);
    let (a, b) = (&v.real_servers[0], &v.real_servers[1]);
    assert!(!a.inhibit_on_failure, "its own setting wins");
    assert!(b.inhibit_on_failure, "the virtual server's by default");
    assert_eq!(a.notify_up.as_deref(), Some(&["/bin/up".to_string()][..]));
    assert_eq!(a.notify_down.as_ref().map(|d| d.len()), Some(2));
    assert_eq!((b.notify_up.as_ref(), b.notify_down.as_ref()), (None, None));
    // Defaults: by servers, no hooks, no omega.
    let d = ok(&vs("real_server = [{ address = \"10.0.0.1\" }]\n"));
    let d = &d.config.virtual_servers[0];
    assert_eq!(d.quorum_by, QuorumBy::Servers);
    assert!(d.quorum_up.is_none() && d.quorum_down.is_none() && !d.omega);
}

#[test]
fn quorum_by_weight_must_be_reachable_by_the_weights() {
    // Three servers, weights 2 + 1 + 0 = 3: quorum 3 is fine by weight, 4 is not.
    let rs = "real_server = [{ address = \"10.0.0.1\", weight = 2 }, { address = \"10.0.0.2\" }, { address = \"10.0.0.3\", weight = 0 }]\n";
    ok(&vs(&format!("quorum_by = \"weight\"\nquorum = 3\n{rs}")));
    assert_error(
        &vs(&format!("quorum_by = \"weight\"\nquorum = 4\n{rs}")),
        "t.toml:7:10: error: `virtual_server.web.quorum` = 4 can never be met: the real servers' weights sum to 3",
    );
    // By weight a quorum above the number of servers is fine.
    ok(&vs(
        "quorum_by = \"weight\"\nquorum = 150\nreal_server = [{ address = \"10.0.0.1\", weight = 100 }, { address = \"10.0.0.2\", weight = 100 }]\n",
    ));
    assert_error(
        &vs("quorum_by = \"count\"\n"),
        "t.toml:6:13: error: `virtual_server.web.quorum_by`: unknown value \"count\"",
    );
}

#[test]
fn quorum_and_real_server_hooks_are_absolute_programs() {
    assert_error(
        &vs("quorum_down = [\"notify.sh\"]\n"),
        "t.toml:6:15: error: `virtual_server.web.quorum_down`: program \"notify.sh\" must be an absolute path",
    );
    assert_error(
        &vs("real_server = [{ address = \"10.0.0.1\", notify_up = [] }]\n"),
        "t.toml:6:52: error: `virtual_server.web.real_server[0].notify_up` is empty: give the program and its arguments",
    );
    assert_error(
        &vs("real_server = [{ address = \"10.0.0.1\", inhibit_on_failure = 1 }]\n"),
        "t.toml:6:61: error: `virtual_server.web.real_server[0].inhibit_on_failure` must be true or false, found an integer",
    );
}
