//! vigil cluster configuration: one TOML file describes one cluster.
//!
//! Owns: the schema (every field, its type, default and range), parsing, and complete
//! semantic validation. Every problem in a file is reported at once, each as
//! `FILE:LINE:COL: error: MESSAGE` with the offending line and a caret
//! (see [`Diagnostics`]). A [`Config`] that exists is valid: consumers never re-check it.
//!
//! Must not: do I/O beyond reading the file it is given, look at the running system
//! (interfaces, users, programs), or know how the daemon applies a config.

mod alert;
mod diag;
mod duration;
mod model;
mod parse;
mod reader;
mod tree;
mod validate;

use std::path::{Path, PathBuf};

pub use alert::{ALERT_EVENTS, Alert, AlertAuth, AlertFormat, FileUse, MAX_BACKOFF};
pub use diag::{Diagnostic, Diagnostics, MAX_REPORTED_ERRORS, Position, Severity};
pub use duration::{DurationError, format_duration, parse_duration};
pub use model::*;
pub use validate::System;

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
    /// A FIFO, device, directory or socket: reading it could block forever or never end.
    #[error("{}: not a regular file ({kind}); a cluster file must be a regular file", path.display())]
    NotAFile { path: PathBuf, kind: &'static str },
    /// The file has errors; the diagnostics render them all.
    #[error("{0}")]
    Invalid(Box<Diagnostics>),
}

impl ConfigError {
    /// The number of errors this stands for (1 for I/O problems).
    pub fn error_count(&self) -> usize {
        match self {
            ConfigError::Invalid(d) => d.error_count(),
            _ => 1,
        }
    }
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
    // Checked before opening: opening a FIFO waits for a writer, and /dev/zero never
    // ends. Checked again on the opened file, in case the name was replaced meanwhile.
    let check = |meta: &std::fs::Metadata| {
        if !meta.is_file() {
            return Err(ConfigError::NotAFile {
                path: path.to_path_buf(),
                kind: file_kind(&meta.file_type()),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
            });
        }
        Ok(())
    };
    check(&std::fs::metadata(path).map_err(read_err)?)?;
    let file = std::fs::File::open(path).map_err(read_err)?;
    check(&file.metadata().map_err(read_err)?)?;
    // A file that grows while being read still stops at the cap.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_FILE_BYTES + 1),
        &mut bytes,
    )
    .map_err(read_err)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let source = String::from_utf8(bytes).map_err(|_| ConfigError::NotUtf8 {
        path: path.to_path_buf(),
    })?;
    parse_inner(path, &source, system).map_err(ConfigError::Invalid)
}

fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The TOML tree a parse reads, kept until dropped: for the load bench only.
#[doc(hidden)]
pub fn toml_tree(source: &str) -> impl Sized + '_ {
    let mut errors: Vec<toml_parser::ParseError> = Vec::new();
    (tree::parse(source, &mut errors), errors)
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
    let mut syntax_errors: Vec<toml_parser::ParseError> = Vec::new();
    let root = tree::parse(source, &mut syntax_errors);
    if !syntax_errors.is_empty() {
        // Syntax errors first and alone: checking the meaning of a half-parsed file
        // would only add confusing follow-on errors.
        let items = syntax_errors
            .iter()
            .map(|e| {
                let span = e.unexpected().map_or(0..0, |s| s.start()..s.end());
                Diagnostic::error(span, format!("TOML syntax: {}", tree::message(e)))
            })
            .collect();
        return Err(fail(items));
    }
    let mut sink = reader::Sink::new(source);
    let parsed = parse::parse_document(&mut sink, &root);
    validate::validate(&mut sink, &parsed);
    if let Some(system) = system {
        validate::users(&mut sink, system);
        alert::check_files(&mut sink, system);
        validate::datapath(&mut sink, &parsed, system);
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
