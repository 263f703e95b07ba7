//! From the spanned TOML tree to [`Config`]: field by field, each with its type, range and
//! default, recording a diagnostic for every problem instead of stopping at the first.
//! Cross-section rules (duplicates, references) live in `validate.rs`.
//!
//! One file per section of the cluster file: [`director`], [`vrrp`] (instances, with
//! their `track` entries in [`track`]), [`ipvs_sync`], [`virtual_server`] (and its real
//! servers), [`check`] (with the [`http`] and [`dns`] kinds); the rules several sections
//! share (names, interfaces, programs, paths, regular expressions) are here.

use std::ops::Range;
use std::path::PathBuf;

use crate::tree::{Node, Table as TomlTable};

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table};

mod announce;
mod check;
mod director;
mod dns;
mod dns_real_servers;
mod group;
mod http;
mod ipvs_options;
mod ipvs_sync;
mod notify;
mod track;
mod virtual_server;
mod vrrp;
mod vrrp_routes;

use director::director;
use ipvs_sync::ipvs_sync;
use notify::{notify_hooks, sync_group_section};
use virtual_server::virtual_server_section;
use vrrp::vrrp_section;

/// What parsed, possibly only part of the file: cross-section rules run on the parts that
/// did, so one run reports as much as possible.
pub(crate) struct Parsed {
    /// `None` when any section had an error.
    pub(crate) config: Option<Config>,
    /// The instances and virtual servers read without errors, when there is no
    /// `config`; with one they are its own (no second copy of 10,000 real servers at
    /// the parse's peak: issue 18). Read them through [`Parsed::vrrp`] and
    /// [`Parsed::virtual_servers`].
    vrrp: Vec<VrrpInstance>,
    virtual_servers: Vec<VirtualServer>,
    pub(crate) spans: Spans,
    /// Names (and table spans) of all virtual server tables, including those with errors,
    /// so references to a broken server are not reported as dangling too, and a name used
    /// twice is reported even when one of the servers has errors.
    pub(crate) vs_names: Vec<(String, Range<usize>)>,
}

impl Parsed {
    pub(crate) fn vrrp(&self) -> &[VrrpInstance] {
        match &self.config {
            Some(c) => &c.vrrp,
            None => &self.vrrp,
        }
    }

    pub(crate) fn virtual_servers(&self) -> &[VirtualServer] {
        match &self.config {
            Some(c) => &c.virtual_servers,
            None => &self.virtual_servers,
        }
    }
}

/// Source positions of things that cross-section validation points at.
pub(crate) struct Spans {
    pub(crate) vrrp: Vec<VrrpSpans>,
    pub(crate) virtual_servers: Vec<VsSpans>,
    /// `[ipvs_sync]` and `[ipvs_timeouts]`, when present (IPVS-only sections).
    pub(crate) ipvs_sections: Vec<(&'static str, Range<usize>)>,
    /// `director.nftables_*` keys, when given (nftables-only options).
    pub(crate) nftables_keys: Vec<(&'static str, Range<usize>)>,
}

pub(crate) struct VrrpSpans {
    pub(crate) vrid: Range<usize>,
    pub(crate) vips: Vec<Range<usize>>,
    pub(crate) vips_excluded: Vec<Range<usize>>,
    pub(crate) sync_group: Range<usize>,
    pub(crate) track_vs: Vec<Range<usize>>,
    /// The virtual MAC interface's name (or `use_vmac`, for the default one).
    pub(crate) vmac: Range<usize>,
}

pub(crate) struct VsSpans {
    pub(crate) key: Range<usize>,
    /// The whole `[[virtual_server]]` table.
    pub(crate) table: Range<usize>,
    /// Fields a datapath may refuse (`scheduler`, `persistence`, ...), when given.
    pub(crate) fields: Vec<(&'static str, Range<usize>)>,
    /// Each parsed real server's table, in order.
    pub(crate) real_servers: Vec<Range<usize>>,
    /// The group's other services' entries, as `VirtualServer::group`.
    pub(crate) group: Vec<Range<usize>>,
    /// `announce = true`, when set.
    pub(crate) announce: Option<Range<usize>>,
}

/// The tables of one section: those that parsed, with their spans; the names of all of
/// them, including those with errors, so a reference to a broken one is not reported as
/// dangling too (and a dangling one still is); and whether none had an error.
struct Section<T, S, N> {
    items: Vec<T>,
    spans: Vec<S>,
    names: Vec<N>,
    ok: bool,
}

impl<T, S, N> Section<T, S, N> {
    fn new() -> Self {
        Section {
            items: Vec::new(),
            spans: Vec::new(),
            names: Vec::new(),
            ok: true,
        }
    }

    /// One table's result: `None` when it had errors (reported already).
    fn take(&mut self, parsed: Option<(T, S)>) {
        match parsed {
            Some((item, span)) => {
                self.items.push(item);
                self.spans.push(span);
            }
            None => self.ok = false,
        }
    }
}

/// Names people use for things in CLIs and metrics: keep them plain.
fn check_name(sink: &mut Sink, name: &str, span: Range<usize>, what: &str) -> bool {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        sink.push(
            Diagnostic::error(span, format!("{what} name \"{name}\" is not a valid name"))
                .with_help("use 1 to 64 letters, digits, '-', '_' or '.'"),
        );
    }
    ok
}

fn check_interface(sink: &mut Sink, field: &str, name: &str, span: Range<usize>) -> bool {
    // IFNAMSIZ is 16 including the terminating NUL.
    let ok = !name.is_empty()
        && name.len() <= 15
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
        && name != "."
        && name != "..";
    if !ok {
        sink.error(
            span,
            format!("`{field}`: \"{name}\" is not a valid interface name (at most 15 characters, no '/', ':' or spaces)"),
        );
    }
    ok
}

fn absolute_program(sink: &mut Sink, field: &str, argv: &[String], span: Range<usize>) -> bool {
    match argv.first() {
        None => {
            sink.error(
                span,
                format!("`{field}` is empty: give the program and its arguments"),
            );
            false
        }
        Some(p) if !p.starts_with('/') => {
            sink.push(
                Diagnostic::error(span, format!("`{field}`: program \"{p}\" must be an absolute path"))
                    .with_help("programs are run directly, never through a shell or $PATH, e.g. [\"/usr/local/bin/notify\", \"arg\"]"),
            );
            false
        }
        Some(_) => true,
    }
}

pub(crate) fn absolute_path(
    sink: &mut Sink,
    field: &str,
    path: &str,
    span: Range<usize>,
) -> Option<PathBuf> {
    if path.starts_with('/') {
        Some(PathBuf::from(path))
    } else {
        sink.error(
            span,
            format!("`{field}`: \"{path}\" must be an absolute path"),
        );
        None
    }
}

/// A regular expression field, checked to compile.
fn regex_field(sink: &mut Sink, t: &mut Table<'_, '_>, key: &'static str) -> Option<String> {
    let (re, span) = t.str(sink, key)?;
    match regex::Regex::new(re) {
        Ok(_) => Some(re.to_string()),
        Err(e) => {
            // The regex error is multi-line with its own caret; keep its last line.
            let why = e.to_string();
            let why = why
                .lines()
                .last()
                .unwrap_or("invalid")
                .trim_start_matches("error: ")
                .to_string();
            sink.error(
                span,
                format!("`{}`: invalid regular expression: {why}", t.field(key)),
            );
            None
        }
    }
}

pub(crate) fn parse_document(sink: &mut Sink, root: &TomlTable<'_>) -> Parsed {
    // The root has no span of its own: "missing field" errors at the top point at the
    // start of the file.
    let mut top = Table::new(root, 0..0, "");

    let director = top
        .require(sink, "director")
        .and_then(|v| Table::from_value(sink, v, "director"))
        .and_then(|t| director(sink, t));
    let nftables_keys = match top.get("director").map(|v| v.get_ref()) {
        Some(Node::Table(t)) => ["nftables_masquerade", "nftables_flush_on_failure"]
            .into_iter()
            .filter_map(|k| t.get(k).map(|v| (k, v.span())))
            .collect(),
        _ => Vec::new(),
    };
    let mut vrrp = vrrp_section(sink, &mut top);
    let ipvs_sync = match top.get("ipvs_sync") {
        Some(v) => match Table::from_value(sink, v, "ipvs_sync") {
            Some(t) => ipvs_sync(sink, t, &vrrp.items, &vrrp.names),
            None => None,
        },
        None => None,
    };
    let ipvs_sync_ok = top.get("ipvs_sync").is_none() || ipvs_sync.is_some();
    let sync_groups = sync_group_section(sink, &mut top, &vrrp.items, vrrp.ok);
    // `Some(None)`: the section is there but has errors.
    let ipvs_timeouts = top.get("ipvs_timeouts").map(|v| {
        Table::from_value(sink, v, "ipvs_timeouts")
            .and_then(|t| ipvs_options::ipvs_timeouts(sink, t))
    });
    let ipvs_sections = ["ipvs_sync", "ipvs_timeouts"]
        .into_iter()
        .filter_map(|k| top.get(k).map(|v| (k, v.span())))
        .collect();
    let mut vs = virtual_server_section(sink, &mut top);
    let alerts = crate::alert::alerts(sink, top.get("alert"));
    // `Some(None)`: the section is there but has errors.
    let announce = top
        .get("announce")
        .map(|v| Table::from_value(sink, v, "announce").and_then(|t| announce::announce(sink, t)));
    let announce_ok = !matches!(announce, Some(None));
    if announce.is_none() {
        for (vs, spans) in vs.items.iter().zip(&vs.spans) {
            if let Some(span) = &spans.announce {
                sink.push(
                    Diagnostic::error(
                        span.clone(),
                        format!("`virtual_server.{}.announce` needs an [announce] section", vs.name),
                    )
                    .with_help("add [announce] with `table`: the kernel routing table your BGP speaker exports"),
                );
            }
        }
    }
    let announce_missing = announce.is_none() && vs.spans.iter().any(|s| s.announce.is_some());
    top.finish(sink);

    let config = match (director, sync_groups, alerts) {
        (Some(director), Some(sync_groups), Some(alerts))
            if vrrp.ok
                && vs.ok
                && ipvs_sync_ok
                && !matches!(ipvs_timeouts, Some(None))
                && announce_ok
                && !announce_missing =>
        {
            Some(Config {
                director,
                vrrp: std::mem::take(&mut vrrp.items),
                ipvs_sync,
                ipvs_timeouts: ipvs_timeouts.flatten(),
                virtual_servers: std::mem::take(&mut vs.items),
                sync_groups,
                alerts,
                announce: announce.flatten(),
            })
        }
        _ => None,
    };
    Parsed {
        config,
        vrrp: vrrp.items,
        virtual_servers: vs.items,
        spans: Spans {
            vrrp: vrrp.spans,
            virtual_servers: vs.spans,
            ipvs_sections,
            nftables_keys,
        },
        vs_names: vs.names,
    }
}
