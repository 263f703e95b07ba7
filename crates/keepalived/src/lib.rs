//! Importing keepalived configurations: `vigild import-keepalived`.
//!
//! Owns: reading keepalived.conf's language (includes, conditional lines, definitions,
//! comments, quoting, blocks; [`reader`]) and mapping what it means to a vigil cluster
//! file ([`map`]), with one warning (`FILE:LINE: warning: KEYWORD: ...`) and one TOML
//! comment for every construct that is dropped, approximated or defaulted.
//!
//! Must not: run anything, look at or change the system. Files are read through the
//! [`Files`] trait (the filesystem in the CLI, memory in tests); everything else is pure.

pub mod map;
pub mod reader;

use std::fmt;
use std::path::Path;

pub use map::{KeywordStatus, keyword_status, manpage_keywords};
pub use reader::{Files, FsFiles, Loc, MemFiles, Node, ReadError};

/// A construct that did not map one to one: `FILE:LINE: warning: KEYWORD: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub loc: Loc,
    pub keyword: String,
    /// What was done instead (dropped, approximated, defaulted) and why.
    pub message: String,
}

impl Warning {
    pub(crate) fn new(loc: &Loc, keyword: &str, message: impl Into<String>) -> Self {
        Warning {
            loc: loc.clone(),
            keyword: keyword.to_string(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: warning: {}: {}",
            self.loc, self.keyword, self.message
        )
    }
}

/// What the host running the import would make of the file's defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// keepalived's `-i`/`--config-id`: selects `@ID` lines. `None` selects only `@^ID`
    /// lines (keepalived defaults it to the node name; the CLI does the same).
    pub config_id: Option<String>,
    /// The director name when `global_defs` has no `router_id` (keepalived uses the host
    /// name); `None` writes `"director"`.
    pub hostname: Option<String>,
}

/// The cluster file's text and the warnings, in input order.
#[derive(Debug, Clone)]
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<Warning>,
}

/// Reads the keepalived.conf at `path` (and what it includes) and maps it.
pub fn import(path: &Path, files: &dyn Files, options: &Options) -> Result<Imported, ReadError> {
    let (nodes, mut warnings) = reader::read(path, files, options.config_id.as_deref())?;
    let mapped = map::map(&nodes, options)?;
    warnings.extend(mapped.warnings);
    Ok(Imported {
        toml: mapped.toml,
        warnings,
    })
}
