//! Whatever the input, parsing (and rendering what it found) returns instead of panicking.

mod common;
use common::*;

use proptest::prelude::*;
use std::path::Path;

const EXAMPLES: [&str; 3] = [
    include_str!("../../../conf/web-dr.toml"),
    include_str!("../../../conf/nat-ipv6.toml"),
    include_str!("../../../conf/dns-fwmark.toml"),
];

/// Parses and renders everything; checks the invariants that hold for any input.
fn exercise(src: &str) {
    match vigil_config::parse(Path::new(FILE), src) {
        Ok(l) => {
            assert!(!l.warnings.has_errors());
            let _ = l.warnings.to_string();
        }
        Err(d) => {
            assert!(d.has_errors(), "an invalid file must have an error");
            let _ = d.to_string();
            let lines = src.split('\n').count();
            for item in d.items() {
                let p = d.position(item);
                assert!(p.line >= 1 && p.line <= lines, "{p:?} in {lines} lines");
                assert!(p.column >= 1);
                assert!(d.one_line(item).starts_with("t.toml:"));
            }
        }
    }
}

/// One edit of a text, at character positions so the result stays valid UTF-8.
#[derive(Debug, Clone)]
enum Edit {
    Delete {
        at: usize,
        len: usize,
    },
    Insert {
        at: usize,
        text: String,
    },
    DuplicateLine {
        line: usize,
    },
    SwapLines {
        a: usize,
        b: usize,
    },
    /// Replaces what follows the first `= ` of a line: reaches the semantic rules.
    ReplaceValue {
        line: usize,
        value: String,
    },
}

fn apply(src: &str, edit: &Edit) -> String {
    let chars: Vec<char> = src.chars().collect();
    match edit {
        Edit::Delete { at, len } => {
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            chars[..at].iter().chain(&chars[end..]).collect()
        }
        Edit::Insert { at, text } => {
            let at = at % (chars.len() + 1);
            let mut s: String = chars[..at].iter().collect();
            s.push_str(text);
            s.extend(&chars[at..]);
            s
        }
        Edit::DuplicateLine { line } => {
            let mut lines: Vec<&str> = src.split('\n').collect();
            let i = line % lines.len();
            lines.insert(i, lines[i]);
            lines.join("\n")
        }
        Edit::SwapLines { a, b } => {
            let mut lines: Vec<&str> = src.split('\n').collect();
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Edit::ReplaceValue { line, value } => {
            let lines: Vec<&str> = src.split('\n').collect();
            let i = line % lines.len();
            let Some((key, _)) = lines[i].split_once("= ") else {
                return src.to_string();
            };
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out[i] = format!("{key}= {value}");
            out.join("\n")
        }
    }
}

/// Text that is likely to matter in a cluster file.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,12}",
        Just("\"".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("=".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just(",".to_string()),
        Just("é".to_string()),
        Just("😀".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999".to_string()),
        Just("0x".to_string()),
        Just("\"0s\"".to_string()),
        Just("\"1.5s\"".to_string()),
        Just("\"/32\"".to_string()),
        Just("false".to_string()),
        Just("[[virtual_server]]\n".to_string()),
        Just("check = {}\n".to_string()),
        Just("kind = \"icmp\"".to_string()),
        Just("::".to_string()),
    ]
}

/// A TOML value of any type, often near a limit.
fn value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        prop_oneof![
            Just(-1i64),
            Just(0),
            Just(1),
            Just(2),
            Just(3),
            Just(100),
            Just(255),
            Just(256),
            Just(65535),
            Just(65536),
            Just(4294967295),
            Just(4294967296)
        ]
        .prop_map(|n| n.to_string()),
        Just("1.5".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        Just("1979-05-27".to_string()),
        prop_oneof![
            Just("0s"),
            Just("1ms"),
            Just("10ms"),
            Just("1s"),
            Just("2s"),
            Just("1.5s"),
            Just("255s"),
            Just("1h"),
            Just("2h"),
            Just("5"),
            Just("")
        ]
        .prop_map(|d| format!("\"{d}\"")),
        prop_oneof![
            Just("192.0.2.100"),
            Just("192.0.2.100:80"),
            Just("192.0.2.0/24"),
            Just("[2001:db8::1]:80"),
            Just("2001:db8::1/64"),
            Just("10.0.0.1:0"),
            Just("/abs/path"),
            Just("rel"),
            Just("eth0"),
            Just("tcp"),
            Just("udp"),
            Just("http"),
            Just("https"),
            Just("dns"),
            Just("icmp"),
            Just("exec"),
            Just("dr"),
            Just("tunnel"),
            Just("nat"),
            Just("sh"),
            Just("mh"),
            Just("HEAD"),
            Just("AAAA"),
            Just("(")
        ]
        .prop_map(|s| format!("\"{s}\"")),
        "\"\\PC{0,10}\"".prop_map(|s| s.replace('\\', "")),
    ];
    scalar.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("kind"),
                        Just("port"),
                        Just("interval"),
                        Just("timeout"),
                        Just("address"),
                        Just("check"),
                        Just("weight"),
                        Just("bind"),
                        Just("virtual_server"),
                        Just("exec"),
                        Just("path")
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(|kv| {
                let mut seen = Vec::new();
                let body: Vec<String> = kv
                    .into_iter()
                    .filter(|(k, _)| {
                        if seen.contains(k) {
                            false
                        } else {
                            seen.push(*k);
                            true
                        }
                    })
                    .map(|(k, v)| format!("{k} = {v}"))
                    .collect();
                format!("{{ {} }}", body.join(", "))
            }),
        ]
    })
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), fragment()).prop_map(|(at, text)| Edit::Insert { at, text }),
        any::<usize>().prop_map(|line| Edit::DuplicateLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines { a, b }),
        (any::<usize>(), value()).prop_map(|(line, value)| Edit::ReplaceValue { line, value }),
        (any::<usize>(), value()).prop_map(|(line, value)| Edit::ReplaceValue { line, value }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(src in "(?s).{0,400}") {
        exercise(&src);
    }

    #[test]
    fn arbitrary_printable_text_never_panics(src in "[\\PC\n\r\t]{0,400}") {
        exercise(&src);
    }

    #[test]
    fn examples_with_one_value_replaced_never_panic(
        which in 0usize..EXAMPLES.len(),
        line in any::<usize>(),
        value in value(),
    ) {
        exercise(&apply(EXAMPLES[which], &Edit::ReplaceValue { line, value }));
    }

    #[test]
    fn mutated_examples_never_panic(
        which in 0usize..EXAMPLES.len(),
        edits in proptest::collection::vec(edit(), 1..6),
    ) {
        let mut src = EXAMPLES[which].to_string();
        for e in &edits {
            src = apply(&src, e);
        }
        exercise(&src);
    }
}

#[test]
fn hand_picked_oddities_never_panic() {
    for src in [
        "",
        "\u{feff}",
        "\u{feff}[director]\nname = \"lb\"\n",
        "\n\n\n",
        "[director]\nname = \"lb\"\n[vrrp.web]\nvips = [\"0.0.0.1/0\", \"::1/0\", \"1.2.3.4/0\"]\n",
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"w\"\naddress = \"[::]:1\"\nreal_server = [{ address = \"[::]\" }]\n",
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"w\"\nfwmark = 1\ncheck = { kind = \"dns\", query_name = \"\" }\nreal_server = [{ address = \"1.1.1.1:1\", check = { } }]\n",
        "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"w\"\naddress = \"1.1.1.1:1\"\ncheck = { kind = \"http\", expect_status = [\"-\", \"1-\", \"-1\", \"0x100\"] }\n",
        "[director]\nname = \"é\u{301}\"\n",
        "a = \"\u{7f}\"",
    ] {
        exercise(src);
    }
}
