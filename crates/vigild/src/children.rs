//! The daemon's side of child processes (exec checks, track programs, notify hooks):
//! setting up vigil-child at start, checking the users the file names against this
//! system, and what the children need that the daemon lacks.

use std::collections::BTreeSet;
use std::path::Path;

use tracing::{info, warn};
use vigil_child::{KillMode, Options, Report, RunAs};
use vigil_config::{CheckKind, Config, ConfigError, Loaded, TrackTarget};

/// Looks users up in this system's user database for validation.
pub struct ThisSystem;

impl vigil_config::System for ThisSystem {
    fn check_user(&self, name: &str) -> Result<(), String> {
        vigil_child::lookup_user(name)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn check_file(&self, path: &Path, what: vigil_config::FileUse) -> Result<(), String> {
        vigil_alert::check_file(path, what)
    }

    fn effective_datapath(
        &self,
        configured: vigil_config::Datapath,
    ) -> Option<(vigil_config::Datapath, String)> {
        Some(crate::datapath::effective(configured))
    }

    fn nftables_unsupported(
        &self,
        vs: &vigil_config::VirtualServer,
    ) -> Vec<(vigil_config::DatapathField, String)> {
        crate::datapath::nftables_unsupported(vs)
    }
}

/// Reads and validates a cluster file for this system (its users must exist here).
pub fn load_config(path: &Path) -> Result<Loaded, ConfigError> {
    vigil_config::load_on(path, &ThisSystem)
}

/// Sets up child processes for the daemon: a delegated cgroup if there is one, else the
/// subreaper fallback; the `children` thread; capabilities dropped from this thread.
/// Call before any other thread starts.
pub fn init() -> Result<&'static Report, vigil_child::InitError> {
    let report = vigil_child::init(Options {
        own_all_children: true,
        use_cgroup: true,
    })?;
    match &report.mode {
        KillMode::Cgroup(dir) => info!(
            cgroup = %dir.display(),
            "child programs run in cgroups of their own under the delegated cgroup"
        ),
        KillMode::Reaper { why } => info!(
            "child programs are killed by process group and as orphans of vigild (subreaper): {why}"
        ),
    }
    if report.late {
        warn!(
            "child processes were set up after other threads started: those keep vigild's capabilities"
        );
    }
    Ok(report)
}

/// For `vigild check-once`: children without cgroups (an operator's shell session is
/// not vigild's to divide), still reaped and killed whole.
pub fn init_for_tool() -> Result<&'static Report, vigil_child::InitError> {
    vigil_child::init(Options {
        own_all_children: true,
        use_cgroup: false,
    })
}

/// Every user the file's child programs run as, each with what runs as it.
fn users(config: &Config) -> BTreeSet<(String, &'static str)> {
    let mut out = BTreeSet::new();
    for vs in &config.virtual_servers {
        for rs in &vs.real_servers {
            for c in &rs.checks {
                if let CheckKind::Exec { user, .. } = &c.kind {
                    out.insert((user.clone(), "exec checks"));
                }
            }
        }
    }
    for v in &config.vrrp {
        for t in &v.track {
            if let TrackTarget::Exec { user, .. } = &t.target {
                out.insert((user.clone(), "track programs"));
            }
        }
    }
    out
}

/// What running the file's child programs needs that this daemon lacks, one message
/// per problem (empty before [`init`], e.g. in tests).
pub fn missing(config: &Config) -> Vec<String> {
    let Some(report) = vigil_child::report() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (user, what) in users(config) {
        // Unknown users were rejected with the file; one removed since fails its runs.
        if let Ok(run_as) = vigil_child::lookup_user(&user) {
            out.extend(report.missing_for(run_as, &format!("to run {what} as user {user}")));
        }
    }
    if config.vrrp.iter().any(|v| !v.hooks.is_empty())
        || config.sync_groups.iter().any(|g| !g.hooks.is_empty())
    {
        out.extend(report.missing_for(RunAs::Daemon, "to run notify hooks"));
    }
    out.dedup();
    out
}
