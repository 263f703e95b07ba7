//! vigil cluster configuration: one TOML file describes one cluster.
//!
//! Owns: the schema (every field, its type, default and range), parsing, and complete
//! semantic validation. Every problem in a file is reported at once, each as
//! `FILE:LINE:COL: error: MESSAGE` with the offending line and a caret
//! (see [`Diagnostics`]). A [`Config`] that exists is valid: consumers never re-check it.
//!
//! Must not: do I/O beyond reading the file it is given, look at the running system
//! (interfaces, users, programs), or know how the daemon applies a config.

mod diag;
mod duration;
mod model;
mod parse;
mod reader;
mod validate;

use std::path::{Path, PathBuf};

pub use diag::{Diagnostic, Diagnostics, Position, Severity};
pub use duration::{DurationError, format_duration, parse_duration};
pub use model::*;

/// Files larger than this are refused before parsing (a 10,000-real-server cluster is
/// about 1 MiB).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// A valid configuration and the warnings found while validating it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Diagnostics,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: file is larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: file is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    /// The file has errors; the diagnostics render them all.
    #[error("{0}")]
    Invalid(Box<Diagnostics>),
}

impl ConfigError {
    /// The number of errors this stands for (1 for I/O problems).
    pub fn error_count(&self) -> usize {
        match self {
            ConfigError::Invalid(d) => d.errors().count(),
            _ => 1,
        }
    }
}

/// What validation may ask about the system a file is to run on. vigil-config never
/// looks at the running system itself: the daemon passes an implementation to
/// [`load_on`] / [`parse_on`], so such problems are still reported at their place in
/// the file.
pub trait System {
    /// `Err(why)` when child programs cannot run as user `name` here, e.g.
    /// `user "nbody" does not exist on this system`.
    fn check_user(&self, name: &str) -> Result<(), String>;
}

/// Reads and validates a cluster file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_inner(path, None)
}

/// [`load`], also checking what only the system it runs on can tell (the users child
/// programs run as).
pub fn load_on(path: &Path, system: &dyn System) -> Result<Loaded, ConfigError> {
    load_inner(path, Some(system))
}

fn load_inner(path: &Path, system: Option<&dyn System>) -> Result<Loaded, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    let source = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    parse_inner(path, &source, system).map_err(ConfigError::Invalid)
}

/// Validates cluster-file text; `file` is only used to name the file in diagnostics.
pub fn parse(file: &Path, source: &str) -> Result<Loaded, Box<Diagnostics>> {
    parse_inner(file, source, None)
}

/// [`parse`], also asking `system` (see [`load_on`]).
pub fn parse_on(
    file: &Path,
    source: &str,
    system: &dyn System,
) -> Result<Loaded, Box<Diagnostics>> {
    parse_inner(file, source, Some(system))
}

fn parse_inner(
    file: &Path,
    source: &str,
    system: Option<&dyn System>,
) -> Result<Loaded, Box<Diagnostics>> {
    let fail = |items| Box::new(Diagnostics::new(file, source, items));
    let (root, syntax_errors) = toml::de::DeTable::parse_recoverable(source);
    if !syntax_errors.is_empty() {
        // Syntax errors first and alone: checking the meaning of a half-parsed file
        // would only add confusing follow-on errors.
        let items = syntax_errors
            .iter()
            .map(|e| {
                let span = e.span().unwrap_or(0..0);
                Diagnostic::error(span, format!("TOML syntax: {}", e.message().trim_end()))
            })
            .collect();
        return Err(fail(items));
    }
    let mut sink = reader::Sink::new(source);
    let parsed = parse::parse_document(&mut sink, root.get_ref(), root.span());
    validate::validate(&mut sink, &parsed);
    if let Some(system) = system {
        validate::users(&mut sink, system);
    }
    let diags = Diagnostics::new(file, source, sink.items);
    match parsed.config {
        Some(config) if !diags.has_errors() => Ok(Loaded {
            config,
            warnings: diags,
        }),
        _ => Err(Box::new(diags)),
    }
}
