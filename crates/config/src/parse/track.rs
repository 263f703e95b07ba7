//! One `track` entry of a VRRP instance: a virtual server, an interface, a program, a file
//! or a process.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table};

use super::{absolute_program, check_interface};

/// One `track` entry: exactly one of `virtual_server`, `interface`, `exec`, `file` or
/// `process`.
pub(super) fn track_entry(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<(Track, Range<usize>)> {
    let p = t.path.clone();
    let table_span = t.span.clone();
    let weight = t
        .int::<i32>(sink, "weight", -254, 254)
        .map_or(0, |(w, _)| w);
    let reverse = t.bool(sink, "reverse").unwrap_or(false);
    let vs = t.str(sink, "virtual_server");
    let iface = t.str(sink, "interface");
    let exec = t.str_list(sink, "exec");
    let file = t.str(sink, "file");
    let process = t.str_list(sink, "process");
    let interval = t.duration(sink, "interval");
    let timeout = t.duration(sink, "timeout");
    let user = t.str(sink, "user");
    let rise = t.int::<u32>(sink, "rise", 1, 1000);
    let fall = t.int::<u32>(sink, "fall", 1, 1000);
    let init_fail = t.get("init_fail").map(|v| v.span());
    let init_fail_set = init_fail.is_some() && t.bool(sink, "init_fail").unwrap_or(false);
    let quorum = t.int::<u32>(sink, "quorum", 0, 65535);
    let quorum_max = t.int::<u32>(sink, "quorum_max", 0, 65535);
    let delay = t.duration(sink, "delay");
    let fork_delay = t.duration(sink, "fork_delay");
    let terminate_delay = t.duration(sink, "terminate_delay");
    let full_command = t.bool(sink, "full_command");
    let full_command_span = t.get("full_command").map(|v| v.span());
    let param_match = t.choice(sink, "param_match", &["exact", "partial", "initial"]);
    let given = usize::from(vs.is_some())
        + usize::from(iface.is_some())
        + usize::from(exec.is_some())
        + usize::from(file.is_some())
        + usize::from(process.is_some());
    if given != 1 {
        sink.push(
            Diagnostic::error(
                t.span.clone(),
                format!("`{p}` must name exactly one of `virtual_server`, `interface`, `exec`, `file` or `process`"),
            )
            .with_help(
                "e.g. { virtual_server = \"web\", weight = -50 } or { interface = \"eth1\" }",
            ),
        );
        t.finish(sink);
        return None;
    }
    // Keys that belong to one kind of target only.
    let only =
        |sink: &mut Sink, applies: bool, key: &str, span: Option<Range<usize>>, kind: &str| {
            if let (false, Some(span)) = (applies, span) {
                sink.error(span, format!("`{p}.{key}` applies only to {kind} tracking"));
            }
        };
    let span = |v: &Option<(Duration, Range<usize>)>| v.as_ref().map(|(_, s)| s.clone());
    let is_exec = exec.is_some();
    let is_process = process.is_some();
    only(
        sink,
        is_exec || is_process,
        "interval",
        span(&interval),
        "`exec` and `process`",
    );
    only(sink, is_exec, "timeout", span(&timeout), "`exec`");
    only(
        sink,
        is_exec,
        "user",
        user.as_ref().map(|(_, s)| s.clone()),
        "`exec`",
    );
    only(
        sink,
        is_exec,
        "rise",
        rise.as_ref().map(|(_, s)| s.clone()),
        "`exec`",
    );
    only(
        sink,
        is_exec,
        "fall",
        fall.as_ref().map(|(_, s)| s.clone()),
        "`exec`",
    );
    only(sink, is_exec, "init_fail", init_fail, "`exec`");
    for (key, v) in [
        ("quorum", quorum.as_ref().map(|(_, s)| s.clone())),
        ("quorum_max", quorum_max.as_ref().map(|(_, s)| s.clone())),
        ("delay", span(&delay)),
        ("fork_delay", span(&fork_delay)),
        ("terminate_delay", span(&terminate_delay)),
        ("full_command", full_command_span),
        ("param_match", param_match.as_ref().map(|(_, s)| s.clone())),
    ] {
        only(sink, is_process, key, v, "`process`");
    }
    t.finish(sink);
    let mut vs_span = 0..0;
    let target = if let Some((name, span)) = vs {
        vs_span = span;
        TrackTarget::VirtualServer(name.to_string())
    } else if let Some((name, span)) = iface {
        if !check_interface(sink, &format!("{p}.interface"), name, span) {
            return None;
        }
        TrackTarget::Interface(name.to_string())
    } else if let Some((path, span)) = file {
        if !path.starts_with('/') {
            sink.error(
                span,
                format!("`{p}.file`: \"{path}\" must be an absolute path"),
            );
            return None;
        }
        TrackTarget::File(PathBuf::from(path))
    } else if let Some((command, span)) = process {
        let Some(name) = command.first() else {
            sink.error(
                span,
                format!("`{p}.process` is empty: give the process name and any arguments to match"),
            );
            return None;
        };
        if name.is_empty() {
            sink.error(span, format!("`{p}.process`: the process name is empty"));
            return None;
        }
        let param_match = match param_match.map(|(m, _)| m) {
            Some("partial") => Some(ParamMatch::Partial),
            Some("initial") => Some(ParamMatch::Initial),
            Some(_) => Some(ParamMatch::Exact),
            // keepalived: arguments given mean exactly these.
            None if command.len() > 1 => Some(ParamMatch::Exact),
            None => None,
        };
        let quorum_n = quorum.as_ref().map_or(1, |(q, _)| *q);
        if let Some((max, span)) = &quorum_max
            && *max < quorum_n
        {
            sink.error(
                span.clone(),
                format!("`{p}.quorum_max` ({max}) is below `quorum` ({quorum_n}): the process could never be up"),
            );
            return None;
        }
        if let Some((d, span)) = &delay {
            if fork_delay.is_some() || terminate_delay.is_some() {
                sink.error(
                    span.clone(),
                    format!("`{p}.delay` sets both `fork_delay` and `terminate_delay`: give it or them, not both"),
                );
                return None;
            }
            if *d > Duration::from_secs(3600) {
                sink.error(span.clone(), format!("`{p}.delay` must be at most 1h"));
                return None;
            }
        }
        let default_delay = delay.as_ref().map_or(Duration::ZERO, |(d, _)| *d);
        let delay_of = |v: Option<(Duration, Range<usize>)>, key: &str, sink: &mut Sink| match v {
            Some((d, span)) if d > Duration::from_secs(3600) => {
                sink.error(span, format!("`{p}.{key}` must be at most 1h"));
                None
            }
            Some((d, _)) => Some(d),
            None => Some(default_delay),
        };
        let fork_delay = delay_of(fork_delay, "fork_delay", sink)?;
        let terminate_delay = delay_of(terminate_delay, "terminate_delay", sink)?;
        let interval = match interval {
            // A scan reads every process's name: not more often than every 100 ms.
            Some((d, span)) if d < Duration::from_millis(100) || d > Duration::from_secs(3600) => {
                sink.error(span, format!("`{p}.interval` must be from 100ms to 1h"));
                return None;
            }
            Some((d, _)) => d,
            None => Duration::from_secs(1),
        };
        TrackTarget::Process(ProcessTrack {
            full_command: full_command.unwrap_or(false) || param_match.is_some(),
            param_match,
            quorum: quorum_n,
            quorum_max: quorum_max.map(|(q, _)| q),
            fork_delay,
            terminate_delay,
            interval,
            command,
        })
    } else {
        let (command, span) = exec?;
        if !absolute_program(sink, &format!("{p}.exec"), &command, span) {
            return None;
        }
        let interval = match interval {
            // Like a check's interval: a zero interval would run the program in a loop.
            Some((d, span)) if d < Duration::from_millis(10) || d > Duration::from_secs(3600) => {
                sink.error(span, format!("`{p}.interval` must be from 10ms to 1h"));
                return None;
            }
            Some((d, _)) => d,
            None => Duration::from_secs(2),
        };
        let timeout = match timeout {
            Some((d, span)) if d >= interval || d.is_zero() => {
                sink.error(
                    span,
                    format!(
                        "`{p}.timeout` must be above zero and shorter than the interval ({})",
                        crate::duration::format_duration(interval)
                    ),
                );
                return None;
            }
            Some((d, _)) => d,
            None => interval / 2,
        };
        TrackTarget::Exec {
            command,
            interval,
            timeout,
            user: sink
                .user(format!("{p}.user"), user, "nobody", table_span)
                .to_string(),
            rise: rise.map_or(1, |(r, _)| r),
            fall: fall.map_or(1, |(f, _)| f),
            init_fail: init_fail_set,
        }
    };
    Some((
        Track {
            target,
            weight,
            reverse,
        },
        vs_span,
    ))
}
