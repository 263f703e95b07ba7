//! What one instance's runner is configured with, and the pure decisions about it:
//! which reloads it takes in place ([`reload_change`]), which received adverts count
//! ([`receive_rules`]), whether its adverts fit the link ([`advert_too_big`]), and the
//! state machine's own [`Config`](crate::Config). Sans-IO: the runner in
//! [`crate::io::runner`] carries these out.

use std::net::IpAddr;
use std::time::Duration;

use crate::fsm::Config as FsmConfig;
use crate::notify::NotifyHooks;
use crate::packet::{Auth, Family, Version, advert_packet_len};
use crate::receive::ReceiveRules;
use crate::vmac::VmacConfig;
use vigil_netlink::{RouteSpec, RuleSpec};

/// Gratuitous ARP / NA schedule of a new master.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GarpConfig {
    /// Announcements per address on becoming master (at least 1).
    pub repeat: u32,
    /// Gap between those announcements.
    pub interval: Duration,
    /// Announce again this often while master.
    pub refresh: Option<Duration>,
}

/// Everything one runner needs, from the cluster file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerConfig {
    pub name: String,
    pub interface: String,
    pub vrid: u8,
    pub version: Version,
    /// Base priority (255 = address owner).
    pub priority: u8,
    pub advert_interval: Duration,
    pub preempt: bool,
    pub preempt_delay: Duration,
    pub family: Family,
    /// Virtual addresses with their prefix lengths.
    pub vips: Vec<(IpAddr, u8)>,
    /// Held and announced with `vips` but not listed in adverts (keepalived's
    /// `virtual_ipaddress_excluded`).
    pub vips_excluded: Vec<(IpAddr, u8)>,
    /// Empty: multicast to 224.0.0.18 / ff02::12.
    pub unicast_peers: Vec<IpAddr>,
    pub unicast_source: Option<IpAddr>,
    /// Multicast mode: when not empty, adverts from other sources are dropped as
    /// `unknown_peer` (unicast mode restricts to `unicast_peers` already).
    pub allowed_peers: Vec<IpAddr>,
    /// Unicast mode: accept adverts whatever their TTL / hop limit (peers behind
    /// routers); otherwise RFC 5798 §7.1's 255 is required in both modes.
    pub unicast_accept_any_ttl: bool,
    /// Bounds on the learned Master_Adver_Interval: `advert_interval` times or divided
    /// by this ([`crate::learned_interval`]).
    pub learned_interval_factor: u32,
    pub auth: Auth,
    pub garp: GarpConfig,
    /// Programs run without a shell on state changes ([`NotifyHooks::programs`]).
    pub notify: NotifyHooks,
    /// keepalived's `virtual_routes`: installed with the addresses (after them) while
    /// this node holds them, removed with them (before them).
    pub routes: Vec<RouteSpec>,
    /// keepalived's `virtual_rules`: like `routes`.
    pub rules: Vec<RuleSpec>,
    /// `use_vmac`: addresses on a macvlan with the RFC 5798 §7.3 virtual MAC.
    pub vmac: Option<VmacConfig>,
}

impl RunnerConfig {
    /// Every address the master holds: the advertised ones, then the excluded ones.
    pub fn held(&self) -> impl Iterator<Item = &(IpAddr, u8)> {
        self.vips.iter().chain(&self.vips_excluded)
    }
}

/// What a reloaded configuration of a running instance takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadChange {
    Unchanged,
    /// [`crate::io::Control::Reconfigure`]: the instance keeps its state, addresses and timers.
    InPlace,
    /// A new runner: stop this one (make-before-break) and start another.
    Restart,
}

/// Decides, field by field, what a reload needs (see docs/config.md "Reloads"):
///
/// - in place: the gratuitous ARP / NA schedule and the notify hook (they only shape
///   what happens at the next transition); the receive filters `allowed_peers` and
///   `unicast_accept_any_ttl` (they only decide which later adverts count); the base
///   priority, Preempt_Mode and preempt_delay, which the running machine takes like any
///   priority change ([`crate::Instance::reconfigure`], RFC 5798 §6.4.2/§6.4.3 rules applied
///   from then on); the virtual addresses (a master adds and removes the difference and
///   announces only the added ones; the adverts carry the new list, §5.2.9); the
///   routes and rules (a node holding the addresses removes and adds the difference);
/// - restart: what names the virtual router or how it talks — interface, VRID, version,
///   family (RFC 5798 §7.1 keys adverts by VRID on an interface), the advert interval
///   (VRRPv2 peers must match it, RFC 3768 §7.1), unicast peers and source,
///   authentication, the learned-interval factor (part of the machine's config), the
///   virtual MAC interface (the addresses move to another interface) — and becoming or
///   ceasing to be the address owner (priority 255, §6.4.1).
pub fn reload_change(old: &RunnerConfig, new: &RunnerConfig) -> ReloadChange {
    if old == new {
        return ReloadChange::Unchanged;
    }
    let owner = |c: &RunnerConfig| c.priority == u8::MAX;
    let rest_unchanged = RunnerConfig {
        priority: old.priority,
        preempt: old.preempt,
        preempt_delay: old.preempt_delay,
        garp: old.garp,
        notify: old.notify.clone(),
        vips: old.vips.clone(),
        vips_excluded: old.vips_excluded.clone(),
        allowed_peers: old.allowed_peers.clone(),
        unicast_accept_any_ttl: old.unicast_accept_any_ttl,
        routes: old.routes.clone(),
        rules: old.rules.clone(),
        ..new.clone()
    } == *old;
    if rest_unchanged && owner(old) == owner(new) {
        ReloadChange::InPlace
    } else {
        ReloadChange::Restart
    }
}

/// The state machine's configuration, advertising from `primary`.
pub(crate) fn fsm_config(config: &RunnerConfig, primary: IpAddr) -> FsmConfig {
    FsmConfig {
        version: config.version,
        priority: config.priority,
        advert_interval: config.advert_interval,
        preempt: config.preempt,
        preempt_delay: config.preempt_delay,
        primary_address: primary,
        advert_on_lower_priority: true,
        learned_interval_factor: config.learned_interval_factor,
    }
}

/// Why `config`'s adverts cannot be sent on a link of `mtu` bytes, naming instance, size
/// and MTU; `None` when they fit.
pub fn advert_too_big(config: &RunnerConfig, mtu: u32) -> Option<String> {
    let size = advert_packet_len(config.version, config.family, config.vips.len());
    (u32::try_from(size).unwrap_or(u32::MAX) > mtu).then(|| {
        format!(
            "instance {}: an advert of its {} virtual addresses is {size} bytes, more than the MTU {mtu} of {}; move addresses to vips_excluded or raise the MTU",
            config.name,
            config.vips.len(),
            config.interface
        )
    })
}

/// The receive rules an instance's adverts are checked against (RFC 5798 §7.1,
/// RFC 3768 §7.1).
pub fn receive_rules(config: &RunnerConfig) -> ReceiveRules {
    ReceiveRules {
        version: config.version,
        family: config.family,
        vrid: config.vrid,
        local_is_owner: config.priority == u8::MAX,
        auth: config.auth,
        advert_interval: config.advert_interval,
        expected_addresses: Some(config.vips.iter().map(|(a, _)| *a).collect()),
        // RFC 9568 senders checksum VRRPv3/IPv4 without the pseudo-header; accepting both
        // costs nothing and keepalived's form is still what we send.
        accept_message_only_ipv4_checksum: true,
        // Unicast mode answers only to its peers; multicast mode to `allowed_peers` if set.
        allowed_sources: if !config.unicast_peers.is_empty() {
            Some(config.unicast_peers.clone())
        } else if !config.allowed_peers.is_empty() {
            Some(config.allowed_peers.clone())
        } else {
            None
        },
        // keepalived skips the TTL check of unicast adverts (they may cross routers);
        // vigil keeps RFC 5798 §7.1's check unless the operator waives it.
        waive_ttl: !config.unicast_peers.is_empty() && config.unicast_accept_any_ttl,
    }
}

/// A plain multicast IPv4 instance for tests.
#[cfg(test)]
pub(crate) fn example() -> RunnerConfig {
    RunnerConfig {
        name: "web".into(),
        interface: "eth0".into(),
        vrid: 51,
        version: Version::V3,
        priority: 100,
        advert_interval: Duration::from_secs(1),
        preempt: true,
        preempt_delay: Duration::ZERO,
        family: Family::Ipv4,
        vips: vec![("10.0.0.100".parse().unwrap(), 24)],
        vips_excluded: vec![],
        unicast_peers: vec![],
        unicast_source: None,
        allowed_peers: vec![],
        unicast_accept_any_ttl: false,
        learned_interval_factor: 3,
        auth: Auth::None,
        garp: GarpConfig {
            repeat: 5,
            interval: Duration::from_millis(10),
            refresh: None,
        },
        notify: NotifyHooks::default(),
        routes: vec![],
        rules: vec![],
        vmac: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RunnerConfig {
        example()
    }

    #[test]
    fn reload_changes_are_classified_field_by_field() {
        let old = config();
        let kind = |change: &dyn Fn(&mut RunnerConfig)| {
            let mut new = old.clone();
            change(&mut new);
            reload_change(&old, &new)
        };
        assert_eq!(kind(&|_| {}), ReloadChange::Unchanged);
        // What shapes only the next transition, and the election inputs the running
        // machine takes like any priority change (RFC 5798 §6.4.2/§6.4.3).
        let route = vigil_netlink::RouteSpec {
            destination: "10.1.0.0".parse().unwrap(),
            prefix_len: 16,
            gateway: Some("10.0.0.254".parse().unwrap()),
            dev: None,
            source: None,
            table: 254,
            metric: None,
            scope: None,
            protocol: 4,
            kind: vigil_netlink::RouteKind::Unicast,
        };
        let rule = vigil_netlink::RuleSpec {
            ipv6: false,
            from: Some(("10.0.0.100".parse().unwrap(), 32)),
            to: None,
            iif: None,
            oif: None,
            fwmark: None,
            fwmask: None,
            priority: Some(100),
            kind: vigil_netlink::RuleKind::Table(100),
        };
        let in_place: [&dyn Fn(&mut RunnerConfig); 15] = [
            &|c| c.routes = vec![route.clone()],
            &|c| c.rules = vec![rule.clone()],
            &|c| c.allowed_peers = vec!["10.0.0.2".parse().unwrap()],
            &|c| c.unicast_accept_any_ttl = true,
            &|c| c.vips.push(("10.0.0.101".parse().unwrap(), 24)),
            &|c| c.vips = vec![("10.0.0.100".parse().unwrap(), 32)],
            &|c| c.vips_excluded = vec![("10.0.0.200".parse().unwrap(), 24)],
            &|c| c.garp.repeat = 1,
            &|c| c.garp.interval = Duration::from_millis(100),
            &|c| c.garp.refresh = Some(Duration::from_secs(30)),
            &|c| c.notify.notify = Some(vec!["/bin/true".into()]),
            &|c| c.priority = 254,
            &|c| c.priority = 1,
            &|c| c.preempt = false,
            &|c| c.preempt_delay = Duration::from_secs(5),
        ];
        for change in in_place {
            assert_eq!(kind(change), ReloadChange::InPlace);
        }
        // Several in-place changes together are still in place.
        assert_eq!(
            kind(&|c| {
                c.priority = 120;
                c.garp.repeat = 2;
                c.notify = NotifyHooks::default();
            }),
            ReloadChange::InPlace
        );
        // What names the virtual router or how it talks (RFC 5798 §7.1: VRID on an
        // interface; RFC 3768 §7.1 the v2 interval), and ownership (priority 255,
        // §6.4.1).
        let restart: [&dyn Fn(&mut RunnerConfig); 11] = [
            &|c| {
                c.vmac = Some(VmacConfig {
                    name: "vrrp.51".into(),
                    xmit_base: false,
                })
            },
            &|c| c.learned_interval_factor = 10,
            &|c| c.interface = "eth1".into(),
            &|c| c.vrid = 52,
            &|c| c.version = Version::V2,
            &|c| c.family = Family::Ipv6,
            &|c| c.advert_interval = Duration::from_millis(500),
            &|c| c.unicast_peers = vec!["10.0.0.2".parse().unwrap()],
            &|c| c.unicast_source = Some("10.0.0.1".parse().unwrap()),
            &|c| c.auth = Auth::SimplePassword(crate::Password::new(b"pw").unwrap()),
            &|c| c.priority = 255,
        ];
        for change in restart {
            assert_eq!(kind(change), ReloadChange::Restart);
        }
        // A restart-worthy field wins over in-place ones changed with it.
        assert_eq!(
            kind(&|c| {
                c.garp.repeat = 1;
                c.vrid = 9;
            }),
            ReloadChange::Restart
        );
        let mut owner = old.clone();
        owner.priority = 255;
        let mut lower = owner.clone();
        lower.priority = 200;
        assert_eq!(reload_change(&owner, &lower), ReloadChange::Restart);
    }

    #[test]
    fn rules_follow_the_config() {
        // RFC 5798 §7.1: the owner (priority 255) drops every advert for its VRID.
        let mut c = config();
        c.priority = 255;
        let rules = receive_rules(&c);
        assert!(rules.local_is_owner);
        assert_eq!(rules.vrid, 51);
        assert_eq!(
            rules.expected_addresses,
            Some(vec!["10.0.0.100".parse().unwrap()])
        );
        // Multicast: anyone, unless allowed_peers lists the sources; the TTL rule of
        // RFC 5798 §7.1 always applies.
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let mut c = config();
        assert_eq!(receive_rules(&c).allowed_sources, None);
        c.allowed_peers = vec![peer];
        c.unicast_accept_any_ttl = true;
        let rules = receive_rules(&c);
        assert_eq!(rules.allowed_sources, Some(vec![peer]));
        assert!(!rules.waive_ttl);
        // Unicast: the peers, and the TTL waived only when asked.
        c.allowed_peers = vec![];
        c.unicast_peers = vec![peer];
        assert_eq!(receive_rules(&c).allowed_sources, Some(vec![peer]));
        assert!(receive_rules(&c).waive_ttl);
        c.unicast_accept_any_ttl = false;
        assert!(!receive_rules(&c).waive_ttl);
    }
}
