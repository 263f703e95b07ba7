//! `[announce]`: how announced virtual servers reach a BGP speaker (issue 16). vigild
//! puts a host route per announced VIP into a kernel routing table of its own, with a
//! route protocol number of its own, and the VIP on a local interface; the speaker
//! (BIRD, FRR) exports that table.

use std::ops::Range;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table};

use super::check_interface;

/// Tables the kernel itself uses (`RT_TABLE_UNSPEC`, `_DEFAULT`, `_MAIN`, `_LOCAL`):
/// vigild removes every route of its protocol from its table, so it must be one of its own.
const RESERVED_TABLES: &[(u32, &str)] = &[
    (0, "unspec"),
    (253, "default"),
    (254, "main"),
    (255, "local"),
];

/// Route protocols others write (linux/rtnetlink.h, iproute2's rt_protos): a route of
/// theirs would be taken for vigild's and removed at start.
const TAKEN_PROTOCOLS: &[(u8, &str)] = &[
    (0, "unspec"),
    (1, "redirect"),
    (2, "kernel"),
    (3, "boot"),
    (4, "static"),
    (11, "zebra (FRR)"),
    (12, "bird"),
    (18, "keepalived"),
    (186, "bgp (FRR)"),
    (187, "isis"),
    (188, "ospf"),
    (189, "rip"),
    (192, "eigrp"),
];

pub(super) fn announce(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<Announce> {
    let errors_before = sink.items.len();
    let table = t.req_int::<u32>(sink, "table", 0, u32::MAX).and_then(|(n, span)| {
        match RESERVED_TABLES.iter().find(|(r, _)| *r == n) {
            Some((_, name)) => {
                sink.push(
                    Diagnostic::error(
                        span,
                        format!("`announce.table`: {n} is the kernel's `{name}` table"),
                    )
                    .with_help("give vigil a table of its own, e.g. 100, and export it from the BGP speaker"),
                );
                None
            }
            None => Some(n),
        }
    });
    let protocol = match t.int::<u8>(sink, "protocol", 0, 255) {
        Some((n, span)) => match TAKEN_PROTOCOLS.iter().find(|(p, _)| *p == n) {
            Some((_, name)) => {
                sink.push(
                    Diagnostic::error(
                        span,
                        format!("`announce.protocol`: {n} is the route protocol of {name}"),
                    )
                    .with_help(format!(
                        "use a number no one else writes; vigil's default is {DEFAULT_ANNOUNCE_PROTOCOL}"
                    )),
                );
                None
            }
            None => Some(n),
        },
        None if t.get("protocol").is_some() => None,
        None => Some(DEFAULT_ANNOUNCE_PROTOCOL),
    };
    let interface = match t.str(sink, "interface") {
        Some((i, span)) => {
            check_interface(sink, "announce.interface", i, span).then(|| i.to_string())
        }
        None => Some("lo".to_string()),
    };
    let delay_read = t.duration(sink, "withdraw_delay");
    let withdraw_delay = withdraw_delay(sink, delay_read);
    t.finish(sink);
    if sink.items.len() != errors_before {
        return None;
    }
    Some(Announce {
        table: table?,
        protocol: protocol?,
        interface: interface?,
        withdraw_delay: withdraw_delay?,
    })
}

/// Routers converge in well under a minute; a longer wait would hold up every stop.
fn withdraw_delay(sink: &mut Sink, read: Option<(Duration, Range<usize>)>) -> Option<Duration> {
    match read {
        None => Some(DEFAULT_WITHDRAW_DELAY),
        Some((d, _)) if d <= MAX_WITHDRAW_DELAY => Some(d),
        Some((_, span)) => {
            sink.error(
                span,
                format!(
                    "`announce.withdraw_delay` must be at most {}",
                    crate::duration::format_duration(MAX_WITHDRAW_DELAY)
                ),
            );
            None
        }
    }
}
