//! IPVS options that are not about health or scheduling: one-packet scheduling and the
//! tunnel encapsulation of virtual and real servers, and `[ipvs_timeouts]` (the kernel's
//! connection timeouts). keepalived's `ops`, `lvs_method TUN type ...` and
//! `lvs_timeouts`.

use std::ops::Range;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table};

/// `one_packet`: the kernel applies it to UDP only, so a TCP or SCTP service with it is
/// a mistake (a fwmark service may carry UDP).
pub(super) fn one_packet(sink: &mut Sink, t: &mut Table<'_, '_>, key: &Option<ServiceKey>) -> bool {
    let Some(v) = t.get("one_packet") else {
        return false;
    };
    let span = v.span();
    let Some(on) = t.bool(sink, "one_packet") else {
        return false;
    };
    if on
        && let Some(ServiceKey::Address { protocol, .. }) = key
        && *protocol != Protocol::Udp
    {
        sink.push(
            Diagnostic::error(
                span,
                format!(
                    "`{}` applies only to UDP services, not {}",
                    t.field("one_packet"),
                    protocol.name()
                ),
            )
            .with_help("set protocol = \"udp\", or use a fwmark service that carries UDP"),
        );
        return false;
    }
    on
}

/// A virtual or real server's own `tunnel_type`, `tunnel_port` and `tunnel_checksum`,
/// `None` when it has none. `forwarding` is the server's effective one: the keys need
/// tunnel forwarding. A real server's settings replace its virtual server's whole.
pub(super) fn tunnel(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    forwarding: Forwarding,
) -> Option<Tunnel> {
    let kind = t.choice(sink, "tunnel_type", TunnelType::NAMES);
    let port = t.int::<u16>(sink, "tunnel_port", 1, u16::MAX);
    let checksum = t.choice(sink, "tunnel_checksum", TunnelChecksum::NAMES);
    let first: Option<(&str, Range<usize>)> = ["tunnel_type", "tunnel_port", "tunnel_checksum"]
        .into_iter()
        .find_map(|k| t.get(k).map(|v| (k, v.span())));
    let (first_key, first_span) = first?;
    if forwarding != Forwarding::Tunnel {
        sink.push(
            Diagnostic::error(
                first_span,
                format!(
                    "`{}` applies only to tunnel forwarding, not {}",
                    t.field(first_key),
                    forwarding.name()
                ),
            )
            .with_help("set forwarding = \"tunnel\""),
        );
        return None;
    }
    let mut ok = true;
    // An unknown name has its own error: do not judge the rest against a guess.
    if t.get("tunnel_type").is_some() && kind.is_none()
        || t.get("tunnel_port").is_some() && port.is_none()
        || t.get("tunnel_checksum").is_some() && checksum.is_none()
    {
        return None;
    }
    let kind_value = match kind.as_ref().map(|(k, _)| *k) {
        Some("gue") => TunnelType::Gue,
        Some("gre") => TunnelType::Gre,
        _ => TunnelType::Ipip,
    };
    let checksum_value = match checksum.as_ref().map(|(c, _)| *c) {
        Some("csum") => TunnelChecksum::Csum,
        Some("remcsum") => TunnelChecksum::Remcsum,
        _ => TunnelChecksum::None,
    };
    let kind_name = kind.as_ref().map_or("ipip", |(k, _)| *k);
    match (&port, kind_value) {
        (None, TunnelType::Gue) => {
            let span = kind.as_ref().map_or(first_span.clone(), |(_, s)| s.clone());
            sink.push(
                Diagnostic::error(
                    span,
                    format!(
                        "`{}` = \"gue\" needs `tunnel_port` (the real server's GUE port)",
                        t.field("tunnel_type")
                    ),
                )
                .with_help("e.g. tunnel_port = 6080"),
            );
            ok = false;
        }
        (Some((_, span)), TunnelType::Ipip | TunnelType::Gre) => {
            sink.push(
                Diagnostic::error(
                    span.clone(),
                    format!(
                        "`{}` applies only to tunnel_type = \"gue\", not {kind_name}",
                        t.field("tunnel_port")
                    ),
                )
                .with_help("a real server's tunnel settings replace its virtual server's whole: give tunnel_type too"),
            );
            ok = false;
        }
        _ => {}
    }
    if let Some((c, span)) = &checksum {
        let bad = match (kind_value, checksum_value) {
            (TunnelType::Ipip, TunnelChecksum::Csum | TunnelChecksum::Remcsum) => {
                Some("tunnel_type \"gue\" or \"gre\"")
            }
            (TunnelType::Gre, TunnelChecksum::Remcsum) => Some("tunnel_type \"gue\""),
            _ => None,
        };
        if let Some(needs) = bad {
            sink.error(
                span.clone(),
                format!(
                    "`{}` = \"{c}\" applies only to {needs}, not {kind_name}",
                    t.field("tunnel_checksum")
                ),
            );
            ok = false;
        }
    }
    ok.then_some(Tunnel {
        kind: kind_value,
        port: port.map(|(p, _)| p),
        checksum: checksum_value,
    })
}

/// Each tunnel-forwarded real server without settings of its own takes the virtual
/// server's (IP-in-IP when that has none either).
pub(super) fn inherit_tunnel(real_servers: &mut [RealServer], vs: Option<Tunnel>) {
    for rs in real_servers {
        if rs.forwarding == Forwarding::Tunnel && rs.tunnel.is_none() {
            rs.tunnel = Some(vs.unwrap_or_default());
        }
    }
}

/// The kernel keeps timeouts in jiffies in an int and refuses more than `INT_MAX / HZ`
/// seconds: this is that bound at HZ=1000, the highest HZ in use.
const MAX_IPVS_TIMEOUT_SECS: u64 = 2_147_483;

/// `[ipvs_timeouts]`: `tcp`, `tcp_fin`, `udp`, at least one of them.
pub(super) fn ipvs_timeouts(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<IpvsTimeouts> {
    let errors_before = sink.items.len();
    let read = |t: &mut Table<'_, '_>, sink: &mut Sink, key: &'static str| {
        let (d, span) = t.duration(sink, key)?;
        if d.subsec_nanos() != 0 || d.is_zero() || d.as_secs() > MAX_IPVS_TIMEOUT_SECS {
            sink.error(
                span,
                format!(
                    "`{}` must be a whole number of seconds from 1s to {MAX_IPVS_TIMEOUT_SECS}s",
                    t.field(key)
                ),
            );
            return None;
        }
        Some(d)
    };
    let tcp: Option<Duration> = read(&mut t, sink, "tcp");
    let tcp_fin = read(&mut t, sink, "tcp_fin");
    let udp = read(&mut t, sink, "udp");
    // An empty table; other keys are reported as unknown instead.
    if t.entries().next().is_none() {
        sink.push(
            Diagnostic::error(t.span.clone(), "`ipvs_timeouts` sets nothing")
                .with_help("give tcp, tcp_fin or udp, e.g. tcp = \"15m\""),
        );
    }
    t.finish(sink);
    (sink.items.len() == errors_before).then_some(IpvsTimeouts { tcp, tcp_fin, udp })
}
