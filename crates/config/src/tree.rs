//! The cluster file as a spanned TOML tree, built straight from `toml_parser`'s events.
//!
//! Owns TOML's table rules: headers, dotted keys, arrays of tables, inline tables and
//! which redefinitions are errors (TOML 1.1, "Keys", "Table", "Inline Table", "Array of
//! Tables"). It must not know the cluster schema: `reader` and `parse` read this tree.
//!
//! Why not `toml::de::DeTable`: it lexes the whole file into a token vector, parses that
//! into an event vector and builds a tree about twice this one's size while both are
//! alive; for 10,000 real servers a reload faulted in ~4,500 fresh pages for them (issue
//! 18, docs/benchmarks.md). Here the file is lexed and parsed one top-level table at a
//! time through one small reused token buffer, and events go straight into the tree.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;

use toml_parser::decoder::{Encoding, ScalarKind};
use toml_parser::lexer::{Token, TokenKind};
use toml_parser::parser::{EventReceiver, RecursionGuard, ValidateWhitespace};
use toml_parser::{ErrorSink, ParseError, Source, Span};

/// How deep arrays and inline tables may nest before the file is refused (a stack
/// guard, as `toml` has).
const MAX_NESTING: u32 = 80;

/// Above this many keys a table keeps a hash index; below, comparing each key costs
/// less than hashing (most tables, a real server's, hold a handful).
const INDEXED_FROM: usize = 16;

/// A value or key with the byte range of the file it came from.
#[derive(Debug, Clone)]
pub(crate) struct Spanned<T> {
    start: usize,
    end: usize,
    inner: T,
}

impl<T> Spanned<T> {
    fn new(span: Range<usize>, inner: T) -> Self {
        Spanned {
            start: span.start,
            end: span.end,
            inner,
        }
    }

    pub(crate) fn span(&self) -> Range<usize> {
        self.start..self.end
    }

    pub(crate) fn get_ref(&self) -> &T {
        &self.inner
    }

    /// The span as `toml_parser`'s errors take it.
    fn toml_span(&self) -> Span {
        Span::new_unchecked(self.start, self.end)
    }
}

pub(crate) type Value<'i> = Spanned<Node<'i>>;
pub(crate) type Key<'i> = Spanned<Cow<'i, str>>;

#[derive(Debug, Clone)]
pub(crate) enum Node<'i> {
    String(Cow<'i, str>),
    Integer(Integer<'i>),
    /// Read by no field (none is fractional); its type names it in errors.
    Float,
    Boolean(bool),
    /// Read by no field: any date-time in a cluster file is reported as the wrong type.
    Datetime,
    Array(Array<'i>),
    Table(Table<'i>),
}

impl<'i> Node<'i> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// A table's value under `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&Value<'i>> {
        match self {
            Node::Table(t) => t.get(key),
            _ => None,
        }
    }

    /// TOML's own name of the type, for the table-rule errors ("cannot extend value of
    /// type integer with a dotted key").
    fn toml_type(&self) -> &'static str {
        match self {
            Node::String(_) => "string",
            Node::Integer(_) => "integer",
            Node::Float => "float",
            Node::Boolean(_) => "boolean",
            Node::Datetime => "datetime",
            Node::Array(_) => "array",
            Node::Table(t) if t.inline => "inline table",
            Node::Table(_) => "table",
        }
    }
}

/// An integer's digits (underscores and radix prefix removed) and radix, converted when
/// a field reads it so that its range error names the field.
#[derive(Debug, Clone)]
pub(crate) struct Integer<'i> {
    digits: Cow<'i, str>,
    radix: u32,
}

impl Integer<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.digits
    }

    pub(crate) fn radix(&self) -> u32 {
        self.radix
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Array<'i> {
    items: Vec<Value<'i>>,
    /// Made by `[[header]]`s: only these take more headers.
    of_tables: bool,
}

impl<'i> std::ops::Deref for Array<'i> {
    type Target = [Value<'i>];
    fn deref(&self) -> &[Value<'i>] {
        &self.items
    }
}

/// Where each key of a large table is among its entries.
#[derive(Debug, Clone, Default)]
struct KeyIndex(HashMap<String, usize>);

/// A table's keys in the order the file gives them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table<'i> {
    entries: Vec<(Key<'i>, Value<'i>)>,
    /// Boxed: a table without one (nearly all) stays small.
    index: Option<Box<KeyIndex>>,
    /// Made on the way to a deeper key (`[a.b]` makes `a`), not defined itself.
    implicit: bool,
    /// Made by a dotted key (`a.b = 1` makes `a`).
    dotted: bool,
    /// `{ ... }`: complete where it stands, nothing may extend it.
    inline: bool,
}

impl<'i> Table<'i> {
    fn with_flags(implicit: bool, dotted: bool, inline: bool) -> Self {
        Table {
            implicit,
            dotted,
            inline,
            ..Table::default()
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value<'i>> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key<'i>, &Value<'i>)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Sets `key` to `value`: in place when it is there already, else at the end.
    pub(crate) fn insert(&mut self, key: Key<'i>, value: Value<'i>) {
        match self.position(&key.inner) {
            Some(at) => self.entries[at].1 = value,
            None => {
                self.push(key, value);
            }
        }
    }

    /// Moves entry `at` after all the others; returns where it is now.
    fn move_to_end(&mut self, at: usize) -> usize {
        let entry = self.entries.remove(at);
        self.entries.push(entry);
        if let Some(index) = &mut self.index {
            for (i, (k, _)) in self.entries.iter().enumerate().skip(at) {
                index.0.insert(k.inner.to_string(), i);
            }
        }
        self.entries.len() - 1
    }

    fn position(&self, key: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.0.get(key).copied(),
            None => self.entries.iter().position(|(k, _)| k.inner == key),
        }
    }

    fn push(&mut self, key: Key<'i>, value: Value<'i>) -> usize {
        let at = self.entries.len();
        if let Some(index) = &mut self.index {
            index.0.insert(key.inner.to_string(), at);
        }
        self.entries.push((key, value));
        if self.index.is_none() && self.entries.len() > INDEXED_FROM {
            let index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (k.inner.to_string(), i))
                .collect();
            self.index = Some(Box::new(KeyIndex(index)));
        }
        at
    }
}

/// Parses `source` into its root table. Errors go to `errors`; when there are any, the
/// tree is incomplete and only good for nothing (the caller reports the errors alone).
pub(crate) fn parse<'i>(source: &'i str, errors: &mut dyn ErrorSink) -> Table<'i> {
    let source = Source::new(source);
    let mut builder = Builder::new(source);
    {
        let mut whitespace = ValidateWhitespace::new(&mut builder, source);
        let mut receiver = RecursionGuard::new(&mut whitespace, MAX_NESTING);
        // One top-level table at a time: a `[` at the start of a line outside any
        // brackets opens a header, so the expressions before it are complete.
        let mut chunk: Vec<Token> = Vec::with_capacity(256);
        let mut depth = 0usize;
        let mut line_start = true;
        for token in source.lex() {
            let kind = token.kind();
            if kind == TokenKind::LeftSquareBracket && depth == 0 && line_start && !chunk.is_empty()
            {
                toml_parser::parser::parse_document(&chunk, &mut receiver, errors);
                chunk.clear();
            }
            match kind {
                TokenKind::LeftSquareBracket | TokenKind::LeftCurlyBracket => depth += 1,
                TokenKind::RightSquareBracket | TokenKind::RightCurlyBracket => {
                    depth = depth.saturating_sub(1)
                }
                _ => {}
            }
            line_start = match kind {
                TokenKind::Newline => true,
                TokenKind::Whitespace => line_start,
                _ => false,
            };
            chunk.push(token);
        }
        toml_parser::parser::parse_document(&chunk, &mut receiver, errors);
    }
    builder.root
}

/// An array or inline table being read; `mark` is where its keys start on the key
/// stack (below it: the key its own value will go to).
enum Open<'i> {
    Array {
        start: usize,
        items: Vec<Value<'i>>,
        mark: usize,
    },
    Table {
        start: usize,
        table: Table<'i>,
        mark: usize,
    },
}

struct Builder<'i> {
    source: Source<'i>,
    root: Table<'i>,
    /// Entry positions from the root to the table the last header opened (through an
    /// array of tables: its last table); `None` after a bad header, whose keys are lost.
    current: Option<Vec<usize>>,
    /// The (dotted) keys read and not yet given their values, outermost first: one
    /// stack for all the open inline tables, so that it is allocated once.
    key: Vec<Key<'i>>,
    /// Where the open header started, and whether it is `[[...]]`.
    header: Option<(usize, bool)>,
    /// A top-level `key =` was read and its value not yet: only then is a scalar a value
    /// (after a syntax error, stray scalars are not decoded into more errors).
    expecting: bool,
    open: Vec<Open<'i>>,
}

impl<'i> Builder<'i> {
    fn new(source: Source<'i>) -> Self {
        Builder {
            source,
            root: Table::default(),
            current: Some(Vec::new()),
            key: Vec::new(),
            header: None,
            expecting: false,
            open: Vec::new(),
        }
    }

    fn text(&self, span: Span, encoding: Option<Encoding>) -> toml_parser::Raw<'i> {
        let raw = self
            .source
            .input()
            .get(span.start()..span.end())
            .unwrap_or("");
        toml_parser::Raw::new_unchecked(raw, encoding, span)
    }

    /// A finished value: into the open array, the open inline table, or the current
    /// table under the key read before it.
    fn value(&mut self, value: Value<'i>, errors: &mut dyn ErrorSink) {
        let mark = match self.open.last() {
            Some(Open::Array { mark, .. } | Open::Table { mark, .. }) => *mark,
            None => 0,
        };
        self.expecting = false;
        let last = if self.key.len() > mark {
            self.key.pop()
        } else {
            None
        };
        let path = &self.key[mark.min(self.key.len())..];
        match (self.open.last_mut(), last) {
            (Some(Open::Array { items, .. }), _) => items.push(value),
            (Some(Open::Table { table, .. }), Some(last)) => {
                insert_inline(table, path, last, value, errors)
            }
            (None, Some(last)) if self.header.is_none() => {
                if let Some(at) = &self.current
                    && let Some(table) = table_at(&mut self.root, at)
                {
                    insert_keyval(table, path, last, value, errors);
                }
            }
            _ => {}
        }
        self.key.truncate(mark);
    }

    /// `[a.b]` or `[[a.b]]` read: makes (or reopens) its table the current one.
    fn header(&mut self, span: Range<usize>, of_tables: bool, errors: &mut dyn ErrorSink) {
        self.current = None;
        let Some(key) = self.key.pop() else { return };
        let mut trail = Vec::with_capacity(self.key.len() + 1);
        let parent = descend(&mut self.root, &self.key, false, errors, &mut trail);
        self.key.clear();
        let Some(parent) = parent else {
            return;
        };
        let found = parent.position(&key.inner);
        if of_tables {
            let at = match found {
                Some(at) => at,
                None => parent.push(
                    key.clone(),
                    Spanned::new(
                        span.clone(),
                        Node::Array(Array {
                            items: Vec::new(),
                            of_tables: true,
                        }),
                    ),
                ),
            };
            let old = &mut parent.entries[at].1;
            match &mut old.inner {
                Node::Array(a) if a.of_tables => {
                    a.items
                        .push(Spanned::new(span, Node::Table(Table::default())));
                }
                // TOML 1.1 "Array of Tables": a `[[header]]` cannot extend what a key
                // or `[header]` defined.
                _ => {
                    errors.report_error(
                        ParseError::new("duplicate key")
                            .with_unexpected(key.toml_span())
                            .with_context(old.toml_span()),
                    );
                    return;
                }
            }
            trail.push(at);
        } else {
            match found {
                None => {
                    let at = parent.push(key, Spanned::new(span, Node::Table(Table::default())));
                    trail.push(at);
                }
                Some(at) => {
                    let (old_key, old) = &mut parent.entries[at];
                    match &mut old.inner {
                        // Defined before only by the headers of tables inside it.
                        Node::Table(t) if t.implicit && !t.dotted => {
                            t.implicit = false;
                            old.start = span.start;
                            old.end = span.end;
                            // Errors about the table point at its own header now, and
                            // it takes its place among its siblings where the header
                            // stands (as `toml` orders it: a table's entries are in
                            // the order the file defines them).
                            *old_key = key;
                            trail.push(parent.move_to_end(at));
                        }
                        // TOML 1.1 "Table": tables cannot be defined more than once, nor
                        // tables made by dotted keys be defined again by a header.
                        // Its keys still go into the table (as `toml` goes on), so
                        // what else is wrong with them is reported too.
                        other => {
                            let is_table = matches!(other, Node::Table(_));
                            errors.report_error(
                                ParseError::new("duplicate key")
                                    .with_unexpected(key.toml_span())
                                    .with_context(old_key.toml_span()),
                            );
                            if !is_table {
                                return;
                            }
                            trail.push(parent.move_to_end(at));
                        }
                    }
                }
            }
        }
        self.current = Some(trail);
    }

    fn close(&mut self, end: usize, errors: &mut dyn ErrorSink) {
        // Shrunk to fit: a real server's `{ address = ... }` is one entry where growth
        // left room for four, 10,000 times over (issue 18, the load bench).
        let (node, start, mark) = match self.open.pop() {
            Some(Open::Array {
                start,
                mut items,
                mark,
            }) => {
                items.shrink_to_fit();
                let array = Array {
                    items,
                    of_tables: false,
                };
                (Node::Array(array), start, mark)
            }
            Some(Open::Table {
                start,
                mut table,
                mark,
            }) => {
                table.entries.shrink_to_fit();
                (Node::Table(table), start, mark)
            }
            None => return,
        };
        let value = Spanned::new(start..end, node);
        self.key.truncate(mark);
        self.value(value, errors);
    }
}

impl EventReceiver for Builder<'_> {
    fn std_table_open(&mut self, span: Span, _errors: &mut dyn ErrorSink) {
        self.key.clear();
        self.open.clear();
        self.header = Some((span.start(), false));
    }

    fn std_table_close(&mut self, span: Span, errors: &mut dyn ErrorSink) {
        if let Some((start, of_tables)) = self.header.take() {
            self.header(start..span.end(), of_tables, errors);
        }
    }

    fn array_table_open(&mut self, span: Span, _errors: &mut dyn ErrorSink) {
        self.key.clear();
        self.open.clear();
        self.header = Some((span.start(), true));
    }

    fn array_table_close(&mut self, span: Span, errors: &mut dyn ErrorSink) {
        self.std_table_close(span, errors);
    }

    fn inline_table_open(&mut self, span: Span, _errors: &mut dyn ErrorSink) -> bool {
        self.open.push(Open::Table {
            start: span.start(),
            table: Table::with_flags(false, false, true),
            mark: self.key.len(),
        });
        true
    }

    fn inline_table_close(&mut self, span: Span, errors: &mut dyn ErrorSink) {
        self.close(span.end(), errors);
    }

    fn array_open(&mut self, span: Span, _errors: &mut dyn ErrorSink) -> bool {
        self.open.push(Open::Array {
            start: span.start(),
            items: Vec::new(),
            mark: self.key.len(),
        });
        true
    }

    fn array_close(&mut self, span: Span, errors: &mut dyn ErrorSink) {
        self.close(span.end(), errors);
    }

    fn simple_key(&mut self, span: Span, encoding: Option<Encoding>, errors: &mut dyn ErrorSink) {
        let mut name = Cow::Borrowed("");
        self.text(span, encoding).decode_key(&mut name, errors);
        self.key.push(Spanned::new(span.start()..span.end(), name));
    }

    fn key_val_sep(&mut self, _span: Span, _errors: &mut dyn ErrorSink) {
        if self.open.is_empty() {
            self.expecting = true;
        }
    }

    fn error(&mut self, _span: Span, _errors: &mut dyn ErrorSink) {
        self.expecting = false;
    }

    fn scalar(&mut self, span: Span, encoding: Option<Encoding>, errors: &mut dyn ErrorSink) {
        if self.open.is_empty() && !self.expecting {
            return;
        }
        let mut text = Cow::Borrowed("");
        let node = match self.text(span, encoding).decode_scalar(&mut text, errors) {
            ScalarKind::String => Node::String(text),
            ScalarKind::Boolean(b) => Node::Boolean(b),
            ScalarKind::DateTime => {
                // The decoder checks the shape; the calendar (month 13) is checked here.
                if let Err(e) = text.parse::<toml_datetime::Datetime>() {
                    errors.report_error(ParseError::new(e.to_string()).with_unexpected(span));
                }
                Node::Datetime
            }
            ScalarKind::Float => Node::Float,
            ScalarKind::Integer(radix) => Node::Integer(Integer {
                digits: text,
                radix: radix.value(),
            }),
        };
        self.value(Spanned::new(span.start()..span.end(), node), errors);
    }

    fn newline(&mut self, _span: Span, _errors: &mut dyn ErrorSink) {
        // A key without a value (a syntax error already reported) must not carry over.
        if self.open.is_empty() {
            self.key.clear();
            self.expecting = false;
        }
    }
}

/// The table at `path` (entry positions from `root`, through arrays of tables to their
/// last table), as [`Builder::header`] recorded it.
fn table_at<'t, 'i>(root: &'t mut Table<'i>, path: &[usize]) -> Option<&'t mut Table<'i>> {
    let mut table = root;
    for &at in path {
        table = last_table(&mut table.entries.get_mut(at)?.1)?;
    }
    Some(table)
}

/// A table value itself, or an array of tables' last table.
fn last_table<'t, 'i>(value: &'t mut Value<'i>) -> Option<&'t mut Table<'i>> {
    match &mut value.inner {
        Node::Table(t) => Some(t),
        Node::Array(a) => match &mut a.items.last_mut()?.inner {
            Node::Table(t) => Some(t),
            _ => None,
        },
        _ => None,
    }
}

/// Walks (making as needed) the tables named by `path` below `table`, for a header
/// (`dotted` false) or a dotted key; `trail` gets each step's entry position.
fn descend<'t, 'i>(
    mut table: &'t mut Table<'i>,
    path: &[Key<'i>],
    dotted: bool,
    errors: &mut dyn ErrorSink,
    trail: &mut Vec<usize>,
) -> Option<&'t mut Table<'i>> {
    for key in path {
        let at = match table.position(&key.inner) {
            Some(at) => at,
            None => table.push(
                key.clone(),
                Spanned::new(
                    key.span(),
                    Node::Table(Table::with_flags(true, dotted, false)),
                ),
            ),
        };
        trail.push(at);
        let old = &mut table.entries[at].1;
        let refused = match &mut old.inner {
            Node::Array(a) if a.of_tables => None,
            Node::Table(t) if !t.inline => {
                if dotted && t.implicit {
                    t.dotted = true;
                }
                // TOML 1.1 "Table": dotted keys may not add to a table a header defined.
                (dotted && !t.implicit).then(|| ParseError::new("duplicate key"))
            }
            other => Some(
                ParseError::new(format!(
                    "cannot extend value of type {} with a dotted key",
                    other.toml_type()
                ))
                .with_context(old.toml_span()),
            ),
        };
        if let Some(error) = refused {
            errors.report_error(error.with_unexpected(key.toml_span()));
            return None;
        }
        table = last_table(&mut table.entries[at].1)?;
    }
    Some(table)
}

/// `a.b = value` under a header (or at the top): the last key must be new, and a dotted
/// key must not reach into a table a header defined.
fn insert_keyval<'i>(
    table: &mut Table<'i>,
    key: &[Key<'i>],
    last: Key<'i>,
    value: Value<'i>,
    errors: &mut dyn ErrorSink,
) {
    let dotted = !key.is_empty();
    let mut trail = Vec::new();
    let Some(parent) = descend(table, key, dotted, errors, &mut trail) else {
        return;
    };
    if dotted && !parent.implicit {
        errors.report_error(ParseError::new("duplicate key").with_unexpected(last.toml_span()));
        return;
    }
    insert_new(parent, last, value, errors);
}

/// `a.b = value` inside `{ ... }` (TOML 1.1 "Inline Table": keys and dotted keys as in
/// a table, all defined within the braces).
fn insert_inline<'i>(
    table: &mut Table<'i>,
    key: &[Key<'i>],
    last: Key<'i>,
    value: Value<'i>,
    errors: &mut dyn ErrorSink,
) {
    let mut parent = table;
    for step in key {
        let at = match parent.position(&step.inner) {
            Some(at) => at,
            None => parent.push(
                step.clone(),
                Spanned::new(
                    step.span(),
                    Node::Table(Table::with_flags(true, true, true)),
                ),
            ),
        };
        let old = &parent.entries[at].1;
        let refused = match &old.inner {
            Node::Table(t) if t.implicit => None,
            Node::Table(_) => Some(ParseError::new("duplicate key")),
            other => Some(
                ParseError::new(format!(
                    "cannot extend value of type {} with a dotted key",
                    other.toml_type()
                ))
                .with_context(old.toml_span()),
            ),
        };
        if let Some(error) = refused {
            errors.report_error(error.with_unexpected(step.toml_span()));
            return;
        }
        let Some(next) = last_table(&mut parent.entries[at].1) else {
            return;
        };
        parent = next;
    }
    if parent.dotted == key.is_empty() {
        errors.report_error(ParseError::new("duplicate key").with_unexpected(last.toml_span()));
        return;
    }
    insert_new(parent, last, value, errors);
}

fn insert_new<'i>(
    table: &mut Table<'i>,
    key: Key<'i>,
    value: Value<'i>,
    errors: &mut dyn ErrorSink,
) {
    match table.position(&key.inner) {
        None => {
            table.push(key, value);
        }
        Some(at) => {
            errors.report_error(
                ParseError::new("duplicate key")
                    .with_unexpected(key.toml_span())
                    .with_context(table.entries[at].0.toml_span()),
            );
        }
    }
}

/// A syntax error's text: its description and what was expected there.
pub(crate) fn message(error: &ParseError) -> String {
    let mut message = error.description().trim_end().to_string();
    if let Some(expected) = error.expected() {
        message.push_str(", expected ");
        if expected.is_empty() {
            message.push_str("nothing");
        }
        for (i, what) in expected.iter().enumerate() {
            if i > 0 {
                message.push_str(", ");
            }
            match what {
                toml_parser::Expected::Literal("\n") => message.push_str("newline"),
                toml_parser::Expected::Literal("`") => message.push_str("'`'"),
                toml_parser::Expected::Literal(s) if s.chars().all(|c| c.is_ascii_control()) => {
                    message.push_str(&format!("`{}`", s.escape_debug()))
                }
                toml_parser::Expected::Literal(s) => message.push_str(&format!("`{s}`")),
                toml_parser::Expected::Description(s) => message.push_str(s),
                _ => message.push_str("etc"),
            }
        }
    }
    message
}

#[cfg(test)]
mod tests {
    //! The tree against `toml`'s own (`toml::de::DeTable`) on the project's TOML files
    //! and on each rule of TOML 1.1's tables: the same keys, values, order and spans,
    //! and on bad files the same errors.

    use std::fmt::Write;

    use toml::de::{DeTable, DeValue};

    use super::*;

    fn ours(source: &str) -> (String, Vec<String>) {
        let mut errors: Vec<ParseError> = Vec::new();
        let root = parse(source, &mut errors);
        let mut out = String::new();
        render_ours(&mut out, &root);
        let errors = errors
            .iter()
            .map(|e| {
                format!(
                    "{:?}: {}",
                    e.unexpected().map(|s| s.start()..s.end()),
                    message(e)
                )
            })
            .collect();
        (out, errors)
    }

    fn theirs(source: &str) -> (String, Vec<String>) {
        let (root, errors) = DeTable::parse_recoverable(source);
        let mut out = String::new();
        render_theirs(&mut out, root.get_ref());
        let errors = errors
            .iter()
            .map(|e| format!("{:?}: {}", e.span(), e.message().trim_end()))
            .collect();
        (out, errors)
    }

    fn render_ours(out: &mut String, t: &Table<'_>) {
        out.push('{');
        for (k, v) in t.iter() {
            let _ = write!(out, "{:?}@{:?}=", k.get_ref(), k.span());
            render_our_value(out, v);
            out.push(',');
        }
        out.push('}');
    }

    fn render_our_value(out: &mut String, v: &Value<'_>) {
        match v.get_ref() {
            Node::String(s) => {
                let _ = write!(out, "s{s:?}");
            }
            Node::Integer(i) => {
                let _ = write!(out, "i{}r{}", i.as_str(), i.radix());
            }
            Node::Float => out.push('f'),
            Node::Boolean(b) => {
                let _ = write!(out, "b{b}");
            }
            Node::Datetime => out.push('d'),
            Node::Array(a) => {
                out.push('[');
                for item in a.iter() {
                    render_our_value(out, item);
                    out.push(',');
                }
                out.push(']');
            }
            Node::Table(t) => render_ours(out, t),
        }
        let _ = write!(out, "@{:?}", v.span());
    }

    fn render_theirs(out: &mut String, t: &DeTable<'_>) {
        out.push('{');
        for (k, v) in t.iter() {
            let _ = write!(out, "{:?}@{:?}=", k.get_ref(), k.span());
            render_their_value(out, v);
            out.push(',');
        }
        out.push('}');
    }

    fn render_their_value(out: &mut String, v: &toml::Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::String(s) => {
                let _ = write!(out, "s{s:?}");
            }
            DeValue::Integer(i) => {
                let _ = write!(out, "i{}r{}", i.as_str(), i.radix());
            }
            DeValue::Float(_) => out.push('f'),
            DeValue::Boolean(b) => {
                let _ = write!(out, "b{b}");
            }
            DeValue::Datetime(_) => out.push('d'),
            DeValue::Array(a) => {
                out.push('[');
                for item in a.iter() {
                    render_their_value(out, item);
                    out.push(',');
                }
                out.push(']');
            }
            DeValue::Table(t) => render_theirs(out, t),
        }
        let _ = write!(out, "@{:?}", v.span());
    }

    fn assert_same(source: &str) {
        let (our_tree, our_errors) = ours(source);
        let (their_tree, their_errors) = theirs(source);
        // `toml` decodes values after parsing the whole file, so its errors come in
        // another order, and it reports a bad header path twice.
        let (mut ours_sorted, mut theirs_sorted) = (our_errors.clone(), their_errors.clone());
        ours_sorted.sort();
        ours_sorted.dedup();
        theirs_sorted.sort();
        theirs_sorted.dedup();
        assert_eq!(ours_sorted, theirs_sorted, "errors differ for:\n{source}");
        if their_errors.is_empty() {
            assert!(our_errors.is_empty(), "{source}: {our_errors:?}");
            assert_eq!(our_tree, their_tree, "tree differs for:\n{source}");
        }
    }

    #[test]
    fn the_projects_toml_files_read_as_toml_reads_them() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        let mut dirs = vec![
            format!("{root}/conf"),
            format!("{root}/deploy"),
            format!("{root}/crates/keepalived/tests/fixtures"),
        ];
        let mut seen = 0;
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let source = std::fs::read_to_string(&path).expect("readable test file");
                    assert_same(&source);
                    seen += 1;
                }
            }
        }
        assert!(seen >= 20, "found only {seen} TOML files");
    }

    #[test]
    fn values_read_as_toml_reads_them() {
        for source in [
            "a = 'literal'\nb = \"basic \\\"quoted\\\" \\u00e9\"\nc = '''\nml\nliteral'''\n",
            "d = \"\"\"\n  ml \\\n  basic\"\"\"\n",
            "i = 42\nj = -17\nk = 0xDEAD_beef\nl = 0o755\nm = 0b1010\nn = 1_000\no = +3\n",
            "f = 3.14\ng = -1e-3\nh = inf\nk = nan\n",
            "t = true\nu = false\n",
            "dt = 1979-05-27T07:32:00Z\nld = 1979-05-27\nlt = 07:32:00\n",
            "arr = [1, 2, 3]\nnested = [[1, 2], ['a', \"b\"]]\nmixed = [1, 'x', { a = 1 }]\n",
            "multi = [\n  1,\n  2, # comment\n  [\n    3,\n  ],\n]\n",
            "it = { a = 1, b.c = 2, b.d = 3, e = { f = [ { g = 1 } ] } }\n",
            "\"quoted key\" = 1\n'literal key' = 2\n\"\" = 3\n'a.b' = 4\n",
            "x.y.z = 1\nx.y.w = 2\nx.v = 3\n",
        ] {
            assert_same(source);
        }
    }

    #[test]
    fn tables_follow_the_toml_rules() {
        for source in [
            // TOML 1.1 "Table": a super-table may be defined after its sub-tables.
            "[a.b.c]\nx = 1\n[a]\ny = 2\n",
            "[a]\n[a.b]\n[a.c]\nz = 1\n",
            // Dotted keys make tables a header may add sub-tables to.
            "[fruit]\napple.color = 'red'\n[fruit.apple.texture]\nsmooth = true\n",
            // TOML 1.1 "Array of Tables".
            "[[vs]]\nname = 'a'\n[[vs.rs]]\nn = 1\n[[vs.rs]]\nn = 2\n[vs.check]\nk = 'tcp'\n[[vs]]\nname = 'b'\n",
            "[[a]]\n[a.b]\nx = 1\n[[a]]\n[a.b]\nx = 2\n",
            "top = 1\n[t]\nk = 1 # comment\n\n  [ t.u ] # spaced header\n  k = 2\n",
            "[t]\n\"q.k\" = 1\n[\"t\".'v']\nk = 2\n",
        ] {
            assert_same(source);
        }
    }

    #[test]
    fn redefinitions_are_the_errors_toml_reports() {
        for source in [
            "a = 1\na = 2\n",
            "[a]\n[a]\n",
            "[a]\nb = 1\n[a.b]\n",
            "[a]\nb.c = 1\n[a.b]\n",
            "a.b = 1\na.b.c = 2\n",
            "a = [1]\n[[a]]\n",
            "[[a]]\n[a]\n",
            "a = { b = 1 }\na.c = 2\n",
            "a = { b = 1, b = 2 }\n",
            "a = { b = { c = 1 }, b.d = 2 }\n",
            "a = { b.c = 1, b = 2 }\n",
            "[a.b]\n[a]\nb = 1\n",
            "a = 1\n[a.b]\n",
            "x = 1\nx.y = 2\n",
            "arr = [1]\narr.x = 1\n",
        ] {
            assert_same(source);
        }
    }

    #[test]
    fn syntax_errors_are_the_ones_toml_reports() {
        for source in [
            "[director\nname = 1\n",
            "a = \"unclosed\n",
            "a = [1, 2\n",
            "a = \n",
            "= 1\n",
            "a = 1 b = 2\n",
            "a = 01\n",
            "a = 'x\\\n",
            "a = { b = 1\n",
            "[a]]\n",
            "a = 1\n\n[b\nc = 2\n[d]\ne = = 3\n",
            "a = \"\\q\"\n",
            "a = 1979-13-45\n",
        ] {
            assert_same(source);
        }
    }

    /// A line of a generated document: a key and value, or a header, from a few names
    /// that overlap on purpose, so that redefinitions and reopened tables are common.
    fn line() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "a", "b", "c", "a.b", "b.c", "a.b.c", "c.a", "\"a.b\"", "'b'.c",
        ]);
        let value = prop::sample::select(vec![
            "1",
            "'x'",
            "true",
            "1.5",
            "1979-05-27",
            "{}",
            "{ a = 1 }",
            "{ b.c = 2, d = 3 }",
            "{ a = { b = 1 }, a.c = 2 }",
            "[1, 2]",
            "[{ a = 1 }, { b = 2 }]",
            "[\n  1,\n  [2],\n]",
        ]);
        let header = prop::sample::select(vec![
            "[a]",
            "[b]",
            "[c]",
            "[a.b]",
            "[b.a]",
            "[a.b.c]",
            "[c.a]",
            "[ a . b ]",
            "[[a]]",
            "[[b]]",
            "[[a.b]]",
            "[[c.a]]",
        ]);
        let broken = prop::sample::select(vec!["a =", "[a", "= 1", "a = = 1", "a = 1 b = 2"]);
        prop_oneof![
            6 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
            3 => header.prop_map(String::from),
            1 => broken.prop_map(String::from),
        ]
    }

    /// For generated documents: the same tree for a valid one; for one that breaks a
    /// table rule, the same first error; for one with a syntax error, an error. What
    /// follows a first error depends on how each recovers (after a refused header
    /// `toml` fills a table nobody can reach).
    fn assert_same_verdict(source: &str) {
        let (our_tree, our_errors) = ours(source);
        let (their_tree, their_errors) = theirs(source);
        let first = |errors: &[String]| {
            let mut errors = errors.to_vec();
            errors.sort_by_key(|e| {
                let start: usize = e
                    .trim_start_matches("Some(")
                    .split("..")
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(usize::MAX);
                (start, e.clone())
            });
            errors.into_iter().next()
        };
        let table_rule = |e: &String| e.contains("duplicate key") || e.contains("cannot extend");
        if their_errors.iter().all(table_rule) {
            assert_eq!(
                first(&our_errors),
                first(&their_errors),
                "first error differs for:\n{source}\nours: {our_errors:?}\ntheirs: {their_errors:?}"
            );
        } else {
            // A syntax error: each parser recovers in its own way after it.
            assert!(
                !our_errors.is_empty(),
                "no error for:\n{source}\ntheirs: {their_errors:?}"
            );
        }
        if their_errors.is_empty() {
            assert_eq!(our_tree, their_tree, "tree differs for:\n{source}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(3000))]
        #[test]
        fn generated_documents_read_as_toml_reads_them(
            lines in proptest::collection::vec(line(), 1..14)
        ) {
            assert_same_verdict(&(lines.join("\n") + "\n"));
        }
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused() {
        let deep = format!("a = {}1{}\n", "[".repeat(100), "]".repeat(100));
        let (_, errors) = ours(&deep);
        assert!(
            errors.iter().any(|e| e.contains("max recursion depth")),
            "{errors:?}"
        );
    }

    #[test]
    fn large_tables_are_found_by_key() {
        let mut source = String::from("[t]\n");
        for i in 0..100 {
            source.push_str(&format!("k{i} = {i}\n"));
        }
        source.push_str("k50 = 1\n");
        assert_same(&source);
        let mut errors: Vec<ParseError> = Vec::new();
        let source = source.replace("k50 = 1\n", "");
        let root = parse(&source, &mut errors);
        let t = root.get("t").and_then(|t| match t.get_ref() {
            Node::Table(t) => Some(t),
            _ => None,
        });
        let k73 = t.and_then(|t| t.get("k73")).map(|v| v.span());
        assert_eq!(k73.map(|s| &source[s]), Some("73"));
    }
}
