//! The I/O shells around the sans-IO core (Linux only):
//!
//! - [`socket`]: the raw IP protocol 112 advert socket (IPv4 with its own header, IPv6
//!   with hop-limit and packet-info control messages), multicast or unicast;
//! - virtual addresses are added and removed idempotently, and the interface's addresses
//!   listed, over rtnetlink by `vigil_netlink::Route` (the project's one netlink layer);
//! - [`announce`]: gratuitous ARP and unsolicited neighbour advertisements;
//! - [`iface`]: interface index, hardware address, link state, primary address;
//! - [`runner`]: the tokio task per instance that ties them to [`crate::Instance`].
//!
//! Each shell only translates between bytes and the pure core; every protocol decision
//! stays in `fsm`, `receive` and `packet`.

pub mod announce;
pub mod iface;
pub mod runner;
pub mod socket;

pub use runner::{
    Control, GarpConfig, InstanceStatus, LocalRouters, ReloadChange, RunnerConfig, RunnerError,
    RunnerHandle, StateEvent, Transition, advert_too_big, reload_change, spawn,
};
