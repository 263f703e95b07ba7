//! IPVS options keepalived users rely on: `one_packet` (keepalived's `ops`), tunnel
//! encapsulation (`lvs_method TUN type ...`), `[ipvs_timeouts]` (`lvs_timeouts`) and the
//! sync daemon's `maxlen`/`port`/`ttl`/`group` (`lvs_sync_daemon ...`).

mod common;
use common::*;
use std::time::Duration;

/// A director and one virtual server named `web` (line 3 is the header), its keys
/// `head` from line 4, then `extra` lines.
fn vs(head: &str, extra: &str) -> String {
    format!("[director]\nname = \"lb\"\n[[virtual_server]]\n{head}name = \"web\"\n{extra}")
}

#[test]
fn one_packet_on_udp_and_fwmark_services() {
    let l = ok(&vs(
        "",
        "address = \"192.0.2.100:53\"\nprotocol = \"udp\"\none_packet = true\n",
    ));
    assert!(l.config.virtual_servers[0].one_packet);
    let l = ok(&vs("", "fwmark = 7\none_packet = true\n"));
    assert!(l.config.virtual_servers[0].one_packet);
    let l = ok(&vs("", "address = \"192.0.2.100:53\"\n"));
    assert!(!l.config.virtual_servers[0].one_packet);
}

#[test]
fn one_packet_on_tcp_is_an_error() {
    let src = vs("", "address = \"192.0.2.100:80\"\none_packet = true\n");
    let help = assert_error(
        &src,
        "t.toml:6:14: error: `virtual_server.web.one_packet` applies only to UDP services, not tcp",
    );
    assert_eq!(
        help.as_deref(),
        Some("set protocol = \"udp\", or use a fwmark service that carries UDP")
    );
    assert_error(
        &vs("", "address = \"192.0.2.100:80\"\none_packet = 1\n"),
        "t.toml:6:14: error: `virtual_server.web.one_packet` must be true or false, found an integer",
    );
}

fn tunnel_vs(vs_keys: &str, rs: &str) -> String {
    vs(
        "",
        &format!(
            "address = \"192.0.2.100:80\"\nforwarding = \"tunnel\"\n{vs_keys}real_server = [{rs}]\n"
        ),
    )
}

#[test]
fn tunnel_settings_are_inherited_or_replaced() {
    let l = ok(&tunnel_vs(
        "tunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"remcsum\"\n",
        "{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\", tunnel_type = \"gre\", tunnel_checksum = \"csum\" }, { address = \"10.0.0.3\", tunnel_type = \"ipip\" }",
    ));
    let v = &l.config.virtual_servers[0];
    let gue = Tunnel {
        kind: TunnelType::Gue,
        port: Some(6080),
        checksum: TunnelChecksum::Remcsum,
    };
    assert_eq!(v.tunnel, Some(gue));
    assert_eq!(v.real_servers[0].tunnel, Some(gue));
    assert_eq!(
        v.real_servers[1].tunnel,
        Some(Tunnel {
            kind: TunnelType::Gre,
            port: None,
            checksum: TunnelChecksum::Csum,
        })
    );
    assert_eq!(v.real_servers[2].tunnel, Some(Tunnel::default()));

    // Tunnel forwarding without settings: IP-in-IP; other forwarding: none.
    let l = ok(&tunnel_vs("", "{ address = \"10.0.0.1\" }"));
    assert_eq!(l.config.virtual_servers[0].tunnel, Some(Tunnel::default()));
    assert_eq!(
        l.config.virtual_servers[0].real_servers[0].tunnel,
        Some(Tunnel::default())
    );
    let l = ok(&vs(
        "",
        "address = \"192.0.2.100:80\"\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\", forwarding = \"tunnel\", tunnel_type = \"gre\" }]\n",
    ));
    let v = &l.config.virtual_servers[0];
    assert_eq!((v.tunnel, v.real_servers[0].tunnel), (None, None));
    assert_eq!(
        v.real_servers[1].tunnel.map(|t| t.kind),
        Some(TunnelType::Gre)
    );
}

#[test]
fn tunnel_settings_errors() {
    // Not tunnel forwarding.
    assert_error(
        &vs(
            "",
            "address = \"192.0.2.100:80\"\nforwarding = \"dr\"\ntunnel_type = \"gue\"\n",
        ),
        "t.toml:7:15: error: `virtual_server.web.tunnel_type` applies only to tunnel forwarding, not dr",
    );
    assert_error(
        &vs(
            "",
            "address = \"192.0.2.100:80\"\nreal_server = [{ address = \"10.0.0.1\", tunnel_port = 6080 }]\n",
        ),
        "t.toml:6:54: error: `virtual_server.web.real_server[0].tunnel_port` applies only to tunnel forwarding, not nat",
    );
    // GUE needs its port; the port is GUE's only.
    assert_error(
        &tunnel_vs("tunnel_type = \"gue\"\n", ""),
        "t.toml:7:15: error: `virtual_server.web.tunnel_type` = \"gue\" needs `tunnel_port` (the real server's GUE port)",
    );
    assert_error(
        &tunnel_vs("tunnel_type = \"gre\"\ntunnel_port = 6080\n", ""),
        "t.toml:8:15: error: `virtual_server.web.tunnel_port` applies only to tunnel_type = \"gue\", not gre",
    );
    // A real server's settings replace the virtual server's whole.
    assert_error(
        &tunnel_vs(
            "tunnel_type = \"gue\"\ntunnel_port = 6080\n",
            "{ address = \"10.0.0.1\", tunnel_port = 7000 }",
        ),
        "t.toml:9:54: error: `virtual_server.web.real_server[0].tunnel_port` applies only to tunnel_type = \"gue\", not ipip",
    );
    // Checksums: none for IP-in-IP, remote offload for GUE only.
    assert_error(
        &tunnel_vs("tunnel_checksum = \"csum\"\n", ""),
        "t.toml:7:19: error: `virtual_server.web.tunnel_checksum` = \"csum\" applies only to tunnel_type \"gue\" or \"gre\", not ipip",
    );
    assert_error(
        &tunnel_vs("tunnel_type = \"gre\"\ntunnel_checksum = \"remcsum\"\n", ""),
        "t.toml:8:19: error: `virtual_server.web.tunnel_checksum` = \"remcsum\" applies only to tunnel_type \"gue\", not gre",
    );
    // Ranges and names.
    assert_error(
        &tunnel_vs("tunnel_type = \"gue\"\ntunnel_port = 0\n", ""),
        "t.toml:8:15: error: `virtual_server.web.tunnel_port` = 0 is out of range 1–65535",
    );
    assert_errors(
        &tunnel_vs("tunnel_type = \"vxlan\"\n", ""),
        &["t.toml:7:15: error: `virtual_server.web.tunnel_type`: unknown value \"vxlan\""],
    );
}

const SYNC: &str = r#"[director]
name = "lb"
[vrrp.web]
interface = "eth0"
vrid = 51
vips = ["192.0.2.100/24"]
[ipvs_sync]
interface = "eth1"
instance = "web"
"#;

#[test]
fn ipvs_sync_parameters() {
    let l = ok(&format!(
        "{SYNC}maxlen = 1400\nport = 8850\nttl = 2\ngroup = \"239.1.2.3\"\n"
    ));
    let s = l.config.ipvs_sync.unwrap();
    assert_eq!(
        (s.maxlen, s.port, s.ttl, s.group),
        (Some(1400), Some(8850), Some(2), Some(ip("239.1.2.3")))
    );
    let l = ok(&format!("{SYNC}group = \"ff02::8:81\"\n"));
    assert_eq!(l.config.ipvs_sync.unwrap().group, Some(ip("ff02::8:81")));
    let s = ok(SYNC).config.ipvs_sync.unwrap();
    assert_eq!((s.maxlen, s.port, s.ttl, s.group), (None, None, None, None));
}

#[test]
fn ipvs_sync_parameter_errors() {
    assert_errors(
        &format!("{SYNC}maxlen = 65508\nport = 0\nttl = 256\ngroup = \"10.0.0.1\"\n"),
        &[
            "t.toml:10:10: error: `ipvs_sync.maxlen` = 65508 is out of range 1–65507",
            "t.toml:11:8: error: `ipvs_sync.port` = 0 is out of range 1–65535",
            "t.toml:12:7: error: `ipvs_sync.ttl` = 256 is out of range 1–255",
            "t.toml:13:9: error: `ipvs_sync.group`: 10.0.0.1 is not a multicast address",
        ],
    );
    assert_error(
        &format!("{SYNC}group = \"nope\"\n"),
        "t.toml:10:9: error: `ipvs_sync.group`: \"nope\" is not an IP address",
    );
}

const TIMEOUTS: &str = "[director]\nname = \"lb\"\n[ipvs_timeouts]\n";

#[test]
fn ipvs_timeouts() {
    let l = ok(&format!(
        "{TIMEOUTS}tcp = \"2h\"\ntcp_fin = \"2m\"\nudp = \"300s\"\n"
    ));
    assert_eq!(
        l.config.ipvs_timeouts,
        Some(IpvsTimeouts {
            tcp: Some(Duration::from_secs(7200)),
            tcp_fin: Some(secs(120)),
            udp: Some(secs(300)),
        })
    );
    let l = ok(&format!("{TIMEOUTS}udp = \"5s\"\n"));
    assert_eq!(
        l.config.ipvs_timeouts,
        Some(IpvsTimeouts {
            tcp: None,
            tcp_fin: None,
            udp: Some(secs(5)),
        })
    );
    assert_eq!(ok("[director]\nname = \"lb\"\n").config.ipvs_timeouts, None);
}

#[test]
fn ipvs_timeouts_errors() {
    assert_errors(
        &format!("{TIMEOUTS}tcp = \"1500ms\"\ntcp_fin = \"0s\"\nudp = \"600h\"\n"),
        &[
            "t.toml:4:7: error: `ipvs_timeouts.tcp` must be a whole number of seconds from 1s to 2147483s",
            "t.toml:5:11: error: `ipvs_timeouts.tcp_fin` must be a whole number of seconds from 1s to 2147483s",
            "t.toml:6:7: error: `ipvs_timeouts.udp` must be a whole number of seconds from 1s to 2147483s",
        ],
    );
    let help = assert_error(TIMEOUTS, "t.toml:3:1: error: `ipvs_timeouts` sets nothing");
    assert_eq!(
        help.as_deref(),
        Some("give tcp, tcp_fin or udp, e.g. tcp = \"15m\"")
    );
    assert_error(
        &format!("{TIMEOUTS}tcpfin = \"2m\"\n"),
        "t.toml:4:1: error: unknown field `ipvs_timeouts.tcpfin`",
    );
    assert_error(
        "ipvs_timeouts = 5\n[director]\nname = \"lb\"\n",
        "t.toml:1:17: error: `ipvs_timeouts` must be a table, found an integer",
    );
}
