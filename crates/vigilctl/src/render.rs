//! Human tables from status-socket replies, typed by `vigil_proto`. Replies decode
//! leniently (a field the daemon did not send reads as its default, which shows as "-"
//! where that means "unknown"), so that a vigilctl of another version still prints what
//! it can.

use std::fmt::Write;

use vigil_proto::{
    AlertStatus, DrainReply, Event, ReloadRecord, ServicesReply, StatusReply, UtcTime,
    VrrpControlReply, VrrpReply,
};

/// `text`, or "-" when the daemon did not say.
fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// `n`, or "-" for 0 where 0 means "not sent" (a pid, a VRID).
fn nonzero(n: u64) -> String {
    if n == 0 { "-".into() } else { n.to_string() }
}

/// Unix seconds as a UTC time, "-" for 0 (not sent).
fn at(unix: f64) -> String {
    if unix == 0.0 { "-".into() } else { utc(unix) }
}

/// Unix milliseconds as a UTC time.
fn at_ms(ms: u64) -> String {
    utc(ms as f64 / 1e3)
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_string(), ToString::to_string)
}

/// `2h 3m 4s`.
pub(crate) fn human_duration(secs: f64) -> String {
    let total = secs.max(0.0) as u64;
    let (d, h, m, s) = (
        total / 86_400,
        total / 3600 % 24,
        total / 60 % 60,
        total % 60,
    );
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m"),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub(crate) fn utc(unix: f64) -> String {
    let t = UtcTime::from_unix_ms((unix.max(0.0) as u64).saturating_mul(1000));
    format!("{} {} UTC", t.date(), t.time_of_day())
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn status(v: &StatusReply) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "director    {} (vigild {}, pid {})",
        or_dash(&v.director),
        or_dash(&v.version),
        nonzero(u64::from(v.pid))
    );
    let _ = writeln!(
        out,
        "uptime      {} (since {})",
        human_duration(v.uptime_secs),
        at(v.started_at_unix)
    );
    let _ = writeln!(
        out,
        "config      {} (generation {}, loaded {})",
        or_dash(&v.config_file.to_string_lossy()),
        nonzero(v.config_generation),
        at(v.config_loaded_at_unix)
    );
    let c = &v.counts;
    let _ = writeln!(
        out,
        "cluster     {}, {}, {}",
        plural(c.vrrp_instances, "VRRP instance", "VRRP instances"),
        plural(c.virtual_servers, "virtual server", "virtual servers"),
        plural(c.real_servers, "real server", "real servers"),
    );
    if let Some(d) = &v.datapath {
        let _ = writeln!(
            out,
            "datapath    {} ({})",
            or_dash(&d.name),
            or_dash(&d.reason)
        );
    }
    match v.reloads.last() {
        None => {
            let _ = writeln!(out, "reloads     none");
        }
        Some(last) => {
            let _ = writeln!(
                out,
                "reloads     {} (last: {} at {} by {})",
                v.reloads.len(),
                if last.ok { "ok" } else { "REJECTED" },
                at(last.at_unix),
                or_dash(last.trigger.as_str())
            );
            for e in &last.errors {
                let _ = writeln!(out, "            {e}");
            }
        }
    }
    let sock = &v.status_socket;
    let refused: Vec<String> = sock
        .refused
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{n} {}", why.replace('_', " ")))
        .collect();
    let _ = writeln!(
        out,
        "socket      {}, {} following events; refused: {}",
        plural(sock.connections, "client", "clients"),
        sock.subscribers,
        if refused.is_empty() {
            "none".to_string()
        } else {
            refused.join(", ")
        }
    );
    for a in &v.alerts {
        out.push_str(&alert_line(a));
    }
    out
}

/// One `[[alert]]` webhook: delivered, waiting, dropped by reason, and the last error.
fn alert_line(a: &AlertStatus) -> String {
    let dropped: Vec<String> = a
        .dropped
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(why, n)| format!("{n} {}", why.replace('_', " ")))
        .collect();
    let mut line = format!(
        "alert       {} ({}): {} sent, {} queued; dropped: {}",
        or_dash(&a.name),
        or_dash(&a.format),
        a.sent,
        a.queued,
        if dropped.is_empty() {
            "none".to_string()
        } else {
            dropped.join(", ")
        }
    );
    if let Some(e) = &a.last_error {
        let at = a.last_error_at_unix.map_or("-".into(), utc);
        line.push_str(&format!("; last error at {at}: {e}"));
    }
    line.push('\n');
    line
}

/// Left-aligned columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|x| x.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// "3m ago" from Unix milliseconds, against this machine's clock.
fn ago(unix_ms: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    format!("{} ago", human_duration(now - unix_ms as f64 / 1e3))
}

pub(crate) fn services(v: &ServicesReply) -> String {
    let mut out = String::new();
    if !v.ipvs.available {
        let _ = writeln!(out, "IPVS: UNAVAILABLE: {}\n", opt(&v.ipvs.error));
    }
    if v.virtual_servers.is_empty() {
        out.push_str("no virtual servers\n");
        return out;
    }
    let mut rows = vec![vec![
        "VIRTUAL SERVER / REAL SERVER".to_string(),
        "SCHED/FWD".into(),
        "WEIGHT".into(),
        "KERNEL".into(),
        "HEALTH".into(),
        "CONNS".into(),
        "CHECK".into(),
        "LAST FAILURE".into(),
        "LAST RESULT".into(),
    ]];
    for vs in &v.virtual_servers {
        let key = match vs.fwmark {
            Some(mark) => format!("FWM {mark} {}", family(&vs.family)),
            None => format!("{} {}", opt(&vs.protocol).to_uppercase(), opt(&vs.address)),
        };
        let mut extra = String::new();
        // A group: how many more services share these real servers and checks.
        if !vs.group.is_empty() {
            let _ = write!(extra, " +{} services", vs.group.len());
        }
        if let Some(p) = &vs.persistence {
            let _ = write!(extra, " persistent {p}");
        }
        let mut quorum = match vs.has_quorum {
            Some(true) => "quorum".to_string(),
            Some(false) if vs.sorry_active => "NO QUORUM: sorry server".to_string(),
            Some(false) => "NO QUORUM".to_string(),
            None => "pending".to_string(),
        };
        // By weight the numbers are not obvious from the rows below: show them.
        if vs.quorum_by == "weight" {
            let _ = write!(quorum, " (weight {}/{})", vs.quorum_counted, vs.quorum);
        }
        // BGP: whether this director draws the VIP's traffic, and why not.
        if let Some(a) = &vs.announce {
            if a.announced {
                quorum.push_str(", announced");
            } else {
                let _ = write!(quorum, ", WITHDRAWN: {}", or_dash(&a.reason));
            }
        }
        rows.push(vec![
            format!("{} ({}){extra}", key, or_dash(&vs.name)),
            or_dash(&vs.scheduler).to_string(),
            String::new(),
            match vs.in_kernel {
                Some(false) => "absent".to_string(),
                _ => String::new(),
            },
            quorum,
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        if !vs.group.is_empty() {
            rows.push(group_row(vs));
        }
        for rs in &vs.real_servers {
            // Every check, `+` between them (all must pass); a daemon that sends only
            // `check` (older) shows that one.
            let summaries: Vec<&vigil_proto::CheckSummary> = if rs.checks.is_empty() {
                rs.check.iter().collect()
            } else {
                rs.checks.iter().map(|c| &c.summary).collect()
            };
            let check = if summaries.is_empty() {
                "none".to_string()
            } else {
                summaries
                    .iter()
                    .map(|c| {
                        let target = if c.target.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", c.target)
                        };
                        format!(
                            "{}{} every {}",
                            or_dash(&c.kind),
                            target,
                            or_dash(&c.interval)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" + ")
            };
            let mut health = rs.health.as_str().to_string();
            if rs.drained {
                health.push_str(" (drained)");
            }
            let conns = match (rs.active_conns, rs.inactive_conns) {
                (Some(a), Some(i)) => format!("{a}/{i}"),
                _ => "-".to_string(),
            };
            let mut last = String::new();
            if let Some(us) = rs.last_latency_us {
                let _ = write!(last, "{:.1}ms ", us as f64 / 1e3);
            }
            if let Some(r) = &rs.reason {
                last.push_str(r);
            }
            if let Some(ms) = rs.since_unix_ms {
                let _ = write!(last, " (since {})", ago(ms));
            }
            // The cause of the last failed run, also while the server passes now.
            let failure = match rs.last_failure.as_deref() {
                Some(cause) => match rs.last_failure_unix_ms {
                    Some(ms) => format!("{cause} {}", ago(ms)),
                    None => cause.to_string(),
                },
                None => "-".to_string(),
            };
            let weight = match rs.dynamic_weight {
                Some(w) if w != rs.weight => format!("{} (checks: {w})", rs.weight),
                _ => rs.weight.to_string(),
            };
            rows.push(vec![
                format!("  -> {}", rs.address),
                or_dash(&rs.forwarding).to_string(),
                weight,
                opt(&rs.kernel_weight),
                health,
                conns,
                check,
                failure,
                last.trim().to_string(),
            ]);
        }
        for d in &vs.dns {
            rows.push(dns_row(d));
        }
    }
    out.push_str(&table(&rows));
    out
}

/// A `real_servers_from_dns` entry under its virtual server: the last good answer, the
/// last error (kept until a good answer), when it is resolved next.
fn dns_row(d: &vigil_proto::DnsSourceView) -> Vec<String> {
    let failing = d.last_error.is_some();
    let mut last = format!(
        "{} {}",
        d.real_servers.len(),
        if d.real_servers.len() == 1 {
            "server"
        } else {
            "servers"
        }
    );
    if let Some(t) = d.ttl_s {
        let _ = write!(last, ", TTL {t}s");
    }
    if let Some(ms) = d.last_success_unix_ms {
        let _ = write!(last, ", resolved {}", ago(ms));
    }
    let _ = write!(last, ", {}/{} failed", d.failures, d.resolutions);
    if let Some(ms) = d.next_resolution_unix_ms {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let _ = write!(
            last,
            ", next in {}",
            human_duration(ms.saturating_sub(now) as f64 / 1e3)
        );
    }
    let failure = match (&d.last_error, d.last_error_unix_ms) {
        (Some(e), Some(ms)) => format!("{e} {}", ago(ms)),
        (Some(e), None) => e.clone(),
        (None, _) => "-".to_string(),
    };
    vec![
        format!("  <- DNS {} {}", or_dash(&d.record), or_dash(&d.name)),
        String::new(),
        String::new(),
        String::new(),
        if failing { "FAILING (kept)" } else { "ok" }.to_string(),
        String::new(),
        String::new(),
        failure,
        last,
    ]
}

fn family(f: &vigil_proto::Family) -> &str {
    match f {
        vigil_proto::Family::Ipv4 => "ipv4",
        vigil_proto::Family::Ipv6 => "ipv6",
        vigil_proto::Family::Other(f) => f,
    }
}

pub(crate) fn drain(v: &DrainReply) -> String {
    let what = match v.real_server {
        Some(rs) => rs.to_string(),
        None => {
            let all: Vec<String> = v.real_servers.iter().map(ToString::to_string).collect();
            format!("all {} real servers ({})", all.len(), all.join(", "))
        }
    };
    let mut out = format!(
        "{} {} of {}{}\n",
        if v.drained { "drained" } else { "enabled" },
        what,
        or_dash(&v.virtual_server),
        if v.changed { "" } else { " (it already was)" },
    );
    for w in &v.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

pub(crate) fn vrrp(v: &VrrpReply) -> String {
    if v.instances.is_empty() {
        return "no VRRP instances\n".to_string();
    }
    let mut rows = vec![vec![
        "INSTANCE".to_string(),
        "INTERFACE".into(),
        "VRID".into(),
        "VER".into(),
        "PRIO".into(),
        "STATE".into(),
        "MASTER".into(),
        "ADVERT".into(),
        "VIPS".into(),
        "SENT".into(),
        "RCVD".into(),
        "DROPS".into(),
        "LAST CHANGE".into(),
    ]];
    for i in &v.instances {
        // Excluded addresses (held, not advertised) follow the advertised ones, marked.
        let vips: Vec<String> = i
            .vips
            .iter()
            .cloned()
            .chain(i.vips_excluded.iter().map(|v| format!("{v}(excl)")))
            .collect();
        let live = i.live.as_ref();
        let drops = live
            .map(|l| {
                l.drops
                    .iter()
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "-".into());
        let last = match live.and_then(|l| l.last_transition.as_ref()) {
            Some(t) => format!(
                "{} -> {} ({}) {}",
                t.from.as_str(),
                t.to.as_str(),
                t.reason.as_str(),
                utc(t.at_unix)
            ),
            None => "-".into(),
        };
        let count =
            |f: fn(&vigil_proto::LiveStatus) -> u64| live.map_or("-".into(), |l| f(l).to_string());
        // Adverts the reply rate limit held back, only when there were any.
        let sent = match live.map(|l| l.replies_limited) {
            Some(n) if n > 0 => format!("{} ({n} limited)", count(|l| l.adverts_sent)),
            _ => count(|l| l.adverts_sent),
        };
        let mut state = i.state.as_str().to_string();
        if live.is_some_and(|l| l.standing_down) {
            state.push_str(" (handed over)");
        }
        rows.push(vec![
            or_dash(&i.name).to_string(),
            or_dash(&i.interface).to_string(),
            nonzero(u64::from(i.vrid)),
            nonzero(u64::from(i.version)),
            nonzero(u64::from(i.effective_priority)),
            state,
            opt(&live.and_then(|l| l.master)),
            or_dash(&i.advert_interval).to_string(),
            vips.join(","),
            sent,
            count(|l| l.adverts_received),
            drops,
            last,
        ]);
    }
    let mut out = table(&rows);
    for i in &v.instances {
        if let Some(e) = live_error(i) {
            let _ = writeln!(out, "{}: {e}", or_dash(&i.name));
        }
        if let Some(r) = &i.fault_reason {
            let _ = writeln!(out, "{}: held in fault: {r}", or_dash(&i.name));
        }
    }
    out
}

fn live_error(i: &vigil_proto::InstanceView) -> Option<&str> {
    i.live.as_ref()?.error.as_deref()
}

/// One `vrrp --watch` event line; `None` for an event this vigilctl does not know (the
/// caller prints it as it came).
pub(crate) fn vrrp_event(e: &Event) -> Option<String> {
    Some(match e {
        Event::VrrpState(e) => format!(
            "{}  {}  {} -> {}  ({}, priority {})",
            at_ms(e.at_unix_ms),
            or_dash(&e.instance),
            e.from.as_str(),
            e.to.as_str(),
            e.reason.as_str(),
            e.priority
        ),
        Event::Lagged(l) => format!("(missed {} state changes)", l.missed),
        _ => return None,
    })
}

/// One line per event of `vigilctl events`: time, kind, what; `None` for an event this
/// vigilctl does not know (the caller prints it as it came).
pub(crate) fn event(e: &Event) -> Option<String> {
    Some(match e {
        Event::VrrpState(v) => format!(
            "{}  vrrp    {}  {} -> {}  ({}, priority {})",
            at_ms(v.at_unix_ms),
            or_dash(&v.instance),
            v.from.as_str(),
            v.to.as_str(),
            v.reason.as_str(),
            v.priority
        ),
        Event::Health(h) => format!(
            "{}  health  {} {} {}: {}",
            at_ms(h.at_unix_ms),
            or_dash(&h.virtual_server),
            h.real_server,
            h.health.as_str().to_uppercase(),
            or_dash(&h.reason)
        ),
        Event::Drain(d) => format!(
            "{}  drain   {} {} {}",
            at_ms(d.at_unix_ms),
            or_dash(&d.virtual_server),
            d.real_server,
            if d.drained { "drained" } else { "enabled" }
        ),
        Event::Quorum(q) => format!(
            "{}  quorum  {} {}",
            at_ms(q.at_unix_ms),
            or_dash(&q.virtual_server),
            if q.has_quorum { "regained" } else { "LOST" }
        ),
        Event::Reload(r) => {
            let mut line = format!(
                "{}  reload  {} by {}: generation {}",
                at_ms(r.at_unix_ms),
                if r.ok { "ok" } else { "REJECTED" },
                or_dash(r.trigger.as_str()),
                r.generation
            );
            for err in &r.errors {
                let _ = write!(line, "\n        {err}");
            }
            line
        }
        Event::IpvsFault(f) => {
            let mut line = format!(
                "{}  ipvs    {}",
                at_ms(f.at_unix_ms),
                f.reason.as_deref().unwrap_or("IPVS can be programmed")
            );
            let (held, released) = (f.held.join(", "), f.released.join(", "));
            if !held.is_empty() {
                let _ = write!(line, "; VRRP held in fault: {held}");
            }
            if !released.is_empty() {
                let _ = write!(line, "; VRRP released: {released}");
            }
            line
        }
        Event::DnsResolution(d) => {
            let mut line = format!(
                "{}  dns     {} {} {}: ",
                at_ms(d.at_unix_ms),
                or_dash(&d.virtual_server),
                or_dash(&d.record),
                or_dash(&d.name)
            );
            if d.ok {
                let list = |v: &[std::net::SocketAddr]| {
                    v.iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                let _ = write!(line, "{} real servers", d.real_servers.len());
                if !d.added.is_empty() {
                    let _ = write!(line, "; added {}", list(&d.added));
                }
                if !d.removed.is_empty() {
                    let _ = write!(line, "; removed {}", list(&d.removed));
                }
            } else {
                let _ = write!(
                    line,
                    "FAILED: {}; keeping {} real servers",
                    d.error.as_deref().unwrap_or("-"),
                    d.real_servers.len()
                );
            }
            line
        }
        Event::Announce(a) => format!(
            "{}  bgp     {} {} {} ({})",
            at_ms(a.at_unix_ms),
            or_dash(&a.virtual_server),
            a.address,
            if a.announced {
                "announced"
            } else {
                "WITHDRAWN"
            },
            or_dash(&a.reason)
        ),
        Event::Lagged(l) => format!("(missed {} events: this client was too slow)", l.missed),
        Event::Subscribed | Event::Other => return None,
    })
}

pub(crate) fn vrrp_control(v: &VrrpControlReply) -> String {
    format!(
        "{}: {} requested (was {})\n",
        or_dash(&v.instance),
        v.action.as_str(),
        v.state_before.as_str()
    )
}

pub(crate) fn reload(v: &ReloadRecord) -> String {
    let mut out = format!(
        "reloaded: generation {} in {:.1} ms\n",
        nonzero(v.generation),
        v.duration_ms
    );
    for w in &v.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    out
}

/// The row under a group's virtual server: its other services (the first few), the
/// absent ones marked.
fn group_row(vs: &vigil_proto::VirtualServerView) -> Vec<String> {
    const SHOWN: usize = 8;
    let mut list: Vec<String> = vs
        .group
        .iter()
        .take(SHOWN)
        .map(|g| match g.in_kernel {
            Some(false) => format!("{} (absent)", g.service),
            _ => g.service.clone(),
        })
        .collect();
    if vs.group.len() > SHOWN {
        list.push(format!("and {} more", vs.group.len() - SHOWN));
    }
    let absent = vs
        .group
        .iter()
        .filter(|g| g.in_kernel == Some(false))
        .count();
    let mut row = vec![String::new(); 9];
    row[0] = format!("  also {}", list.join(", "));
    if absent > 0 {
        row[3] = format!("{absent} absent");
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A reply or event as vigilctl decodes it from the wire.
    fn typed<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn drain_names_one_real_server_or_all_of_them() {
        let one = drain(&typed(json!({
            "virtual_server": "web", "real_server": "10.0.0.1:80", "drained": true,
            "changed": false, "warnings": []
        })));
        assert_eq!(one, "drained 10.0.0.1:80 of web (it already was)\n");
        let all = drain(&typed(json!({
            "virtual_server": "web", "real_servers": ["10.0.0.1:80", "10.0.0.2:80"],
            "drained": true, "changed": true,
            "warnings": ["the virtual server is drained whole: its route is withdrawn now, the drain reaches IPVS in 3s"]
        })));
        assert_eq!(
            all,
            "drained all 2 real servers (10.0.0.1:80, 10.0.0.2:80) of web\n\
             warning: the virtual server is drained whole: its route is withdrawn now, the drain reaches IPVS in 3s\n"
        );
        let enabled = drain(&typed(json!({
            "virtual_server": "web", "real_servers": ["10.0.0.1:80"], "drained": false,
            "changed": true
        })));
        assert_eq!(enabled, "enabled all 1 real servers (10.0.0.1:80) of web\n");
    }

    #[test]
    fn vrrp_table_shows_live_state_counters_and_errors() {
        let v = json!({"instances": [{
            "name": "web", "interface": "eth0", "vrid": 51, "version": 3,
            "effective_priority": 150, "state": "backup", "standing_down": true,
            "master": "10.0.0.2", "advert_interval": "100ms", "vips": ["10.0.0.100/24"],
            "vips_excluded": ["10.0.0.200/24"],
            "adverts_sent": 12, "adverts_received": 40, "drops": {"vrid": 3, "ttl": 1},
            "replies_limited": 7,
            "last_transition": {"from": "master", "to": "backup", "reason": "handover",
                                "at_unix": 0.0},
            "error": null
        }, {
            "name": "dns", "interface": "bond0", "state": "initialize",
            "error": "interface bond0: No such device"
        }]});
        let out = vrrp(&typed(v));
        let web = out.lines().find(|l| l.starts_with("web")).unwrap();
        for want in [
            "backup (handed over)",
            "10.0.0.2",
            "ttl=1,vrid=3",
            "12 (7 limited)",
            "master -> backup (handover)",
            "10.0.0.100/24,10.0.0.200/24(excl)",
        ] {
            assert!(web.contains(want), "{want}: {out}");
        }
        assert!(
            out.contains("dns: interface bond0: No such device"),
            "{out}"
        );
    }

    #[test]
    fn instances_held_in_fault_by_the_daemon_say_why() {
        let v = json!({"instances": [{
            "name": "web", "interface": "eth0", "state": "fault", "error": null,
            "fault_reason": "IPVS cannot be programmed: load ip_vs"
        }]});
        let v: VrrpReply = typed(v);
        assert!(
            vrrp(&v).contains("web: held in fault: IPVS cannot be programmed: load ip_vs"),
            "{}",
            vrrp(&v)
        );
        let held = json!({"event": "ipvs_fault", "reason": "IPVS cannot be programmed: x",
            "held": ["web"], "released": [], "at_unix_ms": 0});
        let event = |e| event(&typed(e)).unwrap();
        assert_eq!(
            event(held),
            "1970-01-01 00:00:00 UTC  ipvs    IPVS cannot be programmed: x; VRRP held in fault: web"
        );
        let cleared = json!({"event": "ipvs_fault", "reason": null, "held": [],
            "released": ["web"], "at_unix_ms": 0});
        assert!(
            event(cleared.clone()).ends_with("ipvs    IPVS can be programmed; VRRP released: web"),
            "{}",
            event(cleared)
        );
    }

    #[test]
    fn vrrp_events_are_one_line_each() {
        let e = json!({"event": "vrrp_state", "instance": "web", "from": "backup",
                       "to": "master", "reason": "master_down", "priority": 100, "at_unix_ms": 0});
        let vrrp_event = |e| vrrp_event(&typed(e)).unwrap();
        assert_eq!(
            vrrp_event(e),
            "1970-01-01 00:00:00 UTC  web  backup -> master  (master_down, priority 100)"
        );
        assert_eq!(
            vrrp_event(json!({"event": "lagged", "missed": 3})),
            "(missed 3 state changes)"
        );
    }

    #[test]
    fn every_event_time_is_in_milliseconds_and_unknown_events_are_left_to_the_caller() {
        let reload = json!({"event": "reload", "ok": false, "trigger": "sighup",
            "generation": 3, "errors": ["c.toml:1:1: error: x"], "at_unix_ms": 951_782_400_500u64});
        assert_eq!(
            event(&typed(reload)).unwrap(),
            "2000-02-29 00:00:00 UTC  reload  REJECTED by sighup: generation 3\n        c.toml:1:1: error: x"
        );
        let state = json!({"event": "vrrp_state", "instance": "web", "from": "master",
            "to": "standby", "reason": "maintenance", "priority": 0, "at_unix_ms": 0});
        assert_eq!(
            event(&typed(state)).unwrap(),
            "1970-01-01 00:00:00 UTC  vrrp    web  master -> standby  (maintenance, priority 0)"
        );
        let unknown: Event = typed(json!({"event": "certificate_expiry", "days": 3}));
        assert_eq!(event(&unknown), None);
        assert_eq!(vrrp_event(&unknown), None);
    }

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400.0), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_000_000.0), "2026-11-18 11:06:40 UTC");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_duration(5.2), "5s");
        assert_eq!(human_duration(65.0), "1m 5s");
        assert_eq!(human_duration(7384.0), "2h 3m 4s");
        assert_eq!(human_duration(90_061.0), "1d 1h 1m");
    }

    #[test]
    fn services_table_lists_real_servers_under_their_service() {
        let v = json!({"virtual_servers": [{
            "name": "web", "protocol": "tcp", "address": "192.0.2.100:80", "fwmark": null,
            "scheduler": "wrr", "persistence": null,
            "real_servers": [{"address": "10.0.0.11:80", "forwarding": "dr", "weight": 100,
                              "health": "unknown",
                              "check": {"kind": "http", "target": "GET /healthz", "interval": "1s"}}]
        }]});
        let text = services(&typed(v));
        assert!(text.contains("TCP 192.0.2.100:80 (web)"), "{text}");
        assert!(text.contains("  -> 10.0.0.11:80"), "{text}");
        assert!(text.contains("http GET /healthz every 1s"), "{text}");
        assert!(text.contains("LAST FAILURE"), "{text}");
    }

    #[test]
    fn services_table_shows_dns_entries_under_their_service() {
        let v = json!({"virtual_servers": [{
            "name": "web", "protocol": "tcp", "address": "192.0.2.100:80",
            "real_servers": [],
            "dns": [{"name": "web.test", "record": "A", "real_servers": ["10.0.0.11:80"],
                     "ttl_s": 30, "last_error": "timed out", "resolutions": 4, "failures": 1}]
        }]});
        let text = services(&typed(v));
        assert!(text.contains("  <- DNS A web.test"), "{text}");
        assert!(text.contains("FAILING (kept)"), "{text}");
        assert!(text.contains("1 server, TTL 30s, 1/4 failed"), "{text}");
        assert!(text.contains("timed out"), "{text}");
    }

    #[test]
    fn services_table_shows_a_group_as_one_virtual_server_with_its_services() {
        let group: Vec<_> = (2..=11)
            .map(|i| json!({"service": format!("tcp 192.0.2.{i}:80"), "in_kernel": i != 3}))
            .collect();
        let v = json!({"virtual_servers": [{
            "name": "web", "protocol": "tcp", "address": "192.0.2.1:80",
            "scheduler": "rr", "in_kernel": false, "group": group,
            "real_servers": [{"address": "10.0.0.11:80", "forwarding": "nat", "weight": 1,
                              "health": "up"}]
        }]});
        let text = services(&typed(v));
        assert!(
            text.contains("TCP 192.0.2.1:80 (web) +10 services"),
            "{text}"
        );
        let also = text
            .lines()
            .find(|l| l.contains("also"))
            .unwrap_or_default();
        assert!(
            also.contains("also tcp 192.0.2.2:80, tcp 192.0.2.3:80 (absent),"),
            "{text}"
        );
        assert!(
            also.contains("and 2 more") && also.contains("1 absent"),
            "{text}"
        );
    }

    #[test]
    fn services_table_shows_the_announcement() {
        let v = json!({"virtual_servers": [{
            "name": "web", "protocol": "tcp", "address": "192.0.2.100:80",
            "scheduler": "mh", "has_quorum": true,
            "announce": {"address": "192.0.2.100", "announced": true, "reason": "healthy"},
            "real_servers": []
        }, {
            "name": "api", "protocol": "tcp", "address": "192.0.2.101:80",
            "scheduler": "mh", "has_quorum": false,
            "announce": {"address": "192.0.2.101", "announced": false, "reason": "quorum lost"},
            "real_servers": []
        }]});
        let text = services(&typed(v));
        assert!(text.contains("quorum, announced"), "{text}");
        assert!(text.contains("NO QUORUM, WITHDRAWN: quorum lost"), "{text}");
    }

    #[test]
    fn services_table_shows_the_last_failure_cause() {
        let v = json!({"virtual_servers": [{
            "name": "web", "protocol": "tcp", "address": "192.0.2.100:80",
            "scheduler": "wrr",
            "real_servers": [{"address": "10.0.0.11:80", "forwarding": "dr", "weight": 100,
                              "health": "up", "reason": "HTTP 200 from 10.0.0.11:80 GET /",
                              "last_failure": "http_status", "last_failure_unix_ms": 0,
                              "check": {"kind": "http", "target": "GET /", "interval": "1s"}},
                             {"address": "10.0.0.12:80", "forwarding": "dr", "weight": 100,
                              "health": "up", "last_failure": null,
                              "check": {"kind": "http", "target": "GET /", "interval": "1s"}}]
        }]});
        let text = services(&typed(v));
        let line = |addr: &str| {
            text.lines()
                .find(|l| l.contains(addr))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line("10.0.0.11:80").contains("http_status "), "{text}");
        assert!(line("10.0.0.11:80").contains(" ago"), "{text}");
        assert!(line("10.0.0.12:80").contains("every 1s  -"), "{text}");
    }

    #[test]
    fn missing_fields_show_as_dashes() {
        let text = status(&typed(json!({})));
        assert!(
            text.starts_with("director    - (vigild -, pid -)"),
            "{text}"
        );
    }

    #[test]
    fn alert_webhooks_show_deliveries_drops_and_the_last_error() {
        let v = json!({"alerts": [
            {"name": "ops", "format": "json", "sent": 120, "queued": 0,
             "dropped": {"queue_full": 0, "failed": 3, "rejected": 0}, "last_error": null},
            {"name": "am", "format": "alertmanager", "sent": 2, "queued": 5,
             "dropped": {"queue_full": 1, "failed": 0}, "last_error": "HTTP 500",
             "last_error_at_unix": 0.0}
        ]});
        let text = status(&typed(v));
        assert!(
            text.contains("alert       ops (json): 120 sent, 0 queued; dropped: 3 failed\n"),
            "{text}"
        );
        assert!(
            text.contains("alert       am (alertmanager): 2 sent, 5 queued; dropped: 1 queue full; last error at 1970-01-01 00:00:00 UTC: HTTP 500\n"),
            "{text}"
        );
    }
}
