//! A health check table (`check` of a virtual or real server): the fields every kind
//! shares, then the kind's own (tcp, udp, icmp, smtp, exec, file here; http in [`super::http`],
//! dns in [`super::dns`]).

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, as_choice, as_ip};

use super::dns::dns_check;
use super::http::http_check;
use super::{absolute_program, check_interface, regex_field};

/// Fields that belong to each check kind, for "unknown field" hints.
const KIND_FIELDS: &[(&str, &[&str])] = &[
    ("tcp", &["send", "expect"]),
    (
        "http",
        &[
            "method",
            "path",
            "host",
            "expect_status",
            "body_regex",
            "body_sha256",
            "body_md5",
            "regex_no_match",
            "url",
            "max_body_bytes",
        ],
    ),
    (
        "https",
        &[
            "tls_verify",
            "tls_ca_file",
            "tls_trust",
            "tls_server_name",
            "tls_sni",
            "tls_client_cert",
            "tls_client_key",
        ],
    ),
    (
        "dns",
        &[
            "query_name",
            "query_type",
            "expect_rcode",
            "expect_addresses",
            "transport",
            "edns",
        ],
    ),
    ("udp", &["send", "send_hex", "expect", "require_reply"]),
    ("smtp", &["helo_name"]),
    ("exec", &["command", "user", "dynamic_weight"]),
    ("file", &["path", "weight", "reverse"]),
];

pub(super) fn check(sink: &mut Sink, mut t: Table<'_, '_>) -> Option<Check> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let kind_name = t
        .require(sink, "kind")
        .and_then(|v| as_choice(sink, v, &f("kind"), CheckKind::NAMES));

    let timing = timing(sink, &mut t, &f, kind_name == Some("file"));
    let source = source(sink, &mut t, &f, &p);

    let kind = kind(sink, &mut t, &f, kind_name, &source);
    if let Some(k) = kind_name {
        misplaced_fields(sink, &mut t, &f, k);
    }
    t.finish(sink);
    if sink.items.len() != errors_before {
        return None;
    }
    Some(Check {
        kind: kind?,
        interval: timing.interval,
        timeout: timing.timeout,
        rise: timing.rise,
        fall: timing.fall,
        initial_state: timing.initial_state,
        retry_delay: timing.retry_delay,
        start_spread: timing.start_spread,
        address: source.address,
        port: source.port_read.map(|(v, _)| v),
        bind: source.bind,
        bind_port: source.bind_port_read.map(|(v, _)| v),
        bind_interface: source.bind_interface_read.map(|(i, _)| i),
        fwmark: source.fwmark_read.map(|(v, _)| v),
    })
}

/// When and how often a check runs, and how many results change its verdict.
struct Timing {
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
    initial_state: InitialState,
    retry_delay: Option<Duration>,
    start_spread: Duration,
}

/// `file` checks act on the first reading, as keepalived's FILE_CHECK does: their
/// defaults are rise 1, fall 1, no start spread, and a 1s interval (the poll behind the
/// inotify watch).
fn timing(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    file: bool,
) -> Timing {
    let interval = t.duration(sink, "interval");
    let timeout = t.duration(sink, "timeout");
    let interval_value = interval
        .as_ref()
        .map_or(Duration::from_secs(if file { 1 } else { 2 }), |(d, _)| *d);
    // False when `interval` is present but invalid: its error is enough, so nothing is
    // compared against it.
    let mut interval_known = interval.is_some() || t.get("interval").is_none();
    if let Some((d, span)) = &interval
        && (*d < Duration::from_millis(10) || *d > Duration::from_secs(3600))
    {
        sink.error(
            span.clone(),
            format!("`{}` must be from 10ms to 1h", f("interval")),
        );
        interval_known = false;
    }
    let timeout_value = timeout.as_ref().map_or_else(
        || (interval_value / 2).min(Duration::from_secs(1)),
        |(d, _)| *d,
    );
    if let Some((d, span)) = &timeout {
        if d.is_zero() {
            sink.error(
                span.clone(),
                format!("`{}` must be above zero", f("timeout")),
            );
        } else if interval_known && *d >= interval_value {
            sink.push(
                Diagnostic::error(
                    span.clone(),
                    format!(
                        "`{}` ({}) must be shorter than the interval ({})",
                        f("timeout"),
                        crate::duration::format_duration(*d),
                        crate::duration::format_duration(interval_value)
                    ),
                )
                .with_help("a check must finish before the next one is due"),
            );
        }
    }
    let (rise_default, fall_default) = if file { (1, 1) } else { (2, 3) };
    let rise = t
        .int::<u32>(sink, "rise", 1, 100)
        .map_or(rise_default, |(v, _)| v);
    let fall = t
        .int::<u32>(sink, "fall", 1, 100)
        .map_or(fall_default, |(v, _)| v);
    let initial_state = match t.choice(sink, "initial_state", &["up", "down"]) {
        Some(("up", _)) => InitialState::Up,
        _ => InitialState::Down,
    };
    let retry_delay = t.duration(sink, "retry_delay").map(|(d, span)| {
        if d.is_zero() || (interval_known && d > interval_value) {
            sink.error(
                span,
                format!(
                    "`{}` must be above zero and at most the interval",
                    f("retry_delay")
                ),
            );
        }
        d
    });
    let start_spread = match t.duration(sink, "start_spread") {
        Some((d, span)) if d > Duration::from_secs(3600) => {
            sink.error(span, format!("`{}` must be at most 1h", f("start_spread")));
            d
        }
        Some((d, _)) => d,
        None if file => Duration::ZERO,
        None => interval_value,
    };
    Timing {
        interval: interval_value,
        timeout: timeout_value,
        rise,
        fall,
        initial_state,
        retry_delay,
        start_spread,
    }
}

/// Where a check goes and comes from: `address` and `port` to probe (the real server's
/// by default), the source `bind`, `bind_port`, `bind_interface`, and the `fwmark` its
/// packets carry; each with its span, which some kinds refuse.
struct Source {
    address: Option<IpAddr>,
    port_read: Option<(u16, Range<usize>)>,
    bind: Option<IpAddr>,
    bind_port_read: Option<(u16, Range<usize>)>,
    bind_interface_read: Option<(String, Range<usize>)>,
    fwmark_read: Option<(u32, Range<usize>)>,
}

fn source(sink: &mut Sink, t: &mut Table<'_, '_>, f: &dyn Fn(&str) -> String, p: &str) -> Source {
    let address = t.get("address").and_then(|v| as_ip(sink, v, &f("address")));
    let port_read = t.int::<u16>(sink, "port", 1, 65_535);
    let bind = t.get("bind").and_then(|v| as_ip(sink, v, &f("bind")));
    let bind_port_read = t.int::<u16>(sink, "bind_port", 1, 65_535);
    let bind_interface_read = t
        .str(sink, "bind_interface")
        .filter(|(i, s)| check_interface(sink, &f("bind_interface"), i, s.clone()))
        .map(|(i, s)| (i.to_string(), s));
    let fwmark_read = t.int::<u32>(sink, "fwmark", 1, u32::MAX);
    if let (Some(a), Some(b)) = (address, bind)
        && AddressFamily::of(&a) != AddressFamily::of(&b)
    {
        sink.error(
            t.span.clone(),
            format!(
                "`{}`: bind address {b} and check address {a} are of different families",
                p
            ),
        );
    }
    Source {
        address,
        port_read,
        bind,
        bind_port_read,
        bind_interface_read,
        fwmark_read,
    }
}

/// The kind's own fields.
fn kind(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    kind_name: Option<&str>,
    source: &Source,
) -> Option<CheckKind> {
    match kind_name {
        Some("tcp") => {
            let send = t.str(sink, "send").map(|(s, _)| s.to_string());
            let expect = regex_field(sink, t, "expect");
            Some(CheckKind::Tcp { send, expect })
        }
        Some(k @ ("http" | "https")) => http_check(sink, t, k == "https").map(CheckKind::Http),
        Some("dns") => dns_check(sink, t).map(CheckKind::Dns),
        Some("udp") => udp_check(sink, t),
        Some("icmp") => {
            for (key, read) in [
                ("port", &source.port_read),
                ("bind_port", &source.bind_port_read),
            ] {
                if let Some((_, span)) = read {
                    sink.push(
                        Diagnostic::error(
                            span.clone(),
                            format!("`{}` does not apply to icmp checks", f(key)),
                        )
                        .with_help("an ICMP echo request has no port"),
                    );
                }
            }
            Some(CheckKind::Icmp)
        }
        Some("smtp") => smtp_check(sink, t, f),
        Some("exec") => exec_check(sink, t, f, source),
        Some("file") => file_check(sink, t, f, source),
        _ => None,
    }
}

fn smtp_check(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
) -> Option<CheckKind> {
    let helo_name = match t.str(sink, "helo_name") {
        Some((h, span))
            if h.is_empty()
                || h.len() > 255
                || h.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            sink.error(
                span,
                format!(
                    "`{}`: \"{h}\" must be 1–255 characters without spaces or control characters",
                    f("helo_name")
                ),
            );
            None
        }
        Some((h, _)) => Some(h.to_string()),
        None => Some(DEFAULT_HELO_NAME.to_string()),
    };
    helo_name.map(|helo_name| CheckKind::Smtp { helo_name })
}

fn exec_check(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    source: &Source,
) -> Option<CheckKind> {
    // The program opens its own sockets: nothing of the check's source reaches them.
    refuse_source(
        sink,
        t,
        f,
        source,
        "exec",
        false,
        "the program opens its own connections; give it the source as an argument",
    );
    let command = t
        .require(sink, "command")
        .and_then(|_| t.str_list(sink, "command"))
        .filter(|(argv, span)| absolute_program(sink, &f("command"), argv, span.clone()))
        .map(|(argv, _)| argv);
    let user = t.str(sink, "user");
    let user = sink
        .user(f("user"), user, "nobody", t.span.clone())
        .to_string();
    let dynamic_weight = t.bool(sink, "dynamic_weight").unwrap_or(false);
    command.map(|command| CheckKind::Exec {
        command,
        user,
        dynamic_weight,
    })
}

/// keepalived's FILE_CHECK: `path`, with its `weight` multiplier and `reverse`.
fn file_check(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    source: &Source,
) -> Option<CheckKind> {
    refuse_source(
        sink,
        t,
        f,
        source,
        "file",
        true,
        "a file check reads a local file and sends nothing",
    );
    let path = t
        .req_str(sink, "path")
        .and_then(|(p, span)| super::absolute_path(sink, &f("path"), p, span));
    let weight = t
        .int::<i32>(sink, "weight", -i32::MAX, i32::MAX)
        .map_or(0, |(w, _)| w);
    let reverse = t.bool(sink, "reverse").unwrap_or(false);
    path.map(|path| {
        CheckKind::File(FileCheck {
            path,
            weight,
            reverse,
        })
    })
}

/// Errors for the source fields a kind cannot use (`address`/`port` too when
/// `and_target`: the kind probes no address).
fn refuse_source(
    sink: &mut Sink,
    t: &mut Table<'_, '_>,
    f: &dyn Fn(&str) -> String,
    source: &Source,
    kind: &str,
    and_target: bool,
    help: &str,
) {
    let span_of = |read: &Option<(u16, Range<usize>)>| read.as_ref().map(|(_, s)| s.clone());
    let mut fields = vec![
        ("bind", t.get("bind").map(|v| v.span())),
        ("bind_port", span_of(&source.bind_port_read)),
        (
            "bind_interface",
            source.bind_interface_read.as_ref().map(|(_, s)| s.clone()),
        ),
        (
            "fwmark",
            source.fwmark_read.as_ref().map(|(_, s)| s.clone()),
        ),
    ];
    if and_target {
        fields.insert(0, ("address", t.get("address").map(|v| v.span())));
        fields.insert(1, ("port", span_of(&source.port_read)));
    }
    for (key, span) in fields {
        if let Some(span) = span {
            sink.push(
                Diagnostic::error(
                    span,
                    format!("`{}` does not apply to {kind} checks", f(key)),
                )
                .with_help(help.to_string()),
            );
        }
    }
}

/// Fields of another kind than `k`: said so, rather than only "unknown".
fn misplaced_fields(sink: &mut Sink, t: &mut Table<'_, '_>, f: &dyn Fn(&str) -> String, k: &str) {
    let own: Vec<&str> = KIND_FIELDS
        .iter()
        .filter(|(n, _)| *n == k || (k == "https" && *n == "http"))
        .flat_map(|(_, fs)| fs.iter().copied())
        .collect();
    let misplaced: Vec<(String, Range<usize>, &str)> = t
        .entries()
        .filter(|(key, _)| !own.contains(&key.get_ref().as_ref()))
        .filter_map(|(key, _)| {
            let other = KIND_FIELDS
                .iter()
                .find(|(_, fs)| fs.contains(&key.get_ref().as_ref()))?;
            Some((key.get_ref().to_string(), key.span(), other.0))
        })
        .collect();
    for (key, span, other) in misplaced {
        sink.push(
            Diagnostic::error(
                span,
                format!(
                    "`{}` is an option of {other} checks, not of {k} checks",
                    f(&key)
                ),
            )
            .with_help(format!(
                "{k} checks take: {}",
                if own.is_empty() {
                    "only the common options".to_string()
                } else {
                    own.join(", ")
                }
            )),
        );
        // Reported here with the better message: keep finish() from repeating it.
        if let Some(field) = KIND_FIELDS
            .iter()
            .flat_map(|(_, fs)| fs.iter())
            .find(|f| **f == key)
        {
            t.get(field);
        }
    }
}

fn udp_check(sink: &mut Sink, t: &mut Table<'_, '_>) -> Option<CheckKind> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let text = t.str(sink, "send");
    let hex = t.str(sink, "send_hex");
    let send = match (text, hex) {
        (Some(_), Some((_, span))) => {
            sink.error(
                span,
                format!("`{}` and `{}` are alternatives", f("send"), f("send_hex")),
            );
            Vec::new()
        }
        (Some((s, _)), None) => s.as_bytes().to_vec(),
        (None, Some((h, span))) => match parse_hex(h) {
            Some(bytes) => bytes,
            None => {
                sink.push(
                    Diagnostic::error(
                        span,
                        format!("`{}` must be pairs of hexadecimal digits", f("send_hex")),
                    )
                    .with_help("e.g. send_hex = \"0a1b 2c3d\" (spaces are ignored)"),
                );
                Vec::new()
            }
        },
        (None, None) => Vec::new(),
    };
    let expect = regex_field(sink, t, "expect");
    let require_reply = t.bool(sink, "require_reply").unwrap_or(true);
    if !require_reply
        && expect.is_some()
        && let Some(v) = t.get("expect")
    {
        sink.push(
            Diagnostic::error(
                v.span(),
                format!(
                    "`{}` needs a reply, but `{}` is false",
                    f("expect"),
                    f("require_reply")
                ),
            )
            .with_help("require_reply = false passes on silence, with nothing to match"),
        );
    }
    if sink.items.len() != errors_before {
        return None;
    }
    Some(CheckKind::Udp {
        send,
        expect,
        require_reply,
    })
}

/// `"0a1B 2c"` → `[0x0a, 0x1b, 0x2c]`; whitespace between digits is ignored.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect::<Option<_>>()?;
    if digits.is_empty() || !digits.len().is_multiple_of(2) {
        return None;
    }
    Some(
        digits
            .chunks(2)
            .map(|pair| (pair[0] << 4) | pair[1])
            .collect(),
    )
}
