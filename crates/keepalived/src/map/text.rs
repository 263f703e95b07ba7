//! Writing TOML: a section keeps its keys in the order they were first set, with comments
//! where they were made, so the output follows the input's order.

/// A TOML basic string.
pub(crate) fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An array of values: on one line when short, else one value per line.
pub(crate) fn array(items: &[String]) -> String {
    let one_line = format!("[{}]", items.join(", "));
    if one_line.len() <= 72 || items.len() < 2 {
        one_line
    } else {
        let mut s = String::from("[\n");
        for i in items {
            s.push_str("  ");
            s.push_str(i);
            s.push_str(",\n");
        }
        s.push(']');
        s
    }
}

/// An array on one line, for values inside inline tables.
pub(crate) fn one_line(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// An inline table.
pub(crate) fn inline(fields: &[(String, String)]) -> String {
    let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    format!("{{ {} }}", parts.join(", "))
}

#[derive(Debug, Default, Clone)]
pub(crate) struct Section {
    header: String,
    /// `key = value` lines and `# comment` lines.
    pub(crate) lines: Vec<String>,
    keys: Vec<Option<String>>,
}

impl Section {
    pub(crate) fn new(header: &str) -> Self {
        Section {
            header: header.to_string(),
            lines: Vec::new(),
            keys: Vec::new(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub(crate) fn has_keys(&self) -> bool {
        self.keys.iter().any(Option::is_some)
    }

    pub(crate) fn comment(&mut self, text: &str) {
        for l in text.lines() {
            self.lines.push(format!("# {l}"));
            self.keys.push(None);
        }
    }

    /// A comment right before `key`'s line (at the end when the key is not set).
    pub(crate) fn comment_before(&mut self, key: &str, text: &str) {
        let Some(mut i) = self.position(key) else {
            self.comment(text);
            return;
        };
        for l in text.lines() {
            self.lines.insert(i, format!("# {l}"));
            self.keys.insert(i, None);
            i += 1;
        }
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.keys.iter().position(|k| k.as_deref() == Some(key))
    }

    /// Sets a key: replaced in place when it was set before, else added at the end.
    pub(crate) fn set(&mut self, key: &str, value: String) {
        let line = format!("{key} = {value}");
        match self.position(key) {
            Some(i) => self.lines[i] = line,
            None => {
                self.lines.push(line);
                self.keys.push(Some(key.to_string()));
            }
        }
    }

    /// Sets a key as the first line of the section.
    pub(crate) fn set_first(&mut self, key: &str, value: String) {
        self.remove(key);
        self.lines.insert(0, format!("{key} = {value}"));
        self.keys.insert(0, Some(key.to_string()));
    }

    /// Sets a key right after the first of `after` that is set (else at the end).
    pub(crate) fn set_after(&mut self, key: &str, value: String, after: &[&str]) {
        if self.position(key).is_some() {
            self.set(key, value);
            return;
        }
        match after.iter().find_map(|a| self.position(a)) {
            Some(i) => {
                self.lines.insert(i + 1, format!("{key} = {value}"));
                self.keys.insert(i + 1, Some(key.to_string()));
            }
            None => self.set(key, value),
        }
    }

    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(i) = self.position(key) {
            self.lines.remove(i);
            self.keys.remove(i);
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.position(key)
            .and_then(|i| self.lines[i].split_once(" = ").map(|(_, v)| v))
    }

    /// Appends another section's lines (comments and keys) to this one.
    pub(crate) fn absorb(&mut self, other: Section) {
        self.lines.extend(other.lines);
        self.keys.extend(other.keys);
    }

    /// Puts another section's lines before this one's.
    pub(crate) fn prepend(&mut self, mut other: Section) {
        other.lines.append(&mut self.lines);
        other.keys.append(&mut self.keys);
        self.lines = other.lines;
        self.keys = other.keys;
    }

    pub(crate) fn render(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        if !self.header.is_empty() {
            out.push(self.header.clone());
        }
        out.extend(self.lines.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(q("a\"b\\c\u{1}"), "\"a\\\"b\\\\c\\u0001\"");
    }

    #[test]
    fn keys_keep_their_place() {
        let mut s = Section::new("[x]");
        s.set("a", "1".into());
        s.comment("note");
        s.set("b", "2".into());
        s.set("a", "3".into());
        s.set_after("c", "4".into(), &["a"]);
        assert_eq!(s.render(), ["[x]", "a = 3", "c = 4", "# note", "b = 2"]);
    }
}
