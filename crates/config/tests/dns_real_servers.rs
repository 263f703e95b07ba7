//! `[[virtual_server.real_servers_from_dns]]`: real servers from a DNS name.

mod common;
use common::*;

/// A director and one virtual server named `web` on 192.0.2.100:80 with a tcp check,
/// then one `real_servers_from_dns` entry whose lines start at line 8.
fn vs(entry: &str) -> String {
    format!(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = {{ kind = \"tcp\" }}\n[[virtual_server.real_servers_from_dns]]\n{entry}"
    )
}

#[test]
fn defaults_follow_the_service() {
    let l = ok(&vs("name = \"web.example.internal\"\n"));
    let v = &l.config.virtual_servers[0];
    assert!(v.real_servers.is_empty());
    let d = &v.real_servers_from_dns[0];
    assert_eq!(
        d.lookup,
        DnsLookup {
            name: "web.example.internal".into(),
            record: DnsRecord::A,
            port: Some(80),
            resolver: DnsResolver {
                nameservers: vec![],
                timeout: secs(2),
                attempts: 2,
            },
            min_ttl: secs(5),
            max_ttl: secs(300),
        }
    );
    // The template is a real server without an address: the service's check, weight 1.
    assert_eq!(d.template.weight, 1);
    assert_eq!(d.template.forwarding, Forwarding::Nat);
    assert_eq!(d.template.checks.len(), 1);
    let rs = d.real_server(sa("10.0.0.7:80"), None);
    assert_eq!((rs.address, rs.weight), (sa("10.0.0.7:80"), 1));
    assert_eq!(d.real_server(sa("10.0.0.7:80"), Some(9)).weight, 9);

    // An IPv6 service looks up AAAA.
    let l = ok(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"v6\"\naddress = \"[2001:db8::1]:443\"\nreal_servers_from_dns = [{ name = \"web\" }]\n",
    );
    let d = &l.config.virtual_servers[0].real_servers_from_dns[0];
    assert_eq!(
        (d.lookup.record, d.lookup.port),
        (DnsRecord::Aaaa, Some(443))
    );
}

#[test]
fn every_field_is_read() {
    let l = ok(&vs(
        "name = \"_http._tcp.web.example.internal.\"\ntype = \"srv\"\nnameservers = [\"127.0.0.1:5353\", \"192.0.2.53\", \"[2001:db8::53]:53\"]\ntimeout = \"500ms\"\nattempts = 3\nmin_ttl = \"1s\"\nmax_ttl = \"1m\"\ninhibit_on_failure = true\nnotify_up = [\"/bin/true\"]\ncheck = { port = 8080 }\n",
    ));
    let d = &l.config.virtual_servers[0].real_servers_from_dns[0];
    assert_eq!(d.lookup.record, DnsRecord::Srv);
    assert_eq!(d.lookup.port, None);
    assert_eq!(
        d.lookup.resolver.nameservers,
        [
            sa("127.0.0.1:5353"),
            sa("192.0.2.53:53"),
            sa("[2001:db8::53]:53")
        ]
    );
    assert_eq!(d.lookup.resolver.timeout, ms(500));
    assert_eq!(d.lookup.resolver.attempts, 3);
    assert_eq!((d.lookup.min_ttl, d.lookup.max_ttl), (secs(1), secs(60)));
    assert!(d.template.inhibit_on_failure);
    assert_eq!(d.template.notify_up, Some(vec!["/bin/true".to_string()]));
    // A check without `kind` is merged over the service's, as for a real_server.
    assert_eq!(d.template.checks[0].port, Some(8080));
}

#[test]
fn bad_values_are_reported_with_their_place() {
    assert_error(
        &vs("name = \"10.0.0.1\"\n"),
        "t.toml:8:8: error: `virtual_server.web.real_servers_from_dns[0].name`: \"10.0.0.1\" is an address, not a name",
    );
    assert_error(
        &vs("name = \"web server\"\n"),
        "t.toml:8:8: error: `virtual_server.web.real_servers_from_dns[0].name`: \"web server\" is not a valid DNS name",
    );
    assert_error(
        &vs("type = \"A\"\n"),
        "t.toml:7:1: error: missing required field `virtual_server.web.real_servers_from_dns[0].name`",
    );
    assert_error(
        &vs("name = \"web\"\ntype = \"MX\"\n"),
        "t.toml:9:8: error: `virtual_server.web.real_servers_from_dns[0].type`: unknown value \"MX\"",
    );
    assert_error(
        &vs("name = \"web\"\ntype = \"AAAA\"\n"),
        "t.toml:9:8: error: `virtual_server.web.real_servers_from_dns[0].type`: AAAA records give IPv6 addresses but the service is IPv4",
    );
    assert_error(
        &vs("name = \"web\"\ntype = \"SRV\"\nport = 80\n"),
        "t.toml:10:8: error: `virtual_server.web.real_servers_from_dns[0].port`: SRV records give the port of each server",
    );
    assert_error(
        &vs("name = \"web\"\ntype = \"SRV\"\nweight = 5\n"),
        "t.toml:10:10: error: `virtual_server.web.real_servers_from_dns[0].weight`: SRV records give the weight of each server",
    );
    assert_error(
        &vs("name = \"web\"\nforwarding = \"dr\"\nport = 8080\n"),
        "t.toml:10:8: error: `virtual_server.web.real_servers_from_dns[0].port` = 8080 but dr forwarding cannot change the port of the service (80)",
    );
    assert_error(
        &vs("name = \"web\"\nnameservers = [\"dns.example\"]\n"),
        "t.toml:9:16: error: `virtual_server.web.real_servers_from_dns[0].nameservers[0]`: \"dns.example\" is not an IP address (with an optional port)",
    );
    assert_error(
        &vs("name = \"web\"\nnameservers = []\n"),
        "t.toml:9:15: error: `virtual_server.web.real_servers_from_dns[0].nameservers` must list 1 to 8 servers, found 0",
    );
    assert_error(
        &vs("name = \"web\"\ntimeout = \"10ms\"\n"),
        "t.toml:9:11: error: `virtual_server.web.real_servers_from_dns[0].timeout` must be within 100ms–30s",
    );
    assert_error(
        &vs("name = \"web\"\nattempts = 0\n"),
        "t.toml:9:12: error: `virtual_server.web.real_servers_from_dns[0].attempts` = 0 is out of range 1–10",
    );
    assert_error(
        &vs("name = \"web\"\nmin_ttl = \"500ms\"\n"),
        "t.toml:9:11: error: `virtual_server.web.real_servers_from_dns[0].min_ttl` must be within 1s–1d",
    );
    assert_error(
        &vs("name = \"web\"\nmin_ttl = \"10m\"\nmax_ttl = \"1m\"\n"),
        "t.toml:10:11: error: `virtual_server.web.real_servers_from_dns[0].max_ttl` (1m) must not be below `min_ttl` (10m)",
    );
    // The template is a real_server without an address: `address` is not one of its keys.
    assert_error(
        &vs("name = \"web\"\naddress = \"10.0.0.1\"\n"),
        "t.toml:9:1: error: unknown field `virtual_server.web.real_servers_from_dns[0].address`",
    );
    assert_error(
        &vs("name = \"web\"\n[[virtual_server.real_servers_from_dns]]\nname = \"WEB.\"\n"),
        "t.toml:9:1: error: `virtual_server.web.real_servers_from_dns[1]`: A WEB. appears twice",
    );
}

#[test]
fn a_fwmark_service_needs_a_port() {
    assert_error(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"m\"\nfwmark = 3\nreal_servers_from_dns = [{ name = \"web\" }]\n",
        "t.toml:6:26: error: `virtual_server.m.real_servers_from_dns[0]` needs `port`: a fwmark service has no port to take",
    );
    let l = ok(
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"m\"\nfwmark = 3\nreal_servers_from_dns = [{ name = \"web\", port = 80 }]\n",
    );
    assert_eq!(
        l.config.virtual_servers[0].real_servers_from_dns[0]
            .lookup
            .port,
        Some(80)
    );
}

#[test]
fn a_quorum_is_not_judged_against_servers_dns_will_give() {
    ok(&format!(
        "{}quorum = 3\n[[virtual_server.real_server]]\naddress = \"10.0.0.1\"\n[[virtual_server.real_servers_from_dns]]\nname = \"web\"\n",
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\n"
    ));
}
