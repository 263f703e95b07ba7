//! Shared helpers: parse a cluster file held in a string and look at the outcome.
//! Every test file uses a different subset.
#![allow(dead_code, unreachable_pub)]

use std::path::Path;

pub use vigil_config::*;

/// The file name diagnostics carry in these tests.
pub const FILE: &str = "t.toml";

/// Parses a file that must be valid, failing with the rendered diagnostics otherwise.
pub fn ok(src: &str) -> Loaded {
    match parse(Path::new(FILE), src) {
        Ok(l) => l,
        Err(d) => panic!("expected a valid file, got:\n{d}"),
    }
}

/// Parses a file that must be invalid and returns its diagnostics.
pub fn diags(src: &str) -> Box<Diagnostics> {
    match parse(Path::new(FILE), src) {
        Ok(_) => panic!("expected errors, but the file is valid:\n{src}"),
        Err(d) => d,
    }
}

/// The errors of an invalid file, each as `FILE:LINE:COL: error: MESSAGE`, in file order.
pub fn errors(src: &str) -> Vec<String> {
    let d = diags(src);
    d.errors().map(|e| d.one_line(e)).collect()
}

/// Asserts that the file has exactly these errors, in this order.
#[track_caller]
pub fn assert_errors(src: &str, expected: &[&str]) {
    assert_eq!(errors(src), expected, "\nfor file:\n{src}");
}

/// Asserts that the file has exactly this one error, and returns its help text.
#[track_caller]
pub fn assert_error(src: &str, expected: &str) -> Option<String> {
    let d = diags(src);
    let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
    assert_eq!(lines, [expected], "\nfor file:\n{src}");
    d.errors().next().and_then(|e| e.help.clone())
}

/// The help text of the diagnostic whose one-line form is `line`.
#[track_caller]
pub fn help_of(src: &str, line: &str) -> Option<String> {
    let d = diags(src);
    let found = d.items().iter().find(|e| d.one_line(e) == line);
    match found {
        Some(e) => e.help.clone(),
        None => panic!("no diagnostic {line:?} among:\n{d}"),
    }
}

/// The warnings of a valid file, each in one-line form.
pub fn warnings(src: &str) -> Vec<String> {
    let l = ok(src);
    l.warnings
        .warnings()
        .map(|w| l.warnings.one_line(w))
        .collect()
}

/// `ms` milliseconds.
pub fn ms(n: u64) -> std::time::Duration {
    std::time::Duration::from_millis(n)
}

/// `s` seconds.
pub fn secs(n: u64) -> std::time::Duration {
    std::time::Duration::from_secs(n)
}

/// Parses an address that the test wrote itself.
pub fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap_or_else(|_| panic!("bad IP in test: {s}"))
}

/// Parses a socket address that the test wrote itself.
pub fn sa(s: &str) -> std::net::SocketAddr {
    s.parse()
        .unwrap_or_else(|_| panic!("bad socket address in test: {s}"))
}
