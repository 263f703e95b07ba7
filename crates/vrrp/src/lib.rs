//! VRRP for vigil: RFC 5798 (VRRPv3, IPv4 and IPv6) and RFC 3768 (VRRPv2).
//!
//! Owns: the packet codec and the per-instance state machine (sans-IO: pure functions of
//! an event and the current time that return actions), plus the thin I/O shells that
//! send and receive adverts and add and remove virtual addresses.
//!
//! Must not: program IPVS or run health checks; it learns tracked health as priority
//! inputs from `vigild`.
//!
//! # Codec
//!
//! [`Advertisement::encode`] builds a VRRP message (the IP payload) with its checksum;
//! [`decode`] runs the receive checks of RFC 5798 §7.1 / RFC 3768 §7.1 against the
//! instance's [`ReceiveRules`] and the [`IpFacts`] of the carrying packet, returning a
//! [`Received`] advert or the [`DropReason`] to count (`DropReason::as_str` gives the
//! stable metric label). Decoding never panics; `fuzz/` holds a cargo-fuzz target for it.
//!
//! keepalived compatibility: VRRPv3 over IPv4 is checksummed over the IPv4 pseudo-header
//! plus the message (RFC 5798 §5.2.8, what keepalived sends and demands; RFC 9568's
//! message-only form can be accepted on receive by choice); VRRPv2 over the message alone
//! including the 8 authentication bytes; a VRRPv2 advert whose interval differs from the
//! configured one is dropped, as RFC 3768 §7.1 and keepalived do.
//!
//! # State machine
//!
//! [`Instance`] is one virtual router: [`Instance::handle`] takes an [`Event`] and the
//! current time and returns [`Action`]s; timers are exposed as [`Instance::next_deadline`]
//! and fired by [`Instance::poll_timeout`]. The shell loop looks like this:
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::{Duration, Instant};
//! use vigil_vrrp::{Action, Config, Event, Instance, State, Version};
//!
//! let mut instance = Instance::new(Config {
//!     version: Version::V3,
//!     priority: 100,
//!     advert_interval: Duration::from_secs(1),
//!     preempt: true,
//!     preempt_delay: Duration::ZERO,
//!     primary_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
//!     advert_on_lower_priority: true,
//!     learned_interval_factor: vigil_vrrp::DEFAULT_LEARNED_INTERVAL_FACTOR,
//! })?;
//! let start = Instant::now();
//! let mut pending = instance.handle(Event::Startup { vips_present: false }, start);
//! // The shell would wait on its socket until `next_deadline`; nobody else is talking here.
//! while let Some(deadline) = instance.next_deadline() {
//!     for action in pending.drain(..) {
//!         match action {
//!             Action::SendAdvert { priority: _ } => { /* encode and send an advert */ }
//!             Action::AddVips | Action::RemoveVips | Action::SendGratuitous => { /* netlink, GARP/NA */ }
//!             Action::StateChanged { .. } => { /* log, notify, sync group */ }
//!         }
//!     }
//!     if instance.state() == State::Master {
//!         break;
//!     }
//!     pending = instance.poll_timeout(deadline);
//! }
//! assert_eq!(instance.state(), State::Master);
//! # Ok::<(), vigil_vrrp::ConfigError>(())
//! ```
//!
//! What one received (possibly forged) advert can make an instance do is bounded: the
//! learned Master_Adver_Interval by [`learned_interval`], the adverts sent in reply by a
//! rate limit ([`resign_reply_gap`], [`Instance::replies_limited`]); sources can be
//! restricted with [`ReceiveRules::allowed_sources`] (docs/operations.md, "VRRP security").
//!
//! Received adverts enter as `Event::AdvertReceived((&received).into())` after
//! [`decode`]. Tracked objects become [`Event::PriorityChanged`] and
//! [`Event::FaultDetected`]/[`Event::FaultCleared`] via [`summarize`]; sync groups are
//! kept together with [`sync_group_directives`].
//!
//! # I/O
//!
//! [`io`] holds the Linux shells: the raw advert socket, the rtnetlink address shell,
//! gratuitous ARP / unsolicited NA, and [`io::runner`], a tokio task per instance that
//! runs the loop above for real ([`io::spawn`] → [`io::RunnerHandle`] with a control
//! channel and a watch of [`io::InstanceStatus`]).
//!
//! What a runner is configured with, and the decisions about it that need no socket,
//! are here with the machine: [`RunnerConfig`], [`reload_change`] (which reloads an
//! instance takes in place), [`receive_rules`] (which adverts count) and
//! [`advert_too_big`].

mod checksum;
mod drop_reason;
mod fsm;
pub mod io;
pub mod notify;
mod packet;
mod priority;
mod receive;
mod runner_config;
mod sync_group;
mod timing;
mod vmac;

pub use drop_reason::DropReason;
pub use fsm::{
    Action, AdvertSeen, Config, ConfigError, Event, Instance, State, SyncDirective,
    TransitionReason,
};

pub use packet::{
    Advertisement, AdvertisementError, Auth, EncodeError, FIXED_HEADER_LEN, Family,
    IP_PROTOCOL_VRRP, IntervalError, MULTICAST_V4, MULTICAST_V6, Password, PasswordTooLong,
    REQUIRED_TTL, V2_AUTH_DATA_LEN, V3_MAX_INTERVAL_CENTIS, Version, VersionFields,
    VirtualAddresses, advert_packet_len, interval_to_wire, message_len,
};
pub use priority::{
    ProcessQuorum, RiseFall, Tracked, TrackedSummary, effective_priority, summarize,
};
pub use receive::{
    ChecksumForm, IpFacts, ReceiveRules, Received, decode, is_for_sibling, source_allowed,
};
pub use runner_config::{
    GarpConfig, ReloadChange, RunnerConfig, advert_too_big, receive_rules, reload_change,
};
pub use sync_group::sync_group_directives;
pub use timing::{
    DEFAULT_LEARNED_INTERVAL_FACTOR, learned_interval, master_down_interval, resign_reply_gap,
    skew_time,
};
pub use vmac::{VmacConfig, VmacSetup, adverts_from_vmac, virtual_mac, vmac_setup};

#[cfg(test)]
mod codec_tests;

#[cfg(test)]
mod fsm_tests;
