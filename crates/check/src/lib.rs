//! Health checkers for vigil.
//!
//! Owns: probing real servers (TCP, HTTP/HTTPS, DNS, UDP, ICMP, exec) and the sans-IO
//! scheduler that decides when each check runs and when a server goes up or down
//! (rise/fall hysteresis, retry delay, start spread).
//!
//! Must not: touch the kernel's tables (IPVS, addresses, routes) or know about VRRP. It only
//! reports health; `vigild` turns health into a desired IPVS table.

mod scheduler;
mod target;

pub use scheduler::{CheckStatus, Due, Health, LastResult, Outcome, RunId, Scheduler, Transition};
pub use target::{CheckKey, Target, targets_from_config};
