//! Durations written with units: `"250ms"`, `"2s"`, `"1.5s"`, `"1m30s"`, `"1h"`.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("\"{0}\" has a number without a unit")]
    MissingUnit(String),
    #[error("\"{0}\" has an unknown unit \"{1}\" (use ms, s, m or h)")]
    UnknownUnit(String, String),
    #[error("\"{0}\" is not a duration")]
    Malformed(String),
    #[error("\"{0}\" is too long")]
    Overflow(String),
    #[error("\"{0}\" is finer than a microsecond")]
    TooPrecise(String),
}

/// Parses a sequence of `NUMBER UNIT` parts; numbers may have a decimal fraction.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total_us: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(DurationError::Malformed(text.to_string()));
        }
        let (num, after) = rest.split_at(num_len);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        if unit_len == 0 && after.is_empty() {
            return Err(DurationError::MissingUnit(text.to_string()));
        }
        if unit_len == 0 {
            return Err(DurationError::Malformed(text.to_string()));
        }
        let (unit, after) = after.split_at(unit_len);
        let unit_us: u128 = match unit {
            "us" | "µs" => 1,
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" | "min" => 60_000_000,
            "h" => 3_600_000_000,
            _ => {
                return Err(DurationError::UnknownUnit(
                    text.to_string(),
                    unit.to_string(),
                ));
            }
        };
        total_us = total_us
            .checked_add(scaled(num, unit_us, text)?)
            .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
        rest = after;
    }
    let secs = u64::try_from(total_us / 1_000_000)
        .map_err(|_| DurationError::Overflow(text.to_string()))?;
    // Whole microseconds are below 1e6, so this fits.
    let micros = (total_us % 1_000_000) as u32;
    Ok(Duration::new(secs, micros * 1_000))
}

/// `num` (decimal) × `unit_us`, exactly, in microseconds.
fn scaled(num: &str, unit_us: u128, text: &str) -> Result<u128, DurationError> {
    let malformed = || DurationError::Malformed(text.to_string());
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) if !f.is_empty() && !f.contains('.') && !i.is_empty() => (i, f),
        Some(_) => return Err(malformed()),
        None => (num, ""),
    };
    if int.len() > 20 || frac.len() > 18 {
        return Err(DurationError::Overflow(text.to_string()));
    }
    let int: u128 = int.parse().map_err(|_| malformed())?;
    let mut value = int
        .checked_mul(unit_us)
        .ok_or_else(|| DurationError::Overflow(text.to_string()))?;
    if !frac.is_empty() {
        let frac_num: u128 = frac.parse().map_err(|_| malformed())?;
        let denom = 10u128.pow(frac.len() as u32);
        let scaled = frac_num * unit_us;
        if !scaled.is_multiple_of(denom) {
            return Err(DurationError::TooPrecise(text.to_string()));
        }
        value += scaled / denom;
    }
    Ok(value)
}

/// Serialises a duration in the config's own syntax ("250ms"), for the status socket.
pub(crate) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

pub(crate) fn serialize_option<S: serde::Serializer>(
    d: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => serialize(d, s),
        None => s.serialize_none(),
    }
}

/// Formats a duration the way the config writes it ("1.5s", "250ms", "2m").
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    if us == 0 {
        return "0s".to_string();
    }
    if us.is_multiple_of(3_600_000_000) {
        format!("{}h", us / 3_600_000_000)
    } else if us.is_multiple_of(60_000_000) {
        format!("{}m", us / 60_000_000)
    } else if us.is_multiple_of(1_000_000) {
        format!("{}s", us / 1_000_000)
    } else if us.is_multiple_of(1_000) && us < 1_000_000 {
        format!("{}ms", us / 1_000)
    } else if us.is_multiple_of(1_000) {
        let s = format!("{:.3}", us as f64 / 1e6);
        format!("{}s", s.trim_end_matches('0'))
    } else {
        format!("{us}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn parses_units_fractions_and_compounds() {
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("2s"), Ok(ms(2000)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("0s"), Ok(ms(0)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        assert!(matches!(parse_duration(""), Err(DurationError::Empty)));
        assert!(matches!(
            parse_duration("5"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("5 s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("5sec"),
            Err(DurationError::UnknownUnit(_, _))
        ));
        assert!(matches!(
            parse_duration("-1s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("1.s"),
            Err(DurationError::Malformed(_))
        ));
        assert!(matches!(
            parse_duration("0.0000001s"),
            Err(DurationError::TooPrecise(_))
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formats_back_to_config_syntax() {
        for s in ["250ms", "2s", "1.5s", "2m", "1h", "0s", "100us"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn format_then_parse_round_trips(us in 0u64..10_000_000_000) {
            let d = Duration::from_micros(us);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
