//! Rules that span sections: uniqueness, references between sections, and advice.

use std::collections::HashMap;

use crate::diag::{Diagnostic, did_you_mean};
use crate::model::{ServiceKey, TrackTarget};
use crate::parse::Parsed;
use crate::reader::{Sink, unique};

/// What validation may ask about the system a file is to run on. vigil-config never
/// looks at the running system itself: the daemon passes an implementation to
/// [`crate::load_on`] / [`crate::parse_on`], so such problems are still reported at their place in
/// the file.
pub trait System {
    /// `Err(why)` when child programs cannot run as user `name` here, e.g.
    /// `user "nbody" does not exist on this system`.
    fn check_user(&self, name: &str) -> Result<(), String>;

    /// `Err(why)` when the file an `[[alert]]` names (a token, a password, a CA bundle)
    /// cannot be used, e.g. `cannot read: Permission denied`. By default every file is
    /// fine (nothing is read).
    fn check_file(&self, path: &std::path::Path, what: crate::FileUse) -> Result<(), String> {
        let _ = (path, what);
        Ok(())
    }

    /// The datapath a file with `datapath = configured` is checked against, and why
    /// (e.g. what `auto` stands for on this kernel, or the datapath a running daemon
    /// chose at start). By default the file's choice, and `auto` is not checked.
    fn effective_datapath(&self, configured: crate::Datapath) -> Option<(crate::Datapath, String)> {
        (configured != crate::Datapath::Auto)
            .then(|| (configured, format!("datapath = \"{}\"", configured.name())))
    }

    /// Why the nftables datapath cannot serve `vs` as configured (the daemon asks
    /// vigil-nft), each with the part of `vs` it is about. By default nothing is refused.
    fn nftables_unsupported(
        &self,
        vs: &crate::VirtualServer,
    ) -> Vec<(crate::DatapathField, String)> {
        let _ = vs;
        Vec::new()
    }
}

/// With the nftables datapath (given, or what `auto` stands for on `system`): every
/// virtual server it cannot serve is an error at the field concerned; the IPVS-only
/// sections (`[ipvs_sync]`, `[ipvs_timeouts]`) are warnings, as they are ignored.
pub(crate) fn datapath(sink: &mut Sink, parsed: &Parsed, system: &dyn System) {
    let Some(config) = &parsed.config else {
        return;
    };
    let note = match system.effective_datapath(config.director.datapath) {
        Some((crate::Datapath::Nftables, why)) => why,
        Some((crate::Datapath::Ipvs, why)) => {
            for (key, span) in &parsed.spans.nftables_keys {
                sink.push(Diagnostic::warning(
                    span.clone(),
                    format!("`director.{key}` is for nftables and is ignored by the IPVS datapath ({why})"),
                ));
            }
            return;
        }
        _ => return,
    };
    for (section, span) in &parsed.spans.ipvs_sections {
        sink.push(Diagnostic::warning(
            span.clone(),
            format!("`[{section}]` is for IPVS and is ignored by the nftables datapath ({note})"),
        ));
    }
    for (vs, spans) in config
        .virtual_servers
        .iter()
        .zip(&parsed.spans.virtual_servers)
    {
        let p = format!("virtual_server.{}", vs.name);
        for (field, why) in system.nftables_unsupported(vs) {
            let key = match field {
                crate::DatapathField::Service => None,
                crate::DatapathField::Scheduler => Some("scheduler"),
                crate::DatapathField::SchedulerFlags => Some("scheduler_flags"),
                crate::DatapathField::Persistence => Some("persistence"),
                crate::DatapathField::OnePacket => Some("one_packet"),
                crate::DatapathField::RealServer(addr) => {
                    let at = vs.real_servers.iter().position(|r| r.address == addr);
                    let (span, field) =
                        match at.and_then(|i| spans.real_servers.get(i).map(|s| (i, s))) {
                            Some((i, s)) => (s.clone(), format!("{p}.real_server[{i}]")),
                            None => (spans.key.clone(), p.clone()),
                        };
                    sink.error(span, format!("`{field}`: {why} ({note})"));
                    continue;
                }
            };
            let d = match key {
                None => Diagnostic::error(spans.key.clone(), format!("`{p}`: {why} ({note})")),
                Some(k) => match spans.fields.iter().find(|(n, _)| *n == k) {
                    Some((_, span)) => {
                        Diagnostic::error(span.clone(), format!("`{p}.{k}`: {why} ({note})"))
                    }
                    None => Diagnostic::error(
                        spans.table.clone(),
                        format!(
                            "`{p}.{k}` is not given and defaults to \"{}\": {why} ({note})",
                            vs.scheduler
                        ),
                    ),
                },
            };
            sink.push(
                d.with_help("change it, or use datapath = \"ipvs\" (docs/datapath-nftables.md)"),
            );
        }
    }
}

pub(crate) fn validate(sink: &mut Sink, parsed: &Parsed) {
    let spans = &parsed.spans;
    let vs_spans = &spans.virtual_servers;
    let (vrrp, virtual_servers) = (parsed.vrrp(), parsed.virtual_servers());

    // Over all virtual server tables, including those with errors of their own.
    unique(sink, parsed.vs_names.iter().cloned(), |name| {
        format!("virtual server name \"{name}\" is used twice")
    });
    // Over every service of every group too: a service is in one virtual server once.
    unique(
        sink,
        virtual_servers.iter().zip(vs_spans).flat_map(|(vs, s)| {
            std::iter::once((vs.key, s.key.clone()))
                .chain(vs.group.iter().copied().zip(s.group.iter().cloned()))
        }),
        |key| format!("virtual service {key} is defined twice"),
    );
    // RFC 5798 §7: a VRID identifies one virtual router per interface and address family
    // (IPv4 and IPv6 instances may share a VRID).
    unique(
        sink,
        vrrp.iter()
            .zip(&spans.vrrp)
            .map(|(v, s)| ((v.interface.clone(), v.family, v.vrid), s.vrid.clone())),
        |(iface, family, vrid)| {
            format!("VRID {vrid} is used twice for {family} on interface {iface}")
        },
    );
    unique(
        sink,
        vrrp.iter().zip(&spans.vrrp).flat_map(|(v, s)| {
            v.vips
                .iter()
                .zip(&s.vips)
                .chain(v.vips_excluded.iter().zip(&s.vips_excluded))
                .map(|(p, span)| (p.addr, span.clone()))
        }),
        |addr| format!("virtual address {addr} is carried by two VRRP instances"),
    );
    // One virtual MAC interface per instance: two of one name would fight over it.
    unique(
        sink,
        vrrp.iter()
            .zip(&spans.vrrp)
            .filter_map(|(v, s)| Some((v.vmac.as_ref()?.name.clone(), s.vmac.clone()))),
        |name| {
            format!("virtual MAC interface {name} is used by two VRRP instances (set `vmac_name`)")
        },
    );

    // Tracked virtual servers must exist.
    let vs_names: Vec<&str> = parsed.vs_names.iter().map(|(n, _)| n.as_str()).collect();
    for (inst, s) in vrrp.iter().zip(&spans.vrrp) {
        for (track, span) in inst.track.iter().zip(&s.track_vs) {
            if let TrackTarget::VirtualServer(name) = &track.target
                && !vs_names.contains(&name.as_str())
            {
                let mut d = Diagnostic::error(
                    span.clone(),
                    format!(
                        "`vrrp.{}.track`: there is no virtual server \"{name}\"",
                        inst.name
                    ),
                );
                if let Some(n) = did_you_mean(name, &vs_names) {
                    d = d.with_help(format!("did you mean \"{n}\"?"));
                }
                sink.push(d);
            }
        }
    }

    // Sync groups of one member are legal but almost certainly a typo.
    let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, inst) in vrrp.iter().enumerate() {
        if let Some(g) = &inst.sync_group {
            groups.entry(g.as_str()).or_default().push(i);
        }
    }
    for (group, members) in &groups {
        if let [only] = members.as_slice() {
            let others: Vec<&str> = groups.keys().filter(|g| *g != group).copied().collect();
            let mut d = Diagnostic::warning(
                spans.vrrp[*only].sync_group.clone(),
                format!("sync group \"{group}\" has only one instance"),
            );
            if let Some(n) = did_you_mean(group, &others) {
                d = d.with_help(format!("did you mean \"{n}\"?"));
            }
            sink.push(d);
        }
    }

    // A service on an address that no instance carries will not move on failover.
    if !vrrp.is_empty() {
        for (vs, s) in virtual_servers.iter().zip(vs_spans) {
            let carrier = |ip: std::net::IpAddr| {
                vrrp.iter()
                    .find(|v| v.vips.iter().chain(&v.vips_excluded).any(|p| p.addr == ip))
            };
            // A group's addresses too.
            let addresses = vs
                .keys()
                .zip(std::iter::once(&s.key).chain(&s.group))
                .filter_map(|(k, span)| match k {
                    ServiceKey::Address { address, .. } => Some((address.ip(), span)),
                    ServiceKey::Fwmark { .. } => None,
                });
            if vs.announce {
                // Announced over BGP, the address is on every director at once: a VRRP
                // instance moving it too would fight the announcement.
                for (ip, _) in addresses {
                    if let (Some(v), Some(span)) = (carrier(ip), &s.announce) {
                        sink.push(
                            Diagnostic::error(
                                span.clone(),
                                format!(
                                    "virtual server \"{}\" is announced over BGP, but {ip} is a VIP of VRRP instance \"{}\"",
                                    vs.name, v.name
                                ),
                            )
                            .with_help("an address is either announced (active/active) or moved by VRRP (active/standby): remove one"),
                        );
                    }
                }
                continue;
            }
            // In one warning at the first address not carried.
            let mut uncarried = addresses.filter(|(ip, _)| carrier(*ip).is_none());
            if let Some((ip, span)) = uncarried.next() {
                let more = uncarried.count();
                let also = if more > 0 {
                    format!(" (and {more} more of its addresses)")
                } else {
                    String::new()
                };
                sink.push(
                    Diagnostic::warning(
                        span.clone(),
                        format!("virtual server \"{}\" listens on {ip}{also}, which no VRRP instance carries", vs.name),
                    )
                    .with_help("add the address to an instance's `vips` so it moves with failover"),
                );
            }
        }
    }
}

/// Users that child programs cannot run as on this system, each at the field naming it
/// (or the table whose default applies); each name is asked once.
pub(crate) fn users(sink: &mut Sink, system: &dyn System) {
    let mut answers: HashMap<String, Result<(), String>> = HashMap::new();
    let refs = std::mem::take(&mut sink.users);
    for r in &refs {
        let answer = answers
            .entry(r.name.clone())
            .or_insert_with(|| system.check_user(&r.name));
        if let Err(why) = answer {
            let d = if r.defaulted {
                Diagnostic::error(
                    r.span.clone(),
                    format!(
                        "`{}` is not given and defaults to \"{}\": {why}",
                        r.field, r.name
                    ),
                )
            } else {
                Diagnostic::error(r.span.clone(), format!("`{}`: {why}", r.field))
            };
            sink.push(d.with_help("create the user, or name one that exists"));
        }
    }
    sink.users = refs;
}
