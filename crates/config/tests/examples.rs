//! The example clusters in `conf/` are valid, warning-free, and mean what they say.

mod common;
use common::*;

use std::path::{Path, PathBuf};

fn conf_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf")
}

fn load_example(name: &str) -> Loaded {
    match load(&conf_dir().join(name)) {
        Ok(l) => l,
        Err(e) => panic!("{name}:\n{e}"),
    }
}

#[test]
fn every_example_validates_without_errors_or_warnings() {
    let mut names: Vec<String> = std::fs::read_dir(conf_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bgp-anycast.toml",
            "dns-fwmark.toml",
            "nat-ipv6.toml",
            "web-dr.toml"
        ],
        "a new example: add it to this list and check what it means below"
    );
    for name in &names {
        let l = load_example(name);
        let warnings: Vec<String> = l
            .warnings
            .warnings()
            .map(|w| l.warnings.one_line(w))
            .collect();
        assert_eq!(warnings, Vec::<String>::new(), "{name}");
    }
}

#[test]
fn bgp_anycast() {
    let c = load_example("bgp-anycast.toml").config;
    let a = c.announce.as_ref().unwrap();
    assert_eq!(
        (a.table, a.protocol, a.interface.as_str()),
        (100, 252, "lo")
    );
    assert_eq!(a.withdraw_delay, secs(3));
    let web = c.virtual_server("web").unwrap();
    assert!(web.announce);
    assert_eq!(web.scheduler, "mh");
    assert_eq!(
        web.scheduler_flags,
        [SchedulerFlag::Port, SchedulerFlag::Fallback]
    );
    assert!(c.vrrp.is_empty());
}

#[test]
fn web_dr() {
    let c = load_example("web-dr.toml").config;
    assert_eq!(c.director.name, "lb-a");
    assert_eq!(c.director.status_socket_group.as_deref(), Some("vigil"));
    assert_eq!(c.director.metrics_listen, Some(sa("127.0.0.1:9333")));
    assert_eq!(c.director.state_file.to_str(), Some(DEFAULT_STATE_FILE));
    let web = c.vrrp_instance("web").unwrap();
    assert_eq!((web.vrid, web.priority), (51, 150));
    assert_eq!(web.version, VrrpVersion::V3);
    assert_eq!(web.advert_interval, ms(100));
    assert_eq!(web.preempt_delay, secs(5));
    assert!(web.preempt);
    assert_eq!(web.track.len(), 2);
    assert_eq!(
        c.ipvs_sync,
        Some(IpvsSync {
            interface: "eth0".into(),
            sync_id: 51,
            instance: "web".into(),
            maxlen: None,
            port: None,
            ttl: None,
            group: None,
        })
    );
    let http = c.virtual_server("web-http").unwrap();
    assert_eq!(http.forwarding, Forwarding::Dr);
    assert_eq!((http.quorum, http.hysteresis), (2, 1));
    assert_eq!(http.sorry_server, Some(sa("192.0.2.50:80")));
    assert_eq!(
        http.real_servers
            .iter()
            .map(|r| r.weight)
            .collect::<Vec<_>>(),
        [100, 100, 200]
    );
    assert!(http.real_servers.iter().all(|r| r.address.port() == 80));
    let https = c.virtual_server("web-https").unwrap();
    assert_eq!(
        https.persistence.map(|p| (p.timeout, p.prefix_len)),
        Some((secs(300), 32))
    );
    assert!(https.inhibit_on_failure);
    // The third server is checked on its management port, otherwise like the others.
    let checks: Vec<&Check> = https
        .real_servers
        .iter()
        .map(|r| r.checks.first().unwrap())
        .collect();
    assert_eq!(checks[0], checks[1]);
    assert_eq!(checks[0].port, None);
    assert_eq!(checks[2].port, Some(8443));
    assert_eq!(checks[2].kind, checks[0].kind);
    assert_eq!(checks[2].kind.name(), "https");
}

#[test]
fn nat_ipv6() {
    let c = load_example("nat-ipv6.toml").config;
    assert_eq!(
        c.director.status_socket.to_str(),
        Some("/run/vigil/edge.sock")
    );
    assert_eq!(
        c.vrrp
            .iter()
            .map(|v| (v.name.as_str(), v.vrid, v.family))
            .collect::<Vec<_>>(),
        [
            ("outside4", 10, AddressFamily::Ipv4),
            ("outside6", 10, AddressFamily::Ipv6),
            ("inside", 11, AddressFamily::Ipv4),
        ]
    );
    assert!(
        c.vrrp
            .iter()
            .all(|v| v.sync_group.as_deref() == Some("edge"))
    );
    let inside = c.vrrp_instance("inside").unwrap();
    assert_eq!(inside.unicast_peers, [ip("10.20.0.3")]);
    assert_eq!(inside.track[0].weight, 0);
    let api4 = c.virtual_server("api4").unwrap();
    assert_eq!(
        api4.scheduler_flags,
        [SchedulerFlag::Fallback, SchedulerFlag::Port]
    );
    assert_eq!(api4.real_servers[2].upper_threshold, Some(5000));
    let status = c.virtual_server("api6-status").unwrap();
    let CheckKind::Http(h) = &status.real_servers[0].checks.first().unwrap().kind else {
        panic!("not http")
    };
    assert_eq!(h.method, HttpMethod::Head);
    assert_eq!(h.urls[0].expect_status, [(200, 204), (301, 301)]);
    assert_eq!(c.real_server_count(), 7);
}

#[test]
fn dns_fwmark() {
    let c = load_example("dns-fwmark.toml").config;
    let dns = c.vrrp_instance("dns").unwrap();
    assert_eq!(dns.version, VrrpVersion::V2);
    assert_eq!(dns.auth_password.as_deref(), Some("dns53"));
    assert_eq!(dns.garp.refresh, Some(secs(60)));
    assert!(matches!(
        &dns.track[1].target,
        TrackTarget::Exec { interval, timeout, user, .. }
            if *interval == secs(5) && *timeout == secs(2) && user == "nobody"
    ));
    let resolvers = c.virtual_server("resolvers").unwrap();
    assert_eq!(
        resolvers.key,
        ServiceKey::Fwmark {
            mark: 53,
            family: AddressFamily::Ipv4
        }
    );
    // The third resolver's override only changes the transport.
    let checks: Vec<&Check> = resolvers
        .real_servers
        .iter()
        .map(|r| r.checks.first().unwrap())
        .collect();
    let (CheckKind::Dns(a), CheckKind::Dns(b)) = (&checks[0].kind, &checks[2].kind) else {
        panic!("not dns")
    };
    assert_eq!(a.transport, DnsTransport::Udp);
    assert_eq!(b.transport, DnsTransport::Tcp);
    assert_eq!(a.name, b.name);
    assert_eq!((checks[2].rise, checks[2].fall), (2, 2));
    let syslog = c.virtual_server("syslog").unwrap();
    assert!(matches!(
        syslog.key,
        ServiceKey::Address {
            protocol: Protocol::Udp,
            ..
        }
    ));
    // The second syslog server's check replaces the service's (it has a `kind`).
    let c1 = syslog.real_servers[1].checks.first().unwrap();
    assert_eq!(c1.kind.name(), "exec");
    assert_eq!(c1.interval, secs(2));
    assert_eq!(c1.timeout, secs(1));
}

/// The TOML blocks of docs/config.md that are whole files (they start with `[director]`)
/// or whole sections (a director is added) are valid.
#[test]
fn the_examples_in_the_reference_are_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/config.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let mut blocks = Vec::new();
    let mut rest = doc.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").unwrap();
        blocks.push(&body[..end]);
        rest = &body[end + 3..];
    }
    let mut checked = 0;
    for block in &blocks {
        let src = if block.starts_with("[director]") {
            block.to_string()
        } else if block.starts_with("[[virtual_server]]") || block.starts_with("[vrrp.") {
            format!("[director]\nname = \"doc\"\n{block}")
        } else {
            continue;
        };
        if let Err(d) = vigil_config::parse(Path::new("config.md"), &src) {
            panic!("a block of docs/config.md is invalid:\n{src}\n{d}");
        }
        checked += 1;
    }
    assert_eq!(checked, 8, "blocks found: {}", blocks.len());
    // The first block is the complete example and has no warnings.
    assert!(ok(blocks[0]).warnings.is_empty());
}
