//! The kernel side of the director's desired table: IPVS ([`crate::ipvs_worker`]) or
//! nftables ([`nftables`], one table `inet vigil` through vigil-nft), chosen once at
//! start from `director.datapath`. The director computes one [`vigil_ipvs::DesiredTable`]
//! either way and hands it, and each service's changes, to the [`Datapath`] here.

pub mod conntrack;
pub mod failures;
pub mod ipvs;
pub mod nftables;

use std::sync::{Arc, OnceLock, RwLock};

use serde::Serialize;

use vigil_config::{Datapath as Setting, DatapathField, VirtualServer};
use vigil_ipvs::{SyncDaemon, policy};

use crate::ipvs_worker::Job;
use crate::table::{self, Known};

/// What a datapath thread (IPVS or nftables) publishes of itself: the director,
/// `services` (as the `ipvs` object of its wire form) and metrics read it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DatapathStatus {
    /// The datapath can be written (IPVS: the netlink client is connected to an
    /// IPVS-capable kernel; nftables: the last apply succeeded).
    pub available: bool,
    /// Why it is not (e.g. `IPVS is not available in this kernel: load ip_vs`).
    pub error: Option<String>,
    pub syncs: u64,
    pub writes: u64,
    pub write_errors: u64,
    pub full_dumps: u64,
    /// Writes waiting for a retry.
    pub pending_retries: bool,
    /// The sync daemon running, as `master eth0 id 51`.
    pub sync_daemon: Option<String>,
    pub owned_services: usize,
}

/// What the director needs of a datapath thread.
pub trait Datapath: Send {
    /// A table or service change (see [`Job`]).
    fn send(&self, job: Job);
    /// Deletes the connections of `service` to `real`, a real server its checks found
    /// down (`director.nftables_flush_on_failure`); IPVS keeps them: ignored.
    fn flush_connections(&self, service: vigil_ipvs::ServiceKey, real: std::net::SocketAddr) {
        let _ = (service, real);
    }
    /// The IPVS connection sync daemon wanted now (nftables has none: ignored).
    fn set_sync_daemon(&self, daemon: Option<SyncDaemon>);
    /// The status as the thread publishes it (metrics read it without the director).
    fn status_handle(&self) -> Arc<RwLock<DatapathStatus>>;
    fn status(&self) -> DatapathStatus {
        self.status_handle()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
    /// Stops the thread; the kernel's table stays as it is (a restart adopts it).
    fn stop(self: Box<Self>);
}

/// The kernel datapath in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ipvs,
    Nftables,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ipvs => "ipvs",
            Kind::Nftables => "nftables",
        }
    }

    fn setting(self) -> Setting {
        match self {
            Kind::Ipvs => Setting::Ipvs,
            Kind::Nftables => Setting::Nftables,
        }
    }
}

/// The datapath chosen and why (shown by `vigilctl status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub kind: Kind,
    pub reason: String,
}

/// Chooses the datapath for `setting`; `probe_ipvs` says whether the kernel has IPVS
/// (asked only for `auto`).
pub fn choose(setting: Setting, probe_ipvs: impl FnOnce() -> Result<(), String>) -> Chosen {
    match setting {
        Setting::Ipvs => Chosen {
            kind: Kind::Ipvs,
            reason: "datapath = \"ipvs\"".into(),
        },
        Setting::Nftables => Chosen {
            kind: Kind::Nftables,
            reason: "datapath = \"nftables\"".into(),
        },
        Setting::Auto => match probe_ipvs() {
            Ok(()) => Chosen {
                kind: Kind::Ipvs,
                reason: "datapath = \"auto\": the kernel has IPVS".into(),
            },
            Err(why) => Chosen {
                kind: Kind::Nftables,
                reason: format!("datapath = \"auto\": no IPVS ({why})"),
            },
        },
    }
}

/// Whether this kernel has IPVS: its generic netlink family resolves.
pub fn probe_ipvs() -> Result<(), String> {
    vigil_ipvs::Client::connect()
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The datapath this daemon runs, set once at start: reloads are validated against it
/// (a change of `datapath` takes effect at the next start).
static RUNNING: OnceLock<Chosen> = OnceLock::new();

/// Records the datapath chosen at start.
pub fn set_running(chosen: Chosen) {
    let _ = RUNNING.set(chosen);
}

/// The datapath chosen at start, once set.
pub fn running() -> Option<&'static Chosen> {
    RUNNING.get()
}

/// What validation checks a file against (see `vigil_config::System`): the running
/// datapath in a daemon, else the file's choice (`auto` probed here).
pub fn effective(configured: Setting) -> (Setting, String) {
    match running() {
        Some(c) => (
            c.kind.setting(),
            format!("vigild runs {} ({})", c.kind.name(), c.reason),
        ),
        None => {
            let c = choose(configured, probe_ipvs);
            (c.kind.setting(), c.reason)
        }
    }
}

/// What a reload whose file asks for another datapath than the running one is told
/// (the datapath is chosen at start only).
pub fn reload_warning(configured: Setting) -> Option<String> {
    let c = running()?;
    let same = match configured {
        Setting::Auto => c.reason.starts_with("datapath = \"auto\""),
        other => other == c.kind.setting() && !c.reason.starts_with("datapath = \"auto\""),
    };
    (!same).then(|| {
        format!(
            "datapath = \"{}\" takes effect at the next start; vigild runs {} ({})",
            configured.name(),
            c.kind.name(),
            c.reason
        )
    })
}

/// Why the nftables datapath cannot serve `vs` as configured, from vigil-nft's own
/// reasons: its desired service is planned with every real server up and again with
/// every one down (the sorry server's case).
pub fn nftables_unsupported(vs: &VirtualServer) -> Vec<(DatapathField, String)> {
    let key = table::service_key(&vs.key);
    let mut out: Vec<(DatapathField, String)> = Vec::new();
    for known in [Known::Up, Known::Down] {
        let p = table::policy(vs, |_| known, |_| None, |_| false);
        let e = policy::evaluate(&p, None);
        let Err(errors) = vigil_nft::plan_one(&key, &e.desired, None) else {
            continue;
        };
        for err in errors.0 {
            let item = (field_of(&err.why), err.why.to_string());
            if !out.contains(&item) {
                out.push(item);
            }
        }
    }
    out
}

fn field_of(why: &vigil_nft::Unsupported) -> DatapathField {
    use vigil_nft::Unsupported as U;
    match why {
        U::Scheduler(_) => DatapathField::Scheduler,
        U::Persistence => DatapathField::Persistence,
        U::OnePacket => DatapathField::OnePacket,
        U::SchedulerFlags(_) => DatapathField::SchedulerFlags,
        U::Forwarding(a, _) | U::Thresholds(a) | U::MixedFamily(a) | U::FwmarkPort(a) => {
            DatapathField::RealServer(*a)
        }
        U::MixedPorts | U::Protocol(_) | U::PortZero => DatapathField::Service,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_ipvs_when_the_kernel_has_it_else_nftables() {
        let c = choose(Setting::Auto, || Ok(()));
        assert_eq!(c.kind, Kind::Ipvs);
        assert_eq!(c.reason, "datapath = \"auto\": the kernel has IPVS");
        let c = choose(Setting::Auto, || Err("no IPVS family".into()));
        assert_eq!(c.kind, Kind::Nftables);
        assert_eq!(c.reason, "datapath = \"auto\": no IPVS (no IPVS family)");
        // Explicit choices never probe.
        let never = || -> Result<(), String> { panic!("probed") };
        assert_eq!(choose(Setting::Ipvs, never).kind, Kind::Ipvs);
        assert_eq!(choose(Setting::Nftables, never).kind, Kind::Nftables);
    }

    fn vs(body: &str) -> VirtualServer {
        let text = format!("[director]\nname = \"t\"\n\n[[virtual_server]]\n{body}");
        vigil_config::parse(std::path::Path::new("t.toml"), &text)
            .unwrap()
            .config
            .virtual_servers
            .remove(0)
    }

    #[test]
    fn nftables_refusals_name_the_field_with_vigil_nft_reasons() {
        let ok = vs(
            "name = \"web\"\naddress = \"192.0.2.1:80\"\nscheduler = \"wrr\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\n",
        );
        assert!(nftables_unsupported(&ok).is_empty());
        let bad = vs(
            "name = \"web\"\naddress = \"192.0.2.1:80\"\npersistence = \"300s\"\n[[virtual_server.real_server]]\naddress = \"10.0.0.1:80\"\nforwarding = \"dr\"\n",
        );
        let got = nftables_unsupported(&bad);
        let fields: Vec<DatapathField> = got.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            [
                DatapathField::Scheduler,
                DatapathField::Persistence,
                DatapathField::RealServer("10.0.0.1:80".parse().unwrap()),
            ]
        );
        // The reason is vigil-nft's text, not restated here.
        assert_eq!(
            got[0].1,
            vigil_nft::Unsupported::Scheduler("wlc".into()).to_string()
        );
    }
}
