//! keepalived.conf's input language, read into a tree of keyword lines: `include` with
//! globs, `@ID` / `@^ID` conditional lines, `$NAME=value` definitions and their use, `\`
//! continuation lines, `!` / `#` comments, quoted strings and `{` `}` blocks. Every line
//! remembers the file and line it came from.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::Warning;

/// Where a line came from: `FILE:LINE` (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loc {
    pub file: Rc<str>,
    pub line: u32,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// One keyword line: its words (the keyword first) and, if a `{` followed, its block.
#[derive(Debug, Clone)]
pub struct Node {
    pub loc: Loc,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or(&[])
    }

    /// The block's lines; none for a line without a block.
    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// How the reader gets at files: the filesystem for the CLI, a map in tests.
pub trait Files {
    fn read(&self, path: &Path) -> std::io::Result<String>;
    /// The names of the entries of a directory, for glob patterns in `include`.
    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>>;
}

/// Reads the real filesystem.
pub struct FsFiles;

impl Files for FsFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let bytes = std::fs::read(path)?;
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
    }

    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }
}

/// In-memory files (tests, tools): path → text. Directories are implied by the paths.
#[derive(Debug, Default, Clone)]
pub struct MemFiles(pub HashMap<PathBuf, String>);

impl MemFiles {
    pub fn with(mut self, path: &str, text: &str) -> Self {
        self.0.insert(PathBuf::from(path), text.to_string());
        self
    }
}

impl Files for MemFiles {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }

    fn list_dir(&self, dir: &Path) -> std::io::Result<Vec<String>> {
        let mut names: Vec<String> = self
            .0
            .keys()
            .filter_map(|p| p.strip_prefix(dir).ok())
            .filter_map(|rest| rest.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// The input cannot be read: `FILE:LINE: error: MESSAGE`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{loc}: error: {message}")]
pub struct ReadError {
    pub loc: Loc,
    pub message: String,
}

impl ReadError {
    pub(crate) fn new(loc: &Loc, message: impl Into<String>) -> Self {
        ReadError {
            loc: loc.clone(),
            message: message.into(),
        }
    }
}

#[derive(Debug)]
enum Tok {
    Word(String),
    Open,
    Close,
    EndOfLine,
}

/// Files including files deeper than this are taken to include themselves.
const MAX_INCLUDE_DEPTH: usize = 32;
/// Substitution rounds before a definition is taken to refer to itself.
const MAX_SUBSTITUTIONS: usize = 64;

struct Reader<'a> {
    files: &'a dyn Files,
    config_id: Option<&'a str>,
    defs: HashMap<String, String>,
    tokens: Vec<(Loc, Tok)>,
    warnings: Vec<Warning>,
}

/// Reads `path` and everything it includes into a tree of keyword lines.
pub fn read(
    path: &Path,
    files: &dyn Files,
    config_id: Option<&str>,
) -> Result<(Vec<Node>, Vec<Warning>), ReadError> {
    // keepalived's predefined definitions (`_RANDOM` and `_ENV` are refused where used).
    let mut defs = HashMap::new();
    defs.insert("_HASH".to_string(), "#".to_string());
    defs.insert("_BANG".to_string(), "!".to_string());
    if let Some(id) = config_id {
        defs.insert("_INSTANCE".to_string(), id.to_string());
    }
    let mut r = Reader {
        files,
        config_id,
        defs,
        tokens: Vec::new(),
        warnings: Vec::new(),
    };
    r.file(path, None, 0)?;
    let nodes = build(r.tokens)?;
    Ok((nodes, r.warnings))
}

impl Reader<'_> {
    fn file(&mut self, path: &Path, from: Option<&Loc>, depth: usize) -> Result<(), ReadError> {
        let name: Rc<str> = path.display().to_string().into();
        let here = Loc {
            file: name.clone(),
            line: 0,
        };
        let text = self.files.read(path).map_err(|e| match from {
            Some(loc) => ReadError::new(loc, format!("include: cannot read {}: {e}", name)),
            None => ReadError::new(&here, format!("cannot read: {e}")),
        })?;
        let lines: Vec<&str> = text.lines().collect();
        // ${_PWD} is the directory of the file being read, while it is read.
        let dir = path
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let outer_pwd = self.defs.insert("_PWD".to_string(), dir);
        let mut i = 0;
        while i < lines.len() {
            let loc = Loc {
                file: name.clone(),
                line: u32::try_from(i + 1).unwrap_or(u32::MAX),
            };
            let mut line = strip_comment(lines[i]).trim_end().to_string();
            i += 1;
            // A `\` at the end continues the line; a definition keeps the line breaks so
            // a multi-line value expands to several lines where it is used.
            while line.ends_with('\\') {
                line.pop();
                line.push('\n');
                match lines.get(i) {
                    Some(next) => line.push_str(strip_comment(next).trim_end()),
                    None => break,
                }
                i += 1;
            }
            self.line(&line, &loc, depth, 0)?;
        }
        match outer_pwd {
            Some(p) => self.defs.insert("_PWD".to_string(), p),
            None => self.defs.remove("_PWD"),
        };
        Ok(())
    }

    fn line(
        &mut self,
        line: &str,
        loc: &Loc,
        depth: usize,
        nesting: usize,
    ) -> Result<(), ReadError> {
        if nesting > MAX_SUBSTITUTIONS {
            return Err(ReadError::new(
                loc,
                "definitions refer to each other without end",
            ));
        }
        let t = line.trim_start();
        if t.trim().is_empty() {
            return Ok(());
        }
        if let Some(rest) = t.strip_prefix('@') {
            let (negated, rest) = match rest.strip_prefix('^') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (id, rest) = rest.split_at(end);
            if id.is_empty() {
                return Err(ReadError::new(
                    loc,
                    "`@` must be followed by a config id without a space, e.g. `@lb-a priority 150`",
                ));
            }
            if (self.config_id == Some(id)) == negated {
                return Ok(());
            }
            return self.line(rest, loc, depth, nesting + 1);
        }
        if let Some(def) = t.strip_prefix('$')
            && let Some((name, value)) = definition(def)
        {
            if name.contains('(') {
                return Err(ReadError::new(
                    loc,
                    format!(
                        "${name}: definitions with parameters are not supported by the importer; expand them by hand"
                    ),
                ));
            }
            let value = value
                .split('\n')
                .map(str::trim)
                .collect::<Vec<_>>()
                .join("\n");
            self.defs
                .insert(name.to_string(), value.trim_matches('\n').to_string());
            return Ok(());
        }
        // Before substitution: the rest of the line is expanded once per value.
        if let Some(spec) = t.strip_prefix('~') {
            return self.repeat(spec, loc, depth, nesting);
        }
        let expanded = self.substitute(t, loc)?;
        if expanded != t {
            for part in expanded.split('\n') {
                self.line(part, loc, depth, nesting + 1)?;
            }
            return Ok(());
        }
        // A continued line that is not a definition is one line.
        let t = t.replace('\n', " ");
        // The rest of an include line is the pattern, braces and all. The variants
        // (includer, includem, includew, includeb, includea) add checks; w and a make a
        // pattern that matches nothing an error.
        let first = t.split_whitespace().next().unwrap_or("");
        if matches!(
            first,
            "include" | "includer" | "includem" | "includew" | "includeb" | "includea"
        ) {
            let pattern = t[first.len()..].trim().trim_matches('"');
            if pattern.is_empty() {
                return Err(ReadError::new(
                    loc,
                    format!("{first}: give a file name or pattern"),
                ));
            }
            let must_match = matches!(first, "includew" | "includea");
            return self.include(pattern, loc, depth, must_match);
        }
        let words = tokenize(&t, loc)?;
        for w in words {
            self.tokens.push((loc.clone(), w));
        }
        self.tokens.push((loc.clone(), Tok::EndOfLine));
        Ok(())
    }

    fn substitute(&self, line: &str, loc: &Loc) -> Result<String, ReadError> {
        let mut current = line.to_string();
        for _ in 0..MAX_SUBSTITUTIONS {
            let next = substitute_once(&current, &self.defs).map_err(|m| ReadError::new(loc, m))?;
            if next == current {
                return Ok(current);
            }
            current = next;
        }
        Err(ReadError::new(
            loc,
            "definitions refer to each other without end",
        ))
    }

    fn include(
        &mut self,
        pattern: &str,
        loc: &Loc,
        depth: usize,
        must_match: bool,
    ) -> Result<(), ReadError> {
        if depth >= MAX_INCLUDE_DEPTH {
            return Err(ReadError::new(
                loc,
                format!(
                    "include: files nest deeper than {MAX_INCLUDE_DEPTH} (does a file include itself?)"
                ),
            ));
        }
        // Relative to the including file's directory, as keepalived does.
        let dir = Path::new(&*loc.file).parent().unwrap_or(Path::new(""));
        for alternative in expand_braces(pattern) {
            let full = normalize(&if Path::new(&alternative).is_absolute() {
                PathBuf::from(&alternative)
            } else {
                dir.join(&alternative)
            });
            if !has_wildcard(&alternative) {
                self.file(&full, Some(loc), depth + 1)?;
                continue;
            }
            let matches = glob(self.files, &full);
            if matches.is_empty() && must_match {
                return Err(ReadError::new(
                    loc,
                    format!("include: {} matches no file", full.display()),
                ));
            }
            if matches.is_empty() {
                self.warnings.push(Warning::new(
                    loc,
                    "include",
                    format!("{} matches no file: nothing included", full.display()),
                ));
            }
            for m in matches {
                self.file(&m, Some(loc), depth + 1)?;
            }
        }
        Ok(())
    }
}

impl Reader<'_> {
    /// `~SEQ(var, [start,] [step,] end) REST`, `~SEQx(...)` (values in hexadecimal) and
    /// `~LST(var, v1, v2...)` / `~LST({a, b}, {1, 2}, {3, 4}) REST`: REST is read once per
    /// value with `$var` defined.
    fn repeat(
        &mut self,
        spec: &str,
        loc: &Loc,
        depth: usize,
        nesting: usize,
    ) -> Result<(), ReadError> {
        let bad = |why: &str| {
            ReadError::new(
                loc,
                format!("~{}: {why}", spec.split('(').next().unwrap_or("")),
            )
        };
        let (kind, after) = if let Some(a) = spec.strip_prefix("SEQx(") {
            ("SEQx", a)
        } else if let Some(a) = spec.strip_prefix("SEQ(") {
            ("SEQ", a)
        } else if let Some(a) = spec.strip_prefix("LST(") {
            ("LST", a)
        } else {
            return Err(ReadError::new(
                loc,
                "a line starting with `~` must be ~SEQ(...), ~SEQx(...) or ~LST(...)",
            ));
        };
        let mut level = 0i32;
        let close = after
            .char_indices()
            .find(|(_, c)| {
                match c {
                    '{' => level += 1,
                    '}' => level -= 1,
                    ')' if level == 0 => return true,
                    _ => {}
                }
                false
            })
            .map(|(i, _)| i)
            .ok_or_else(|| bad("no closing `)`"))?;
        let (inner, rest) = (&after[..close], &after[close + 1..]);
        let runs = if kind == "LST" {
            list_values(inner)
                .ok_or_else(|| bad("expected (var, value, ...) or ({a, b}, {1, 2}, ...)"))?
        } else {
            seq_values(inner, kind == "SEQx").ok_or_else(|| {
                bad("expected (var, [start,] [step,] end) with whole numbers, step not 0")
            })?
        };
        if runs.len() > MAX_REPEATS {
            return Err(bad(&format!("more than {MAX_REPEATS} values")));
        }
        for run in runs {
            for (k, v) in run {
                self.defs.insert(k, v);
            }
            self.line(rest, loc, depth, nesting + 1)?;
        }
        Ok(())
    }
}

/// Lines one `~SEQ`/`~LST` may produce.
const MAX_REPEATS: usize = 100_000;

type Assignments = Vec<Vec<(String, String)>>;

fn seq_values(inner: &str, hex: bool) -> Option<Assignments> {
    let parts: Vec<&str> = inner.split(',').map(str::trim).collect();
    let num = |s: &str| -> Option<i64> {
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(h) => i64::from_str_radix(h, 16).ok(),
            None => s.parse().ok(),
        }
    };
    let var = parts.first().filter(|v| !v.is_empty())?.to_string();
    let (start, step, end) = match parts.len() {
        2 => {
            let end = num(parts[1])?;
            let start = if end < 0 { -1 } else { 1 };
            (start, if end >= start { 1 } else { -1 }, end)
        }
        3 => {
            let (start, end) = (num(parts[1])?, num(parts[2])?);
            (start, if end >= start { 1 } else { -1 }, end)
        }
        4 => (num(parts[1])?, num(parts[2])?, num(parts[3])?),
        _ => return None,
    };
    if step == 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut v = start;
    while (step > 0 && v <= end) || (step < 0 && v >= end) {
        let text = if hex { format!("{v:x}") } else { v.to_string() };
        out.push(vec![(var.clone(), text)]);
        if out.len() > MAX_REPEATS {
            break;
        }
        v = v.checked_add(step)?;
    }
    Some(out)
}

fn list_values(inner: &str) -> Option<Assignments> {
    // Split at commas outside braces.
    let mut items = Vec::new();
    let mut level = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices() {
        match c {
            '{' => level += 1,
            '}' => level -= 1,
            ',' if level == 0 => {
                items.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(inner[start..].trim());
    let group = |s: &str| -> Vec<String> {
        match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(g) => g.split(',').map(|x| x.trim().to_string()).collect(),
            None => vec![s.to_string()],
        }
    };
    let vars = group(items.first()?);
    if vars.iter().any(String::is_empty) || items.len() < 2 {
        return None;
    }
    items[1..]
        .iter()
        .map(|item| {
            let values = group(item);
            (values.len() == vars.len()).then(|| vars.iter().cloned().zip(values).collect())
        })
        .collect()
}

/// Strips a `!` or `#` comment that starts a word outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('!' | '#', None) if prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// `NAME=value` of a `$NAME=value` line; `None` when the line only uses a definition.
fn definition(s: &str) -> Option<(&str, &str)> {
    let (name, value) = s.split_once('=')?;
    let bare = name.split('(').next().unwrap_or(name);
    let valid = bare
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && (bare == name || name.ends_with(')'));
    valid.then_some((name, value))
}

/// One round of replacing `${NAME}` and `$NAME` (followed by whitespace or the end) by
/// their definitions; undefined names stay as they are, as in keepalived.
fn substitute_once(line: &str, defs: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        // Values that differ from run to run or come from the environment: the import
        // must not depend on either.
        for special in ["{_RANDOM", "{_ENV"] {
            if after.starts_with(special) {
                return Err(format!(
                    "${}...}}: the importer does not expand it (it is not the same on every run); write its value",
                    special
                ));
            }
        }
        if let Some(inner) = after.strip_prefix('{')
            && let Some(end) = inner.find('}')
            && let Some(value) = defs.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
            continue;
        }
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        let name = &after[..end];
        let followed_ok = after[end..].chars().next().is_none_or(char::is_whitespace);
        match defs.get(name) {
            Some(value) if !name.is_empty() && followed_ok => {
                out.push_str(value);
                rest = &after[end..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn tokenize(line: &str, loc: &Loc) -> Result<Vec<Tok>, ReadError> {
    let mut toks = Vec::new();
    let mut word = String::new();
    let mut has_word = false;
    let mut chars = line.chars().peekable();
    // Inside an undefined `${NAME}`, braces belong to the word.
    let mut in_dollar_brace = false;
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                // Quotes group words and are removed; `a" b "c` is one word, `a b c`.
                has_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') => word.push(escape(&mut chars)),
                        Some(ch) => word.push(ch),
                        None => {
                            return Err(ReadError::new(loc, "a quoted string is not closed"));
                        }
                    }
                }
            }
            '{' if word.ends_with('$') => {
                in_dollar_brace = true;
                word.push(c);
            }
            '}' if in_dollar_brace => {
                in_dollar_brace = false;
                word.push(c);
            }
            '{' | '}' => {
                if has_word || !word.is_empty() {
                    toks.push(Tok::Word(std::mem::take(&mut word)));
                    has_word = false;
                }
                toks.push(if c == '{' { Tok::Open } else { Tok::Close });
            }
            c if c.is_whitespace() => {
                if has_word || !word.is_empty() {
                    toks.push(Tok::Word(std::mem::take(&mut word)));
                    has_word = false;
                }
            }
            c => word.push(c),
        }
    }
    if has_word || !word.is_empty() {
        toks.push(Tok::Word(word));
    }
    Ok(toks)
}

/// A backslash escape inside quotes, as keepalived reads them: `\a \b \E \f \n \r \t
/// \v`, octal `\nnn`, hex `\xXX`, control `\cC`; any other `\C` is `C`.
fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> char {
    let Some(c) = chars.next() else { return '\\' };
    match c {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'E' => '\u{1b}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        'x' => {
            let mut v = 0u32;
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(16)) {
                    Some(d) => {
                        v = v * 16 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            char::from_u32(v).unwrap_or('x')
        }
        'c' => chars
            .next()
            .and_then(|k| char::from_u32(u32::from(k) & 0x1f))
            .unwrap_or('c'),
        d @ '0'..='7' => {
            let mut v = d.to_digit(8).unwrap_or(0);
            for _ in 0..2 {
                match chars.peek().and_then(|d| d.to_digit(8)) {
                    Some(d) => {
                        v = v * 8 + d;
                        chars.next();
                    }
                    None => break,
                }
            }
            char::from_u32(v).unwrap_or('0')
        }
        other => other,
    }
}

struct Frame {
    nodes: Vec<Node>,
    open: Loc,
}

/// Builds the tree: a `{` opens the block of the line it ends (or, alone on a line, of
/// the line before); `}` closes it.
fn build(tokens: Vec<(Loc, Tok)>) -> Result<Vec<Node>, ReadError> {
    let mut stack: Vec<Frame> = vec![Frame {
        nodes: Vec::new(),
        open: Loc {
            file: "".into(),
            line: 0,
        },
    }];
    let mut words: Vec<String> = Vec::new();
    let mut words_loc: Option<Loc> = None;
    fn flush(stack: &mut [Frame], words: &mut Vec<String>, loc: &mut Option<Loc>) {
        if let (Some(l), Some(top)) = (loc.take(), stack.last_mut())
            && !words.is_empty()
        {
            top.nodes.push(Node {
                loc: l,
                words: std::mem::take(words),
                block: None,
            });
        }
    }
    for (loc, tok) in tokens {
        match tok {
            Tok::Word(w) => {
                if words.is_empty() {
                    words_loc = Some(loc);
                }
                words.push(w);
            }
            Tok::EndOfLine => flush(&mut stack, &mut words, &mut words_loc),
            Tok::Open => {
                flush(&mut stack, &mut words, &mut words_loc);
                let takes_block = stack
                    .last()
                    .and_then(|f| f.nodes.last())
                    .is_some_and(|n| n.block.is_none());
                if !takes_block {
                    return Err(ReadError::new(&loc, "`{` without a keyword before it"));
                }
                stack.push(Frame {
                    nodes: Vec::new(),
                    open: loc,
                });
            }
            Tok::Close => {
                flush(&mut stack, &mut words, &mut words_loc);
                if stack.len() < 2 {
                    return Err(ReadError::new(&loc, "`}` without a matching `{`"));
                }
                if let Some(frame) = stack.pop()
                    && let Some(parent) = stack.last_mut().and_then(|f| f.nodes.last_mut())
                {
                    parent.block = Some(frame.nodes);
                }
            }
        }
    }
    flush(&mut stack, &mut words, &mut words_loc);
    if stack.len() > 1
        && let Some(open) = stack.last().map(|f| f.open.clone())
    {
        return Err(ReadError::new(&open, "this `{` is never closed"));
    }
    Ok(stack.pop().map(|f| f.nodes).unwrap_or_default())
}

/// `a/b/../c` → `a/c`, without asking the filesystem.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// csh-style `{a,b}` alternatives, as glob(3) with GLOB_BRACE.
fn expand_braces(pattern: &str) -> Vec<String> {
    let Some(open) = pattern.find('{') else {
        return vec![pattern.to_string()];
    };
    let mut level = 0;
    let mut close = None;
    let mut commas = Vec::new();
    for (i, c) in pattern[open..].char_indices() {
        match c {
            '{' => level += 1,
            '}' => {
                level -= 1;
                if level == 0 {
                    close = Some(open + i);
                    break;
                }
            }
            ',' if level == 1 => commas.push(open + i),
            _ => {}
        }
    }
    let Some(close) = close else {
        return vec![pattern.to_string()];
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut bounds = vec![open];
    bounds.extend(&commas);
    bounds.push(close);
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let alt = &pattern[w[0] + 1..w[1]];
        out.extend(expand_braces(&format!("{head}{alt}{tail}")));
    }
    out
}

/// The files a pattern matches, sorted as glob(3) sorts them.
fn glob(files: &dyn Files, pattern: &Path) -> Vec<PathBuf> {
    let mut current = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for base in &current {
            if has_wildcard(&part) {
                let dir = if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base.as_path()
                };
                let mut names = files.list_dir(dir).unwrap_or_default();
                names.sort();
                for name in names {
                    // As glob(3): a leading dot is matched only by a pattern that has one.
                    if name.starts_with('.') && !part.starts_with('.') {
                        continue;
                    }
                    if wildcard_match(&part, &name) {
                        next.push(base.join(name));
                    }
                }
            } else {
                next.push(base.join(comp.as_os_str()));
            }
        }
        current = next;
    }
    current.retain(|p| files.read(p).is_ok());
    current
}

/// fnmatch(3) for one path component: `*`, `?` and `[...]` (with `!`/`^` and ranges).
fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().skip(2).position(|c| *c == ']').map(|i| i + 2) else {
                    return n.first() == Some(&'[') && go(&p[1..], &n[1..]);
                };
                let Some(c) = n.first() else { return false };
                let mut set = &p[1..end];
                let negate = matches!(set.first(), Some('!' | '^'));
                if negate {
                    set = &set[1..];
                }
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= *c && *c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == *c;
                        i += 1;
                    }
                }
                hit != negate && go(&p[end + 1..], &n[1..])
            }
            Some(ch) => n.first() == Some(ch) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(nodes: &[Node]) -> Vec<String> {
        let mut out = Vec::new();
        for n in nodes {
            out.push(format!("{}:{}", n.loc.line, n.words.join(" ")));
            if let Some(b) = &n.block {
                out.push("{".into());
                out.extend(words(b));
                out.push("}".into());
            }
        }
        out
    }

    fn read_mem(files: &MemFiles, id: Option<&str>) -> Result<Vec<String>, ReadError> {
        read(Path::new("/etc/k/keepalived.conf"), files, id).map(|(n, _)| words(&n))
    }

    #[test]
    fn braces_on_the_same_and_the_next_line() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "a {\n b 1 }\nc\n{\n d { e f }\n}\n",
        );
        assert_eq!(
            read_mem(&f, None).unwrap(),
            [
                "1:a", "{", "2:b 1", "}", "3:c", "{", "5:d", "{", "5:e f", "}", "}"
            ]
        );
    }

    #[test]
    fn comments_quotes_and_continuation() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "a \"x # y\" # c\n! all comment\nb 1 \\\n  2\nc x!y\n",
        );
        assert_eq!(
            read_mem(&f, None).unwrap(),
            ["1:a x # y", "3:b 1 2", "5:c x!y"]
        );
    }

    #[test]
    fn conditional_lines() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "@main a 1\n@backup a 2\n@^main b\n@^backup c\n",
        );
        assert_eq!(read_mem(&f, Some("main")).unwrap(), ["1:a 1", "4:c"]);
        assert_eq!(read_mem(&f, None).unwrap(), ["3:b", "4:c"]);
    }

    #[test]
    fn definitions_are_substituted_when_used() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "$BASE=10.2.${SUB}\n$SUB=0\nip ${BASE}.1\n$SUB=10\nip ${BASE}.1 $UNDEF ${UNDEF}\n@main $P=240\n$P=1\np $P\n",
        );
        assert_eq!(
            read_mem(&f, Some("main")).unwrap(),
            ["3:ip 10.2.0.1", "5:ip 10.2.10.1 $UNDEF ${UNDEF}", "8:p 1"]
        );
    }

    #[test]
    fn multi_line_definitions_expand_to_lines() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "$I= \\\ninst ${N} { \\\n @high p 130 \\\n @low p 120 \\\n}\n$N=0\n$I\n",
        );
        assert_eq!(
            read_mem(&f, Some("low")).unwrap(),
            ["7:inst 0", "{", "7:p 120", "}"]
        );
    }

    #[test]
    fn includes_with_globs_are_relative_to_the_including_file() {
        let f = MemFiles::default()
            .with("/etc/k/keepalived.conf", "a\ninclude conf.d/*.conf\nz\n")
            .with("/etc/k/conf.d/2.conf", "two\ninclude ../more/{x,y}.inc\n")
            .with("/etc/k/conf.d/1.conf", "one\n")
            .with("/etc/k/conf.d/skip.txt", "no\n")
            .with("/etc/k/more/x.inc", "x\n")
            .with("/etc/k/more/y.inc", "y\n");
        assert_eq!(
            read_mem(&f, None).unwrap(),
            ["1:a", "1:one", "1:two", "1:x", "1:y", "3:z"]
        );
    }

    #[test]
    fn errors_name_the_line() {
        let bad = |text: &str| {
            let f = MemFiles::default().with("/etc/k/keepalived.conf", text);
            read_mem(&f, None).unwrap_err().to_string()
        };
        assert_eq!(
            bad("a {\n b\n"),
            "/etc/k/keepalived.conf:1: error: this `{` is never closed"
        );
        assert_eq!(
            bad("a\n}\n"),
            "/etc/k/keepalived.conf:2: error: `}` without a matching `{`"
        );
        assert_eq!(
            bad("a \"b\n"),
            "/etc/k/keepalived.conf:1: error: a quoted string is not closed"
        );
        assert!(bad("include nothere.conf\n").starts_with(
            "/etc/k/keepalived.conf:1: error: include: cannot read /etc/k/nothere.conf:"
        ));
        assert_eq!(
            bad("$A=$A x\nq $A\n"),
            "/etc/k/keepalived.conf:2: error: definitions refer to each other without end"
        );
        assert_eq!(
            bad("include keepalived.conf\n"),
            "/etc/k/keepalived.conf:1: error: include: files nest deeper than 32 (does a file include itself?)"
        );
    }

    #[test]
    fn sequences_and_lists() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "~SEQ(N, 0, 2) ip 10.0.${N}.1\n~SEQx(H, 0x90, 0x10, 0xa0) ip fe80::${H}\n~SEQ(D, 3, 1) d $D\n~LST({A, B}, {1, 2}, {3, 4}) ~LST(C, x, y) v ${A}${B}$C\n",
        );
        assert_eq!(
            read_mem(&f, None).unwrap(),
            [
                "1:ip 10.0.0.1",
                "1:ip 10.0.1.1",
                "1:ip 10.0.2.1",
                "2:ip fe80::90",
                "2:ip fe80::a0",
                "3:d 3",
                "3:d 2",
                "3:d 1",
                "4:v 12x",
                "4:v 12y",
                "4:v 34x",
                "4:v 34y",
            ]
        );
        let bad = MemFiles::default().with("/etc/k/keepalived.conf", "~SEQ(N, 1, 0, 3) x\n");
        assert!(read_mem(&bad, None).is_err());
    }

    #[test]
    fn quotes_escapes_and_predefined_definitions() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "a abcd\" efg h \"mnop 'x y' \"t\\tb\\x41\\101\\q\"\nb ${_PWD} ${_HASH}${_BANG} $_INSTANCE\nc \"it's\" # gone\n",
        );
        assert_eq!(
            read_mem(&f, Some("lb1")).unwrap(),
            [
                "1:a abcd efg h mnop x y t\tbAAq",
                "2:b /etc/k #! lb1",
                "3:c it's"
            ]
        );
        let env = MemFiles::default().with("/etc/k/keepalived.conf", "a ${_ENV HOME}\n");
        assert!(
            read_mem(&env, None)
                .unwrap_err()
                .to_string()
                .contains("does not expand")
        );
    }

    #[test]
    fn include_variants() {
        let f = MemFiles::default().with(
            "/etc/k/keepalived.conf",
            "includer none/*.conf\nincludea none/*.conf\n",
        );
        let e = read_mem(&f, None).unwrap_err().to_string();
        assert_eq!(
            e,
            "/etc/k/keepalived.conf:2: error: include: /etc/k/none/*.conf matches no file"
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.conf", "a.conf"));
        assert!(!wildcard_match("*.conf", "a.conf~"));
        assert!(wildcard_match("[a-c]?", "b1"));
        assert!(!wildcard_match("[!a-c]?", "b1"));
    }
}
