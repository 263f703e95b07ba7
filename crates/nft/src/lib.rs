//! The nftables datapath: vigil's load-balancing table as one nftables table.
//!
//! Owns: rendering a desired load-balancing table (the same
//! [`vigil_ipvs::reconcile::DesiredTable`] the IPVS reconciler takes: virtual services,
//! real servers with weights, drains as weight 0, the sorry server) into one nftables
//! table, `table inet vigil`, and applying it atomically: each apply is one nft
//! transaction, so a packet never sees a half-applied table.
//!
//! Must not: decide health or policy (that is [`vigil_ipvs::policy`]'s, upstream of the
//! desired table), or touch any other table: every command names `inet vigil`.
//!
//! # Layout
//!
//! - [`model`]: the table in vigil's terms (selector and slots per service).
//! - [`render`]: pure; desired table → [`Model`] → nft JSON (`nft -j -f -`). Services
//!   this datapath cannot serve are refused with a [`RenderError`] naming the service and
//!   the reason, never served by another scheduler in silence.
//! - [`readback`]: pure; `nft -j list table inet vigil` → [`Current`].
//! - [`diff`]: pure; wanted vs current → one [`Batch`], empty when nothing differs (a
//!   restart with an unchanged state writes nothing).
//! - [`nft`]: the I/O shell running the `nft` program with a timeout.
//! - [`program`]: running a program with a time limit, for `nft` and vigild's
//!   `conntrack`.
//! - [`Applier`]: reads back once, then applies only differences: the whole desired
//!   table ([`Applier::apply`]) or one service ([`Applier::apply_service`]).
//!
//! docs/datapath-nftables.md describes the table, the schedulers and forwarding modes,
//! and what differs from IPVS.
//!
//! # Example
//!
//! ```no_run
//! use vigil_ipvs::reconcile::{DesiredService, DesiredTable};
//! use vigil_ipvs::{Destination, ForwardMethod, Service, ServiceKey};
//! use vigil_nft::{Applier, Nft, Options};
//!
//! let key = ServiceKey::tcp("192.0.2.100:80".parse()?);
//! let svc = DesiredService::new(Service::new(key, "wrr"))
//!     .with(Destination::new("10.0.0.11:80".parse()?, ForwardMethod::Masquerade).weight(2))
//!     .with(Destination::new("10.0.0.12:80".parse()?, ForwardMethod::Masquerade));
//! let table = DesiredTable::from([(key, svc)]);
//! let mut applier = Applier::new(Nft::new(), Options::default());
//! let report = applier.apply(&table)?;
//! println!("wrote {} commands", report.commands);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod apply;
pub mod diff;
pub mod error;
pub mod model;
pub mod nft;
pub mod program;
pub mod readback;
pub mod render;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use apply::{Applier, ApplyReport};
pub use diff::{Batch, diff, diff_one};
pub use error::Error;
pub use model::{Model, NftService, Options, Selector};
pub use nft::Nft;
pub use readback::{Current, parse};
pub use render::{RenderError, RenderErrors, Unsupported, plan, plan_one, render};
