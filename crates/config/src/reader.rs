//! Typed reads from the spanned TOML tree. Each read that fails records a diagnostic at
//! the value's span and returns `None`, so one pass over a file reports every problem.

use std::collections::HashMap;
use std::fmt::Display;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::str::FromStr;
use std::time::Duration;

use crate::tree::{Key, Node, Table as TomlTable};

use crate::diag::{Diagnostic, LineIndex, did_you_mean};
use crate::duration::parse_duration;
use crate::model::IpPrefix;

pub(crate) use crate::tree::Value;

/// Collects diagnostics for one file.
pub(crate) struct Sink {
    pub(crate) items: Vec<Diagnostic>,
    /// The file's text, for messages that refer to another line.
    pub(crate) source: String,
    /// Its line starts: "first defined on line N" for each of thousands of duplicates
    /// must not count lines from the start of the file each time. Built at the first
    /// such message: a valid file needs none.
    lines: std::cell::OnceCell<LineIndex>,
    /// Every user a child program is to run as, for [`crate::System`] to check.
    pub(crate) users: Vec<UserRef>,
    /// Every file an `[[alert]]` reads (tokens, CAs), for [`crate::System`] to check.
    pub(crate) files: Vec<crate::alert::FileRef>,
}

/// A user named by (or defaulted for) a field: `field` is the full path of its `user`
/// key, `span` the key's value, or the table's span when the default applies.
pub(crate) struct UserRef {
    pub(crate) name: String,
    pub(crate) field: String,
    pub(crate) span: Range<usize>,
    pub(crate) defaulted: bool,
}

impl Sink {
    pub(crate) fn new(source: &str) -> Self {
        Sink {
            items: Vec::new(),
            source: source.to_string(),
            lines: std::cell::OnceCell::new(),
            users: Vec::new(),
            files: Vec::new(),
        }
    }

    /// The 1-based line of a byte offset of the source.
    pub(crate) fn line_of(&self, offset: usize) -> usize {
        self.lines
            .get_or_init(|| LineIndex::new(&self.source))
            .line(&self.source, offset)
    }

    /// Notes the user a child program runs as: `user` as read, or `default` at `table`.
    pub(crate) fn user<'s>(
        &mut self,
        field: String,
        user: Option<(&'s str, Range<usize>)>,
        default: &'s str,
        table: Range<usize>,
    ) -> &'s str {
        let (name, span, defaulted) = match user {
            Some((u, span)) => (u, span, false),
            None => (default, table, true),
        };
        self.users.push(UserRef {
            name: name.to_string(),
            field,
            span,
            defaulted,
        });
        name
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.items.push(Diagnostic::error(span, message));
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Whether a diagnostic is still worth costly help (a suggestion among the known
    /// names): beyond a few times the errors that are reported, nobody reads it, and a
    /// generated file with tens of thousands of unknown keys spent seconds on them.
    pub(crate) fn wants_suggestions(&self) -> bool {
        self.items.len() < 5 * crate::diag::MAX_REPORTED_ERRORS
    }
}

/// Reports the second and later occurrences of each key, pointing back at the first.
pub(crate) fn unique<K: Eq + Hash>(
    sink: &mut Sink,
    items: impl IntoIterator<Item = (K, Range<usize>)>,
    message: impl Fn(&K) -> String,
) {
    let mut seen: HashMap<K, Range<usize>> = HashMap::new();
    for (key, span) in items {
        if let Some(first) = seen.get(&key) {
            let line = sink.line_of(first.start);
            sink.push(
                Diagnostic::error(span, message(&key))
                    .with_help(format!("first defined on line {line}")),
            );
        } else {
            seen.insert(key, span);
        }
    }
}

pub(crate) fn type_name(v: &Node<'_>) -> &'static str {
    match v {
        Node::String(_) => "a string",
        Node::Integer(_) => "an integer",
        Node::Float => "a float",
        Node::Boolean(_) => "a boolean",
        Node::Datetime => "a date-time",
        Node::Array(_) => "an array",
        Node::Table(_) => "a table",
    }
}

/// A table being read: remembers which keys were asked for, so that every other key can be
/// reported as unknown, with a suggestion among the known ones.
pub(crate) struct Table<'a, 'i> {
    table: &'a TomlTable<'i>,
    /// Span of the table itself, where "missing field" errors point.
    pub(crate) span: Range<usize>,
    /// Dotted path for messages, e.g. `vrrp.web`.
    pub(crate) path: String,
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn new(
        table: &'a TomlTable<'i>,
        span: Range<usize>,
        path: impl Into<String>,
    ) -> Self {
        Table {
            table,
            span,
            path: path.into(),
            // One allocation for the keys a table is read for (a real server's ~10), not
            // the 3 or 4 of growing from empty: 10,000 real servers are 10,000 tables.
            known: Vec::with_capacity(16),
        }
    }

    /// Reads `value` as a table; records an error if it is something else.
    pub(crate) fn from_value(
        sink: &mut Sink,
        value: &'a Value<'i>,
        path: impl Into<String>,
    ) -> Option<Self> {
        let path = path.into();
        match value.get_ref() {
            Node::Table(t) => Some(Table::new(t, value.span(), path)),
            other => {
                sink.error(
                    value.span(),
                    format!("`{path}` must be a table, found {}", type_name(other)),
                );
                None
            }
        }
    }

    /// The dotted path of a field of this table, written out only when an error needs
    /// it: a 10,000-server file reads ~100,000 fields, nearly all of them fine.
    pub(crate) fn field<'k>(&'k self, key: &'k str) -> FieldPath<'k> {
        FieldPath {
            table: &self.path,
            key,
        }
    }

    /// Whether the table has `key`, without asking for it (it stays unknown until read).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    pub(crate) fn get(&mut self, key: &'static str) -> Option<&'a Value<'i>> {
        if !self.known.contains(&key) {
            self.known.push(key);
        }
        self.table.get(key)
    }

    /// Records an error if the key is absent.
    pub(crate) fn require(&mut self, sink: &mut Sink, key: &'static str) -> Option<&'a Value<'i>> {
        let v = self.get(key);
        if v.is_none() {
            sink.error(
                self.span.clone(),
                format!("missing required field `{}`", self.field(key)),
            );
        }
        v
    }

    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'a Key<'i>, &'a Value<'i>)> {
        self.table.iter()
    }

    /// Reports every key that nobody asked for; hands the table's path back for the
    /// messages that come after the reads (no copy of it per table).
    pub(crate) fn finish(self, sink: &mut Sink) -> String {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if self.known.contains(&name) {
                continue;
            }
            let mut d =
                Diagnostic::error(key.span(), format!("unknown field `{}`", self.field(name)));
            let suggestion = if sink.wants_suggestions() {
                did_you_mean(name, &self.known)
            } else {
                None
            };
            d = match suggestion {
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("known fields here: {}", self.known.join(", "))),
            };
            sink.push(d);
        }
        self.path
    }

    // ---- typed reads of optional fields; `req_*` variants also require presence ----

    pub(crate) fn str(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
    ) -> Option<(&'a str, Range<usize>)> {
        let v = self.get(key)?;
        as_str(sink, v, &self.field(key)).map(|s| (s, v.span()))
    }

    pub(crate) fn req_str(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
    ) -> Option<(&'a str, Range<usize>)> {
        let v = self.require(sink, key)?;
        as_str(sink, v, &self.field(key)).map(|s| (s, v.span()))
    }

    pub(crate) fn bool(&mut self, sink: &mut Sink, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            Node::Boolean(b) => Some(*b),
            other => {
                sink.error(
                    v.span(),
                    format!(
                        "`{}` must be true or false, found {}",
                        self.field(key),
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    /// An integer within `range` (inclusive).
    pub(crate) fn int<T>(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
        min: T,
        max: T,
    ) -> Option<(T, Range<usize>)>
    where
        T: TryFrom<i64> + Into<i64> + Copy + Display,
    {
        let v = self.get(key)?;
        as_int(sink, v, &self.field(key), min, max).map(|n| (n, v.span()))
    }

    pub(crate) fn req_int<T>(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
        min: T,
        max: T,
    ) -> Option<(T, Range<usize>)>
    where
        T: TryFrom<i64> + Into<i64> + Copy + Display,
    {
        let v = self.require(sink, key)?;
        as_int(sink, v, &self.field(key), min, max).map(|n| (n, v.span()))
    }

    pub(crate) fn duration(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
    ) -> Option<(Duration, Range<usize>)> {
        let v = self.get(key)?;
        as_duration(sink, v, &self.field(key)).map(|d| (d, v.span()))
    }

    pub(crate) fn array(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
    ) -> Option<(&'a [Value<'i>], Range<usize>)> {
        let v = self.get(key)?;
        as_array(sink, v, &self.field(key)).map(|a| (a, v.span()))
    }

    /// A non-empty array of strings (e.g. a program and its arguments).
    pub(crate) fn str_list(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
    ) -> Option<(Vec<String>, Range<usize>)> {
        let (items, span) = self.array(sink, key)?;
        let field = self.field(key);
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match as_str(sink, item, &format!("{field}[{i}]")) {
                Some(s) => out.push(s.to_string()),
                None => ok = false,
            }
        }
        ok.then_some((out, span))
    }

    /// One of a fixed set of names.
    pub(crate) fn choice(
        &mut self,
        sink: &mut Sink,
        key: &'static str,
        names: &[&'static str],
    ) -> Option<(&'static str, Range<usize>)> {
        let v = self.get(key)?;
        as_choice(sink, v, &self.field(key), names).map(|c| (c, v.span()))
    }
}

pub(crate) fn as_str<'a>(
    sink: &mut Sink,
    v: &'a Value<'_>,
    field: &dyn Display,
) -> Option<&'a str> {
    match v.get_ref() {
        Node::String(s) => Some(s.as_ref()),
        other => {
            sink.error(
                v.span(),
                format!("`{field}` must be a string, found {}", type_name(other)),
            );
            None
        }
    }
}

pub(crate) fn as_array<'a, 'i>(
    sink: &mut Sink,
    v: &'a Value<'i>,
    field: &dyn Display,
) -> Option<&'a [Value<'i>]> {
    match v.get_ref() {
        Node::Array(a) => Some(a.as_ref()),
        other => {
            sink.error(
                v.span(),
                format!("`{field}` must be an array, found {}", type_name(other)),
            );
            None
        }
    }
}

pub(crate) fn as_int<T>(
    sink: &mut Sink,
    v: &Value<'_>,
    field: &dyn Display,
    min: T,
    max: T,
) -> Option<T>
where
    T: TryFrom<i64> + Into<i64> + Copy + Display,
{
    let Node::Integer(i) = v.get_ref() else {
        sink.error(
            v.span(),
            format!(
                "`{field}` must be an integer, found {}",
                type_name(v.get_ref())
            ),
        );
        return None;
    };
    let n = i64::from_str_radix(i.as_str(), i.radix()).ok();
    match n {
        Some(n) if n >= min.into() && n <= max.into() => T::try_from(n).ok(),
        _ => {
            sink.error(
                v.span(),
                format!("`{field}` = {} is out of range {min}–{max}", i.as_str()),
            );
            None
        }
    }
}

pub(crate) fn as_duration(sink: &mut Sink, v: &Value<'_>, field: &dyn Display) -> Option<Duration> {
    let s = match v.get_ref() {
        Node::String(s) => s.as_ref(),
        other => {
            let mut d = Diagnostic::error(
                v.span(),
                format!(
                    "`{field}` must be a duration string, found {}",
                    type_name(other)
                ),
            );
            if matches!(other, Node::Integer(_) | Node::Float) {
                d = d.with_help("durations carry a unit: write \"500ms\", \"2s\" or \"1m\"");
            }
            sink.push(d);
            return None;
        }
    };
    match parse_duration(s) {
        Ok(d) => Some(d),
        Err(e) => {
            sink.push(
                Diagnostic::error(v.span(), format!("`{field}`: {e}"))
                    .with_help("write a number and a unit: \"250ms\", \"2s\", \"1m30s\", \"1h\""),
            );
            None
        }
    }
}

pub(crate) fn as_parsed<T: FromStr>(
    sink: &mut Sink,
    v: &Value<'_>,
    field: &dyn Display,
    what: &str,
    example: &str,
) -> Option<T> {
    let s = as_str(sink, v, field)?;
    match s.parse() {
        Ok(t) => Some(t),
        Err(_) => {
            sink.push(
                Diagnostic::error(v.span(), format!("`{field}`: \"{s}\" is not {what}"))
                    .with_help(format!("for example \"{example}\"")),
            );
            None
        }
    }
}

pub(crate) fn as_choice(
    sink: &mut Sink,
    v: &Value<'_>,
    field: &dyn Display,
    names: &[&'static str],
) -> Option<&'static str> {
    let s = as_str(sink, v, field)?;
    if let Some(n) = names.iter().find(|n| n.eq_ignore_ascii_case(s)) {
        return Some(n);
    }
    let mut d = Diagnostic::error(v.span(), format!("`{field}`: unknown value \"{s}\""));
    d = match did_you_mean(s, names) {
        Some(n) => d.with_help(format!(
            "did you mean \"{n}\"? (one of: {})",
            names.join(", ")
        )),
        None => d.with_help(format!("one of: {}", names.join(", "))),
    };
    sink.push(d);
    None
}

/// `ADDR/PREFIX`, with the prefix checked against the family.
pub(crate) fn as_prefix(sink: &mut Sink, v: &Value<'_>, field: &dyn Display) -> Option<IpPrefix> {
    let s = as_str(sink, v, field)?;
    let bad = |sink: &mut Sink, why: String| {
        sink.push(
            Diagnostic::error(v.span(), format!("`{field}`: \"{s}\" {why}"))
                .with_help("write ADDRESS/PREFIX, e.g. \"192.0.2.100/24\" or \"2001:db8::100/64\""),
        );
    };
    let Some((addr, len)) = s.split_once('/') else {
        bad(sink, "has no prefix length".into());
        return None;
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        bad(sink, "is not an IP address".into());
        return None;
    };
    let max = crate::model::AddressFamily::of(&addr).max_prefix();
    match len.parse::<u8>() {
        Ok(n) if n <= max => Some(IpPrefix {
            addr,
            prefix_len: n,
        }),
        _ => {
            bad(sink, format!("has a prefix length outside 0–{max}"));
            None
        }
    }
}

/// `IP:PORT` (`[v6]:PORT`), or a bare IP that takes `default_port` when one is given.
pub(crate) fn as_socket_addr(
    sink: &mut Sink,
    v: &Value<'_>,
    field: &dyn Display,
    default_port: Option<u16>,
) -> Option<SocketAddr> {
    let s = as_str(sink, v, field)?;
    if let Ok(sa) = s.parse::<SocketAddr>() {
        if sa.port() == 0 {
            sink.error(v.span(), format!("`{field}`: port 0 is not a valid port"));
            return None;
        }
        return Some(sa);
    }
    if let (Some(port), Ok(ip)) = (default_port, s.trim_matches(['[', ']']).parse::<IpAddr>()) {
        return Some(SocketAddr::new(ip, port));
    }
    let help = if default_port.is_some() {
        "write IP:PORT or IP, e.g. \"10.0.0.11:80\", \"10.0.0.11\" or \"[2001:db8::11]:80\""
    } else {
        "write IP:PORT, e.g. \"192.0.2.100:80\" or \"[2001:db8::100]:80\""
    };
    let why = if s.parse::<IpAddr>().is_ok() {
        "has no port"
    } else {
        "is not an address with a port"
    };
    sink.push(Diagnostic::error(v.span(), format!("`{field}`: \"{s}\" {why}")).with_help(help));
    None
}

pub(crate) fn as_ip(sink: &mut Sink, v: &Value<'_>, field: &dyn Display) -> Option<IpAddr> {
    as_parsed(sink, v, field, "an IP address", "192.0.2.1")
}

/// `table.key` (or `key` at the top level) for error messages; see [`Table::field`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldPath<'a> {
    table: &'a str,
    key: &'a str,
}

impl Display for FieldPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.table.is_empty() {
            f.write_str(self.key)
        } else {
            write!(f, "{}.{}", self.table, self.key)
        }
    }
}
