//! vigil's one routing-netlink layer, built on `netlink-packet-route`,
//! `netlink-packet-core` and `netlink-sys`.
//!
//! Owns: every `NETLINK_ROUTE` conversation of the project — addresses added, removed and
//! listed ([`Route`]), host routes of a table added, removed and listed (the BGP
//! announcer's), links looked up by name or dumped ([`Link`]), and link state
//! followed from the kernel's `RTNLGRP_LINK` events ([`LinkWatch`]); routes and policy
//! rules added and removed ([`routing`]); macvlan (virtual MAC) interfaces created,
//! configured and deleted ([`vmac`]). Later users (routes,
//! rules, macvlan interfaces, the BGP announcer's routes) add their requests here, so
//! there is one framing, one error type and one place that reads kernel replies.
//!
//! Must not: decide anything. It does not know VRRP, IPVS or what a link going down
//! means; it reports facts and carries out requests. No interface ioctls (`SIOC*`):
//! everything goes over rtnetlink.
//!
//! # Layout
//!
//! - [`codec`]: pure request builders and reply readers (no sockets), unit-tested;
//! - [`Route`]: a blocking request/acknowledge client, every receive bounded (a kernel
//!   answers at once; a stuck socket must not hang its caller);
//! - [`LinkWatch`]: an async subscription to link events that keeps a table of every
//!   link's state, re-read whole when the kernel reports lost events (`ENOBUFS`).

pub mod codec;
mod links;
mod route;
mod route_vrrp;
pub mod routing;
pub mod vmac;

pub use codec::{InterfaceAddress, Link, TableRoute};
pub use links::{LinkTable, LinkWatch};
pub use route::Route;
pub use routing::{RouteKind, RouteSpec, RuleKind, RuleSpec};

/// Address flags (`IFA_F_*`, linux/if_addr.h) as carried in [`InterfaceAddress::flags`].
pub const IFA_F_SECONDARY: u32 = 0x01;
/// No duplicate address detection (IPv6).
pub const IFA_F_NODAD: u32 = 0x02;
/// Duplicate address detection failed (IPv6).
pub const IFA_F_DADFAILED: u32 = 0x08;
/// Duplicate address detection still running (IPv6).
pub const IFA_F_TENTATIVE: u32 = 0x40;

/// What can go wrong talking to the kernel over rtnetlink.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket itself failed (open, bind, send, receive, timeout).
    #[error("netlink socket: {op}: {source}")]
    Socket {
        /// What was being done.
        op: &'static str,
        /// The system's error.
        source: std::io::Error,
    },
    /// The kernel refused a request.
    #[error("{op}: {source}")]
    Kernel {
        /// The request, e.g. "adding 10.0.0.1/24 to interface 3".
        op: String,
        /// The kernel's errno.
        source: std::io::Error,
    },
    /// A reply the codec could not read.
    #[error("netlink reply to {op} unreadable: {detail}")]
    Decode {
        /// The request it answered.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// The kernel's errno, when the kernel refused the request or the socket failed.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Socket { source, .. } | Error::Kernel { source, .. } => source.raw_os_error(),
            Error::Decode { .. } => None,
        }
    }
}

/// One link looked up by name on a socket of its own (for callers that ask rarely).
pub fn link(name: &str) -> Result<Link, Error> {
    Route::open()?.link(name)
}
