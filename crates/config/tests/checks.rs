//! Health checks: common options, each kind's options, and the per-real-server override.

mod common;
use common::*;

/// A service `web` on 192.0.2.100:80 whose check is `check` (on line 6) and whose single
/// real server 10.0.0.1 is on line 7, with `rs_extra` inside its table.
fn with_check(check: &str, rs_extra: &str) -> String {
    format!(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = {{ {check} }}\nreal_server = [{{ address = \"10.0.0.1\"{rs_extra} }}]\n"
    )
}

/// The effective check of the first real server of a valid file.
fn check_of(src: &str) -> Check {
    let l = ok(src);
    let checks = &l.config.virtual_servers[0].real_servers[0].checks;
    assert_eq!(checks.len(), 1, "the real server has one check");
    checks[0].clone()
}

#[test]
fn common_defaults() {
    let c = check_of(&with_check("kind = \"tcp\"", ""));
    assert_eq!(
        c,
        Check {
            kind: CheckKind::Tcp {
                send: None,
                expect: None
            },
            interval: secs(2),
            timeout: secs(1),
            rise: 2,
            fall: 3,
            initial_state: InitialState::Down,
            retry_delay: None,
            start_spread: secs(2),
            address: None,
            port: None,
            bind: None,
            bind_port: None,
            bind_interface: None,
            fwmark: None,
        }
    );
}

#[test]
fn timeout_defaults_to_half_the_interval_at_most_1s() {
    for (interval, timeout) in [
        ("1s", ms(500)),
        ("10ms", ms(5)),
        ("2s", secs(1)),
        ("1m", secs(1)),
    ] {
        let c = check_of(&with_check(
            &format!("kind = \"tcp\", interval = \"{interval}\""),
            "",
        ));
        assert_eq!(c.timeout, timeout, "interval {interval}");
        // The start spread defaults to the interval.
        assert_eq!(c.start_spread, parse_duration(interval).unwrap());
    }
}

#[test]
fn every_common_option_is_read() {
    let c = check_of(&with_check(
        "kind = \"icmp\", interval = \"5s\", timeout = \"4s\", rise = 100, fall = 1, initial_state = \"up\", retry_delay = \"1s\", start_spread = \"0s\", address = \"10.0.1.1\", bind = \"10.0.0.250\"",
        "",
    ));
    assert_eq!(c.kind, CheckKind::Icmp);
    assert_eq!((c.interval, c.timeout), (secs(5), secs(4)));
    assert_eq!((c.rise, c.fall), (100, 1));
    assert_eq!(c.initial_state, InitialState::Up);
    assert_eq!(c.retry_delay, Some(secs(1)));
    assert_eq!(c.start_spread, secs(0));
    assert_eq!(c.address, Some(ip("10.0.1.1")));
    assert_eq!(c.bind, Some(ip("10.0.0.250")));
    let c = check_of(&with_check(
        "kind = \"tcp\", port = 8080, retry_delay = \"2s\"",
        "",
    ));
    assert_eq!(c.port, Some(8080));
    assert_eq!(c.retry_delay, Some(secs(2)));
}

#[test]
fn kind_is_required_and_known() {
    assert_error(
        &with_check("interval = \"1s\"", ""),
        "t.toml:6:9: error: missing required field `virtual_server.web.check.kind`",
    );
    let help = assert_error(
        &with_check("kind = \"ping\"", ""),
        "t.toml:6:18: error: `virtual_server.web.check.kind`: unknown value \"ping\"",
    );
    assert_eq!(
        help.as_deref(),
        Some("one of: tcp, http, https, dns, udp, icmp, smtp, exec, file")
    );
    let help = assert_error(
        &with_check("kind = \"htp\"", ""),
        "t.toml:6:18: error: `virtual_server.web.check.kind`: unknown value \"htp\"",
    );
    assert!(help.unwrap().starts_with("did you mean \"http\"?"));
    assert_eq!(
        check_of(&with_check("kind = \"ICMP\"", "")).kind.name(),
        "icmp"
    );
}

#[test]
fn check_must_be_a_table() {
    assert_error(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = \"tcp\"\n",
        "t.toml:6:9: error: `virtual_server.web.check` must be a table or an array of tables, found a string",
    );
    assert_error(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = false\n",
        "t.toml:6:9: error: `virtual_server.web.check` must be a table or an array of tables, found a boolean",
    );
}

#[test]
fn interval_is_10ms_to_1h() {
    for bad in ["5ms", "0s", "61m"] {
        assert_error(
            &with_check(
                &format!("kind = \"tcp\", interval = \"{bad}\", timeout = \"1ms\""),
                "",
            ),
            "t.toml:6:36: error: `virtual_server.web.check.interval` must be from 10ms to 1h",
        );
    }
    ok(&with_check("kind = \"tcp\", interval = \"1h\"", ""));
}

#[test]
fn timeout_is_above_zero_and_below_the_interval() {
    assert_error(
        &with_check("kind = \"tcp\", timeout = \"0s\"", ""),
        "t.toml:6:35: error: `virtual_server.web.check.timeout` must be above zero",
    );
    let help = assert_error(
        &with_check("kind = \"tcp\", interval = \"1s\", timeout = \"1s\"", ""),
        "t.toml:6:52: error: `virtual_server.web.check.timeout` (1s) must be shorter than the interval (1s)",
    );
    assert_eq!(
        help.as_deref(),
        Some("a check must finish before the next one is due")
    );
    // Against the default interval of 2s.
    assert_error(
        &with_check("kind = \"tcp\", timeout = \"2.5s\"", ""),
        "t.toml:6:35: error: `virtual_server.web.check.timeout` (2.5s) must be shorter than the interval (2s)",
    );
}

#[test]
fn an_invalid_interval_is_reported_alone() {
    // Before: the timeout and retry delay were also compared against the invalid (or the
    // default) interval.
    assert_error(
        &with_check(
            "kind = \"tcp\", interval = 5, timeout = \"3s\", retry_delay = \"3s\"",
            "",
        ),
        "t.toml:6:36: error: `virtual_server.web.check.interval` must be a duration string, found an integer",
    );
    assert_error(
        &with_check(
            "kind = \"tcp\", interval = \"2h\", timeout = \"3h\", retry_delay = \"3h\"",
            "",
        ),
        "t.toml:6:36: error: `virtual_server.web.check.interval` must be from 10ms to 1h",
    );
}

#[test]
fn rise_fall_and_initial_state() {
    assert_errors(
        &with_check(
            "kind = \"tcp\", rise = 0, fall = 101, initial_state = \"unknown\"",
            "",
        ),
        &[
            "t.toml:6:32: error: `virtual_server.web.check.rise` = 0 is out of range 1–100",
            "t.toml:6:42: error: `virtual_server.web.check.fall` = 101 is out of range 1–100",
            "t.toml:6:63: error: `virtual_server.web.check.initial_state`: unknown value \"unknown\"",
        ],
    );
    let src = with_check("kind = \"tcp\", initial_state = \"UP\"", "");
    assert_eq!(check_of(&src).initial_state, InitialState::Up);
}

#[test]
fn retry_delay_is_above_zero_and_at_most_the_interval() {
    for bad in ["0s", "2.01s"] {
        assert_error(
            &with_check(&format!("kind = \"tcp\", retry_delay = \"{bad}\""), ""),
            "t.toml:6:39: error: `virtual_server.web.check.retry_delay` must be above zero and at most the interval",
        );
    }
}

#[test]
fn start_spread_is_at_most_1h() {
    assert_error(
        &with_check("kind = \"tcp\", start_spread = \"61m\"", ""),
        "t.toml:6:40: error: `virtual_server.web.check.start_spread` must be at most 1h",
    );
    assert_eq!(
        check_of(&with_check("kind = \"tcp\", start_spread = \"1h\"", "")).start_spread,
        secs(3600)
    );
}

#[test]
fn address_port_and_bind() {
    assert_errors(
        &with_check(
            "kind = \"tcp\", address = \"backend\", port = 0, bind = \"10.0.0.300\"",
            "",
        ),
        &[
            "t.toml:6:35: error: `virtual_server.web.check.address`: \"backend\" is not an IP address",
            "t.toml:6:53: error: `virtual_server.web.check.port` = 0 is out of range 1–65535",
            "t.toml:6:63: error: `virtual_server.web.check.bind`: \"10.0.0.300\" is not an IP address",
        ],
    );
    assert_error(
        &with_check("kind = \"tcp\", port = 65536", ""),
        "t.toml:6:32: error: `virtual_server.web.check.port` = 65536 is out of range 1–65535",
    );
    assert_error(
        &with_check(
            "kind = \"tcp\", address = \"10.0.1.1\", bind = \"2001:db8::1\"",
            "",
        ),
        "t.toml:6:9: error: `virtual_server.web.check`: bind address 2001:db8::1 and check address 10.0.1.1 are of different families",
    );
    // An IPv6 probe address with an IPv6 source, for an IPv4 real server, is fine.
    ok(&with_check(
        "kind = \"tcp\", address = \"2001:db8::1\", bind = \"2001:db8::2\"",
        "",
    ));
}

#[test]
fn bind_must_match_the_real_server_family() {
    // New rule: without `address`, the probe goes to the real server, which a source of
    // the other family cannot reach.
    assert_error(
        &with_check("kind = \"tcp\", bind = \"2001:db8::1\"", ""),
        "t.toml:6:9: error: `virtual_server.web.real_server[0].check`: bind address 2001:db8::1 is IPv6 but the real server 10.0.0.1:80 is IPv4",
    );
    // Reported at the override when the override brings the bind address.
    assert_error(
        &with_check("kind = \"tcp\"", ", check = { bind = \"2001:db8::1\" }"),
        "t.toml:7:48: error: `virtual_server.web.real_server[0].check`: bind address 2001:db8::1 is IPv6 but the real server 10.0.0.1:80 is IPv4",
    );
}

#[test]
fn tcp_options() {
    let c = check_of(&with_check(
        "kind = \"tcp\", send = \"PING\\r\\n\", expect = \"^\\\\+PONG\"",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Tcp {
            send: Some("PING\r\n".into()),
            expect: Some("^\\+PONG".into())
        }
    );
    assert_error(
        &with_check("kind = \"tcp\", expect = \"(\"", ""),
        "t.toml:6:34: error: `virtual_server.web.check.expect`: invalid regular expression: unclosed group",
    );
}

#[test]
fn http_defaults() {
    let c = check_of(&with_check("kind = \"http\"", ""));
    assert_eq!(
        c.kind,
        CheckKind::Http(HttpCheck {
            method: HttpMethod::Get,
            host: None,
            urls: vec![HttpUrl::new("/")],
            max_body_bytes: 1024 * 1024,
            tls: None,
        })
    );
    assert_eq!(c.kind.name(), "http");
}

#[test]
fn http_options() {
    let c = check_of(&with_check(
        "kind = \"http\", method = \"head\", path = \"/healthz?full=1\", host = \"www.example.org\", expect_status = [200, \"300-399\", \"404\"], max_body_bytes = 0",
        "",
    ));
    let CheckKind::Http(h) = c.kind else {
        panic!("not http")
    };
    assert_eq!(h.method, HttpMethod::Head);
    assert_eq!(h.urls[0].path, "/healthz?full=1");
    assert_eq!(h.host.as_deref(), Some("www.example.org"));
    assert_eq!(
        h.urls[0].expect_status,
        [(200, 200), (300, 399), (404, 404)]
    );
    assert_eq!(h.max_body_bytes, 0);
    let sha = "AB".repeat(32);
    let c = check_of(&with_check(
        &format!("kind = \"http\", body_regex = \"ok\", body_sha256 = \"{sha}\""),
        "",
    ));
    let CheckKind::Http(h) = c.kind else {
        panic!("not http")
    };
    assert_eq!(h.urls[0].body_regex.as_deref(), Some("ok"));
    assert_eq!(h.urls[0].body_sha256, Some("ab".repeat(32)));
}

#[test]
fn http_rules() {
    assert_errors(
        &with_check(
            "kind = \"http\", method = \"POST\", path = \"health\", host = \"a b\", body_regex = \"[\", body_sha256 = \"abc\", max_body_bytes = 67108865",
            "",
        ),
        &[
            "t.toml:6:35: error: `virtual_server.web.check.method`: unknown value \"POST\"",
            "t.toml:6:50: error: `virtual_server.web.check.path`: \"health\" must start with '/' and contain no spaces",
            "t.toml:6:67: error: `virtual_server.web.check.host`: \"a b\" is not a valid Host header",
            "t.toml:6:87: error: `virtual_server.web.check.body_regex`: invalid regular expression: unclosed character class",
            "t.toml:6:106: error: `virtual_server.web.check.body_sha256` must be 64 hexadecimal digits (a SHA-256 digest)",
            "t.toml:6:130: error: `virtual_server.web.check.max_body_bytes` = 67108865 is out of range 0–67108864",
        ],
    );
    assert_error(
        &with_check("kind = \"http\", path = \"/a b\"", ""),
        "t.toml:6:33: error: `virtual_server.web.check.path`: \"/a b\" must start with '/' and contain no spaces",
    );
    assert_error(
        &with_check("kind = \"http\", host = \"\"", ""),
        "t.toml:6:33: error: `virtual_server.web.check.host`: \"\" is not a valid Host header",
    );
}

#[test]
fn http_expect_status() {
    let src = with_check(
        "kind = \"http\", expect_status = [99, \"600\", \"299-200\", \"2xx\", 2.0]",
        "",
    );
    assert_errors(
        &src,
        &[
            "t.toml:6:43: error: `virtual_server.web.check.expect_status[0]` = 99 is out of range 100–599",
            "t.toml:6:47: error: `virtual_server.web.check.expect_status[1]` must be a status code from 100 to 599 or a range \"LOW-HIGH\"",
            "t.toml:6:54: error: `virtual_server.web.check.expect_status[2]` must be a status code from 100 to 599 or a range \"LOW-HIGH\"",
            "t.toml:6:65: error: `virtual_server.web.check.expect_status[3]` must be a status code from 100 to 599 or a range \"LOW-HIGH\"",
            "t.toml:6:72: error: `virtual_server.web.check.expect_status[4]` must be a status code from 100 to 599 or a range \"LOW-HIGH\"",
        ],
    );
    assert_eq!(
        help_of(&src, "t.toml:6:65: error: `virtual_server.web.check.expect_status[3]` must be a status code from 100 to 599 or a range \"LOW-HIGH\"").as_deref(),
        Some("e.g. expect_status = [200, \"300-399\"]")
    );
    assert_error(
        &with_check("kind = \"http\", expect_status = []", ""),
        "t.toml:6:42: error: `virtual_server.web.check.expect_status` is empty",
    );
    assert_error(
        &with_check("kind = \"http\", expect_status = 200", ""),
        "t.toml:6:42: error: `virtual_server.web.check.expect_status` must be an array, found an integer",
    );
}

#[test]
fn head_requests_have_no_body_to_check() {
    // New rule: HEAD responses have no body, so a body check could never pass.
    let src = with_check(
        &format!(
            "kind = \"http\", method = \"HEAD\", body_regex = \"ok\", body_sha256 = \"{}\"",
            "a".repeat(64)
        ),
        "",
    );
    assert_errors(
        &src,
        &[
            "t.toml:6:56: error: `virtual_server.web.check.body_regex` needs a body, but HEAD responses have none",
            "t.toml:6:76: error: `virtual_server.web.check.body_sha256` needs a body, but HEAD responses have none",
        ],
    );
    assert_eq!(
        help_of(&src, "t.toml:6:56: error: `virtual_server.web.check.body_regex` needs a body, but HEAD responses have none").as_deref(),
        Some("use method = \"GET\" to check the body")
    );
}

#[test]
fn https_defaults_and_options() {
    let c = check_of(&with_check("kind = \"https\"", ""));
    let CheckKind::Http(h) = &c.kind else {
        panic!("not http")
    };
    assert_eq!(h.tls, Some(Tls::verifying()));
    assert_eq!(c.kind.name(), "https");
    let c = check_of(&with_check(
        "kind = \"https\", tls_verify = false, tls_ca_file = \"/etc/ca.pem\", tls_server_name = \"www.example.org\", path = \"/x\"",
        "",
    ));
    let CheckKind::Http(h) = &c.kind else {
        panic!("not http")
    };
    assert_eq!(h.urls[0].path, "/x");
    assert_eq!(
        h.tls,
        Some(Tls {
            verify: false,
            ca_file: Some("/etc/ca.pem".into()),
            server_name: Some("www.example.org".into()),
            ..Tls::verifying()
        })
    );
    assert_errors(
        &with_check(
            "kind = \"https\", tls_ca_file = \"ca.pem\", tls_verify = \"no\"",
            "",
        ),
        &[
            "t.toml:6:41: error: `virtual_server.web.check.tls_ca_file`: \"ca.pem\" must be an absolute path",
            "t.toml:6:64: error: `virtual_server.web.check.tls_verify` must be true or false, found a string",
        ],
    );
}

#[test]
fn dns_defaults_and_options() {
    let c = check_of(&with_check(
        "kind = \"dns\", query_name = \"example.org\"",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Dns(DnsCheck {
            name: "example.org".into(),
            qtype: DnsType::A,
            expect_rcode: DnsRcode::NoError,
            expect_addresses: vec![],
            transport: DnsTransport::Udp,
            edns: true,
        })
    );
    let c = check_of(&with_check(
        "kind = \"dns\", query_name = \"_sip._tcp.example.org.\", query_type = \"aaaa\", expect_rcode = \"nxdomain\", expect_addresses = [\"2001:db8::1\"], transport = \"tcp\", edns = false",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Dns(DnsCheck {
            name: "_sip._tcp.example.org.".into(),
            qtype: DnsType::Aaaa,
            expect_rcode: DnsRcode::NxDomain,
            expect_addresses: vec![ip("2001:db8::1")],
            transport: DnsTransport::Tcp,
            edns: false,
        })
    );
    for (t, want) in [
        ("SOA", DnsType::Soa),
        ("NS", DnsType::Ns),
        ("MX", DnsType::Mx),
        ("TXT", DnsType::Txt),
        ("CNAME", DnsType::Cname),
    ] {
        let c = check_of(&with_check(
            &format!("kind = \"dns\", query_name = \".\", query_type = \"{t}\""),
            "",
        ));
        assert!(matches!(c.kind, CheckKind::Dns(d) if d.qtype == want));
    }
}

#[test]
fn dns_rules() {
    assert_error(
        &with_check("kind = \"dns\"", ""),
        "t.toml:6:9: error: missing required field `virtual_server.web.check.query_name`",
    );
    assert_errors(
        &with_check(
            "kind = \"dns\", query_name = \"a..b\", query_type = \"PTR\", expect_rcode = \"NOERR\", transport = \"dot\"",
            "",
        ),
        &[
            "t.toml:6:38: error: `virtual_server.web.check.query_name`: \"a..b\" is not a valid DNS name",
            "t.toml:6:59: error: `virtual_server.web.check.query_type`: unknown value \"PTR\"",
            "t.toml:6:81: error: `virtual_server.web.check.expect_rcode`: unknown value \"NOERR\"",
            "t.toml:6:102: error: `virtual_server.web.check.transport`: unknown value \"dot\"",
        ],
    );
    assert_error(
        &with_check(
            "kind = \"dns\", query_name = \"example.org\", query_type = \"MX\", expect_addresses = [\"192.0.2.1\"]",
            "",
        ),
        "t.toml:6:91: error: `virtual_server.web.check.expect_addresses` applies only to A and AAAA queries",
    );
    assert_errors(
        &with_check(
            "kind = \"dns\", query_name = \"example.org\", expect_addresses = [\"2001:db8::1\", \"x\"]",
            "",
        ),
        &[
            "t.toml:6:73: error: `virtual_server.web.check.expect_addresses[0]`: 2001:db8::1 can never be in the answer to an A query",
            "t.toml:6:88: error: `virtual_server.web.check.expect_addresses[1]`: \"x\" is not an IP address",
        ],
    );
    assert_error(
        &with_check(
            "kind = \"dns\", query_name = \"example.org\", query_type = \"AAAA\", expect_addresses = [\"192.0.2.1\"]",
            "",
        ),
        "t.toml:6:94: error: `virtual_server.web.check.expect_addresses[0]`: 192.0.2.1 can never be in the answer to an AAAA query",
    );
    let long_label = "a".repeat(64);
    assert_error(
        &with_check(
            &format!("kind = \"dns\", query_name = \"{long_label}.org\""),
            "",
        ),
        &format!(
            "t.toml:6:38: error: `virtual_server.web.check.query_name`: \"{long_label}.org\" is not a valid DNS name"
        ),
    );
}

#[test]
fn udp_payload_and_reply() {
    // No payload: an empty datagram, as keepalived's UDP_CHECK without `payload`.
    let c = check_of(&with_check("kind = \"udp\"", ""));
    assert_eq!(
        c.kind,
        CheckKind::Udp {
            send: vec![],
            expect: None,
            require_reply: true
        }
    );
    let c = check_of(&with_check(
        "kind = \"udp\", send = \"hi\", expect = \"^ok\"",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Udp {
            send: "hi".into(),
            expect: Some("^ok".into()),
            require_reply: true
        }
    );
    let c = check_of(&with_check(
        "kind = \"udp\", send_hex = \"00Ff 1a\", require_reply = false",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Udp {
            send: vec![0x00, 0xff, 0x1a],
            expect: None,
            require_reply: false
        }
    );
    assert_errors(
        &with_check(
            "kind = \"udp\", send = \"a\", send_hex = \"0\", expect = \"x\", require_reply = false",
            "",
        ),
        &[
            "t.toml:6:48: error: `virtual_server.web.check.send` and `virtual_server.web.check.send_hex` are alternatives",
            "t.toml:6:62: error: `virtual_server.web.check.expect` needs a reply, but `virtual_server.web.check.require_reply` is false",
        ],
    );
    let src = with_check("kind = \"udp\", send_hex = \"0g\"", "");
    let help = assert_error(
        &src,
        "t.toml:6:36: error: `virtual_server.web.check.send_hex` must be pairs of hexadecimal digits",
    );
    assert_eq!(
        help.as_deref(),
        Some("e.g. send_hex = \"0a1b 2c3d\" (spaces are ignored)")
    );
}

#[test]
fn icmp_has_no_port() {
    // New rule: an echo request has no port to override.
    let help = assert_error(
        &with_check("kind = \"icmp\", port = 8080", ""),
        "t.toml:6:33: error: `virtual_server.web.check.port` does not apply to icmp checks",
    );
    assert_eq!(help.as_deref(), Some("an ICMP echo request has no port"));
}

#[test]
fn exec_needs_an_absolute_command() {
    let c = check_of(&with_check(
        "kind = \"exec\", command = [\"/usr/lib/vigil/check\", \"-v\"]",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Exec {
            command: vec!["/usr/lib/vigil/check".into(), "-v".into()],
            user: "nobody".into(),
            dynamic_weight: false,
        }
    );
    let c = check_of(&with_check(
        "kind = \"exec\", command = [\"/c\"], user = \"vigil\"",
        "",
    ));
    assert!(matches!(c.kind, CheckKind::Exec { user, .. } if user == "vigil"));
    assert_error(
        &with_check("kind = \"exec\"", ""),
        "t.toml:6:9: error: missing required field `virtual_server.web.check.command`",
    );
    assert_error(
        &with_check("kind = \"exec\", command = \"/c\"", ""),
        "t.toml:6:36: error: `virtual_server.web.check.command` must be an array, found a string",
    );
    assert_error(
        &with_check("kind = \"exec\", command = []", ""),
        "t.toml:6:36: error: `virtual_server.web.check.command` is empty: give the program and its arguments",
    );
    assert_error(
        &with_check("kind = \"exec\", command = [\"check.sh\"]", ""),
        "t.toml:6:36: error: `virtual_server.web.check.command`: program \"check.sh\" must be an absolute path",
    );
}

#[test]
fn options_of_another_kind_are_named_as_such() {
    let src = with_check("kind = \"tcp\", path = \"/\", query_name = \"x\"", "");
    assert_errors(
        &src,
        &[
            "t.toml:6:25: error: `virtual_server.web.check.path` is an option of http checks, not of tcp checks",
            "t.toml:6:37: error: `virtual_server.web.check.query_name` is an option of dns checks, not of tcp checks",
        ],
    );
    assert_eq!(
        help_of(&src, "t.toml:6:25: error: `virtual_server.web.check.path` is an option of http checks, not of tcp checks").as_deref(),
        Some("tcp checks take: send, expect")
    );
    let src = with_check("kind = \"icmp\", command = [\"/c\"]", "");
    let help = assert_error(
        &src,
        "t.toml:6:26: error: `virtual_server.web.check.command` is an option of exec checks, not of icmp checks",
    );
    assert_eq!(
        help.as_deref(),
        Some("icmp checks take: only the common options")
    );
    let help = assert_error(
        &with_check("kind = \"http\", tls_verify = false", ""),
        "t.toml:6:26: error: `virtual_server.web.check.tls_verify` is an option of https checks, not of http checks",
    );
    assert_eq!(
        help.as_deref(),
        Some(
            "http checks take: method, path, host, expect_status, body_regex, body_sha256, body_md5, regex_no_match, url, max_body_bytes"
        )
    );
    // Entirely unknown options are still "unknown", with a suggestion.
    let help = assert_error(
        &with_check("kind = \"tcp\", intreval = \"1s\"", ""),
        "t.toml:6:25: error: unknown field `virtual_server.web.check.intreval`",
    );
    assert_eq!(help.as_deref(), Some("did you mean `interval`?"));
}

// ---- the per-real-server override ----

#[test]
fn without_an_override_every_real_server_gets_the_service_check() {
    let l = ok(r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
check = { kind = "http", path = "/healthz", interval = "5s" }
real_server = [{ address = "10.0.0.1" }, { address = "10.0.0.2" }]
"#);
    let rs = &l.config.virtual_servers[0].real_servers;
    assert_eq!(rs[0].checks, rs[1].checks);
    assert_eq!(rs[0].checks.first().map(|c| c.interval), Some(secs(5)));
}

#[test]
fn an_override_without_kind_is_merged_field_by_field() {
    let c = check_of(&with_check(
        "kind = \"http\", path = \"/healthz\", interval = \"5s\", timeout = \"3s\", rise = 4",
        ", check = { port = 8443, timeout = \"2s\" }",
    ));
    assert_eq!(c.port, Some(8443));
    assert_eq!(c.timeout, secs(2));
    // Everything else comes from the service's check.
    assert_eq!(c.interval, secs(5));
    assert_eq!(c.rise, 4);
    assert!(matches!(&c.kind, CheckKind::Http(h) if h.urls[0].path == "/healthz"));
}

#[test]
fn an_override_with_kind_replaces_the_service_check() {
    let c = check_of(&with_check(
        "kind = \"http\", path = \"/healthz\", interval = \"5s\", rise = 4",
        ", check = { kind = \"tcp\", port = 22 }",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Tcp {
            send: None,
            expect: None
        }
    );
    assert_eq!(c.port, Some(22));
    // Nothing is inherited: these are the defaults again.
    assert_eq!(c.interval, secs(2));
    assert_eq!(c.rise, 2);
    // Even the same kind replaces.
    let c = check_of(&with_check(
        "kind = \"http\", path = \"/healthz\"",
        ", check = { kind = \"http\" }",
    ));
    assert!(matches!(&c.kind, CheckKind::Http(h) if h.urls[0].path == "/"));
}

#[test]
fn check_false_means_no_check() {
    let l = ok(&with_check("kind = \"tcp\"", ", check = false"));
    assert_eq!(l.config.virtual_servers[0].real_servers[0].checks, []);
    assert_error(
        &with_check("kind = \"tcp\"", ", check = true"),
        "t.toml:7:48: error: `virtual_server.web.real_server[0].check` must be a table, an array of tables, or false for no check, found a boolean",
    );
}

#[test]
fn a_real_server_may_have_a_check_when_the_service_has_none() {
    let l = ok(r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
real_server = [{ address = "10.0.0.1", check = { kind = "icmp" } }, { address = "10.0.0.2" }]
"#);
    let rs = &l.config.virtual_servers[0].real_servers;
    assert_eq!(rs[0].checks.first().map(|c| c.kind.name()), Some("icmp"));
    assert_eq!(rs[1].checks, []);
    assert_error(
        r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
real_server = [{ address = "10.0.0.1", check = { port = 8080 } }]
"#,
        "t.toml:6:48: error: missing required field `virtual_server.web.real_server[0].check.kind`",
    );
}

#[test]
fn merged_errors_name_the_real_server_and_point_at_the_override() {
    assert_error(
        &with_check(
            "kind = \"tcp\", interval = \"1s\"",
            ", check = { timeout = \"1s\" }",
        ),
        "t.toml:7:60: error: `virtual_server.web.real_server[0].check.timeout` (1s) must be shorter than the interval (1s)",
    );
    assert_error(
        &with_check("kind = \"tcp\"", ", check = { path = \"/\" }"),
        "t.toml:7:50: error: `virtual_server.web.real_server[0].check.path` is an option of http checks, not of tcp checks",
    );
}

#[test]
fn errors_in_the_service_check_are_reported_once() {
    // Not once per real server that inherits it.
    assert_error(
        r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
check = { kind = "tcp", rise = 0 }
real_server = [{ address = "10.0.0.1" }, { address = "10.0.0.2" }, { address = "10.0.0.3", check = { port = 1 } }]
"#,
        "t.toml:6:32: error: `virtual_server.web.check.rise` = 0 is out of range 1–100",
    );
}

#[test]
fn http_several_urls() {
    let md5 = "0F".repeat(16);
    let c = check_of(&with_check(
        &format!(
            "kind = \"http\", url = [{{ path = \"/a\", expect_status = [200], body_md5 = \"{md5}\" }}, {{ path = \"/b\", body_regex = \"down\", regex_no_match = true }}]"
        ),
        "",
    ));
    let CheckKind::Http(h) = c.kind else {
        panic!("not http")
    };
    assert_eq!(
        h.urls,
        [
            HttpUrl {
                expect_status: vec![(200, 200)],
                body_md5: Some("0f".repeat(16)),
                ..HttpUrl::new("/a")
            },
            HttpUrl {
                body_regex: Some("down".into()),
                regex_no_match: true,
                ..HttpUrl::new("/b")
            },
        ]
    );
}

#[test]
fn http_url_rules() {
    assert_errors(
        &with_check(
            "kind = \"http\", path = \"/x\", url = [{ path = \"y\", body_md5 = \"abc\", port = 1 }, 3]",
            "",
        ),
        &[
            "t.toml:6:33: error: `virtual_server.web.check.path` cannot be used together with `virtual_server.web.check.url`",
            "t.toml:6:55: error: `virtual_server.web.check.url[0].path`: \"y\" must start with '/' and contain no spaces",
            "t.toml:6:71: error: `virtual_server.web.check.url[0].body_md5` must be 32 hexadecimal digits (an MD5 digest)",
            "t.toml:6:78: error: unknown field `virtual_server.web.check.url[0].port`",
            "t.toml:6:90: error: `virtual_server.web.check.url[1]` must be a table, found an integer",
        ],
    );
    let src = with_check(
        "kind = \"http\", path = \"/x\", url = [{ path = \"/y\" }]",
        "",
    );
    assert_eq!(
        help_of(&src, "t.toml:6:33: error: `virtual_server.web.check.path` cannot be used together with `virtual_server.web.check.url`").as_deref(),
        Some("put `path` in each `url` entry")
    );
    assert_error(
        &with_check("kind = \"http\", url = []", ""),
        "t.toml:6:32: error: `virtual_server.web.check.url` is empty",
    );
    assert_error(
        &with_check("kind = \"http\", regex_no_match = true", ""),
        "t.toml:6:43: error: `virtual_server.web.check.regex_no_match` needs `virtual_server.web.check.body_regex`",
    );
    assert_error(
        &with_check(
            "kind = \"http\", method = \"HEAD\", url = [{ body_md5 = \"00000000000000000000000000000000\" }]",
            "",
        ),
        "t.toml:6:63: error: `virtual_server.web.check.url[0].body_md5` needs a body, but HEAD responses have none",
    );
}

#[test]
fn https_trust_sni_and_client_certificate() {
    let c = check_of(&with_check(
        "kind = \"https\", tls_trust = \"system\", tls_sni = false, tls_client_cert = \"/etc/vigil/client.pem\", tls_client_key = \"/etc/vigil/client.key\"",
        "",
    ));
    let CheckKind::Http(h) = &c.kind else {
        panic!("not http")
    };
    assert_eq!(
        h.tls,
        Some(Tls {
            trust: TlsTrust::System,
            sni: false,
            client_cert: Some("/etc/vigil/client.pem".into()),
            client_key: Some("/etc/vigil/client.key".into()),
            ..Tls::verifying()
        })
    );
    assert_errors(
        &with_check(
            "kind = \"https\", tls_trust = \"os\", tls_sni = 1, tls_client_cert = \"client.pem\"",
            "",
        ),
        &[
            "t.toml:6:39: error: `virtual_server.web.check.tls_trust`: unknown value \"os\"",
            "t.toml:6:55: error: `virtual_server.web.check.tls_sni` must be true or false, found an integer",
            "t.toml:6:76: error: `virtual_server.web.check.tls_client_cert`: \"client.pem\" must be an absolute path",
        ],
    );
    let src = with_check("kind = \"https\", tls_client_key = \"/k.pem\"", "");
    let help = assert_error(
        &src,
        "t.toml:6:44: error: `virtual_server.web.check.tls_client_key` needs `virtual_server.web.check.tls_client_cert`",
    );
    assert_eq!(
        help.as_deref(),
        Some("a client certificate is given with its private key")
    );
    assert_error(
        &with_check(
            "kind = \"https\", tls_ca_file = \"/ca.pem\", tls_trust = \"system\"",
            "",
        ),
        "t.toml:6:64: error: `virtual_server.web.check.tls_trust` and `virtual_server.web.check.tls_ca_file` are alternatives",
    );
    assert_error(
        &with_check("kind = \"http\", tls_sni = false", ""),
        "t.toml:6:26: error: `virtual_server.web.check.tls_sni` is an option of https checks, not of http checks",
    );
}

#[test]
fn smtp_helo_name() {
    let c = check_of(&with_check("kind = \"smtp\"", ""));
    assert_eq!(
        c.kind,
        CheckKind::Smtp {
            helo_name: DEFAULT_HELO_NAME.into()
        }
    );
    assert_eq!(c.kind.name(), "smtp");
    let c = check_of(&with_check(
        "kind = \"smtp\", helo_name = \"lb1.example.org\", port = 25",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::Smtp {
            helo_name: "lb1.example.org".into()
        }
    );
    assert_error(
        &with_check("kind = \"smtp\", helo_name = \"lb 1\"", ""),
        "t.toml:6:38: error: `virtual_server.web.check.helo_name`: \"lb 1\" must be 1–255 characters without spaces or control characters",
    );
    assert_error(
        &with_check("kind = \"tcp\", helo_name = \"lb1\"", ""),
        "t.toml:6:25: error: `virtual_server.web.check.helo_name` is an option of smtp checks, not of tcp checks",
    );
}

#[test]
fn check_source_port_interface_and_fwmark() {
    let c = check_of(&with_check(
        "kind = \"tcp\", bind = \"192.0.2.1\", bind_port = 4000, bind_interface = \"eth1\", fwmark = 66",
        "",
    ));
    assert_eq!(c.bind, Some(ip("192.0.2.1")));
    assert_eq!(c.bind_port, Some(4000));
    assert_eq!(c.bind_interface.as_deref(), Some("eth1"));
    assert_eq!(c.fwmark, Some(66));
    assert_errors(
        &with_check(
            "kind = \"tcp\", bind_port = 0, bind_interface = \"a/b\", fwmark = 0",
            "",
        ),
        &[
            "t.toml:6:37: error: `virtual_server.web.check.bind_port` = 0 is out of range 1–65535",
            "t.toml:6:57: error: `virtual_server.web.check.bind_interface`: \"a/b\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)",
            "t.toml:6:73: error: `virtual_server.web.check.fwmark` = 0 is out of range 1–4294967295",
        ],
    );
    assert_errors(
        &with_check(
            "kind = \"exec\", command = [\"/bin/true\"], fwmark = 1, bind_port = 2",
            "",
        ),
        &[
            "t.toml:6:60: error: `virtual_server.web.check.fwmark` does not apply to exec checks",
            "t.toml:6:75: error: `virtual_server.web.check.bind_port` does not apply to exec checks",
        ],
    );
    assert_error(
        &with_check("kind = \"icmp\", bind_port = 2", ""),
        "t.toml:6:38: error: `virtual_server.web.check.bind_port` does not apply to icmp checks",
    );
}

// ---- several checks per real server, file checks, exec dynamic weight ----

#[test]
fn several_checks_are_an_array_and_each_is_its_own() {
    let l = ok(r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
check = [{ kind = "tcp", interval = "5s" }, { kind = "file", path = "/run/web.down" }]
real_server = [{ address = "10.0.0.1" }, { address = "10.0.0.2", check = { timeout = "300ms" } }, { address = "10.0.0.3", check = [{ kind = "icmp" }] }]
"#);
    let rs = &l.config.virtual_servers[0].real_servers;
    let kinds = |i: usize| -> Vec<&str> { rs[i].checks.iter().map(|c| c.kind.name()).collect() };
    assert_eq!(kinds(0), ["tcp", "file"]);
    assert_eq!(rs[0].checks[0].interval, secs(5));
    // A table without kind is merged over every check of the service.
    assert_eq!(kinds(1), ["tcp", "file"]);
    assert_eq!(rs[1].checks[0].timeout, ms(300));
    assert_eq!(rs[1].checks[1].timeout, ms(300));
    // An array replaces them.
    assert_eq!(kinds(2), ["icmp"]);
    assert!(!rs[0].has_dynamic_weight());
}

#[test]
fn file_checks_act_on_the_first_reading() {
    let c = check_of(&with_check(
        "kind = \"file\", path = \"/run/vigil/web.weight\", weight = 10, reverse = true",
        "",
    ));
    assert_eq!(
        c.kind,
        CheckKind::File(FileCheck {
            path: "/run/vigil/web.weight".into(),
            weight: 10,
            reverse: true,
        })
    );
    assert!(c.kind.moves_weight());
    assert_eq!((c.rise, c.fall), (1, 1));
    assert_eq!(c.interval, secs(1));
    assert_eq!(c.start_spread, secs(0));
    let c = check_of(&with_check("kind = \"file\", path = \"/run/down\"", ""));
    assert!(!c.kind.moves_weight());
}

#[test]
fn file_check_errors_name_the_field() {
    assert_error(
        &with_check("kind = \"file\"", ""),
        "t.toml:6:9: error: missing required field `virtual_server.web.check.path`",
    );
    assert_error(
        &with_check("kind = \"file\", path = \"run/down\"", ""),
        "t.toml:6:33: error: `virtual_server.web.check.path`: \"run/down\" must be an absolute path",
    );
    assert_errors(
        &with_check(
            "kind = \"file\", path = \"/run/down\", weight = 2147483648, port = 80, reverse = 1",
            "",
        ),
        &[
            "t.toml:6:55: error: `virtual_server.web.check.weight` = 2147483648 is out of range -2147483647–2147483647",
            "t.toml:6:74: error: `virtual_server.web.check.port` does not apply to file checks",
            "t.toml:6:88: error: `virtual_server.web.check.reverse` must be true or false, found an integer",
        ],
    );
    assert_error(
        &with_check("kind = \"tcp\", reverse = true", ""),
        "t.toml:6:25: error: `virtual_server.web.check.reverse` is an option of file checks, not of tcp checks",
    );
}

#[test]
fn exec_dynamic_weight() {
    let c = check_of(&with_check(
        "kind = \"exec\", command = [\"/c\"], dynamic_weight = true",
        "",
    ));
    assert!(matches!(
        c.kind,
        CheckKind::Exec {
            dynamic_weight: true,
            ..
        }
    ));
    assert!(c.kind.moves_weight());
    assert_error(
        &with_check(
            "kind = \"exec\", command = [\"/c\"], dynamic_weight = \"yes\"",
            "",
        ),
        "t.toml:6:61: error: `virtual_server.web.check.dynamic_weight` must be true or false, found a string",
    );
}

#[test]
fn every_check_of_an_array_is_reported_with_its_index() {
    assert_errors(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = [{ kind = \"tcp\", rise = 0 }, 7, { kind = \"file\" }]\n",
        &[
            "t.toml:6:33: error: `virtual_server.web.check[0].rise` = 0 is out of range 1–100",
            "t.toml:6:38: error: `virtual_server.web.check[1]` must be a table, found an integer",
            "t.toml:6:41: error: missing required field `virtual_server.web.check[2].path`",
        ],
    );
    // An override merged into several checks names the one it does not fit.
    assert_error(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = [{ kind = \"tcp\" }, { kind = \"file\", path = \"/run/d\" }]\nreal_server = [{ address = \"10.0.0.1\", check = { port = 8080 } }]\n",
        "t.toml:7:57: error: `virtual_server.web.real_server[0].check[1].port` does not apply to file checks",
    );
}

#[test]
fn at_most_64_checks_per_real_server() {
    let many = vec!["{ kind = \"icmp\" }"; 65].join(", ");
    assert_error(
        &format!(
            "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = [{many}]\n"
        ),
        "t.toml:6:9: error: `virtual_server.web.check` has 65 checks: at most 64",
    );
}
