//! The reply envelope: `{"ok": true, "result": ..., "id": ...}` or
//! `{"ok": false, "error": {"code": ..., "message": ...}, "id": ...}`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a request failed: stable, for scripts (docs/status-socket.md, "Error codes").
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidJson,
    InvalidRequest,
    UnknownCommand,
    LineTooLong,
    ReloadFailed,
    ReloadInProgress,
    ReloadTimeout,
    InstanceBusy,
    UnknownInstance,
    NotMaster,
    Forbidden,
    Busy,
    Idle,
    ShuttingDown,
    NoSuchVirtualServer,
    NoSuchRealServer,
    Internal,
    /// A code this version does not know (from a newer daemon), as sent.
    #[serde(untagged)]
    Other(String),
}

impl ErrorCode {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::ReloadFailed => "reload_failed",
            ErrorCode::ReloadInProgress => "reload_in_progress",
            ErrorCode::ReloadTimeout => "reload_timeout",
            ErrorCode::InstanceBusy => "instance_busy",
            ErrorCode::UnknownInstance => "unknown_instance",
            ErrorCode::NotMaster => "not_master",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Busy => "busy",
            ErrorCode::Idle => "idle",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::NoSuchVirtualServer => "no_such_virtual_server",
            ErrorCode::NoSuchRealServer => "no_such_real_server",
            ErrorCode::Internal => "internal",
            ErrorCode::Other(code) => code,
        }
    }
}

impl Default for ErrorCode {
    fn default() -> Self {
        ErrorCode::Other(String::new())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request's `error`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProtocolError {
    pub code: ErrorCode,
    /// For people.
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }

    /// The daemon is stopping (its tasks are gone).
    pub fn shutting_down() -> Self {
        ProtocolError::new(ErrorCode::ShuttingDown, "the daemon is stopping")
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// One reply line, as a client decodes it: `result` is typed by the request it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply<T> {
    #[serde(default)]
    pub ok: bool,
    // Not `default`: that would ask `T: Default`; a missing `Option` reads as `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ProtocolError>,
    /// The request's `id`, echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
}

impl<T> Reply<T> {
    /// `result` (`None` when an `ok` reply has none), or the error (an empty one when a
    /// failed reply has none).
    pub fn into_result(self) -> Result<Option<T>, ProtocolError> {
        if self.ok {
            Ok(self.result)
        } else {
            Err(self.error.unwrap_or_default())
        }
    }
}

/// Serialises a reply line (with its trailing newline), straight from the typed result:
/// a big one (`services` at 10,000 real servers) never becomes a `Value` tree. A result
/// that cannot be encoded (a path that is not UTF-8) is answered `internal`.
pub fn reply_line<T: Serialize>(result: Result<T, ProtocolError>, id: Option<Value>) -> Vec<u8> {
    #[derive(Serialize)]
    struct Line<'a, T> {
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        result: Option<&'a T>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a ProtocolError>,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<&'a Value>,
    }
    let id = id.as_ref();
    let encoded = match &result {
        Ok(result) => serde_json::to_vec(&Line {
            ok: true,
            result: Some(result),
            error: None,
            id,
        }),
        Err(error) => serde_json::to_vec(&Line::<()> {
            ok: false,
            result: None,
            error: Some(error),
            id,
        }),
    };
    let mut bytes = encoded.unwrap_or_else(|e| {
        let error = ProtocolError::new(
            ErrorCode::Internal,
            format!("the reply cannot be encoded: {e}"),
        );
        serde_json::to_vec(&Line::<()> {
            ok: false,
            result: None,
            error: Some(&error),
            id,
        })
        .unwrap_or_else(|_| b"{\"ok\":false}".to_vec())
    });
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reply_lines_are_one_json_object_each() {
        let line = reply_line(
            Err::<Value, _>(ProtocolError::new(ErrorCode::Other("x".into()), "y")),
            Some(json!("a")),
        );
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"ok": false, "error": {"code": "x", "message": "y"}, "id": "a"})
        );
    }

    #[test]
    fn error_codes_known_and_unknown_keep_their_names() {
        for code in [ErrorCode::ReloadFailed, ErrorCode::Other("new_code".into())] {
            let text = serde_json::to_string(&code).unwrap();
            assert_eq!(text, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&text).unwrap(), code);
        }
        assert_eq!(
            serde_json::from_str::<ErrorCode>("\"no_such_real_server\"").unwrap(),
            ErrorCode::NoSuchRealServer
        );
    }

    #[test]
    fn a_failed_reply_decodes_into_its_error() {
        let r: Reply<Value> = serde_json::from_str(
            r#"{"ok":false,"error":{"code":"forbidden","message":"no","hint":1},"extra":2}"#,
        )
        .unwrap();
        let e = r.into_result().unwrap_err();
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.to_string(), "forbidden: no");
    }
}
