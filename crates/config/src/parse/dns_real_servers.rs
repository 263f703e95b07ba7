//! `[[virtual_server.real_servers_from_dns]]`: real servers from a DNS name. The entry is
//! a `real_server` without `address` (its checks, weight, forwarding, hooks are the
//! template of every server the name resolves to), plus what to look up and where.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, as_str};

use super::dns::valid_dns_name;
use super::virtual_server::{DefaultCheck, real_server};

/// The most entries one virtual server may have.
const MAX_ENTRIES: usize = 64;
/// The most name servers one entry may list.
const MAX_NAMESERVERS: usize = 8;
/// Bounds of the TTL bounds: no tighter loop than a second, no answer kept over a day.
const TTL_FLOOR: Duration = Duration::from_secs(1);
const TTL_CEILING: Duration = Duration::from_secs(86_400);

/// The entries of one virtual server; `vs` is its key, forwarding and
/// `inhibit_on_failure` (the templates' defaults).
pub(super) fn entries(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    p: &str,
    (key, vs_forwarding, vs_inhibit): (&Option<ServiceKey>, Forwarding, bool),
    default_check: &DefaultCheck<'_, '_>,
) -> Vec<DnsRealServers> {
    let mut out = Vec::new();
    let Some((items, span)) = t.array(sink, "real_servers_from_dns") else {
        return out;
    };
    if items.len() > MAX_ENTRIES {
        sink.error(
            span,
            format!(
                "`{p}.real_servers_from_dns` has {} entries: at most {MAX_ENTRIES}",
                items.len()
            ),
        );
        return out;
    }
    let mut seen: Vec<(String, DnsRecord, Option<u16>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{p}.real_servers_from_dns[{i}]");
        let Some(et) = Table::from_value(sink, item, path) else {
            continue;
        };
        let span = et.span.clone();
        if let Some(e) = entry(sink, et, key, (vs_forwarding, vs_inhibit), default_check) {
            let id = (
                e.lookup.name.trim_end_matches('.').to_ascii_lowercase(),
                e.lookup.record,
                e.lookup.port,
            );
            if seen.contains(&id) {
                sink.error(
                    span,
                    format!(
                        "`{p}.real_servers_from_dns[{i}]`: {} {} appears twice",
                        e.lookup.record.name(),
                        e.lookup.name
                    ),
                );
                continue;
            }
            seen.push(id);
            out.push(e);
        }
    }
    out
}

fn entry(
    sink: &mut Sink,
    mut t: Table<'_, '_>,
    key: &Option<ServiceKey>,
    (vs_forwarding, vs_inhibit): (Forwarding, bool),
    default_check: &DefaultCheck<'_, '_>,
) -> Option<DnsRealServers> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let family = key.as_ref().map(|k| k.family());
    let vs_port = match key {
        Some(ServiceKey::Address { address, .. }) => Some(address.port()),
        _ => None,
    };

    let name = t.req_str(sink, "name").and_then(|(n, span)| {
        if n.parse::<IpAddr>().is_ok() {
            sink.push(
                Diagnostic::error(
                    span,
                    format!("`{}`: \"{n}\" is an address, not a name", f("name")),
                )
                .with_help("list addresses as `real_server` entries"),
            );
            None
        } else if n.is_empty() || n == "." || !valid_dns_name(n) {
            sink.error(
                span,
                format!("`{}`: \"{n}\" is not a valid DNS name", f("name")),
            );
            None
        } else {
            Some(n.to_string())
        }
    });
    let record_read = t.choice(sink, "type", DnsRecord::NAMES);
    let record = match record_read.as_ref().map(|(n, _)| *n) {
        Some("A") => DnsRecord::A,
        Some("AAAA") => DnsRecord::Aaaa,
        Some("SRV") => DnsRecord::Srv,
        // The service's own family.
        _ => match family {
            Some(AddressFamily::Ipv6) => DnsRecord::Aaaa,
            _ => DnsRecord::A,
        },
    };
    let forwarding_read = t.choice(sink, "forwarding", Forwarding::NAMES);
    let forwarding = match forwarding_read.as_ref().map(|(n, _)| *n) {
        Some("dr") => Forwarding::Dr,
        Some("tunnel") => Forwarding::Tunnel,
        Some(_) => Forwarding::Nat,
        None => vs_forwarding,
    };
    // Only tunnelling mixes families (as for a `real_server`).
    if let (Some((_, span)), Some(fam)) = (&record_read, family) {
        let record_family = match record {
            DnsRecord::A => Some(AddressFamily::Ipv4),
            DnsRecord::Aaaa => Some(AddressFamily::Ipv6),
            DnsRecord::Srv => None,
        };
        if let Some(rf) = record_family
            && rf != fam
            && forwarding != Forwarding::Tunnel
        {
            sink.push(
                Diagnostic::error(
                    span.clone(),
                    format!(
                        "`{}`: {} records give {rf} addresses but the service is {fam}",
                        f("type"),
                        record.name()
                    ),
                )
                .with_help("only tunnel forwarding can mix address families"),
            );
        }
    }

    let port = t.int::<u16>(sink, "port", 1, 65_535);
    let port = match (record, port) {
        (DnsRecord::Srv, Some((_, span))) => {
            sink.error(
                span,
                format!("`{}`: SRV records give the port of each server", f("port")),
            );
            None
        }
        (DnsRecord::Srv, None) => None,
        (_, Some((n, span))) => {
            if let Some(vp) = vs_port
                && n != vp
                && !forwarding.can_remap_port()
            {
                sink.push(
                    Diagnostic::error(
                        span,
                        format!(
                            "`{}` = {n} but {} forwarding cannot change the port of the service ({vp})",
                            f("port"),
                            forwarding.name()
                        ),
                    )
                    .with_help(format!("use port {vp} (or leave it out), or forwarding = \"nat\"")),
                );
            }
            Some(n)
        }
        (_, None) => match vs_port {
            Some(vp) => Some(vp),
            None => {
                sink.push(
                    Diagnostic::error(
                        t.span.clone(),
                        format!("`{p}` needs `port`: a fwmark service has no port to take"),
                    )
                    .with_help("e.g. port = 80"),
                );
                None
            }
        },
    };
    if record == DnsRecord::Srv
        && let Some(v) = t.get("weight")
    {
        sink.push(
            Diagnostic::error(
                v.span(),
                format!(
                    "`{}`: SRV records give the weight of each server",
                    f("weight")
                ),
            )
            .with_help("use type = \"A\" or \"AAAA\" with a weight of your own"),
        );
    }

    let resolver = resolver(sink, &mut t, &f);
    let (min_ttl, max_ttl) = ttl_bounds(sink, &mut t, &f);

    // The rest is a `real_server` without its address.
    let placeholder = SocketAddr::new(
        match family {
            Some(AddressFamily::Ipv6) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        },
        port.unwrap_or(0),
    );
    let template = real_server(
        sink,
        t,
        (vs_port, vs_forwarding, vs_inhibit),
        default_check,
        Some(placeholder),
    );
    if sink.items.len() != errors_before {
        return None;
    }
    let (template, _) = template?;
    Some(DnsRealServers {
        lookup: DnsLookup {
            name: name?,
            record,
            port,
            resolver,
            min_ttl,
            max_ttl,
        },
        template,
    })
}

/// `nameservers`, `timeout`, `attempts`.
fn resolver(sink: &mut Sink, t: &mut Table<'_, '_>, f: &dyn Fn(&str) -> String) -> DnsResolver {
    let mut nameservers = Vec::new();
    if let Some((items, span)) = t.array(sink, "nameservers") {
        if items.is_empty() || items.len() > MAX_NAMESERVERS {
            sink.push(
                Diagnostic::error(
                    span,
                    format!(
                        "`{}` must list 1 to {MAX_NAMESERVERS} servers, found {}",
                        f("nameservers"),
                        items.len()
                    ),
                )
                .with_help("leave it out to use /etc/resolv.conf"),
            );
        }
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("nameservers"));
            let Some(s) = as_str(sink, item, &field) else {
                continue;
            };
            let parsed = s.parse::<SocketAddr>().ok().or_else(|| {
                s.trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 53))
            });
            match parsed {
                Some(a) if a.port() != 0 => nameservers.push(a),
                _ => sink.push(
                    Diagnostic::error(
                        item.span(),
                        format!("`{field}`: \"{s}\" is not an IP address (with an optional port)"),
                    )
                    .with_help("e.g. \"192.0.2.53\", \"127.0.0.1:5353\" or \"[2001:db8::53]:53\""),
                ),
            }
        }
    }
    let timeout = match t.duration(sink, "timeout") {
        Some((d, span)) if d < Duration::from_millis(100) || d > Duration::from_secs(30) => {
            sink.error(span, format!("`{}` must be within 100ms–30s", f("timeout")));
            DEFAULT_DNS_TIMEOUT
        }
        Some((d, _)) => d,
        None => DEFAULT_DNS_TIMEOUT,
    };
    let attempts = t
        .int::<u32>(sink, "attempts", 1, 10)
        .map_or(DEFAULT_DNS_ATTEMPTS, |(n, _)| n);
    DnsResolver {
        nameservers,
        timeout,
        attempts,
    }
}

/// `min_ttl` and `max_ttl`, each within 1s–1d, the first not above the second.
fn ttl_bounds(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
) -> (Duration, Duration) {
    let mut read = |key: &'static str, default: Duration| match t.duration(sink, key) {
        Some((d, span)) if !(TTL_FLOOR..=TTL_CEILING).contains(&d) => {
            sink.error(span, format!("`{}` must be within 1s–1d", f(key)));
            (default, None)
        }
        Some((d, span)) => (d, Some(span)),
        None => (default, None),
    };
    let (min, _) = read("min_ttl", DEFAULT_DNS_MIN_TTL);
    let (max, max_span) = read("max_ttl", DEFAULT_DNS_MAX_TTL);
    if min > max {
        sink.error(
            max_span.unwrap_or_else(|| t.span.clone()),
            format!(
                "`{}` ({}) must not be below `min_ttl` ({})",
                f("max_ttl"),
                crate::format_duration(max),
                crate::format_duration(min)
            ),
        );
    }
    (min, max)
}
