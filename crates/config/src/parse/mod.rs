//! From the spanned TOML tree to [`Config`]: field by field, each with its type, range and
//! default, recording a diagnostic for every problem instead of stopping at the first.
//! Cross-section rules (duplicates, references) live in `validate.rs`.
//!
//! One file per section of the cluster file: [`director`], [`vrrp`] (instances, with
//! their `track` entries in [`track`]), [`ipvs_sync`], [`virtual_server`] (and its real
//! servers), [`check`] (with the [`http`] and [`dns`] kinds); the rules several sections
//! share (names, interfaces, programs, paths) are here.

use std::ops::Range;
use std::path::PathBuf;

use toml::de::DeTable;

use crate::diag::Diagnostic;
use crate::model::*;
use crate::reader::{Sink, Table, as_array};

mod check;
mod director;
mod dns;
mod http;
mod ipvs_sync;
mod track;
mod virtual_server;
mod vrrp;

use director::director;
use ipvs_sync::ipvs_sync;
use virtual_server::virtual_server;
use vrrp::vrrp_instance;

/// What parsed, possibly only part of the file: cross-section rules run on the parts that
/// did, so one run reports as much as possible.
pub(crate) struct Parsed {
    /// `None` when any section had an error.
    pub(crate) config: Option<Config>,
    pub(crate) vrrp: Vec<VrrpInstance>,
    pub(crate) virtual_servers: Vec<VirtualServer>,
    pub(crate) spans: Spans,
    /// Names (and table spans) of all virtual server tables, including those with errors,
    /// so references to a broken server are not reported as dangling too, and a name used
    /// twice is reported even when one of the servers has errors.
    pub(crate) vs_names: Vec<(String, Range<usize>)>,
}

/// Source positions of things that cross-section validation points at.
#[derive(Default)]
pub(crate) struct Spans {
    pub(crate) vrrp: Vec<VrrpSpans>,
    pub(crate) virtual_servers: Vec<VsSpans>,
}

pub(crate) struct VrrpSpans {
    pub(crate) vrid: Range<usize>,
    pub(crate) vips: Vec<Range<usize>>,
    pub(crate) vips_excluded: Vec<Range<usize>>,
    pub(crate) sync_group: Range<usize>,
    pub(crate) track_vs: Vec<Range<usize>>,
}

pub(crate) struct VsSpans {
    pub(crate) key: Range<usize>,
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

fn absolute_path(sink: &mut Sink, field: &str, path: &str, span: Range<usize>) -> Option<PathBuf> {
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

pub(crate) fn parse_document(
    sink: &mut Sink,
    root: &DeTable<'_>,
    root_span: Range<usize>,
) -> Parsed {
    let mut top = Table::new(root, root_span.clone(), "");
    let mut spans = Spans::default();

    let director = top
        .require(sink, "director")
        .and_then(|v| Table::from_value(sink, v, "director"))
        .and_then(|t| director(sink, t));

    let mut vrrp = Vec::new();
    let mut vrrp_ok = true;
    // Names of all instance tables, including those with errors, so a reference to a
    // broken instance is not reported as dangling too (and a dangling one still is).
    let mut vrrp_names = Vec::new();
    if let Some(v) = top.get("vrrp")
        && let Some(t) = Table::from_value(sink, v, "vrrp")
    {
        for (name, value) in t.entries() {
            let name_str: &str = name.get_ref();
            vrrp_names.push(name_str.to_string());
            let path = format!("vrrp.{name_str}");
            let parsed = check_name(sink, name_str, name.span(), "VRRP instance")
                .then(|| Table::from_value(sink, value, path.clone()))
                .flatten()
                .and_then(|t| vrrp_instance(sink, name_str, t));
            match parsed {
                Some((inst, s)) => {
                    vrrp.push(inst);
                    spans.vrrp.push(s);
                }
                None => vrrp_ok = false,
            }
        }
    }

    let ipvs_sync = match top.get("ipvs_sync") {
        Some(v) => match Table::from_value(sink, v, "ipvs_sync") {
            Some(t) => ipvs_sync(sink, t, &vrrp, &vrrp_names),
            None => None,
        },
        None => None,
    };
    let ipvs_sync_ok = top.get("ipvs_sync").is_none() || ipvs_sync.is_some();

    let mut virtual_servers = Vec::new();
    let mut vs_names = Vec::new();
    let mut vs_ok = true;
    if let Some(v) = top.get("virtual_server")
        && let Some(items) = as_array(sink, v, &"virtual_server")
    {
        for (i, item) in items.iter().enumerate() {
            if let Some(name) = item
                .get_ref()
                .get("name")
                .and_then(|n| n.get_ref().as_str())
            {
                vs_names.push((name.to_string(), item.span()));
            }
            let parsed = Table::from_value(sink, item, format!("virtual_server[{i}]"))
                .and_then(|t| virtual_server(sink, t));
            match parsed {
                Some((vs, s)) => {
                    virtual_servers.push(vs);
                    spans.virtual_servers.push(s);
                }
                None => vs_ok = false,
            }
        }
    }
    top.finish(sink);

    let config = match director {
        Some(director) if vrrp_ok && vs_ok && ipvs_sync_ok => Some(Config {
            director,
            vrrp: vrrp.clone(),
            ipvs_sync,
            virtual_servers: virtual_servers.clone(),
        }),
        _ => None,
    };
    Parsed {
        config,
        vrrp,
        virtual_servers,
        spans,
        vs_names,
    }
}
