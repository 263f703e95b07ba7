//! The I/O shells around the sans-IO core (Linux only):
//!
//! - [`socket`]: the raw IP protocol 112 advert socket (IPv4 with its own header, IPv6
//!   with hop-limit and packet-info control messages), multicast or unicast;
//! - virtual addresses are added and removed idempotently, and the interface's addresses
//!   listed, over rtnetlink by `vigil_netlink::Route` (the project's one netlink layer);
//! - [`announce`]: gratuitous ARP and unsolicited neighbour advertisements;
//! - [`iface`]: interface index, hardware address, link state, primary address;
//! - [`runner`]: the tokio task per instance that ties them to [`crate::Instance`];
//!   [`status`] is what it publishes, [`notify`] runs its hook on every state change.
//!
//! Each shell only translates between bytes and the pure core; every protocol decision
//! stays in `fsm`, `receive`, `packet` and `runner_config`.

pub mod announce;
pub mod iface;
pub mod notify;
pub mod runner;
pub mod socket;
pub mod status;

pub use runner::{Control, LocalRouters, RunnerError, RunnerHandle, spawn};
pub use status::{InstanceStatus, StateEvent, Transition};
// The runner's configuration and the decisions about it are sans-IO (crate root); named
// here too, beside the runner they configure.
pub use crate::runner_config::{
    GarpConfig, ReloadChange, RunnerConfig, advert_too_big, reload_change,
};
