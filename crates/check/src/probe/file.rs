//! file: keepalived's FILE_CHECK. The file holds an integer; a missing or empty file
//! reads as 0. With weight 0 a non-zero value is down (a zero one with `reverse`);
//! otherwise the value times the weight (negated with `reverse`) is added to the real
//! server's weight, and a result at or below -2^31 is down, as in keepalived.
//!
//! The file is read on a blocking thread (a file on a hung network mount must not stall
//! the checker), opened non-blocking (a FIFO must not hang the read), at most
//! [`MAX_READ`] bytes. The checker watches the file's directory with inotify and runs the
//! check at once when the file is written, moved or removed; the check's interval is the
//! poll behind that (and all there is where inotify is unavailable).

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use vigil_config::FileCheck;

use super::Verdict;
use crate::failure::{Failure, FailureCause};
use crate::scheduler::WeightEffect;

/// keepalived reads up to 127 bytes of a track file.
const MAX_READ: u64 = 127;

#[derive(Debug)]
pub(crate) struct FileProbe {
    spec: FileCheck,
}

impl FileProbe {
    pub(crate) fn new(spec: &FileCheck) -> Self {
        FileProbe { spec: spec.clone() }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.spec.path
    }

    pub(crate) async fn run(&self) -> (Verdict, Option<WeightEffect>) {
        let path = self.spec.path.clone();
        let read = tokio::task::spawn_blocking(move || read_value(&path)).await;
        let value = match read {
            Ok(Ok(v)) => v,
            Ok(Err(why)) => return (Err(why), None),
            Err(e) => {
                let why = format!("reading {} failed: {e}", self.path_text());
                return (Err(Failure::new(FailureCause::Internal, why)), None);
            }
        };
        judge(&self.spec, value)
    }

    fn path_text(&self) -> String {
        self.spec.path.display().to_string()
    }
}

/// The verdict on `value` read from the file of `spec`.
pub(crate) fn judge(spec: &FileCheck, value: i64) -> (Verdict, Option<WeightEffect>) {
    let path = spec.path.display();
    if spec.weight == 0 {
        let down = (value != 0) != spec.reverse;
        let verdict = if down {
            Err(Failure::new(
                FailureCause::FileValue,
                format!(
                    "{path} reads {value} ({} means down)",
                    if spec.reverse { "zero" } else { "non-zero" }
                ),
            ))
        } else {
            Ok(format!("{path} reads {value}"))
        };
        return (verdict, None);
    }
    let sign = if spec.reverse { -1 } else { 1 };
    let add = value
        .saturating_mul(i64::from(spec.weight))
        .saturating_mul(sign);
    if add <= i64::from(i32::MIN) {
        return (
            Err(Failure::new(
                FailureCause::FileValue,
                format!("{path} reads {value}: weight {add} is at or below the fault level"),
            )),
            None,
        );
    }
    (
        Ok(format!("{path} reads {value}: weight {add:+}")),
        Some(WeightEffect::Add(add)),
    )
}

/// The number in the file at `path`; 0 when it does not exist.
fn read_value(path: &PathBuf) -> Result<i64, Failure> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(f) => f,
        // keepalived: a file that is not there reads as 0.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        // Another error (permission, a directory) is this host's setup, not the value.
        Err(e) => {
            let why = format!("cannot open {}: {e}", path.display());
            return Err(Failure::setup(why));
        }
    };
    let mut buf = Vec::with_capacity(MAX_READ as usize);
    file.take(MAX_READ)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::setup(format!("cannot read {}: {e}", path.display())))?;
    parse_value(&buf).map_err(|why| {
        Failure::new(
            FailureCause::FileValue,
            format!("{}: {why}", path.display()),
        )
    })
}

/// An integer as keepalived's `strtol(buf, NULL, 0)` reads it: leading white space, a
/// sign, then decimal, `0x` hex or `0` octal digits, and anything after them ignored
/// (`1 # maintenance` is 1). Empty (or only white space) is 0. Unlike keepalived, text
/// with no number at all (`down`) is an error, not 0: it would otherwise mean "up".
pub(crate) fn parse_value(bytes: &[u8]) -> Result<i64, String> {
    let text = String::from_utf8_lossy(bytes);
    let t = text.trim_start();
    if t.is_empty() {
        return Ok(0);
    }
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let digits = &digits[..end];
    if digits.is_empty() {
        // "0", "0x" and "08" are 0 to strtol (it stops after the 0).
        if radix != 10 {
            return Ok(0);
        }
        return Err(format!(
            "\"{}\" is not a number",
            super::excerpt(text.trim().as_bytes())
        ));
    }
    let magnitude =
        i64::from_str_radix(digits, radix).map_err(|_| "number out of range".to_string())?;
    let value = if negative { -magnitude } else { magnitude };
    if value < i64::from(i32::MIN) || value > i64::from(i32::MAX) {
        return Err(format!("{value} is out of range"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(weight: i32, reverse: bool) -> FileCheck {
        FileCheck {
            path: "/run/f".into(),
            weight,
            reverse,
        }
    }

    #[test]
    fn parses_like_strtol() {
        for (text, value) in [
            ("", 0),
            ("  \n", 0),
            ("1", 1),
            ("1\n", 1),
            (" -5 ", -5),
            ("+7", 7),
            ("0x1f", 31),
            ("010", 8),
            ("0", 0),
            ("08", 0),
            ("1 # maintenance", 1),
            ("12abc", 12),
        ] {
            assert_eq!(parse_value(text.as_bytes()), Ok(value), "{text:?}");
        }
        assert!(parse_value(b"down").is_err());
        assert!(parse_value(b"-").is_err());
        assert!(parse_value(b"99999999999").is_err());
    }

    /// keepalived.conf(5), Track files: with weight 0 a non-zero value is a failure
    /// and 0 is OK; `reverse` swaps them; otherwise value x weight is added.
    #[test]
    fn judges_as_keepalived() {
        assert!(judge(&spec(0, false), 0).0.is_ok());
        assert!(judge(&spec(0, false), 1).0.is_err());
        assert!(judge(&spec(0, false), -1).0.is_err());
        assert!(judge(&spec(0, true), 0).0.is_err());
        assert!(judge(&spec(0, true), 3).0.is_ok());
        assert_eq!(judge(&spec(0, false), 0).1, None);
        let (v, w) = judge(&spec(10, false), 3);
        assert_eq!(v, Ok("/run/f reads 3: weight +30".into()));
        assert_eq!(w, Some(WeightEffect::Add(30)));
        assert_eq!(judge(&spec(10, true), 3).1, Some(WeightEffect::Add(-30)));
        // At or below the fault level: down.
        assert!(judge(&spec(1, false), i64::from(i32::MIN)).0.is_err());
        assert!(judge(&spec(1, false), i64::from(i32::MIN) + 1).0.is_ok());
        // A value that means down is grouped as `file_value`.
        let cause = |v| judge(&spec(0, false), v).0.err().map(|f| f.cause);
        assert_eq!(cause(1), Some(FailureCause::FileValue));
        let fault = judge(&spec(1, false), i64::from(i32::MIN)).0.err();
        assert_eq!(fault.map(|f| f.cause), Some(FailureCause::FileValue));
    }
}
