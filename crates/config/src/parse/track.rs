//! One `track` entry of a VRRP instance: a virtual server, an interface or a program.

use std::ops::Range;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table};

use super::{absolute_program, check_interface};

/// One `track` entry: exactly one of `virtual_server`, `interface` or `exec`.
pub(super) fn track_entry(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<(Track, Range<usize>)> {
    let p = t.path.clone();
    let table_span = t.span.clone();
    let weight = t
        .int::<i32>(sink, "weight", -254, 254)
        .map_or(0, |(w, _)| w);
    let vs = t.str(sink, "virtual_server");
    let iface = t.str(sink, "interface");
    let exec = t.str_list(sink, "exec");
    let interval = t.duration(sink, "interval");
    let timeout = t.duration(sink, "timeout");
    let user = t.str(sink, "user");
    let given =
        usize::from(vs.is_some()) + usize::from(iface.is_some()) + usize::from(exec.is_some());
    if given != 1 {
        sink.push(
            Diagnostic::error(
                t.span.clone(),
                format!("`{p}` must name exactly one of `virtual_server`, `interface` or `exec`"),
            )
            .with_help(
                "e.g. { virtual_server = \"web\", weight = -50 } or { interface = \"eth1\" }",
            ),
        );
        t.finish(sink);
        return None;
    }
    if exec.is_none() {
        for (key, v) in [("interval", &interval), ("timeout", &timeout)] {
            if let Some((_, span)) = v {
                sink.error(
                    span.clone(),
                    format!("`{p}.{key}` applies only to `exec` tracking"),
                );
            }
        }
        if let Some((_, span)) = &user {
            sink.error(
                span.clone(),
                format!("`{p}.user` applies only to `exec` tracking"),
            );
        }
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
        }
    };
    Some((Track { target, weight }, vs_span))
}
