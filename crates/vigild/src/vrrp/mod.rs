//! VRRP in the daemon: one `vigil_vrrp` runner per configured instance, their tracked
//! objects, sync groups, reload differences, and the registry the status socket reads.
//!
//! - Tracking: every instance implicitly tracks its own interface with weight 0 (a link
//!   without carrier puts it in Fault, as keepalived does), plus its `track` entries:
//!   interfaces (polled), exec programs (run every `interval`, killed after `timeout`,
//!   up or down after `rise` / `fall` results), files (a number, re-read on inotify
//!   events), processes (a quorum, from a /proc scan) and virtual servers: the director
//!   reports each virtual server's
//!   quorum through [`VrrpManager::virtual_server_health`]; until its first report, a
//!   virtual server counts as up.
//! - Sync groups: every state change is turned into directives for the other members
//!   with [`vigil_vrrp::sync_group_directives`].
//! - Reload: unchanged instances keep running untouched; instances whose change the
//!   running instance can take ([`reload_change`]: announcement schedule, notify hook,
//!   priority, preemption, virtual addresses, tracking, sync group) take it in place,
//!   keeping their state;
//!   other changed ones are stopped gracefully and started again; removed ones are
//!   stopped gracefully; new ones start.
//!
//! Rooms: [`registry`] (what the status socket reads and steers), [`manager`] (the VRRP
//! task and its command channel), [`trackers`], [`sync_groups`], and [`view`] (the
//! status socket's form of it all); the mapping from the cluster file stays here.

mod manager;
mod procscan;
mod registry;
mod sync_groups;
mod trackers;
mod view;

pub use manager::{VrrpHandle, VrrpManager};
pub use registry::Registry;
pub use sync_groups::SYNC_RECONCILE;
pub use view::{fill_live, state_event, state_view, transition_view};

use std::net::IpAddr;

use vigil_config::{Config, TrackTarget, VrrpInstance, VrrpVersion};
use vigil_vrrp::io::{self as vio, ReloadChange, RunnerConfig};
use vigil_vrrp::{Auth, Family, Password, Version};

/// One message per instance whose adverts would not fit its interface's MTU, asked of
/// `mtu` (vigil-config must not look at the running system, docs/design.md). An
/// interface that cannot be asked (not there yet) is left to the runner, which checks
/// again when it appears.
pub fn adverts_over_mtu(config: &Config, mtu: &dyn Fn(&str) -> Option<u32>) -> Vec<String> {
    config
        .vrrp
        .iter()
        .filter_map(|v| vio::advert_too_big(&runner_config(v), mtu(&v.interface)?))
        .collect()
}

/// The interface's MTU, `None` when it cannot be read.
pub fn interface_mtu(name: &str) -> Option<u32> {
    vio::iface::mtu(name).ok()
}

/// The runner's view of a configured instance.
pub fn runner_config(v: &VrrpInstance) -> RunnerConfig {
    RunnerConfig {
        name: v.name.clone(),
        interface: v.interface.clone(),
        vrid: v.vrid,
        version: match v.version {
            VrrpVersion::V2 => Version::V2,
            VrrpVersion::V3 => Version::V3,
        },
        priority: v.priority,
        advert_interval: v.advert_interval,
        preempt: v.preempt,
        preempt_delay: v.preempt_delay,
        family: match v.family {
            vigil_config::AddressFamily::Ipv4 => Family::Ipv4,
            vigil_config::AddressFamily::Ipv6 => Family::Ipv6,
        },
        vips: v.vips.iter().map(|p| (p.addr, p.prefix_len)).collect(),
        vips_excluded: v
            .vips_excluded
            .iter()
            .map(|p| (p.addr, p.prefix_len))
            .collect(),
        unicast_peers: v.unicast_peers.clone(),
        unicast_source: v.unicast_source,
        allowed_peers: v.allowed_peers.clone(),
        unicast_accept_any_ttl: v.unicast_accept_any_ttl,
        learned_interval_factor: v.learned_interval_factor,
        // Validation bounds the password to 1..=8 bytes, so Password::new cannot fail.
        auth: match v
            .auth_password
            .as_deref()
            .map(|p| Password::new(p.as_bytes()))
        {
            Some(Ok(password)) => Auth::SimplePassword(password),
            _ => Auth::None,
        },
        garp: vio::GarpConfig {
            repeat: v.garp.repeat,
            interval: v.garp.interval,
            refresh: v.garp.refresh,
        },
        notify: notify_hooks(&v.hooks),
        routes: v
            .virtual_routes
            .iter()
            .map(|r| vigil_netlink::RouteSpec {
                destination: r.to.addr,
                prefix_len: r.to.prefix_len,
                gateway: r.via,
                dev: r.dev.clone(),
                source: r.src,
                table: r.table,
                metric: r.metric,
                scope: r.scope,
                protocol: r.protocol,
                kind: match r.kind {
                    vigil_config::RouteKind::Unicast => vigil_netlink::RouteKind::Unicast,
                    vigil_config::RouteKind::Blackhole => vigil_netlink::RouteKind::Blackhole,
                    vigil_config::RouteKind::Unreachable => vigil_netlink::RouteKind::Unreachable,
                    vigil_config::RouteKind::Prohibit => vigil_netlink::RouteKind::Prohibit,
                },
            })
            .collect(),
        rules: v
            .virtual_rules
            .iter()
            .map(|r| vigil_netlink::RuleSpec {
                ipv6: r.family == vigil_config::AddressFamily::Ipv6,
                from: r.from.map(|p| (p.addr, p.prefix_len)),
                to: r.to.map(|p| (p.addr, p.prefix_len)),
                iif: r.iif.clone(),
                oif: r.oif.clone(),
                fwmark: r.fwmark,
                fwmask: r.fwmask,
                priority: r.priority,
                kind: match r.action {
                    vigil_config::RuleAction::Table(t) => vigil_netlink::RuleKind::Table(t),
                    vigil_config::RuleAction::Blackhole => vigil_netlink::RuleKind::Blackhole,
                    vigil_config::RuleAction::Unreachable => vigil_netlink::RuleKind::Unreachable,
                    vigil_config::RuleAction::Prohibit => vigil_netlink::RuleKind::Prohibit,
                },
            })
            .collect(),
        vmac: v.vmac.as_ref().map(|m| vigil_vrrp::VmacConfig {
            name: m.name.clone(),
            xmit_base: m.xmit_base,
        }),
    }
}

/// The cluster file's notify keys as the runner (and the sync groups) run them.
pub fn notify_hooks(h: &vigil_config::NotifyHooks) -> vigil_vrrp::notify::NotifyHooks {
    vigil_vrrp::notify::NotifyHooks {
        notify: h.notify.clone(),
        args: match h.notify_args {
            vigil_config::NotifyArgs::Vigil => vigil_vrrp::notify::NotifyArgs::Vigil,
            vigil_config::NotifyArgs::Keepalived => vigil_vrrp::notify::NotifyArgs::Keepalived,
        },
        master: h.notify_master.clone(),
        backup: h.notify_backup.clone(),
        fault: h.notify_fault.clone(),
        stop: h.notify_stop.clone(),
    }
}

/// What a reload does to a running instance configured as `old`, now `new`: the
/// runner's fields as [`vio::reload_change`] decides; besides them `sync_group` (the
/// groups are rebuilt on every reload), `accept` (not enforced yet) and `track` (a new
/// tracker) apply in place.
pub fn reload_change(old: &VrrpInstance, new: &VrrpInstance) -> ReloadChange {
    if old == new {
        return ReloadChange::Unchanged;
    }
    match vio::reload_change(&runner_config(old), &runner_config(new)) {
        ReloadChange::Restart => ReloadChange::Restart,
        ReloadChange::InPlace | ReloadChange::Unchanged => ReloadChange::InPlace,
    }
}

/// The instances whose mastership is worth nothing without IPVS: one of their VIPs is a
/// virtual server's address, or they `track` a virtual server. An instance that only
/// floats an address (a gateway) is not among them, nor is one tied to a fwmark service
/// only by firewall rules (give it a `track = [{ virtual_server = ... }]` to tie it).
pub fn instances_carrying_virtual_servers(config: &Config) -> Vec<String> {
    let addresses: Vec<IpAddr> = config
        .virtual_servers
        .iter()
        .flat_map(|vs| vs.keys())
        .filter_map(|k| match k {
            vigil_config::ServiceKey::Address { address, .. } => Some(address.ip()),
            vigil_config::ServiceKey::Fwmark { .. } => None,
        })
        .collect();
    config
        .vrrp
        .iter()
        .filter(|v| {
            v.vips
                .iter()
                .chain(&v.vips_excluded)
                .any(|p| addresses.contains(&p.addr))
                || v.track
                    .iter()
                    .any(|t| matches!(t.target, TrackTarget::VirtualServer(_)))
        })
        .map(|v| v.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_instance(extra: &str) -> VrrpInstance {
        let text = format!(
            "[director]\nname = \"a\"\n\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 7\npriority = 150\nvips = [\"10.0.0.100/24\"]\n{extra}\n"
        );
        let loaded = vigil_config::parse(std::path::Path::new("t.toml"), &text).unwrap();
        loaded.config.vrrp[0].clone()
    }

    #[test]
    fn reload_applies_announcements_hooks_and_election_inputs_in_place() {
        let old = one_instance("");
        let kind = |extra: &str| reload_change(&old, &one_instance(extra));
        assert_eq!(kind(""), ReloadChange::Unchanged);
        for extra in [
            "garp_repeat = 2",
            "garp_interval = \"100ms\"",
            "garp_refresh = \"10s\"",
            "notify = [\"/bin/true\"]",
            "preempt = false",
            "preempt_delay = \"5s\"",
            "sync_group = \"g\"",
            "track = [{ interface = \"eth1\", weight = -50 }]",
            "virtual_routes = [{ to = \"10.1.0.0/16\", via = \"10.0.0.254\" }]",
            "virtual_rules = [{ from = \"10.0.0.100/32\", table = 100 }]",
        ] {
            assert_eq!(kind(extra), ReloadChange::InPlace, "{extra}");
        }
        // The address list, by replacing the instance's `vips` line.
        let more = vigil_config::parse(
            std::path::Path::new("t.toml"),
            "[director]\nname = \"a\"\n\n[vrrp.web]\ninterface = \"eth0\"\nvrid = 7\npriority = 150\nvips = [\"10.0.0.100/24\", \"10.0.0.101/24\"]\n",
        )
        .unwrap();
        assert_eq!(
            reload_change(&old, &more.config.vrrp[0]),
            ReloadChange::InPlace
        );
        let mut lower = old.clone();
        lower.priority = 90;
        assert_eq!(reload_change(&old, &lower), ReloadChange::InPlace);
        for extra in [
            "advert_interval = \"2s\"",
            "unicast_peers = [\"10.0.0.2\"]",
            "use_vmac = true",
        ] {
            assert_eq!(kind(extra), ReloadChange::Restart, "{extra}");
        }
        let mut moved = old.clone();
        moved.vrid = 8;
        assert_eq!(reload_change(&old, &moved), ReloadChange::Restart);
        let mut owner = old.clone();
        owner.priority = 255;
        assert_eq!(reload_change(&old, &owner), ReloadChange::Restart);
    }

    #[test]
    fn instances_carrying_virtual_servers_are_those_with_their_addresses_or_tracking_them() {
        let loaded = vigil_config::parse(
            std::path::Path::new("t.toml"),
            r#"
[director]
name = "a"

[vrrp.web]
interface = "eth0"
vrid = 1
vips = ["10.0.0.100/24", "10.0.0.101/24"]

[vrrp.gateway]
interface = "eth0"
vrid = 2
vips = ["10.0.0.1/24"]

[vrrp.marked]
interface = "eth0"
vrid = 3
vips = ["10.0.0.102/24"]
track = [{ virtual_server = "mail" }]

[[virtual_server]]
name = "web"
address = "10.0.0.101:443"
real_server = [{ address = "10.0.1.1" }]

[[virtual_server]]
name = "mail"
fwmark = 7
real_server = [{ address = "10.0.1.2:25" }]
"#,
        )
        .unwrap();
        let mut names = instances_carrying_virtual_servers(&loaded.config);
        names.sort();
        assert_eq!(names, ["marked", "web"]);
    }

    #[test]
    fn adverts_must_fit_the_interface_mtu() {
        let loaded = vigil_config::parse(
            std::path::Path::new("t.toml"),
            r#"
[director]
name = "a"

[vrrp.web]
interface = "eth0"
vrid = 7
vips = ["2001:db8::1/64", "2001:db8::2/64"]
vips_excluded = ["2001:db8::3/64"]

[vrrp.gone]
interface = "eth9"
vrid = 8
vips = ["10.0.0.1/24"]
"#,
        )
        .unwrap();
        let mtu = |m: u32| move |name: &str| (name == "eth0").then_some(m);
        // IPv6: 40 + 8 + 16 x 2 = 80 bytes; excluded addresses are not in the advert.
        assert!(adverts_over_mtu(&loaded.config, &mtu(80)).is_empty());
        assert_eq!(
            adverts_over_mtu(&loaded.config, &mtu(79)),
            [
                "instance web: an advert of its 2 virtual addresses is 80 bytes, more than the MTU 79 of eth0; move addresses to vips_excluded or raise the MTU"
            ]
        );
    }

    #[test]
    fn runner_config_maps_the_cluster_file() {
        let loaded = vigil_config::parse(
            std::path::Path::new("t.toml"),
            r#"
[director]
name = "a"

[vrrp.web]
interface = "eth0"
vrid = 7
priority = 150
version = 2
advert_interval = "1s"
auth_password = "pw"
vips = ["10.0.0.100/24"]
vips_excluded = ["10.0.0.200/24"]
use_vmac = true
virtual_routes = [{ to = "10.1.0.0/16", via = "10.0.0.254", table = 100 }]
virtual_rules = [{ from = "10.0.0.100/32", table = 100, priority = 50 }]
"#,
        )
        .unwrap();
        let c = runner_config(&loaded.config.vrrp[0]);
        assert_eq!(
            c.routes[0].to_string(),
            "10.1.0.0/16 via 10.0.0.254 table 100"
        );
        assert_eq!(
            c.rules[0].to_string(),
            "priority 50 from 10.0.0.100/32 table 100"
        );
        assert_eq!(c.vmac.as_ref().map(|v| v.name.as_str()), Some("vrrp.7"));
        assert_eq!(c.version, Version::V2);
        assert_eq!(c.vips, vec![("10.0.0.100".parse().unwrap(), 24)]);
        assert_eq!(c.vips_excluded, vec![("10.0.0.200".parse().unwrap(), 24)]);
        assert!(matches!(c.auth, Auth::SimplePassword(_)));
        assert_eq!(c.garp.repeat, 5);
    }
}
