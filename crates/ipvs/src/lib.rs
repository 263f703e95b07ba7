//! Linux IP Virtual Server driver.
//!
//! Owns: the generic-netlink "IPVS" family (message codec, socket client), the table
//! policy that turns configured real servers, their health and operator drains into the
//! desired table (weights, inhibit-on-failure, quorum with hysteresis, the sorry server;
//! [`policy`]), and the reconciler that turns a desired table into the minimal set of
//! kernel writes.
//!
//! Must not: decide health (it takes each server's verdict as given), or touch services
//! it does not own (those created by `ipvsadm`, kube-proxy and the like).
//!
//! # Layout
//!
//! - [`model`]: typed services, destinations, statistics, sync daemons, timeouts. Keys
//!   ([`ServiceKey`], [`DestinationKey`]) are `Eq + Hash + Ord` for diffing tables.
//! - [`codec`]: [`Request`] → bytes and reply bytes → model, with the constants of
//!   `include/uapi/linux/ip_vs.h`. Pure, no sockets; fuzzed.
//! - [`netlink`]: netlink / generic-netlink framing on `netlink-packet-core` and
//!   `netlink-packet-generic` (headers, attributes, acks, extended-ack TLVs, the
//!   controller's family lookup), with typed length checks on every reply.
//! - [`Client`]: a blocking `NETLINK_GENERIC` socket client; [`Client::apply`]
//!   pipelines many writes per datagram and matches acks by sequence number.
//! - [`policy`]: pure rules from configuration + health + drains to what one service
//!   should hold: weights, inhibit-on-failure, quorum with hysteresis, the sorry server.
//! - [`reconcile`]: the pure diff (desired table vs kernel table, owned keys only) and
//!   the [`Reconciler`], which adopts the kernel's table on start, applies only the
//!   differences through the pipelined batch and retries refused writes with back-off.
//!
//! # Reconciling
//!
//! ```no_run
//! use std::time::Instant;
//! use vigil_ipvs::policy::{evaluate, Health, RealServer, ServicePolicy};
//! use vigil_ipvs::reconcile::{Backoff, DesiredTable, Reconciler};
//! use vigil_ipvs::{Client, ForwardMethod, Service, ServiceKey};
//!
//! let mut ipvs = Client::connect()?;
//! let key = ServiceKey::tcp("192.0.2.100:80".parse()?);
//! let mut policy = ServicePolicy::new(
//!     Service::new(key, "wrr"),
//!     vec![
//!         RealServer::new("10.0.0.11:80".parse()?, 10, ForwardMethod::Masquerade),
//!         RealServer::new("10.0.0.12:80".parse()?, 10, ForwardMethod::Masquerade),
//!     ],
//! );
//! // Owned keys from the previous run (a state file), so removed services are deleted.
//! let mut reconciler = Reconciler::new([], Backoff::default());
//! let first = evaluate(&policy, None);
//! let table = DesiredTable::from([(key, first.desired.clone())]);
//! // The first sync dumps the kernel: after a restart with nothing changed, no writes.
//! let report = reconciler.sync(&mut ipvs, &table, Instant::now())?;
//! assert!(report.errors.is_empty());
//!
//! // A health change: recompute that service, sync only it (one SET_DEST or DEL_DEST).
//! policy.reals[1].health = Health::Down;
//! let next = evaluate(&policy, first.quorum);
//! let report = reconciler.sync_service(&mut ipvs, key, Some(&next.desired), Instant::now())?;
//! for e in &report.errors {
//!     eprintln!("{} (retry at {:?})", e.error, e.retry_at);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Errors
//!
//! A kernel refusal is [`Error::Kernel`]: the errno and the operation it was about,
//! e.g. `adding destination 10.0.0.11:80 to tcp 192.0.2.100:80: File exists (EEXIST)`.
//! The kernel's codes: `EEXIST` (already there), `ESRCH` (no such service),
//! `ENOENT` (no such destination, or an unknown scheduler / persistence engine),
//! `EINVAL` (a malformed or contradictory request, e.g. a mixed-family destination that
//! is not tunnelled), `EPERM` (no `CAP_NET_ADMIN`). A kernel without IPVS gives
//! [`Error::Unavailable`] from [`Client::connect`].
//!
//! # Pipelining
//!
//! [`Client::apply`] writes a table at netlink speed: requests are packed many to a
//! datagram, each with its own sequence number and `NLM_F_ACK`, and the acks are matched
//! back by sequence number into one result per request. The kernel handles every request
//! whatever became of the previous ones. The window (requests in flight) follows the
//! receive buffer granted (4 MiB asked for; root gets it past `rmem_max`), since every
//! ack is charged to it; should it overflow anyway, the requests whose acks were dropped
//! report [`Error::AckLost`] rather than a guess. Under the kernel lab's emulated CPU,
//! 1,000 services × 10 destinations (11,000 requests) go in about a second.
//!
//! # Driving it from an event loop
//!
//! [`Client`] blocks. Everything protocol-related is pure and public ([`Request::encode`],
//! [`netlink::messages`], [`codec::decode_reply`]), and [`socket::NetlinkSocket`] can be
//! made non-blocking and exposes its fd, so an async wrapper (tokio's `AsyncFd`) can be
//! built on the same pieces.
//!
//! The framing is `netlink-packet-core`'s and `netlink-packet-generic`'s (the same
//! layer as vigil-netlink's rtnetlink): their buffers write and read the headers and
//! attribute headers. This crate keeps the IPVS attributes (`codec`) and the checks that
//! turn a malformed reply into a typed [`DecodeError`]; requests are written straight
//! into one reusable buffer, many to a datagram, without building a message tree, so
//! the cold sync keeps its speed (docs/benchmarks.md).
//!
//! # Example
//!
//! ```no_run
//! use vigil_ipvs::{Client, Destination, ForwardMethod, Service, ServiceKey};
//!
//! let mut ipvs = Client::connect()?;
//! let key = ServiceKey::tcp("192.0.2.100:80".parse()?);
//! ipvs.add_service(&Service::new(key, "wlc"))?;
//! ipvs.add_destination(&key, &Destination::new("10.0.0.11:80".parse()?, ForwardMethod::Masquerade))?;
//! for d in ipvs.destinations(&key)? {
//!     println!("{} weight {} active {}", d.destination.addr, d.destination.weight, d.active_conns);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod client;
pub mod codec;
pub mod error;
pub mod model;
pub mod netlink;
pub mod policy;
pub mod reconcile;
pub mod socket;

pub use client::{Client, ClientOptions};
pub use codec::{Reply, Request};
pub use error::{DecodeError, EncodeError, Errno, Error};
pub use model::{
    Destination, DestinationEntry, DestinationKey, Family, ForwardMethod, Info, Netmask, Operation,
    Protocol, Service, ServiceEntry, ServiceFlags, ServiceKey, ServiceKeyParseError, Stats,
    SyncDaemon, SyncState, Timeouts, Tunnel, TunnelType,
};
pub use policy::{Evaluation, Health, RealServer, ServicePolicy, SorryServer, evaluate};
pub use reconcile::{
    Backoff, DesiredService, DesiredTable, KernelService, KernelTable, Plan, ReconcileReport,
    Reconciler,
};
