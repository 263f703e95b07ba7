//! The status socket protocol: one JSON object per line each way (docs/status-socket.md).
//!
//! Request:  `{"command": "status"}` (an optional `"id"` of any JSON type is echoed back).
//! Reply:    `{"ok": true, "result": {...}}` or
//!           `{"ok": false, "error": {"code": "...", "message": "..."}}`.

use serde::Serialize;
use serde_json::{Value, json};
use vigil_config::{Check, CheckKind, Config, TrackTarget, format_duration};

use crate::state::{Shared, Snapshot};

/// Longest request line accepted; longer ones get `line_too_long` and the connection
/// is closed.
pub const MAX_LINE: usize = 64 * 1024;

pub const COMMANDS: &[&str] = &[
    "status",
    "config",
    "services",
    "vrrp",
    "reload",
    "ping",
    "vrrp-handover",
    "vrrp-reclaim",
    "vrrp-watch",
    "drain",
    "enable",
    "events",
];

/// What a request asks for, once parsed.
#[derive(Debug, PartialEq)]
pub enum Request {
    Status,
    Config,
    Services,
    Vrrp,
    /// Planned failover of one instance (make-before-break).
    VrrpHandover(String),
    /// Ends a handover's hold-off on preemption.
    VrrpReclaim(String),
    /// The `vrrp` reply, then one line per VRRP state change until the client closes.
    VrrpWatch,
    Reload,
    Ping,
    /// Weight 0 for a real server: no new connections, existing ones finish.
    Drain {
        virtual_server: String,
        real_server: String,
    },
    /// `{"event": "subscribed"}`, then one line per event (health, drain, quorum, reload,
    /// VRRP state) until the client closes.
    Events,
    /// Undo a drain.
    Enable {
        virtual_server: String,
        real_server: String,
    },
}

impl Request {
    /// Whether the request changes the director (and so needs admin rights).
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Request::Drain { .. }
                | Request::Enable { .. }
                | Request::Reload
                | Request::VrrpHandover(_)
                | Request::VrrpReclaim(_)
        )
    }

    /// The command's name, as sent.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Config => "config",
            Request::Services => "services",
            Request::Vrrp => "vrrp",
            Request::VrrpHandover(_) => "vrrp-handover",
            Request::VrrpReclaim(_) => "vrrp-reclaim",
            Request::VrrpWatch => "vrrp-watch",
            Request::Reload => "reload",
            Request::Ping => "ping",
            Request::Drain { .. } => "drain",
            Request::Events => "events",
            Request::Enable { .. } => "enable",
        }
    }

    /// What it names (for the log of writes): `web 10.0.0.1:80`, an instance, or nothing.
    pub fn target(&self) -> String {
        match self {
            Request::Drain {
                virtual_server,
                real_server,
            }
            | Request::Enable {
                virtual_server,
                real_server,
            } => format!("{virtual_server} {real_server}"),
            Request::VrrpHandover(name) | Request::VrrpReclaim(name) => name.clone(),
            _ => String::new(),
        }
    }
}

#[derive(Debug, PartialEq, Serialize)]
pub struct ProtocolError {
    pub code: &'static str,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// Parses one request line. Returns the request and the echoed `id` (if any).
pub fn parse_request(line: &[u8]) -> (Result<Request, ProtocolError>, Option<Value>) {
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return (
                Err(ProtocolError::new(
                    "invalid_json",
                    format!("request is not valid JSON: {e}"),
                )),
                None,
            );
        }
    };
    let Value::Object(obj) = value else {
        return (
            Err(ProtocolError::new(
                "invalid_request",
                "request must be a JSON object like {\"command\": \"status\"}",
            )),
            None,
        );
    };
    let id = obj.get("id").cloned();
    let request = match obj.get("command") {
        None => Err(ProtocolError::new(
            "invalid_request",
            "request has no \"command\"",
        )),
        Some(Value::String(c)) => match c.as_str() {
            "status" => Ok(Request::Status),
            "config" => Ok(Request::Config),
            "services" => Ok(Request::Services),
            "vrrp" => Ok(Request::Vrrp),
            "vrrp-handover" => instance_field(&obj).map(Request::VrrpHandover),
            "vrrp-reclaim" => instance_field(&obj).map(Request::VrrpReclaim),
            "vrrp-watch" => Ok(Request::VrrpWatch),
            "reload" => Ok(Request::Reload),
            "ping" => Ok(Request::Ping),
            "events" => Ok(Request::Events),
            "drain" => {
                real_server_fields(&obj).map(|(virtual_server, real_server)| Request::Drain {
                    virtual_server,
                    real_server,
                })
            }
            "enable" => {
                real_server_fields(&obj).map(|(virtual_server, real_server)| Request::Enable {
                    virtual_server,
                    real_server,
                })
            }
            other => Err(ProtocolError::new(
                "unknown_command",
                format!(
                    "unknown command \"{other}\"; commands: {}",
                    COMMANDS.join(", ")
                ),
            )),
        },
        Some(_) => Err(ProtocolError::new(
            "invalid_request",
            "\"command\" must be a string",
        )),
    };
    (request, id)
}

fn real_server_fields(
    obj: &serde_json::Map<String, Value>,
) -> Result<(String, String), ProtocolError> {
    match (obj.get("virtual_server"), obj.get("real_server")) {
        (Some(Value::String(vs)), Some(Value::String(rs))) => Ok((vs.clone(), rs.clone())),
        _ => Err(ProtocolError::new(
            "invalid_request",
            "this command needs \"virtual_server\" (its name) and \"real_server\" (IP:PORT or IP)",
        )),
    }
}

fn instance_field(obj: &serde_json::Map<String, Value>) -> Result<String, ProtocolError> {
    match obj.get("instance") {
        Some(Value::String(name)) => Ok(name.clone()),
        _ => Err(ProtocolError::new(
            "invalid_request",
            "this command needs \"instance\": the VRRP instance's name",
        )),
    }
}

/// Serialises a reply line (with its trailing newline). Generic so that a big result
/// (`services` at 10,000 real servers) is written straight from its typed form, without
/// first building a `Value` tree of it.
pub fn reply_line<T: Serialize>(result: Result<T, ProtocolError>, id: Option<Value>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<T> {
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<T>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<ProtocolError>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<Value>,
    }
    let line = match result {
        Ok(result) => Line {
            ok: true,
            result: Some(result),
            error: None,
            id,
        },
        Err(error) => Line {
            ok: false,
            result: None,
            error: Some(error),
            id,
        },
    };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    bytes.push(b'\n');
    bytes
}

fn counts(config: &Config) -> Value {
    json!({
        "vrrp_instances": config.vrrp.len(),
        "virtual_servers": config.virtual_servers.len(),
        "real_servers": config.real_server_count(),
    })
}

pub fn status(shared: &Shared, snap: &Snapshot) -> Value {
    json!({
        "director": snap.config.director.name,
        "version": env!("CARGO_PKG_VERSION"),
        "pid": shared.pid,
        "started_at_unix": shared.started_at_unix,
        "uptime_secs": shared.started.elapsed().as_secs_f64(),
        "config_file": snap.config_file,
        "config_generation": snap.generation,
        "config_loaded_at_unix": snap.loaded_at_unix,
        "counts": counts(&snap.config),
        "reloads": snap.reloads,
        "status_socket": socket_counters(&shared.status_socket),
        "alerts": shared.alerts.get().map_or(json!([]), |a| a.status()),
    })
}

/// The status socket's connections and refusals (docs/status-socket.md, limits).
fn socket_counters(c: &crate::state::SocketCounters) -> Value {
    use crate::state::Refusal::*;
    let refused: serde_json::Map<String, Value> = [Clients, PerUid, Subscribers, Idle, Forbidden]
        .into_iter()
        .map(|r| (r.as_str().to_string(), json!(c.refused(r))))
        .collect();
    json!({
        "connections": c.open(),
        "accepted": c.accepted(),
        "subscribers": c.subscribers(),
        "refused": refused,
    })
}

/// A check as `services` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSummary {
    pub kind: &'static str,
    /// What is asked: `GET /healthz`, `example.org A`, the command line; empty for others.
    pub target: String,
    pub interval: String,
    pub timeout: String,
    pub rise: u32,
    pub fall: u32,
    pub port: Option<u16>,
}

pub fn check_summary(check: &Option<Check>) -> Option<CheckSummary> {
    let c = check.as_ref()?;
    let target = match &c.kind {
        CheckKind::Http(h) => {
            let paths: Vec<&str> = h.urls.iter().map(|u| u.path.as_str()).collect();
            format!(
                "{} {}",
                format!("{:?}", h.method).to_uppercase(),
                paths.join(",")
            )
        }
        CheckKind::Dns(d) => {
            format!("{} {}", d.name, format!("{:?}", d.qtype).to_uppercase())
        }
        CheckKind::Exec { command, .. } => command.join(" "),
        CheckKind::Smtp { helo_name } => format!("HELO {helo_name}"),
        _ => String::new(),
    };
    Some(CheckSummary {
        kind: c.kind.name(),
        target,
        interval: format_duration(c.interval),
        timeout: format_duration(c.timeout),
        rise: c.rise,
        fall: c.fall,
        port: c.port,
    })
}

/// VRRP instances as configured, with their live state from the runners (`init` for an
/// instance that is not running, e.g. while it is being restarted by a reload).
pub fn vrrp(shared: &Shared, snap: &Snapshot) -> Value {
    let list: Vec<Value> = snap
        .config
        .vrrp
        .iter()
        .map(|v| {
            let mut entry = json!({
                "name": v.name,
                "interface": v.interface,
                "vrid": v.vrid,
                "version": match v.version { vigil_config::VrrpVersion::V2 => 2, vigil_config::VrrpVersion::V3 => 3 },
                "priority": v.priority,
                "effective_priority": v.priority,
                "state": "init",
                "advert_interval": format_duration(v.advert_interval),
                "preempt": v.preempt,
                "vips": v.vips.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "vips_excluded": v.vips_excluded.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "unicast_peers": v.unicast_peers,
                "sync_group": v.sync_group,
                "track": v.track.iter().map(|t| match &t.target {
                    TrackTarget::VirtualServer(n) => json!({"virtual_server": n, "weight": t.weight}),
                    TrackTarget::Interface(i) => json!({"interface": i, "weight": t.weight}),
                    TrackTarget::Exec { command, .. } => json!({"exec": command, "weight": t.weight}),
                }).collect::<Vec<_>>(),
            });
            if let (Some(live), Value::Object(obj)) = (shared.vrrp.status(&v.name), &mut entry)
                && let Value::Object(live) = crate::vrrp::status_json(&live)
            {
                obj.extend(live);
            }
            if let (Some(reason), Value::Object(obj)) = (shared.vrrp.fault_reason(&v.name), &mut entry) {
                obj.insert("fault_reason".into(), reason.into());
            }
            entry
        })
        .collect();
    json!({ "instances": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_commands_and_echoes_id() {
        let (r, id) = parse_request(br#"{"command":"status","id":7}"#);
        assert_eq!(r, Ok(Request::Status));
        assert_eq!(id, Some(json!(7)));
    }

    #[test]
    fn rejects_bad_requests_with_codes() {
        let code = |line: &[u8]| parse_request(line).0.unwrap_err().code;
        assert_eq!(code(b"not json"), "invalid_json");
        assert_eq!(code(b"[1,2]"), "invalid_request");
        assert_eq!(code(br#"{"cmd":"status"}"#), "invalid_request");
        assert_eq!(code(br#"{"command":5}"#), "invalid_request");
        assert_eq!(code(br#"{"command":"shutdown"}"#), "unknown_command");
    }

    #[test]
    fn vrrp_commands_name_their_instance() {
        let (r, _) = parse_request(br#"{"command":"vrrp-handover","instance":"web"}"#);
        assert_eq!(r, Ok(Request::VrrpHandover("web".into())));
        let (r, _) = parse_request(br#"{"command":"vrrp-reclaim","instance":"web"}"#);
        assert_eq!(r, Ok(Request::VrrpReclaim("web".into())));
        let (r, _) = parse_request(br#"{"command":"vrrp-handover"}"#);
        assert_eq!(r.unwrap_err().code, "invalid_request");
        let (r, _) = parse_request(br#"{"command":"vrrp-watch"}"#);
        assert_eq!(r, Ok(Request::VrrpWatch));
    }

    #[test]
    fn writes_are_told_apart_from_reads() {
        let writes = [
            r#"{"command":"drain","virtual_server":"w","real_server":"1.2.3.4"}"#,
            r#"{"command":"enable","virtual_server":"w","real_server":"1.2.3.4"}"#,
            r#"{"command":"reload"}"#,
            r#"{"command":"vrrp-handover","instance":"v"}"#,
            r#"{"command":"vrrp-reclaim","instance":"v"}"#,
        ];
        for line in writes {
            assert!(
                parse_request(line.as_bytes()).0.unwrap().is_write(),
                "{line}"
            );
        }
        for c in [
            "status",
            "config",
            "services",
            "vrrp",
            "vrrp-watch",
            "ping",
            "events",
        ] {
            let line = format!(r#"{{"command":"{c}"}}"#);
            let r = parse_request(line.as_bytes()).0.unwrap();
            assert!(!r.is_write(), "{c}");
            assert_eq!(r.command(), c);
        }
    }

    #[test]
    fn reply_lines_are_one_json_object_each() {
        let line = reply_line(
            Err::<Value, _>(ProtocolError::new("x", "y")),
            Some(json!("a")),
        );
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"ok": false, "error": {"code": "x", "message": "y"}, "id": "a"})
        );
    }
}
