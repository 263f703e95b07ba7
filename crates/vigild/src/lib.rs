//! The vigil director daemon.
//!
//! Owns: wiring. It loads the cluster file, serves the status socket, handles signals
//! (SIGTERM/SIGINT stop, SIGHUP reload), talks to systemd, and connects the checkers, the
//! IPVS reconciler and the VRRP instances, publishing one state snapshot that the status
//! socket and metrics read. It supervises every worker it starts (`supervise`): a dead
//! one stops the daemon non-zero, a hung one stops the watchdog.
//!
//! Must not: hold policy. Health decisions belong to `vigil-check`, table diffs to
//! `vigil-ipvs`, the protocol to `vigil-vrrp`, and config rules to `vigil-config`.

pub mod access;
pub mod announce;
pub mod announce_worker;
pub mod atomic_file;
pub mod caps;
pub mod check_config;
pub mod check_once;
pub mod children;
pub mod daemon;
pub mod datapath;
pub mod director;
pub mod director_hooks;
pub mod dns_real_servers;
pub mod dumps;
pub mod file_watch;
pub mod import_keepalived;
pub mod ipvs_worker;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod notify_fifo;
pub mod overrides;
pub mod protocol;
pub mod services;
pub mod state;
pub mod state_file;
pub mod status;
pub mod supervise;
pub mod systemd;
pub mod table;
pub mod vrrp;
