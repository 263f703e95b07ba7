//! From the spanned TOML tree to [`Config`]: field by field, each with its type, range and
//! default, recording a diagnostic for every problem instead of stopping at the first.
//! Cross-section rules (duplicates, references) live in `validate.rs`.

use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::de::{DeTable, DeValue};

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{
    Sink, Table, Value, as_array, as_choice, as_int, as_ip, as_prefix, as_socket_addr, type_name,
};

/// What parsed, possibly only part of the file: cross-section rules run on the parts that
/// did, so one run reports as much as possible.
pub(crate) struct Parsed {
    /// `None` when any section had an error.
    pub(crate) config: Option<Config>,
    pub(crate) vrrp: Vec<VrrpInstance>,
    pub(crate) virtual_servers: Vec<VirtualServer>,
    pub(crate) spans: Spans,
    /// Names (and table spans) of all virtual server tables, including those with errors,
    /// so references to a broken server are not reported as dangling too, and a name used
    /// twice is reported even when one of the servers has errors.
    pub(crate) vs_names: Vec<(String, Range<usize>)>,
}

/// Source positions of things that cross-section validation points at.
#[derive(Default)]
pub(crate) struct Spans {
    pub(crate) vrrp: Vec<VrrpSpans>,
    pub(crate) virtual_servers: Vec<VsSpans>,
}

pub(crate) struct VrrpSpans {
    pub(crate) vrid: Range<usize>,
    pub(crate) vips: Vec<Range<usize>>,
    pub(crate) vips_excluded: Vec<Range<usize>>,
    pub(crate) sync_group: Range<usize>,
    pub(crate) track_vs: Vec<Range<usize>>,
}

pub(crate) struct VsSpans {
    pub(crate) key: Range<usize>,
}

/// Names people use for things in CLIs and metrics: keep them plain.
fn check_name(sink: &mut Sink, name: &str, span: Range<usize>, what: &str) -> bool {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        sink.push(
            Diagnostic::error(span, format!("{what} name \"{name}\" is not a valid name"))
                .with_help("use 1 to 64 letters, digits, '-', '_' or '.'"),
        );
    }
    ok
}

fn check_interface(sink: &mut Sink, field: &str, name: &str, span: Range<usize>) -> bool {
    // IFNAMSIZ is 16 including the terminating NUL.
    let ok = !name.is_empty()
        && name.len() <= 15
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
        && name != "."
        && name != "..";
    if !ok {
        sink.error(
            span,
            format!("`{field}`: \"{name}\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)"),
        );
    }
    ok
}

fn absolute_program(sink: &mut Sink, field: &str, argv: &[String], span: Range<usize>) -> bool {
    match argv.first() {
        None => {
            sink.error(
                span,
                format!("`{field}` is empty: give the program and its arguments"),
            );
            false
        }
        Some(p) if !p.starts_with('/') => {
            sink.push(
                Diagnostic::error(span, format!("`{field}`: program \"{p}\" must be an absolute path"))
                    .with_help("programs are run directly, never through a shell or $PATH, e.g. [\"/usr/local/bin/notify\", \"arg\"]"),
            );
            false
        }
        Some(_) => true,
    }
}

fn absolute_path(sink: &mut Sink, field: &str, path: &str, span: Range<usize>) -> Option<PathBuf> {
    if path.starts_with('/') {
        Some(PathBuf::from(path))
    } else {
        sink.error(
            span,
            format!("`{field}`: \"{path}\" must be an absolute path"),
        );
        None
    }
}

pub(crate) fn parse_document(
    sink: &mut Sink,
    root: &DeTable<'_>,
    root_span: Range<usize>,
) -> Parsed {
    let mut top = Table::new(root, root_span.clone(), "");
    let mut spans = Spans::default();

    let director = top
        .require(sink, "director")
        .and_then(|v| Table::from_value(sink, v, "director"))
        .and_then(|t| director(sink, t));

    let mut vrrp = Vec::new();
    let mut vrrp_ok = true;
    // Names of all instance tables, including those with errors, so a reference to a
    // broken instance is not reported as dangling too (and a dangling one still is).
    let mut vrrp_names = Vec::new();
    if let Some(v) = top.get("vrrp")
        && let Some(t) = Table::from_value(sink, v, "vrrp")
    {
        for (name, value) in t.entries() {
            let name_str: &str = name.get_ref();
            vrrp_names.push(name_str.to_string());
            let path = format!("vrrp.{name_str}");
            let parsed = check_name(sink, name_str, name.span(), "VRRP instance")
                .then(|| Table::from_value(sink, value, path.clone()))
                .flatten()
                .and_then(|t| vrrp_instance(sink, name_str, t));
            match parsed {
                Some((inst, s)) => {
                    vrrp.push(inst);
                    spans.vrrp.push(s);
                }
                None => vrrp_ok = false,
            }
        }
    }

    let ipvs_sync = match top.get("ipvs_sync") {
        Some(v) => match Table::from_value(sink, v, "ipvs_sync") {
            Some(t) => ipvs_sync(sink, t, &vrrp, &vrrp_names),
            None => None,
        },
        None => None,
    };
    let ipvs_sync_ok = top.get("ipvs_sync").is_none() || ipvs_sync.is_some();

    let mut virtual_servers = Vec::new();
    let mut vs_names = Vec::new();
    let mut vs_ok = true;
    if let Some(v) = top.get("virtual_server")
        && let Some(items) = as_array(sink, v, &"virtual_server")
    {
        for (i, item) in items.iter().enumerate() {
            if let Some(name) = item
                .get_ref()
                .get("name")
                .and_then(|n| n.get_ref().as_str())
            {
                vs_names.push((name.to_string(), item.span()));
            }
            let parsed = Table::from_value(sink, item, format!("virtual_server[{i}]"))
                .and_then(|t| virtual_server(sink, t));
            match parsed {
                Some((vs, s)) => {
                    virtual_servers.push(vs);
                    spans.virtual_servers.push(s);
                }
                None => vs_ok = false,
            }
        }
    }
    let alerts = crate::alert::alerts(sink, top.get("alert"));
    top.finish(sink);

    let config = match (director, alerts) {
        (Some(director), Some(alerts)) if vrrp_ok && vs_ok && ipvs_sync_ok => Some(Config {
            director,
            vrrp: vrrp.clone(),
            ipvs_sync,
            virtual_servers: virtual_servers.clone(),
            alerts,
        }),
        _ => None,
    };
    Parsed {
        config,
        vrrp,
        virtual_servers,
        spans,
        vs_names,
    }
}

fn director(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<Director> {
    let name = t
        .req_str(sink, "name")
        .filter(|(n, s)| check_name(sink, n, s.clone(), "director"));
    let status_socket = match t.str(sink, "status_socket") {
        Some((p, span)) => absolute_path(sink, "director.status_socket", p, span.clone()).filter(|p| {
            // sun_path holds 108 bytes including the terminating NUL.
            let ok = p.as_os_str().len() <= 107;
            if !ok {
                sink.error(span, "`director.status_socket` is longer than the 107 bytes a Unix socket path may have");
            }
            ok
        }),
        None => Some(PathBuf::from(DEFAULT_STATUS_SOCKET)),
    };
    let status_socket_group = t
        .str(sink, "status_socket_group")
        .map(|(g, _)| g.to_string());
    let status_socket_admin_group = t
        .str(sink, "status_socket_admin_group")
        .map(|(g, _)| g.to_string());
    let metrics_listen = t
        .get("metrics_listen")
        .map(|v| as_socket_addr(sink, v, &"director.metrics_listen", None));
    let state_file = match t.str(sink, "state_file") {
        Some((p, span)) => absolute_path(sink, "director.state_file", p, span),
        None => Some(PathBuf::from(DEFAULT_STATE_FILE)),
    };
    t.finish(sink);
    Some(Director {
        name: name?.0.to_string(),
        status_socket: status_socket?,
        status_socket_group,
        status_socket_admin_group,
        metrics_listen: match metrics_listen {
            Some(m) => Some(m?),
            None => None,
        },
        state_file: state_file?,
    })
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
    // `None` when `version` is invalid: its error is enough, so the rules that depend on
    // the version are skipped rather than checked against a guess.
    let version_read = match t.get("version") {
        None => Some(VrrpVersion::V3),
        Some(v) => match as_int::<u8>(sink, v, &f("version"), 2, 3) {
            Some(2) => Some(VrrpVersion::V2),
            Some(_) => Some(VrrpVersion::V3),
            None => None,
        },
    };
    let version = version_read.unwrap_or(VrrpVersion::V3);
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

    let mut unicast_peers = Vec::new();
    if let Some((items, _)) = t.array(sink, "unicast_peers") {
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("unicast_peers"));
            if let Some(ip) = as_ip(sink, item, &field) {
                if AddressFamily::of(&ip) != family {
                    sink.error(item.span(), format!("`{field}`: peer {ip} is not {family} like the instance's virtual addresses"));
                } else if unicast_peers.contains(&ip) {
                    sink.error(item.span(), format!("`{field}`: peer {ip} is listed twice"));
                } else {
                    unicast_peers.push(ip);
                }
            }
        }
    }
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

    let allowed_peers = allowed_peers(sink, &mut t, &f, family, !unicast_peers.is_empty());
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
    let learned_interval_factor = match t.int::<u32>(sink, "learned_interval_factor", 1, 100) {
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
    };

    let auth_password = match t.str(sink, "auth_password") {
        Some((pw, span)) => {
            if version_read.is_none() {
                None
            } else if version != VrrpVersion::V2 {
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
        None => None,
    };

    let garp = Garp {
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
    };

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

    let notify = t
        .str_list(sink, "notify")
        .filter(|(argv, span)| absolute_program(sink, &f("notify"), argv, span.clone()))
        .map(|(argv, _)| argv);
    let sync_group = t
        .str(sink, "sync_group")
        .filter(|(g, s)| check_name(sink, g, s.clone(), "sync group"));
    t.finish(sink);

    if sink.items.len() != errors_before {
        return None;
    }
    let (vrid, vrid_span) = vrid?;
    let spans = VrrpSpans {
        vrid: vrid_span,
        vips: vip_spans,
        vips_excluded: excluded_spans,
        sync_group: sync_group.as_ref().map_or(0..0, |(_, s)| s.clone()),
        track_vs,
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
            unicast_peers,
            unicast_source,
            allowed_peers,
            unicast_accept_any_ttl,
            learned_interval_factor,
            vips,
            vips_excluded,
            family,
            auth_password,
            garp,
            track,
            notify,
            sync_group: sync_group.map(|(g, _)| g.to_string()),
        },
        spans,
    ))
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
    let mut peers = Vec::new();
    let Some((items, span)) = t.array(sink, "allowed_peers") else {
        return peers;
    };
    if unicast {
        sink.push(
            Diagnostic::error(span, format!("`{}` is for multicast mode", f("allowed_peers")))
                .with_help("with `unicast_peers`, adverts from other sources are dropped already; remove one of the two"),
        );
        return peers;
    }
    if items.is_empty() {
        sink.push(
            Diagnostic::error(span, format!("`{}` is empty", f("allowed_peers"))).with_help(
                "list the peers whose adverts to accept, or remove the field to accept any",
            ),
        );
    }
    for (i, item) in items.iter().enumerate() {
        let field = format!("{}[{i}]", f("allowed_peers"));
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

/// Why an address cannot be a virtual (host) address, if it cannot.
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

/// One `track` entry: exactly one of `virtual_server`, `interface` or `exec`.
fn track_entry(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<(Track, Range<usize>)> {
    let p = t.path.clone();
    let table_span = t.span.clone();
    let weight = t
        .int::<i32>(sink, "weight", -254, 254)
        .map_or(0, |(w, _)| w);
    let vs = t.str(sink, "virtual_server");
    let iface = t.str(sink, "interface");
    let exec = t.str_list(sink, "exec");
    let interval = t.duration(sink, "interval");
    let timeout = t.duration(sink, "timeout");
    let user = t.str(sink, "user");
    let given =
        usize::from(vs.is_some()) + usize::from(iface.is_some()) + usize::from(exec.is_some());
    if given != 1 {
        sink.push(
            Diagnostic::error(
                t.span.clone(),
                format!("`{p}` must name exactly one of `virtual_server`, `interface` or `exec`"),
            )
            .with_help(
                "e.g. { virtual_server = \"web\", weight = -50 } or { interface = \"eth1\" }",
            ),
        );
        t.finish(sink);
        return None;
    }
    if exec.is_none() {
        for (key, v) in [("interval", &interval), ("timeout", &timeout)] {
            if let Some((_, span)) = v {
                sink.error(
                    span.clone(),
                    format!("`{p}.{key}` applies only to `exec` tracking"),
                );
            }
        }
        if let Some((_, span)) = &user {
            sink.error(
                span.clone(),
                format!("`{p}.user` applies only to `exec` tracking"),
            );
        }
    }
    t.finish(sink);
    let mut vs_span = 0..0;
    let target = if let Some((name, span)) = vs {
        vs_span = span;
        TrackTarget::VirtualServer(name.to_string())
    } else if let Some((name, span)) = iface {
        if !check_interface(sink, &format!("{p}.interface"), name, span) {
            return None;
        }
        TrackTarget::Interface(name.to_string())
    } else {
        let (command, span) = exec?;
        if !absolute_program(sink, &format!("{p}.exec"), &command, span) {
            return None;
        }
        let interval = match interval {
            // Like a check's interval: a zero interval would run the program in a loop.
            Some((d, span)) if d < Duration::from_millis(10) || d > Duration::from_secs(3600) => {
                sink.error(span, format!("`{p}.interval` must be from 10ms to 1h"));
                return None;
            }
            Some((d, _)) => d,
            None => Duration::from_secs(2),
        };
        let timeout = match timeout {
            Some((d, span)) if d >= interval || d.is_zero() => {
                sink.error(
                    span,
                    format!(
                        "`{p}.timeout` must be above zero and shorter than the interval ({})",
                        crate::format_duration(interval)
                    ),
                );
                return None;
            }
            Some((d, _)) => d,
            None => interval / 2,
        };
        TrackTarget::Exec {
            command,
            interval,
            timeout,
            user: sink
                .user(format!("{p}.user"), user, "nobody", table_span)
                .to_string(),
        }
    };
    Some((Track { target, weight }, vs_span))
}

fn ipvs_sync(
    sink: &mut Sink,
    mut t: Table<'_, '_>,
    vrrp: &[VrrpInstance],
    vrrp_names: &[String],
) -> Option<IpvsSync> {
    let interface = t
        .req_str(sink, "interface")
        .filter(|(i, s)| check_interface(sink, "ipvs_sync.interface", i, s.clone()));
    let sync_id = t.int::<u8>(sink, "sync_id", 0, 255);
    let instance = t.req_str(sink, "instance");
    t.finish(sink);
    let (instance, span) = instance?;
    let Some(inst) = vrrp.iter().find(|v| v.name == instance) else {
        // An instance that failed to parse has its own error already.
        if !vrrp_names.iter().any(|n| n == instance) {
            let known: Vec<&str> = vrrp_names.iter().map(String::as_str).collect();
            let mut d = Diagnostic::error(
                span,
                format!("`ipvs_sync.instance`: there is no VRRP instance \"{instance}\""),
            );
            d = match crate::diag::did_you_mean(instance, &known) {
                Some(n) => d.with_help(format!("did you mean \"{n}\"?")),
                None if known.is_empty() => d.with_help(
                    "the sync daemon's role follows a VRRP instance: define one under [vrrp.NAME]",
                ),
                None => d.with_help(format!("instances: {}", known.join(", "))),
            };
            sink.push(d);
        }
        return None;
    };
    Some(IpvsSync {
        interface: interface?.0.to_string(),
        // Like keepalived, the sync id defaults to the instance's VRID.
        sync_id: sync_id.map_or(inst.vrid, |(v, _)| v),
        instance: instance.to_string(),
    })
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
    let vs_port = match &key {
        Some(ServiceKey::Address { address, .. }) => Some(address.port()),
        _ => None,
    };

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
    let forwarding = t
        .choice(sink, "forwarding", Forwarding::NAMES)
        .map_or(Forwarding::Nat, |(n, _)| forwarding_named(n));

    let persistence_timeout = t.duration(sink, "persistence");
    let persistence_prefix = t.int::<u8>(sink, "persistence_prefix", 0, 128);
    let fam = key.as_ref().map_or(AddressFamily::Ipv4, |k| k.family());
    let persistence = match persistence_timeout {
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
    };

    let quorum = t.int::<u32>(sink, "quorum", 0, 100_000);
    // An invalid quorum has its own error: do not judge the hysteresis against a guess.
    let quorum_known = quorum.is_some() || t.get("quorum").is_none();
    let hysteresis_read = t.int::<u32>(sink, "hysteresis", 0, 100_000);
    let hysteresis = hysteresis_read.as_ref().map_or(0, |(h, _)| *h);
    let sorry_server = t
        .get("sorry_server")
        .and_then(|v| as_socket_addr(sink, v, &f("sorry_server"), vs_port).map(|a| (a, v.span())));
    let inhibit_on_failure = t.bool(sink, "inhibit_on_failure").unwrap_or(false);

    // The default check, validated on its own so that its errors are reported once, and
    // parsed once: real servers without an override share it (a 10,000-server file
    // would otherwise parse the same table 10,000 times, on every reload).
    let default_check = t.get("check");
    let mut default_parsed = None;
    let default_check_ok = match default_check {
        Some(v) => {
            let before = sink.items.len();
            if let Some(ct) = Table::from_value(sink, v, f("check")) {
                default_parsed = check(sink, ct);
            }
            sink.items.len() == before
        }
        None => true,
    };

    let mut real_servers = Vec::new();
    let mut rs_spans = Vec::new();
    // All entries, including those with errors (which are reported on their own).
    let mut rs_count = 0;
    if let Some((items, _)) = t.array(sink, "real_server") {
        rs_count = items.len();
        for (i, item) in items.iter().enumerate() {
            let path = format!("{p}.real_server[{i}]");
            if let Some(rt) = Table::from_value(sink, item, path)
                && let Some((rs, span)) = real_server(
                    sink,
                    rt,
                    vs_port,
                    forwarding,
                    default_check,
                    default_parsed.as_ref(),
                    default_check_ok,
                )
            {
                real_servers.push(rs);
                rs_spans.push(span);
            }
        }
    }
    t.finish(sink);

    crate::validate::unique(
        sink,
        real_servers
            .iter()
            .zip(&rs_spans)
            .map(|(rs, span)| (rs.address, span.clone())),
        |addr| format!("real server {addr} appears twice in `{p}`"),
    );
    // Rules across fields of this server.
    let quorum_value = quorum.as_ref().map_or(1, |(q, _)| *q);
    if let Some((q, span)) = &quorum
        && *q as usize > rs_count
        && rs_count > 0
    {
        sink.error(
            span.clone(),
            format!(
                "`{}` = {q} can never be met: there {}",
                f("quorum"),
                if rs_count == 1 {
                    "is only 1 real server".to_string()
                } else {
                    format!("are only {rs_count} real servers")
                }
            ),
        );
    }
    if let Some((_, hysteresis_span)) = &hysteresis_read
        && quorum_known
        && hysteresis > 0
        && hysteresis >= quorum_value
    {
        sink.error(
            hysteresis_span.clone(),
            format!(
                "`{}` ({hysteresis}) must be smaller than the quorum ({quorum_value})",
                f("hysteresis")
            ),
        );
    }
    if let (Some((sorry, span)), Some(k)) = (&sorry_server, &key) {
        check_destination(
            sink,
            &f("sorry_server"),
            *sorry,
            span.clone(),
            k,
            forwarding,
        );
    }
    if let Some(k) = &key {
        let field = format!("{p}.real_server");
        for (rs, span) in real_servers.iter().zip(&rs_spans) {
            check_destination(sink, &field, rs.address, span.clone(), k, rs.forwarding);
        }
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
            real_servers,
        },
        VsSpans { key: key_span },
    ))
}

fn forwarding_named(n: &str) -> Forwarding {
    match n {
        "dr" => Forwarding::Dr,
        "tunnel" => Forwarding::Tunnel,
        _ => Forwarding::Nat,
    }
}

/// Rules for a destination (real or sorry server) of a service.
fn check_destination(
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

fn real_server(
    sink: &mut Sink,
    mut t: Table<'_, '_>,
    vs_port: Option<u16>,
    vs_forwarding: Forwarding,
    default_check: Option<&Value<'_>>,
    default_parsed: Option<&Check>,
    default_check_ok: bool,
) -> Option<(RealServer, Range<usize>)> {
    let p = t.path.clone();
    let errors_before = sink.items.len();
    let address = t
        .require(sink, "address")
        .and_then(|v| as_socket_addr(sink, v, &t.field("address"), vs_port).map(|a| (a, v.span())));
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
            format!("`{p}.lower_threshold` ({l}) must not exceed `upper_threshold` ({u})"),
        );
    }
    let own_check = t.get("check");
    t.finish(sink);

    let check = match (own_check, default_check) {
        (None, None) => None,
        (None, Some(_)) if !default_check_ok => None,
        (None, Some(_)) => default_parsed.cloned(),
        (Some(own), default) => match own.get_ref() {
            DeValue::Table(own_table) => {
                // Without `kind`, the override is merged over the virtual server's check
                // field by field (e.g. only another port); with `kind` it replaces it.
                let merged;
                let table = match default.map(|d| d.get_ref()) {
                    Some(DeValue::Table(dt)) if !own_table.contains_key("kind") => {
                        if !default_check_ok {
                            return None;
                        }
                        let mut m = dt.clone();
                        for (k, v) in own_table.iter() {
                            m.insert(k.clone(), v.clone());
                        }
                        merged = m;
                        &merged
                    }
                    _ => own_table,
                };
                check(sink, Table::new(table, own.span(), format!("{p}.check")))
            }
            DeValue::Boolean(false) => None,
            other => {
                sink.push(Diagnostic::error(
                    own.span(),
                    format!(
                        "`{p}.check` must be a table (or false for no check), found {}",
                        type_name(other)
                    ),
                ));
                None
            }
        },
    };
    // A probe bound to a source of one family cannot reach an address of the other.
    if let (Some(c), Some((addr, _))) = (&check, &address)
        && c.address.is_none()
        && let Some(bind) = c.bind
        && AddressFamily::of(&bind) != AddressFamily::of(&addr.ip())
    {
        sink.error(
            own_check.or(default_check).map_or(0..0, |v| v.span()),
            format!(
                "`{p}.check`: bind address {bind} is {} but the real server {addr} is {}",
                AddressFamily::of(&bind),
                AddressFamily::of(&addr.ip())
            ),
        );
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
            check,
        },
        span,
    ))
}

/// Fields that belong to each check kind, for "unknown field" hints.
const KIND_FIELDS: &[(&str, &[&str])] = &[
    ("tcp", &["send", "expect"]),
    (
        "http",
        &[
            "method",
            "path",
            "host",
            "expect_status",
            "body_regex",
            "body_sha256",
            "body_md5",
            "regex_no_match",
            "url",
            "max_body_bytes",
        ],
    ),
    (
        "https",
        &[
            "tls_verify",
            "tls_ca_file",
            "tls_trust",
            "tls_server_name",
            "tls_sni",
            "tls_client_cert",
            "tls_client_key",
        ],
    ),
    (
        "dns",
        &[
            "query_name",
            "query_type",
            "expect_rcode",
            "expect_addresses",
            "transport",
        ],
    ),
    ("udp", &["send", "send_hex", "expect", "require_reply"]),
    ("smtp", &["helo_name"]),
    ("exec", &["command", "user"]),
];

fn check(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<Check> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let kind_name = t
        .require(sink, "kind")
        .and_then(|v| as_choice(sink, v, &f("kind"), CheckKind::NAMES));

    let interval = t.duration(sink, "interval");
    let timeout = t.duration(sink, "timeout");
    let interval_value = interval
        .as_ref()
        .map_or(Duration::from_secs(2), |(d, _)| *d);
    // False when `interval` is present but invalid: its error is enough, so nothing is
    // compared against it.
    let mut interval_known = interval.is_some() || t.get("interval").is_none();
    if let Some((d, span)) = &interval
        && (*d < Duration::from_millis(10) || *d > Duration::from_secs(3600))
    {
        sink.error(
            span.clone(),
            format!("`{}` must be from 10ms to 1h", f("interval")),
        );
        interval_known = false;
    }
    let timeout_value = timeout.as_ref().map_or_else(
        || (interval_value / 2).min(Duration::from_secs(1)),
        |(d, _)| *d,
    );
    if let Some((d, span)) = &timeout {
        if d.is_zero() {
            sink.error(
                span.clone(),
                format!("`{}` must be above zero", f("timeout")),
            );
        } else if interval_known && *d >= interval_value {
            sink.push(
                Diagnostic::error(
                    span.clone(),
                    format!(
                        "`{}` ({}) must be shorter than the interval ({})",
                        f("timeout"),
                        crate::format_duration(*d),
                        crate::format_duration(interval_value)
                    ),
                )
                .with_help("a check must finish before the next one is due"),
            );
        }
    }
    let rise = t.int::<u32>(sink, "rise", 1, 100).map_or(2, |(v, _)| v);
    let fall = t.int::<u32>(sink, "fall", 1, 100).map_or(3, |(v, _)| v);
    let initial_state = match t.choice(sink, "initial_state", &["up", "down"]) {
        Some(("up", _)) => InitialState::Up,
        _ => InitialState::Down,
    };
    let retry_delay = t.duration(sink, "retry_delay").map(|(d, span)| {
        if d.is_zero() || (interval_known && d > interval_value) {
            sink.error(
                span,
                format!(
                    "`{}` must be above zero and at most the interval",
                    f("retry_delay")
                ),
            );
        }
        d
    });
    let start_spread = match t.duration(sink, "start_spread") {
        Some((d, span)) if d > Duration::from_secs(3600) => {
            sink.error(span, format!("`{}` must be at most 1h", f("start_spread")));
            d
        }
        Some((d, _)) => d,
        None => interval_value,
    };
    let address = t.get("address").and_then(|v| as_ip(sink, v, &f("address")));
    let port_read = t.int::<u16>(sink, "port", 1, 65_535);
    let port = port_read.as_ref().map(|(v, _)| *v);
    let bind = t.get("bind").and_then(|v| as_ip(sink, v, &f("bind")));
    let bind_port_read = t.int::<u16>(sink, "bind_port", 1, 65_535);
    let bind_port = bind_port_read.as_ref().map(|(v, _)| *v);
    let bind_interface_read = t
        .str(sink, "bind_interface")
        .filter(|(i, s)| check_interface(sink, &f("bind_interface"), i, s.clone()));
    let bind_interface = bind_interface_read.as_ref().map(|(i, _)| i.to_string());
    let fwmark_read = t.int::<u32>(sink, "fwmark", 1, u32::MAX);
    let fwmark = fwmark_read.as_ref().map(|(v, _)| *v);
    if let (Some(a), Some(b)) = (address, bind)
        && AddressFamily::of(&a) != AddressFamily::of(&b)
    {
        sink.error(
            t.span.clone(),
            format!(
                "`{}`: bind address {b} and check address {a} are of different families",
                p
            ),
        );
    }

    let kind = match kind_name {
        Some("tcp") => {
            let send = t.str(sink, "send").map(|(s, _)| s.to_string());
            let expect = regex_field(sink, &mut t, "expect");
            Some(CheckKind::Tcp { send, expect })
        }
        Some(k @ ("http" | "https")) => http_check(sink, &mut t, k == "https").map(CheckKind::Http),
        Some("dns") => dns_check(sink, &mut t).map(CheckKind::Dns),
        Some("udp") => udp_check(sink, &mut t),
        Some("icmp") => {
            if let Some((_, span)) = &port_read {
                sink.push(
                    Diagnostic::error(
                        span.clone(),
                        format!("`{}` does not apply to icmp checks", f("port")),
                    )
                    .with_help("an ICMP echo request has no port"),
                );
            }
            if let Some((_, span)) = &bind_port_read {
                sink.push(
                    Diagnostic::error(
                        span.clone(),
                        format!("`{}` does not apply to icmp checks", f("bind_port")),
                    )
                    .with_help("an ICMP echo request has no port"),
                );
            }
            Some(CheckKind::Icmp)
        }
        Some("smtp") => {
            let helo_name = match t.str(sink, "helo_name") {
                Some((h, span))
                    if h.is_empty()
                        || h.len() > 255
                        || h.chars().any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    sink.error(
                        span,
                        format!(
                            "`{}`: \"{h}\" must be 1–255 characters without spaces or control characters",
                            f("helo_name")
                        ),
                    );
                    None
                }
                Some((h, _)) => Some(h.to_string()),
                None => Some(DEFAULT_HELO_NAME.to_string()),
            };
            helo_name.map(|helo_name| CheckKind::Smtp { helo_name })
        }
        Some("exec") => {
            // The program opens its own sockets: nothing of the check's source reaches them.
            let source_fields = [
                ("bind", t.get("bind").map(|v| v.span())),
                ("bind_port", bind_port_read.as_ref().map(|(_, s)| s.clone())),
                (
                    "bind_interface",
                    bind_interface_read.as_ref().map(|(_, s)| s.clone()),
                ),
                ("fwmark", fwmark_read.as_ref().map(|(_, s)| s.clone())),
            ];
            for (key, span) in source_fields {
                if let Some(span) = span {
                    sink.push(
                        Diagnostic::error(span, format!("`{}` does not apply to exec checks", f(key)))
                            .with_help("the program opens its own connections; give it the source as an argument"),
                    );
                }
            }
            let command = t
                .require(sink, "command")
                .and_then(|_| t.str_list(sink, "command"))
                .filter(|(argv, span)| absolute_program(sink, &f("command"), argv, span.clone()))
                .map(|(argv, _)| argv);
            let user = t.str(sink, "user");
            let user = sink
                .user(f("user"), user, "nobody", t.span.clone())
                .to_string();
            command.map(|command| CheckKind::Exec { command, user })
        }
        _ => None,
    };
    if let Some(k) = kind_name {
        // Say which kind a misplaced field belongs to, rather than only "unknown".
        let own: Vec<&str> = KIND_FIELDS
            .iter()
            .filter(|(n, _)| *n == k || (k == "https" && *n == "http"))
            .flat_map(|(_, fs)| fs.iter().copied())
            .collect();
        let misplaced: Vec<(String, Range<usize>, &str)> = t
            .entries()
            .filter(|(key, _)| !own.contains(&key.get_ref().as_ref()))
            .filter_map(|(key, _)| {
                let other = KIND_FIELDS
                    .iter()
                    .find(|(_, fs)| fs.contains(&key.get_ref().as_ref()))?;
                Some((key.get_ref().to_string(), key.span(), other.0))
            })
            .collect();
        for (key, span, other) in misplaced {
            sink.push(
                Diagnostic::error(
                    span,
                    format!(
                        "`{}` is an option of {other} checks, not of {k} checks",
                        f(&key)
                    ),
                )
                .with_help(format!(
                    "{k} checks take: {}",
                    if own.is_empty() {
                        "only the common options".to_string()
                    } else {
                        own.join(", ")
                    }
                )),
            );
            // Reported here with the better message: keep finish() from repeating it.
            if let Some(field) = KIND_FIELDS
                .iter()
                .flat_map(|(_, fs)| fs.iter())
                .find(|f| **f == key)
            {
                t.get(field);
            }
        }
    }
    t.finish(sink);
    if sink.items.len() != errors_before {
        return None;
    }
    Some(Check {
        kind: kind?,
        interval: interval_value,
        timeout: timeout_value,
        rise,
        fall,
        initial_state,
        retry_delay,
        start_spread,
        address,
        port,
        bind,
        bind_port,
        bind_interface,
        fwmark,
    })
}

fn udp_check(sink: &mut Sink, t: &mut Table<'_, '_>) -> Option<CheckKind> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let text = t.str(sink, "send");
    let hex = t.str(sink, "send_hex");
    let send = match (text, hex) {
        (Some(_), Some((_, span))) => {
            sink.error(
                span,
                format!("`{}` and `{}` are alternatives", f("send"), f("send_hex")),
            );
            Vec::new()
        }
        (Some((s, _)), None) => s.as_bytes().to_vec(),
        (None, Some((h, span))) => match parse_hex(h) {
            Some(bytes) => bytes,
            None => {
                sink.push(
                    Diagnostic::error(
                        span,
                        format!("`{}` must be pairs of hexadecimal digits", f("send_hex")),
                    )
                    .with_help("e.g. send_hex = \"0a1b 2c3d\" (spaces are ignored)"),
                );
                Vec::new()
            }
        },
        (None, None) => Vec::new(),
    };
    let expect = regex_field(sink, t, "expect");
    let require_reply = t.bool(sink, "require_reply").unwrap_or(true);
    if !require_reply
        && expect.is_some()
        && let Some(v) = t.get("expect")
    {
        sink.push(
            Diagnostic::error(
                v.span(),
                format!(
                    "`{}` needs a reply, but `{}` is false",
                    f("expect"),
                    f("require_reply")
                ),
            )
            .with_help("require_reply = false passes on silence, with nothing to match"),
        );
    }
    if sink.items.len() != errors_before {
        return None;
    }
    Some(CheckKind::Udp {
        send,
        expect,
        require_reply,
    })
}

/// `"0a1B 2c"` → `[0x0a, 0x1b, 0x2c]`; whitespace between digits is ignored.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()?;
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(
        digits
            .chunks(2)
            .map(|pair| (pair[0] << 4) | pair[1])
            .collect(),
    )
}

fn regex_field(sink: &mut Sink, t: &mut Table<'_, '_>, key: &'static str) -> Option<String> {
    let (re, span) = t.str(sink, key)?;
    match regex::Regex::new(re) {
        Ok(_) => Some(re.to_string()),
        Err(e) => {
            // The regex error is multi-line with its own caret; keep its last line.
            let why = e.to_string();
            let why = why
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim_start_matches("error: ")
                .to_string();
            sink.error(
                span,
                format!("`{}`: invalid regular expression: {why}", t.field(key)),
            );
            None
        }
    }
}

/// The keys of one URL: at the check's top level for a single URL, or in each `url` entry.
const URL_FIELDS: &[&str] = &[
    "path",
    "expect_status",
    "body_regex",
    "regex_no_match",
    "body_sha256",
    "body_md5",
];

fn http_check(sink: &mut Sink, t: &mut Table<'_, '_>, https: bool) -> Option<HttpCheck> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let method = match t.choice(sink, "method", &["GET", "HEAD"]) {
        Some(("HEAD", _)) => HttpMethod::Head,
        _ => HttpMethod::Get,
    };
    let host = match t.str(sink, "host") {
        Some((h, span))
            if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            sink.error(
                span,
                format!("`{}`: \"{h}\" is not a valid Host header", f("host")),
            );
            None
        }
        Some((h, _)) => Some(h.to_string()),
        None => None,
    };
    let mut urls = Vec::new();
    match t.array(sink, "url") {
        Some((items, span)) => {
            if items.is_empty() {
                sink.error(span, format!("`{}` is empty", f("url")));
            }
            // One URL's keys beside `url` would be ambiguous (for which URL?).
            for key in URL_FIELDS {
                if let Some(v) = t.get(key) {
                    sink.push(
                        Diagnostic::error(
                            v.span(),
                            format!("`{}` cannot be used together with `{}`", f(key), f("url")),
                        )
                        .with_help(format!("put `{key}` in each `url` entry")),
                    );
                }
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(mut ut) = Table::from_value(sink, item, format!("{}[{i}]", f("url"))) {
                    let url = http_url(sink, &mut ut, method);
                    ut.finish(sink);
                    urls.extend(url);
                }
            }
        }
        None => urls.extend(http_url(sink, t, method)),
    }
    let max_body_bytes = t
        .int::<u32>(sink, "max_body_bytes", 0, 64 * 1024 * 1024)
        .map_or(1024 * 1024, |(n, _)| n);
    let tls = if https {
        let verify = t.bool(sink, "tls_verify").unwrap_or(true);
        let ca_file = t
            .str(sink, "tls_ca_file")
            .and_then(|(c, span)| absolute_path(sink, &f("tls_ca_file"), c, span));
        let trust = match t.choice(sink, "tls_trust", &["bundled", "system"]) {
            Some(("system", span)) => {
                if ca_file.is_some() {
                    sink.push(
                        Diagnostic::error(
                            span,
                            format!(
                                "`{}` and `{}` are alternatives",
                                f("tls_trust"),
                                f("tls_ca_file")
                            ),
                        )
                        .with_help("with tls_ca_file, only its certificates are trusted"),
                    );
                }
                TlsTrust::System
            }
            _ => TlsTrust::Bundled,
        };
        let server_name = t.str(sink, "tls_server_name").map(|(s, _)| s.to_string());
        let sni = t.bool(sink, "tls_sni").unwrap_or(true);
        let mut pem_path = |key: &'static str| {
            t.str(sink, key).and_then(|(c, span)| {
                absolute_path(sink, &f(key), c, span.clone()).map(|p| (p, span))
            })
        };
        let client_cert = pem_path("tls_client_cert");
        let client_key = pem_path("tls_client_key");
        match (&client_cert, &client_key) {
            (Some((_, span)), None) | (None, Some((_, span))) => {
                let (has, lacks) = if client_cert.is_some() {
                    ("tls_client_cert", "tls_client_key")
                } else {
                    ("tls_client_key", "tls_client_cert")
                };
                sink.push(
                    Diagnostic::error(span.clone(), format!("`{}` needs `{}`", f(has), f(lacks)))
                        .with_help("a client certificate is given with its private key"),
                );
            }
            _ => {}
        }
        Some(Tls {
            verify,
            ca_file,
            trust,
            server_name,
            sni,
            client_cert: client_cert.map(|(p, _)| p),
            client_key: client_key.map(|(p, _)| p),
        })
    } else {
        None
    };
    if sink.items.len() != errors_before {
        return None;
    }
    Some(HttpCheck {
        method,
        host,
        urls,
        max_body_bytes: u64::from(max_body_bytes),
        tls,
    })
}

/// One URL's path, accepted statuses and body checks, from the check table or a `url`
/// entry (`t`); `None` after an error.
fn http_url(sink: &mut Sink, t: &mut Table<'_, '_>, method: HttpMethod) -> Option<HttpUrl> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let path = match t.str(sink, "path") {
        Some((path, span))
            if !path.starts_with('/')
                || path.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            sink.error(
                span,
                format!(
                    "`{}`: \"{path}\" must start with '/' and contain no spaces",
                    f("path")
                ),
            );
            String::new()
        }
        Some((path, _)) => path.to_string(),
        None => "/".to_string(),
    };
    let mut expect_status = Vec::new();
    if let Some((items, span)) = t.array(sink, "expect_status") {
        if items.is_empty() {
            sink.error(span, format!("`{}` is empty", f("expect_status")));
        }
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("expect_status"));
            if let Some(r) = status_range(sink, item, &field) {
                expect_status.push(r);
            }
        }
    } else {
        expect_status.push((200, 299));
    }
    let body_regex = regex_field(sink, t, "body_regex");
    let regex_no_match = t.bool(sink, "regex_no_match").unwrap_or(false);
    if regex_no_match
        && t.get("body_regex").is_none()
        && let Some(v) = t.get("regex_no_match")
    {
        sink.push(
            Diagnostic::error(
                v.span(),
                format!("`{}` needs `{}`", f("regex_no_match"), f("body_regex")),
            )
            .with_help("regex_no_match = true passes when body_regex does not match"),
        );
    }
    let hex_digest =
        |sink: &mut Sink, t: &mut Table<'_, '_>, key: &'static str, len: usize, name: &str| match t
            .str(sink, key)
        {
            Some((h, span)) if h.len() != len || !h.chars().all(|c| c.is_ascii_hexdigit()) => {
                sink.error(
                    span,
                    format!(
                        "`{}` must be {len} hexadecimal digits ({name} digest)",
                        f(key)
                    ),
                );
                None
            }
            Some((h, _)) => Some(h.to_ascii_lowercase()),
            None => None,
        };
    let body_sha256 = hex_digest(sink, t, "body_sha256", 64, "a SHA-256");
    let body_md5 = hex_digest(sink, t, "body_md5", 32, "an MD5");
    if method == HttpMethod::Head {
        for key in ["body_regex", "body_sha256", "body_md5"] {
            if let Some(v) = t.get(key) {
                sink.push(
                    Diagnostic::error(
                        v.span(),
                        format!("`{}` needs a body, but HEAD responses have none", f(key)),
                    )
                    .with_help("use method = \"GET\" to check the body"),
                );
            }
        }
    }
    if sink.items.len() != errors_before {
        return None;
    }
    Some(HttpUrl {
        path,
        expect_status,
        body_regex,
        regex_no_match,
        body_sha256,
        body_md5,
    })
}

/// `200`, or `"200-299"`, or `"404"`.
fn status_range(sink: &mut Sink, v: &Value<'_>, field: &str) -> Option<(u16, u16)> {
    let bad = |sink: &mut Sink| {
        sink.push(
            Diagnostic::error(
                v.span(),
                format!("`{field}` must be a status code from 100 to 599 or a range \"LOW-HIGH\""),
            )
            .with_help("e.g. expect_status = [200, \"300-399\"]"),
        );
    };
    let parse = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
    };

    match v.get_ref() {
        DeValue::Integer(_) => as_int::<u16>(sink, v, &field, 100, 599).map(|c| (c, c)),
        DeValue::String(s) => {
            let r = match s.split_once('-') {
                Some((a, b)) => parse(a).zip(parse(b)),
                None => parse(s).map(|c| (c, c)),
            };
            match r {
                Some((a, b)) if a <= b => Some((a, b)),
                _ => {
                    bad(sink);
                    None
                }
            }
        }
        _ => {
            bad(sink);
            None
        }
    }
}

fn dns_check(sink: &mut Sink, t: &mut Table<'_, '_>) -> Option<DnsCheck> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let name = t.req_str(sink, "query_name").and_then(|(n, span)| {
        if valid_dns_name(n) {
            Some(n.to_string())
        } else {
            sink.error(
                span,
                format!("`{}`: \"{n}\" is not a valid DNS name", f("query_name")),
            );
            None
        }
    });
    let qtype = match t.choice(sink, "query_type", DnsType::NAMES).map(|(n, _)| n) {
        Some("AAAA") => DnsType::Aaaa,
        Some("SOA") => DnsType::Soa,
        Some("NS") => DnsType::Ns,
        Some("MX") => DnsType::Mx,
        Some("TXT") => DnsType::Txt,
        Some("CNAME") => DnsType::Cname,
        _ => DnsType::A,
    };
    let expect_rcode = match t
        .choice(sink, "expect_rcode", DnsRcode::NAMES)
        .map(|(n, _)| n)
    {
        Some("FORMERR") => DnsRcode::FormErr,
        Some("SERVFAIL") => DnsRcode::ServFail,
        Some("NXDOMAIN") => DnsRcode::NxDomain,
        Some("NOTIMP") => DnsRcode::NotImp,
        Some("REFUSED") => DnsRcode::Refused,
        _ => DnsRcode::NoError,
    };
    let mut expect_addresses = Vec::new();
    if let Some((items, span)) = t.array(sink, "expect_addresses") {
        if !matches!(qtype, DnsType::A | DnsType::Aaaa) {
            sink.error(
                span,
                format!(
                    "`{}` applies only to A and AAAA queries",
                    f("expect_addresses")
                ),
            );
        }
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("expect_addresses"));
            if let Some(ip) = as_ip(sink, item, &field) {
                let want = if qtype == DnsType::Aaaa {
                    AddressFamily::Ipv6
                } else {
                    AddressFamily::Ipv4
                };
                if AddressFamily::of(&ip) != want && matches!(qtype, DnsType::A | DnsType::Aaaa) {
                    sink.error(
                        item.span(),
                        format!(
                            "`{field}`: {ip} can never be in the answer to an {} query",
                            if want == AddressFamily::Ipv6 {
                                "AAAA"
                            } else {
                                "A"
                            }
                        ),
                    );
                }
                expect_addresses.push(ip);
            }
        }
    }
    let transport = match t.choice(sink, "transport", &["udp", "tcp"]) {
        Some(("tcp", _)) => DnsTransport::Tcp,
        _ => DnsTransport::Udp,
    };
    if sink.items.len() != errors_before {
        return None;
    }
    Some(DnsCheck {
        name: name?,
        qtype,
        expect_rcode,
        expect_addresses,
        transport,
    })
}

fn valid_dns_name(n: &str) -> bool {
    let n = n.strip_suffix('.').unwrap_or(n);
    n.len() <= 253
        && (n.is_empty() // the root
            || n.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }))
}

#[cfg(test)]
mod tests {
    use super::valid_dns_name;

    #[test]
    fn dns_names() {
        assert!(valid_dns_name("example.org"));
        assert!(valid_dns_name("example.org."));
        assert!(valid_dns_name("_sip._tcp.example.org"));
        assert!(!valid_dns_name("exa mple.org"));
        assert!(!valid_dns_name("a..b"));
        assert!(!valid_dns_name(&"a".repeat(64)));
    }
}
