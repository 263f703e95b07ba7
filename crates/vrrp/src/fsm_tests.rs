//! State machine tests. Every transition of RFC 5798 §6.4.1–§6.4.3 has a test whose
//! comment quotes the rule it checks; vigil's additions (fault, tracking, preempt delay,
//! handover, restart with addresses, sync groups) follow, then two-router simulations.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use crate::*;

const LOW: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const HIGH: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3));
const SECOND: Duration = Duration::from_secs(1);

fn config(priority: u8) -> Config {
    Config {
        version: Version::V3,
        priority,
        advert_interval: SECOND,
        preempt: true,
        preempt_delay: Duration::ZERO,
        primary_address: LOCAL,
        advert_on_lower_priority: false,
        learned_interval_factor: DEFAULT_LEARNED_INTERVAL_FACTOR,
    }
}

fn instance(config: Config) -> Instance {
    Instance::new(config).expect("valid config")
}

fn started(config: Config, now: Instant) -> Instance {
    let mut instance = instance(config);
    instance.handle(
        Event::Startup {
            vips_present: false,
        },
        now,
    );
    instance
}

/// A non-owner that won the election by its Master_Down_Timer; returns the time it did.
fn master(config: Config, t0: Instant) -> (Instance, Instant) {
    let mut instance = started(config, t0);
    let at = instance.next_deadline().expect("down timer");
    instance.poll_timeout(at);
    assert_eq!(instance.state(), State::Master);
    (instance, at)
}

fn advert(source: IpAddr, priority: u8) -> Event {
    advert_every(source, priority, SECOND)
}

fn advert_every(source: IpAddr, priority: u8, advert_interval: Duration) -> Event {
    Event::AdvertReceived(AdvertSeen {
        source,
        priority,
        advert_interval,
    })
}

fn changed(from: State, to: State, reason: TransitionReason) -> Action {
    Action::StateChanged { from, to, reason }
}

fn down_interval(priority: u8, interval: Duration) -> Duration {
    master_down_interval(Version::V3, priority, interval)
}

// ---- RFC 5798 §6.4.1 Initialize -------------------------------------------------------

#[test]
fn initialize_startup_as_address_owner_goes_master() {
    // RFC 5798 §6.4.1: "If a Startup event is received, then: If the Priority = 255 (i.e.,
    // the router owns the IPvX address associated with the virtual router), then: Send an
    // ADVERTISEMENT; If the protected IPvX address is an IPv4 address, then: For each IPv4
    // address associated with the virtual router, broadcast a gratuitous ARP request ...;
    // Set the Adver_Timer to Advertisement_Interval; Transition to the {Master} state".
    let t0 = Instant::now();
    let mut owner = instance(config(255));
    let actions = owner.handle(
        Event::Startup {
            vips_present: false,
        },
        t0,
    );
    assert_eq!(
        actions,
        vec![
            changed(
                State::Initialize,
                State::Master,
                TransitionReason::AddressOwner
            ),
            Action::SendAdvert { priority: 255 },
            Action::AddVips,
            Action::SendGratuitous,
        ]
    );
    assert_eq!(owner.next_deadline(), Some(t0 + SECOND));
}

#[test]
fn initialize_startup_as_ipv6_address_owner_sends_unsolicited_na() {
    // RFC 5798 §6.4.1: "else // IPv6: For each IPv6 address associated with the virtual
    // router, send an unsolicited ND Neighbor Advertisement with the Router Flag (R) set,
    // the Solicited Flag (S) unset, the Override flag (O) set". SendGratuitous means
    // exactly that for an IPv6 instance.
    let t0 = Instant::now();
    let mut owner = instance(Config {
        primary_address: "fe80::2".parse().expect("addr"),
        ..config(255)
    });
    let actions = owner.handle(
        Event::Startup {
            vips_present: false,
        },
        t0,
    );
    assert!(actions.contains(&Action::SendGratuitous));
    assert_eq!(owner.state(), State::Master);
}

#[test]
fn initialize_startup_as_non_owner_goes_backup() {
    // RFC 5798 §6.4.1: "else // rtr does not own virt addr: Set Master_Adver_Interval to
    // Advertisement_Interval; Set the Master_Down_Timer to Master_Down_Interval;
    // Transition to the {Backup} state".
    let t0 = Instant::now();
    let mut backup = instance(Config {
        advert_interval: Duration::from_millis(500),
        ..config(100)
    });
    let actions = backup.handle(
        Event::Startup {
            vips_present: false,
        },
        t0,
    );
    assert_eq!(
        actions,
        vec![changed(
            State::Initialize,
            State::Backup,
            TransitionReason::Startup
        )]
    );
    assert_eq!(backup.master_adver_interval(), Duration::from_millis(500));
    // 3 × 0.5 s + (256 − 100) × 0.5 s / 256
    assert_eq!(
        backup.next_deadline(),
        Some(
            t0 + Duration::from_millis(1500)
                + Duration::from_micros(304_687)
                + Duration::from_nanos(500)
        )
    );
}

#[test]
fn initialize_ignores_everything_but_startup() {
    let t0 = Instant::now();
    let mut idle = instance(config(100));
    assert!(idle.handle(advert(HIGH, 200), t0).is_empty());
    assert!(idle.handle(Event::Shutdown, t0).is_empty());
    assert!(idle.poll_timeout(t0 + Duration::from_secs(60)).is_empty());
    assert_eq!(idle.next_deadline(), None);
    assert_eq!(idle.state(), State::Initialize);
}

#[test]
fn startup_is_ignored_once_started() {
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    let deadline = backup.next_deadline();
    assert!(
        backup
            .handle(Event::Startup { vips_present: true }, t0 + SECOND)
            .is_empty()
    );
    assert_eq!(backup.next_deadline(), deadline);
}

// ---- RFC 5798 §6.4.2 Backup ----------------------------------------------------------

#[test]
fn backup_shutdown_cancels_master_down_timer_and_goes_initialize() {
    // RFC 5798 §6.4.2: "If a Shutdown event is received, then: Cancel the
    // Master_Down_Timer; Transition to the {Initialize} state".
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    let actions = backup.handle(Event::Shutdown, t0 + SECOND);
    assert_eq!(
        actions,
        vec![changed(
            State::Backup,
            State::Initialize,
            TransitionReason::Shutdown
        )]
    );
    assert_eq!(backup.next_deadline(), None);
    assert!(backup.poll_timeout(t0 + Duration::from_secs(60)).is_empty());
}

#[test]
fn backup_master_down_timer_fires_goes_master() {
    // RFC 5798 §6.4.2: "If the Master_Down_Timer fires, then: Send an ADVERTISEMENT; If the
    // protected IPvX address is an IPv4 address, then: Broadcast a gratuitous ARP request
    // on that interface containing the virtual router MAC address for each IPv4 address
    // associated with the virtual router ...; Set the Adver_Timer to Advertisement_Interval;
    // Transition to the {Master} state".
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    let deadline = t0 + down_interval(100, SECOND);
    assert_eq!(backup.next_deadline(), Some(deadline));
    assert!(
        backup
            .poll_timeout(deadline - Duration::from_nanos(1))
            .is_empty()
    );
    let actions = backup.poll_timeout(deadline);
    assert_eq!(
        actions,
        vec![
            changed(State::Backup, State::Master, TransitionReason::MasterDown),
            Action::SendAdvert { priority: 100 },
            Action::AddVips,
            Action::SendGratuitous,
        ]
    );
    assert_eq!(backup.next_deadline(), Some(deadline + SECOND));
}

#[test]
fn backup_priority_zero_advert_sets_master_down_timer_to_skew_time() {
    // RFC 5798 §6.4.2: "If an ADVERTISEMENT is received, then: If the Priority in the
    // ADVERTISEMENT is zero, then: Set the Master_Down_Timer to Skew_Time".
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    let now = t0 + SECOND;
    assert!(backup.handle(advert(HIGH, 0), now).is_empty());
    let skew = skew_time(Version::V3, 100, SECOND);
    assert_eq!(backup.next_deadline(), Some(now + skew));
    let actions = backup.poll_timeout(now + skew);
    assert_eq!(
        actions[0],
        changed(
            State::Backup,
            State::Master,
            TransitionReason::MasterResigned
        )
    );
}

#[test]
fn backup_without_preempt_accepts_a_lower_priority_master() {
    // RFC 5798 §6.4.2: "If Preempt_Mode is False, or if the Priority in the ADVERTISEMENT
    // is greater than or equal to the local Priority, then: ... Reset the Master_Down_Timer
    // to Master_Down_Interval".
    let t0 = Instant::now();
    let mut backup = started(
        Config {
            preempt: false,
            ..config(200)
        },
        t0,
    );
    let now = t0 + Duration::from_secs(3);
    assert!(backup.handle(advert(LOW, 50), now).is_empty());
    assert_eq!(
        backup.next_deadline(),
        Some(now + down_interval(200, SECOND))
    );
}

#[test]
fn backup_accepts_a_higher_priority_master_and_learns_its_interval() {
    // RFC 5798 §6.4.2: "if the Priority in the ADVERTISEMENT is greater than or equal to
    // the local Priority, then: Set Master_Adver_Interval to Adver Interval contained in
    // the ADVERTISEMENT; Recompute the Master_Down_Interval; Reset the Master_Down_Timer
    // to Master_Down_Interval".
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    let now = t0 + Duration::from_secs(2);
    let learned = Duration::from_millis(2500);
    assert!(
        backup
            .handle(advert_every(HIGH, 200, learned), now)
            .is_empty()
    );
    assert_eq!(backup.master_adver_interval(), learned);
    assert_eq!(
        backup.next_deadline(),
        Some(now + down_interval(100, learned))
    );
}

#[test]
fn backup_accepts_an_equal_priority_master() {
    // RFC 5798 §6.4.2: "... greater than or equal to the local Priority" — a Backup never
    // breaks ties by address; only a Master does (§6.4.3).
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    let now = t0 + Duration::from_secs(3);
    backup.handle(advert(LOW, 100), now);
    assert_eq!(
        backup.next_deadline(),
        Some(now + down_interval(100, SECOND))
    );
}

#[test]
fn backup_with_preempt_discards_a_lower_priority_master() {
    // RFC 5798 §6.4.2: "else: Discard the ADVERTISEMENT" — the Master_Down_Timer keeps
    // running, so the higher-priority backup takes over when it fires.
    let t0 = Instant::now();
    let mut backup = started(config(200), t0);
    let deadline = backup.next_deadline();
    assert!(
        backup
            .handle(advert_every(LOW, 100, Duration::from_secs(3)), t0 + SECOND)
            .is_empty()
    );
    assert_eq!(backup.next_deadline(), deadline);
    assert_eq!(backup.master_adver_interval(), SECOND, "nothing learned");
    let actions = backup.poll_timeout(deadline.expect("timer"));
    assert_eq!(
        actions[0],
        changed(State::Backup, State::Master, TransitionReason::MasterDown)
    );
}

#[test]
fn v2_backup_resets_the_timer_without_learning_the_interval() {
    // RFC 3768 §6.4.2: "If Preempt_Mode is False, or If the Priority in the ADVERTISEMENT
    // is greater than or equal to the local Priority, then: Reset the Master_Down_Timer to
    // Master_Down_Interval" — VRRPv2 has no Master_Adver_Interval, and its Skew_Time is
    // ( (256 - Priority) / 256 ) seconds whatever the interval.
    let t0 = Instant::now();
    let mut backup = started(
        Config {
            version: Version::V2,
            advert_interval: Duration::from_secs(2),
            ..config(100)
        },
        t0,
    );
    let now = t0 + SECOND;
    backup.handle(advert_every(HIGH, 200, Duration::from_secs(5)), now);
    assert_eq!(backup.master_adver_interval(), Duration::from_secs(2));
    assert_eq!(
        backup.next_deadline(),
        Some(now + Duration::from_secs(6) + Duration::from_micros(609_375))
    );
}

// ---- RFC 5798 §6.4.3 Master ----------------------------------------------------------

#[test]
fn master_shutdown_sends_priority_zero_and_goes_initialize() {
    // RFC 5798 §6.4.3: "If a Shutdown event is received, then: Cancel the Adver_Timer; Send
    // an ADVERTISEMENT with Priority = 0; Transition to the {Initialize} state".
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let actions = master.handle(Event::Shutdown, at + Duration::from_millis(300));
    assert_eq!(
        actions,
        vec![
            changed(State::Master, State::Initialize, TransitionReason::Shutdown),
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
        ]
    );
    assert_eq!(master.next_deadline(), None);
}

#[test]
fn master_adver_timer_fires_sends_and_resets() {
    // RFC 5798 §6.4.3: "If the Adver_Timer fires, then: Send an ADVERTISEMENT; Reset the
    // Adver_Timer to Advertisement_Interval".
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let fire = at + SECOND;
    assert!(
        master
            .poll_timeout(fire - Duration::from_nanos(1))
            .is_empty()
    );
    assert_eq!(
        master.poll_timeout(fire),
        vec![Action::SendAdvert { priority: 100 }]
    );
    assert_eq!(master.next_deadline(), Some(fire + SECOND));
    // A late poll resets from the time it actually ran.
    let late = fire + SECOND + Duration::from_millis(40);
    assert_eq!(
        master.poll_timeout(late),
        vec![Action::SendAdvert { priority: 100 }]
    );
    assert_eq!(master.next_deadline(), Some(late + SECOND));
}

#[test]
fn master_answers_a_priority_zero_advert() {
    // RFC 5798 §6.4.3: "If an ADVERTISEMENT is received, then: If the Priority in the
    // ADVERTISEMENT is zero, then: Send an ADVERTISEMENT; Reset the Adver_Timer to
    // Advertisement_Interval".
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let now = at + Duration::from_millis(700);
    assert_eq!(
        master.handle(advert(HIGH, 0), now),
        vec![Action::SendAdvert { priority: 100 }]
    );
    assert_eq!(master.next_deadline(), Some(now + SECOND));
    assert_eq!(master.state(), State::Master);
}

#[test]
fn master_yields_to_a_higher_priority_advert() {
    // RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is greater than the local
    // Priority, ... then: Cancel Adver_Timer; Set Master_Adver_Interval to Adver Interval
    // contained in the ADVERTISEMENT; Recompute the Skew_Time; Recompute the
    // Master_Down_Interval; Set Master_Down_Timer to Master_Down_Interval; Transition to
    // the {Backup} state".
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let now = at + Duration::from_millis(200);
    let theirs = Duration::from_secs(3);
    let actions = master.handle(advert_every(HIGH, 101, theirs), now);
    assert_eq!(
        actions,
        vec![
            changed(
                State::Master,
                State::Backup,
                TransitionReason::HigherPriorityMaster
            ),
            Action::RemoveVips,
        ]
    );
    assert_eq!(master.master_adver_interval(), theirs);
    assert_eq!(
        master.next_deadline(),
        Some(now + down_interval(100, theirs))
    );
    assert!(!master.holds_vips());
}

#[test]
fn master_yields_to_an_equal_priority_advert_from_a_higher_address() {
    // RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is equal to the local
    // Priority and the primary IPvX Address of the sender is greater than the local
    // primary IPvX Address, then: ... Transition to the {Backup} state".
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let actions = master.handle(advert(HIGH, 100), at);
    assert_eq!(
        actions,
        vec![
            changed(
                State::Master,
                State::Backup,
                TransitionReason::PreferredMaster
            ),
            Action::RemoveVips,
        ]
    );
}

#[test]
fn master_keeps_mastership_against_an_equal_priority_advert_from_a_lower_address() {
    // RFC 5798 §6.4.3: "else // new Master logic: Discard ADVERTISEMENT" when the sender's
    // primary address is not greater.
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    assert!(master.handle(advert(LOW, 100), at).is_empty());
    assert_eq!(master.state(), State::Master);
}

#[test]
fn equal_priority_ipv6_tie_break_compares_addresses_as_unsigned_integers() {
    // RFC 5798 §6.4.3 tie-break; RFC 9568 clarifies "an unsigned integer comparison of the
    // IPvX addresses in network byte order": fe80::8000 > fe80::ff.
    let t0 = Instant::now();
    let local: IpAddr = "fe80::ff".parse().expect("addr");
    let (mut master, at) = master(
        Config {
            primary_address: local,
            ..config(100)
        },
        t0,
    );
    let higher: IpAddr = "fe80::8000".parse().expect("addr");
    let lower: IpAddr = "fe80::fe".parse().expect("addr");
    assert!(master.handle(advert(lower, 100), at).is_empty());
    let actions = master.handle(advert(higher, 100), at);
    assert_eq!(
        actions[0],
        changed(
            State::Master,
            State::Backup,
            TransitionReason::PreferredMaster
        )
    );
}

#[test]
fn master_discards_a_lower_priority_advert() {
    // RFC 5798 §6.4.3: "else // new Master logic: Discard ADVERTISEMENT".
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let deadline = master.next_deadline();
    assert!(master.handle(advert(HIGH, 99), at).is_empty());
    assert_eq!(master.next_deadline(), deadline);
    assert_eq!(master.state(), State::Master);
}

#[test]
fn master_may_answer_a_lower_priority_advert_at_once() {
    // RFC 9568 §6.4.3 adds to the discard: "Send an ADVERTISEMENT immediately to assert the
    // Active state to the sending VRRP Router"; keepalived does the same by default, and
    // sends gratuitous ARPs too, since the sender may hold the clients' neighbour entries.
    let t0 = Instant::now();
    let (mut master, at) = master(
        Config {
            advert_on_lower_priority: true,
            ..config(100)
        },
        t0,
    );
    let now = at + Duration::from_millis(300);
    assert_eq!(
        master.handle(advert(HIGH, 99), now),
        vec![Action::SendAdvert { priority: 100 }, Action::SendGratuitous]
    );
    assert_eq!(master.next_deadline(), Some(now + SECOND));
}

#[test]
fn v2_master_yields_using_its_own_interval() {
    // RFC 3768 §6.4.3: "If the Priority in the ADVERTISEMENT is greater than the local
    // Priority, ... then: Cancel Adver_Timer; Set Master_Down_Timer to
    // Master_Down_Interval; Transition to the {Backup} state".
    let t0 = Instant::now();
    let (mut master, at) = master(
        Config {
            version: Version::V2,
            advert_interval: Duration::from_secs(2),
            ..config(100)
        },
        t0,
    );
    master.handle(advert_every(HIGH, 200, Duration::from_secs(2)), at);
    assert_eq!(master.state(), State::Backup);
    assert_eq!(
        master.next_deadline(),
        Some(at + master_down_interval(Version::V2, 100, Duration::from_secs(2)))
    );
}

// ---- Configuration -------------------------------------------------------------------

#[test]
fn invalid_configurations_are_refused() {
    assert_eq!(
        Instance::new(config(0)).err(),
        Some(ConfigError::ZeroPriority)
    );
    assert!(matches!(
        Instance::new(Config {
            advert_interval: Duration::from_millis(5),
            ..config(100)
        }),
        Err(ConfigError::Interval(_))
    ));
    assert!(matches!(
        Instance::new(Config {
            version: Version::V2,
            advert_interval: Duration::from_millis(500),
            ..config(100)
        }),
        Err(ConfigError::Interval(_))
    ));
    assert_eq!(
        Instance::new(Config {
            version: Version::V2,
            primary_address: "fe80::1".parse().expect("addr"),
            ..config(100)
        })
        .err(),
        Some(ConfigError::V2RequiresIpv4)
    );
}

#[test]
fn labels_are_stable() {
    assert_eq!(State::Fault.as_str(), "fault");
    assert_eq!(TransitionReason::MasterResigned.as_str(), "master_resigned");
    assert_eq!(
        TransitionReason::PreferredMaster.as_str(),
        "preferred_master"
    );
}

// ---- Preempt delay (keepalived preempt_delay) -----------------------------------------

#[test]
fn preempt_delay_holds_off_preemption_after_startup() {
    let t0 = Instant::now();
    let delay = Duration::from_secs(10);
    let mut backup = started(
        Config {
            preempt_delay: delay,
            ..config(200)
        },
        t0,
    );
    // Within the delay a lower-priority master is accepted as if preemption were off.
    let mut now = t0;
    while now < t0 + delay {
        now += SECOND;
        if now >= t0 + delay {
            break;
        }
        backup.handle(advert(LOW, 100), now);
        assert_eq!(
            backup.next_deadline(),
            Some(now + down_interval(200, SECOND))
        );
        assert!(backup.poll_timeout(now).is_empty());
    }
    // Once it has passed, the adverts are discarded and the down timer takes over.
    let last_reset = backup.next_deadline();
    backup.handle(advert(LOW, 100), t0 + delay);
    assert_eq!(backup.next_deadline(), last_reset);
    let actions = backup.poll_timeout(last_reset.expect("timer"));
    assert_eq!(
        actions[0],
        changed(State::Backup, State::Master, TransitionReason::MasterDown)
    );
}

#[test]
fn preempt_delay_clock_starts_at_the_first_lower_priority_advert_when_none_runs() {
    // After a fault the router re-enters Backup without a startup; keepalived then starts
    // the delay when it first sees a lower-priority master.
    let t0 = Instant::now();
    let delay = Duration::from_secs(5);
    let mut backup = started(
        Config {
            preempt_delay: delay,
            ..config(200)
        },
        t0,
    );
    backup.handle(Event::FaultDetected, t0);
    backup.handle(Event::FaultCleared, t0 + Duration::from_secs(60));
    let first = t0 + Duration::from_secs(61);
    backup.handle(advert(LOW, 100), first);
    assert_eq!(
        backup.next_deadline(),
        Some(first + down_interval(200, SECOND))
    );
    let after = first + delay;
    let before = backup.next_deadline();
    backup.handle(advert(LOW, 100), after);
    assert_eq!(backup.next_deadline(), before, "discarded after the delay");
}

// ---- Tracked priority ----------------------------------------------------------------

#[test]
fn tracked_weight_changes_the_advertised_priority_at_once() {
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let now = at + Duration::from_millis(100);
    assert_eq!(
        master.handle(
            Event::PriorityChanged {
                tracked_weight: -60
            },
            now
        ),
        vec![Action::SendAdvert { priority: 40 }]
    );
    assert_eq!(master.priority(), 40);
    assert_eq!(master.next_deadline(), Some(now + SECOND));
    // Unchanged effective priority: nothing to tell.
    assert!(
        master
            .handle(
                Event::PriorityChanged {
                    tracked_weight: -60
                },
                now
            )
            .is_empty()
    );
    // Clamped to 1..=254.
    master.handle(
        Event::PriorityChanged {
            tracked_weight: -1000,
        },
        now,
    );
    assert_eq!(master.priority(), 1);
    master.handle(
        Event::PriorityChanged {
            tracked_weight: 1000,
        },
        now,
    );
    assert_eq!(master.priority(), 254);
}

#[test]
fn tracked_weight_never_changes_an_address_owner() {
    let t0 = Instant::now();
    let mut owner = started(config(255), t0);
    assert!(
        owner
            .handle(
                Event::PriorityChanged {
                    tracked_weight: -100
                },
                t0
            )
            .is_empty()
    );
    assert_eq!(owner.priority(), 255);
}

#[test]
fn a_master_whose_tracked_priority_drops_is_preempted_by_the_backup() {
    let t0 = Instant::now();
    let mut lan = Lan::new(vec![config_at(150, LOW), config_at(100, HIGH)], t0);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Master, State::Backup]);
    lan.event(
        0,
        Event::PriorityChanged {
            tracked_weight: -100,
        },
    );
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Backup, State::Master]);
}

// ---- Fault ---------------------------------------------------------------------------

#[test]
fn master_fault_resigns_and_drops_the_addresses() {
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let actions = master.handle(Event::FaultDetected, at);
    assert_eq!(
        actions,
        vec![
            changed(State::Master, State::Fault, TransitionReason::Fault),
            Action::SendAdvert { priority: 0 },
            Action::RemoveVips,
        ]
    );
    assert_eq!(master.next_deadline(), None);
    assert!(
        master.handle(Event::FaultDetected, at).is_empty(),
        "level-triggered"
    );
}

#[test]
fn fault_ignores_adverts_and_timers() {
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    assert_eq!(
        backup.handle(Event::FaultDetected, t0),
        vec![changed(
            State::Backup,
            State::Fault,
            TransitionReason::Fault
        )]
    );
    assert!(backup.handle(advert(HIGH, 0), t0).is_empty());
    assert!(backup.poll_timeout(t0 + Duration::from_secs(60)).is_empty());
    assert_eq!(backup.state(), State::Fault);
}

#[test]
fn fault_cleared_rejoins_as_backup_or_as_owner() {
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    backup.handle(Event::FaultDetected, t0);
    let now = t0 + SECOND;
    assert_eq!(
        backup.handle(Event::FaultCleared, now),
        vec![changed(
            State::Fault,
            State::Backup,
            TransitionReason::FaultCleared
        )]
    );
    assert_eq!(
        backup.next_deadline(),
        Some(now + down_interval(100, SECOND))
    );

    let mut owner = started(config(255), t0);
    owner.handle(Event::FaultDetected, t0);
    let actions = owner.handle(Event::FaultCleared, now);
    assert_eq!(
        actions[0],
        changed(State::Fault, State::Master, TransitionReason::FaultCleared)
    );
}

#[test]
fn startup_while_faulted_goes_to_fault_and_clears_stale_addresses() {
    let t0 = Instant::now();
    let mut instance = instance(config(100));
    assert!(instance.handle(Event::FaultDetected, t0).is_empty());
    let actions = instance.handle(Event::Startup { vips_present: true }, t0);
    assert_eq!(
        actions,
        vec![
            changed(State::Initialize, State::Fault, TransitionReason::Fault),
            Action::RemoveVips,
        ]
    );
}

#[test]
fn shutdown_from_fault_goes_initialize() {
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    backup.handle(Event::FaultDetected, t0);
    assert_eq!(
        backup.handle(Event::Shutdown, t0),
        vec![changed(
            State::Fault,
            State::Initialize,
            TransitionReason::Shutdown
        )]
    );
}

// ---- Restart with addresses still configured -----------------------------------------

#[test]
fn restarted_backup_keeps_found_addresses_until_it_hears_a_master() {
    let t0 = Instant::now();
    let mut backup = instance(config(100));
    backup.handle(Event::Startup { vips_present: true }, t0);
    assert_eq!(backup.state(), State::Backup);
    assert!(backup.holds_vips());
    // A resigning master is not "another master": keep them, we may take over next.
    assert!(backup.handle(advert(HIGH, 0), t0 + SECOND).is_empty());
    assert!(backup.holds_vips());
    let mut backup = instance(config(100));
    backup.handle(Event::Startup { vips_present: true }, t0);
    assert_eq!(
        backup.handle(advert(HIGH, 200), t0 + SECOND),
        vec![Action::RemoveVips]
    );
    assert!(!backup.holds_vips());
    assert!(backup.handle(advert(HIGH, 200), t0 + SECOND * 2).is_empty());
}

#[test]
fn restarted_backup_that_hears_nobody_becomes_master_keeping_its_addresses() {
    let t0 = Instant::now();
    let mut backup = instance(config(100));
    backup.handle(Event::Startup { vips_present: true }, t0);
    let actions = backup.poll_timeout(backup.next_deadline().expect("timer"));
    assert!(!actions.contains(&Action::RemoveVips));
    assert!(actions.contains(&Action::AddVips));
    assert_eq!(backup.state(), State::Master);
}

#[test]
fn restarted_backup_drops_found_addresses_on_shutdown() {
    let t0 = Instant::now();
    let mut backup = instance(config(100));
    backup.handle(Event::Startup { vips_present: true }, t0);
    assert_eq!(
        backup.handle(Event::Shutdown, t0),
        vec![
            changed(State::Backup, State::Initialize, TransitionReason::Shutdown),
            Action::RemoveVips,
        ]
    );
}

// ---- Handover (make-before-break) ----------------------------------------------------

#[test]
fn handover_announces_priority_zero_but_keeps_the_addresses() {
    let t0 = Instant::now();
    let (mut master, at) = master(config(200), t0);
    let actions = master.handle(Event::Handover, at);
    assert_eq!(
        actions,
        vec![
            changed(State::Master, State::Backup, TransitionReason::Handover),
            Action::SendAdvert { priority: 0 },
        ]
    );
    assert!(master.holds_vips());
    assert!(master.is_standing_down());
    assert_eq!(master.next_deadline(), Some(at + down_interval(1, SECOND)));
    // The new (lower-priority) master's first advert: now drop, and do not preempt it.
    let heard = at + Duration::from_millis(300);
    assert_eq!(
        master.handle(advert(LOW, 100), heard),
        vec![Action::RemoveVips]
    );
    assert!(!master.holds_vips());
    assert_eq!(
        master.next_deadline(),
        Some(heard + down_interval(200, SECOND))
    );
    // Reclaim lifts the hold-off: the next lower-priority advert is discarded again.
    master.handle(Event::Reclaim, heard);
    let before = master.next_deadline();
    master.handle(advert(LOW, 100), heard + SECOND);
    assert_eq!(master.next_deadline(), before);
}

#[test]
fn handover_drops_the_addresses_when_nobody_takes_over_in_time() {
    let t0 = Instant::now();
    let (mut master, at) = master(config(200), t0);
    master.handle(Event::Handover, at);
    let bound = at + down_interval(1, SECOND);
    assert!(
        master
            .poll_timeout(bound - Duration::from_nanos(1))
            .is_empty()
    );
    assert_eq!(master.poll_timeout(bound), vec![Action::RemoveVips]);
    assert_eq!(master.state(), State::Backup);
    // It is still a candidate: with no other router it takes over again later.
    let deadline = master.next_deadline().expect("down timer");
    assert_eq!(deadline, bound + down_interval(200, SECOND));
    let actions = master.poll_timeout(deadline);
    assert_eq!(
        actions[0],
        changed(State::Backup, State::Master, TransitionReason::MasterDown)
    );
    assert!(!master.is_standing_down());
}

#[test]
fn own_looped_back_adverts_are_ignored() {
    let t0 = Instant::now();
    let (mut master, at) = master(config(200), t0);
    master.handle(Event::Handover, at);
    let deadline = master.next_deadline();
    // Our own priority-0 advert coming back must not start a Skew_Time takeover.
    assert!(master.handle(advert(LOCAL, 0), at).is_empty());
    assert!(master.handle(advert(LOCAL, 200), at).is_empty());
    assert_eq!(master.next_deadline(), deadline);
    assert!(master.holds_vips());
}

#[test]
fn handover_outside_master_only_holds_off_preemption() {
    let t0 = Instant::now();
    let mut backup = started(config(200), t0);
    assert!(backup.handle(Event::Handover, t0).is_empty());
    let now = t0 + SECOND;
    backup.handle(advert(LOW, 100), now);
    assert_eq!(
        backup.next_deadline(),
        Some(now + down_interval(200, SECOND))
    );
}

// ---- Sync group directives -----------------------------------------------------------

#[test]
fn sync_directives_drive_the_member() {
    let t0 = Instant::now();
    let (mut member, at) = master(config(100), t0);
    // Group fault is tracked apart from the member's own faults.
    assert_eq!(
        member.handle(Event::Sync(SyncDirective::EnterFault), at)[0],
        changed(State::Master, State::Fault, TransitionReason::Fault)
    );
    member.handle(Event::FaultDetected, at);
    assert!(
        member
            .handle(Event::Sync(SyncDirective::LeaveFault), at)
            .is_empty()
    );
    assert_eq!(
        member.handle(Event::FaultCleared, at),
        vec![changed(
            State::Fault,
            State::Backup,
            TransitionReason::FaultCleared
        )]
    );
    assert_eq!(
        member.handle(Event::Sync(SyncDirective::TakeOver), at)[0],
        changed(State::Backup, State::Master, TransitionReason::SyncGroup)
    );
    assert_eq!(
        member.handle(Event::Sync(SyncDirective::StepDown), at),
        vec![
            changed(State::Master, State::Backup, TransitionReason::SyncGroup),
            Action::SendAdvert { priority: 0 },
        ]
    );
    assert!(
        !member.is_standing_down(),
        "a sync step-down is no operator handover"
    );
}

// ---- Two routers on one simulated LAN ------------------------------------------------

fn config_at(priority: u8, primary_address: IpAddr) -> Config {
    Config {
        primary_address,
        ..config(priority)
    }
}

/// Routers on one segment with instant delivery and a virtual clock.
struct Lan {
    routers: Vec<Instance>,
    now: Instant,
    connected: bool,
    /// Smallest number of routers holding the addresses seen since the last reset.
    fewest_holders: usize,
    most_holders: usize,
}

impl Lan {
    fn new(configs: Vec<Config>, now: Instant) -> Self {
        let routers: Vec<Instance> = configs.into_iter().map(instance).collect();
        let mut lan = Self {
            routers,
            now,
            connected: true,
            fewest_holders: usize::MAX,
            most_holders: 0,
        };
        for index in 0..lan.routers.len() {
            lan.event(
                index,
                Event::Startup {
                    vips_present: false,
                },
            );
        }
        lan
    }

    fn states(&self) -> Vec<State> {
        self.routers.iter().map(Instance::state).collect()
    }

    fn holders(&self) -> usize {
        self.routers
            .iter()
            .filter(|router| router.holds_vips())
            .count()
    }

    fn reset_holder_watch(&mut self) {
        self.fewest_holders = self.holders();
        self.most_holders = self.holders();
    }

    fn event(&mut self, index: usize, event: Event) {
        let actions = self.routers[index].handle(event, self.now);
        self.deliver(index, actions);
    }

    fn deliver(&mut self, from: usize, actions: Vec<Action>) {
        let mut queue: VecDeque<(usize, Action)> =
            actions.into_iter().map(|action| (from, action)).collect();
        while let Some((sender, action)) = queue.pop_front() {
            if let Action::SendAdvert { priority } = action
                && self.connected
            {
                let seen = AdvertSeen {
                    source: self.routers[sender].config().primary_address,
                    priority,
                    advert_interval: self.routers[sender].config().advert_interval,
                };
                for receiver in 0..self.routers.len() {
                    if receiver != sender {
                        let replies =
                            self.routers[receiver].handle(Event::AdvertReceived(seen), self.now);
                        queue.extend(replies.into_iter().map(|reply| (receiver, reply)));
                    }
                }
            }
            let holders = self.holders();
            self.fewest_holders = self.fewest_holders.min(holders);
            self.most_holders = self.most_holders.max(holders);
        }
    }

    fn run_for(&mut self, span: Duration) {
        let end = self.now + span;
        while let Some(next) = self
            .routers
            .iter()
            .filter_map(Instance::next_deadline)
            .min()
            .filter(|next| *next <= end)
        {
            self.now = next;
            for index in 0..self.routers.len() {
                if self.routers[index]
                    .next_deadline()
                    .is_some_and(|deadline| deadline <= next)
                {
                    let actions = self.routers[index].poll_timeout(next);
                    self.deliver(index, actions);
                }
            }
        }
        self.now = end;
    }
}

#[test]
fn the_higher_priority_router_wins_the_first_election() {
    let t0 = Instant::now();
    let mut lan = Lan::new(vec![config_at(100, LOW), config_at(200, HIGH)], t0);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Backup, State::Master]);
}

#[test]
fn backup_takes_over_within_master_down_interval_when_the_master_dies() {
    let t0 = Instant::now();
    let mut lan = Lan::new(vec![config_at(200, LOW), config_at(100, HIGH)], t0);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Master, State::Backup]);
    // The master vanishes without a word: the backup waits out Master_Down_Interval.
    lan.routers[0] = instance(config_at(200, LOW));
    let died = lan.now;
    lan.run_for(down_interval(100, SECOND));
    assert_eq!(lan.routers[1].state(), State::Master);
    assert!(lan.now - died <= down_interval(100, SECOND));
}

#[test]
fn priority_zero_shutdown_hands_over_within_skew_time() {
    // RFC 5798 §6.4.3 Shutdown sends priority 0; RFC 5798 §6.4.2 makes the backup set its
    // Master_Down_Timer to Skew_Time, well under one advert interval.
    let t0 = Instant::now();
    let mut lan = Lan::new(vec![config_at(200, LOW), config_at(100, HIGH)], t0);
    lan.run_for(Duration::from_secs(10));
    lan.event(0, Event::Shutdown);
    lan.run_for(skew_time(Version::V3, 100, SECOND));
    assert_eq!(lan.states(), vec![State::Initialize, State::Master]);
}

#[test]
fn split_brain_heals_to_exactly_one_master() {
    let t0 = Instant::now();
    for (low_priority, high_priority) in [(100, 200), (150, 150)] {
        let mut lan = Lan::new(
            vec![config_at(low_priority, LOW), config_at(high_priority, HIGH)],
            t0,
        );
        // Partitioned: both time out and become master.
        lan.connected = false;
        lan.run_for(Duration::from_secs(10));
        assert_eq!(lan.states(), vec![State::Master, State::Master]);
        // Healed: the first advert either way settles it, and it stays settled.
        lan.connected = true;
        lan.run_for(Duration::from_millis(1100));
        assert_eq!(lan.states(), vec![State::Backup, State::Master]);
        lan.reset_holder_watch();
        lan.run_for(Duration::from_secs(30));
        assert_eq!(lan.states(), vec![State::Backup, State::Master]);
        assert_eq!(lan.most_holders, 1);
    }
}

#[test]
fn preempting_backup_takes_back_mastership_after_a_restart() {
    let t0 = Instant::now();
    let mut lan = Lan::new(vec![config_at(200, LOW), config_at(100, HIGH)], t0);
    lan.run_for(Duration::from_secs(10));
    lan.event(0, Event::Shutdown);
    lan.run_for(Duration::from_secs(5));
    assert_eq!(lan.states(), vec![State::Initialize, State::Master]);
    lan.event(
        0,
        Event::Startup {
            vips_present: false,
        },
    );
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Master, State::Backup]);
}

#[test]
fn non_preempting_backup_leaves_a_working_master_alone() {
    let t0 = Instant::now();
    let mut lan = Lan::new(
        vec![
            Config {
                preempt: false,
                ..config_at(200, LOW)
            },
            config_at(100, HIGH),
        ],
        t0,
    );
    // Start the low-priority router alone so it is master first.
    lan.routers[0] = instance(Config {
        preempt: false,
        ..config_at(200, LOW)
    });
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Initialize, State::Master]);
    lan.event(
        0,
        Event::Startup {
            vips_present: false,
        },
    );
    lan.run_for(Duration::from_secs(30));
    assert_eq!(lan.states(), vec![State::Backup, State::Master]);
}

#[test]
fn handover_is_make_before_break() {
    let t0 = Instant::now();
    let mut lan = Lan::new(vec![config_at(200, LOW), config_at(100, HIGH)], t0);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Master, State::Backup]);
    lan.reset_holder_watch();
    lan.event(0, Event::Handover);
    lan.run_for(Duration::from_secs(30));
    assert_eq!(lan.states(), vec![State::Backup, State::Master]);
    // The addresses were never unowned, and the overlap ended with the new master's advert.
    assert_eq!(lan.fewest_holders, 1);
    assert_eq!(lan.holders(), 1);
    // The old master does not preempt back while standing down; after Reclaim it does.
    lan.event(0, Event::Reclaim);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Master, State::Backup]);
}

// ---- Reload in place ------------------------------------------------------------------

#[test]
fn reconfigured_master_advertises_a_changed_priority_at_once_and_stays_master() {
    // A reload lowering a master's priority is a priority change like a tracked one: the
    // new priority goes out at once (RFC 5798 §6.4.3 Master sends its priority in every
    // ADVERTISEMENT), no state change here; the backup's §6.4.2 rules decide the rest.
    let t0 = Instant::now();
    let (mut m, at) = master(config(150), t0);
    let now = at + Duration::from_millis(300);
    let actions = m
        .reconfigure(50, true, Duration::ZERO, now)
        .expect("in place");
    assert_eq!(actions, vec![Action::SendAdvert { priority: 50 }]);
    assert_eq!(m.state(), State::Master);
    assert_eq!(m.priority(), 50);
    assert_eq!(m.next_deadline(), Some(now + SECOND));
    // The same priority again (e.g. only preempt changed): nothing to send.
    assert!(
        m.reconfigure(50, false, Duration::ZERO, now)
            .expect("in place")
            .is_empty()
    );
    assert!(!m.config().preempt);
    // A higher-priority advert now makes it step down (§6.4.3).
    let actions = m.handle(advert(LOW, 100), now);
    assert_eq!(
        actions[0],
        changed(
            State::Master,
            State::Backup,
            TransitionReason::HigherPriorityMaster
        )
    );
}

#[test]
fn reconfigured_backup_that_now_outranks_its_master_preempts_at_master_down() {
    // RFC 5798 §6.4.2: with Preempt_Mode and a priority above the master's, the backup
    // discards the master's adverts ("else: Discard the ADVERTISEMENT"), so its
    // Master_Down_Timer fires and it takes over. Without Preempt_Mode it would not.
    let t0 = Instant::now();
    let mut b = started(config(100), t0);
    let heard = t0 + SECOND;
    b.handle(advert(HIGH, 150), heard);
    let deadline = b.next_deadline().expect("down timer");
    assert!(
        b.reconfigure(200, true, Duration::ZERO, heard)
            .expect("in place")
            .is_empty()
    );
    assert_eq!(b.state(), State::Backup);
    assert!(b.handle(advert(HIGH, 150), heard + SECOND).is_empty());
    assert_eq!(
        b.next_deadline(),
        Some(deadline),
        "the advert was discarded"
    );
    let actions = b.poll_timeout(deadline);
    assert_eq!(
        actions[0],
        changed(State::Backup, State::Master, TransitionReason::MasterDown)
    );

    // The same without Preempt_Mode: the master's advert resets the timer.
    let mut b = started(config(100), t0);
    b.handle(advert(HIGH, 150), heard);
    b.reconfigure(200, false, Duration::ZERO, heard)
        .expect("in place");
    let later = heard + SECOND;
    b.handle(advert(HIGH, 150), later);
    assert_eq!(b.next_deadline(), Some(later + down_interval(200, SECOND)));
}

#[test]
fn reconfigure_refuses_priority_zero_and_ownership_changes() {
    // RFC 5798 §5.2.4: 0 is the resignation priority; 255 marks the address owner, which
    // starts as master (§6.4.1) and accepts no adverts (§7.1): a fresh machine's job.
    let t0 = Instant::now();
    let (mut m, at) = master(config(150), t0);
    assert_eq!(
        m.reconfigure(0, true, Duration::ZERO, at),
        Err(ConfigError::ZeroPriority)
    );
    assert_eq!(
        m.reconfigure(255, true, Duration::ZERO, at),
        Err(ConfigError::OwnerChange)
    );
    let mut owner = started(config(255), t0);
    assert_eq!(
        owner.reconfigure(254, true, Duration::ZERO, t0),
        Err(ConfigError::OwnerChange)
    );
    assert_eq!(m.priority(), 150, "a refused change changes nothing");
}

#[test]
fn reconfigured_preempt_delay_restarts_a_running_hold_off() {
    let t0 = Instant::now();
    let mut b = started(
        Config {
            preempt_delay: Duration::from_secs(60),
            ..config(200)
        },
        t0,
    );
    let now = t0 + SECOND;
    b.reconfigure(200, true, Duration::from_secs(2), now)
        .expect("in place");
    let deadline = b.next_deadline().expect("down timer");
    // Within the new delay a lower-priority master's advert still resets the timer...
    b.handle(advert(LOW, 100), now + SECOND);
    assert_ne!(b.next_deadline(), Some(deadline));
    // ...after it, it is discarded and the backup preempts (RFC 5798 §6.4.2).
    let after = now + Duration::from_secs(3);
    b.handle(advert(LOW, 100), after);
    let deadline = b.next_deadline().expect("down timer");
    assert!(b.handle(advert(LOW, 100), after + SECOND).is_empty());
    assert_eq!(b.next_deadline(), Some(deadline));
}

// ---- Bounds on what received (possibly forged) adverts can make a router do ----------

const FORGER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
const SLOWEST_V3: Duration = Duration::from_millis(40_950);

#[test]
fn backup_bounds_the_learned_interval() {
    // RFC 5798 §6.4.2: "Set Master_Adver_Interval to Adver Interval contained in the
    // ADVERTISEMENT; Recompute the Master_Down_Interval" — within
    // learned_interval_factor times our own interval, up and down.
    let t0 = Instant::now();
    let mut backup = started(config(100), t0);
    backup.handle(advert_every(HIGH, 200, SLOWEST_V3), t0);
    assert_eq!(backup.master_adver_interval(), SECOND * 3);
    assert_eq!(
        backup.next_deadline(),
        Some(t0 + down_interval(100, SECOND * 3))
    );
    // Nor faster than a third of ours: 3 x 333 ms + Skew_Time outlasts our interval.
    let mut fast = started(config(100), t0);
    fast.handle(advert_every(HIGH, 200, Duration::from_millis(10)), t0);
    assert_eq!(fast.master_adver_interval(), SECOND / 3);
    assert!(fast.next_deadline() > Some(t0 + SECOND));
    // A factor of 1: never slower than ourselves.
    let mut strict = started(
        Config {
            learned_interval_factor: 1,
            ..config(100)
        },
        t0,
    );
    strict.handle(advert_every(HIGH, 200, SLOWEST_V3), t0);
    assert_eq!(strict.master_adver_interval(), SECOND);
}

#[test]
fn a_master_stepping_down_for_a_forged_slow_advert_is_back_within_twelve_intervals() {
    // RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is greater than the local
    // Priority, ... Set Master_Adver_Interval to Adver Interval contained in the
    // ADVERTISEMENT; ... Set Master_Down_Timer to Master_Down_Interval; Transition to the
    // {Backup} state". One forged advert (priority 255, Max Adver Int 4095 cs) and
    // nothing after it: the capped interval brings the master back within 12 intervals
    // instead of 3 x 40.95 s.
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    master.handle(advert_every(FORGER, 255, SLOWEST_V3), at);
    assert_eq!(master.state(), State::Backup);
    let back = master.next_deadline().expect("master down timer");
    assert_eq!(back, at + down_interval(100, SECOND * 3));
    assert!(back - at < SECOND * 12);
    let actions = master.poll_timeout(back);
    assert_eq!(
        actions[0],
        changed(State::Backup, State::Master, TransitionReason::MasterDown)
    );
}

#[test]
fn master_answers_lower_priority_adverts_at_most_once_per_interval() {
    // RFC 9568 §6.4.3 "Send an ADVERTISEMENT immediately" (keepalived alike), limited to
    // one per Advertisement_Interval: 475 forged adverts draw one reply, not 475.
    let t0 = Instant::now();
    let (mut master, at) = master(
        Config {
            advert_on_lower_priority: true,
            ..config(100)
        },
        t0,
    );
    let mut sent = 0;
    for i in 0..475u64 {
        let now = at + Duration::from_micros(100) + Duration::from_micros(i * 100);
        sent += master
            .handle(advert(FORGER, 99), now)
            .iter()
            .filter(|a| matches!(a, Action::SendAdvert { .. }))
            .count();
    }
    assert_eq!(sent, 1);
    assert_eq!(master.replies_limited(), 474);
    // One interval after that reply, the next is answered again.
    let later = at + Duration::from_micros(100) + SECOND;
    assert_eq!(
        master.handle(advert(FORGER, 99), later),
        vec![Action::SendAdvert { priority: 100 }, Action::SendGratuitous]
    );
}

#[test]
fn master_coalesces_priority_zero_replies_within_the_gap() {
    // RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is zero, then: Send an
    // ADVERTISEMENT; Reset the Adver_Timer to Advertisement_Interval" — within
    // resign_reply_gap of our last advert, one reply at the end of the gap.
    let t0 = Instant::now();
    let (mut master, at) = master(config(100), t0);
    let gap = resign_reply_gap(Version::V3, SECOND);
    // Becoming master sent an advert at `at`.
    for offset in [1, 2, 3] {
        let now = at + Duration::from_micros(offset);
        assert!(master.handle(advert(FORGER, 0), now).is_empty());
    }
    assert_eq!(master.next_deadline(), Some(at + gap));
    assert_eq!(
        master.poll_timeout(at + gap),
        vec![Action::SendAdvert { priority: 100 }]
    );
    assert_eq!(master.next_deadline(), Some(at + gap + SECOND));
    assert_eq!(master.replies_limited(), 3);
    // Past the gap: answered at once, as the RFC says.
    let later = at + gap * 3;
    assert_eq!(
        master.handle(advert(FORGER, 0), later),
        vec![Action::SendAdvert { priority: 100 }]
    );
}

#[test]
fn a_flood_of_forged_priority_zero_adverts_moves_nothing() {
    // RFC 5798 §6.4.2: every priority-0 advert sets a backup's Master_Down_Timer to
    // Skew_Time, 11.7 ms at priority 253; the master's coalesced §6.4.3 replies reset it
    // before it fires, while the master sends one reply per gap, not one per advert.
    let t0 = Instant::now();
    let mut lan = Lan::new(vec![config_at(254, LOW), config_at(253, HIGH)], t0);
    lan.run_for(Duration::from_secs(10));
    assert_eq!(lan.states(), vec![State::Master, State::Backup]);
    lan.reset_holder_watch();
    let forged = Event::AdvertReceived(AdvertSeen {
        source: FORGER,
        priority: 0,
        advert_interval: SECOND,
    });
    for _ in 0..2000 {
        lan.run_for(Duration::from_millis(1));
        lan.event(1, forged);
        lan.event(0, forged);
    }
    lan.run_for(Duration::from_secs(5));
    assert_eq!(lan.states(), vec![State::Master, State::Backup]);
    assert_eq!((lan.fewest_holders, lan.most_holders), (1, 1));
    // 2 s at one reply per 3.9 ms: about 500 replies to 2000 forged adverts.
    assert!(lan.routers[0].replies_limited() >= 1400);
}
