//! The per-instance VRRP state machine (RFC 5798 §6, RFC 3768 §6), sans-IO.
//!
//! [`Instance::handle`] takes an [`Event`] and the current time and returns the
//! [`Action`]s the I/O shell must carry out, in order. Timers are not run here: after every
//! call the shell asks [`Instance::next_deadline`] and calls [`Instance::poll_timeout`] once
//! that instant has passed (the quinn-proto pattern). Nothing here sleeps, reads a clock or
//! touches a socket.
//!
//! Beyond the RFC tables the machine adds what a load-balancer director needs:
//! - a `Fault` state entered while any weight-0 tracked object is down or the sync group
//!   says so, which holds no addresses and sends no adverts;
//! - tracked weights changing the effective priority ([`crate::effective_priority`]);
//! - keepalived's `preempt_delay`: after startup a higher-priority backup waits that long
//!   before preempting a lower-priority master;
//! - make-before-break handover: an operator-requested resignation announces priority 0
//!   but keeps the virtual addresses until the new master's first advert is heard (bounded
//!   by the longest Master_Down_Interval any backup can have), where keepalived drops the
//!   addresses first;
//! - a restarted node that still finds its virtual addresses keeps them while it waits as
//!   Backup, and drops them as soon as it hears another master.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::packet::{IntervalError, Version, interval_to_wire};
use crate::priority::effective_priority;
use crate::receive::Received;
use crate::timing::{
    Reply, ReplyLimiter, learned_interval, master_down_interval, resign_reply_gap, skew_time,
};

/// Static configuration of one virtual router instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub version: Version,
    /// Base priority: 255 for the address owner, else 1..=254 (RFC 5798 §5.2.4).
    pub priority: u8,
    /// Advertisement_Interval: whole seconds for v2, whole centiseconds for v3.
    pub advert_interval: Duration,
    /// Preempt_Mode (RFC 5798 §6.1): take over from a lower-priority master.
    pub preempt: bool,
    /// keepalived `preempt_delay`: how long after startup (or after first seeing a
    /// lower-priority master, if later) a backup waits before preempting.
    pub preempt_delay: Duration,
    /// This router's primary IPvX address on the interface, the advert source, used to
    /// break priority ties (RFC 5798 §6.4.3).
    pub primary_address: IpAddr,
    /// A master hearing a lower-priority advert answers with an advert and a gratuitous
    /// ARP/NA burst at once, as RFC 9568 §6.4.3 (the advert) and keepalived (unless
    /// `lower_prio_no_advert`; the burst is its `garp_lower_prio_repeat`) do, instead of
    /// only discarding it as RFC 5798 §6.4.3 says. Heals a split brain one advert sooner,
    /// and takes the clients' neighbour entries back from a peer that resumed believing
    /// it was master. At most one such reply per Advertisement_Interval (see
    /// [`crate::resign_reply_gap`] for priority 0).
    pub advert_on_lower_priority: bool,
    /// A VRRPv3 Backup learns Master_Adver_Interval from the master's adverts (RFC 5798
    /// §6.4.2) within this many times `advert_interval`, up and down
    /// ([`crate::learned_interval`]), so a forged advert can neither stall the backups
    /// for minutes nor make them time out between two adverts. 0 counts as 1.
    pub learned_interval_factor: u32,
}

/// A configuration the machine cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("priority 0 is reserved for resigning; use 1..=255")]
    ZeroPriority,
    #[error(transparent)]
    Interval(#[from] IntervalError),
    #[error("VRRPv2 runs over IPv4 only")]
    V2RequiresIpv4,
    /// [`Instance::reconfigure`] cannot make a router the address owner or stop it being
    /// one: that changes how it starts and what it accepts (RFC 5798 §6.4.1, §7.1).
    #[error("becoming or ceasing to be the address owner (priority 255) needs a restart")]
    OwnerChange,
}

/// Protocol state (RFC 5798 §6.4) plus vigil's `Fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// A tracked failure (or the sync group) keeps this router out of the election.
    Fault,
}

impl State {
    /// Stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Initialize => "initialize",
            Self::Backup => "backup",
            Self::Master => "master",
            Self::Fault => "fault",
        }
    }
}

/// Why a transition happened; carried by [`Action::StateChanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransitionReason {
    /// Startup of a non-owner: Initialize → Backup.
    Startup,
    /// Startup (or fault recovery) of the address owner, priority 255: straight to Master.
    AddressOwner,
    /// Master_Down_Timer fired after adverts stopped.
    MasterDown,
    /// Master_Down_Timer fired after the master announced priority 0.
    MasterResigned,
    /// A master heard a higher-priority advert.
    HigherPriorityMaster,
    /// A master heard an equal-priority advert from a higher primary address.
    PreferredMaster,
    Shutdown,
    Fault,
    FaultCleared,
    /// Operator-requested planned failover.
    Handover,
    /// Followed another member of the sync group.
    SyncGroup,
}

impl TransitionReason {
    /// Stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Startup => "startup",
            Self::AddressOwner => "address_owner",
            Self::MasterDown => "master_down",
            Self::MasterResigned => "master_resigned",
            Self::HigherPriorityMaster => "higher_priority_master",
            Self::PreferredMaster => "preferred_master",
            Self::Shutdown => "shutdown",
            Self::Fault => "fault",
            Self::FaultCleared => "fault_cleared",
            Self::Handover => "handover",
            Self::SyncGroup => "sync_group",
        }
    }
}

/// The parts of a validated advert the state machine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertSeen {
    /// IP source: the sender's primary address.
    pub source: IpAddr,
    pub priority: u8,
    /// Adver Int (v2) / Max Adver Int (v3) from the advert.
    pub advert_interval: Duration,
}

impl From<&Received> for AdvertSeen {
    fn from(received: &Received) -> Self {
        Self {
            source: received.source,
            priority: received.advert.priority,
            advert_interval: received.advert.advert_interval(),
        }
    }
}

/// Inputs to the state machine. Timer expiry is not an event: see
/// [`Instance::poll_timeout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// RFC 5798 §6.4.1 Startup. `vips_present`: the shell found this instance's virtual
    /// addresses already configured (e.g. after a crash); a Backup keeps them until it
    /// hears another master.
    Startup {
        vips_present: bool,
    },
    Shutdown,
    /// An advert that passed [`crate::decode`].
    AdvertReceived(AdvertSeen),
    /// The sum of tracked weights changed ([`crate::TrackedSummary::weight`]).
    PriorityChanged {
        tracked_weight: i32,
    },
    /// A weight-0 tracked object went down. Level-triggered: repeats are harmless.
    FaultDetected,
    /// No weight-0 tracked object is down any more.
    FaultCleared,
    /// Operator asks this router to hand mastership over (make-before-break) and not to
    /// preempt until [`Event::Reclaim`].
    Handover,
    /// Ends the preemption hold-off a [`Event::Handover`] started.
    Reclaim,
    /// A directive from [`crate::sync_group_directives`].
    Sync(SyncDirective),
}

/// What a sync group member must do to stay with its group ([`Event::Sync`], produced
/// by [`crate::sync_group_directives`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncDirective {
    EnterFault,
    LeaveFault,
    StepDown,
    TakeOver,
}

/// What the I/O shell must do, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send one advert with this priority (0 = resign) and the configured interval.
    SendAdvert { priority: u8 },
    /// Configure the virtual addresses (idempotent: some may already be present).
    AddVips,
    /// Remove the virtual addresses.
    RemoveVips,
    /// Announce the virtual addresses: gratuitous ARP for IPv4, unsolicited Neighbor
    /// Advertisement (R and O set, S clear) for IPv6 (RFC 5798 §6.4.1).
    SendGratuitous,
    StateChanged {
        from: State,
        to: State,
        reason: TransitionReason,
    },
}

/// What a Backup still holding virtual addresses is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VipHold {
    /// Restarted with addresses present: until another master is heard.
    UntilMasterHeard,
    /// After resigning: until the new master is heard, at most until `deadline`.
    Handover { deadline: Instant },
}

/// One virtual router instance's protocol state.
#[derive(Debug, Clone)]
pub struct Instance {
    config: Config,
    state: State,
    tracked_weight: i32,
    own_fault: bool,
    group_fault: bool,
    /// RFC 5798 §6.1 Master_Adver_Interval: learned from the master in v3 Backup.
    master_adver_interval: Duration,
    adver_timer: Option<Instant>,
    master_down_timer: Option<Instant>,
    /// The running Master_Down_Timer was set by a priority-0 advert.
    master_resigned: bool,
    vip_hold: Option<VipHold>,
    /// Earliest instant a Backup may preempt a lower-priority master (preempt_delay).
    preempt_not_before: Option<Instant>,
    /// After a handover: behave as non-preempting until Reclaim.
    standing_down: bool,
    /// Rate of adverts sent in reply to received ones (RFC 5798 §6.4.3).
    replies: ReplyLimiter,
    /// A Master's coalesced reply to priority-0 adverts, due at this instant.
    deferred_reply: Option<Instant>,
    /// Received adverts whose own reply the limiter skipped or merged into another.
    replies_limited: u64,
}

impl Instance {
    pub fn new(config: Config) -> Result<Self, ConfigError> {
        if config.priority == 0 {
            return Err(ConfigError::ZeroPriority);
        }
        interval_to_wire(config.version, config.advert_interval)?;
        if config.version == Version::V2 && config.primary_address.is_ipv6() {
            return Err(ConfigError::V2RequiresIpv4);
        }
        Ok(Self {
            master_adver_interval: config.advert_interval,
            config,
            state: State::Initialize,
            tracked_weight: 0,
            own_fault: false,
            group_fault: false,
            adver_timer: None,
            master_down_timer: None,
            master_resigned: false,
            vip_hold: None,
            preempt_not_before: None,
            standing_down: false,
            replies: ReplyLimiter::default(),
            deferred_reply: None,
            replies_limited: 0,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority: base plus tracked weight, clamped (owner stays 255).
    pub fn priority(&self) -> u8 {
        effective_priority(self.config.priority, self.tracked_weight)
    }

    /// Master_Adver_Interval as currently known (learned from the master in v3).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Whether this instance wants its virtual addresses configured right now.
    pub fn holds_vips(&self) -> bool {
        self.state == State::Master || self.vip_hold.is_some()
    }

    /// How many received adverts did not get an advert of their own in reply because of
    /// the reply rate limit (see [`crate::resign_reply_gap`]); monotonic.
    pub fn replies_limited(&self) -> u64 {
        self.replies_limited
    }

    /// Whether a handover hold-off on preemption is in force.
    pub fn is_standing_down(&self) -> bool {
        self.standing_down
    }

    /// The instant the shell must call [`Self::poll_timeout`] at, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Master => [self.adver_timer, self.deferred_reply]
                .into_iter()
                .flatten()
                .min(),
            State::Backup => {
                let hold = match self.vip_hold {
                    Some(VipHold::Handover { deadline }) => Some(deadline),
                    _ => None,
                };
                [self.master_down_timer, hold].into_iter().flatten().min()
            }
            State::Initialize | State::Fault => None,
        }
    }

    /// Feeds one event; returns the actions to carry out in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Startup { vips_present } => self.on_startup(now, vips_present, &mut out),
            Event::Shutdown => self.on_shutdown(&mut out),
            // Our own adverts looped back (IP_MULTICAST_LOOP) must not count as another
            // router: after a handover our own priority-0 advert would otherwise make us
            // take over again after Skew_Time.
            Event::AdvertReceived(advert) if advert.source == self.config.primary_address => {}
            Event::AdvertReceived(advert) => match self.state {
                State::Backup => self.backup_on_advert(advert, now, &mut out),
                State::Master => self.master_on_advert(advert, now, &mut out),
                // Initialize and Fault take no part in the election.
                State::Initialize | State::Fault => {}
            },
            Event::PriorityChanged { tracked_weight } => {
                let before = self.priority();
                self.tracked_weight = tracked_weight;
                if self.state == State::Master && self.priority() != before {
                    // Tell the backups now rather than at the next Adver_Timer, so a
                    // preempting backup learns of the drop without delay.
                    self.send_advert(now, &mut out);
                }
            }
            Event::FaultDetected => {
                self.own_fault = true;
                self.enter_fault_if_faulted(&mut out);
            }
            Event::FaultCleared => {
                self.own_fault = false;
                self.leave_fault_if_clear(now, &mut out);
            }
            Event::Handover => {
                self.standing_down = true;
                self.resign(now, TransitionReason::Handover, &mut out);
            }
            Event::Reclaim => self.standing_down = false,
            Event::Sync(directive) => self.on_sync(directive, now, &mut out),
        }
        out
    }

    /// A reload's new base priority, Preempt_Mode and preempt_delay, taken by the running
    /// machine without a state change of its own. The protocol goes on with them as with
    /// any priority change: a master whose priority changed advertises it at once (so a
    /// backup it no longer outranks preempts, RFC 5798 §6.4.2); a backup that now
    /// outranks its master, with Preempt_Mode, discards the master's adverts and takes
    /// over when its Master_Down_Timer fires (§6.4.2 "else: Discard the ADVERTISEMENT");
    /// Skew_Time and Master_Down_Interval follow the new priority from their next reset
    /// (§6.1). Becoming or ceasing to be the address owner needs a fresh machine.
    pub fn reconfigure(
        &mut self,
        priority: u8,
        preempt: bool,
        preempt_delay: Duration,
        now: Instant,
    ) -> Result<Vec<Action>, ConfigError> {
        if priority == 0 {
            return Err(ConfigError::ZeroPriority);
        }
        if (priority == u8::MAX) != (self.config.priority == u8::MAX) {
            return Err(ConfigError::OwnerChange);
        }
        let before = self.priority();
        self.config.priority = priority;
        self.config.preempt = preempt;
        if preempt_delay != self.config.preempt_delay {
            self.config.preempt_delay = preempt_delay;
            // A hold-off still running is measured with the new delay from now on.
            if self.preempt_not_before.is_some() {
                self.preempt_not_before = (!preempt_delay.is_zero()).then(|| now + preempt_delay);
            }
        }
        let mut out = Vec::new();
        if self.state == State::Master && self.priority() != before {
            self.send_advert(now, &mut out);
        }
        Ok(out)
    }

    /// Fires every timer whose deadline is at or before `now`.
    pub fn poll_timeout(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.state {
            State::Master => {
                // RFC 5798 §6.4.3: "If the Adver_Timer fires, then: Send an ADVERTISEMENT;
                // Reset the Adver_Timer to Advertisement_Interval". A coalesced reply to
                // priority-0 adverts that falls due is sent the same way.
                let due = |timer: Option<Instant>| timer.is_some_and(|deadline| deadline <= now);
                if due(self.adver_timer) || due(self.deferred_reply) {
                    self.send_advert(now, &mut out);
                }
            }
            State::Backup => {
                if let Some(VipHold::Handover { deadline }) = self.vip_hold
                    && deadline <= now
                {
                    // Nobody took over within the longest Master_Down_Interval: stop
                    // answering for the addresses and wait like any backup.
                    self.vip_hold = None;
                    out.push(Action::RemoveVips);
                    self.ensure_master_down_timer(now);
                }
                // RFC 5798 §6.4.2: "If the Master_Down_Timer fires, then: ... Transition to
                // the {Master} state".
                if self
                    .master_down_timer
                    .is_some_and(|deadline| deadline <= now)
                {
                    let reason = if self.master_resigned {
                        TransitionReason::MasterResigned
                    } else {
                        TransitionReason::MasterDown
                    };
                    self.become_master(now, reason, &mut out);
                }
            }
            State::Initialize | State::Fault => {}
        }
        out
    }

    fn faulted(&self) -> bool {
        self.own_fault || self.group_fault
    }

    fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.config.version,
            self.priority(),
            self.master_adver_interval,
        )
    }

    fn transition(&mut self, to: State, reason: TransitionReason, out: &mut Vec<Action>) {
        out.push(Action::StateChanged {
            from: self.state,
            to,
            reason,
        });
        self.state = to;
    }

    fn send_advert(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::SendAdvert {
            priority: self.priority(),
        });
        self.adver_timer = Some(now + self.config.advert_interval);
        // Any advert answers the priority-0 adverts heard so far.
        self.replies.sent(now);
        self.deferred_reply = None;
    }

    /// RFC 5798 §6.4.2 / §6.4.3 "Set Master_Adver_Interval to Adver Interval contained in
    /// the ADVERTISEMENT", within vigil's bound.
    fn learn_interval(&mut self, advert: &AdvertSeen) {
        self.master_adver_interval = learned_interval(
            self.config.version,
            advert.advert_interval,
            self.config.advert_interval,
            self.config.learned_interval_factor,
        );
    }

    fn ensure_master_down_timer(&mut self, now: Instant) {
        if self.master_down_timer.is_none() {
            self.master_down_timer = Some(now + self.master_down_interval());
            self.master_resigned = false;
        }
    }

    /// RFC 5798 §6.4.1 (Initialize).
    fn on_startup(&mut self, now: Instant, vips_present: bool, out: &mut Vec<Action>) {
        if self.state != State::Initialize {
            return;
        }
        if self.faulted() {
            self.transition(State::Fault, TransitionReason::Fault, out);
            if vips_present {
                out.push(Action::RemoveVips);
            }
            return;
        }
        // "If the Priority = 255 (i.e., the router owns the IPvX address associated with
        // the virtual router), then: Send an ADVERTISEMENT ... Transition to the {Master}
        // state".
        if self.priority() == u8::MAX {
            self.become_master(now, TransitionReason::AddressOwner, out);
            return;
        }
        // "else // rtr does not own virt addr: Set Master_Adver_Interval to
        // Advertisement_Interval; Set the Master_Down_Timer to Master_Down_Interval;
        // Transition to the {Backup} state".
        self.master_adver_interval = self.config.advert_interval;
        self.master_down_timer = Some(now + self.master_down_interval());
        self.master_resigned = false;
        self.vip_hold = vips_present.then_some(VipHold::UntilMasterHeard);
        self.preempt_not_before =
            (!self.config.preempt_delay.is_zero()).then(|| now + self.config.preempt_delay);
        self.transition(State::Backup, TransitionReason::Startup, out);
    }

    /// Shutdown from any state (RFC 5798 §6.4.2 and §6.4.3).
    fn on_shutdown(&mut self, out: &mut Vec<Action>) {
        match self.state {
            State::Initialize => return,
            State::Master => {
                // "If a Shutdown event is received, then: Cancel the Adver_Timer; Send an
                // ADVERTISEMENT with Priority = 0; Transition to the {Initialize} state".
                self.transition(State::Initialize, TransitionReason::Shutdown, out);
                out.push(Action::SendAdvert { priority: 0 });
                out.push(Action::RemoveVips);
            }
            State::Backup => {
                // "If a Shutdown event is received, then: Cancel the Master_Down_Timer;
                // Transition to the {Initialize} state".
                self.transition(State::Initialize, TransitionReason::Shutdown, out);
                if self.vip_hold.is_some() {
                    out.push(Action::RemoveVips);
                }
            }
            State::Fault => self.transition(State::Initialize, TransitionReason::Shutdown, out),
        }
        self.adver_timer = None;
        self.master_down_timer = None;
        self.vip_hold = None;
        self.preempt_not_before = None;
    }

    /// Entering Master from Initialize (owner), Backup (timer, sync) or Fault (owner).
    fn become_master(&mut self, now: Instant, reason: TransitionReason, out: &mut Vec<Action>) {
        self.transition(State::Master, reason, out);
        // RFC 5798 §6.4.2: "Send an ADVERTISEMENT", then gratuitous ARP / unsolicited NA
        // for each address, "Set the Adver_Timer to Advertisement_Interval". The addresses
        // go on before the gratuitous announcements that advertise them.
        self.send_advert(now, out);
        out.push(Action::AddVips);
        out.push(Action::SendGratuitous);
        self.master_down_timer = None;
        self.master_resigned = false;
        self.vip_hold = None;
        self.preempt_not_before = None;
        self.standing_down = false;
    }

    /// RFC 5798 §6.4.2: "If an ADVERTISEMENT is received, then" (Backup).
    fn backup_on_advert(&mut self, advert: AdvertSeen, now: Instant, out: &mut Vec<Action>) {
        // "If the Priority in the ADVERTISEMENT is zero, then: Set the Master_Down_Timer to
        // Skew_Time".
        if advert.priority == 0 {
            let skew = skew_time(
                self.config.version,
                self.priority(),
                self.master_adver_interval,
            );
            self.master_down_timer = Some(now + skew);
            self.master_resigned = true;
            return;
        }
        // A live master answers for the addresses now: stop holding them (restart and
        // handover cases alike).
        if self.vip_hold.take().is_some() {
            out.push(Action::RemoveVips);
        }
        // "If Preempt_Mode is False, or if the Priority in the ADVERTISEMENT is greater
        // than or equal to the local Priority, then: ... Reset the Master_Down_Timer to
        // Master_Down_Interval; else: Discard the ADVERTISEMENT".
        if advert.priority >= self.priority() || !self.may_preempt(now) {
            // "Set Master_Adver_Interval to Adver Interval contained in the ADVERTISEMENT;
            // Recompute the Master_Down_Interval" — VRRPv3 only, and within
            // learned_interval_factor times ours; RFC 3768 has no learning and §7.1
            // already made the v2 interval equal to ours.
            self.learn_interval(&advert);
            self.master_down_timer = Some(now + self.master_down_interval());
            self.master_resigned = false;
        } else {
            // Discarded: the timer keeps running and fires unless a better master speaks.
            self.ensure_master_down_timer(now);
        }
    }

    /// Preempt_Mode, minus a handover hold-off, minus keepalived's preempt_delay. The
    /// delay clock starts at startup, or at the first lower-priority advert if none runs.
    fn may_preempt(&mut self, now: Instant) -> bool {
        if !self.config.preempt || self.standing_down {
            return false;
        }
        if self.config.preempt_delay.is_zero() {
            return true;
        }
        let delay = self.config.preempt_delay;
        let not_before = *self.preempt_not_before.get_or_insert(now + delay);
        now >= not_before
    }

    /// RFC 5798 §6.4.3: "If an ADVERTISEMENT is received, then" (Master).
    fn master_on_advert(&mut self, advert: AdvertSeen, now: Instant, out: &mut Vec<Action>) {
        // "If the Priority in the ADVERTISEMENT is zero, then: Send an ADVERTISEMENT; Reset
        // the Adver_Timer to Advertisement_Interval". Forged ones must not make us send
        // at their rate: within resign_reply_gap of our last advert, one reply at the end
        // of the gap answers them all, still before any backup's Skew_Time runs out.
        if advert.priority == 0 {
            let gap = resign_reply_gap(self.config.version, self.config.advert_interval);
            match self.replies.resigned(now, gap) {
                Reply::Now => self.send_advert(now, out),
                Reply::At(at) => {
                    self.replies_limited += 1;
                    self.deferred_reply.get_or_insert(at);
                }
                Reply::Skip => self.replies_limited += 1,
            }
            return;
        }
        let local = self.priority();
        // "If the Priority in the ADVERTISEMENT is greater than the local Priority, or If
        // the Priority in the ADVERTISEMENT is equal to the local Priority and the primary
        // IPvX Address of the sender is greater than the local primary IPvX Address, then:
        // Cancel Adver_Timer; Set Master_Adver_Interval to Adver Interval contained in the
        // ADVERTISEMENT; Recompute the Skew_Time; Recompute the Master_Down_Interval; Set
        // Master_Down_Timer to Master_Down_Interval; Transition to the {Backup} state".
        let reason = if advert.priority > local {
            Some(TransitionReason::HigherPriorityMaster)
        } else if advert.priority == local
            && address_greater(advert.source, self.config.primary_address)
        {
            Some(TransitionReason::PreferredMaster)
        } else {
            None
        };
        match reason {
            Some(reason) => {
                self.adver_timer = None;
                self.deferred_reply = None;
                self.learn_interval(&advert);
                self.master_down_timer = Some(now + self.master_down_interval());
                self.master_resigned = false;
                self.transition(State::Backup, reason, out);
                out.push(Action::RemoveVips);
            }
            // "else // new Master logic: Discard ADVERTISEMENT". Optionally assert
            // mastership at once (RFC 9568 §6.4.3, keepalived's default), at most once
            // per Advertisement_Interval: the Adver_Timer answers the rest. The sender
            // believes it is master (a peer resumed after a stop or a partition), so it
            // may have moved the clients' neighbour entries to itself: announce the
            // addresses again too, as keepalived does (garp_lower_prio_repeat).
            None if self.config.advert_on_lower_priority => {
                match self
                    .replies
                    .lower_priority(now, self.config.advert_interval)
                {
                    Reply::Now => {
                        self.send_advert(now, out);
                        out.push(Action::SendGratuitous);
                    }
                    Reply::At(_) | Reply::Skip => self.replies_limited += 1,
                }
            }
            None => {}
        }
    }

    /// Master → Backup by choice: announce priority 0 so backups take over after their
    /// Skew_Time, but keep the addresses until the new master is heard.
    fn resign(&mut self, now: Instant, reason: TransitionReason, out: &mut Vec<Action>) {
        if self.state != State::Master {
            return;
        }
        self.adver_timer = None;
        self.transition(State::Backup, reason, out);
        out.push(Action::SendAdvert { priority: 0 });
        self.master_adver_interval = self.config.advert_interval;
        // The slowest backup (priority 1) waits 3 intervals + almost one more even if our
        // priority-0 advert is lost; hold the addresses until then at most.
        let bound = master_down_interval(self.config.version, 1, self.config.advert_interval);
        self.vip_hold = Some(VipHold::Handover {
            deadline: now + bound,
        });
        self.master_down_timer = None;
        self.master_resigned = false;
    }

    fn enter_fault_if_faulted(&mut self, out: &mut Vec<Action>) {
        if !self.faulted() {
            return;
        }
        match self.state {
            // Startup will go straight to Fault; nothing to leave.
            State::Initialize | State::Fault => return,
            State::Master => {
                self.transition(State::Fault, TransitionReason::Fault, out);
                // Resign so backups take over after Skew_Time, not Master_Down_Interval.
                out.push(Action::SendAdvert { priority: 0 });
                out.push(Action::RemoveVips);
            }
            State::Backup => {
                self.transition(State::Fault, TransitionReason::Fault, out);
                if self.vip_hold.is_some() {
                    out.push(Action::RemoveVips);
                }
            }
        }
        self.adver_timer = None;
        self.master_down_timer = None;
        self.vip_hold = None;
        self.preempt_not_before = None;
    }

    fn leave_fault_if_clear(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.faulted() || self.state != State::Fault {
            return;
        }
        // Re-enter the election as a starting router would (RFC 5798 §6.4.1).
        if self.priority() == u8::MAX {
            self.become_master(now, TransitionReason::FaultCleared, out);
            return;
        }
        self.master_adver_interval = self.config.advert_interval;
        self.master_down_timer = Some(now + self.master_down_interval());
        self.master_resigned = false;
        self.transition(State::Backup, TransitionReason::FaultCleared, out);
    }

    fn on_sync(&mut self, directive: SyncDirective, now: Instant, out: &mut Vec<Action>) {
        match directive {
            SyncDirective::EnterFault => {
                self.group_fault = true;
                self.enter_fault_if_faulted(out);
            }
            SyncDirective::LeaveFault => {
                self.group_fault = false;
                self.leave_fault_if_clear(now, out);
            }
            SyncDirective::StepDown => self.resign(now, TransitionReason::SyncGroup, out),
            SyncDirective::TakeOver => {
                if self.state == State::Backup {
                    self.become_master(now, TransitionReason::SyncGroup, out);
                }
            }
        }
    }
}

/// RFC 5798 §6.4.3 tie-break, as RFC 9568 spells out: "based on an unsigned integer
/// comparison of the IPvX addresses in network byte order". Addresses of different
/// families never compare greater (the decoder drops such adverts anyway).
fn address_greater(sender: IpAddr, local: IpAddr) -> bool {
    match (sender, local) {
        (IpAddr::V4(sender), IpAddr::V4(local)) => sender.octets() > local.octets(),
        (IpAddr::V6(sender), IpAddr::V6(local)) => sender.octets() > local.octets(),
        _ => false,
    }
}
