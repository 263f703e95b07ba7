//! Event times (Unix milliseconds) as calendar time in UTC, for whoever shows them: the
//! alert payloads (RFC 3339), vigilctl's tables and the man pages' date. One calendar
//! conversion for all of them; no calendar crate for three formats.

/// A Unix time split into UTC calendar fields (proleptic Gregorian calendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcTime {
    pub year: u64,
    /// 1 to 12.
    pub month: u64,
    /// 1 to 31.
    pub day: u64,
    pub hour: u64,
    pub minute: u64,
    pub second: u64,
    pub millisecond: u64,
}

impl UtcTime {
    /// The calendar fields of `unix_ms` milliseconds after 1970-01-01T00:00:00Z (H.
    /// Hinnant's civil-from-days algorithm).
    pub fn from_unix_ms(unix_ms: u64) -> UtcTime {
        let secs = unix_ms / 1000;
        let rem = secs % 86_400;
        let z = secs / 86_400 + 719_468;
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        UtcTime {
            year: yoe + era * 400 + u64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            millisecond: unix_ms % 1000,
        }
    }

    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `HH:MM:SS`.
    pub fn time_of_day(&self) -> String {
        format!("{:02}:{:02}:{:02}", self.hour, self.minute, self.second)
    }

    /// RFC 3339 with milliseconds: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{}T{}.{:03}Z",
            self.date(),
            self.time_of_day(),
            self.millisecond
        )
    }
}

/// `unix_ms` as RFC 3339 UTC with milliseconds (`2024-02-29T23:59:59.999Z`).
pub fn rfc3339(unix_ms: u64) -> String {
    UtcTime::from_unix_ms(unix_ms).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_handles_epoch_leap_years_and_millis() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }

    #[test]
    fn fields_across_month_year_and_century_ends() {
        let t = UtcTime::from_unix_ms(1_772_323_200_000);
        assert_eq!((t.year, t.month, t.day), (2026, 3, 1));
        assert_eq!(
            UtcTime::from_unix_ms(1_772_323_199_000).date(),
            "2026-02-28"
        );
        assert_eq!(UtcTime::from_unix_ms(946_684_799_000).date(), "1999-12-31");
        assert_eq!(UtcTime::from_unix_ms(946_684_800_000).date(), "2000-01-01");
        // 2100 is not a leap year (divisible by 100, not by 400).
        assert_eq!(
            UtcTime::from_unix_ms(4_107_542_400_000).date(),
            "2100-03-01"
        );
        let t = UtcTime::from_unix_ms(1_795_000_000_123);
        assert_eq!(t.time_of_day(), "11:06:40");
        assert_eq!(t.millisecond, 123);
    }
}
