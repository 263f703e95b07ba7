//! The status socket's replies, built from the daemon's state: the wire types are
//! `vigil_proto`'s (docs/status-socket.md); this module maps the running config, the
//! snapshot and the VRRP registry into them.

use vigil_config::{Check, CheckKind, Config, TrackTarget, format_duration};
use vigil_proto::{
    CheckSummary, Counts, InstanceView, Refused, SocketStatus, StatusReply, TrackView, VrrpReply,
    VrrpState,
};

pub use vigil_proto::{ErrorCode, MAX_LINE, ProtocolError, Request, parse_request, reply_line};

use crate::state::{Shared, Snapshot};

fn counts(config: &Config) -> Counts {
    let n = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Counts {
        vrrp_instances: n(config.vrrp.len()),
        virtual_servers: n(config.virtual_servers.len()),
        real_servers: n(config.real_server_count()),
    }
}

pub fn status(shared: &Shared, snap: &Snapshot) -> StatusReply {
    StatusReply {
        director: snap.config.director.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: shared.pid,
        started_at_unix: shared.started_at_unix,
        uptime_secs: shared.started.elapsed().as_secs_f64(),
        config_file: snap.config_file.clone(),
        config_generation: snap.generation,
        config_loaded_at_unix: snap.loaded_at_unix,
        counts: counts(&snap.config),
        reloads: snap.reloads.iter().cloned().collect(),
        status_socket: socket_counters(&shared.status_socket),
        alerts: shared.alerts.get().map_or_else(Vec::new, |a| a.status()),
        datapath: crate::datapath::running().map(|c| vigil_proto::DatapathStatus {
            name: c.kind.name().into(),
            reason: c.reason.clone(),
        }),
    }
}

/// The status socket's connections and refusals (docs/status-socket.md, limits).
fn socket_counters(c: &crate::state::SocketCounters) -> SocketStatus {
    use crate::state::Refusal::*;
    SocketStatus {
        connections: c.open(),
        accepted: c.accepted(),
        subscribers: c.subscribers(),
        refused: Refused {
            clients: c.refused(Clients),
            per_uid: c.refused(PerUid),
            subscribers: c.refused(Subscribers),
            idle: c.refused(Idle),
            forbidden: c.refused(Forbidden),
            other: Default::default(),
        },
    }
}

/// A check as `services` shows it.
pub fn check_summary(check: Option<&Check>) -> Option<CheckSummary> {
    let c = check?;
    let target = match &c.kind {
        CheckKind::Http(h) => {
            let paths: Vec<&str> = h.urls.iter().map(|u| u.path.as_str()).collect();
            format!(
                "{} {}",
                format!("{:?}", h.method).to_uppercase(),
                paths.join(",")
            )
        }
        CheckKind::Dns(d) => {
            format!("{} {}", d.name, format!("{:?}", d.qtype).to_uppercase())
        }
        CheckKind::Exec {
            command,
            dynamic_weight,
            ..
        } => {
            let mut t = command.join(" ");
            if *dynamic_weight {
                t.push_str(" (dynamic weight)");
            }
            t
        }
        CheckKind::File(f) => {
            let mut t = f.path.display().to_string();
            if f.weight != 0 {
                t.push_str(&format!(" weight {}", f.weight));
            }
            if f.reverse {
                t.push_str(" reverse");
            }
            t
        }
        CheckKind::Smtp { helo_name } => format!("HELO {helo_name}"),
        _ => String::new(),
    };
    Some(CheckSummary {
        kind: c.kind.name().into(),
        target,
        interval: format_duration(c.interval),
        timeout: format_duration(c.timeout),
        rise: c.rise,
        fall: c.fall,
        port: c.port,
    })
}

/// VRRP instances as configured, with their live state from the runners (`init` for an
/// instance that is not running, e.g. while it is being restarted by a reload).
pub fn vrrp(shared: &Shared, snap: &Snapshot) -> VrrpReply {
    let instances = snap
        .config
        .vrrp
        .iter()
        .map(|v| {
            let mut entry = InstanceView {
                name: v.name.clone(),
                interface: v.interface.clone(),
                vrid: v.vrid,
                version: match v.version {
                    vigil_config::VrrpVersion::V2 => 2,
                    vigil_config::VrrpVersion::V3 => 3,
                },
                priority: v.priority,
                effective_priority: v.priority,
                state: VrrpState::Init,
                advert_interval: format_duration(v.advert_interval),
                preempt: v.preempt,
                vips: v.vips.iter().map(ToString::to_string).collect(),
                vips_excluded: v.vips_excluded.iter().map(ToString::to_string).collect(),
                unicast_peers: v.unicast_peers.clone(),
                sync_group: v.sync_group.clone(),
                track: v
                    .track
                    .iter()
                    .map(|t| {
                        let mut view = TrackView {
                            weight: t.weight,
                            ..TrackView::default()
                        };
                        match &t.target {
                            TrackTarget::VirtualServer(n) => view.virtual_server = Some(n.clone()),
                            TrackTarget::Interface(i) => view.interface = Some(i.clone()),
                            TrackTarget::Exec { command, .. } => view.exec = Some(command.clone()),
                            TrackTarget::File(path) => {
                                view.file = Some(path.display().to_string());
                            }
                            TrackTarget::Process(p) => view.process = Some(p.command.clone()),
                        }
                        view
                    })
                    .collect(),
                live: None,
                fault_reason: shared.vrrp.fault_reason(&v.name),
            };
            if let Some(live) = shared.vrrp.status(&v.name) {
                crate::vrrp::fill_live(&mut entry, &live);
            }
            entry
        })
        .collect();
    VrrpReply { instances }
}
