//! What is sent: events as the status socket shows them (`json`), or conditions as
//! Prometheus Alertmanager webhook alerts (`alertmanager`, payload version 4). Pure:
//! events in, JSON out; the firing state is a plain map the caller keeps.
//!
//! Which events are alerts (docs/config.md, "`[[alert]]`"):
//!
//! | event | alert | fires when | resolves when |
//! | --- | --- | --- | --- |
//! | `health` | `VigilRealServerDown` | `health` is `down` | the server's `health` is `up` |
//! | `quorum` | `VigilQuorumLost` | `has_quorum` is false | `has_quorum` is true |
//! | `vrrp_state` | `VigilVrrpFault` | `to` is `fault` | the instance leaves `fault` |
//! | `ipvs_fault` | `VigilIpvsFault` | `reason` is set | `reason` is null |
//! | `reload` | `VigilReloadFailed` | `ok` is false | a reload succeeds |
//!
//! Operator drains and other VRRP transitions are not conditions: they go to `json`
//! webhooks only. A resolution is sent only for an alert that fired in this run of the
//! daemon (a restart forgets what fired before it; a first verdict of `up` at start
//! resolves nothing), so 10,000 healthy servers at start send nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use vigil_proto::rfc3339;

/// Labels or annotations, sorted (as Alertmanager shows them).
pub type Labels = BTreeMap<String, String>;

/// Longest annotation value sent (reload errors can be many lines).
const MAX_ANNOTATION: usize = 4096;

/// One condition read from an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub labels: Labels,
    pub annotations: Labels,
    pub firing: bool,
    /// When the event happened, Unix milliseconds.
    pub at_ms: u64,
}

/// The event's kind (`health`, `reload`, ...), if it has one.
pub fn kind(event: &Value) -> Option<&str> {
    event.get("event").and_then(Value::as_str)
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The event's time: `at_unix_ms`, or `at_unix` (seconds), or `now_ms`.
fn event_ms(event: &Value, now_ms: u64) -> u64 {
    if let Some(ms) = event.get("at_unix_ms").and_then(Value::as_u64) {
        return ms;
    }
    match event.get("at_unix").and_then(Value::as_f64) {
        Some(s) if s.is_finite() && s >= 0.0 => (s * 1000.0) as u64,
        _ => now_ms,
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_ANNOTATION {
        let mut end = MAX_ANNOTATION;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" [...]");
    }
    s
}

/// The condition an event reports, or `None` for events that are not alerts.
pub fn condition(event: &Value, director: &str, now_ms: u64) -> Option<Condition> {
    let mut labels = Labels::new();
    let mut annotations = Labels::new();
    let (name, severity, firing) = match kind(event)? {
        "health" => {
            let (vs, rs) = (text(event, "virtual_server"), text(event, "real_server"));
            let down = event.get("health").and_then(Value::as_str) == Some("down");
            annotations.insert(
                "summary".into(),
                format!("real server {rs} of {vs} is {}", text(event, "health")),
            );
            annotations.insert("description".into(), clip(text(event, "reason")));
            labels.insert("virtual_server".into(), vs);
            labels.insert("real_server".into(), rs);
            ("VigilRealServerDown", "warning", down)
        }
        "quorum" => {
            let vs = text(event, "virtual_server");
            let lost = event.get("has_quorum").and_then(Value::as_bool) == Some(false);
            annotations.insert(
                "summary".into(),
                format!(
                    "virtual server {vs} {} quorum",
                    if lost { "lost" } else { "has" }
                ),
            );
            labels.insert("virtual_server".into(), vs);
            ("VigilQuorumLost", "critical", lost)
        }
        "vrrp_state" => {
            let instance = text(event, "instance");
            let to = text(event, "to");
            annotations.insert(
                "summary".into(),
                format!(
                    "VRRP instance {instance} went from {} to {to}",
                    text(event, "from")
                ),
            );
            annotations.insert("description".into(), text(event, "reason"));
            labels.insert("vrrp_instance".into(), instance);
            ("VigilVrrpFault", "critical", to == "fault")
        }
        "ipvs_fault" => {
            let reason = text(event, "reason");
            let firing = !reason.is_empty();
            annotations.insert(
                "summary".into(),
                if firing {
                    "IPVS cannot be programmed".into()
                } else {
                    "IPVS can be programmed again".into()
                },
            );
            annotations.insert("description".into(), clip(reason));
            ("VigilIpvsFault", "critical", firing)
        }
        "reload" => {
            let failed = event.get("ok").and_then(Value::as_bool) == Some(false);
            let errors: Vec<String> = event
                .get("errors")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                .collect();
            annotations.insert(
                "summary".into(),
                if failed {
                    format!(
                        "reload rejected; still running generation {}",
                        text(event, "generation")
                    )
                } else {
                    format!("reloaded: generation {}", text(event, "generation"))
                },
            );
            if failed {
                annotations.insert("description".into(), clip(errors.join("\n")));
            }
            ("VigilReloadFailed", "warning", failed)
        }
        _ => return None,
    };
    labels.insert("alertname".into(), name.into());
    labels.insert("director".into(), director.into());
    labels.insert("severity".into(), severity.into());
    annotations.retain(|_, v| !v.is_empty());
    Some(Condition {
        labels,
        annotations,
        firing,
        at_ms: event_ms(event, now_ms),
    })
}

/// Alertmanager's alert identity: a hash of the sorted labels (FNV-1a, 64 bits), so the
/// same condition always has the same fingerprint, across restarts too.
pub fn fingerprint(labels: &Labels) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Alertmanager's "no end yet" (Go's zero time), as it sends for firing alerts.
const NO_END: &str = "0001-01-01T00:00:00Z";

/// The alerts that fired in this run, by fingerprint: when each started.
#[derive(Debug, Default)]
pub struct Firing {
    started: HashMap<String, u64>,
}

impl Firing {
    /// Updates the state with `c` and returns the alert to send, if any: a firing alert
    /// (again, with its first start, when it fires on), or the resolution of one that
    /// fired. A resolution of what never fired is not sent.
    pub fn alert(&mut self, c: &Condition) -> Option<Value> {
        let fp = fingerprint(&c.labels);
        let (starts, ends, status) = if c.firing {
            let starts = *self.started.entry(fp.clone()).or_insert(c.at_ms);
            (starts, NO_END.to_string(), "firing")
        } else {
            let starts = self.started.remove(&fp)?;
            (starts, rfc3339(c.at_ms.max(starts)), "resolved")
        };
        Some(json!({
            "status": status,
            "labels": c.labels,
            "annotations": c.annotations,
            "startsAt": rfc3339(starts),
            "endsAt": ends,
            "generatorURL": "",
            "fingerprint": fp,
        }))
    }

    pub fn len(&self) -> usize {
        self.started.len()
    }

    pub fn is_empty(&self) -> bool {
        self.started.is_empty()
    }
}

fn common(alerts: &[Value], key: &str) -> Value {
    let mut iter = alerts.iter().filter_map(|a| a.get(key)?.as_object());
    let Some(first) = iter.next() else {
        return json!({});
    };
    let mut out = first.clone();
    for other in iter {
        out.retain(|k, v| other.get(k) == Some(v));
    }
    Value::Object(out)
}

/// The Alertmanager webhook body (version 4) for `alerts` (each from [`Firing::alert`]):
/// `status` is `firing` while any of them fires.
pub fn alertmanager_body(receiver: &str, director: &str, alerts: &[Value]) -> Value {
    let firing = alerts
        .iter()
        .any(|a| a.get("status").and_then(Value::as_str) == Some("firing"));
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{director=\"{director}\"}}"),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": receiver,
        "groupLabels": {"director": director},
        "commonLabels": common(alerts, "labels"),
        "commonAnnotations": common(alerts, "annotations"),
        "externalURL": "",
        "alerts": alerts,
    })
}

/// The `json` body: the events as the status socket streams them.
pub fn json_body(director: &str, events: &[Value]) -> Value {
    json!({"director": director, "events": events})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(state: &str, at: u64) -> Value {
        json!({"event": "health", "virtual_server": "web", "real_server": "10.0.0.11:80",
               "health": state, "reason": "connect refused", "latency_us": 210, "at_unix_ms": at})
    }

    #[test]
    fn a_real_server_fires_then_resolves_with_its_first_start() {
        let mut f = Firing::default();
        let down = condition(&health("down", 1_795_000_000_123), "lb-a", 0).unwrap();
        assert!(down.firing);
        assert_eq!(down.labels["alertname"], "VigilRealServerDown");
        assert_eq!(down.labels["real_server"], "10.0.0.11:80");
        assert_eq!(down.labels["director"], "lb-a");
        let a = f.alert(&down).unwrap();
        assert_eq!(a["status"], "firing");
        assert_eq!(a["startsAt"], "2026-11-18T11:06:40.123Z");
        assert_eq!(a["endsAt"], NO_END);
        // Fires on (a second "down"): same start.
        let again = condition(&health("down", 1_795_000_005_000), "lb-a", 0).unwrap();
        assert_eq!(f.alert(&again).unwrap()["startsAt"], a["startsAt"]);
        let up = condition(&health("up", 1_795_000_010_000), "lb-a", 0).unwrap();
        let r = f.alert(&up).unwrap();
        assert_eq!(r["status"], "resolved");
        assert_eq!(r["startsAt"], a["startsAt"]);
        assert_eq!(r["endsAt"], "2026-11-18T11:06:50.000Z");
        assert_eq!(r["fingerprint"], a["fingerprint"]);
        assert!(f.is_empty());
    }

    #[test]
    fn what_never_fired_is_not_resolved() {
        let mut f = Firing::default();
        let up = condition(&health("up", 5), "lb-a", 0).unwrap();
        assert_eq!(f.alert(&up), None);
    }

    #[test]
    fn each_event_kind_maps_to_its_condition_or_none() {
        let c = |e: Value| condition(&e, "d", 7).map(|c| (c.labels["alertname"].clone(), c.firing));
        assert_eq!(
            c(
                json!({"event": "quorum", "virtual_server": "web", "has_quorum": false, "at_unix_ms": 1})
            ),
            Some(("VigilQuorumLost".into(), true))
        );
        assert_eq!(
            c(
                json!({"event": "vrrp_state", "instance": "web", "from": "master", "to": "fault",
                     "reason": "fault", "priority": 100, "at_unix": 1.5})
            ),
            Some(("VigilVrrpFault".into(), true))
        );
        assert_eq!(
            c(
                json!({"event": "vrrp_state", "instance": "web", "from": "fault", "to": "backup",
                     "reason": "fault_cleared", "priority": 100, "at_unix": 1.5})
            ),
            Some(("VigilVrrpFault".into(), false))
        );
        assert_eq!(
            c(json!({"event": "ipvs_fault", "reason": null, "held": [], "released": ["web"]})),
            Some(("VigilIpvsFault".into(), false))
        );
        assert_eq!(
            c(
                json!({"event": "reload", "ok": false, "trigger": "sighup", "generation": 3,
                     "errors": ["f:1:1: error: x"], "at_unix": 2.5})
            ),
            Some(("VigilReloadFailed".into(), true))
        );
        assert_eq!(
            c(
                json!({"event": "drain", "virtual_server": "web", "real_server": "a", "drained": true})
            ),
            None
        );
        assert_eq!(c(json!({"event": "lagged", "missed": 3})), None);
        assert_eq!(c(json!({"no": "kind"})), None);
        // Times: seconds, milliseconds, or now.
        let at = |e: Value| condition(&e, "d", 7).unwrap().at_ms;
        assert_eq!(
            at(json!({"event": "reload", "ok": true, "at_unix": 2.5})),
            2500
        );
        assert_eq!(
            at(json!({"event": "quorum", "has_quorum": true, "at_unix_ms": 9})),
            9
        );
        assert_eq!(at(json!({"event": "quorum", "has_quorum": true})), 7);
    }

    #[test]
    fn the_body_has_alertmanager_v4_fields_and_common_labels() {
        let mut f = Firing::default();
        let a = f
            .alert(&condition(&health("down", 1000), "lb-a", 0).unwrap())
            .unwrap();
        let q = f
            .alert(
                &condition(
                    &json!({"event": "quorum", "virtual_server": "web", "has_quorum": false, "at_unix_ms": 2000}),
                    "lb-a",
                    0,
                )
                .unwrap(),
            )
            .unwrap();
        let body = alertmanager_body("ops", "lb-a", &[a, q]);
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "ops");
        assert_eq!(body["truncatedAlerts"], 0);
        assert_eq!(body["groupLabels"], json!({"director": "lb-a"}));
        assert_eq!(
            body["commonLabels"],
            json!({"director": "lb-a", "virtual_server": "web"})
        );
        assert_eq!(body["alerts"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn fingerprints_are_stable_and_label_sensitive() {
        let mut l = Labels::new();
        l.insert("alertname".into(), "X".into());
        let a = fingerprint(&l);
        assert_eq!(a, fingerprint(&l.clone()));
        assert_eq!(a.len(), 16);
        l.insert("director".into(), "d".into());
        assert_ne!(a, fingerprint(&l));
    }

    #[test]
    fn long_annotations_are_clipped_on_a_char_boundary() {
        let long = "é".repeat(MAX_ANNOTATION);
        let c = clip(long);
        assert!(c.len() <= MAX_ANNOTATION + 6);
        assert!(c.ends_with(" [...]"));
    }
}
