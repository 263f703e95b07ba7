//! `[vrrp.NAME]`: one VRRP instance, its virtual addresses and peers.

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, Value, as_array, as_int, as_ip, as_prefix};

use super::track::track_entry;
use super::vrrp_routes;
use super::{Section, VrrpSpans, check_interface, check_name, notify_hooks};

/// The `[vrrp]` tables, by instance name.
pub(super) fn vrrp_section(
    sink: &mut Sink,
    top: &mut Table<'_, '_>,
) -> Section<VrrpInstance, VrrpSpans, String> {
    let mut section = Section::new();
    if let Some(v) = top.get("vrrp")
        && let Some(t) = Table::from_value(sink, v, "vrrp")
    {
        for (name, value) in t.entries() {
            let name_str: &str = name.get_ref();
            section.names.push(name_str.to_string());
            let path = format!("vrrp.{name_str}");
            let parsed = check_name(sink, name_str, name.span(), "VRRP instance")
                .then(|| Table::from_value(sink, value, path.clone()))
                .flatten()
                .and_then(|t| vrrp_instance(sink, name_str, t));
            section.take(parsed);
        }
    }
    section
}

fn vrrp_instance(
    sink: &mut Sink,
    name: &str,
    mut t: Table<'_, '_>,
) -> Option<(VrrpInstance, VrrpSpans)> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();

    let interface = t
        .req_str(sink, "interface")
        .filter(|(i, s)| check_interface(sink, &f("interface"), i, s.clone()));
    let vrid = t.req_int::<u8>(sink, "vrid", 1, 255);
    let priority = t
        .int::<u8>(sink, "priority", 1, 255)
        .map_or(100, |(v, _)| v);
    let (version_read, advert_interval) = version_and_interval(sink, &mut t, &f);
    let version = version_read.unwrap_or(VrrpVersion::V3);
    let preempt = t.bool(sink, "preempt").unwrap_or(true);
    let preempt_delay = match t.duration(sink, "preempt_delay") {
        Some((d, span)) if d > Duration::from_secs(1000) => {
            sink.error(
                span,
                format!("`{}` must be at most 1000s", f("preempt_delay")),
            );
            Duration::ZERO
        }
        Some((d, _)) => d,
        None => Duration::ZERO,
    };
    let accept = t.bool(sink, "accept").unwrap_or(false);
    let vips = addresses(sink, &mut t, &f, name, version_read);
    let family = vips.family;
    let peers = peers(sink, &mut t, &f, family);
    let learned_interval_factor = learned_interval_factor(sink, &mut t, &f, version_read);
    let auth_password = auth_password(sink, &mut t, &f, version_read);
    let garp = garp(sink, &mut t, &f);
    let (track, track_vs) = tracks(sink, &mut t, &f);
    let hooks = notify_hooks(sink, &mut t);
    let sync_group = t
        .str(sink, "sync_group")
        .filter(|(g, s)| check_name(sink, g, s.clone(), "sync group"));
    let virtual_routes = vrrp_routes::virtual_routes(sink, &mut t, family);
    let virtual_rules = vrrp_routes::virtual_rules(sink, &mut t, family);
    let (vmac, vmac_span) = vrrp_routes::vmac(sink, &mut t, vrid.as_ref().map(|(v, _)| *v));
    // keepalived's name is closest to `virtual_routes` by spelling; say what it is.
    let router_id = t
        .entries()
        .find(|(k, _)| {
            let k: &str = k.get_ref();
            k == "virtual_router_id"
        })
        .map(|(k, _)| k.span());
    if let Some(span) = router_id {
        t.get("virtual_router_id");
        sink.push(
            Diagnostic::error(span, format!("unknown field `{}`", f("virtual_router_id")))
                .with_help("vigil calls keepalived's virtual_router_id `vrid`"),
        );
    }
    t.finish(sink);

    if sink.items.len() != errors_before {
        return None;
    }
    let (vrid, vrid_span) = vrid?;
    let spans = VrrpSpans {
        vrid: vrid_span,
        vips: vips.vip_spans,
        vips_excluded: vips.excluded_spans,
        sync_group: sync_group.as_ref().map_or(0..0, |(_, s)| s.clone()),
        track_vs,
        vmac: vmac_span,
    };
    Some((
        VrrpInstance {
            name: name.to_string(),
            interface: interface?.0.to_string(),
            vrid,
            priority,
            version,
            advert_interval,
            preempt,
            preempt_delay,
            accept,
            unicast_peers: peers.unicast_peers,
            unicast_source: peers.unicast_source,
            allowed_peers: peers.allowed_peers,
            unicast_accept_any_ttl: peers.unicast_accept_any_ttl,
            learned_interval_factor,
            vips: vips.vips,
            vips_excluded: vips.vips_excluded,
            family,
            auth_password,
            garp,
            track,
            hooks,
            sync_group: sync_group.map(|(g, _)| g.to_string()),
            virtual_routes,
            virtual_rules,
            vmac,
        },
        spans,
    ))
}

/// `version` and `advert_interval`. The version is `None` when `version` is invalid: its
/// error is enough, so the rules that depend on the version are skipped rather than
/// checked against a guess.
fn version_and_interval(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
) -> (Option<VrrpVersion>, Duration) {
    let version_read = match t.get("version") {
        None => Some(VrrpVersion::V3),
        Some(v) => match as_int::<u8>(sink, v, &f("version"), 2, 3) {
            Some(2) => Some(VrrpVersion::V2),
            Some(_) => Some(VrrpVersion::V3),
            None => None,
        },
    };
    let advert = t.duration(sink, "advert_interval");
    let advert_interval = advert.as_ref().map_or(Duration::from_secs(1), |(d, _)| *d);
    if let Some((d, span)) = &advert {
        match version_read {
            // RFC 3768 §5.3.7: Adver Int is an 8-bit count of whole seconds.
            Some(VrrpVersion::V2)
                if d.subsec_nanos() != 0 || d.as_secs() == 0 || d.as_secs() > 255 =>
            {
                sink.push(
                    Diagnostic::error(span.clone(), format!("`{}` must be a whole number of seconds from 1s to 255s for VRRP version 2", f("advert_interval")))
                        .with_help("VRRPv2 (RFC 3768) counts the advert interval in seconds; use version = 3 for sub-second adverts"),
                );
            }
            // RFC 5798 §5.2.7: Max Adver Int is a 12-bit count of centiseconds.
            Some(VrrpVersion::V3)
                if d.as_micros() % 10_000 != 0
                    || *d < Duration::from_millis(10)
                    || *d > Duration::from_millis(40_950) =>
            {
                sink.push(
                    Diagnostic::error(span.clone(), format!("`{}` must be a multiple of 10ms from 10ms to 40.95s for VRRP version 3", f("advert_interval")))
                        .with_help("RFC 5798 carries the interval in centiseconds (12 bits)"),
                );
            }
            _ => {}
        }
    }
    (version_read, advert_interval)
}

/// An instance's virtual addresses (`vips`, `vips_excluded`) with their spans, and the
/// one family they share.
struct Vips {
    vips: Vec<IpPrefix>,
    vip_spans: Vec<Range<usize>>,
    vips_excluded: Vec<IpPrefix>,
    excluded_spans: Vec<Range<usize>>,
    family: AddressFamily,
}

fn addresses(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    name: &str,
    version_read: Option<VrrpVersion>,
) -> Vips {
    let (mut vips, mut vip_spans) = (Vec::new(), Vec::new());
    let vips_field = t.require(sink, "vips");
    if let Some(v) = vips_field
        && let Some(items) = as_array(sink, v, &f("vips"))
    {
        if items.is_empty() {
            sink.error(
                v.span(),
                format!(
                    "`{}` is empty: an instance needs at least one virtual address",
                    f("vips")
                ),
            );
        }
        (vips, vip_spans) = vip_list(sink, items, &f("vips"), &[]);
        // RFC 5798 §5.2.5 / RFC 3768 §5.3.5: "Count IPvX Addr" is one byte, so an advert
        // lists at most 255 addresses; more would leave the instance unable to advertise.
        if vips.len() > usize::from(u8::MAX) {
            sink.push(
                Diagnostic::error(v.span(), format!("`{}`: instance \"{name}\" advertises {} addresses, more than the 255 an advert can list", f("vips"), vips.len()))
                    .with_help("the advert's address count is one byte (RFC 5798 §5.2.5, RFC 3768 §5.3.5); move the rest to `vips_excluded` or another instance"),
            );
        }
    }
    // keepalived's virtual_ipaddress_excluded: held like `vips` but not advertised, so
    // they do not count toward the 255 and peers need not list them.
    let (mut vips_excluded, mut excluded_spans) = (Vec::new(), Vec::new());
    if let Some((items, _)) = t.array(sink, "vips_excluded") {
        (vips_excluded, excluded_spans) = vip_list(sink, items, &f("vips_excluded"), &vips);
    }
    // RFC 5798 §5.2.9 / §7: an instance carries addresses of one family; RFC 3768 is IPv4 only.
    let family = vips
        .first()
        .map_or(AddressFamily::Ipv4, |p| AddressFamily::of(&p.addr));
    let both = vips.iter().zip(&vip_spans).map(|p| (p, "vips")).chain(
        vips_excluded
            .iter()
            .zip(&excluded_spans)
            .map(|p| (p, "vips_excluded")),
    );
    for ((pfx, span), key) in both {
        let fam = AddressFamily::of(&pfx.addr);
        if fam != family {
            sink.push(
                Diagnostic::error(span.clone(), format!("`{}`: {pfx} is {fam} but the first virtual address is {family}", f(key)))
                    .with_help("one VRRP instance carries one address family (RFC 5798 §5.2.9); make a second instance for the other family"),
            );
        }
        if version_read == Some(VrrpVersion::V2) && fam == AddressFamily::Ipv6 {
            sink.push(
                Diagnostic::error(
                    span.clone(),
                    format!(
                        "`{}`: {pfx} is IPv6, which VRRP version 2 cannot carry",
                        f(key)
                    ),
                )
                .with_help("use version = 3 for IPv6 (RFC 5798)"),
            );
        }
    }
    Vips {
        vips,
        vip_spans,
        vips_excluded,
        excluded_spans,
        family,
    }
}

/// Whom an instance talks to and hears: unicast peers and source, the multicast
/// allow-list, and whether unicast adverts may arrive with any TTL.
struct Peers {
    unicast_peers: Vec<IpAddr>,
    unicast_source: Option<IpAddr>,
    allowed_peers: Vec<IpAddr>,
    unicast_accept_any_ttl: bool,
}

fn peers(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    family: AddressFamily,
) -> Peers {
    let unicast_peers = match t.array(sink, "unicast_peers") {
        Some((items, _)) => peer_list(sink, items, &f("unicast_peers"), family),
        None => Vec::new(),
    };
    let unicast_source = t
        .get("unicast_source")
        .and_then(|v| as_ip(sink, v, &f("unicast_source")).map(|ip| (ip, v.span())))
        .and_then(|(ip, span)| {
            if AddressFamily::of(&ip) == family {
                Some(ip)
            } else {
                sink.error(
                    span,
                    format!(
                        "`{}`: {ip} is not {family} like the instance's virtual addresses",
                        f("unicast_source")
                    ),
                );
                None
            }
        });

    let allowed_peers = allowed_peers(sink, t, f, family, !unicast_peers.is_empty());
    let unicast_accept_any_ttl = match t.get("unicast_accept_any_ttl") {
        Some(v) => match t.bool(sink, "unicast_accept_any_ttl") {
            Some(true) if unicast_peers.is_empty() => {
                sink.push(
                    Diagnostic::error(
                        v.span(),
                        format!(
                            "`{}` needs `unicast_peers`",
                            f("unicast_accept_any_ttl")
                        ),
                    )
                    .with_help("multicast adverts never cross a router: RFC 5798 §7.1 requires TTL 255 for them"),
                );
                false
            }
            other => other.unwrap_or(false),
        },
        None => false,
    };
    Peers {
        unicast_peers,
        unicast_source,
        allowed_peers,
        unicast_accept_any_ttl,
    }
}

fn learned_interval_factor(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    version_read: Option<VrrpVersion>,
) -> u32 {
    match t.int::<u32>(sink, "learned_interval_factor", 1, 100) {
        Some((_, span)) if version_read == Some(VrrpVersion::V2) => {
            sink.push(
                Diagnostic::error(
                    span,
                    format!(
                        "`{}` is only for VRRP version 3",
                        f("learned_interval_factor")
                    ),
                )
                .with_help("a VRRPv2 advert must carry our own interval (RFC 3768 §7.1), so nothing is learned"),
            );
            DEFAULT_LEARNED_INTERVAL_FACTOR
        }
        Some((factor, _)) => factor,
        None => DEFAULT_LEARNED_INTERVAL_FACTOR,
    }
}

fn auth_password(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    version_read: Option<VrrpVersion>,
) -> Option<String> {
    let (pw, span) = t.str(sink, "auth_password")?;
    if version_read.is_none() {
        None
    } else if version_read != Some(VrrpVersion::V2) {
        sink.push(
            Diagnostic::error(
                span,
                format!("`{}` is only for VRRP version 2", f("auth_password")),
            )
            .with_help("RFC 5798 removed authentication from VRRPv3"),
        );
        None
    } else if pw.is_empty() || pw.len() > 8 {
        sink.error(
            span,
            format!(
                "`{}` must be 1 to 8 bytes (RFC 3768 §5.3.6.1)",
                f("auth_password")
            ),
        );
        None
    } else {
        Some(pw.to_string())
    }
}

fn garp(sink: &mut Sink, t: &mut Table<'_, '_>, f: &dyn Fn(&str) -> String) -> Garp {
    Garp {
        repeat: t
            .int::<u32>(sink, "garp_repeat", 1, 100)
            .map_or(5, |(v, _)| v),
        interval: match t.duration(sink, "garp_interval") {
            Some((d, span)) if d > Duration::from_secs(1) => {
                sink.error(span, format!("`{}` must be at most 1s", f("garp_interval")));
                Duration::ZERO
            }
            Some((d, _)) => d,
            None => Duration::from_millis(10),
        },
        refresh: match t.duration(sink, "garp_refresh") {
            Some((d, span)) if d < Duration::from_secs(1) && !d.is_zero() => {
                sink.error(
                    span,
                    format!(
                        "`{}` must be at least 1s (or \"0s\" for off)",
                        f("garp_refresh")
                    ),
                );
                None
            }
            Some((d, _)) if d.is_zero() => None,
            Some((d, _)) => Some(d),
            None => None,
        },
    }
}

/// The `track` entries, each with the span of the virtual server it names (`0..0` for
/// the other kinds).
fn tracks(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
) -> (Vec<Track>, Vec<Range<usize>>) {
    let mut track = Vec::new();
    let mut track_vs = Vec::new();
    if let Some((items, _)) = t.array(sink, "track") {
        for (i, item) in items.iter().enumerate() {
            if let Some(tt) = Table::from_value(sink, item, format!("{}[{i}]", f("track")))
                && let Some((tr, vs_span)) = track_entry(sink, tt)
            {
                track.push(tr);
                track_vs.push(vs_span);
            }
        }
    }
    (track, track_vs)
}

/// vigil_vrrp::DEFAULT_LEARNED_INTERVAL_FACTOR (this crate does not depend on it): a
/// master may advertise up to 3 times slower or faster than this router's own interval.
const DEFAULT_LEARNED_INTERVAL_FACTOR: u32 = 3;

/// `allowed_peers`: distinct addresses of the instance's family, multicast mode only.
fn allowed_peers(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    family: AddressFamily,
    unicast: bool,
) -> Vec<IpAddr> {
    let Some((items, span)) = t.array(sink, "allowed_peers") else {
        return Vec::new();
    };
    if unicast {
        sink.push(
            Diagnostic::error(span, format!("`{}` is for multicast mode", f("allowed_peers")))
                .with_help("with `unicast_peers`, adverts from other sources are dropped already; remove one of the two"),
        );
        return Vec::new();
    }
    if items.is_empty() {
        sink.push(
            Diagnostic::error(span, format!("`{}` is empty", f("allowed_peers"))).with_help(
                "list the peers whose adverts to accept, or remove the field to accept any",
            ),
        );
    }
    peer_list(sink, items, &f("allowed_peers"), family)
}

/// The distinct peer addresses of a `unicast_peers`-like array, each of the instance's
/// family.
fn peer_list(
    sink: &mut Sink,
    items: &[Value<'_>],
    key: &str,
    family: AddressFamily,
) -> Vec<IpAddr> {
    let mut peers = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let field = format!("{key}[{i}]");
        if let Some(ip) = as_ip(sink, item, &field) {
            if AddressFamily::of(&ip) != family {
                sink.error(
                    item.span(),
                    format!(
                        "`{field}`: peer {ip} is not {family} like the instance's virtual addresses"
                    ),
                );
            } else if peers.contains(&ip) {
                sink.error(item.span(), format!("`{field}`: peer {ip} is listed twice"));
            } else {
                peers.push(ip);
            }
        }
    }
    peers
}

/// The usable, distinct addresses of a `vips`-like array, with their spans; `other` is a
/// list of the same instance they must not repeat.
fn vip_list(
    sink: &mut Sink,
    items: &[Value<'_>],
    key: &str,
    other: &[IpPrefix],
) -> (Vec<IpPrefix>, Vec<Range<usize>>) {
    let (mut vips, mut spans) = (Vec::new(), Vec::new());
    for (i, item) in items.iter().enumerate() {
        let field = format!("{key}[{i}]");
        if let Some(pfx) = as_prefix(sink, item, &field) {
            if let Some(why) = unusable_vip(&pfx) {
                sink.push(
                    Diagnostic::error(item.span(), format!("`{field}`: {pfx} {why}"))
                        .with_help("a virtual address must be a unicast host address of its subnet, e.g. \"192.0.2.100/24\""),
                );
            } else if vips.iter().any(|p: &IpPrefix| p.addr == pfx.addr) {
                sink.error(
                    item.span(),
                    format!("`{field}`: {} is listed twice", pfx.addr),
                );
            } else if other.iter().any(|p| p.addr == pfx.addr) {
                sink.error(
                    item.span(),
                    format!("`{field}`: {} is also in `vips`", pfx.addr),
                );
            } else {
                vips.push(pfx);
                spans.push(item.span());
            }
        }
    }
    (vips, spans)
}

/// Why an address cannot be a virtual (host) address, if it cannot.
fn unusable_vip(pfx: &IpPrefix) -> Option<String> {
    let ip = pfx.addr;
    if ip.is_unspecified() {
        return Some("is the unspecified address".into());
    }
    if ip.is_multicast() {
        return Some("is a multicast address".into());
    }
    if ip.is_loopback() {
        return Some("is a loopback address".into());
    }
    match ip {
        IpAddr::V4(v4) => {
            if v4.is_broadcast() {
                return Some("is the limited broadcast address".into());
            }
            // /31 (RFC 3021) and /32 have no network or broadcast address.
            if pfx.prefix_len <= 30 {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(pfx.prefix_len))
                    .unwrap_or(0);
                let a = u32::from(v4);
                let net = std::net::Ipv4Addr::from(a & mask);
                if a & !mask == 0 {
                    return Some(format!(
                        "is the network address of {net}/{}",
                        pfx.prefix_len
                    ));
                }
                if a & !mask == !mask {
                    return Some(format!(
                        "is the broadcast address of {net}/{}",
                        pfx.prefix_len
                    ));
                }
            }
            None
        }
        IpAddr::V6(v6) => {
            // RFC 4291 §2.6.1: host bits all zero is the Subnet-Router anycast address.
            if pfx.prefix_len <= 126 {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(pfx.prefix_len))
                    .unwrap_or(0);
                let a = u128::from(v6);
                if a & !mask == 0 {
                    let net = std::net::Ipv6Addr::from(a & mask);
                    return Some(format!(
                        "is the subnet-router anycast address of {net}/{}",
                        pfx.prefix_len
                    ));
                }
            }
            None
        }
    }
}
