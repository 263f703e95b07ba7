//! From the configuration, health and operator drains to what IPVS should hold: only the
//! translation from `vigil-config` terms to `vigil-ipvs` terms. The rules themselves
//! (inhibit, quorum, sorry server) are `vigil_ipvs::policy`'s.

use std::net::{Ipv4Addr, SocketAddr};

use vigil_config as config;
use vigil_ipvs as ipvs;
use vigil_ipvs::policy::{self, ServicePolicy, SorryServer};

pub fn service_key(key: &config::ServiceKey) -> ipvs::ServiceKey {
    match *key {
        config::ServiceKey::Address { protocol, address } => ipvs::ServiceKey::Addr {
            protocol: match protocol {
                config::Protocol::Tcp => ipvs::Protocol::Tcp,
                config::Protocol::Udp => ipvs::Protocol::Udp,
                config::Protocol::Sctp => ipvs::Protocol::Sctp,
            },
            addr: address,
        },
        config::ServiceKey::Fwmark { mark, family } => ipvs::ServiceKey::Fwmark {
            family: family_of(family),
            mark,
        },
    }
}

fn family_of(f: config::AddressFamily) -> ipvs::Family {
    match f {
        config::AddressFamily::Ipv4 => ipvs::Family::Inet,
        config::AddressFamily::Ipv6 => ipvs::Family::Inet6,
    }
}

pub fn forward(f: config::Forwarding) -> ipvs::ForwardMethod {
    match f {
        config::Forwarding::Nat => ipvs::ForwardMethod::Masquerade,
        config::Forwarding::Dr => ipvs::ForwardMethod::DirectRoute,
        config::Forwarding::Tunnel => ipvs::ForwardMethod::Tunnel,
    }
}

/// The IPVS service (scheduler, flags, persistence) of a virtual server.
pub fn service(vs: &config::VirtualServer) -> ipvs::Service {
    let key = service_key(&vs.key);
    let mut s = ipvs::Service::new(key, vs.scheduler.clone());
    for flag in &vs.scheduler_flags {
        s.flags |= match flag {
            config::SchedulerFlag::Fallback => ipvs::ServiceFlags::SH_FALLBACK,
            config::SchedulerFlag::Port => ipvs::ServiceFlags::SH_PORT,
        };
    }
    if vs.one_packet {
        s.flags |= ipvs::ServiceFlags::ONE_PACKET;
    }
    if let Some(p) = &vs.persistence {
        // Validation keeps the timeout within u32 seconds.
        s = s.persistent(u32::try_from(p.timeout.as_secs()).unwrap_or(u32::MAX));
        s.netmask = match key.family() {
            ipvs::Family::Inet => ipvs::Netmask::V4(prefix_mask_v4(p.prefix_len)),
            ipvs::Family::Inet6 => ipvs::Netmask::V6(p.prefix_len),
        };
    }
    s
}

/// What each IPVS service of `vs` should hold, `desired` being its first's: a group's
/// services (`addresses`/`fwmarks`) hold the same real servers, settings and weights.
pub fn group_desired(
    vs: &config::VirtualServer,
    desired: ipvs::DesiredService,
) -> Vec<(ipvs::ServiceKey, ipvs::DesiredService)> {
    let mut out = Vec::with_capacity(1 + vs.group.len());
    for key in &vs.group {
        let mut d = desired.clone();
        d.service.key = service_key(key);
        out.push((d.service.key, d));
    }
    out.insert(0, (service_key(&vs.key), desired));
    out
}

/// A server's encapsulation; without one (not tunnel forwarding) the kernel's default,
/// which it ignores for other methods.
pub fn tunnel(t: Option<config::Tunnel>) -> ipvs::Tunnel {
    let Some(t) = t else {
        return ipvs::Tunnel::default();
    };
    ipvs::Tunnel {
        kind: match t.kind {
            config::TunnelType::Ipip => ipvs::TunnelType::Ipip,
            config::TunnelType::Gue => ipvs::TunnelType::Gue,
            config::TunnelType::Gre => ipvs::TunnelType::Gre,
        },
        port: t.port.unwrap_or(0),
        // IP_VS_TUNNEL_ENCAP_FLAG_NOCSUM / _CSUM / _REMCSUM.
        flags: match t.checksum {
            config::TunnelChecksum::None => 0,
            config::TunnelChecksum::Csum => 1,
            config::TunnelChecksum::Remcsum => 2,
        },
    }
}

/// The sync daemon `[ipvs_sync]` asks for, in `state`.
pub fn sync_daemon(sync: &config::IpvsSync, state: ipvs::SyncState) -> ipvs::SyncDaemon {
    let mut d = ipvs::SyncDaemon::new(state, sync.interface.clone(), sync.sync_id);
    d.sync_maxlen = sync.maxlen;
    d.mcast_port = sync.port;
    d.mcast_ttl = sync.ttl;
    d.mcast_group = sync.group;
    d
}

/// `[ipvs_timeouts]` for the kernel: 0 leaves a timeout as it is.
pub fn timeouts(t: &config::IpvsTimeouts) -> ipvs::Timeouts {
    // Validation keeps each within the kernel's bound (far below u32::MAX).
    let secs = |d: Option<std::time::Duration>| {
        d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
    };
    ipvs::Timeouts {
        tcp: secs(t.tcp),
        tcp_fin: secs(t.tcp_fin),
        udp: secs(t.udp),
    }
}

fn prefix_mask_v4(len: u8) -> Ipv4Addr {
    let len = u32::from(len.min(32));
    Ipv4Addr::from(if len == 0 { 0 } else { u32::MAX << (32 - len) })
}

/// How the daemon knows a real server's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Up,
    Down,
    /// Its check has not reached a verdict yet.
    Pending,
}

/// The policy input for one virtual server. `dynamic_weight` is the weight a real
/// server's dynamic checks give it (exec `dynamic_weight`, file `weight`), if any.
pub fn policy(
    vs: &config::VirtualServer,
    health: impl Fn(SocketAddr) -> Known,
    dynamic_weight: impl Fn(SocketAddr) -> Option<u32>,
    drained: impl Fn(SocketAddr) -> bool,
) -> ServicePolicy {
    let reals = vs
        .real_servers
        .iter()
        .map(|rs| {
            let h = match health(rs.address) {
                // No check: always up, like keepalived without a checker.
                _ if rs.checks.is_empty() => policy::Health::Up,
                Known::Up => policy::Health::Up,
                Known::Down => policy::Health::Down,
                // Up only if every check starts up (all of them must pass).
                Known::Pending => policy::Health::Unknown {
                    assume_up: rs
                        .checks
                        .iter()
                        .all(|c| c.initial_state == config::InitialState::Up),
                },
            };
            let weight = dynamic_weight(rs.address).unwrap_or(rs.weight);
            let mut r = policy::RealServer::new(rs.address, weight, forward(rs.forwarding))
                .with_health(h)
                .drained(drained(rs.address));
            r.upper_threshold = rs.upper_threshold.unwrap_or(0);
            r.lower_threshold = rs.lower_threshold.unwrap_or(0);
            r.inhibit_on_failure = Some(rs.inhibit_on_failure);
            r.tunnel = tunnel(rs.tunnel);
            r
        })
        .collect();
    let mut p = ServicePolicy::new(service(vs), reals);
    p.quorum = vs.quorum;
    p.hysteresis = vs.hysteresis;
    p.inhibit_on_failure = vs.inhibit_on_failure;
    p.quorum_by_weight = vs.quorum_by == config::QuorumBy::Weight;
    p.sorry_server = vs.sorry_server.map(|addr| SorryServer {
        addr,
        forward: forward(vs.forwarding),
    });
    p.sorry_tunnel = tunnel(vs.tunnel);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs(src: &str) -> config::VirtualServer {
        let text = format!("[director]\nname = \"t\"\n{src}");
        let loaded = vigil_config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        loaded.config.virtual_servers[0].clone()
    }

    #[test]
    fn maps_keys_scheduler_flags_and_persistence() {
        let v = vs(
            "[[virtual_server]]\nname = \"w\"\naddress = \"192.0.2.1:80\"\nscheduler = \"sh\"\nscheduler_flags = [\"fallback\", \"port\"]\npersistence = \"300s\"\npersistence_prefix = 24\n",
        );
        let s = service(&v);
        assert_eq!(
            s.key,
            ipvs::ServiceKey::tcp("192.0.2.1:80".parse().unwrap())
        );
        assert_eq!(s.scheduler, "sh");
        assert_eq!(
            s.flags,
            ipvs::ServiceFlags::PERSISTENT
                | ipvs::ServiceFlags::SH_FALLBACK
                | ipvs::ServiceFlags::SH_PORT
        );
        assert_eq!(s.timeout, 300);
        assert_eq!(
            s.netmask,
            ipvs::Netmask::V4(Ipv4Addr::new(255, 255, 255, 0))
        );

        let f = vs("[[virtual_server]]\nname = \"m\"\nfwmark = 7\nfamily = \"ipv6\"\n");
        assert_eq!(
            service(&f).key,
            ipvs::ServiceKey::Fwmark {
                family: ipvs::Family::Inet6,
                mark: 7
            }
        );
    }

    #[test]
    fn maps_one_packet_and_tunnel_settings() {
        let u = vs(
            "[[virtual_server]]\nname = \"d\"\naddress = \"192.0.2.1:53\"\nprotocol = \"udp\"\none_packet = true\n",
        );
        assert_eq!(service(&u).flags, ipvs::ServiceFlags::ONE_PACKET);
        let t = vs(
            "[[virtual_server]]\nname = \"t\"\naddress = \"192.0.2.1:80\"\nforwarding = \"tunnel\"\ntunnel_type = \"gue\"\ntunnel_port = 6080\ntunnel_checksum = \"remcsum\"\nsorry_server = \"192.0.2.9\"\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\", tunnel_type = \"gre\", tunnel_checksum = \"csum\" }, { address = \"10.0.0.3\", forwarding = \"nat\" }]\n",
        );
        let p = policy(&t, |_| Known::Up, |_| None, |_| false);
        let gue = ipvs::Tunnel {
            kind: ipvs::TunnelType::Gue,
            port: 6080,
            flags: 2,
        };
        assert_eq!(p.reals[0].tunnel, gue);
        assert_eq!(
            p.reals[1].tunnel,
            ipvs::Tunnel {
                kind: ipvs::TunnelType::Gre,
                port: 0,
                flags: 1
            }
        );
        assert_eq!(p.reals[2].tunnel, ipvs::Tunnel::default());
        assert_eq!(p.sorry_tunnel, gue);
    }

    #[test]
    fn maps_sync_daemon_parameters_and_timeouts() {
        let text = "[director]\nname = \"t\"\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 51\nvips = [\"192.0.2.100/24\"]\n[ipvs_sync]\ninterface = \"eth1\"\ninstance = \"web\"\nmaxlen = 1400\nport = 8850\nttl = 2\ngroup = \"239.1.2.3\"\n[ipvs_timeouts]\ntcp = \"2h\"\nudp = \"5s\"\n";
        let c = vigil_config::parse(std::path::Path::new("t.toml"), text)
            .unwrap()
            .config;
        let d = sync_daemon(c.ipvs_sync.as_ref().unwrap(), ipvs::SyncState::Backup);
        assert_eq!(
            (d.state, d.interface.as_str(), d.sync_id),
            (ipvs::SyncState::Backup, "eth1", 51)
        );
        assert_eq!(
            (d.sync_maxlen, d.mcast_port, d.mcast_ttl, d.mcast_group),
            (
                Some(1400),
                Some(8850),
                Some(2),
                Some("239.1.2.3".parse().unwrap())
            )
        );
        assert_eq!(
            timeouts(c.ipvs_timeouts.as_ref().unwrap()),
            ipvs::Timeouts {
                tcp: 7200,
                tcp_fin: 0,
                udp: 5
            }
        );
    }

    #[test]
    fn pending_checks_follow_their_initial_state_and_unchecked_servers_are_up() {
        let v = vs(
            "[[virtual_server]]\nname = \"w\"\naddress = \"192.0.2.1:80\"\nforwarding = \"dr\"\nsorry_server = \"192.0.2.9\"\ncheck = { kind = \"tcp\" }\nreal_server = [{ address = \"10.0.0.1\", weight = 5 }, { address = \"10.0.0.2\", check = { initial_state = \"up\" } }, { address = \"10.0.0.3\", check = false }]\n",
        );
        let p = policy(
            &v,
            |_| Known::Pending,
            |_| None,
            |a| a.port() == 80 && a.ip().to_string() == "10.0.0.3",
        );
        let h: Vec<_> = p.reals.iter().map(|r| r.health).collect();
        assert_eq!(
            h,
            [
                policy::Health::Unknown { assume_up: false },
                policy::Health::Unknown { assume_up: true },
                policy::Health::Up
            ]
        );
        assert_eq!(p.reals[0].weight, 5);
        assert_eq!(p.reals[0].forward, ipvs::ForwardMethod::DirectRoute);
        assert!(p.reals[2].drained);
        assert_eq!(
            p.sorry_server.unwrap().addr,
            "192.0.2.9:80".parse().unwrap()
        );
    }

    #[test]
    fn a_group_is_one_evaluation_installed_as_each_of_its_services() {
        let v = vs(
            "[[virtual_server]]\nname = \"g\"\naddresses = [\"192.0.2.1:80\", \"192.0.2.10-11:80\"]\nfwmarks = [7]\nscheduler = \"rr\"\ncheck = { kind = \"tcp\" }\nreal_server = [{ address = \"10.0.0.1\" }, { address = \"10.0.0.2\" }]\n",
        );
        let e = policy::evaluate(
            &policy(
                &v,
                |a| {
                    if a.ip().to_string() == "10.0.0.2" {
                        Known::Down
                    } else {
                        Known::Up
                    }
                },
                |_| None,
                |_| false,
            ),
            None,
        );
        let all = group_desired(&v, e.desired.clone());
        let keys: Vec<_> = all.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                ipvs::ServiceKey::tcp("192.0.2.1:80".parse().unwrap()),
                ipvs::ServiceKey::tcp("192.0.2.10:80".parse().unwrap()),
                ipvs::ServiceKey::tcp("192.0.2.11:80".parse().unwrap()),
                ipvs::ServiceKey::Fwmark {
                    family: ipvs::Family::Inet,
                    mark: 7
                },
            ]
        );
        // Each service holds the same destinations and settings, under its own key.
        for (k, d) in &all {
            assert_eq!(d.service.key, *k);
            assert_eq!(d.service.scheduler, "rr");
            assert_eq!(d.destinations, e.desired.destinations);
            assert_eq!(d.unsettled, e.desired.unsettled);
        }
        let dests: Vec<_> = e.desired.destinations.keys().map(|k| k.0).collect();
        assert_eq!(dests, ["10.0.0.1:80".parse::<SocketAddr>().unwrap()]);
        // A single service is itself.
        let one = vs("[[virtual_server]]\nname = \"w\"\naddress = \"192.0.2.1:80\"\n");
        let e = policy::evaluate(&policy(&one, |_| Known::Up, |_| None, |_| false), None);
        assert_eq!(group_desired(&one, e.desired).len(), 1);
    }

    #[test]
    fn mh_keeps_failed_servers_in_the_configured_order_despite_inhibit_false() {
        let v = vs(
            "[[virtual_server]]\nname = \"w\"\naddress = \"192.0.2.1:80\"\nscheduler = \"mh\"\ninhibit_on_failure = false\ncheck = { kind = \"tcp\" }\nreal_server = [{ address = \"10.0.0.3\" }, { address = \"10.0.0.1\" }]\n",
        );
        let e = policy::evaluate(&policy(&v, |_| Known::Down, |_| None, |_| false), None);
        let order: Vec<String> = e.desired.order.iter().map(|k| k.0.to_string()).collect();
        assert_eq!(order, ["10.0.0.3:80", "10.0.0.1:80"]);
        let weights: Vec<u32> = e.desired.destinations.values().map(|d| d.weight).collect();
        assert_eq!(weights, [0, 0]);
    }

    #[test]
    fn quorum_by_weight_and_inhibit_per_real_server_reach_the_policy() {
        let v = vs(
            "[[virtual_server]]\nname = \"w\"\naddress = \"192.0.2.1:80\"\nquorum_by = \"weight\"\nquorum = 3\ninhibit_on_failure = true\nreal_server = [{ address = \"10.0.0.1\", weight = 3, inhibit_on_failure = false }, { address = \"10.0.0.2\" }]\n",
        );
        let p = policy(&v, |_| Known::Up, |_| None, |_| false);
        assert!(p.quorum_by_weight && p.inhibit_on_failure);
        assert_eq!(p.quorum, 3);
        let inhibit: Vec<_> = p.reals.iter().map(|r| r.inhibit_on_failure).collect();
        assert_eq!(inhibit, [Some(false), Some(true)]);
    }
}
