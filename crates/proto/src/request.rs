//! Requests: one JSON object per line, tagged by `command`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::reply::{ErrorCode, ProtocolError};

/// Longest request line accepted; longer ones get `line_too_long` and the connection
/// is closed.
pub const MAX_LINE: usize = 64 * 1024;

/// Every command, as sent (the `unknown_command` message lists them in this order).
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

/// What a request asks for. On the wire: `{"command": "drain", "virtual_server": ...}`;
/// an optional `id` beside `command` is echoed in the reply (see [`parse_request`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    /// [`crate::StatusReply`].
    Status,
    /// [`crate::ConfigReply`].
    Config,
    /// [`crate::ServicesReply`].
    Services,
    /// [`crate::VrrpReply`].
    Vrrp,
    /// Planned failover of one instance (make-before-break): [`crate::VrrpControlReply`].
    VrrpHandover { instance: String },
    /// Ends a handover's hold-off on preemption: [`crate::VrrpControlReply`].
    VrrpReclaim { instance: String },
    /// The `vrrp` reply, then one [`crate::Event::VrrpState`] line per state change until
    /// the client closes.
    VrrpWatch,
    /// [`crate::ReloadRecord`].
    Reload,
    /// [`crate::PONG`].
    Ping,
    /// Weight 0 for a real server: no new connections, existing ones finish. Without
    /// `real_server`, every real server of the virtual server (an announced one is
    /// withdrawn first, its weights set `withdraw_delay` later). [`crate::DrainReply`].
    Drain {
        virtual_server: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        real_server: Option<String>,
    },
    /// [`crate::Event::Subscribed`], then one [`crate::Event`] line per event until the
    /// client closes.
    Events,
    /// Undo a drain (without `real_server`: of every real server of the virtual
    /// server): [`crate::DrainReply`].
    Enable {
        virtual_server: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        real_server: Option<String>,
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
                | Request::VrrpHandover { .. }
                | Request::VrrpReclaim { .. }
        )
    }

    /// The command's name, as sent.
    pub fn command(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Config => "config",
            Request::Services => "services",
            Request::Vrrp => "vrrp",
            Request::VrrpHandover { .. } => "vrrp-handover",
            Request::VrrpReclaim { .. } => "vrrp-reclaim",
            Request::VrrpWatch => "vrrp-watch",
            Request::Reload => "reload",
            Request::Ping => "ping",
            Request::Drain { .. } => "drain",
            Request::Events => "events",
            Request::Enable { .. } => "enable",
        }
    }

    /// What it names (for the log of writes): `web 10.0.0.1:80`, `web` (a whole virtual
    /// server), an instance, or nothing.
    pub fn target(&self) -> String {
        match self {
            Request::Drain {
                virtual_server,
                real_server,
            }
            | Request::Enable {
                virtual_server,
                real_server,
            } => match real_server {
                Some(rs) => format!("{virtual_server} {rs}"),
                None => virtual_server.clone(),
            },
            Request::VrrpHandover { instance } | Request::VrrpReclaim { instance } => {
                instance.clone()
            }
            _ => String::new(),
        }
    }

    /// The request as one line, with its newline.
    pub fn to_line(&self) -> Vec<u8> {
        // A request of strings and a tag cannot fail to serialise.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

/// Parses one request line. Returns the request and the echoed `id` (if any), with the
/// documented error codes: `invalid_json`, `invalid_request` (not an object, no or a
/// non-string `command`, a missing field), `unknown_command`.
pub fn parse_request(line: &[u8]) -> (Result<Request, ProtocolError>, Option<Value>) {
    // Through a `Value` (a request is at most 64 KiB) so that each failure gets its own
    // code and message.
    let value: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(e) => {
            return (
                Err(ProtocolError::new(
                    ErrorCode::InvalidJson,
                    format!("request is not valid JSON: {e}"),
                )),
                None,
            );
        }
    };
    let Value::Object(mut obj) = value else {
        return (
            Err(ProtocolError::new(
                ErrorCode::InvalidRequest,
                "request must be a JSON object like {\"command\": \"status\"}",
            )),
            None,
        );
    };
    let id = obj.remove("id");
    let command = match obj.get("command") {
        None => {
            return (
                Err(ProtocolError::new(
                    ErrorCode::InvalidRequest,
                    "request has no \"command\"",
                )),
                id,
            );
        }
        Some(Value::String(c)) => c.clone(),
        Some(_) => {
            return (
                Err(ProtocolError::new(
                    ErrorCode::InvalidRequest,
                    "\"command\" must be a string",
                )),
                id,
            );
        }
    };
    if !COMMANDS.contains(&command.as_str()) {
        return (
            Err(ProtocolError::new(
                ErrorCode::UnknownCommand,
                format!(
                    "unknown command \"{command}\"; commands: {}",
                    COMMANDS.join(", ")
                ),
            )),
            id,
        );
    }
    let request = Request::deserialize(Value::Object(obj)).map_err(|_| {
        ProtocolError::new(
            ErrorCode::InvalidRequest,
            match command.as_str() {
                "vrrp-handover" | "vrrp-reclaim" => {
                    "this command needs \"instance\": the VRRP instance's name"
                }
                _ => {
                    "this command needs \"virtual_server\" (its name) and optionally \"real_server\" (IP:PORT or IP; absent: all of them)"
                }
            },
        )
    });
    (request, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_known_commands_and_echoes_id() {
        let (r, id) = parse_request(br#"{"command":"status","id":7}"#);
        assert_eq!(r, Ok(Request::Status));
        assert_eq!(id, Some(json!(7)));
    }

    #[test]
    fn rejects_bad_requests_with_codes() {
        let code = |line: &[u8]| parse_request(line).0.unwrap_err().code;
        assert_eq!(code(b"not json"), ErrorCode::InvalidJson);
        assert_eq!(code(b"[1,2]"), ErrorCode::InvalidRequest);
        assert_eq!(code(br#"{"cmd":"status"}"#), ErrorCode::InvalidRequest);
        assert_eq!(code(br#"{"command":5}"#), ErrorCode::InvalidRequest);
        assert_eq!(
            code(br#"{"command":"shutdown"}"#),
            ErrorCode::UnknownCommand
        );
        assert_eq!(code(br#"{"command":"drain"}"#), ErrorCode::InvalidRequest);
        assert_eq!(
            code(br#"{"command":"drain","virtual_server":"w","real_server":5}"#),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn vrrp_commands_name_their_instance() {
        let (r, _) = parse_request(br#"{"command":"vrrp-handover","instance":"web"}"#);
        assert_eq!(
            r,
            Ok(Request::VrrpHandover {
                instance: "web".into()
            })
        );
        let (r, _) = parse_request(br#"{"command":"vrrp-reclaim","instance":"web"}"#);
        assert_eq!(
            r,
            Ok(Request::VrrpReclaim {
                instance: "web".into()
            })
        );
        let (r, _) = parse_request(br#"{"command":"vrrp-handover"}"#);
        assert_eq!(r.unwrap_err().code, ErrorCode::InvalidRequest);
        let (r, _) = parse_request(br#"{"command":"vrrp-watch"}"#);
        assert_eq!(r, Ok(Request::VrrpWatch));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let (r, id) = parse_request(br#"{"command":"ping","id":"x","verbose":true}"#);
        assert_eq!(r, Ok(Request::Ping));
        assert_eq!(id, Some(json!("x")));
        let (r, _) = parse_request(
            br#"{"command":"enable","virtual_server":"w","real_server":"1.2.3.4","why":"done"}"#,
        );
        assert_eq!(
            r,
            Ok(Request::Enable {
                virtual_server: "w".into(),
                real_server: Some("1.2.3.4".into())
            })
        );
    }

    #[test]
    fn a_drain_without_real_server_names_the_whole_virtual_server() {
        let (r, _) = parse_request(br#"{"command":"drain","virtual_server":"w"}"#);
        let r = r.unwrap();
        assert_eq!(
            r,
            Request::Drain {
                virtual_server: "w".into(),
                real_server: None
            }
        );
        assert!(r.is_write());
        assert_eq!(r.target(), "w");
        // Sent without the field, so a daemon reads it as before for one real server.
        assert_eq!(
            r.to_line(),
            b"{\"command\":\"drain\",\"virtual_server\":\"w\"}\n"
        );
        let (r, _) =
            parse_request(br#"{"command":"enable","virtual_server":"w","real_server":null}"#);
        assert_eq!(
            r,
            Ok(Request::Enable {
                virtual_server: "w".into(),
                real_server: None
            })
        );
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
    fn every_command_round_trips_through_its_line() {
        for c in COMMANDS {
            let line = match *c {
                "drain" | "enable" => {
                    format!(r#"{{"command":"{c}","virtual_server":"w","real_server":"1.2.3.4"}}"#)
                }
                "vrrp-handover" | "vrrp-reclaim" => {
                    format!(r#"{{"command":"{c}","instance":"v"}}"#)
                }
                _ => format!(r#"{{"command":"{c}"}}"#),
            };
            let r = parse_request(line.as_bytes()).0.unwrap();
            assert_eq!(r.command(), *c);
            let again = r.to_line();
            assert_eq!(again.strip_suffix(b"\n"), Some(line.as_bytes()));
        }
    }
}
