//! Diagnostics: errors and warnings that point at a place in a cluster file.
//!
//! Every problem found in a file is collected (not just the first) and rendered as
//! `FILE:LINE:COL: error: MESSAGE`, followed by the offending source line and a caret
//! under the span, like a compiler would.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is: errors make the file invalid, warnings are advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One problem at one place (a byte range of the source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(span, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// At most this many errors are kept and reported per file; the rest are counted ("and
/// N more errors"). A broken generator can write tens of thousands of them, which nobody
/// reads and which would fill the logs and the status socket's reload history.
pub const MAX_REPORTED_ERRORS: usize = 200;

/// All diagnostics of one file, with the source they refer to, ready to render.
#[derive(Debug, Clone)]
pub struct Diagnostics {
    file: PathBuf,
    source: String,
    items: Vec<Diagnostic>,
    /// Errors found beyond [`MAX_REPORTED_ERRORS`] (not in `items`).
    omitted_errors: usize,
    /// Where each line starts, for rendering.
    lines: LineIndex,
    /// Each item's position, computed in one pass over the source: counting from the
    /// start of the file for each made 34,000 errors in a 1 MB file take 69 s.
    positions: Vec<Position>,
}

impl Diagnostics {
    pub(crate) fn new(file: &Path, source: &str, mut items: Vec<Diagnostic>) -> Self {
        // Report in file order so the output reads top to bottom; errors before warnings
        // at the same place.
        items.sort_by(|a, b| {
            (a.span.start, a.severity, &a.message).cmp(&(b.span.start, b.severity, &b.message))
        });
        items.dedup();
        let mut errors = 0;
        let before = items.len();
        items.retain(|d| {
            if d.severity != Severity::Error {
                return true;
            }
            errors += 1;
            errors <= MAX_REPORTED_ERRORS
        });
        // Kept only to render items: a valid file's (empty) diagnostics live as long as
        // its config, and a copy of a 10,000-server file with its line index is ~1 MiB.
        let source = if items.is_empty() { "" } else { source };
        Diagnostics {
            file: file.to_path_buf(),
            source: source.to_string(),
            omitted_errors: before - items.len(),
            positions: positions_in_order(source, &items),
            items,
            lines: LineIndex::new(source),
        }
    }

    /// Errors found but not kept (beyond [`MAX_REPORTED_ERRORS`]).
    pub fn omitted_errors(&self) -> usize {
        self.omitted_errors
    }

    /// Every error found, reported or not.
    pub fn error_count(&self) -> usize {
        self.errors().count() + self.omitted_errors
    }

    /// `and N more errors (only the first M are reported)`, when some were left out.
    pub fn omitted_note(&self) -> Option<String> {
        (self.omitted_errors > 0).then(|| {
            format!(
                "{}: and {} more errors (only the first {MAX_REPORTED_ERRORS} are reported)",
                self.file.display(),
                self.omitted_errors
            )
        })
    }

    pub fn file(&self) -> &Path {
        &self.file
    }

    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Where a diagnostic starts, as line and column.
    pub fn position(&self, d: &Diagnostic) -> Position {
        // Items are sorted by start, and those with the same start share a position.
        let i = self.items.partition_point(|x| x.span.start < d.span.start);
        match (self.items.get(i), self.positions.get(i)) {
            (Some(x), Some(p)) if x.span.start == d.span.start => *p,
            _ => self.lines.position(&self.source, d.span.start),
        }
    }

    /// `FILE:LINE:COL: error: MESSAGE` and nothing else: one line per diagnostic, for
    /// logs and the status socket.
    pub fn one_line(&self, d: &Diagnostic) -> String {
        let p = self.position(d);
        format!(
            "{}:{}:{}: {}: {}",
            self.file.display(),
            p.line,
            p.column,
            d.severity,
            d.message
        )
    }

    fn render_one(&self, d: &Diagnostic, out: &mut String) {
        use fmt::Write;
        let p = self.position(d);
        let _ = writeln!(out, "{}", self.one_line(d));
        let line_start = self.lines.line_start(&self.source, d.span.start);
        let line_end = self.source[line_start..]
            .find('\n')
            .map_or(self.source.len(), |i| line_start + i);
        let text = self.source[line_start..line_end].trim_end_matches('\r');
        let gutter = p.line.to_string().len();
        let _ = writeln!(out, "{:gutter$} |", "");
        let _ = writeln!(out, "{} | {}", p.line, text);
        // The caret covers the span, clipped to this line, at least one character wide.
        let span_end = d.span.end.clamp(d.span.start, line_end.max(d.span.start));
        let width = self.source[d.span.start.min(line_end)..span_end.min(line_end)]
            .chars()
            .count()
            .max(1);
        let _ = writeln!(
            out,
            "{:gutter$} | {}{}",
            "",
            " ".repeat(p.column - 1),
            "^".repeat(width)
        );
        if let Some(help) = &d.help {
            let _ = writeln!(out, "{:gutter$} = help: {}", "", help);
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            self.render_one(d, &mut out);
        }
        if let Some(note) = self.omitted_note() {
            out.push('\n');
            out.push_str(&note);
        }
        f.write_str(out.trim_end_matches('\n'))
    }
}

/// The positions of `items` (sorted by start) in one forward pass over `source`.
fn positions_in_order(source: &str, items: &[Diagnostic]) -> Vec<Position> {
    let mut at = 0;
    let mut pos = Position { line: 1, column: 1 };
    items
        .iter()
        .map(|d| {
            let offset = floor_char_boundary(source, d.span.start);
            if offset > at {
                for c in source[at..offset].chars() {
                    if c == '\n' {
                        pos.line += 1;
                        pos.column = 1;
                    } else {
                        pos.column += 1;
                    }
                }
                at = offset;
            }
            pos
        })
        .collect()
}

/// The byte offset of every line start of a source, for positions in O(log lines).
#[derive(Debug, Clone, Default)]
pub(crate) struct LineIndex(Vec<usize>);

impl LineIndex {
    pub(crate) fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex(starts)
    }

    /// The index of the line holding `offset` (0-based) and where that line starts.
    fn line_of(&self, source: &str, offset: usize) -> (usize, usize) {
        let offset = floor_char_boundary(source, offset);
        // The last start at or before `offset` (a line start equal to it begins that line).
        let line = self.0.partition_point(|&s| s <= offset).saturating_sub(1);
        (line, self.0.get(line).copied().unwrap_or(0))
    }

    pub(crate) fn line_start(&self, source: &str, offset: usize) -> usize {
        self.line_of(source, offset).1
    }

    /// The 1-based line number of `offset`.
    pub(crate) fn line(&self, source: &str, offset: usize) -> usize {
        self.line_of(source, offset).0 + 1
    }

    /// As [`position_of`], without reading the source before the line.
    pub(crate) fn position(&self, source: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(source, offset);
        let (line, start) = self.line_of(source, offset);
        Position {
            line: line + 1,
            column: source[start..offset].chars().count() + 1,
        }
    }
}

#[cfg(test)]
fn line_start_of(source: &str, offset: usize) -> usize {
    let offset = floor_char_boundary(source, offset);
    source[..offset].rfind('\n').map_or(0, |i| i + 1)
}

fn floor_char_boundary(source: &str, offset: usize) -> usize {
    let mut o = offset.min(source.len());
    while !source.is_char_boundary(o) {
        o -= 1;
    }
    o
}

#[cfg(test)]
pub(crate) fn position_of(source: &str, offset: usize) -> Position {
    let offset = floor_char_boundary(source, offset);
    let start = line_start_of(source, offset);
    Position {
        line: source[..start].matches('\n').count() + 1,
        column: source[start..offset].chars().count() + 1,
    }
}

/// The known name closest to `unknown`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    let length = unknown.chars().count();
    let limit = (length / 3).max(1);
    known
        .iter()
        // The distance is at least the difference in length: most names are ruled out
        // without computing it (34,000 unknown keys spent seconds here).
        .filter(|k| k.chars().count().abs_diff(length) <= limit)
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance, with a swap of two neighbours counted as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(position_of(src, 0), Position { line: 1, column: 1 });
        assert_eq!(position_of(src, 6), Position { line: 2, column: 1 });
        // 'é' is two bytes but one column: the space after it is column 3.
        assert_eq!(position_of(src, 9), Position { line: 2, column: 3 });
    }

    #[test]
    fn the_line_index_agrees_with_counting() {
        let src = "a = 1\nbé = 2\n\n\nlast";
        let index = LineIndex::new(src);
        for offset in 0..=src.len() + 2 {
            assert_eq!(
                index.position(src, offset),
                position_of(src, offset),
                "{offset}"
            );
            assert_eq!(
                index.line_start(src, offset),
                line_start_of(src, offset),
                "{offset}"
            );
        }
    }

    #[test]
    fn errors_beyond_the_cap_are_counted_not_kept() {
        let src = "x\n".repeat(MAX_REPORTED_ERRORS + 5);
        let items = (0..MAX_REPORTED_ERRORS + 5)
            .map(|i| Diagnostic::error(i * 2..i * 2 + 1, format!("bad {i}")))
            .chain([Diagnostic::warning(0..1, "advice")])
            .collect();
        let d = Diagnostics::new(Path::new("c.toml"), &src, items);
        let last = d.errors().last().unwrap();
        assert_eq!(
            d.position(last),
            Position {
                line: MAX_REPORTED_ERRORS,
                column: 1
            }
        );
        assert_eq!(d.errors().count(), MAX_REPORTED_ERRORS);
        assert_eq!(d.warnings().count(), 1);
        assert_eq!(d.error_count(), MAX_REPORTED_ERRORS + 5);
        assert!(
            d.to_string()
                .ends_with("c.toml: and 5 more errors (only the first 200 are reported)"),
            "{d}"
        );
    }

    #[test]
    fn render_shows_line_and_caret() {
        let src = "[director]\nname = 12\n";
        let d = Diagnostics::new(
            Path::new("c.toml"),
            src,
            vec![Diagnostic::error(18..20, "bad").with_help("try a string")],
        );
        let text = d.to_string();
        assert_eq!(
            text,
            "c.toml:2:8: error: bad\n  |\n2 | name = 12\n  |        ^^\n  = help: try a string"
        );
    }

    #[test]
    fn suggestions_pick_close_names_only() {
        let known = ["priority", "preempt", "interface"];
        assert_eq!(did_you_mean("priorty", &known), Some("priority"));
        assert_eq!(did_you_mean("inetrface", &known), Some("interface"));
        assert_eq!(did_you_mean("colour", &known), None);
    }
}
