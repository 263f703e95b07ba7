//! Protocol timer arithmetic (RFC 5798 §6.1, RFC 3768 §6.1), and the bounds vigil puts
//! on what a received advert can make it do: how long a learned Master_Adver_Interval may
//! be, and how often a master answers adverts with one of its own.

use std::time::{Duration, Instant};

use crate::packet::Version;

/// Skew_Time: how much longer a lower-priority backup waits before declaring the master
/// down, so the highest-priority backup wins the race.
///
/// RFC 5798 §6.1: "Skew_Time: Time to skew Master_Down_Interval in centiseconds.
/// Calculated as (((256 - priority) * Master_Adver_Interval) / 256)."
/// RFC 3768 §6.1: "Skew_Time: Time to skew Master_Down_Interval in seconds. Calculated as:
/// ( (256 - Priority) / 256 )" — independent of the advert interval.
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    let weight = 256 - u32::from(priority);
    match version {
        Version::V3 => master_adver_interval * weight / 256,
        Version::V2 => Duration::from_secs(1) * weight / 256,
    }
}

/// Master_Down_Interval: how long a backup waits without adverts before taking over.
///
/// RFC 5798 §6.1: "Calculated as (3 * Master_Adver_Interval) + Skew_time" (RFC 3768 §6.1
/// likewise with Advertisement_Interval).
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
) -> Duration {
    master_adver_interval * 3 + skew_time(version, priority, master_adver_interval)
}

/// The default of [`learned_interval`]'s `factor` (`learned_interval_factor`): a
/// master may advertise up to 3 times slower or faster than we are configured to, which
/// covers peers configured a step apart (1 s next to 3 s), while one forged advert can
/// hold the backups off for at most about 12 of our intervals instead of 124 s, and
/// cannot make them time out between two adverts of a master at our interval.
pub const DEFAULT_LEARNED_INTERVAL_FACTOR: u32 = 3;

/// The Master_Adver_Interval a Backup takes from an advert: RFC 5798 §6.4.2 "Set
/// Master_Adver_Interval to Adver Interval contained in the ADVERTISEMENT", kept within
/// `factor` times the configured Advertisement_Interval, up and down.
///
/// Unbounded, one forged VRRPv3 advert with Max Adver Int 4095 cs (40.95 s) makes every
/// backup wait Master_Down_Interval = 3 × 40.95 s + Skew_Time before taking over: a
/// two-minute outage when it also made the master step down. With the cap the wait is
/// below `4 × factor × advert_interval` (3 intervals plus a Skew_Time under one). A
/// genuine master slower than the cap is still followed, only its backups time out
/// sooner: keep peers' intervals within the factor of each other.
///
/// The floor, `advert_interval / factor`, answers the opposite forgery: an advert
/// claiming 10 ms (with a priority between the backup's and the master's) made a backup's
/// Master_Down_Interval 3 × 10 ms + Skew_Time, so it took the addresses (and announced
/// them) before the real master's next advert and gave them back on hearing it. At the
/// floor, 3 × interval / factor + Skew_Time is at least one interval when factor ≤ 3,
/// so a master advertising at our interval is heard first. A genuine faster master is
/// still followed; its backups only take longer to notice its death.
///
/// RFC 3768 (VRRPv2) learns nothing: §7.1 drops an advert whose interval differs from
/// ours, so the configured interval is returned.
pub fn learned_interval(
    version: Version,
    advertised: Duration,
    configured: Duration,
    factor: u32,
) -> Duration {
    match version {
        Version::V3 => {
            let factor = factor.max(1);
            advertised.clamp(configured / factor, configured.saturating_mul(factor))
        }
        Version::V2 => configured,
    }
}

/// How often a master answers adverts with one of its own, outside its Adver_Timer.
///
/// A master answers a priority-0 advert at once (RFC 5798 §6.4.3 "If the Priority in the
/// ADVERTISEMENT is zero, then: Send an ADVERTISEMENT") and, like keepalived, a
/// lower-priority one (RFC 9568 §6.4.3). Unlimited, every forged advert draws a multicast
/// advert in reply (475 forged, 476 sent). The two replies differ in what a late one
/// costs, so they have separate limits:
///
/// - a lower-priority advert is answered at most once per Advertisement_Interval; the
///   Adver_Timer answers the rest within one interval anyway;
/// - a priority-0 advert has just set every backup's Master_Down_Timer to its Skew_Time
///   (§6.4.2), so a skipped answer lets a backup take the addresses. It is answered at
///   once unless an advert went out less than [`resign_reply_gap`] ago; then one reply is
///   sent when that gap ends, answering all the priority-0 adverts that came meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ReplyLimiter {
    last_advert: Option<Instant>,
    last_lower_reply: Option<Instant>,
}

/// What the master does about one received advert that asks for a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Send an advert now.
    Now,
    /// Send one advert at this instant (a reply already scheduled stays as it is).
    At(Instant),
    /// Send nothing: rate limited.
    Skip,
}

impl ReplyLimiter {
    /// Records an advert sent at `now`, whatever the cause.
    pub(crate) fn sent(&mut self, now: Instant) {
        self.last_advert = Some(now);
    }

    /// A lower-priority advert arrived at `now` (RFC 9568 §6.4.3 reply).
    pub(crate) fn lower_priority(&mut self, now: Instant, advert_interval: Duration) -> Reply {
        match self.last_lower_reply {
            Some(last) if now < last + advert_interval => Reply::Skip,
            _ => {
                self.last_lower_reply = Some(now);
                Reply::Now
            }
        }
    }

    /// A priority-0 advert arrived at `now` (RFC 5798 §6.4.3 reply); `gap` is
    /// [`resign_reply_gap`].
    pub(crate) fn resigned(&self, now: Instant, gap: Duration) -> Reply {
        match self.last_advert {
            Some(last) if now < last + gap => Reply::At(last + gap),
            _ => Reply::Now,
        }
    }
}

/// The shortest spacing of a master's replies to priority-0 adverts: half the shortest
/// Skew_Time any backup can have (priority 254, RFC 5798 §6.1), so a backup whose
/// Master_Down_Timer a priority-0 advert set to its Skew_Time always hears the master
/// before it fires. `advert_interval` is ours, which v3 backups learn as
/// Master_Adver_Interval. 1 s adverts: at most 256 replies a second, however many
/// adverts are forged.
pub fn resign_reply_gap(version: Version, advert_interval: Duration) -> Duration {
    skew_time(version, 254, advert_interval) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v3_skew_scales_with_the_master_interval() {
        // RFC 5798 §6.1: (((256 - priority) * Master_Adver_Interval) / 256)
        let one_second = Duration::from_secs(1);
        assert_eq!(
            skew_time(Version::V3, 100, one_second),
            Duration::from_micros(609_375)
        );
        assert_eq!(
            skew_time(Version::V3, 255, one_second),
            Duration::from_nanos(3_906_250)
        );
        assert_eq!(
            skew_time(Version::V3, 100, Duration::from_secs(2)),
            Duration::from_micros(1_218_750)
        );
    }

    #[test]
    fn v2_skew_ignores_the_interval() {
        // RFC 3768 §6.1: ( (256 - Priority) / 256 ) seconds.
        assert_eq!(
            skew_time(Version::V2, 100, Duration::from_secs(5)),
            Duration::from_micros(609_375)
        );
    }

    #[test]
    fn master_down_interval_is_three_intervals_plus_skew() {
        // RFC 5798 §6.1: (3 * Master_Adver_Interval) + Skew_time
        assert_eq!(
            master_down_interval(Version::V3, 100, Duration::from_secs(1)),
            Duration::from_micros(3_609_375)
        );
        assert_eq!(
            master_down_interval(Version::V2, 200, Duration::from_secs(2)),
            Duration::from_secs(6) + Duration::from_micros(218_750)
        );
    }

    #[test]
    fn higher_priority_waits_less() {
        let interval = Duration::from_millis(100);
        assert!(
            master_down_interval(Version::V3, 200, interval)
                < master_down_interval(Version::V3, 100, interval)
        );
    }

    #[test]
    fn learned_interval_is_capped_at_a_multiple_of_ours() {
        // RFC 5798 §6.4.2: "Set Master_Adver_Interval to Adver Interval contained in the
        // ADVERTISEMENT" — bounded, so Max Adver Int 4095 cs cannot stall the backups.
        let ours = Duration::from_millis(100);
        let forged = Duration::from_millis(40_950);
        assert_eq!(
            learned_interval(Version::V3, forged, ours, 3),
            Duration::from_millis(300)
        );
        // Within the bounds the advert's interval is taken as it is, slower or faster.
        for advertised in [Duration::from_millis(250), Duration::from_millis(40)] {
            assert_eq!(
                learned_interval(Version::V3, advertised, ours, 3),
                advertised
            );
        }
        // A forged fast one is raised to a third of ours.
        assert_eq!(
            learned_interval(Version::V3, Duration::from_millis(10), ours, 3),
            ours / 3
        );
        // A factor of 0 is treated as 1: never below our own interval.
        assert_eq!(learned_interval(Version::V3, forged, ours, 0), ours);
        // RFC 3768 §7.1: v2 intervals must equal ours; nothing is learned.
        assert_eq!(
            learned_interval(
                Version::V2,
                Duration::from_secs(9),
                Duration::from_secs(1),
                3
            ),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn a_forged_slow_advert_holds_the_backups_off_under_twelve_intervals() {
        // RFC 5798 §6.1 Master_Down_Interval with the learned interval capped at 3x.
        let ours = Duration::from_millis(100);
        let learned = learned_interval(Version::V3, Duration::from_millis(40_950), ours, 3);
        let worst = master_down_interval(Version::V3, 1, learned);
        assert!(worst < ours * 12, "{worst:?}");
        assert!(
            master_down_interval(Version::V3, 1, Duration::from_millis(40_950))
                > Duration::from_secs(122)
        );
    }

    #[test]
    fn a_forged_fast_advert_cannot_beat_the_masters_next_advert() {
        // RFC 5798 §6.1 Master_Down_Interval from the learned interval floored at 1/3 of
        // ours: more than one of our intervals, for every backup priority.
        let ours = Duration::from_millis(100);
        let learned = learned_interval(Version::V3, Duration::from_millis(10), ours, 3);
        for priority in [1, 100, 254] {
            assert!(master_down_interval(Version::V3, priority, learned) > ours);
        }
        assert!(master_down_interval(Version::V3, 100, Duration::from_millis(10)) < ours / 2);
    }

    #[test]
    fn lower_priority_replies_at_most_once_per_interval() {
        // RFC 9568 §6.4.3 (keepalived) reply to a lower-priority advert, rate limited.
        let t0 = Instant::now();
        let interval = Duration::from_secs(1);
        let mut limiter = ReplyLimiter::default();
        let replies = (0..475)
            .map(|i| limiter.lower_priority(t0 + Duration::from_millis(i), interval))
            .filter(|r| *r == Reply::Now)
            .count();
        assert_eq!(replies, 1);
        assert_eq!(limiter.lower_priority(t0 + interval, interval), Reply::Now);
    }

    #[test]
    fn resign_replies_are_coalesced_but_never_skipped() {
        // RFC 5798 §6.4.3: "If the Priority in the ADVERTISEMENT is zero, then: Send an
        // ADVERTISEMENT" — within the gap, one reply when it ends.
        let t0 = Instant::now();
        let gap = resign_reply_gap(Version::V3, Duration::from_secs(1));
        assert_eq!(gap, Duration::from_nanos(3_906_250));
        let mut limiter = ReplyLimiter::default();
        assert_eq!(limiter.resigned(t0, gap), Reply::Now);
        limiter.sent(t0);
        assert_eq!(
            limiter.resigned(t0 + Duration::from_millis(1), gap),
            Reply::At(t0 + gap)
        );
        assert_eq!(limiter.resigned(t0 + gap, gap), Reply::Now);
        // The reply lands before the quickest backup's Skew_Time (priority 254, §6.1).
        assert!(gap < skew_time(Version::V3, 254, Duration::from_secs(1)));
        // RFC 3768 §6.1: v2 skew is in seconds whatever the interval.
        assert_eq!(
            resign_reply_gap(Version::V2, Duration::from_secs(5)),
            Duration::from_nanos(3_906_250)
        );
    }
}
