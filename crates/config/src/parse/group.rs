//! A virtual server's group form (keepalived's `virtual_server_group`): `addresses` (with
//! ranges) and `fwmarks` instead of one `address` or `fwmark`. One definition, one set of
//! real servers and one check per real server, installed as that many IPVS services.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, as_int, as_str};

/// The most IPVS services one virtual server may expand to.
pub(crate) const MAX_GROUP_SERVICES: usize = 1024;

/// Whether the table uses the group form.
pub(super) fn is_group(t: &Table<'_, '_>) -> bool {
    t.has("addresses") || t.has("fwmarks")
}

/// The group's service keys, each with the span of the entry it came from (a range's
/// addresses share its span); the first is the virtual server's `key`. Empty when there
/// were errors (reported).
pub(super) fn group_keys(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    p: &str,
) -> Vec<(ServiceKey, Range<usize>)> {
    let errors_before = sink.items.len();
    // The single forms cannot be mixed with the group form.
    for single in ["address", "fwmark"] {
        if let Some(v) = t.get(single) {
            sink.push(
                Diagnostic::error(
                    v.span(),
                    format!("`{p}` has both `{single}` and `addresses`/`fwmarks`: give one form"),
                )
                .with_help("put every address in `addresses` and every mark in `fwmarks`"),
            );
        }
    }
    let protocol = t.choice(sink, "protocol", Protocol::NAMES);
    let family = t.choice(sink, "family", &["ipv4", "ipv6"]);
    let protocol_value = match protocol.as_ref().map(|(p, _)| *p) {
        Some("udp") => Protocol::Udp,
        Some("sctp") => Protocol::Sctp,
        _ => Protocol::Tcp,
    };

    let mut keys: Vec<(ServiceKey, Range<usize>)> = Vec::new();
    let mut address_family: Option<(AddressFamily, Range<usize>)> = None;
    if let Some((items, _)) = t.array(sink, "addresses") {
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("addresses"));
            let Some(s) = as_str(sink, item, &field) else {
                continue;
            };
            match expand_address(s) {
                Ok(addrs) => {
                    for a in addrs {
                        let fam = AddressFamily::of(&a.ip());
                        match &address_family {
                            Some((first, first_span)) if *first != fam => {
                                let line = sink.line_of(first_span.start);
                                sink.push(
                                    Diagnostic::error(
                                        item.span(),
                                        format!("`{field}`: {a} is {fam} but the group's first address is {first}"),
                                    )
                                    .with_help(format!("one virtual server is of one address family (first address on line {line}); put the {fam} addresses in a virtual server of their own")),
                                );
                                break;
                            }
                            Some(_) => {}
                            None => address_family = Some((fam, item.span())),
                        }
                        keys.push((
                            ServiceKey::Address {
                                protocol: protocol_value,
                                address: a,
                            },
                            item.span(),
                        ));
                    }
                }
                Err(why) => sink.push(
                    Diagnostic::error(item.span(), format!("`{field}`: \"{s}\" {why}"))
                        .with_help("write IP:PORT or a range of the last part, e.g. \"192.0.2.10:80\", \"192.0.2.20-29:80\", \"[2001:db8::10-1f]:80\""),
                ),
            }
        }
    } else if let Some((_, span)) = &protocol {
        sink.push(
            Diagnostic::error(
                span.clone(),
                format!(
                    "`{}` applies only to `addresses`, and there are none",
                    f("protocol")
                ),
            )
            .with_help("a fwmark service matches whatever the firewall marked; the mark decides"),
        );
    }

    let fwmark_family = match (family.as_ref().map(|(f, _)| *f), &address_family) {
        (Some("ipv6"), _) => AddressFamily::Ipv6,
        (Some(_), _) => AddressFamily::Ipv4,
        (None, Some((fam, _))) => *fam,
        (None, None) => AddressFamily::Ipv4,
    };
    if let Some((items, _)) = t.array(sink, "fwmarks") {
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("fwmarks"));
            if let Some(mark) = as_int::<u32>(sink, item, &field, 1, u32::MAX) {
                keys.push((
                    ServiceKey::Fwmark {
                        mark,
                        family: fwmark_family,
                    },
                    item.span(),
                ));
            }
        }
        if let (Some((_, span)), Some((fam, _))) = (&family, &address_family)
            && *fam != fwmark_family
        {
            sink.push(
                Diagnostic::error(
                    span.clone(),
                    format!(
                        "`{}` is {fwmark_family} but the group's addresses are {fam}",
                        f("family")
                    ),
                )
                .with_help("one virtual server is of one address family; leave `family` out and the marks take the addresses' family"),
            );
        }
    } else if let Some((_, span)) = &family {
        sink.push(
            Diagnostic::error(
                span.clone(),
                format!("`{}` applies only to `fwmarks`", f("family")),
            )
            .with_help("addresses carry their own family"),
        );
    }

    if keys.len() > MAX_GROUP_SERVICES {
        sink.error(
            t.span.clone(),
            format!(
                "`{p}` expands to {} IPVS services: at most {MAX_GROUP_SERVICES}",
                keys.len()
            ),
        );
    } else if keys.is_empty() && sink.items.len() == errors_before {
        sink.push(
            Diagnostic::error(
                t.span.clone(),
                format!("`{p}` has empty `addresses` and `fwmarks`: give at least one"),
            )
            .with_help("e.g. addresses = [\"192.0.2.10:80\", \"192.0.2.20-29:80\"]"),
        );
    }
    if sink.items.len() != errors_before {
        return Vec::new();
    }
    keys
}

/// The port real servers without one take: the group's addresses' port when they all
/// have the same one.
pub(super) fn common_port(keys: &[(ServiceKey, Range<usize>)]) -> Option<u16> {
    let mut ports = keys.iter().filter_map(|(k, _)| match k {
        ServiceKey::Address { address, .. } => Some(address.port()),
        ServiceKey::Fwmark { .. } => None,
    });
    let first = ports.next()?;
    ports.all(|p| p == first).then_some(first)
}

/// The sorry server and every real server against the group's other services (the
/// first is checked with a single service's rules): one error per server at most.
pub(super) fn group_destination_rules(
    sink: &mut Sink,
    f: &dyn Fn(&str) -> String,
    group: &[(ServiceKey, Range<usize>)],
    forwarding: Forwarding,
    sorry_server: &Option<(SocketAddr, Range<usize>)>,
    real_servers: &[RealServer],
    rs_spans: &[Range<usize>],
) {
    if group.is_empty() {
        return;
    }
    // Named once, not per real server: 10,000 of them are fine and need no name.
    let (sorry_field, real_field) = (f("sorry_server"), f("real_server"));
    let sorry = sorry_server
        .iter()
        .map(|(a, s)| (&sorry_field, *a, s.clone(), forwarding));
    let reals = real_servers
        .iter()
        .zip(rs_spans)
        .map(|(rs, s)| (&real_field, rs.address, s.clone(), rs.forwarding));
    for (field, dest, span, fwd) in sorry.chain(reals) {
        let before = sink.items.len();
        for (key, _) in group {
            super::virtual_server::check_destination(sink, field, dest, span.clone(), key, fwd);
            if sink.items.len() != before {
                break;
            }
        }
    }
}

/// One `addresses` entry: `IP:PORT`, or a range of the last part (IPv4's last byte in
/// decimal, IPv6's last group in hex, as keepalived's `virtual_server_group` writes them):
/// `192.0.2.20-29:80`, `[2001:db8::10-1f]:80`. `Err` says why not, after the quoted
/// entry.
pub(crate) fn expand_address(s: &str) -> Result<Vec<SocketAddr>, String> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        if sa.port() == 0 {
            return Err("has port 0".into());
        }
        return Ok(vec![sa]);
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        rest.split_once("]:")
            .ok_or_else(|| "is not an address with a port".to_string())?
    } else {
        s.rsplit_once(':')
            .ok_or_else(|| "is not an address with a port".to_string())?
    };
    if host.parse::<IpAddr>().is_ok() {
        return Err("has a port that is not 1 to 65535".into());
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| "has a port that is not 1 to 65535".to_string())?;
    let (start, last) = host
        .split_once('-')
        .ok_or_else(|| "is not an address with a port".to_string())?;
    let start: IpAddr = start
        .parse()
        .map_err(|_| format!("is not a range: \"{start}\" is not an IP address"))?;
    let addrs: Vec<IpAddr> = match start {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let end: u8 = last.parse().map_err(|_| {
                format!("is not a range: its end \"{last}\" must be the last byte, 0 to 255")
            })?;
            if end <= o[3] {
                return Err(format!(
                    "is not a range: its end {end} is not above its start {}",
                    o[3]
                ));
            }
            (o[3]..=end)
                .map(|b| IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], b)))
                .collect()
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            let end = u16::from_str_radix(last, 16).map_err(|_| {
                format!("is not a range: its end \"{last}\" must be the last group, in hex")
            })?;
            if end <= seg[7] {
                return Err(format!(
                    "is not a range: its end {end:x} is not above its start {:x}",
                    seg[7]
                ));
            }
            (seg[7]..=end)
                .map(|g| {
                    let mut s = seg;
                    s[7] = g;
                    IpAddr::V6(Ipv6Addr::from(s))
                })
                .collect()
        }
    };
    if addrs.len() > MAX_GROUP_SERVICES {
        return Err(format!(
            "is a range of {} addresses: at most {MAX_GROUP_SERVICES}",
            addrs.len()
        ));
    }
    Ok(addrs
        .into_iter()
        .map(|a| SocketAddr::new(a, port))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_addresses_and_ranges_expand() {
        assert_eq!(
            expand_address("192.0.2.1:80").unwrap(),
            [sa("192.0.2.1:80")]
        );
        assert_eq!(
            expand_address("192.0.2.20-22:8080").unwrap(),
            [
                sa("192.0.2.20:8080"),
                sa("192.0.2.21:8080"),
                sa("192.0.2.22:8080")
            ]
        );
        assert_eq!(
            expand_address("[2001:db8::fe-101]:53").unwrap(),
            [
                sa("[2001:db8::fe]:53"),
                sa("[2001:db8::ff]:53"),
                sa("[2001:db8::100]:53"),
                sa("[2001:db8::101]:53")
            ]
        );
        assert_eq!(
            expand_address("[2001:db8::1]:443").unwrap(),
            [sa("[2001:db8::1]:443")]
        );
        assert_eq!(expand_address("10.0.0.0-255:1").unwrap().len(), 256);
    }

    #[test]
    fn bad_entries_say_why() {
        for (s, why) in [
            ("192.0.2.1", "is not an address with a port"),
            ("192.0.2.1:0", "has port 0"),
            ("192.0.2.1:99999", "port that is not 1 to 65535"),
            ("192.0.2.20-10:80", "its end 10 is not above its start 20"),
            ("192.0.2.20-20:80", "not above"),
            ("192.0.2.20-300:80", "must be the last byte"),
            ("192.0.2.20-22:0", "port that is not 1 to 65535"),
            ("web-1:80", "\"web\" is not an IP address"),
            ("[2001:db8::10-g]:80", "must be the last group, in hex"),
            ("[2001:db8::10-1f]", "is not an address with a port"),
        ] {
            let err = expand_address(s).unwrap_err();
            assert!(err.contains(why), "{s}: {err}");
        }
    }
}
