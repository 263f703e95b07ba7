//! The BGP announcer's shell (issue 16): one plain thread that makes the kernel hold what
//! the director decided ([`crate::announce`]): a host route per announced VIP in
//! `[announce]`'s table, with vigil's route protocol, and each announced virtual server's
//! VIP as a `local` route (in the kernel's local table, same protocol) on the interface.
//! It decides nothing.
//!
//! Every apply reads both tables back and writes only the difference, so routes of
//! vigil's protocol left by a crash (or removed by someone else) are put right at the
//! first apply after start, and every second while an apply failed.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::{error, info, warn};
use vigil_config::Announce;
use vigil_netlink::Route;
use vigil_netlink::codec::LOCAL_TABLE;

use crate::announce::plan;
use crate::supervise::{Guard, HEARTBEAT, Supervisor};

/// What the kernel should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub settings: Announce,
    /// VIPs whose routes must be in the table.
    pub routes: BTreeSet<IpAddr>,
    /// VIPs that must be delivered here (a `local` route on the interface), announced
    /// or not: a withdrawn VIP still takes the flows the routers send until they converge.
    pub addresses: BTreeSet<IpAddr>,
}

enum Msg {
    Apply(Desired),
    /// Answered once everything sent before is applied (or failed).
    Flush(mpsc::Sender<()>),
}

/// The handle the director keeps.
pub struct AnnounceWorker {
    tx: mpsc::Sender<Msg>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The last apply's error, for `services`.
    pub error: Arc<Mutex<Option<String>>>,
}

impl AnnounceWorker {
    pub fn start(supervisor: &Supervisor) -> AnnounceWorker {
        let (tx, rx) = mpsc::channel();
        let guard = supervisor.guard("announce", Duration::ZERO);
        let error = Arc::new(Mutex::new(None));
        let e = error.clone();
        let thread = std::thread::Builder::new()
            .name("announce".into())
            .spawn(move || Worker::new(e).run(rx, guard))
            .ok();
        if thread.is_none() {
            error!("cannot start the BGP announcer thread");
        }
        AnnounceWorker { tx, thread, error }
    }

    pub fn apply(&self, desired: Desired) {
        // Only fails when the thread is gone, which its supervision reports.
        let _ = self.tx.send(Msg::Apply(desired));
    }

    /// Waits (blocking, bounded) until what was sent is applied.
    pub fn flush(&self, within: Duration) {
        let (tx, rx) = mpsc::channel();
        if self.tx.send(Msg::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(within);
        }
    }

    pub fn stop(mut self) {
        drop(self.tx);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Worker {
    route: Option<Route>,
    /// The last desired state; re-applied while an apply fails.
    desired: Option<Desired>,
    /// What the last successful apply wrote under these settings (to clean up when the
    /// table, protocol or interface change at a reload).
    applied: Option<Desired>,
    failed: bool,
    error: Arc<Mutex<Option<String>>>,
}

impl Worker {
    fn new(error: Arc<Mutex<Option<String>>>) -> Self {
        Worker {
            route: None,
            desired: None,
            applied: None,
            failed: false,
            error,
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>, guard: Guard) {
        loop {
            guard.beat();
            match rx.recv_timeout(HEARTBEAT) {
                Ok(Msg::Apply(d)) => {
                    // Only the newest of a burst matters.
                    let mut d = d;
                    let mut flushes = Vec::new();
                    while let Ok(m) = rx.try_recv() {
                        match m {
                            Msg::Apply(next) => d = next,
                            Msg::Flush(f) => flushes.push(f),
                        }
                    }
                    self.desired = Some(d);
                    self.apply();
                    for f in flushes {
                        let _ = f.send(());
                    }
                }
                Ok(Msg::Flush(f)) => {
                    let _ = f.send(());
                }
                Err(RecvTimeoutError::Timeout) if self.failed => self.apply(),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    guard.finish();
                    return;
                }
            }
        }
    }

    fn apply(&mut self) {
        let Some(desired) = self.desired.clone() else {
            return;
        };
        let result = self.try_apply(&desired);
        self.failed = result.is_err();
        let mut slot = self.error.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => {
                if slot.take().is_some() {
                    info!("BGP announcer: routes written again");
                }
                self.applied = Some(desired);
            }
            Err(e) => {
                if slot.as_deref() != Some(e.as_str()) {
                    warn!("BGP announcer: {e} (retrying every second)");
                }
                *slot = Some(e);
            }
        }
    }

    fn try_apply(&mut self, desired: &Desired) -> Result<(), String> {
        if self.route.is_none() {
            self.route = Some(Route::open().map_err(|e| e.to_string())?);
        }
        let Some(route) = self.route.as_mut() else {
            return Ok(());
        };
        let s = &desired.settings;
        // Settings changed at a reload: the old table's routes go first.
        if let Some(old) = &self.applied
            && (old.settings.table, old.settings.protocol) != (s.table, s.protocol)
        {
            for r in route
                .table_routes(old.settings.table, old.settings.protocol)
                .map_err(|e| e.to_string())?
            {
                route
                    .del_host_route(old.settings.table, old.settings.protocol, r.destination)
                    .map_err(|e| e.to_string())?;
            }
            // The local routes carry the protocol too: the new one's are added below.
            if old.settings.protocol != s.protocol {
                for vip in own_host_routes(route, LOCAL_TABLE, old.settings.protocol)? {
                    route
                        .del_local_route(old.settings.protocol, vip)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        let link = route
            .link(&s.interface)
            .map_err(|e| format!("interface {}: {e}", s.interface))?;
        // Local routes before announcements: a VIP is announced only once it is accepted
        // here. Local routes, not addresses: FRR's zebra would prefer an address's
        // connected /32 to the exported table's route, and never announce it.
        let present_local = own_host_routes(route, LOCAL_TABLE, s.protocol)?;
        let (add, remove) = plan(&desired.addresses, &present_local);
        for vip in add {
            route
                .add_local_route(s.protocol, link.index, vip)
                .map_err(|e| e.to_string())?;
        }
        let present = own_host_routes(route, s.table, s.protocol)?;
        let (add, withdraw) = plan(&desired.routes, &present);
        for vip in withdraw {
            route
                .del_host_route(s.table, s.protocol, vip)
                .map_err(|e| e.to_string())?;
            info!(address = %vip, table = s.table, "route withdrawn");
        }
        for vip in add {
            route
                .add_host_route(s.table, s.protocol, link.index, vip)
                .map_err(|e| e.to_string())?;
            info!(address = %vip, table = s.table, "route announced");
        }
        // VIPs no longer served: after their routes are gone.
        for vip in remove {
            route
                .del_local_route(s.protocol, vip)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// The host routes of `protocol` in `table`.
fn own_host_routes(
    route: &mut Route,
    table: u32,
    protocol: u8,
) -> Result<BTreeSet<IpAddr>, String> {
    Ok(route
        .table_routes(table, protocol)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|r| r.prefix_len == host_len(r.destination))
        .map(|r| r.destination)
        .collect())
}

fn host_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}
