//! `[[alert]]`: webhooks that receive the daemon's events. Their own file so that the
//! section's schema, parsing and checks stay in one place; `parse.rs` only calls
//! [`alerts`], and `lib.rs` calls [`check_files`] when a [`crate::System`] is given.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::diag::{Diagnostic, did_you_mean};
use crate::parse::absolute_path;
use crate::reader::{Sink, Table, Value, as_array, as_str};

/// One `[[alert]]` webhook: where every event (or the chosen kinds) is POSTed, and how.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Unique among the alerts; names the webhook in logs, metrics and `vigilctl status`.
    pub name: String,
    /// `http://` or `https://`, without credentials (those come from files).
    pub url: String,
    pub format: AlertFormat,
    /// Event kinds sent (see [`ALERT_EVENTS`]); empty: every kind.
    pub events: Vec<String>,
    /// Per request: connecting, TLS, sending and the whole reply.
    #[serde(serialize_with = "crate::duration::serialize")]
    pub timeout: Duration,
    /// Further attempts after a failed one (0: one attempt only).
    pub retries: u32,
    /// Wait before the first retry; doubled for each next one, at most [`MAX_BACKOFF`].
    #[serde(serialize_with = "crate::duration::serialize")]
    pub backoff: Duration,
    /// Events held while the receiver is slow or down; beyond, the oldest is dropped.
    pub queue: usize,
    pub auth: Option<AlertAuth>,
    /// PEM certificates to trust instead of the system's roots (https only).
    pub ca_file: Option<PathBuf>,
    /// `false` accepts any certificate (https only; warned about).
    pub tls_verify: bool,
}

/// The body of each POST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    /// `{"director": NAME, "events": [EVENT, ...]}`: the status socket's event lines.
    Json,
    /// Prometheus Alertmanager's webhook payload (version 4): conditions as alerts that
    /// fire and resolve.
    Alertmanager,
}

/// Credentials, read from files at every load (start and reload), never kept in the
/// cluster file.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertAuth {
    /// `Authorization: Bearer TOKEN`, the token being the file's content.
    Bearer { token_file: PathBuf },
    /// `Authorization: Basic ...` with `username` and the file's content as password.
    Basic {
        username: String,
        password_file: PathBuf,
    },
}

/// The event kinds the daemon publishes (docs/status-socket.md, `events`).
pub const ALERT_EVENTS: &[&str] = &[
    "health",
    "quorum",
    "drain",
    "reload",
    "vrrp_state",
    "ipvs_fault",
];

/// Retries never wait longer than this between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_BACKOFF: Duration = Duration::from_millis(500);
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_QUEUE: usize = 1000;

/// What a file named by an `[[alert]]` holds, for [`crate::System::check_file`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileUse {
    /// A token or password: the whole file, one line.
    Secret,
    /// PEM certificates (a CA bundle).
    Certificates,
}

/// A file to be checked by [`crate::System`] once parsing is done.
pub(crate) struct FileRef {
    pub(crate) path: PathBuf,
    pub(crate) field: String,
    pub(crate) span: Range<usize>,
    pub(crate) what: FileUse,
}

/// Reads the `alert` array. `None` when any entry had an error.
pub(crate) fn alerts(sink: &mut Sink, value: Option<&Value<'_>>) -> Option<Vec<Alert>> {
    let mut out = Vec::new();
    let Some(v) = value else {
        return Some(out);
    };
    let items = as_array(sink, v, &"alert")?;
    let mut ok = true;
    let mut names: Vec<(String, Range<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match Table::from_value(sink, item, format!("alert[{i}]")).and_then(|t| alert(sink, t)) {
            Some((a, name_span)) => {
                names.push((a.name.clone(), name_span));
                out.push(a);
            }
            None => ok = false,
        }
    }
    crate::reader::unique(sink, names, |n| format!("alert name \"{n}\" is used twice"));
    ok.then_some(out)
}

fn alert(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<(Alert, Range<usize>)> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();

    let name = t.req_str(sink, "name").filter(|(n, s)| {
        let ok = !n.is_empty()
            && n.len() <= 64
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            sink.push(
                Diagnostic::error(s.clone(), format!("alert name \"{n}\" is not a valid name"))
                    .with_help("use 1 to 64 letters, digits, '-', '_' or '.'"),
            );
        }
        ok
    });
    let url = t
        .req_str(sink, "url")
        .and_then(|(u, span)| match check_url(u) {
            Ok(https) => Some((u.to_string(), https, span)),
            Err((why, help)) => {
                let mut d = Diagnostic::error(span, format!("`{}`: \"{u}\" {why}", f("url")));
                if let Some(h) = help {
                    d = d.with_help(h);
                }
                sink.push(d);
                None
            }
        });
    let format = match t.choice(sink, "format", &["json", "alertmanager"]) {
        Some(("alertmanager", _)) => AlertFormat::Alertmanager,
        _ => AlertFormat::Json,
    };

    let mut events = Vec::new();
    if let Some((items, span)) = t.array(sink, "events") {
        if items.is_empty() {
            sink.push(
                Diagnostic::error(span, format!("`{}` is empty", f("events")))
                    .with_help("list the event kinds to send, or remove the field to send all"),
            );
        }
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("events"));
            let Some(kind) = as_str(sink, item, &field) else {
                continue;
            };
            if !ALERT_EVENTS.contains(&kind) {
                let mut d = Diagnostic::error(
                    item.span(),
                    format!("`{field}`: unknown event kind \"{kind}\""),
                );
                d = match did_you_mean(kind, ALERT_EVENTS) {
                    Some(s) => d.with_help(format!("did you mean \"{s}\"?")),
                    None => d.with_help(format!("one of: {}", ALERT_EVENTS.join(", "))),
                };
                sink.push(d);
            } else if events.iter().any(|e| e == kind) {
                sink.error(
                    item.span(),
                    format!("`{field}`: \"{kind}\" is listed twice"),
                );
            } else {
                events.push(kind.to_string());
            }
        }
    }

    let timeout = bounded(
        sink,
        &mut t,
        "timeout",
        Duration::from_millis(10),
        Duration::from_secs(120),
        DEFAULT_TIMEOUT,
    );
    let retries = t
        .int::<u32>(sink, "retries", 0, 100)
        .map_or(DEFAULT_RETRIES, |(n, _)| n);
    let backoff = bounded(
        sink,
        &mut t,
        "backoff",
        Duration::from_millis(1),
        MAX_BACKOFF,
        DEFAULT_BACKOFF,
    );
    let queue = t
        .int::<u32>(sink, "queue", 1, 1_000_000)
        .map_or(DEFAULT_QUEUE, |(n, _)| n as usize);

    let bearer = t.str(sink, "bearer_token_file").and_then(|(p, span)| {
        absolute_path(sink, &f("bearer_token_file"), p, span.clone())
            .inspect(|path| secret_ref(sink, path, f("bearer_token_file"), span, FileUse::Secret))
    });
    let basic = match t.get("basic_auth") {
        Some(v) => Table::from_value(sink, v, f("basic_auth")).and_then(|b| basic_auth(sink, b)),
        None => None,
    };
    let auth = match (bearer, basic) {
        (Some(_), Some(_)) => {
            sink.push(
                Diagnostic::error(
                    t.span.clone(),
                    format!("`{p}` has both `bearer_token_file` and `basic_auth`"),
                )
                .with_help("a request carries one Authorization header: keep one of the two"),
            );
            None
        }
        (Some(token_file), None) => Some(AlertAuth::Bearer { token_file }),
        (None, Some((username, password_file))) => Some(AlertAuth::Basic {
            username,
            password_file,
        }),
        (None, None) => None,
    };

    let https = url.as_ref().is_some_and(|(_, https, _)| *https);
    let ca_file = t.str(sink, "ca_file").and_then(|(path, span)| {
        let path = absolute_path(sink, &f("ca_file"), path, span.clone())?;
        if url.is_some() && !https {
            sink.error(span, format!("`{}` is for https URLs only", f("ca_file")));
            return None;
        }
        secret_ref(sink, &path, f("ca_file"), span, FileUse::Certificates);
        Some(path)
    });
    let tls_verify = match t.get("tls_verify") {
        Some(v) => {
            let verify = t.bool(sink, "tls_verify").unwrap_or(true);
            if url.is_some() && !https {
                sink.error(
                    v.span(),
                    format!("`{}` is for https URLs only", f("tls_verify")),
                );
            } else if !verify {
                if ca_file.is_some() {
                    sink.error(
                        v.span(),
                        format!(
                            "`{}` = false makes `{}` pointless",
                            f("tls_verify"),
                            f("ca_file")
                        ),
                    );
                } else {
                    sink.push(
                        Diagnostic::warning(
                            v.span(),
                            format!("`{}` = false: any certificate is accepted, so anyone on the path can read or forge alerts", f("tls_verify")),
                        )
                        .with_help("prefer `ca_file` with the receiver's CA"),
                    );
                }
            }
            verify
        }
        None => true,
    };
    if auth.is_some() && url.as_ref().is_some_and(|(_, https, _)| !*https) {
        sink.push(
            Diagnostic::warning(
                t.span.clone(),
                format!("`{p}` sends credentials over plain http"),
            )
            .with_help("use an https URL so the token or password is not readable on the way"),
        );
    }
    t.finish(sink);

    if sink.items.len() != errors_before
        && sink.items[errors_before..]
            .iter()
            .any(|d| d.severity == crate::Severity::Error)
    {
        return None;
    }
    let (name, name_span) = name?;
    Some((
        Alert {
            name: name.to_string(),
            url: url?.0,
            format,
            events,
            timeout,
            retries,
            backoff,
            queue,
            auth,
            ca_file,
            tls_verify,
        },
        name_span,
    ))
}

fn basic_auth(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<(String, PathBuf)> {
    let p = t.path.clone();
    let username = t.req_str(sink, "username").and_then(|(u, span)| {
        // RFC 7617 §2: the user-id cannot contain a colon.
        if u.is_empty() || u.contains(':') || u.chars().any(char::is_control) {
            sink.error(
                span,
                format!("`{p}.username` must be non-empty, without ':' or control characters"),
            );
            None
        } else {
            Some(u.to_string())
        }
    });
    let password_file = t.req_str(sink, "password_file").and_then(|(f, span)| {
        let field = format!("{p}.password_file");
        absolute_path(sink, &field, f, span.clone())
            .inspect(|path| secret_ref(sink, path, field, span, FileUse::Secret))
    });
    t.finish(sink);
    Some((username?, password_file?))
}

fn bounded(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    key: &'static str,
    min: Duration,
    max: Duration,
    default: Duration,
) -> Duration {
    match t.duration(sink, key) {
        Some((d, span)) if d < min || d > max => {
            sink.error(
                span,
                format!(
                    "`{}` must be from {} to {}",
                    t.field(key),
                    crate::format_duration(min),
                    crate::format_duration(max)
                ),
            );
            default
        }
        Some((d, _)) => d,
        None => default,
    }
}

fn secret_ref(
    sink: &mut Sink,
    path: &std::path::Path,
    field: String,
    span: Range<usize>,
    what: FileUse,
) {
    sink.files.push(FileRef {
        path: path.to_path_buf(),
        field,
        span,
        what,
    });
}

/// Asks `system` about every file the alerts name: a missing or unreadable token is
/// reported at its place in the cluster file, not at the first alert sent.
pub(crate) fn check_files(sink: &mut Sink, system: &dyn crate::System) {
    let refs = std::mem::take(&mut sink.files);
    for r in &refs {
        if let Err(why) = system.check_file(&r.path, r.what) {
            sink.push(
                Diagnostic::error(
                    r.span.clone(),
                    format!("`{}`: {}: {why}", r.field, r.path.display()),
                )
                .with_help(match r.what {
                    FileUse::Secret => "the daemon's user must be able to read it; it holds the token or password alone",
                    FileUse::Certificates => "the daemon's user must be able to read it; it holds PEM certificates",
                }),
            );
        }
    }
}

/// Whether `url` is an http(s) URL that a client can use as it is: `Ok(true)` for https.
/// `Err((why, help))` otherwise. Kept simple and strict (no credentials, no spaces): the
/// URL is only ever a webhook address.
fn check_url(url: &str) -> Result<bool, (String, Option<&'static str>)> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err((
            "is not an http:// or https:// URL".into(),
            Some("for example \"https://alertmanager.example:9093/hook\""),
        ));
    };
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err((
            "contains spaces, control or non-ASCII characters".into(),
            Some("percent-encode them (%20)"),
        ));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.contains('@') {
        return Err((
            "carries credentials".into(),
            Some(
                "put them in a file: `bearer_token_file`, or `basic_auth = { username = \"...\", password_file = \"...\" }`",
            ),
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err(("has an unclosed '[' in its host".into(), None));
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err((
                format!("has \"{addr}\", which is not an IPv6 address"),
                None,
            ));
        }
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return Err(("has text after its IPv6 address".into(), None)),
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(("has no host".into(), None));
    }
    if !authority.starts_with('[')
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err((format!("has \"{host}\", which is not a host name"), None));
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(1..))
    {
        return Err((
            format!("has \"{p}\", which is not a port (1 to 65535)"),
            None,
        ));
    }
    Ok(https)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_without_credentials() {
        assert_eq!(check_url("http://127.0.0.1:9093/hook"), Ok(false));
        assert_eq!(check_url("https://am.example/api?x=1"), Ok(true));
        assert_eq!(check_url("https://[::1]:8443/"), Ok(true));
        assert_eq!(check_url("https://am.example"), Ok(true));
        for bad in [
            "ftp://x/",
            "https://user:pw@am.example/",
            "https:///hook",
            "https://am.example:0/",
            "https://am.example:99999/",
            "https://[::1/",
            "https://[zz]/",
            "https://am example/",
            "https://am!.example/",
        ] {
            assert!(check_url(bad).is_err(), "{bad} accepted");
        }
    }
}
