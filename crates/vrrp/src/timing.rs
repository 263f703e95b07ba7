//! Protocol timer arithmetic (RFC 5798 §6.1, RFC 3768 §6.1).

use std::time::Duration;

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
}
