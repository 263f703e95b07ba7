//! Pure diff: the wanted [`Model`] against what the kernel holds ([`Current`]) → one nft
//! transaction ([`Batch`]), empty when nothing differs.

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::{Value, json};
use vigil_ipvs::ServiceKey;

use crate::model::{FAMILY, Model, NftService, TABLE};
use crate::readback::Current;
use crate::render::{
    add_service, chain_name, create_all, delete_service, masquerade_elements, replace_service,
    skeleton, wrap,
};

/// One nft transaction (applied whole or not at all), and a clean-up transaction run
/// after it commits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// The commands, in order.
    pub commands: Vec<Value>,
    /// Masquerade addresses no real server of the new rules uses: removed in a second
    /// transaction once the first has committed. A packet DNATed by the old rules in
    /// prerouting may reach postrouting after the commit; removing its real server from
    /// the masquerade set in the same transaction would send it out unmasqueraded, and
    /// the real server's answer would bypass the director (the client's connect times
    /// out: seen in the netns tests).
    pub after: Vec<Value>,
    /// The whole table is (re)created rather than patched.
    pub full: bool,
    /// Services added, changed or deleted.
    pub services_changed: usize,
}

impl Batch {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty() && self.after.is_empty()
    }

    /// The `nft -j -f -` input.
    pub fn document(&self) -> String {
        document_of(&self.commands)
    }
}

/// Replaces the whole table in one transaction without deleting it: `flush table`
/// (every rule), delete every set, map and chain it has, then create everything, but
/// keep the NAT base chains when they are exactly as wanted, and empty rather than
/// delete the skeleton's sets and maps and the plain chains still wanted (see below). Deleting and re-creating
/// the table (or its base chains) in one transaction re-registers the NAT hooks, and on
/// kernel 6.18 about 1 in 3,000 new connections during such swaps went through
/// untranslated (`crates/nft/tests/netns_nft.rs`); keeping the hooks avoids that.
fn replace_in_place(want: &Model, cur: &Current) -> Vec<Value> {
    let mut out = vec![wrap(
        "flush",
        json!({"table": {"family": FAMILY, "name": TABLE}}),
    )];
    // Sets and maps first: their elements refer to chains (goto). The skeleton's are
    // emptied, not deleted, and the plain chains still wanted kept: deleting a map
    // deactivates its elements for the next generation, so a packet that entered the
    // old rules just before the commit would miss in the lookup (no DNAT), while an
    // element deleted and added again flips with the generation as a whole.
    for (kind, name, as_wanted) in &cur.sets {
        out.push(wrap(
            if *as_wanted { "flush" } else { "delete" },
            wrap(
                kind,
                json!({"family": FAMILY, "table": TABLE, "name": name}),
            ),
        ));
    }
    let wanted: BTreeSet<String> = want
        .services
        .keys()
        .map(chain_name)
        .chain(
            skeleton()
                .iter()
                .filter_map(|o| o.get("chain")?.get("name")?.as_str().map(str::to_owned)),
        )
        .collect();
    for (name, keep) in &cur.chains {
        if !keep || !wanted.contains(name) {
            out.push(wrap(
                "delete",
                json!({"chain": {"family": FAMILY, "table": TABLE, "name": name}}),
            ));
        }
    }
    create_all(want, &mut out);
    out
}

/// `{"nftables": COMMANDS}` as text, without copying the commands.
pub fn document_of(commands: &[Value]) -> String {
    let mut s = String::from("{\"nftables\":");
    s.push_str(&serde_json::to_string(commands).unwrap_or_else(|_| "[]".into()));
    s.push('}');
    s
}

fn same(a: &NftService, b: &NftService) -> bool {
    // Without real servers a service has no rule, so its selector cannot differ.
    (a.slots.is_empty() && b.slots.is_empty()) || a == b
}

/// The transaction turning `current` (`None`: no table) into `want`.
pub fn diff(want: &Model, current: Option<&Current>) -> Batch {
    let Some(cur) = current else {
        let mut commands = Vec::new();
        create_all(want, &mut commands);
        return Batch {
            commands,
            after: Vec::new(),
            full: true,
            services_changed: want.services.len(),
        };
    };
    if !cur.intact() {
        let mut commands = replace_in_place(want, cur);
        // Addresses only the old table masqueraded stay until the clean-up.
        let old: Vec<&IpAddr> = cur.model.masquerade.difference(&want.masquerade).collect();
        let mut after = Vec::new();
        if !old.is_empty() {
            masquerade_elements("add", old.iter().copied(), &mut commands);
            masquerade_elements("delete", old, &mut after);
        }
        return Batch {
            commands,
            after,
            full: true,
            services_changed: want.services.len(),
        };
    }
    let mut out = Vec::new();
    let mut changed = 0;
    let have = &cur.model.services;
    for key in have.keys().chain(cur.rewrite.iter()) {
        if !want.services.contains_key(key) {
            delete_service(key, &mut out);
            changed += 1;
        }
    }
    for (key, s) in &want.services {
        if cur.rewrite.contains(key) {
            replace_service(key, s, &mut out);
            changed += 1;
            continue;
        }
        match have.get(key) {
            None => {
                add_service(key, s, &mut out);
                changed += 1;
            }
            Some(h) if !same(h, s) => {
                replace_service(key, s, &mut out);
                changed += 1;
            }
            Some(_) => {}
        }
    }
    let add: Vec<_> = want.masquerade.difference(&cur.model.masquerade).collect();
    let del: Vec<_> = cur.model.masquerade.difference(&want.masquerade).collect();
    if !add.is_empty() {
        masquerade_elements("add", add, &mut out);
    }
    let mut after = Vec::new();
    if !del.is_empty() {
        masquerade_elements("delete", del, &mut after);
    }
    Batch {
        commands: out,
        after,
        full: false,
        services_changed: changed,
    }
}

/// What a command is about, for an error message: `add rule (tcp 192.0.2.1:80) in
/// chain tcp4_192_0_2_1_80`.
pub fn describe(command: &Value) -> String {
    let Some((verb, obj)) = command.as_object().and_then(|m| m.iter().next()) else {
        return command.to_string();
    };
    let Some((kind, body)) = obj.as_object().and_then(|m| m.iter().next()) else {
        return format!("{verb} {obj}");
    };
    let s = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("");
    match kind.as_str() {
        "rule" => {
            let about = s("comment");
            if about.is_empty() {
                format!("{verb} rule in chain {}", s("chain"))
            } else {
                format!("{verb} rule of {about} in chain {}", s("chain"))
            }
        }
        "element" => format!(
            "{verb} element {} in {}",
            body.get("elem").map(Value::to_string).unwrap_or_default(),
            s("name")
        ),
        _ => format!("{verb} {kind} {}", s("name")),
    }
}

/// The transaction for one service alone: `want` is its new model (`None`: delete it),
/// `cur` the whole table as known (must be [`Current::intact`]). With `masquerade`,
/// addresses the service adds go into the masquerade set and those it drops leave it
/// unless another service still uses them. Cost independent of the table's size, but
/// for that check.
pub fn diff_one(
    key: &ServiceKey,
    want: Option<&NftService>,
    cur: &Current,
    masquerade: bool,
) -> Batch {
    let mut out = Vec::new();
    let mut after = Vec::new();
    let old = cur.model.services.get(key);
    let present = old.is_some() || cur.rewrite.contains(key);
    let mut changed = 1;
    match (present, want) {
        (false, Some(w)) => add_service(key, w, &mut out),
        (true, Some(w)) if cur.rewrite.contains(key) || old.is_some_and(|o| !same(o, w)) => {
            replace_service(key, w, &mut out)
        }
        (true, None) => delete_service(key, &mut out),
        _ => changed = 0,
    }
    if masquerade {
        let new_ips: BTreeSet<IpAddr> = want
            .map(|w| w.slots.keys().map(|a| a.ip()).collect())
            .unwrap_or_default();
        let add: Vec<&IpAddr> = new_ips
            .iter()
            .filter(|ip| !cur.model.masquerade.contains(ip))
            .collect();
        let used_elsewhere = |ip: &IpAddr| {
            cur.model
                .services
                .iter()
                .any(|(k, s)| k != key && s.slots.keys().any(|a| a.ip() == *ip))
        };
        let old_ips: BTreeSet<IpAddr> = old
            .map(|o| o.slots.keys().map(|a| a.ip()).collect())
            .unwrap_or_default();
        let del: Vec<&IpAddr> = old_ips
            .iter()
            .filter(|ip| !new_ips.contains(ip) && cur.model.masquerade.contains(ip))
            .filter(|ip| !used_elsewhere(ip))
            .collect();
        if !add.is_empty() {
            masquerade_elements("add", add, &mut out);
        }
        if !del.is_empty() {
            masquerade_elements("delete", del, &mut after);
        }
    }
    Batch {
        commands: out,
        after,
        full: false,
        services_changed: changed,
    }
}
