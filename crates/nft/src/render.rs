//! Pure rendering: desired table → [`Model`] → nft JSON commands.
//!
//! The table's fixed part (the *skeleton*): dispatch maps from a virtual service to its
//! chain, a `dispatch` chain used by the `prerouting` and `output` NAT hooks, and a
//! `postrouting` chain that masquerades connections to the addresses in `masq4`/`masq6`.
//! Each virtual service has a chain holding its rule: `dnat to SELECTOR mod TOTAL map {
//! SLOT : REAL, ... }` with an anonymous map, and a fallback `dnat to REAL` (see
//! [`fallback_rule`]), so a change of a service is `flush chain` + two `add rule` in one
//! transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde_json::{Value, json};
use vigil_ipvs::reconcile::{DesiredService, DesiredTable};
use vigil_ipvs::{Family, ForwardMethod, Protocol, ServiceFlags, ServiceKey};

use crate::model::{FAMILY, HASH_SEED, Model, NftService, Options, Selector, TABLE};

/// Why a service cannot be rendered for nftables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// The scheduler needs state nftables does not have at scheduling time.
    Scheduler(String),
    /// Persistence (`ipvsadm -p`) has no nftables equivalent here.
    Persistence,
    /// One-packet scheduling.
    OnePacket,
    /// Scheduler flags other than `sh-port` / `sh-fallback`.
    SchedulerFlags(u32),
    /// Direct routing, tunnelling, local or bypass forwarding.
    Forwarding(SocketAddr, ForwardMethod),
    /// Connection thresholds need per-server connection counts.
    Thresholds(SocketAddr),
    /// A real server of another family than the service.
    MixedFamily(SocketAddr),
    /// A fwmark service's real server with a port (a mark matches any protocol).
    FwmarkPort(SocketAddr),
    /// Some real servers with a port and some without.
    MixedPorts,
    /// Only TCP, UDP and SCTP.
    Protocol(u16),
    /// A service on port 0 (all ports) is for persistence only.
    PortZero,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsupported::Scheduler(s) => write!(
                f,
                "scheduler \"{s}\" has no nftables equivalent (nftables can pick by weighted random or by source hash, but cannot see connection counts or keep per-destination state): use rr, wrr or sh, or datapath = \"ipvs\""
            ),
            Unsupported::Persistence => f.write_str(
                "persistence is not supported by the nftables datapath (use scheduler sh to keep a client on one real server)",
            ),
            Unsupported::OnePacket => {
                f.write_str("one-packet scheduling is not supported by the nftables datapath")
            }
            Unsupported::SchedulerFlags(b) => write!(
                f,
                "scheduler flags {b:#x} are not supported by the nftables datapath (only sh-port and sh-fallback)"
            ),
            Unsupported::Forwarding(a, m) => write!(
                f,
                "real server {a}: forwarding {m:?} is not supported by the nftables datapath (only NAT; see docs/datapath-nftables.md)"
            ),
            Unsupported::Thresholds(a) => write!(
                f,
                "real server {a}: connection thresholds are not supported by the nftables datapath"
            ),
            Unsupported::MixedFamily(a) => {
                write!(f, "real server {a} is not of the service's address family")
            }
            Unsupported::FwmarkPort(a) => write!(
                f,
                "real server {a}: a fwmark service's real servers take no port in the nftables datapath (the packet's port is kept)"
            ),
            Unsupported::MixedPorts => f.write_str(
                "some real servers have a port and some do not (port 0): nftables maps to one or the other",
            ),
            Unsupported::Protocol(p) => write!(
                f,
                "protocol {p} is not supported (only tcp, udp and sctp)"
            ),
            Unsupported::PortZero => {
                f.write_str("a service on port 0 (all ports) is not supported by the nftables datapath")
            }
        }
    }
}

/// One service that cannot be rendered, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service}: {why}")]
pub struct RenderError {
    /// The service.
    pub service: ServiceKey,
    /// Why.
    pub why: Unsupported,
}

/// Every service of a desired table that cannot be rendered (at least one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct RenderErrors(pub Vec<RenderError>);

/// The model of `desired`, with no table in the kernel yet: unsettled real servers get
/// their fallback. See [`plan`].
pub fn plan_fresh(desired: &DesiredTable, options: &Options) -> Result<Model, RenderErrors> {
    plan(desired, None, options)
}

/// The model of `desired`. Unsettled real servers (health not yet known) keep the slots
/// they have in `current` (what the kernel holds), else get their fallback; a service
/// whose quorum is undecided and which is on its sorry server stays there (as the IPVS
/// reconciler does, so a restart writes nothing). Weight-0 real servers get no slots:
/// no new connections, established ones keep their conntrack entry.
pub fn plan(
    desired: &DesiredTable,
    current: Option<&Model>,
    options: &Options,
) -> Result<Model, RenderErrors> {
    let mut model = Model::default();
    let mut errors = Vec::new();
    for (key, d) in desired {
        let now = current.and_then(|m| m.services.get(key));
        match plan_service(key, d, now) {
            Ok(s) => {
                if options.masquerade {
                    model.masquerade.extend(s.slots.keys().map(|a| a.ip()));
                }
                model.services.insert(*key, s);
            }
            Err(why) => errors.extend(
                why.into_iter()
                    .map(|why| RenderError { service: *key, why }),
            ),
        }
    }
    if errors.is_empty() {
        Ok(model)
    } else {
        Err(RenderErrors(errors))
    }
}

/// The model of one service (see [`plan`]); `current` is what the kernel holds for it.
pub fn plan_one(
    key: &ServiceKey,
    desired: &DesiredService,
    current: Option<&NftService>,
) -> Result<NftService, RenderErrors> {
    plan_service(key, desired, current).map_err(|why| {
        RenderErrors(
            why.into_iter()
                .map(|why| RenderError { service: *key, why })
                .collect(),
        )
    })
}

fn plan_service(
    key: &ServiceKey,
    d: &DesiredService,
    current: Option<&NftService>,
) -> Result<NftService, Vec<Unsupported>> {
    let mut why = Vec::new();
    let svc = &d.service;
    let selector = match svc.scheduler.as_str() {
        "rr" | "wrr" => Selector::Random,
        "sh" => Selector::SourceHash {
            port: svc.flags.contains(ServiceFlags::SH_PORT),
        },
        other => {
            why.push(Unsupported::Scheduler(other.to_string()));
            Selector::Random
        }
    };
    if svc.flags.contains(ServiceFlags::PERSISTENT) {
        why.push(Unsupported::Persistence);
    }
    if svc.flags.contains(ServiceFlags::ONE_PACKET) {
        why.push(Unsupported::OnePacket);
    }
    let known = ServiceFlags::PERSISTENT.bits()
        | ServiceFlags::HASHED.bits()
        | ServiceFlags::ONE_PACKET.bits()
        | ServiceFlags::SH_PORT.bits()
        | ServiceFlags::SH_FALLBACK.bits();
    let other_flags = svc.flags.bits() & !known;
    let sh_flags_elsewhere = svc.scheduler != "sh"
        && svc.flags.bits() & (ServiceFlags::SH_PORT | ServiceFlags::SH_FALLBACK).bits() != 0;
    if other_flags != 0 || sh_flags_elsewhere {
        why.push(Unsupported::SchedulerFlags(
            svc.flags.bits() & !ServiceFlags::PERSISTENT.bits(),
        ));
    }
    match key {
        ServiceKey::Addr { protocol, addr } => {
            if let Protocol::Other(p) = protocol {
                why.push(Unsupported::Protocol(*p));
            }
            if addr.port() == 0 {
                why.push(Unsupported::PortZero);
            }
        }
        ServiceKey::Fwmark { .. } => {}
    }

    // Real servers and their weights: settled ones as desired, unsettled ones as the
    // kernel has them or by their fallback (see `plan`).
    let mut weights: BTreeMap<SocketAddr, u32> = BTreeMap::new();
    let mut all = Vec::new();
    for dest in d.destinations.values() {
        all.push(dest);
        weights.insert(dest.addr, dest.weight);
    }
    let on_sorry = d
        .sorry_undecided
        .is_some_and(|k| current.is_some_and(|c| c.slots.contains_key(&k.0)));
    for (k, fallback) in &d.unsettled {
        if d.destinations.contains_key(k) {
            continue;
        }
        if let Some(n) = current.and_then(|c| c.slots.get(&k.0)) {
            weights.insert(k.0, *n);
        } else if let Some(f) = fallback
            && !on_sorry
        {
            all.push(f);
            weights.insert(f.addr, f.weight);
        }
    }
    for dest in all {
        if dest.forward != ForwardMethod::Masquerade {
            why.push(Unsupported::Forwarding(dest.addr, dest.forward));
        }
        if dest.upper_threshold != 0 || dest.lower_threshold != 0 {
            why.push(Unsupported::Thresholds(dest.addr));
        }
    }
    let mut ports = BTreeSet::new();
    for addr in weights.keys() {
        if Family::of(&addr.ip()) != key.family() {
            why.push(Unsupported::MixedFamily(*addr));
        }
        if matches!(key, ServiceKey::Fwmark { .. }) && addr.port() != 0 {
            why.push(Unsupported::FwmarkPort(*addr));
        }
        ports.insert(addr.port() == 0);
    }
    if ports.len() > 1 {
        why.push(Unsupported::MixedPorts);
    }
    // rr ignores weights (as in IPVS) except 0, which takes the server out.
    let rr = svc.scheduler == "rr";
    let weights: BTreeMap<SocketAddr, u32> = weights
        .into_iter()
        .filter(|&(_, w)| w > 0)
        .map(|(a, w)| (a, if rr { 1 } else { w }))
        .collect();
    let s = NftService {
        selector,
        slots: slots_for(weights),
    };
    if why.is_empty() { Ok(s) } else { Err(why) }
}

/// At most this many slots per service (plus one per real server, for rounding): each
/// slot is one element of the service's map.
pub const MAX_SLOTS: u64 = 1024;

/// Slots per real server: its weight, or when the weights add up to more than
/// [`MAX_SLOTS`], its share of `MAX_SLOTS` rounded down (at least 1). Shares are then
/// exact to within 1/1024 of the total.
pub fn slots_for(weights: BTreeMap<SocketAddr, u32>) -> BTreeMap<SocketAddr, u32> {
    let total: u64 = weights.values().map(|&w| u64::from(w)).sum();
    if total <= MAX_SLOTS {
        return weights;
    }
    weights
        .into_iter()
        .map(|(a, w)| {
            let n = (u64::from(w) * MAX_SLOTS / total).max(1);
            (a, u32::try_from(n).unwrap_or(1))
        })
        .collect()
}

/// The chain of a service: readable and unique, e.g. `tcp4_192_0_2_1_80`,
/// `udp6_2001_db8__1_53`, `fwmark4_7`.
pub fn chain_name(key: &ServiceKey) -> String {
    let fam = match key.family() {
        Family::Inet => '4',
        Family::Inet6 => '6',
    };
    match key {
        ServiceKey::Addr { protocol, addr } => {
            let ip = addr.ip().to_string().replace(['.', ':'], "_");
            format!("{protocol}{fam}_{ip}_{}", addr.port())
        }
        ServiceKey::Fwmark { mark, .. } => format!("fwmark{fam}_{mark}"),
    }
}

fn family_suffix(f: Family) -> char {
    match f {
        Family::Inet => '4',
        Family::Inet6 => '6',
    }
}

fn l3(f: Family) -> &'static str {
    match f {
        Family::Inet => "ip",
        Family::Inet6 => "ip6",
    }
}

/// The dispatch map a service's element goes in: `services4`, `fwmark6`, ...
pub fn dispatch_map(key: &ServiceKey) -> String {
    let kind = match key {
        ServiceKey::Addr { .. } => "services",
        ServiceKey::Fwmark { .. } => "fwmark",
    };
    format!("{kind}{}", family_suffix(key.family()))
}

fn proto_name(p: Protocol) -> String {
    p.to_string()
}

/// The dispatch map element's key.
fn dispatch_key(key: &ServiceKey) -> Value {
    match key {
        ServiceKey::Addr { protocol, addr } => {
            json!({"concat": [addr.ip().to_string(), proto_name(*protocol), addr.port()]})
        }
        ServiceKey::Fwmark { mark, .. } => json!(mark),
    }
}

/// `{key: value}`, moving `value` (`json!` would copy it through `to_value`, which
/// dominated rendering a large table).
pub fn wrap(key: &str, value: Value) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(key.to_owned(), value);
    Value::Object(m)
}

fn obj(kind: &str, mut body: Value) -> Value {
    if let Some(m) = body.as_object_mut() {
        m.insert("family".into(), json!(FAMILY));
        m.insert("table".into(), json!(TABLE));
    }
    wrap(kind, body)
}

/// The skeleton's objects, in the form `nft -j list` gives them back (minus handles),
/// so a read-back skeleton compares equal.
pub fn skeleton() -> Vec<Value> {
    let mut out = Vec::new();
    for (name, ty) in [
        (
            "services4",
            json!(["ipv4_addr", "inet_proto", "inet_service"]),
        ),
        (
            "services6",
            json!(["ipv6_addr", "inet_proto", "inet_service"]),
        ),
        ("fwmark4", json!("mark")),
        ("fwmark6", json!("mark")),
    ] {
        out.push(obj(
            "map",
            json!({"name": name, "type": ty, "map": "verdict"}),
        ));
    }
    out.push(obj("set", json!({"name": "masq4", "type": "ipv4_addr"})));
    out.push(obj("set", json!({"name": "masq6", "type": "ipv6_addr"})));
    out.push(obj("chain", json!({"name": "dispatch"})));
    for (name, hook, prio) in [
        ("prerouting", "prerouting", -100),
        ("output", "output", -100),
        ("postrouting", "postrouting", 100),
    ] {
        out.push(obj(
            "chain",
            json!({"name": name, "type": "nat", "hook": hook, "prio": prio, "policy": "accept"}),
        ));
    }
    let rule = |chain: &str, expr: Value| obj("rule", json!({"chain": chain, "expr": expr}));
    // Fwmark services first, as IPVS looks them up first.
    for (nfproto, map) in [("ipv4", "@fwmark4"), ("ipv6", "@fwmark6")] {
        out.push(rule(
            "dispatch",
            json!([
                {"match": {"op": "==", "left": {"meta": {"key": "nfproto"}}, "right": nfproto}},
                {"vmap": {"key": {"meta": {"key": "mark"}}, "data": map}}
            ]),
        ));
    }
    for (l3p, map) in [("ip", "@services4"), ("ip6", "@services6")] {
        out.push(rule(
            "dispatch",
            json!([{"vmap": {"key": {"concat": [
                {"payload": {"protocol": l3p, "field": "daddr"}},
                {"meta": {"key": "l4proto"}},
                {"payload": {"protocol": "th", "field": "dport"}}
            ]}, "data": map}}]),
        ));
    }
    for chain in ["prerouting", "output"] {
        out.push(rule(chain, json!([{"jump": {"target": "dispatch"}}])));
    }
    for (l3p, set) in [("ip", "@masq4"), ("ip6", "@masq6")] {
        out.push(rule(
            "postrouting",
            json!([
                {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}},
                {"match": {"op": "==", "left": {"payload": {"protocol": l3p, "field": "daddr"}}, "right": set}},
                {"masquerade": null}
            ]),
        ));
    }
    out
}

/// The one rule of a service's chain, `None` when it has no real server with slots
/// (packets then reach the director's own stack, as with an empty IPVS service).
pub fn service_rule(key: &ServiceKey, s: &NftService) -> Option<Value> {
    if s.slots.is_empty() {
        return None;
    }
    let total = s.total();
    let fam = key.family();
    let pick = match s.selector {
        Selector::Random => json!({"numgen": {"mode": "random", "mod": total, "offset": 0}}),
        Selector::SourceHash { port } => {
            let saddr = json!({"payload": {"protocol": l3(fam), "field": "saddr"}});
            let expr = if port {
                json!({"concat": [saddr, {"payload": {"protocol": "th", "field": "sport"}}]})
            } else {
                saddr
            };
            json!({"jhash": {"mod": total, "seed": HASH_SEED, "expr": expr}})
        }
    };
    // One element per slot, not one range per real server: the kernel (6.18) makes a
    // new interval map's elements visible a moment after the rule that uses it, and a
    // connection in that moment went untranslated (the netns test
    // connections_never_fail_while_the_table_is_patched_and_replaced); a plain map has
    // no such step.
    let mut elems: Vec<Value> = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for (first, last, addr) in s.ranges() {
        let v = if addr.port() == 0 {
            json!(addr.ip().to_string())
        } else {
            json!({"concat": [addr.ip().to_string(), addr.port()]})
        };
        for slot in first..=last {
            elems.push(Value::Array(vec![json!(slot), v.clone()]));
        }
    }
    let mut map = serde_json::Map::new();
    map.insert("key".into(), pick);
    map.insert("data".into(), wrap("set", Value::Array(elems)));
    let mut nat = serde_json::Map::new();
    nat.insert("family".into(), json!(l3(fam)));
    nat.insert("addr".into(), wrap("map", Value::Object(map)));
    Some(dnat_rule(key, nat, key.to_string()))
}

/// A rule of a service's chain that DNATs with `nat` (family, address, port or map),
/// after the service's protocol match for an address service.
fn dnat_rule(key: &ServiceKey, nat: serde_json::Map<String, Value>, comment: String) -> Value {
    let dnat = wrap("dnat", Value::Object(nat));
    let expr = match key {
        // nft insists on a protocol match before it maps to a port.
        ServiceKey::Addr { protocol, .. } => vec![
            json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": proto_name(*protocol)}}),
            dnat,
        ],
        ServiceKey::Fwmark { .. } => vec![dnat],
    };
    let mut body = serde_json::Map::new();
    body.insert("chain".into(), json!(chain_name(key)));
    body.insert("expr".into(), Value::Array(expr));
    body.insert("comment".into(), json!(comment));
    obj("rule", Value::Object(body))
}

/// The comment of a service's fallback rule.
pub fn fallback_comment(key: &ServiceKey) -> String {
    format!("{key} switch fallback")
}

/// The second rule of a service's chain: a DNAT to the real server of slot 0, with no
/// map. The first rule's map is anonymous, and when a transaction deletes that rule the
/// kernel (6.18, `nft_mapelem_deactivate`) marks the map's elements inactive for the next
/// generation; a packet that entered the chain under the old generation and looks the
/// slot up just after the generation flips then misses (seen as ~1 refused connection
/// per 1,000 applies). It falls through to this rule, still the old table's. Packets of
/// the new generation always find their slot and never get here.
pub fn fallback_rule(key: &ServiceKey, s: &NftService) -> Option<Value> {
    let (_, _, first) = *s.ranges().first()?;
    let mut nat = serde_json::Map::new();
    nat.insert("family".into(), json!(l3(key.family())));
    nat.insert("addr".into(), json!(first.ip().to_string()));
    if first.port() != 0 {
        nat.insert("port".into(), json!(first.port()));
    }
    Some(dnat_rule(key, nat, fallback_comment(key)))
}

/// The rules of a service's chain: [`service_rule`], then [`fallback_rule`].
fn add_rules(key: &ServiceKey, s: &NftService, out: &mut Vec<Value>) {
    if let Some(r) = service_rule(key, s) {
        out.push(wrap("add", r));
    }
    if let Some(r) = fallback_rule(key, s) {
        out.push(wrap("add", r));
    }
}

/// Commands creating a service (chain, rules, dispatch element).
pub fn add_service(key: &ServiceKey, s: &NftService, out: &mut Vec<Value>) {
    out.push(wrap("add", obj("chain", json!({"name": chain_name(key)}))));
    add_rules(key, s, out);
    out.push(wrap(
        "add",
        obj(
            "element",
            json!({
                "name": dispatch_map(key),
                "elem": [[dispatch_key(key), {"goto": {"target": chain_name(key)}}]]
            }),
        ),
    ));
}

/// Commands replacing a service's rule in place.
pub fn replace_service(key: &ServiceKey, s: &NftService, out: &mut Vec<Value>) {
    out.push(wrap(
        "flush",
        obj("chain", json!({"name": chain_name(key)})),
    ));
    add_rules(key, s, out);
}

/// Commands deleting a service: its element first (it refers to the chain), then the
/// chain's rule, then the chain.
pub fn delete_service(key: &ServiceKey, out: &mut Vec<Value>) {
    out.push(wrap(
        "delete",
        obj(
            "element",
            json!({
                "name": dispatch_map(key),
                "elem": [dispatch_key(key)]
            }),
        ),
    ));
    out.push(wrap(
        "flush",
        obj("chain", json!({"name": chain_name(key)})),
    ));
    out.push(wrap(
        "delete",
        obj("chain", json!({"name": chain_name(key)})),
    ));
}

/// The masquerade set an address goes in.
pub fn masq_set(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "masq4",
        IpAddr::V6(_) => "masq6",
    }
}

/// Commands adding (`add`) or deleting (`delete`) masquerade addresses.
pub fn masquerade_elements<'a>(
    verb: &str,
    ips: impl IntoIterator<Item = &'a IpAddr>,
    out: &mut Vec<Value>,
) {
    let mut by_set: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    for ip in ips {
        by_set
            .entry(masq_set(ip))
            .or_default()
            .push(json!(ip.to_string()));
    }
    for (set, elems) in by_set {
        out.push(wrap(
            verb,
            obj("element", json!({"name": set, "elem": elems})),
        ));
    }
}

/// Commands building the whole table from nothing (after `add table`).
pub fn create_all(model: &Model, out: &mut Vec<Value>) {
    out.push(json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}));
    // Maps, sets and chains before the rules that name them.
    let (defs, rules): (Vec<Value>, Vec<Value>) = skeleton()
        .into_iter()
        .partition(|o| o.get("rule").is_none());
    out.extend(defs.into_iter().map(|o| wrap("add", o)));
    out.extend(rules.into_iter().map(|o| wrap("add", o)));
    for (key, s) in &model.services {
        add_service(key, s, out);
    }
    if !model.masquerade.is_empty() {
        masquerade_elements("add", &model.masquerade, out);
    }
}

/// The whole table as one nft JSON document (`nft -j -f -`), replacing any table of the
/// same name in one transaction: `add table` (so the delete cannot fail), `delete
/// table`, then everything. For inspection and first installs: replacing a table that
/// serves traffic this way re-registers its NAT hooks, which lets a few new connections
/// through untranslated; the [`crate::Applier`] replaces in place instead.
pub fn document(model: &Model) -> Value {
    wrap("nftables", Value::Array(replace_all(model)))
}

/// The commands of [`document`].
pub fn replace_all(model: &Model) -> Vec<Value> {
    let mut out = vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        json!({"delete": {"table": {"family": FAMILY, "name": TABLE}}}),
    ];
    create_all(model, &mut out);
    out
}

/// Renders a desired table (unsettled real servers by their fallback) into the nft JSON
/// document that replaces `table inet vigil` with it.
pub fn render(desired: &DesiredTable, options: &Options) -> Result<Value, RenderErrors> {
    Ok(document(&plan_fresh(desired, options)?))
}
