//! Health checkers for vigil.
//!
//! Owns: probing real servers (TCP, HTTP/HTTPS, DNS, UDP, ICMP, exec) and the sans-IO
//! scheduler that decides when each check runs and when a server goes up or down
//! (rise/fall hysteresis, retry delay, start spread).
//!
//! Must not: touch the kernel's tables (IPVS, addresses, routes) or know about VRRP. It only
//! reports health; `vigild` turns health into a desired IPVS table.

mod checker;
mod once;
mod probe;
mod scheduler;
mod stats;
mod target;

pub use checker::{
    ChangeState, CheckState, Checker, CheckerError, CheckerOptions, HealthEvent, HealthEvents,
    ResultState, Snapshot,
};
pub use once::{OnceResult, format_table, run_once};
pub use stats::{Histogram, LatenessSummary, Stats};

pub use scheduler::{CheckStatus, Due, Health, LastResult, Outcome, RunId, Scheduler, Transition};
pub use target::{CheckKey, Target, targets_from_config};
