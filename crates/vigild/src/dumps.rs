//! State dumps on keepalived's signals: operators (and their scripts) send SIGUSR1 for a
//! data dump, SIGUSR2 for statistics and SIGRTMIN+2 for JSON. vigild must not die of
//! them (their default action ends a process, which would fail the pair over), and it
//! answers each with a file, in the status socket's directory rather than keepalived's
//! /tmp (the unit gives vigild a private /tmp that an operator would not see):
//!
//! | signal | file | contents |
//! | --- | --- | --- |
//! | SIGUSR1 | `vigild.data` | `status`, `vrrp` and `services` replies, pretty JSON |
//! | SIGUSR2 | `vigild.stats` | the metrics exposition (Prometheus text) |
//! | SIGRTMIN+2 | `vigild.json` | the same as `vigild.data`, one compact JSON line |
//!
//! Each is written whole ([`crate::atomic_file`]), mode 0640, and the log says where.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::director::Command as DirectorCommand;
use crate::state::Shared;
use vigil_proto::{ServicesReply, StatusReply, VrrpReply};

/// Which dump a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dump {
    /// SIGUSR1 (keepalived: /tmp/keepalived.data).
    Data,
    /// SIGUSR2 (keepalived: /tmp/keepalived.stats).
    Stats,
    /// SIGRTMIN+2 (keepalived's JSON dump: /tmp/keepalived.json).
    Json,
}

impl Dump {
    pub fn signal_name(self) -> &'static str {
        match self {
            Dump::Data => "SIGUSR1",
            Dump::Stats => "SIGUSR2",
            Dump::Json => "SIGRTMIN+2",
        }
    }

    pub fn file_name(self) -> &'static str {
        match self {
            Dump::Data => "vigild.data",
            Dump::Stats => "vigild.stats",
            Dump::Json => "vigild.json",
        }
    }
}

/// Where a dump goes: beside the status socket.
pub fn path(shared: &Shared, dump: Dump) -> PathBuf {
    let socket = shared.snapshot().config.director.status_socket.clone();
    socket
        .parent()
        .unwrap_or_else(|| Path::new("/"))
        .join(dump.file_name())
}

/// Writes `dump` and logs where it went (or why it could not be written). Runs as a task
/// of its own: the daemon loop never waits for it.
pub async fn write(dump: Dump, shared: Arc<Shared>, director: mpsc::Sender<DirectorCommand>) {
    let to = path(&shared, dump);
    let bytes = match dump {
        Dump::Stats => crate::metrics::gather(&shared).await.into_bytes(),
        Dump::Data | Dump::Json => {
            let all = everything(&shared, &director).await;
            let text = if dump == Dump::Data {
                serde_json::to_vec_pretty(&all)
            } else {
                serde_json::to_vec(&all)
            };
            match text {
                Ok(mut t) => {
                    t.push(b'\n');
                    t
                }
                Err(e) => {
                    warn!("{}: cannot render the dump: {e}", dump.signal_name());
                    return;
                }
            }
        }
    };
    match crate::atomic_file::replace(&to, &bytes, 0o640) {
        Ok(()) => info!(
            file = %to.display(),
            "{}: wrote {} ({} bytes)",
            dump.signal_name(),
            to.display(),
            bytes.len()
        ),
        Err(e) => {
            warn!(file = %to.display(), "{}: cannot write {}: {e}", dump.signal_name(), to.display())
        }
    }
}

/// `vigild.data` and `vigild.json`: the three replies side by side (`services` null when
/// the director could not answer).
#[derive(Serialize)]
struct Everything {
    status: StatusReply,
    vrrp: VrrpReply,
    services: Option<ServicesReply>,
}

async fn everything(shared: &Shared, director: &mpsc::Sender<DirectorCommand>) -> Everything {
    let snap = shared.snapshot();
    let (tx, rx) = oneshot::channel();
    let services = match director.send(DirectorCommand::Services(tx)).await {
        Ok(()) => rx.await.ok(),
        Err(_) => None,
    };
    Everything {
        status: crate::protocol::status(shared, &snap),
        vrrp: crate::protocol::vrrp(shared, &snap),
        services,
    }
}
