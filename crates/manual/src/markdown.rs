//! The project's Markdown (the subset docs/ is written in) to a man page in roff.
//!
//! Handles what the reference docs use: `#` headings, paragraphs, `-` and `1.` lists with
//! indented continuation lines, fenced code blocks, pipe tables, and inline `code`,
//! ``double-tick code``, **bold**, *italic* and [links](target). Tables become one tagged
//! paragraph per row (the first cell as the tag, each other cell as `header: text`): a
//! 5-column table does not fit 80 columns, a list of rows does.

use crate::{Font, escape_text};

/// What the page is called and where it belongs.
#[derive(Debug, Clone, Copy)]
pub struct Page<'a> {
    /// The page's name, e.g. `vigil.toml`.
    pub name: &'a str,
    /// The man section, e.g. `5`.
    pub section: &'a str,
    /// The one-line summary of the NAME section.
    pub summary: &'a str,
    /// The footer's source, e.g. `vigil 0.1.0`.
    pub source: &'a str,
    /// The header's manual title.
    pub manual: &'a str,
    /// Pages for SEE ALSO, as `name(section)`.
    pub see_also: &'a [&'a str],
}

/// Renders `markdown` as the man page `page`. The document's first `#` heading is its
/// title and is replaced by the NAME section; its text up to the first `##` becomes the
/// DESCRIPTION section.
pub fn to_man(markdown: &str, page: &Page<'_>) -> String {
    let mut out = String::new();
    out.push_str(&crate::title_line(
        page.name,
        page.section,
        page.source,
        page.manual,
    ));
    out.push_str(&format!(
        ".SH NAME\n{} \\- {}\n",
        escape_text(page.name),
        escape_text(page.summary)
    ));
    let blocks = parse(markdown);
    let mut described = false;
    for block in &blocks {
        match block {
            Block::Heading(1, _) => {}
            Block::Heading(level, text) => {
                described = true;
                if *level == 2 {
                    out.push_str(&format!(".SH {}\n", quote_arg(&section_title(text))));
                } else {
                    out.push_str(&format!(".SS {}\n", quote_arg(&strip_inline(text))));
                }
            }
            other => {
                if !described {
                    out.push_str(".SH DESCRIPTION\n");
                    described = true;
                }
                render_block(other, &mut out);
            }
        }
    }
    out.push_str(&crate::see_also(page.see_also));
    out
}

#[derive(Debug, PartialEq)]
enum Block {
    Heading(usize, String),
    Paragraph(Vec<String>),
    /// Items of one list, each its lines joined; `ordered` lists keep their numbers.
    List {
        ordered: bool,
        items: Vec<String>,
    },
    Code(Vec<String>),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
}

/// A list item's marker: `- `, `* ` or `N. `; returns whether it is numbered, and the rest.
fn list_marker(line: &str) -> Option<(bool, &str)> {
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some((false, rest));
    }
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    line[digits..].strip_prefix(". ").map(|rest| (true, rest))
}

fn parse(markdown: &str) -> Vec<Block> {
    let lines: Vec<&str> = markdown.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        if line.trim().is_empty() {
            i += 1;
        } else if trimmed.starts_with("```") {
            // The fence's language tag (```toml) does not matter to a man page.
            let indent = line.len() - trimmed.len();
            let mut code = Vec::new();
            i += 1;
            while i < lines.len() && !lines[i].trim_start().starts_with("```") {
                // Code inside a list item is indented with it; that indent is not code.
                let l = lines[i];
                let cut = l.len() - l.trim_start().len();
                code.push(l[cut.min(indent)..].to_string());
                i += 1;
            }
            i += 1;
            blocks.push(Block::Code(code));
        } else if line.starts_with('#') {
            let level = line.bytes().take_while(|&b| b == b'#').count();
            blocks.push(Block::Heading(level, line[level..].trim().to_string()));
            i += 1;
        } else if line.starts_with('|') {
            let header = cells(line);
            i += 1;
            // The separator row (| --- | --- |).
            if i < lines.len() && lines[i].starts_with('|') && lines[i].contains("---") {
                i += 1;
            }
            let mut rows = Vec::new();
            while i < lines.len() && lines[i].starts_with('|') {
                rows.push(cells(lines[i]));
                i += 1;
            }
            blocks.push(Block::Table { header, rows });
        } else if let Some((ordered, first)) = list_marker(line) {
            let mut items = vec![first.to_string()];
            i += 1;
            while i < lines.len() {
                let l = lines[i];
                if let Some((_, rest)) = list_marker(l).filter(|(o, _)| *o == ordered) {
                    items.push(rest.to_string());
                } else if !l.trim().is_empty() && l.starts_with(' ') && !is_fence(l) {
                    if let Some(item) = items.last_mut() {
                        item.push(' ');
                        item.push_str(l.trim());
                    }
                } else {
                    break;
                }
                i += 1;
            }
            blocks.push(Block::List { ordered, items });
        } else {
            let mut text = Vec::new();
            while i < lines.len() {
                let l = lines[i];
                if l.trim().is_empty()
                    || l.starts_with('#')
                    || l.starts_with('|')
                    || is_fence(l)
                    || (!text.is_empty() && list_marker(l).is_some())
                {
                    break;
                }
                text.push(l.trim().to_string());
                i += 1;
            }
            blocks.push(Block::Paragraph(text));
        }
    }
    blocks
}

fn is_fence(line: &str) -> bool {
    line.trim_start().starts_with("```")
}

/// The cells of a table row; a `|` inside a code span does not split.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                in_code = !in_code;
                cell.push(c);
            }
            '\\' if chars.peek() == Some(&'|') => {
                cell.push('|');
                chars.next();
            }
            '|' if !in_code => cells.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(c),
        }
    }
    cells.push(cell.trim().to_string());
    cells
}

fn render_block(block: &Block, out: &mut String) {
    match block {
        Block::Heading(..) => {}
        Block::Paragraph(lines) => {
            out.push_str(".PP\n");
            out.push_str(&lines_out(&inline(&lines.join(" "), Font::Roman)));
        }
        Block::List { ordered, items } => {
            for (n, item) in items.iter().enumerate() {
                if *ordered {
                    out.push_str(&format!(".IP {}. 4\n", n + 1));
                } else {
                    out.push_str(".IP \\(bu 2\n");
                }
                out.push_str(&lines_out(&inline(item, Font::Roman)));
            }
        }
        Block::Code(code) => {
            out.push_str(".PP\n.RS 4\n.EX\n");
            for line in code {
                out.push_str(&escape_line(&escape_code(line)));
                out.push('\n');
            }
            out.push_str(".EE\n.RE\n");
        }
        Block::Table { header, rows } => {
            for row in rows {
                let mut cells = row.iter();
                let Some(first) = cells.next() else { continue };
                out.push_str(".TP\n");
                out.push_str(&lines_out(&format!(
                    "\\fB{}\\fR",
                    inline(first, Font::Bold)
                )));
                let mut first_line = true;
                for (head, cell) in header.iter().skip(1).zip(cells) {
                    if cell.is_empty() {
                        continue;
                    }
                    if !first_line {
                        out.push_str(".br\n");
                    }
                    first_line = false;
                    let text = format!(
                        "\\fI{}\\fR: {}",
                        escape_text(head),
                        inline(cell, Font::Roman)
                    );
                    out.push_str(&lines_out(&text));
                }
            }
        }
    }
}

/// One roff text line, with a leading `.` or `'` kept from being read as a request.
fn escape_line(line: &str) -> String {
    if line.starts_with('.') || line.starts_with('\'') {
        format!("\\&{line}")
    } else {
        line.to_string()
    }
}

fn lines_out(text: &str) -> String {
    let mut s = escape_line(text.trim());
    s.push('\n');
    s
}

/// Literal text in code: also `-` as a minus, so options and paths copy and paste right.
fn escape_code(text: &str) -> String {
    escape_text(text).replace('-', "\\-")
}

/// The heading's text without markup, for `.SH` and `.SS`.
fn strip_inline(text: &str) -> String {
    text.replace('`', "").replace("**", "")
}

/// A `.SH` title: upper case as man pages have them, except code (`[director]` is
/// a key, `[DIRECTOR]` would be another).
fn section_title(text: &str) -> String {
    text.replace("**", "")
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 0 {
                part.to_uppercase()
            } else {
                part.to_string()
            }
        })
        .collect()
}

/// A macro argument: quoted, since headings have spaces.
fn quote_arg(text: &str) -> String {
    format!("\"{}\"", escape_text(text).replace('"', "\\(dq"))
}

/// Inline markup to roff font escapes; `base` is the font around the text (a table
/// tag is bold, so a code span in it must return to bold, not roman).
fn inline(text: &str, base: Font) -> String {
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '`' {
            // A code span opened by N backticks ends at the next run of exactly N.
            let ticks = chars[i..].iter().take_while(|&&c| c == '`').count();
            if let Some(end) = find_ticks(&chars, i + ticks, ticks) {
                let code: String = chars[i + ticks..end].iter().collect();
                out.push_str(&format!(
                    "\\fB{}{}",
                    escape_code(code.trim()),
                    base.escape()
                ));
                i = end + ticks;
                continue;
            }
            out.push_str(&"`".repeat(ticks));
            i += ticks;
        } else if c == '*' && chars.get(i + 1) == Some(&'*') {
            if let Some(end) = find_str(&chars, i + 2, &['*', '*']) {
                let inner: String = chars[i + 2..end].iter().collect();
                out.push_str(&format!(
                    "\\fB{}{}",
                    inline(&inner, Font::Bold),
                    base.escape()
                ));
                i = end + 2;
                continue;
            }
            out.push_str("**");
            i += 2;
        } else if c == '*' && chars.get(i + 1).is_some_and(|c| !c.is_whitespace()) {
            if let Some(end) = find_str(&chars, i + 1, &['*']) {
                let inner: String = chars[i + 1..end].iter().collect();
                out.push_str(&format!(
                    "\\fI{}{}",
                    inline(&inner, Font::Italic),
                    base.escape()
                ));
                i = end + 1;
                continue;
            }
            out.push('*');
            i += 1;
        } else if c == '[' {
            // [text](target): the text alone; a web address is kept after it.
            if let Some((label, target, next)) = link(&chars, i) {
                out.push_str(&inline(&label, base));
                if target.starts_with("http://") || target.starts_with("https://") {
                    out.push_str(&format!(" <{}>", escape_text(&target)));
                }
                i = next;
                continue;
            }
            out.push('[');
            i += 1;
        } else {
            out.push_str(&escape_text(&c.to_string()));
            i += 1;
        }
    }
    out
}

fn find_ticks(chars: &[char], from: usize, n: usize) -> Option<usize> {
    let mut j = from;
    while j < chars.len() {
        if chars[j] == '`' {
            let run = chars[j..].iter().take_while(|&&c| c == '`').count();
            if run == n {
                return Some(j);
            }
            j += run;
        } else {
            j += 1;
        }
    }
    None
}

fn find_str(chars: &[char], from: usize, pat: &[char]) -> Option<usize> {
    (from..chars.len().saturating_sub(pat.len() - 1)).find(|&j| chars[j..].starts_with(pat))
}

/// `[label](target)` at `at`: the label, the target and the index after it.
fn link(chars: &[char], at: usize) -> Option<(String, String, usize)> {
    let close = (at + 1..chars.len()).find(|&j| chars[j] == ']')?;
    if chars.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = (close + 2..chars.len()).find(|&j| chars[j] == ')')?;
    let label = chars[at + 1..close].iter().collect();
    let target = chars[close + 2..end].iter().collect();
    Some((label, target, end + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: Page<'static> = Page {
        name: "vigil.toml",
        section: "5",
        summary: "the cluster file",
        source: "vigil 1.2.3",
        manual: "vigil manual",
        see_also: &["vigild(8)"],
    };

    #[test]
    fn headings_become_sections_and_the_title_becomes_name() {
        let man = to_man(
            "# The file\n\nIntro.\n\n## Value `syntax`\n\n### Sub `x`\n\n## `[vrrp.NAME]`: VRRP\n",
            &PAGE,
        );
        let th = format!(
            ".TH VIGIL.TOML 5 {} \"vigil 1.2.3\" \"vigil manual\"\n",
            crate::date()
        );
        assert!(man.starts_with(&th), "{man}");
        assert!(man.contains(".SH NAME\nvigil.toml \\- the cluster file\n"));
        assert!(man.contains(".SH DESCRIPTION\n.PP\nIntro.\n"));
        assert!(
            man.contains(".SH \"VALUE syntax\"\n.SS \"Sub x\"\n"),
            "{man}"
        );
        assert!(man.contains(".SH \"[vrrp.NAME]: VRRP\"\n"), "{man}");
        assert!(man.ends_with(".SH \"SEE ALSO\"\n\\fBvigild\\fR(8)\n"));
    }

    #[test]
    fn inline_markup_becomes_font_escapes() {
        assert_eq!(inline("a `b-c` d", Font::Roman), "a \\fBb\\-c\\fR d");
        assert_eq!(
            inline("**bold `x`** *it*", Font::Roman),
            "\\fBbold \\fBx\\fB\\fR \\fIit\\fR"
        );
        assert_eq!(inline("``a `b` c``", Font::Roman), "\\fBa `b` c\\fR");
        assert_eq!(
            inline("see [checks](#health-checks).", Font::Roman),
            "see checks."
        );
        assert_eq!(
            inline("[RFC](https://x.invalid/a)", Font::Roman),
            "RFC <https://x.invalid/a>"
        );
        assert_eq!(inline("a\\b 2 * 3", Font::Roman), "a\\eb 2 * 3");
        // A table tag is bold: a code span in it returns to bold.
        assert_eq!(inline("`a` b", Font::Bold), "\\fBa\\fB b");
    }

    #[test]
    fn tables_become_tagged_paragraphs() {
        let md = "| field | type | meaning |\n| --- | --- | --- |\n| `name` | string | who `a|b` |\n| `x` | | y |\n";
        let man = to_man(md, &PAGE);
        assert!(
            man.contains(".TP\n\\fB\\fBname\\fB\\fR\n\\fItype\\fR: string\n.br\n\\fImeaning\\fR: who \\fBa|b\\fR\n"),
            "{man}"
        );
        assert!(
            man.contains(".TP\n\\fB\\fBx\\fB\\fR\n\\fImeaning\\fR: y\n"),
            "{man}"
        );
    }

    #[test]
    fn code_blocks_are_literal_and_lines_never_start_requests() {
        let md = "Text:\n\n```toml\n.x = \"a\\b\" # -1\n'q\n```\n\n.dot starts a line\n";
        let man = to_man(md, &PAGE);
        assert!(
            man.contains(".EX\n\\&.x = \"a\\eb\" # \\-1\n\\&'q\n.EE\n"),
            "{man}"
        );
        assert!(man.contains(".PP\n\\&.dot starts a line\n"), "{man}");
    }

    #[test]
    fn lists_keep_their_continuation_lines() {
        let md = "- **One** first\n  continued\n- two\n\nAfter.\n\n1. a\n2. b\n";
        let man = to_man(md, &PAGE);
        assert!(
            man.contains(
                ".IP \\(bu 2\n\\fBOne\\fR first continued\n.IP \\(bu 2\ntwo\n.PP\nAfter.\n"
            ),
            "{man}"
        );
        assert!(man.contains(".IP 1. 4\na\n.IP 2. 4\nb\n"), "{man}");
    }

    /// The real config reference: every table row has its header's number of cells (a
    /// stray `|` would shift every column after it), and nothing is left as Markdown.
    #[test]
    fn the_config_reference_converts_cleanly() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
        let md = std::fs::read_to_string(path).unwrap();
        for block in parse(&md) {
            if let Block::Table { header, rows } = block {
                for row in rows {
                    assert_eq!(row.len(), header.len(), "{header:?} / {row:?}");
                }
            }
        }
        let man = to_man(&md, &PAGE);
        for line in man.lines().filter(|l| !l.starts_with('.')) {
            assert!(!line.contains("**"), "{line}");
            assert!(!line.contains("]("), "{line}");
        }
    }
}
