//! `vigilctl services`: every virtual server with its real servers: configured and
//! kernel weights, health with reason and since when, drains, connections.
//!
//! Built in two halves so that nothing which applies health changes waits for it: the
//! director task fills in what it owns (config, health records, drains, the policy's
//! verdict) in one pass and moves on; a task of its own then adds the checker's last
//! results and the kernel's weights and counters, read over a netlink socket of its own
//! on a blocking thread. At 10,000 real servers that read is a second or more under
//! emulation; neither the director task nor the IPVS thread is held up by it.
//!
//! The view is typed and serialised straight into the reply line, never through a
//! `serde_json::Value` tree.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use vigil_check::{CheckKey, Checker};
use vigil_config::ServiceKey as ConfigKey;
use vigil_ipvs::{Client, ServiceKey};
use vigil_proto::ServicesReply;

/// The director's half of the reply, with each virtual server's key (in the same order)
/// for the second half to find its checks and kernel service.
#[derive(Debug)]
pub struct ServicesView {
    pub reply: ServicesReply,
    pub keys: Vec<ConfigKey>,
    /// Each virtual server's group services after its key (empty for most).
    pub group_keys: Vec<Vec<ConfigKey>>,
}

/// A destination as the kernel holds it, with its connection counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelDestination {
    pub weight: u32,
    pub active_conns: u32,
    pub inactive_conns: u32,
}

/// One service as the kernel holds it (`None` in the map: not in the kernel).
pub type KernelServices = BTreeMap<ServiceKey, Option<BTreeMap<SocketAddr, KernelDestination>>>;

/// Reads `keys` from the kernel over a netlink socket of its own (blocking): one dump of
/// all services, then one dump of destinations per service of ours that is there.
pub fn read_kernel(keys: &[ServiceKey]) -> Result<KernelServices, String> {
    let mut client = Client::connect().map_err(|e| e.to_string())?;
    let present: std::collections::BTreeSet<ServiceKey> = client
        .services()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|s| s.service.key)
        .collect();
    let mut out = BTreeMap::new();
    for key in keys {
        if !present.contains(key) {
            out.insert(*key, None);
            continue;
        }
        let mut dests = BTreeMap::new();
        match client.destinations(key) {
            Ok(list) => {
                for d in list {
                    dests.insert(
                        d.destination.addr,
                        KernelDestination {
                            weight: d.destination.weight,
                            active_conns: d.active_conns,
                            inactive_conns: d.inactive_conns,
                        },
                    );
                }
            }
            // Deleted between the two reads.
            Err(e) if e.is_not_found() => {
                out.insert(*key, None);
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
        out.insert(*key, Some(dests));
    }
    Ok(out)
}

/// One check's own state, from the checker's snapshot.
fn check_view(view: &mut vigil_proto::CheckView, state: &vigil_check::CheckState) {
    view.health = match (state.health, &state.last_change, &state.last_result) {
        // Not yet checked, or still in its initial state without a verdict.
        (_, None, None) => vigil_proto::Health::Pending,
        (vigil_check::Health::Up, _, _) => vigil_proto::Health::Up,
        (vigil_check::Health::Down, _, _) => vigil_proto::Health::Down,
    };
    if let Some(last) = &state.last_result {
        view.passed = Some(last.passed);
        view.reason = Some(last.reason.clone());
        view.last_latency_us = Some(last.latency_us);
    }
    view.last_failure = state
        .last_failure
        .as_ref()
        .map(|f| f.cause.name().to_string());
    view.last_failure_unix_ms = state.last_failure.as_ref().map(|f| f.at_unix_ms);
}

impl ServicesView {
    /// Adds the checker's last results and the kernel's view, then hands the view on.
    /// Runs on a task of its own (see the module doc).
    pub async fn complete(self, checker: Checker) -> ServicesReply {
        let ServicesView {
            reply: mut view,
            keys: config_keys,
            group_keys,
        } = self;
        let keys: Vec<ServiceKey> = config_keys.iter().map(crate::table::service_key).collect();
        let groups: Vec<Vec<ServiceKey>> = group_keys
            .iter()
            .map(|g| g.iter().map(crate::table::service_key).collect())
            .collect();
        let asked: Vec<ServiceKey> = keys
            .iter()
            .chain(groups.iter().flatten())
            .copied()
            .collect();
        // Both at once: they wait on different threads.
        let (kernel, snapshot) = tokio::join!(
            tokio::task::spawn_blocking(move || {
                // The nftables datapath has no per-server weights or counters to read
                // (and an IPVS table on the same kernel is not vigil's).
                if crate::datapath::running()
                    .is_some_and(|d| d.kind == crate::datapath::Kind::Nftables)
                {
                    return Err("the nftables datapath has no kernel counters".to_string());
                }
                read_kernel(&asked)
            }),
            checker.snapshot()
        );
        let kernel = kernel.unwrap_or_else(|e| Err(format!("reading IPVS failed: {e}")));
        if let Ok(snapshot) = snapshot {
            let checks: HashMap<CheckKey, _> =
                snapshot.checks.into_iter().map(|c| (c.key, c)).collect();
            for (vs, service) in view.virtual_servers.iter_mut().zip(&config_keys) {
                for rs in &mut vs.real_servers {
                    let real = rs.address;
                    for (i, view) in rs.checks.iter_mut().enumerate() {
                        let key = CheckKey {
                            service: *service,
                            real,
                            index: u16::try_from(i).unwrap_or(u16::MAX),
                        };
                        if let Some(state) = checks.get(&key) {
                            check_view(view, state);
                        }
                    }
                    // The real server's own line: the first check's last result.
                    if let Some(last) = rs.checks.first() {
                        rs.last_latency_us = last.last_latency_us;
                        if rs.reason.is_none() {
                            rs.reason = last.reason.clone();
                        }
                    }
                    // The server's last failure: the latest of its checks'.
                    let latest = rs
                        .checks
                        .iter()
                        .filter(|c| c.last_failure.is_some())
                        .max_by_key(|c| c.last_failure_unix_ms);
                    if let Some(c) = latest {
                        rs.last_failure = c.last_failure.clone();
                        rs.last_failure_unix_ms = c.last_failure_unix_ms;
                    }
                }
            }
        }
        match kernel {
            Ok(kernel) => {
                let empty = Vec::new();
                for (i, (vs, key)) in view.virtual_servers.iter_mut().zip(&keys).enumerate() {
                    let service = kernel.get(key).and_then(Option::as_ref);
                    let group = groups.get(i).unwrap_or(&empty);
                    let members: Vec<_> = group
                        .iter()
                        .map(|k| kernel.get(k).and_then(Option::as_ref))
                        .collect();
                    for (g, m) in vs.group.iter_mut().zip(&members) {
                        g.in_kernel = Some(m.is_some());
                    }
                    vs.in_kernel = Some(service.is_some() && members.iter().all(Option::is_some));
                    for rs in &mut vs.real_servers {
                        let d = service.and_then(|s| s.get(&rs.address));
                        rs.kernel_weight = d.map(|d| d.weight);
                        rs.active_conns = d.map(|d| d.active_conns);
                        rs.inactive_conns = d.map(|d| d.inactive_conns);
                        // A group's connections: summed over its services.
                        for m in members.iter().flatten() {
                            if let Some(d) = m.get(&rs.address) {
                                rs.kernel_weight = rs.kernel_weight.or(Some(d.weight));
                                rs.active_conns = Some(
                                    rs.active_conns.unwrap_or(0).saturating_add(d.active_conns),
                                );
                                rs.inactive_conns = Some(
                                    rs.inactive_conns
                                        .unwrap_or(0)
                                        .saturating_add(d.inactive_conns),
                                );
                            }
                        }
                    }
                }
            }
            Err(e) => {
                if view.ipvs.error.is_none() {
                    view.ipvs.error = Some(e);
                }
            }
        }
        view
    }
}
