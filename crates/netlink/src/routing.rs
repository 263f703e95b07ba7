//! Routes and policy rules (`RTM_NEWROUTE`/`RTM_DELROUTE`, `RTM_NEWRULE`/`RTM_DELRULE`):
//! what a VRRP master installs as keepalived's `virtual_routes` and `virtual_rules`.
//! Pure message builders here; [`Route`](crate::Route) sends them.

use std::net::IpAddr;

use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// The main routing table (`RT_TABLE_MAIN`).
pub const TABLE_MAIN: u32 = 254;
/// `RT_TABLE_COMPAT`: what the 8-bit header field says when the table needs `RTA_TABLE`.
const TABLE_COMPAT: u8 = 252;
/// `RTPROT_STATIC`, the default protocol of a route vigil installs.
pub const PROTOCOL_STATIC: u8 = 4;

/// What a route does with matching packets (`RTN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Forwarded (through `gateway` and/or out of `dev`).
    Unicast,
    /// Silently dropped.
    Blackhole,
    /// Dropped with ICMP unreachable.
    Unreachable,
    /// Dropped with ICMP administratively prohibited.
    Prohibit,
}

/// One route to install or remove.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteSpec {
    pub destination: IpAddr,
    pub prefix_len: u8,
    pub gateway: Option<IpAddr>,
    /// Output interface, by name (resolved when the request is made).
    pub dev: Option<String>,
    /// Preferred source address (`src`).
    pub source: Option<IpAddr>,
    pub table: u32,
    /// `metric` / `RTA_PRIORITY`.
    pub metric: Option<u32>,
    /// `RT_SCOPE_*`; `None` picks as `ip route` does: link for a unicast route without
    /// a gateway, universe otherwise.
    pub scope: Option<u8>,
    /// `RTPROT_*`.
    pub protocol: u8,
    pub kind: RouteKind,
}

impl std::fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            RouteKind::Unicast => {}
            RouteKind::Blackhole => f.write_str("blackhole ")?,
            RouteKind::Unreachable => f.write_str("unreachable ")?,
            RouteKind::Prohibit => f.write_str("prohibit ")?,
        }
        write!(f, "{}/{}", self.destination, self.prefix_len)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.dev {
            write!(f, " dev {d}")?;
        }
        if let Some(s) = self.source {
            write!(f, " src {s}")?;
        }
        if self.table != TABLE_MAIN {
            write!(f, " table {}", self.table)?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

/// What a rule does with matching packets (`FR_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Look the packet up in this table.
    Table(u32),
    Blackhole,
    Unreachable,
    Prohibit,
}

/// One policy routing rule to install or remove.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RuleSpec {
    /// The family the rule lives in (rules are per family).
    pub ipv6: bool,
    pub from: Option<(IpAddr, u8)>,
    pub to: Option<(IpAddr, u8)>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    /// The rule's preference; `None` lets the kernel number it.
    pub priority: Option<u32>,
    pub kind: RuleKind,
}

impl std::fmt::Display for RuleSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(p) = self.priority {
            parts.push(format!("priority {p}"));
        }
        if let Some((a, l)) = self.from {
            parts.push(format!("from {a}/{l}"));
        }
        if let Some((a, l)) = self.to {
            parts.push(format!("to {a}/{l}"));
        }
        if let Some(i) = &self.iif {
            parts.push(format!("iif {i}"));
        }
        if let Some(o) = &self.oif {
            parts.push(format!("oif {o}"));
        }
        if let Some(m) = self.fwmark {
            match self.fwmask {
                Some(mask) => parts.push(format!("fwmark {m:#x}/{mask:#x}")),
                None => parts.push(format!("fwmark {m:#x}")),
            }
        }
        parts.push(match self.kind {
            RuleKind::Table(t) => format!("table {t}"),
            RuleKind::Blackhole => "blackhole".into(),
            RuleKind::Unreachable => "unreachable".into(),
            RuleKind::Prohibit => "prohibit".into(),
        });
        f.write_str(&parts.join(" "))
    }
}

fn family(ipv6: bool) -> AddressFamily {
    if ipv6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    }
}

/// `RTM_NEWROUTE` (`add`) or `RTM_DELROUTE` for `route`, out of interface `oif` (the
/// index of `route.dev`, resolved by the caller).
pub fn route(add: bool, route: &RouteSpec, oif: Option<u32>) -> RouteNetlinkMessage {
    let mut header = RouteHeader {
        address_family: family(route.destination.is_ipv6()),
        destination_prefix_length: route.prefix_len,
        table: u8::try_from(route.table)
            .ok()
            .filter(|t| *t != TABLE_COMPAT)
            .unwrap_or(TABLE_COMPAT),
        protocol: RouteProtocol::from(route.protocol),
        kind: match route.kind {
            RouteKind::Unicast => RouteType::Unicast,
            RouteKind::Blackhole => RouteType::BlackHole,
            RouteKind::Unreachable => RouteType::Unreachable,
            RouteKind::Prohibit => RouteType::Prohibit,
        },
        ..RouteHeader::default()
    };
    header.scope = match route.scope {
        Some(s) => RouteScope::from(s),
        None if route.kind == RouteKind::Unicast && route.gateway.is_none() => RouteScope::Link,
        None => RouteScope::Universe,
    };
    let mut attributes = Vec::new();
    if route.prefix_len > 0 {
        attributes.push(RouteAttribute::Destination(RouteAddress::from(
            route.destination,
        )));
    }
    if let Some(g) = route.gateway {
        attributes.push(RouteAttribute::Gateway(RouteAddress::from(g)));
    }
    if let Some(oif) = oif {
        attributes.push(RouteAttribute::Oif(oif));
    }
    if let Some(s) = route.source {
        attributes.push(RouteAttribute::PrefSource(RouteAddress::from(s)));
    }
    if let Some(m) = route.metric {
        attributes.push(RouteAttribute::Priority(m));
    }
    attributes.push(RouteAttribute::Table(route.table));
    let mut message = RouteMessage::default();
    message.header = header;
    message.attributes = attributes;
    if add {
        RouteNetlinkMessage::NewRoute(message)
    } else {
        RouteNetlinkMessage::DelRoute(message)
    }
}

/// `RTM_NEWRULE` (`add`) or `RTM_DELRULE` for `rule`. A deletion names every selector
/// the rule was added with, so it removes that rule and no other.
pub fn rule(add: bool, rule: &RuleSpec) -> RouteNetlinkMessage {
    let mut message = RuleMessage::default();
    message.header.family = family(rule.ipv6);
    let (action, table) = match rule.kind {
        RuleKind::Table(t) => (RuleAction::ToTable, Some(t)),
        RuleKind::Blackhole => (RuleAction::Blackhole, None),
        RuleKind::Unreachable => (RuleAction::Unreachable, None),
        RuleKind::Prohibit => (RuleAction::Prohibit, None),
    };
    message.header.action = action;
    if let Some(t) = table {
        message.header.table = u8::try_from(t)
            .ok()
            .filter(|t| *t != TABLE_COMPAT)
            .unwrap_or(TABLE_COMPAT);
        message.attributes.push(RuleAttribute::Table(t));
    }
    if let Some((a, l)) = rule.from {
        message.header.src_len = l;
        message.attributes.push(RuleAttribute::Source(a));
    }
    if let Some((a, l)) = rule.to {
        message.header.dst_len = l;
        message.attributes.push(RuleAttribute::Destination(a));
    }
    if let Some(i) = &rule.iif {
        message.attributes.push(RuleAttribute::Iifname(i.clone()));
    }
    if let Some(o) = &rule.oif {
        message.attributes.push(RuleAttribute::Oifname(o.clone()));
    }
    if let Some(m) = rule.fwmark {
        message.attributes.push(RuleAttribute::FwMark(m));
    }
    if let Some(m) = rule.fwmask {
        message.attributes.push(RuleAttribute::FwMask(m));
    }
    if let Some(p) = rule.priority {
        message.attributes.push(RuleAttribute::Priority(p));
    }
    if add {
        RouteNetlinkMessage::NewRule(message)
    } else {
        RouteNetlinkMessage::DelRule(message)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::codec::{ACK_FLAGS, request};

    fn u16_at(data: &[u8], at: usize) -> u16 {
        u16::from_ne_bytes(data[at..at + 2].try_into().unwrap())
    }

    /// The (type, value) attributes after a fixed header of `header_len` bytes.
    fn attributes(msg: &[u8], header_len: usize) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 16 + header_len;
        while at + 4 <= msg.len() {
            let len = usize::from(u16_at(msg, at));
            out.push((u16_at(msg, at + 2), msg[at + 4..at + len].to_vec()));
            at += len.next_multiple_of(4);
        }
        out
    }

    fn spec() -> RouteSpec {
        RouteSpec {
            destination: "10.1.0.0".parse().unwrap(),
            prefix_len: 16,
            gateway: Some("10.99.0.254".parse().unwrap()),
            dev: Some("eth0".into()),
            source: Some("10.99.0.100".parse().unwrap()),
            table: 100,
            metric: Some(7),
            scope: None,
            protocol: PROTOCOL_STATIC,
            kind: RouteKind::Unicast,
        }
    }

    #[test]
    fn a_gateway_route_carries_every_attribute() {
        let msg = request(route(true, &spec(), Some(3)), ACK_FLAGS, 1);
        assert_eq!(u16_at(&msg, 4), 24); // RTM_NEWROUTE
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type
        assert_eq!(
            &msg[16..24],
            &[libc::AF_INET as u8, 16, 0, 0, 100, PROTOCOL_STATIC, 0, 1]
        );
        let attrs = attributes(&msg, 12);
        assert_eq!(
            attrs,
            vec![
                (1, vec![10, 1, 0, 0]),              // RTA_DST
                (5, vec![10, 99, 0, 254]),           // RTA_GATEWAY
                (4, 3u32.to_ne_bytes().to_vec()),    // RTA_OIF
                (7, vec![10, 99, 0, 100]),           // RTA_PREFSRC
                (6, 7u32.to_ne_bytes().to_vec()),    // RTA_PRIORITY
                (15, 100u32.to_ne_bytes().to_vec()), // RTA_TABLE
            ]
        );
        assert_eq!(
            spec().to_string(),
            "10.1.0.0/16 via 10.99.0.254 dev eth0 src 10.99.0.100 table 100 metric 7"
        );
    }

    #[test]
    fn scope_types_and_big_tables_follow_ip_route() {
        // No gateway: scope link, as `ip route add 10.2.0.0/16 dev eth0`.
        let mut direct = spec();
        direct.gateway = None;
        let msg = request(route(false, &direct, Some(3)), ACK_FLAGS, 1);
        assert_eq!(u16_at(&msg, 4), 25); // RTM_DELROUTE
        assert_eq!(msg[22], 253); // RT_SCOPE_LINK
        // A blackhole (scope universe, type 6) in a table past 255: header says COMPAT.
        let hole = RouteSpec {
            gateway: None,
            dev: None,
            source: None,
            table: 1000,
            metric: None,
            kind: RouteKind::Blackhole,
            ..spec()
        };
        let msg = request(route(true, &hole, None), ACK_FLAGS, 1);
        assert_eq!(&msg[20..24], &[252, PROTOCOL_STATIC, 0, 6]);
        assert!(attributes(&msg, 12).contains(&(15, 1000u32.to_ne_bytes().to_vec())));
        assert_eq!(hole.to_string(), "blackhole 10.1.0.0/16 table 1000");
        // IPv6 unreachable default route: no RTA_DST for /0.
        let v6 = RouteSpec {
            destination: "::".parse().unwrap(),
            prefix_len: 0,
            kind: RouteKind::Unreachable,
            ..hole
        };
        let msg = request(route(true, &v6, None), ACK_FLAGS, 1);
        assert_eq!(msg[16], libc::AF_INET6 as u8);
        assert_eq!(msg[23], 7);
        assert!(attributes(&msg, 12).iter().all(|(t, _)| *t != 1));
    }

    #[test]
    fn rules_name_their_selectors_and_action() {
        let r = RuleSpec {
            ipv6: false,
            from: Some(("10.99.0.100".parse().unwrap(), 32)),
            to: Some(("192.0.2.0".parse().unwrap(), 24)),
            iif: Some("eth0".into()),
            oif: None,
            fwmark: Some(7),
            fwmask: Some(0xff),
            priority: Some(100),
            kind: RuleKind::Table(100),
        };
        let msg = request(rule(true, &r), ACK_FLAGS, 1);
        assert_eq!(u16_at(&msg, 4), 32); // RTM_NEWRULE
        // fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action
        assert_eq!(
            &msg[16..24],
            &[libc::AF_INET as u8, 24, 32, 0, 100, 0, 0, 1]
        );
        let kinds: Vec<u16> = attributes(&msg, 12).iter().map(|(t, _)| *t).collect();
        // FRA_TABLE, FRA_SRC, FRA_DST, FRA_IIFNAME, FRA_FWMARK, FRA_FWMASK, FRA_PRIORITY
        assert_eq!(kinds, vec![15, 2, 1, 3, 10, 16, 6]);
        assert_eq!(
            r.to_string(),
            "priority 100 from 10.99.0.100/32 to 192.0.2.0/24 iif eth0 fwmark 0x7/0xff table 100"
        );
        let hole = RuleSpec {
            kind: RuleKind::Blackhole,
            ipv6: true,
            from: None,
            to: None,
            iif: None,
            fwmark: None,
            fwmask: None,
            ..r
        };
        let msg = request(rule(false, &hole), ACK_FLAGS, 1);
        assert_eq!(u16_at(&msg, 4), 33); // RTM_DELRULE
        assert_eq!(&msg[16..24], &[libc::AF_INET6 as u8, 0, 0, 0, 0, 0, 0, 6]);
    }
}
