//! `[director]`: the node's name, the status socket, metrics and the state file.

use std::path::PathBuf;

use crate::model::*;
use crate::reader::{Sink, Table, as_socket_addr};

use super::{absolute_path, check_name};

pub(super) fn director(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<Director> {
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
    let mut fifo = |t: &mut Table<'_, '_>, key: &'static str| match t.str(sink, key) {
        Some((p, span)) => absolute_path(sink, &format!("director.{key}"), p, span).map(Some),
        None => Some(None),
    };
    let notify_fifo = fifo(&mut t, "notify_fifo");
    let vrrp_notify_fifo = fifo(&mut t, "vrrp_notify_fifo");
    let lvs_notify_fifo = fifo(&mut t, "lvs_notify_fifo");
    let datapath = match t.choice(sink, "datapath", Datapath::NAMES) {
        Some(("nftables", _)) => Some(Datapath::Nftables),
        Some(("auto", _)) => Some(Datapath::Auto),
        Some(_) => Some(Datapath::Ipvs),
        None if t.get("datapath").is_some() => None,
        None => Some(Datapath::Ipvs),
    };
    // The nftables datapath's options (warned about when the datapath is IPVS).
    let nftables_masquerade = t.bool(sink, "nftables_masquerade").unwrap_or(false);
    let nftables_flush_on_failure = t.bool(sink, "nftables_flush_on_failure").unwrap_or(false);
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
        notify_fifo: notify_fifo?,
        vrrp_notify_fifo: vrrp_notify_fifo?,
        lvs_notify_fifo: lvs_notify_fifo?,
        datapath: datapath?,
        nftables_masquerade,
        nftables_flush_on_failure,
    })
}
