//! `[ipvs_sync]`: the IPVS connection sync daemon, whose role follows a VRRP instance.

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table};

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
