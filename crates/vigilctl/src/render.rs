//! Human tables from status-socket replies. Replies are read leniently (a missing field
//! shows as "-") so that a vigilctl of another version still prints what it can.

use std::fmt::Write;

use serde_json::Value;

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(x)) => x.clone(),
        Some(other) => other.to_string(),
    }
}

fn f64_of(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
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
    let secs = unix.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm), valid for the proleptic Gregorian
    // calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

pub(crate) fn status(v: &Value) -> String {
    let mut out = String::new();
    let counts = v.get("counts").cloned().unwrap_or(Value::Null);
    let count = |k: &str| counts.get(k).and_then(Value::as_u64).unwrap_or(0);
    let _ = writeln!(
        out,
        "director    {} (vigild {}, pid {})",
        s(v, "director"),
        s(v, "version"),
        s(v, "pid")
    );
    let _ = writeln!(
        out,
        "uptime      {} (since {})",
        f64_of(v, "uptime_secs").map_or("-".into(), human_duration),
        f64_of(v, "started_at_unix").map_or("-".into(), utc)
    );
    let _ = writeln!(
        out,
        "config      {} (generation {}, loaded {})",
        s(v, "config_file"),
        s(v, "config_generation"),
        f64_of(v, "config_loaded_at_unix").map_or("-".into(), utc)
    );
    let _ = writeln!(
        out,
        "cluster     {}, {}, {}",
        plural(count("vrrp_instances"), "VRRP instance", "VRRP instances"),
        plural(
            count("virtual_servers"),
            "virtual server",
            "virtual servers"
        ),
        plural(count("real_servers"), "real server", "real servers"),
    );
    let reloads = list(v, "reloads");
    match reloads.last() {
        None => {
            let _ = writeln!(out, "reloads     none");
        }
        Some(last) => {
            let ok = last.get("ok") == Some(&Value::Bool(true));
            let _ = writeln!(
                out,
                "reloads     {} (last: {} at {} by {})",
                reloads.len(),
                if ok { "ok" } else { "REJECTED" },
                f64_of(last, "at_unix").map_or("-".into(), utc),
                s(last, "trigger")
            );
            for e in list(last, "errors") {
                let _ = writeln!(out, "            {}", e.as_str().unwrap_or("-"));
            }
        }
    }
    if let Some(sock) = v.get("status_socket") {
        let n = |k: &str| sock.get(k).and_then(Value::as_u64).unwrap_or(0);
        let refused: Vec<String> = sock
            .get("refused")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(why, n)| {
                let n = n.as_u64().filter(|n| *n > 0)?;
                Some(format!("{n} {}", why.replace('_', " ")))
            })
            .collect();
        let _ = writeln!(
            out,
            "socket      {}, {} following events; refused: {}",
            plural(n("connections"), "client", "clients"),
            n("subscribers"),
            if refused.is_empty() {
                "none".to_string()
            } else {
                refused.join(", ")
            }
        );
    }
    for a in list(v, "alerts") {
        out.push_str(&alert_line(a));
    }
    out
}

/// One `[[alert]]` webhook: delivered, waiting, dropped by reason, and the last error.
fn alert_line(a: &Value) -> String {
    let n = |v: &Value, k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let dropped: Vec<String> = a
        .get("dropped")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(why, n)| {
            let n = n.as_u64().filter(|n| *n > 0)?;
            Some(format!("{n} {}", why.replace('_', " ")))
        })
        .collect();
    let mut line = format!(
        "alert       {} ({}): {} sent, {} queued; dropped: {}",
        s(a, "name"),
        s(a, "format"),
        n(a, "sent"),
        n(a, "queued"),
        if dropped.is_empty() {
            "none".to_string()
        } else {
            dropped.join(", ")
        }
    );
    if let Some(e) = a.get("last_error").and_then(Value::as_str) {
        let at = f64_of(a, "last_error_at_unix").map_or("-".into(), utc);
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

pub(crate) fn services(v: &Value) -> String {
    let mut out = String::new();
    if let Some(ipvs) = v.get("ipvs")
        && ipvs.get("available") == Some(&Value::Bool(false))
    {
        let _ = writeln!(out, "IPVS: UNAVAILABLE: {}\n", s(ipvs, "error"));
    }
    let services = list(v, "virtual_servers");
    if services.is_empty() {
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
        "LAST RESULT".into(),
    ]];
    for vs in services {
        let key = match vs.get("fwmark").and_then(Value::as_u64) {
            Some(mark) => format!("FWM {mark} {}", s(vs, "family")),
            None => format!("{} {}", s(vs, "protocol").to_uppercase(), s(vs, "address")),
        };
        let mut extra = String::new();
        if let Some(p) = vs.get("persistence").and_then(Value::as_str) {
            let _ = write!(extra, " persistent {p}");
        }
        let quorum = match vs.get("has_quorum") {
            Some(Value::Bool(true)) => "quorum".to_string(),
            Some(Value::Bool(false)) if vs.get("sorry_active") == Some(&Value::Bool(true)) => {
                "NO QUORUM: sorry server".to_string()
            }
            Some(Value::Bool(false)) => "NO QUORUM".to_string(),
            _ => "pending".to_string(),
        };
        rows.push(vec![
            format!("{} ({}){extra}", key, s(vs, "name")),
            s(vs, "scheduler"),
            String::new(),
            match vs.get("in_kernel") {
                Some(Value::Bool(false)) => "absent".to_string(),
                _ => String::new(),
            },
            quorum,
            String::new(),
            String::new(),
            String::new(),
        ]);
        for rs in list(vs, "real_servers") {
            let check = match rs.get("check") {
                Some(c) if c.is_object() => {
                    let target = s(c, "target");
                    let target = if target == "-" || target.is_empty() {
                        String::new()
                    } else {
                        format!(" {target}")
                    };
                    format!("{}{} every {}", s(c, "kind"), target, s(c, "interval"))
                }
                _ => "none".to_string(),
            };
            let mut health = s(rs, "health");
            if rs.get("drained") == Some(&Value::Bool(true)) {
                health.push_str(" (drained)");
            }
            let conns = match (
                rs.get("active_conns").and_then(Value::as_u64),
                rs.get("inactive_conns").and_then(Value::as_u64),
            ) {
                (Some(a), Some(i)) => format!("{a}/{i}"),
                _ => "-".to_string(),
            };
            let mut last = String::new();
            if let Some(us) = rs.get("last_latency_us").and_then(Value::as_u64) {
                let _ = write!(last, "{:.1}ms ", us as f64 / 1e3);
            }
            if let Some(r) = rs.get("reason").and_then(Value::as_str) {
                last.push_str(r);
            }
            if let Some(ms) = rs.get("since_unix_ms").and_then(Value::as_u64) {
                let _ = write!(last, " (since {})", ago(ms));
            }
            rows.push(vec![
                format!("  -> {}", s(rs, "address")),
                s(rs, "forwarding"),
                s(rs, "weight"),
                s(rs, "kernel_weight"),
                health,
                conns,
                check,
                last.trim().to_string(),
            ]);
        }
    }
    out.push_str(&table(&rows));
    out
}

pub(crate) fn drain(v: &Value) -> String {
    let mut out = format!(
        "{} {} of {}{}\n",
        if v.get("drained") == Some(&Value::Bool(true)) {
            "drained"
        } else {
            "enabled"
        },
        s(v, "real_server"),
        s(v, "virtual_server"),
        if v.get("changed") == Some(&Value::Bool(false)) {
            " (it already was)"
        } else {
            ""
        },
    );
    for w in list(v, "warnings") {
        let _ = writeln!(out, "warning: {}", w.as_str().unwrap_or("-"));
    }
    out
}

pub(crate) fn vrrp(v: &Value) -> String {
    let instances = list(v, "instances");
    if instances.is_empty() {
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
    for i in instances {
        // Excluded addresses (held, not advertised) follow the advertised ones, marked.
        let vips: Vec<String> = list(i, "vips")
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .chain(
                list(i, "vips_excluded")
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|v| format!("{v}(excl)")),
            )
            .collect();
        let drops = i
            .get("drops")
            .and_then(Value::as_object)
            .map(|d| {
                d.iter()
                    .map(|(k, n)| format!("{k}={n}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "-".into());
        let last = match i.get("last_transition") {
            Some(t) if t.is_object() => format!(
                "{} -> {} ({}) {}",
                s(t, "from"),
                s(t, "to"),
                s(t, "reason"),
                f64_of(t, "at_unix").map_or("-".into(), utc)
            ),
            _ => "-".into(),
        };
        // Adverts the reply rate limit held back, only when there were any.
        let sent = match i.get("replies_limited").and_then(Value::as_u64) {
            Some(n) if n > 0 => format!("{} ({n} limited)", s(i, "adverts_sent")),
            _ => s(i, "adverts_sent"),
        };
        let mut state = s(i, "state");
        if i.get("standing_down") == Some(&Value::Bool(true)) {
            state.push_str(" (handed over)");
        }
        rows.push(vec![
            s(i, "name"),
            s(i, "interface"),
            s(i, "vrid"),
            s(i, "version"),
            s(i, "effective_priority"),
            state,
            s(i, "master"),
            s(i, "advert_interval"),
            vips.join(","),
            sent,
            s(i, "adverts_received"),
            drops,
            last,
        ]);
    }
    let mut out = table(&rows);
    for i in instances {
        if let Some(e) = i.get("error").and_then(Value::as_str) {
            let _ = writeln!(out, "{}: {e}", s(i, "name"));
        }
        if let Some(r) = i.get("fault_reason").and_then(Value::as_str) {
            let _ = writeln!(out, "{}: held in fault: {r}", s(i, "name"));
        }
    }
    out
}

/// One `vrrp --watch` event line.
pub(crate) fn vrrp_event(e: &Value) -> String {
    match e.get("event").and_then(Value::as_str) {
        Some("vrrp_state") => format!(
            "{}  {}  {} -> {}  ({}, priority {})",
            f64_of(e, "at_unix").map_or("-".into(), utc),
            s(e, "instance"),
            s(e, "from"),
            s(e, "to"),
            s(e, "reason"),
            s(e, "priority")
        ),
        Some("lagged") => format!("(missed {} state changes)", s(e, "missed")),
        _ => e.to_string(),
    }
}

/// One line per event of `vigilctl events`: time, kind, what.
pub(crate) fn event(e: &Value) -> String {
    let at_ms = |e: &Value| {
        e.get("at_unix_ms")
            .and_then(Value::as_f64)
            .map_or("-".into(), |ms| utc(ms / 1e3))
    };
    match e.get("event").and_then(Value::as_str) {
        Some("vrrp_state") => format!(
            "{}  vrrp    {}",
            f64_of(e, "at_unix").map_or("-".into(), utc),
            {
                let line = vrrp_event(e);
                // vrrp_event starts with the time too.
                line.split_once("  ")
                    .map_or(line.clone(), |(_, rest)| rest.to_string())
            }
        ),
        Some("health") => format!(
            "{}  health  {} {} {}: {}",
            at_ms(e),
            s(e, "virtual_server"),
            s(e, "real_server"),
            s(e, "health").to_uppercase(),
            s(e, "reason")
        ),
        Some("drain") => format!(
            "{}  drain   {} {} {}",
            at_ms(e),
            s(e, "virtual_server"),
            s(e, "real_server"),
            if e.get("drained") == Some(&Value::Bool(true)) {
                "drained"
            } else {
                "enabled"
            }
        ),
        Some("quorum") => format!(
            "{}  quorum  {} {}",
            at_ms(e),
            s(e, "virtual_server"),
            if e.get("has_quorum") == Some(&Value::Bool(true)) {
                "regained"
            } else {
                "LOST"
            }
        ),
        Some("reload") => {
            let ok = e.get("ok") == Some(&Value::Bool(true));
            let mut line = format!(
                "{}  reload  {} by {}: generation {}",
                f64_of(e, "at_unix").map_or("-".into(), utc),
                if ok { "ok" } else { "REJECTED" },
                s(e, "trigger"),
                s(e, "generation")
            );
            for err in list(e, "errors") {
                let _ = write!(line, "\n        {}", err.as_str().unwrap_or("-"));
            }
            line
        }
        Some("ipvs_fault") => {
            let names = |key| {
                list(e, key)
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut line = format!(
                "{}  ipvs    {}",
                at_ms(e),
                e.get("reason")
                    .and_then(Value::as_str)
                    .unwrap_or("IPVS can be programmed")
            );
            let (held, released) = (names("held"), names("released"));
            if !held.is_empty() {
                let _ = write!(line, "; VRRP held in fault: {held}");
            }
            if !released.is_empty() {
                let _ = write!(line, "; VRRP released: {released}");
            }
            line
        }
        Some("lagged") => format!(
            "(missed {} events: this client was too slow)",
            s(e, "missed")
        ),
        _ => e.to_string(),
    }
}

pub(crate) fn vrrp_control(v: &Value) -> String {
    format!(
        "{}: {} requested (was {})\n",
        s(v, "instance"),
        s(v, "action"),
        s(v, "state_before")
    )
}

pub(crate) fn reload(v: &Value) -> String {
    let mut out = format!(
        "reloaded: generation {} in {:.1} ms\n",
        s(v, "generation"),
        f64_of(v, "duration_ms").unwrap_or(0.0)
    );
    for w in list(v, "warnings") {
        let _ = writeln!(out, "warning: {}", w.as_str().unwrap_or("-"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let out = vrrp(&v);
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
        assert!(
            vrrp(&v).contains("web: held in fault: IPVS cannot be programmed: load ip_vs"),
            "{}",
            vrrp(&v)
        );
        let held = json!({"event": "ipvs_fault", "reason": "IPVS cannot be programmed: x",
            "held": ["web"], "released": [], "at_unix_ms": 0});
        assert_eq!(
            event(&held),
            "1970-01-01 00:00:00 UTC  ipvs    IPVS cannot be programmed: x; VRRP held in fault: web"
        );
        let cleared = json!({"event": "ipvs_fault", "reason": null, "held": [],
            "released": ["web"], "at_unix_ms": 0});
        assert!(
            event(&cleared).ends_with("ipvs    IPVS can be programmed; VRRP released: web"),
            "{}",
            event(&cleared)
        );
    }

    #[test]
    fn vrrp_events_are_one_line_each() {
        let e = json!({"event": "vrrp_state", "instance": "web", "from": "backup",
                       "to": "master", "reason": "master_down", "priority": 100, "at_unix": 0.0});
        assert_eq!(
            vrrp_event(&e),
            "1970-01-01 00:00:00 UTC  web  backup -> master  (master_down, priority 100)"
        );
        assert_eq!(
            vrrp_event(&json!({"event": "lagged", "missed": 3})),
            "(missed 3 state changes)"
        );
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
        let text = services(&v);
        assert!(text.contains("TCP 192.0.2.100:80 (web)"), "{text}");
        assert!(text.contains("  -> 10.0.0.11:80"), "{text}");
        assert!(text.contains("http GET /healthz every 1s"), "{text}");
    }

    #[test]
    fn missing_fields_show_as_dashes() {
        let text = status(&json!({}));
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
        let text = status(&v);
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
