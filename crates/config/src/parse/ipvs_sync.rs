//! `[ipvs_sync]`: the IPVS connection sync daemon, whose role follows a VRRP instance.

use crate::diag::Diagnostic;
use crate::model::*;
use std::net::IpAddr;

use crate::reader::{Sink, Table, as_ip};

use super::check_interface;

pub(super) fn ipvs_sync(
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
    let errors_before = sink.items.len();
    let (maxlen, port, ttl, group) = sync_params(sink, &mut t);
    let params_ok = sink.items.len() == errors_before;
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
        maxlen,
        port,
        ttl,
        group,
    })
    .filter(|_| params_ok)
}

/// keepalived's `lvs_sync_daemon ... maxlen port ttl group` (Linux 4.3+); absent ones are
/// left to the kernel.
fn sync_params(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
) -> (Option<u16>, Option<u16>, Option<u8>, Option<IpAddr>) {
    // The largest UDP payload over IPv4; the kernel lowers it further to fit the MTU.
    let maxlen = t.int::<u16>(sink, "maxlen", 1, 65_507).map(|(v, _)| v);
    let port = t.int::<u16>(sink, "port", 1, u16::MAX).map(|(v, _)| v);
    let ttl = t.int::<u8>(sink, "ttl", 1, 255).map(|(v, _)| v);
    let group = t.get("group").and_then(|v| {
        let ip = as_ip(sink, v, &t.field("group"))?;
        if ip.is_multicast() {
            Some(ip)
        } else {
            sink.push(
                Diagnostic::error(
                    v.span(),
                    format!("`{}`: {ip} is not a multicast address", t.field("group")),
                )
                .with_help("e.g. 224.0.0.81 (the kernel's default) or ff02::8:81"),
            );
            None
        }
    });
    (maxlen, port, ttl, group)
}
