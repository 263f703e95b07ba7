//! keepalived's notify family, read the same way in `[vrrp.NAME]` and
//! `[sync_group.NAME]`: `notify` with the argument convention `notify_args` names, and the
//! per-state programs `notify_master`, `notify_backup`, `notify_fault`, `notify_stop`.

use std::ops::Range;

use super::{absolute_program, check_name};
use crate::diag::Diagnostic;
use crate::model::{NotifyArgs, NotifyHooks, SyncGroup, VrrpInstance};
use crate::reader::{Sink, Table};

/// Reads the notify keys of `t`; a key with an error is left unset (the error is in `sink`).
pub(crate) fn notify_hooks(sink: &mut Sink, t: &mut Table<'_, '_>) -> NotifyHooks {
    let mut program = |t: &mut Table<'_, '_>, key: &'static str| {
        let field = t.field(key).to_string();
        t.str_list(sink, key)
            .filter(|(argv, span)| absolute_program(sink, &field, argv, span.clone()))
            .map(|(argv, _)| argv)
    };
    let notify = program(t, "notify");
    let notify_master = program(t, "notify_master");
    let notify_backup = program(t, "notify_backup");
    let notify_fault = program(t, "notify_fault");
    let notify_stop = program(t, "notify_stop");
    let notify_args = match t.choice(sink, "notify_args", &["vigil", "keepalived"]) {
        Some(("keepalived", _)) => NotifyArgs::Keepalived,
        _ => NotifyArgs::Vigil,
    };
    NotifyHooks {
        notify,
        notify_args,
        notify_master,
        notify_backup,
        notify_fault,
        notify_stop,
    }
}

/// `[sync_group.NAME]` tables, each with its name's span (for "no instance is a member"),
/// and whether all of them parsed.
fn sync_group_tables(sink: &mut Sink, t: Table<'_, '_>) -> (Vec<(SyncGroup, Range<usize>)>, bool) {
    let mut groups = Vec::new();
    let mut ok = true;
    for (name, value) in t.entries() {
        let name_str: &str = name.get_ref();
        let path = format!("sync_group.{name_str}");
        let Some(mut table) = check_name(sink, name_str, name.span(), "sync group")
            .then(|| Table::from_value(sink, value, path))
            .flatten()
        else {
            ok = false;
            continue;
        };
        let errors_before = sink.items.len();
        let hooks = notify_hooks(sink, &mut table);
        table.finish(sink);
        if sink.items.len() != errors_before {
            ok = false;
            continue;
        }
        groups.push((
            SyncGroup {
                name: name_str.to_string(),
                hooks,
            },
            name.span(),
        ));
    }
    (groups, ok)
}

/// The `[sync_group]` section: its tables, checked against the instances that name a
/// group (`members_known`: false when some instance had errors, so membership is not
/// judged on a partial list). `None` when any table had an error.
pub(super) fn sync_group_section(
    sink: &mut Sink,
    top: &mut Table<'_, '_>,
    instances: &[VrrpInstance],
    members_known: bool,
) -> Option<Vec<SyncGroup>> {
    let (groups, ok) = match top.get("sync_group") {
        Some(v) => match Table::from_value(sink, v, "sync_group") {
            Some(t) => sync_group_tables(sink, t),
            None => (Vec::new(), false),
        },
        None => (Vec::new(), true),
    };
    if members_known {
        for (g, span) in &groups {
            if !instances
                .iter()
                .any(|v| v.sync_group.as_deref() == Some(g.name.as_str()))
            {
                sink.push(
                    Diagnostic::error(
                        span.clone(),
                        format!("sync group \"{}\" has no members", g.name),
                    )
                    .with_help(
                        "set `sync_group = \"NAME\"` on the VRRP instances that belong to it",
                    ),
                );
            }
        }
    }
    ok.then(|| groups.into_iter().map(|(g, _)| g).collect())
}
