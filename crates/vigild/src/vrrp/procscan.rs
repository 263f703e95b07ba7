//! Counting running processes for `track` `process` entries by scanning /proc, and the
//! pure match of one process against an entry (keepalived's vrrp_track_process rules).
//!
//! A scan, not the kernel's process events connector: the connector exists only in the
//! initial network namespace (vigild in a container or a netns lab could not open it) and
//! needs CAP_NET_ADMIN there; a scan every `interval` reads one small file per process
//! (`stat`; `cmdline` only for `full_command` entries). Zombies do not count.

use std::path::Path;

use vigil_config::{ParamMatch, ProcessTrack};

/// The kernel's process name (`comm`) is at most 15 bytes.
const COMM_MAX: usize = 15;

/// Whether one process (its `comm` and NUL-separated `cmdline`) matches the entry.
pub(super) fn matches(t: &ProcessTrack, comm: &[u8], cmdline: &[u8]) -> bool {
    let Some(name) = t.command.first() else {
        return false;
    };
    if !t.full_command {
        let name = name.as_bytes();
        return comm == &name[..name.len().min(COMM_MAX)];
    }
    let mut words = cmdline.split(|&b| b == 0);
    if words.next() != Some(name.as_bytes()) {
        return false;
    }
    let Some(how) = t.param_match else {
        return true;
    };
    // The arguments as the kernel keeps them: each ends in a NUL (a trailing empty piece
    // after the last NUL is not an argument).
    let args: Vec<&[u8]> = {
        let rest = cmdline.get(name.len() + 1..).unwrap_or_default();
        let mut v: Vec<&[u8]> = rest.split(|&b| b == 0).collect();
        if v.last().is_some_and(|a| a.is_empty()) {
            v.pop();
        }
        v
    };
    let want = &t.command[1..];
    if args.len() < want.len() {
        return false;
    }
    let same = |a: &[u8], w: &String| a == w.as_bytes();
    match how {
        ParamMatch::Exact => {
            args.len() == want.len() && args.iter().zip(want).all(|(a, w)| same(a, w))
        }
        ParamMatch::Partial => args.iter().zip(want).all(|(a, w)| same(a, w)),
        ParamMatch::Initial => {
            let n = want.len();
            n == 0
                || (args[..n - 1].iter().zip(want).all(|(a, w)| same(a, w))
                    && args[n - 1].starts_with(want[n - 1].as_bytes()))
        }
    }
}

/// The `comm` and state of a process from its `stat` line ("PID (COMM) S ..."; COMM may
/// itself hold spaces and parentheses, so the last ')' ends it).
fn parse_stat(stat: &[u8]) -> Option<(&[u8], u8)> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let comm = stat.get(open + 1..close)?;
    let state = *stat.get(close + 2)?;
    Some((comm, state))
}

/// How many running (not zombie) processes under `proc_root` match each entry.
pub(super) fn count(proc_root: &Path, tracks: &[&ProcessTrack]) -> std::io::Result<Vec<u32>> {
    let mut counts = vec![0u32; tracks.len()];
    let need_cmdline = tracks.iter().any(|t| t.full_command);
    for entry in std::fs::read_dir(proc_root)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let dir = entry.path();
        // A process may end between the listing and the read: it is not counted.
        let Ok(stat) = std::fs::read(dir.join("stat")) else {
            continue;
        };
        let Some((comm, state)) = parse_stat(&stat) else {
            continue;
        };
        if state == b'Z' || state == b'X' {
            continue;
        }
        let cmdline = if need_cmdline {
            std::fs::read(dir.join("cmdline")).unwrap_or_default()
        } else {
            Vec::new()
        };
        for (t, n) in tracks.iter().zip(counts.iter_mut()) {
            if matches(t, comm, &cmdline) {
                *n += 1;
            }
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn track(
        command: &[&str],
        full_command: bool,
        param_match: Option<ParamMatch>,
    ) -> ProcessTrack {
        ProcessTrack {
            command: command.iter().map(|s| s.to_string()).collect(),
            full_command,
            param_match,
            quorum: 1,
            quorum_max: None,
            fork_delay: Duration::ZERO,
            terminate_delay: Duration::ZERO,
            interval: Duration::from_secs(1),
        }
    }

    // keepalived.conf(5) vrrp_track_process: an exact match of the name ("equivalent to
    // pgrep \"^ssh$\""), the command line with full_command, and param_match.
    #[test]
    fn names_and_arguments_match_as_keepalived_matches_them() {
        let by_name = track(&["ssh"], false, None);
        assert!(matches(&by_name, b"ssh", b""));
        assert!(!matches(&by_name, b"sshd", b""));
        let long = track(&["a-very-long-daemon-name"], false, None);
        assert!(matches(&long, b"a-very-long-dae", b""));

        let full = track(&["/usr/sbin/haproxy"], true, None);
        assert!(matches(&full, b"haproxy", b"/usr/sbin/haproxy\0-f\0x\0"));
        assert!(!matches(&full, b"haproxy", b"haproxy\0"));

        let exact = track(&["/bin/app", "-f", "conf"], true, Some(ParamMatch::Exact));
        assert!(matches(&exact, b"app", b"/bin/app\0-f\0conf\0"));
        assert!(!matches(&exact, b"app", b"/bin/app\0-f\0conf\0-d\0"));
        assert!(!matches(&exact, b"app", b"/bin/app\0-f\0conf2\0"));
        let no_args = track(&["/bin/app"], true, Some(ParamMatch::Exact));
        assert!(matches(&no_args, b"app", b"/bin/app\0"));
        assert!(!matches(&no_args, b"app", b"/bin/app\0-d\0"));

        let partial = track(&["/bin/app", "-f"], true, Some(ParamMatch::Partial));
        assert!(matches(&partial, b"app", b"/bin/app\0-f\0more\0"));
        assert!(!matches(&partial, b"app", b"/bin/app\0-fx\0"));
        let initial = track(
            &["/bin/app", "-f", "/etc/ap"],
            true,
            Some(ParamMatch::Initial),
        );
        assert!(matches(&initial, b"app", b"/bin/app\0-f\0/etc/app.conf\0"));
        assert!(!matches(&initial, b"app", b"/bin/app\0-g\0/etc/app.conf\0"));
    }

    #[test]
    fn stat_lines_give_name_and_state() {
        assert_eq!(parse_stat(b"42 (sleep) S 1 2"), Some((&b"sleep"[..], b'S')));
        assert_eq!(parse_stat(b"42 (a) b) Z 1 2"), Some((&b"a) b"[..], b'Z')));
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn a_scan_counts_this_test_process() -> std::io::Result<()> {
        let comm = std::fs::read(format!("/proc/{}/comm", std::process::id()))?;
        let name = String::from_utf8_lossy(comm.trim_ascii_end()).to_string();
        let t = track(&[&name], false, None);
        let n = count(Path::new("/proc"), &[&t])?;
        assert!(n[0] >= 1, "{name}: {n:?}");
        Ok(())
    }

    /// What one scan costs on this machine (a figure, not a check):
    /// `cargo test -p vigild --lib procscan::tests::scan_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints a figure"]
    fn scan_cost() -> std::io::Result<()> {
        let by_name = track(&["no-such-process"], false, None);
        let by_line = track(&["/no/such", "x"], true, Some(ParamMatch::Exact));
        let procs = std::fs::read_dir("/proc")?
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .as_encoded_bytes()
                    .iter()
                    .all(u8::is_ascii_digit)
            })
            .count();
        for (what, t) in [("comm", &by_name), ("cmdline", &by_line)] {
            let runs = 200;
            let start = std::time::Instant::now();
            for _ in 0..runs {
                count(Path::new("/proc"), &[t])?;
            }
            let each = start.elapsed() / runs;
            println!(
                "scan by {what}: {each:?} for {procs} processes ({:?} each)",
                each / procs.max(1) as u32
            );
        }
        Ok(())
    }
}
