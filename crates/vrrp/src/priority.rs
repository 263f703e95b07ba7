//! Effective priority from tracked objects (interfaces, health checks, scripts, files,
//! processes).
//!
//! Follows keepalived's tracking model: a positive weight is added while its object is up,
//! a negative weight is added while it is down, and a weight of 0 means "down puts the
//! instance in Fault"; `reverse`, a file's number, a script's rise/fall and a process
//! quorum's delays are turned into that model here. The result is clamped to 1..=254 so tracking never produces the
//! resign value 0 nor claims address ownership (RFC 5798 §5.2.4: backups "MUST use
//! priority values between 1-254"); an owner's 255 is never changed.

/// The state of one tracked object as the daemon sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracked {
    pub weight: i32,
    pub up: bool,
}

/// What the tracked objects of one instance add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrackedSummary {
    /// Sum of the weights that currently apply; feed to `Event::PriorityChanged`.
    pub weight: i32,
    /// A weight-0 object is down; feed as `Event::FaultDetected` / `FaultCleared`.
    pub fault: bool,
}

/// Adds up tracked objects.
pub fn summarize(tracked: impl IntoIterator<Item = Tracked>) -> TrackedSummary {
    tracked
        .into_iter()
        .fold(TrackedSummary::default(), |mut summary, object| {
            match (object.weight, object.up) {
                (0, false) => summary.fault = true,
                (weight, true) if weight > 0 => {
                    summary.weight = summary.weight.saturating_add(weight)
                }
                (weight, false) if weight < 0 => {
                    summary.weight = summary.weight.saturating_add(weight)
                }
                _ => {}
            }
            summary
        })
}

impl Tracked {
    /// A two-state object (link, program, virtual server, process quorum) with keepalived's
    /// `reverse`: the weight applies in the other direction, so a positive weight is taken
    /// away while up, a negative one given back while down, and weight 0 faults while up.
    /// Reversing is negating the weight and the state.
    pub fn binary(weight: i32, reverse: bool, up: bool) -> Tracked {
        if reverse {
            Tracked {
                weight: weight.saturating_neg(),
                up: !up,
            }
        } else {
            Tracked { weight, up }
        }
    }

    /// A tracked file's number (keepalived.conf(5), "Track files"): with weight 0, a
    /// non-zero number is a fault (with `reverse`, zero is); otherwise number × weight
    /// (negated by `reverse`) is added, and below -253 is a fault.
    pub fn file(value: i64, weight: i32, reverse: bool) -> Tracked {
        const FAULT: Tracked = Tracked {
            weight: 0,
            up: false,
        };
        if weight == 0 {
            return Tracked {
                weight: 0,
                up: (value == 0) != reverse,
            };
        }
        let sign = if reverse { -1 } else { 1 };
        let total = value.saturating_mul(i64::from(weight)).saturating_mul(sign);
        if total < -253 {
            return FAULT;
        }
        // Beyond +253 adds nothing more: the priority is clamped to 254 anyway.
        let total = i32::try_from(total.min(253)).unwrap_or(253);
        // `summarize` adds a positive weight while up, a negative one while down (and a
        // zero one never: down with weight 0 would be a fault).
        Tracked {
            weight: total,
            up: total >= 0,
        }
    }
}

/// A program's result counter (keepalived's vrrp_script `rise`/`fall`): `rise` consecutive
/// successes bring it up, `fall` consecutive failures down. Without `init_fail` its first
/// result decides alone; with it, it starts down and needs `rise` successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    /// keepalived's `result`: 0..rise is down, rise..rise+fall up.
    result: u32,
    known: bool,
}

impl RiseFall {
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> RiseFall {
        let rise = rise.max(1);
        RiseFall {
            rise,
            fall: fall.max(1),
            result: if init_fail { 0 } else { rise - 1 },
            known: init_fail,
        }
    }

    /// Up, down, or `None` before the first result (and without `init_fail`).
    pub fn state(&self) -> Option<bool> {
        self.known.then_some(self.result >= self.rise)
    }

    /// Counts one run's result and returns the state after it.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        if success {
            if self.result + 1 < self.rise {
                self.result += 1;
            } else {
                self.result = self.rise + self.fall - 1;
            }
        } else if self.result > self.rise {
            self.result -= 1;
        } else {
            self.result = 0;
        }
        self.known = true;
        self.state()
    }
}

/// A process quorum with keepalived's `fork_delay` / `terminate_delay`: a change of
/// quorum counts once it has held for the delay, so a restart does not move the priority.
/// Pure: fed counts and an injected `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessQuorum<T> {
    quorum: u32,
    quorum_max: u32,
    fork_delay: std::time::Duration,
    terminate_delay: std::time::Duration,
    up: Option<bool>,
    /// A change of quorum seen and when it counts.
    pending: Option<(bool, T)>,
}

impl<T> ProcessQuorum<T>
where
    T: Copy + Ord + std::ops::Add<std::time::Duration, Output = T>,
{
    pub fn new(
        quorum: u32,
        quorum_max: Option<u32>,
        fork_delay: std::time::Duration,
        terminate_delay: std::time::Duration,
    ) -> Self {
        ProcessQuorum {
            quorum,
            quorum_max: quorum_max.unwrap_or(u32::MAX),
            fork_delay,
            terminate_delay,
            up: None,
            pending: None,
        }
    }

    /// Counts one scan's matching processes at `now`; returns the state (the first scan
    /// decides at once) and when to look again for a pending change.
    pub fn observe(&mut self, count: u32, now: T) -> (bool, Option<T>) {
        let quorate = (self.quorum..=self.quorum_max).contains(&count);
        match self.up {
            None => self.up = Some(quorate),
            Some(up) if up == quorate => self.pending = None,
            Some(_) => {
                let due = match self.pending {
                    Some((to, due)) if to == quorate => due,
                    _ => {
                        let delay = if quorate {
                            self.fork_delay
                        } else {
                            self.terminate_delay
                        };
                        now + delay
                    }
                };
                if now >= due {
                    self.up = Some(quorate);
                    self.pending = None;
                } else {
                    self.pending = Some((quorate, due));
                }
            }
        }
        (self.up.unwrap_or(quorate), self.pending.map(|(_, due)| due))
    }
}

/// Base priority plus tracked weight, clamped to 1..=254; 255 (address owner) is fixed.
pub fn effective_priority(base: u8, tracked_weight: i32) -> u8 {
    if base == u8::MAX {
        return base;
    }
    let sum = i32::from(base).saturating_add(tracked_weight).clamp(1, 254);
    // Clamped into u8 range just above.
    u8::try_from(sum).unwrap_or(254)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn total(t: Tracked) -> TrackedSummary {
        summarize([t])
    }

    // keepalived.conf(5), vrrp_instance track_*: "If reverse is specified, the
    // addition/subtraction is reversed"; "'weight 0 reverse' will cause the vrrp instance
    // to be down when the script is up, and vice versa".
    #[test]
    fn reverse_turns_the_weight_around() {
        let w = |weight, reverse, up| total(Tracked::binary(weight, reverse, up)).weight;
        assert_eq!((w(10, false, true), w(10, false, false)), (10, 0));
        assert_eq!((w(10, true, true), w(10, true, false)), (-10, 0));
        assert_eq!((w(-10, false, true), w(-10, false, false)), (0, -10));
        assert_eq!((w(-10, true, true), w(-10, true, false)), (0, 10));
        let fault = |reverse, up| total(Tracked::binary(0, reverse, up)).fault;
        assert_eq!((fault(false, true), fault(false, false)), (false, true));
        assert_eq!((fault(true, true), fault(true, false)), (true, false));
    }

    // keepalived.conf(5), "Track files": weight 0 means non-zero is a failure; otherwise
    // value × weight is added, and below -253 the instance goes to fault.
    #[test]
    fn a_file_number_times_the_weight_moves_the_priority() {
        let f = |value, weight, reverse| total(Tracked::file(value, weight, reverse));
        let w = |weight| TrackedSummary {
            weight,
            fault: false,
        };
        let fault = TrackedSummary {
            weight: 0,
            fault: true,
        };
        assert_eq!(f(0, 0, false), w(0));
        assert_eq!(f(3, 0, false), fault);
        assert_eq!(f(-1, 0, false), fault);
        assert_eq!(f(0, 0, true), fault);
        assert_eq!(f(7, 0, true), w(0));
        assert_eq!(f(5, 10, false), w(50));
        assert_eq!(f(-5, 10, false), w(-50));
        assert_eq!(f(5, -10, false), w(-50));
        assert_eq!(f(5, 10, true), w(-50));
        assert_eq!(f(0, 10, false), w(0));
        assert_eq!(f(-254, 1, false), fault);
        assert_eq!(f(-253, 1, false), w(-253));
        assert_eq!(f(1000, 1, false), w(253));
        assert_eq!(f(i64::MAX, 254, false), w(253));
        assert_eq!(f(i64::MIN, 254, false), fault);
    }

    // keepalived vrrp_script: "rise: required number of successes for OK transition",
    // "fall: ... for KO transition"; without init_fail "one success is enough" at start.
    #[test]
    fn rise_and_fall_count_consecutive_results() {
        let mut rf = RiseFall::new(3, 2, false);
        assert_eq!(rf.state(), None);
        assert_eq!(rf.record(true), Some(true), "the first success decides");
        assert_eq!(rf.record(false), Some(true));
        assert_eq!(
            rf.record(true),
            Some(true),
            "a success resets the fall count"
        );
        assert_eq!(rf.record(false), Some(true));
        assert_eq!(rf.record(false), Some(false), "two failures in a row");
        assert_eq!(rf.record(true), Some(false));
        assert_eq!(rf.record(true), Some(false));
        assert_eq!(
            rf.record(false),
            Some(false),
            "a failure resets the rise count"
        );
        assert_eq!(rf.record(true), Some(false));
        assert_eq!(rf.record(true), Some(false));
        assert_eq!(rf.record(true), Some(true), "three successes in a row");

        let mut first_fails = RiseFall::new(3, 2, false);
        assert_eq!(
            first_fails.record(false),
            Some(false),
            "the first failure decides"
        );

        let mut init_fail = RiseFall::new(2, 1, true);
        assert_eq!(init_fail.state(), Some(false));
        assert_eq!(init_fail.record(true), Some(false));
        assert_eq!(init_fail.record(true), Some(true));
        assert_eq!(init_fail.record(false), Some(false));
    }

    // keepalived vrrp_track_process: quorum..=quorum_max processes is up; fork_delay /
    // terminate_delay hold a change back "to avoid up/down bounce".
    #[test]
    fn a_process_quorum_change_counts_after_its_delay() {
        let s = Duration::from_secs;
        let mut q = ProcessQuorum::new(2, Some(3), s(1), s(5));
        assert_eq!(
            q.observe(0, s(0)),
            (false, None),
            "the first scan decides at once"
        );
        assert_eq!(q.observe(2, s(10)), (false, Some(s(11))));
        assert_eq!(
            q.observe(3, s(10) + Duration::from_millis(500)),
            (false, Some(s(11)))
        );
        assert_eq!(q.observe(3, s(11)), (true, None));
        assert_eq!(q.observe(4, s(12)), (true, Some(s(17))), "above quorum_max");
        assert_eq!(q.observe(3, s(13)), (true, None), "back in time: no change");
        assert_eq!(q.observe(1, s(20)), (true, Some(s(25))));
        assert_eq!(q.observe(1, s(25)), (false, None));

        let mut at_once = ProcessQuorum::new(1, None, s(0), s(0));
        assert_eq!(at_once.observe(1, s(0)), (true, None));
        assert_eq!(at_once.observe(0, s(1)), (false, None));
        let mut none_allowed = ProcessQuorum::new(0, Some(0), s(0), s(0));
        assert_eq!(none_allowed.observe(0, s(0)), (true, None));
        assert_eq!(none_allowed.observe(1, s(1)), (false, None));
    }

    #[test]
    fn weights_apply_by_sign_and_state() {
        let summary = summarize([
            Tracked {
                weight: 10,
                up: true,
            },
            Tracked {
                weight: 10,
                up: false,
            },
            Tracked {
                weight: -30,
                up: false,
            },
            Tracked {
                weight: -30,
                up: true,
            },
            Tracked {
                weight: 0,
                up: true,
            },
        ]);
        assert_eq!(
            summary,
            TrackedSummary {
                weight: -20,
                fault: false
            }
        );
    }

    #[test]
    fn a_down_weight_zero_object_means_fault() {
        let summary = summarize([
            Tracked {
                weight: 0,
                up: false,
            },
            Tracked {
                weight: 5,
                up: true,
            },
        ]);
        assert!(summary.fault);
    }

    #[test]
    fn effective_priority_is_clamped_to_backup_range() {
        assert_eq!(effective_priority(100, 50), 150);
        assert_eq!(effective_priority(100, -200), 1);
        assert_eq!(effective_priority(200, 100), 254);
        assert_eq!(effective_priority(1, i32::MIN), 1);
        assert_eq!(effective_priority(254, i32::MAX), 254);
    }

    #[test]
    fn address_owner_priority_never_changes() {
        assert_eq!(effective_priority(255, -100), 255);
        assert_eq!(effective_priority(255, 100), 255);
    }
}
