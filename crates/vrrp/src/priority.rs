//! Effective priority from tracked objects (interfaces, health checks, scripts).
//!
//! Follows keepalived's tracking model: a positive weight is added while its object is up,
//! a negative weight is added while it is down, and a weight of 0 means "down puts the
//! instance in Fault". The result is clamped to 1..=254 so tracking never produces the
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
