//! The http and https check kinds: method, host, the URLs and their body checks, TLS.

use crate::tree::Node;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, Value, as_int};

use super::{absolute_path, regex_field};

/// The keys of one URL: at the check's top level for a single URL, or in each `url` entry.
const URL_FIELDS: &[&str] = &[
    "path",
    "expect_status",
    "body_regex",
    "regex_no_match",
    "body_sha256",
    "body_md5",
];

pub(super) fn http_check(sink: &mut Sink, t: &mut Table<'_, '_>, https: bool) -> Option<HttpCheck> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let method = match t.choice(sink, "method", &["GET", "HEAD"]) {
        Some(("HEAD", _)) => HttpMethod::Head,
        _ => HttpMethod::Get,
    };
    let host = match t.str(sink, "host") {
        Some((h, span))
            if h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            sink.error(
                span,
                format!("`{}`: \"{h}\" is not a valid Host header", f("host")),
            );
            None
        }
        Some((h, _)) => Some(h.to_string()),
        None => None,
    };
    let mut urls = Vec::new();
    match t.array(sink, "url") {
        Some((items, span)) => {
            if items.is_empty() {
                sink.error(span, format!("`{}` is empty", f("url")));
            }
            // One URL's keys beside `url` would be ambiguous (for which URL?).
            for key in URL_FIELDS {
                if let Some(v) = t.get(key) {
                    sink.push(
                        Diagnostic::error(
                            v.span(),
                            format!("`{}` cannot be used together with `{}`", f(key), f("url")),
                        )
                        .with_help(format!("put `{key}` in each `url` entry")),
                    );
                }
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(mut ut) = Table::from_value(sink, item, format!("{}[{i}]", f("url"))) {
                    let url = http_url(sink, &mut ut, method);
                    ut.finish(sink);
                    urls.extend(url);
                }
            }
        }
        None => urls.extend(http_url(sink, t, method)),
    }
    let max_body_bytes = t
        .int::<u32>(sink, "max_body_bytes", 0, 64 * 1024 * 1024)
        .map_or(1024 * 1024, |(n, _)| n);
    let tls = https.then(|| tls(sink, t, &f));
    if sink.items.len() != errors_before {
        return None;
    }
    Some(HttpCheck {
        method,
        host,
        urls,
        max_body_bytes: u64::from(max_body_bytes),
        tls,
    })
}

/// The https kind's TLS settings: verification, trust, server name, client certificate.
fn tls(sink: &mut Sink, t: &mut Table<'_, '_>, f: &dyn Fn(&str) -> String) -> Tls {
    let verify = t.bool(sink, "tls_verify").unwrap_or(true);
    let ca_file = t
        .str(sink, "tls_ca_file")
        .and_then(|(c, span)| absolute_path(sink, &f("tls_ca_file"), c, span));
    let trust = match t.choice(sink, "tls_trust", &["bundled", "system"]) {
        Some(("system", span)) => {
            if ca_file.is_some() {
                sink.push(
                    Diagnostic::error(
                        span,
                        format!(
                            "`{}` and `{}` are alternatives",
                            f("tls_trust"),
                            f("tls_ca_file")
                        ),
                    )
                    .with_help("with tls_ca_file, only its certificates are trusted"),
                );
            }
            TlsTrust::System
        }
        _ => TlsTrust::Bundled,
    };
    let server_name = t.str(sink, "tls_server_name").map(|(s, _)| s.to_string());
    let sni = t.bool(sink, "tls_sni").unwrap_or(true);
    let mut pem_path = |key: &'static str| {
        t.str(sink, key)
            .and_then(|(c, span)| absolute_path(sink, &f(key), c, span.clone()).map(|p| (p, span)))
    };
    let client_cert = pem_path("tls_client_cert");
    let client_key = pem_path("tls_client_key");
    match (&client_cert, &client_key) {
        (Some((_, span)), None) | (None, Some((_, span))) => {
            let (has, lacks) = if client_cert.is_some() {
                ("tls_client_cert", "tls_client_key")
            } else {
                ("tls_client_key", "tls_client_cert")
            };
            sink.push(
                Diagnostic::error(span.clone(), format!("`{}` needs `{}`", f(has), f(lacks)))
                    .with_help("a client certificate is given with its private key"),
            );
        }
        _ => {}
    }
    Tls {
        verify,
        ca_file,
        trust,
        server_name,
        sni,
        client_cert: client_cert.map(|(p, _)| p),
        client_key: client_key.map(|(p, _)| p),
    }
}

/// One URL's path, accepted statuses and body checks, from the check table or a `url`
/// entry (`t`); `None` after an error.
fn http_url(sink: &mut Sink, t: &mut Table<'_, '_>, method: HttpMethod) -> Option<HttpUrl> {
    let p = t.path.clone();
    let f = |k: &str| format!("{p}.{k}");
    let errors_before = sink.items.len();
    let path = match t.str(sink, "path") {
        Some((path, span))
            if !path.starts_with('/')
                || path.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            sink.error(
                span,
                format!(
                    "`{}`: \"{path}\" must start with '/' and contain no spaces",
                    f("path")
                ),
            );
            String::new()
        }
        Some((path, _)) => path.to_string(),
        None => "/".to_string(),
    };
    let mut expect_status = Vec::new();
    if let Some((items, span)) = t.array(sink, "expect_status") {
        if items.is_empty() {
            sink.error(span, format!("`{}` is empty", f("expect_status")));
        }
        for (i, item) in items.iter().enumerate() {
            let field = format!("{}[{i}]", f("expect_status"));
            if let Some(r) = status_range(sink, item, &field) {
                expect_status.push(r);
            }
        }
    } else {
        expect_status.push((200, 299));
    }
    let body_regex = regex_field(sink, t, "body_regex");
    let regex_no_match = t.bool(sink, "regex_no_match").unwrap_or(false);
    if regex_no_match
        && t.get("body_regex").is_none()
        && let Some(v) = t.get("regex_no_match")
    {
        sink.push(
            Diagnostic::error(
                v.span(),
                format!("`{}` needs `{}`", f("regex_no_match"), f("body_regex")),
            )
            .with_help("regex_no_match = true passes when body_regex does not match"),
        );
    }
    let hex_digest =
        |sink: &mut Sink, t: &mut Table<'_, '_>, key: &'static str, len: usize, name: &str| match t
            .str(sink, key)
        {
            Some((h, span)) if h.len() != len || !h.chars().all(|c| c.is_ascii_hexdigit()) => {
                sink.error(
                    span,
                    format!(
                        "`{}` must be {len} hexadecimal digits ({name} digest)",
                        f(key)
                    ),
                );
                None
            }
            Some((h, _)) => Some(h.to_ascii_lowercase()),
            None => None,
        };
    let body_sha256 = hex_digest(sink, t, "body_sha256", 64, "a SHA-256");
    let body_md5 = hex_digest(sink, t, "body_md5", 32, "an MD5");
    if method == HttpMethod::Head {
        for key in ["body_regex", "body_sha256", "body_md5"] {
            if let Some(v) = t.get(key) {
                sink.push(
                    Diagnostic::error(
                        v.span(),
                        format!("`{}` needs a body, but HEAD responses have none", f(key)),
                    )
                    .with_help("use method = \"GET\" to check the body"),
                );
            }
        }
    }
    if sink.items.len() != errors_before {
        return None;
    }
    Some(HttpUrl {
        path,
        expect_status,
        body_regex,
        regex_no_match,
        body_sha256,
        body_md5,
    })
}

/// `200`, or `"200-299"`, or `"404"`.
fn status_range(sink: &mut Sink, v: &Value<'_>, field: &str) -> Option<(u16, u16)> {
    let bad = |sink: &mut Sink| {
        sink.push(
            Diagnostic::error(
                v.span(),
                format!("`{field}` must be a status code from 100 to 599 or a range \"LOW-HIGH\""),
            )
            .with_help("e.g. expect_status = [200, \"300-399\"]"),
        );
    };
    let parse = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
    };

    match v.get_ref() {
        Node::Integer(_) => as_int::<u16>(sink, v, &field, 100, 599).map(|c| (c, c)),
        Node::String(s) => {
            let r = match s.split_once('-') {
                Some((a, b)) => parse(a).zip(parse(b)),
                None => parse(s).map(|c| (c, c)),
            };
            match r {
                Some((a, b)) if a <= b => Some((a, b)),
                _ => {
                    bad(sink);
                    None
                }
            }
        }
        _ => {
            bad(sink);
            None
        }
    }
}
