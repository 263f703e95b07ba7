//! `[[virtual_server]]`: one service, its scheduling, persistence and quorum, and its
//! real servers with their checks.

use std::fmt::Write as _;
use std::ops::Range;

use crate::tree::Node;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, Value, as_array, as_choice, as_socket_addr, type_name, unique};

use super::check::check;
use super::ipvs_options::{inherit_tunnel, one_packet, tunnel};
use super::{Section, VsSpans, check_name};

/// The `[[virtual_server]]` tables; names with the span of their table.
pub(super) fn virtual_server_section(
    sink: &mut Sink,
    top: &mut Table<'_, '_>,
) -> Section<VirtualServer, VsSpans, (String, Range<usize>)> {
    let mut section = Section::new();
    if let Some(v) = top.get("virtual_server")
        && let Some(items) = as_array(sink, v, &"virtual_server")
    {
        for (i, item) in items.iter().enumerate() {
            if let Some(name) = item
                .get_ref()
                .get("name")
                .and_then(|n| n.get_ref().as_str())
            {
                section.names.push((name.to_string(), item.span()));
            }
            let parsed = Table::from_value(sink, item, format!("virtual_server[{i}]"))
                .and_then(|t| virtual_server(sink, t));
            section.take(parsed);
        }
    }
    section
}

fn virtual_server(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<(VirtualServer, VsSpans)> {
    let errors_before = sink.items.len();
    let name = t
        .req_str(sink, "name")
        .filter(|(n, s)| check_name(sink, n, s.clone(), "virtual server"));
    // Messages name the server by its name once we know it.
    if let Some((n, _)) = &name {
        t.path = format!("virtual_server.{n}");
    }
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");

    // The group form (several services) or the single one.
    let group_keys = if super::group::is_group(&t) {
        Some(super::group::group_keys(sink, &mut t, &f, &p))
    } else {
        None
    };
    let (key, key_span, group) = match group_keys {
        Some(keys) => {
            let first = keys.first().map(|(k, s)| (*k, s.clone()));
            let port = super::group::common_port(&keys);
            let rest: Vec<_> = keys.into_iter().skip(1).collect();
            match first {
                Some((k, s)) => (Some(k), s, Some((rest, port))),
                None => (None, t.span.clone(), Some((rest, port))),
            }
        }
        None => {
            let (k, s) = service_key(sink, &mut t, &f, &p);
            // Known, for suggestions, though absent.
            let _ = (t.get("addresses"), t.get("fwmarks"));
            (k, s, None)
        }
    };
    let vs_port = match (&key, &group) {
        (_, Some((_, port))) => *port,
        (Some(ServiceKey::Address { address, .. }), None) => Some(address.port()),
        _ => None,
    };
    let group = group.map(|(rest, _)| rest).unwrap_or_default();

    // Where a datapath's refusal of one of these points (validate::datapath).
    let field_spans: Vec<(&'static str, Range<usize>)> =
        ["scheduler", "scheduler_flags", "persistence", "one_packet"]
            .into_iter()
            .filter_map(|k| t.get(k).map(|v| (k, v.span())))
            .collect();
    let (scheduler, scheduler_flags) = scheduler(sink, &mut t, &f);
    let forwarding = t
        .choice(sink, "forwarding", Forwarding::NAMES)
        .map_or(Forwarding::Nat, |(n, _)| forwarding_named(n));

    let persistence = persistence(sink, &mut t, &f, &key);

    let quorum = t.int::<u32>(sink, "quorum", 0, 100_000);
    // An invalid quorum has its own error: do not judge the hysteresis against a guess.
    let quorum_known = quorum.is_some() || t.get("quorum").is_none();
    let hysteresis_read = t.int::<u32>(sink, "hysteresis", 0, 100_000);
    let hysteresis = hysteresis_read.as_ref().map_or(0, |(h, _)| *h);
    let sorry_server = t
        .get("sorry_server")
        .and_then(|v| as_socket_addr(sink, v, &f("sorry_server"), vs_port).map(|a| (a, v.span())));
    let inhibit_on_failure = t.bool(sink, "inhibit_on_failure").unwrap_or(false);
    let quorum_by =
        t.choice(sink, "quorum_by", QuorumBy::NAMES)
            .map_or(QuorumBy::Servers, |(n, _)| {
                if n == "weight" {
                    QuorumBy::Weight
                } else {
                    QuorumBy::Servers
                }
            });
    let quorum_up = hook(sink, &mut t, "quorum_up");
    let quorum_down = hook(sink, &mut t, "quorum_down");
    let omega = t.bool(sink, "omega").unwrap_or(false);
    let announce = announce_flag(sink, &mut t, &key);

    let one_packet = one_packet(sink, &mut t, &key);
    let vs_tunnel = tunnel(sink, &mut t, forwarding);

    let default_check = default_check(sink, &mut t, &f);
    let (mut real_servers, rs_spans, rs_count) = real_servers(
        sink,
        &mut t,
        &p,
        (vs_port, forwarding, inhibit_on_failure),
        &default_check,
    );
    inherit_tunnel(&mut real_servers, vs_tunnel);
    let t_span = t.span.clone();
    let mut real_servers_from_dns = super::dns_real_servers::entries(
        sink,
        &mut t,
        &p,
        (&key, forwarding, inhibit_on_failure),
        &default_check,
    );
    for d in &mut real_servers_from_dns {
        inherit_tunnel(std::slice::from_mut(&mut d.template), vs_tunnel);
    }
    t.finish(sink);

    unique(
        sink,
        real_servers
            .iter()
            .zip(&rs_spans)
            .map(|(rs, span)| (rs.address, span.clone())),
        |addr| format!("real server {addr} appears twice in `{p}`"),
    );
    // Rules across fields of this server.
    // By weight, the most the live servers can reach is their summed weights (entries with
    // errors counted at keepalived's default weight 1, as their own errors say).
    let reachable = match quorum_by {
        QuorumBy::Servers => rs_count as u64,
        QuorumBy::Weight => {
            real_servers
                .iter()
                .map(|r| u64::from(r.weight))
                .sum::<u64>()
                + (rs_count - real_servers.len()) as u64
        }
    };
    let quorum_value = quorum_rules(
        sink,
        &f,
        (&quorum, quorum_known, &hysteresis_read),
        (rs_count, reachable, quorum_by),
        !real_servers_from_dns.is_empty(),
    );
    let destination_errors = sink.items.len();
    destination_rules(
        sink,
        &f,
        &key,
        forwarding,
        &sorry_server,
        &real_servers,
        &rs_spans,
    );
    // The group's other services only when the first passed: one error per server.
    if sink.items.len() == destination_errors {
        super::group::group_destination_rules(
            sink,
            &f,
            &group,
            forwarding,
            &sorry_server,
            &real_servers,
            &rs_spans,
        );
    }

    if sink.items.len() != errors_before {
        return None;
    }
    Some((
        VirtualServer {
            name: name?.0.to_string(),
            key: key?,
            scheduler,
            scheduler_flags,
            forwarding,
            persistence,
            quorum: quorum_value,
            hysteresis,
            sorry_server: sorry_server.map(|(a, _)| a),
            inhibit_on_failure,
            one_packet,
            tunnel: (forwarding == Forwarding::Tunnel).then(|| vs_tunnel.unwrap_or_default()),
            real_servers,
            real_servers_from_dns,
            quorum_by,
            quorum_up,
            quorum_down,
            omega,
            group: group.iter().map(|(k, _)| *k).collect(),
            announce: announce.is_some(),
        },
        VsSpans {
            key: key_span,
            table: t_span,
            fields: field_spans,
            real_servers: rs_spans,
            group: group.into_iter().map(|(_, s)| s).collect(),
            announce,
        },
    ))
}

/// `announce`: the span of a `true` (for the check that `[announce]` exists), `None`
/// when off. A fwmark service has no one address to announce.
fn announce_flag(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    key: &Option<ServiceKey>,
) -> Option<Range<usize>> {
    let span = t.get("announce")?.span();
    if !t.bool(sink, "announce")? {
        return None;
    }
    if let Some(ServiceKey::Fwmark { .. }) = key {
        sink.push(
            Diagnostic::error(
                span,
                format!(
                    "`{}` applies only to address services, not fwmark ones",
                    t.field("announce")
                ),
            )
            .with_help(
                "a fwmark service has no one address to announce: announce an address service",
            ),
        );
        return None;
    }
    Some(span)
}

/// A hook: a program with its arguments, absolute.
fn hook(sink: &mut Sink, t: &mut Table<'_, '_>, key: &'static str) -> Option<Vec<String>> {
    let (argv, span) = t.str_list(sink, key)?;
    super::absolute_program(sink, &t.field(key).to_string(), &argv, span).then_some(argv)
}

/// The service's identity, `address` (with `protocol`) or `fwmark` (with `family`), and
/// the span validation points at for it.
fn service_key(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    p: &str,
) -> (Option<ServiceKey>, Range<usize>) {
    let address = t.get("address");
    let fwmark = t.int::<u32>(sink, "fwmark", 1, u32::MAX);
    let family = t.choice(sink, "family", &["ipv4", "ipv6"]);
    let protocol = t.choice(sink, "protocol", Protocol::NAMES);
    let mut key_span = t.span.clone();
    let key = match (address, fwmark) {
        (Some(a), None) => {
            key_span = a.span();
            if let Some((_, span)) = &family {
                sink.push(
                    Diagnostic::error(
                        span.clone(),
                        format!("`{}` applies only to fwmark services", f("family")),
                    )
                    .with_help("an address service takes its family from `address`"),
                );
            }
            as_socket_addr(sink, a, &f("address"), None).map(|address| ServiceKey::Address {
                protocol: match protocol.as_ref().map(|(p, _)| *p) {
                    Some("udp") => Protocol::Udp,
                    Some("sctp") => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
                address,
            })
        }
        (None, Some((mark, span))) => {
            key_span = span;
            if let Some((_, span)) = &protocol {
                sink.push(
                    Diagnostic::error(
                        span.clone(),
                        format!("`{}` does not apply to fwmark services", f("protocol")),
                    )
                    .with_help(
                        "a fwmark service matches whatever the firewall marked; the mark decides",
                    ),
                );
            }
            Some(ServiceKey::Fwmark {
                mark,
                family: match family.as_ref().map(|(f, _)| *f) {
                    Some("ipv6") => AddressFamily::Ipv6,
                    _ => AddressFamily::Ipv4,
                },
            })
        }
        (Some(a), Some(_)) => {
            sink.error(
                a.span(),
                format!("`{p}` has both `address` and `fwmark`: give one"),
            );
            None
        }
        (None, None) => {
            // A missing fwmark may also have been reported as out of range above.
            if t.get("fwmark").is_none() {
                sink.push(
                    Diagnostic::error(
                        t.span.clone(),
                        format!("`{p}` needs `address` (IP:PORT) or `fwmark`"),
                    )
                    .with_help("e.g. address = \"192.0.2.100:80\""),
                );
            }
            None
        }
    };
    (key, key_span)
}

/// `scheduler` and its `scheduler_flags`.
fn scheduler(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
) -> (String, Vec<SchedulerFlag>) {
    let scheduler_read = t.choice(sink, "scheduler", SCHEDULERS);
    // An unknown scheduler has its own error: do not judge the flags against the default.
    let scheduler_known = scheduler_read.is_some() || t.get("scheduler").is_none();
    let scheduler = scheduler_read.map_or("wlc", |(s, _)| s).to_string();
    let mut scheduler_flags = Vec::new();
    if let Some((items, span)) = t.array(sink, "scheduler_flags") {
        if scheduler_known && !matches!(scheduler.as_str(), "sh" | "mh") {
            sink.error(
                span,
                format!(
                    "`{}` apply only to the sh and mh schedulers, not {scheduler}",
                    f("scheduler_flags")
                ),
            );
        } else {
            for (i, item) in items.iter().enumerate() {
                match as_choice(
                    sink,
                    item,
                    &format!("{}[{i}]", f("scheduler_flags")),
                    &["fallback", "port"],
                ) {
                    Some("fallback") => scheduler_flags.push(SchedulerFlag::Fallback),
                    Some(_) => scheduler_flags.push(SchedulerFlag::Port),
                    None => {}
                }
            }
        }
    }
    (scheduler, scheduler_flags)
}

/// `persistence` (the timeout) and `persistence_prefix`.
fn persistence(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    key: &Option<ServiceKey>,
) -> Option<Persistence> {
    let persistence_timeout = t.duration(sink, "persistence");
    let persistence_prefix = t.int::<u8>(sink, "persistence_prefix", 0, 128);
    let fam = key.as_ref().map_or(AddressFamily::Ipv4, |k| k.family());
    match persistence_timeout {
        Some((d, span))
            if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > u64::from(u32::MAX) =>
        {
            sink.error(
                span,
                format!(
                    "`{}` must be a whole number of seconds, at least 1s",
                    f("persistence")
                ),
            );
            None
        }
        Some((d, _)) => {
            let prefix_len = match persistence_prefix {
                Some((n, span)) if n > fam.max_prefix() => {
                    sink.error(
                        span,
                        format!(
                            "`{}` must be at most {} for an {fam} service",
                            f("persistence_prefix"),
                            fam.max_prefix()
                        ),
                    );
                    fam.max_prefix()
                }
                Some((n, _)) => n,
                None => fam.max_prefix(),
            };
            Some(Persistence {
                timeout: d,
                prefix_len,
            })
        }
        None => {
            if let Some((_, span)) = persistence_prefix {
                sink.error(
                    span,
                    format!(
                        "`{}` needs `persistence` (the timeout) as well",
                        f("persistence_prefix")
                    ),
                );
            }
            None
        }
    }
}

/// A virtual server's own `check` (a table, or an array of them for several checks),
/// which its real servers take unless they override it.
pub(super) struct DefaultCheck<'a, 'i> {
    value: Option<&'a Value<'i>>,
    parsed: Vec<Check>,
    /// False when it has errors (reported once, here).
    ok: bool,
}

fn default_check<'a, 'i>(
    sink: &mut Sink,
    t: &mut Table<'a, 'i>,
    f: &dyn Fn(&str) -> String,
) -> DefaultCheck<'a, 'i> {
    // The default check, validated on its own so that its errors are reported once, and
    // parsed once: real servers without an override share it (a 10,000-server file
    // would otherwise parse the same table 10,000 times, on every reload).
    let value = t.get("check");
    let mut parsed = Vec::new();
    let ok = match value {
        Some(v) => {
            let before = sink.items.len();
            parsed = checks(sink, v, &[], &f("check"), false);
            sink.items.len() == before
        }
        None => true,
    };
    DefaultCheck { value, parsed, ok }
}

/// The most checks one real server may have.
const MAX_CHECKS: usize = 64;

/// The tables of a `check` value: one table, or an array of them (`[[...check]]`).
fn check_tables<'a, 'i>(
    sink: &mut Sink,
    v: &'a Value<'i>,
    path: &str,
    allow_false: bool,
) -> Option<Vec<(&'a crate::tree::Table<'i>, std::ops::Range<usize>, String)>> {
    match v.get_ref() {
        Node::Table(t) => Some(vec![(t, v.span(), path.to_string())]),
        Node::Array(items) if items.len() > MAX_CHECKS => {
            sink.error(
                v.span(),
                format!("`{path}` has {} checks: at most {MAX_CHECKS}", items.len()),
            );
            None
        }
        Node::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.get_ref() {
                    Node::Table(t) => out.push((t, item.span(), format!("{path}[{i}]"))),
                    other => sink.push(Diagnostic::error(
                        item.span(),
                        format!("`{path}[{i}]` must be a table, found {}", type_name(other)),
                    )),
                }
            }
            Some(out)
        }
        Node::Boolean(false) if allow_false => Some(Vec::new()),
        other => {
            let what = if allow_false {
                "a table, an array of tables, or false for no check"
            } else {
                "a table or an array of tables"
            };
            sink.push(
                Diagnostic::error(
                    v.span(),
                    format!("`{path}` must be {what}, found {}", type_name(other)),
                )
                .with_help("e.g. check = { kind = \"tcp\" }, or check = [{ kind = \"tcp\" }, { kind = \"file\", path = \"/run/down\" }]"),
            );
            None
        }
    }
}

/// The checks of a `check` value. A table without `kind` is merged field by field over
/// each of `defaults` (e.g. only another port); anything else replaces them.
fn checks(
    sink: &mut Sink,
    v: &Value<'_>,
    defaults: &[&crate::tree::Table<'_>],
    path: &str,
    allow_false: bool,
) -> Vec<Check> {
    let Some(tables) = check_tables(sink, v, path, allow_false) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let merge =
        matches!(v.get_ref(), Node::Table(t) if !t.contains_key("kind")) && !defaults.is_empty();
    for (own, span, path) in tables {
        if !merge {
            out.extend(check(sink, Table::new(own, span, path)));
            continue;
        }
        for (i, d) in defaults.iter().enumerate() {
            let mut m = (*d).clone();
            for (k, v) in own.iter() {
                m.insert(k.clone(), v.clone());
            }
            // Errors of the merged table name the override; with several default
            // checks, which one it was merged into.
            let path = if defaults.len() > 1 {
                format!("{path}[{i}]")
            } else {
                path.clone()
            };
            out.extend(check(sink, Table::new(&m, span.clone(), path)));
        }
    }
    out
}

/// The parsed real servers with their spans, and how many entries there are, including
/// those with errors (which are reported on their own).
fn real_servers(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    p: &str,
    vs_defaults: (Option<u16>, Forwarding, bool),
    default_check: &DefaultCheck<'_, '_>,
) -> (Vec<RealServer>, Vec<Range<usize>>, usize) {
    let mut real_servers = Vec::new();
    let mut rs_spans = Vec::new();
    // All entries, including those with errors (which are reported on their own).
    let mut rs_count = 0;
    if let Some((items, _)) = t.array(sink, "real_server") {
        rs_count = items.len();
        real_servers.reserve(items.len());
        rs_spans.reserve(items.len());
        for (i, item) in items.iter().enumerate() {
            // Sized up front: `format!` would grow it once more, per real server.
            let mut path = String::with_capacity(p.len() + 24);
            let _ = write!(path, "{p}.real_server[{i}]");
            if let Some(rt) = Table::from_value(sink, item, path)
                && let Some((rs, span)) = real_server(sink, rt, vs_defaults, default_check, None)
            {
                real_servers.push(rs);
                rs_spans.push(span);
            }
        }
    }
    (real_servers, rs_spans, rs_count)
}

/// An integer as read, with its span.
type SpannedInt = Option<(u32, Range<usize>)>;

/// `quorum` against what the real servers can reach (their number, or their summed
/// weights with `quorum_by = "weight"`), and `hysteresis` against the quorum; the quorum
/// (1 when not given).
fn quorum_rules(
    sink: &mut Sink,
    f: &dyn Fn(&str) -> String,
    (quorum, quorum_known, hysteresis_read): (&SpannedInt, bool, &SpannedInt),
    (rs_count, reachable, quorum_by): (usize, u64, QuorumBy),
    from_dns: bool,
) -> u32 {
    let quorum_value = quorum.as_ref().map_or(1, |(q, _)| *q);
    if let Some((q, span)) = &quorum
        && u64::from(*q) > reachable
        && rs_count > 0
        && !from_dns
    {
        let why = match quorum_by {
            QuorumBy::Servers if rs_count == 1 => "there is only 1 real server".to_string(),
            QuorumBy::Servers => format!("there are only {rs_count} real servers"),
            QuorumBy::Weight => format!("the real servers' weights sum to {reachable}"),
        };
        sink.error(
            span.clone(),
            format!("`{}` = {q} can never be met: {why}", f("quorum")),
        );
    }
    if let Some((hysteresis, hysteresis_span)) = hysteresis_read
        && quorum_known
        && *hysteresis > 0
        && *hysteresis >= quorum_value
    {
        sink.error(
            hysteresis_span.clone(),
            format!(
                "`{}` ({hysteresis}) must be smaller than the quorum ({quorum_value})",
                f("hysteresis")
            ),
        );
    }
    quorum_value
}

/// The sorry server and every real server against the service's address and forwarding.
fn destination_rules(
    sink: &mut Sink,
    f: &dyn Fn(&str) -> String,
    key: &Option<ServiceKey>,
    forwarding: Forwarding,
    sorry_server: &Option<(std::net::SocketAddr, Range<usize>)>,
    real_servers: &[RealServer],
    rs_spans: &[Range<usize>],
) {
    if let (Some((sorry, span)), Some(k)) = (sorry_server, key) {
        check_destination(
            sink,
            &f("sorry_server"),
            *sorry,
            span.clone(),
            k,
            forwarding,
        );
    }
    if let Some(k) = key {
        let field = f("real_server");
        for (rs, span) in real_servers.iter().zip(rs_spans) {
            check_destination(sink, &field, rs.address, span.clone(), k, rs.forwarding);
        }
    }
}

fn forwarding_named(n: &str) -> Forwarding {
    match n {
        "dr" => Forwarding::Dr,
        "tunnel" => Forwarding::Tunnel,
        _ => Forwarding::Nat,
    }
}

/// Rules for a destination (real or sorry server) of a service.
pub(super) fn check_destination(
    sink: &mut Sink,
    field: &str,
    dest: std::net::SocketAddr,
    span: Range<usize>,
    key: &ServiceKey,
    forwarding: Forwarding,
) {
    if let ServiceKey::Address { address, .. } = key
        && dest.ip() == address.ip()
    {
        sink.push(
            Diagnostic::error(
                span,
                format!(
                    "`{field}`: {dest} is on the service's own address {}",
                    address.ip()
                ),
            )
            .with_help(
                "the director would forward the service to itself: use another host's address",
            ),
        );
        return;
    }
    if let ServiceKey::Address { address, .. } = key
        && !forwarding.can_remap_port()
        && dest.port() != address.port()
    {
        sink.push(
            Diagnostic::error(span.clone(), format!("`{field}`: {dest} has port {} but {} forwarding cannot change the port of the service ({})", dest.port(), forwarding.name(), address.port()))
                .with_help(format!("use port {} (or leave the port out), or forwarding = \"nat\"", address.port())),
        );
    }
    let fam = AddressFamily::of(&dest.ip());
    if fam != key.family() && forwarding != Forwarding::Tunnel {
        sink.push(
            Diagnostic::error(
                span,
                format!(
                    "`{field}`: {dest} is {fam} but the service is {}",
                    key.family()
                ),
            )
            .with_help("only tunnel forwarding can mix address families"),
        );
    }
}

/// A `real_server` entry; with `template` (a `real_servers_from_dns` entry), everything
/// but the address, which is `template`.
pub(super) fn real_server(
    sink: &mut Sink,
    mut t: Table<'_, '_>,
    (vs_port, vs_forwarding, vs_inhibit): (Option<u16>, Forwarding, bool),
    default_check: &DefaultCheck<'_, '_>,
    template: Option<std::net::SocketAddr>,
) -> Option<(RealServer, Range<usize>)> {
    let errors_before = sink.items.len();
    let address = match template {
        Some(a) => Some((a, t.span.clone())),
        None => t.require(sink, "address").and_then(|v| {
            as_socket_addr(sink, v, &t.field("address"), vs_port).map(|a| (a, v.span()))
        }),
    };
    let weight = t
        .int::<u32>(sink, "weight", 0, 65_535)
        .map_or(1, |(w, _)| w);
    let forwarding = t
        .choice(sink, "forwarding", Forwarding::NAMES)
        .map_or(vs_forwarding, |(n, _)| forwarding_named(n));
    let upper = t.int::<u32>(sink, "upper_threshold", 0, u32::MAX);
    let lower = t.int::<u32>(sink, "lower_threshold", 0, u32::MAX);
    if let (Some((u, _)), Some((l, span))) = (&upper, &lower)
        && l > u
    {
        sink.error(
            span.clone(),
            format!(
                "`{}` ({l}) must not exceed `upper_threshold` ({u})",
                t.field("lower_threshold")
            ),
        );
    }
    let inhibit_on_failure = t.bool(sink, "inhibit_on_failure").unwrap_or(vs_inhibit);
    let notify_up = hook(sink, &mut t, "notify_up");
    let notify_down = hook(sink, &mut t, "notify_down");
    let own_tunnel = tunnel(sink, &mut t, forwarding);
    let own_check = t.get("check");
    let p = t.finish(sink);

    let checks = match (own_check, default_check.value) {
        (None, _) if !default_check.ok => Vec::new(),
        (None, _) => default_check.parsed.clone(),
        (Some(own), default) => {
            let defaults: Vec<&crate::tree::Table<'_>> = match default.map(|d| d.get_ref()) {
                Some(Node::Table(dt)) => vec![dt],
                Some(Node::Array(items)) => items
                    .iter()
                    .filter_map(|i| match i.get_ref() {
                        Node::Table(t) => Some(t),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let merges = matches!(own.get_ref(), Node::Table(t) if !t.contains_key("kind"))
                && !defaults.is_empty();
            if merges && !default_check.ok {
                return None;
            }
            checks(sink, own, &defaults, &format!("{p}.check"), true)
        }
    };
    // A probe bound to a source of one family cannot reach an address of the other.
    for c in &checks {
        if let Some((addr, _)) = &address
            && c.address.is_none()
            && let Some(bind) = c.bind
            && AddressFamily::of(&bind) != AddressFamily::of(&addr.ip())
        {
            sink.error(
                own_check.or(default_check.value).map_or(0..0, |v| v.span()),
                format!(
                    "`{p}.check`: bind address {bind} is {} but the real server {addr} is {}",
                    AddressFamily::of(&bind),
                    AddressFamily::of(&addr.ip())
                ),
            );
            break;
        }
    }
    if sink.items.len() != errors_before {
        return None;
    }
    let (address, span) = address?;
    Some((
        RealServer {
            address,
            weight,
            forwarding,
            upper_threshold: upper.map(|(u, _)| u),
            lower_threshold: lower.map(|(l, _)| l),
            inhibit_on_failure,
            notify_up,
            notify_down,
            tunnel: own_tunnel,
            checks,
        },
        span,
    ))
}
