//! `[vrrp.NAME]`'s `virtual_routes`, `virtual_rules` and virtual MAC keys (`use_vmac`,
//! `vmac_name`, `vmac_xmit_base`).

use std::net::IpAddr;
use std::ops::Range;

use crate::tree::Node;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, Value, as_choice, as_int, as_ip, as_prefix};

use super::check_interface;

/// `virtual_routes`: each entry a table of `to` (required; "default" for /0), `via`,
/// `dev`, `src`, `table`, `metric`, `scope`, `protocol`, `type`.
pub(super) fn virtual_routes(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    family: AddressFamily,
) -> Vec<VirtualRoute> {
    entries(sink, t, "virtual_routes", family, route)
}

/// The tables of array `key`, each read by `entry` (given its path, `...key[i]`); an
/// entry with errors is left out (they are reported).
fn entries<T>(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    key: &'static str,
    family: AddressFamily,
    entry: fn(&mut Sink, Table<'_, '_>, &str, AddressFamily) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    let Some((items, _)) = t.array(sink, key) else {
        return out;
    };
    let key = t.field(key).to_string();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{key}[{i}]");
        if let Some(et) = Table::from_value(sink, item, path.clone())
            && let Some(e) = entry(sink, et, &path, family)
        {
            out.push(e);
        }
    }
    out
}

fn route(
    sink: &mut Sink,
    mut t: Table<'_, '_>,
    path: &str,
    family: AddressFamily,
) -> Option<VirtualRoute> {
    let f = |k: &str| format!("{path}.{k}");
    let before = sink.items.len();
    let to = t
        .require(sink, "to")
        .and_then(|v| destination(sink, v, &f("to"), family));
    let via = t
        .get("via")
        .and_then(|v| as_ip(sink, v, &f("via")).map(|a| (a, v.span())));
    let dev = t
        .str(sink, "dev")
        .filter(|(d, s)| check_interface(sink, &f("dev"), d, s.clone()))
        .map(|(d, _)| d.to_string());
    let src = t
        .get("src")
        .and_then(|v| as_ip(sink, v, &f("src")).map(|a| (a, v.span())));
    let table = table(sink, &mut t, &f("table")).unwrap_or(254);
    let metric = t.int::<u32>(sink, "metric", 0, u32::MAX).map(|(m, _)| m);
    let scope = t
        .choice(sink, "scope", &["global", "site", "link", "host"])
        .map(|(s, _)| match s {
            "global" => 0,
            "site" => 200,
            "link" => 253,
            _ => 254,
        });
    let protocol = protocol(sink, &mut t, &f("protocol")).unwrap_or(4);
    let kind = t
        .choice(
            sink,
            "type",
            &["unicast", "blackhole", "unreachable", "prohibit"],
        )
        .map(|(k, span)| {
            let kind = match k {
                "unicast" => RouteKind::Unicast,
                "blackhole" => RouteKind::Blackhole,
                "unreachable" => RouteKind::Unreachable,
                _ => RouteKind::Prohibit,
            };
            (kind, span)
        });
    let span = t.span.clone();
    t.finish(sink);
    let to = to?;
    let fam = AddressFamily::of(&to.addr);
    for (what, addr) in [("via", &via), ("src", &src)] {
        if let Some((a, s)) = addr
            && AddressFamily::of(a) != fam
        {
            sink.error(
                s.clone(),
                format!("`{}`: {a} is not {fam} like `to` ({to})", f(what)),
            );
        }
    }
    let kind_and_span = kind.clone();
    let kind = kind.map_or(RouteKind::Unicast, |(k, _)| k);
    if kind == RouteKind::Unicast && via.is_none() && dev.is_none() {
        sink.push(
            Diagnostic::error(span, format!("`{path}`: a route to {to} needs `via` or `dev`"))
                .with_help("name the next hop (`via`), the interface (`dev`), or both; or set `type` = \"blackhole\", \"unreachable\" or \"prohibit\""),
        );
    } else if kind != RouteKind::Unicast
        && (via.is_some() || dev.is_some())
        && let Some((_, s)) = kind_and_span
    {
        sink.error(
            s,
            format!(
                "`{}`: a route that drops packets has no `via` or `dev`",
                f("type")
            ),
        );
    }
    (sink.items.len() == before).then(|| VirtualRoute {
        to,
        via: via.map(|(a, _)| a),
        dev,
        src: src.map(|(a, _)| a),
        table,
        metric,
        scope,
        protocol,
        kind,
    })
}

/// A route's or rule's prefix: `ADDR/LEN` without host bits, or "default" (the
/// instance's family, /0).
fn destination(
    sink: &mut Sink,
    v: &Value<'_>,
    field: &str,
    family: AddressFamily,
) -> Option<IpPrefix> {
    if let Node::String(s) = v.get_ref()
        && s.as_ref() == "default"
    {
        let addr = match family {
            AddressFamily::Ipv4 => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            AddressFamily::Ipv6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
        };
        return Some(IpPrefix {
            addr,
            prefix_len: 0,
        });
    }
    let p = as_prefix(sink, v, &field)?;
    if let Some(net) = network(&p)
        && net != p.addr
    {
        sink.push(
            Diagnostic::error(v.span(), format!("`{field}`: {p} has host bits set"))
                .with_help(format!("did you mean \"{net}/{}\"?", p.prefix_len)),
        );
        return None;
    }
    Some(p)
}

/// The network address of `p` (its host bits cleared).
fn network(p: &IpPrefix) -> Option<IpAddr> {
    match p.addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(p.prefix_len))
                .unwrap_or(0);
            Some(IpAddr::V4((u32::from(a) & mask).into()))
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(p.prefix_len))
                .unwrap_or(0);
            Some(IpAddr::V6((u128::from(a) & mask).into()))
        }
    }
}

/// A routing table: 1 to 2^32-1, or "main" (254), "local" (255), "default" (253).
fn table(sink: &mut Sink, t: &mut Table<'_, '_>, field: &str) -> Option<u32> {
    let v = t.get("table")?;
    match v.get_ref() {
        Node::String(_) => {
            as_choice(sink, v, &field, &["main", "local", "default"]).map(|n| match n {
                "main" => 254,
                "local" => 255,
                _ => 253,
            })
        }
        _ => as_int::<u32>(sink, v, &field, 1, u32::MAX),
    }
}

/// `protocol`: 0 to 255, or "boot", "static" or "keepalived" (`RTPROT_*`).
fn protocol(sink: &mut Sink, t: &mut Table<'_, '_>, field: &str) -> Option<u8> {
    let v = t.get("protocol")?;
    match v.get_ref() {
        Node::String(_) => {
            as_choice(sink, v, &field, &["boot", "static", "keepalived"]).map(|n| match n {
                "boot" => 3,
                "static" => 4,
                _ => 18,
            })
        }
        _ => as_int::<u8>(sink, v, &field, 0, 255),
    }
}

/// `virtual_rules`: each entry a table of `from`, `to`, `iif`, `oif`, `fwmark`,
/// `fwmask`, `priority`, `table` and `action`.
pub(super) fn virtual_rules(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    family: AddressFamily,
) -> Vec<VirtualRule> {
    entries(sink, t, "virtual_rules", family, rule)
}

fn rule(
    sink: &mut Sink,
    mut t: Table<'_, '_>,
    path: &str,
    family: AddressFamily,
) -> Option<VirtualRule> {
    let f = |k: &str| format!("{path}.{k}");
    let before = sink.items.len();
    let from = t
        .get("from")
        .and_then(|v| destination(sink, v, &f("from"), family).map(|p| (p, v.span())));
    let to = t
        .get("to")
        .and_then(|v| destination(sink, v, &f("to"), family).map(|p| (p, v.span())));
    let mut iface = |key: &'static str| {
        t.str(sink, key)
            .filter(|(d, s)| check_interface(sink, &f(key), d, s.clone()))
            .map(|(d, _)| d.to_string())
    };
    let iif = iface("iif");
    let oif = iface("oif");
    let fwmark = t.int::<u32>(sink, "fwmark", 0, u32::MAX).map(|(m, _)| m);
    let fwmask = t.int::<u32>(sink, "fwmask", 0, u32::MAX);
    let priority = t.int::<u32>(sink, "priority", 0, u32::MAX).map(|(p, _)| p);
    let table_span = t.get("table").map(|v| v.span());
    let table = table(sink, &mut t, &f("table"));
    let action = t.choice(
        sink,
        "action",
        &["table", "blackhole", "unreachable", "prohibit"],
    );
    let span = t.span.clone();
    t.finish(sink);
    if let Some((_, s)) = &fwmask
        && fwmark.is_none()
    {
        sink.error(s.clone(), format!("`{}` needs `fwmark`", f("fwmask")));
    }
    // Rules are per family: the selectors' addresses say which, else the instance's.
    let fam = from
        .as_ref()
        .or(to.as_ref())
        .map_or(family, |(p, _)| AddressFamily::of(&p.addr));
    if let (Some((a, _)), Some((b, s))) = (&from, &to)
        && AddressFamily::of(&a.addr) != AddressFamily::of(&b.addr)
    {
        sink.error(
            s.clone(),
            format!("`{}`: {b} is not {fam} like `from` ({a})", f("to")),
        );
    }
    let action = match (action.map(|(a, _)| a), table) {
        (None | Some("table"), Some(t)) => Some(RuleAction::Table(t)),
        (None | Some("table"), None) => {
            sink.push(
                Diagnostic::error(span, format!("`{path}`: the rule needs a `table` to look packets up in"))
                    .with_help("add `table = 100` (a number, or \"main\"), or set `action` = \"blackhole\", \"unreachable\" or \"prohibit\""),
            );
            None
        }
        (Some(a), Some(_)) => {
            sink.error(
                table_span.unwrap_or(span),
                format!(
                    "`{}`: a rule with action \"{a}\" looks up no table",
                    f("table")
                ),
            );
            None
        }
        (Some("blackhole"), None) => Some(RuleAction::Blackhole),
        (Some("unreachable"), None) => Some(RuleAction::Unreachable),
        (Some(_), None) => Some(RuleAction::Prohibit),
    };
    (sink.items.len() == before).then_some(VirtualRule {
        family: fam,
        from: from.map(|(p, _)| p),
        to: to.map(|(p, _)| p),
        iif,
        oif,
        fwmark,
        fwmask: fwmask.map(|(m, _)| m),
        priority,
        action: action?,
    })
}

/// `use_vmac`, `vmac_name` and `vmac_xmit_base`; the span to point at when the name is
/// used twice (`0..0` without a virtual MAC).
pub(super) fn vmac(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    vrid: Option<u8>,
) -> (Option<Vmac>, Range<usize>) {
    let use_span = t.get("use_vmac").map(|v| v.span());
    let on = t.bool(sink, "use_vmac").unwrap_or(false);
    let name = t
        .str(sink, "vmac_name")
        .filter(|(n, s)| check_interface(sink, &t.field("vmac_name").to_string(), n, s.clone()));
    let xmit = t.get("vmac_xmit_base").map(|v| v.span());
    let xmit_base = t.bool(sink, "vmac_xmit_base").unwrap_or(false);
    if !on {
        for (key, span) in [
            ("vmac_name", name.as_ref().map(|(_, s)| s.clone())),
            ("vmac_xmit_base", xmit),
        ] {
            if let Some(s) = span {
                sink.push(
                    Diagnostic::error(s, format!("`{}` needs `use_vmac = true`", t.field(key)))
                        .with_help("it configures the virtual MAC interface, which only `use_vmac` creates"),
                );
            }
        }
        return (None, 0..0);
    }
    let Some(vrid) = vrid else {
        return (None, 0..0);
    };
    let (name, span) = match name {
        Some((n, s)) => (n.to_string(), s),
        None => (format!("vrrp.{vrid}"), use_span.unwrap_or(0..0)),
    };
    (Some(Vmac { name, xmit_base }), span)
}
