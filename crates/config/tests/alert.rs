//! `[[alert]]` webhooks: defaults, every option, and the errors at their place.

mod common;
use common::*;

use std::path::{Path, PathBuf};

const HEAD: &str = "[director]\nname = \"lb\"\n";

/// A file whose only `[[alert]]` (from line 3) has `body` as its fields.
fn with_alert(body: &str) -> String {
    format!("{HEAD}[[alert]]\n{body}")
}

#[test]
fn defaults() {
    let l = ok(&with_alert(
        "name = \"ops\"\nurl = \"https://am.example/hook\"\n",
    ));
    assert_eq!(
        l.config.alerts,
        [Alert {
            name: "ops".into(),
            url: "https://am.example/hook".into(),
            format: AlertFormat::Json,
            events: vec![],
            timeout: secs(5),
            retries: 3,
            backoff: ms(500),
            queue: 1000,
            auth: None,
            ca_file: None,
            tls_verify: true,
        }]
    );
    // No section: no webhooks.
    assert!(ok(HEAD).config.alerts.is_empty());
}

#[test]
fn every_option_is_read() {
    let l = ok(&with_alert(
        r#"name = "am"
url = "https://[::1]:9093/api"
format = "alertmanager"
events = ["health", "reload"]
timeout = "2s"
retries = 0
backoff = "1s"
queue = 10
basic_auth = { username = "vigil", password_file = "/etc/vigil/am.pass" }
ca_file = "/etc/vigil/ca.pem"
[[alert]]
name = "chat"
url = "http://127.0.0.1:8080/"
bearer_token_file = "/etc/vigil/token"
"#,
    ));
    let a = &l.config.alerts;
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].format, AlertFormat::Alertmanager);
    assert_eq!(a[0].events, ["health", "reload"]);
    assert_eq!(
        (a[0].timeout, a[0].retries, a[0].backoff),
        (secs(2), 0, secs(1))
    );
    assert_eq!(a[0].queue, 10);
    assert_eq!(
        a[0].auth,
        Some(AlertAuth::Basic {
            username: "vigil".into(),
            password_file: "/etc/vigil/am.pass".into()
        })
    );
    assert_eq!(a[0].ca_file, Some(PathBuf::from("/etc/vigil/ca.pem")));
    assert_eq!(
        a[1].auth,
        Some(AlertAuth::Bearer {
            token_file: "/etc/vigil/token".into()
        })
    );
    // Credentials over plain http are allowed, with a warning.
    assert_eq!(
        warnings(&with_alert(
            "name = \"x\"\nurl = \"http://h/\"\nbearer_token_file = \"/t\"\n"
        )),
        ["t.toml:3:1: warning: `alert[0]` sends credentials over plain http"]
    );
}

#[test]
fn errors_point_at_their_field() {
    assert_errors(
        &with_alert(
            r#"name = "bad name"
url = "https://u:p@am.example/"
format = "xml"
events = ["helth", "reload", "reload"]
timeout = "0s"
retries = -1
queue = 0
bearer_token_file = "token"
colour = "red"
"#,
        ),
        &[
            "t.toml:4:8: error: alert name \"bad name\" is not a valid name",
            "t.toml:5:7: error: `alert[0].url`: \"https://u:p@am.example/\" carries credentials",
            "t.toml:6:10: error: `alert[0].format`: unknown value \"xml\"",
            "t.toml:7:11: error: `alert[0].events[0]`: unknown event kind \"helth\"",
            "t.toml:7:30: error: `alert[0].events[2]`: \"reload\" is listed twice",
            "t.toml:8:11: error: `alert[0].timeout` must be from 10ms to 2m",
            "t.toml:9:11: error: `alert[0].retries` = -1 is out of range 0–100",
            "t.toml:10:9: error: `alert[0].queue` = 0 is out of range 1–1000000",
            "t.toml:11:21: error: `alert[0].bearer_token_file`: \"token\" must be an absolute path",
            "t.toml:12:1: error: unknown field `alert[0].colour`",
        ],
    );
    assert_error(
        &with_alert("name = \"a\"\n"),
        "t.toml:3:1: error: missing required field `alert[0].url`",
    );
    assert_error(
        &with_alert("name = \"a\"\nurl = \"ftp://x/\"\n"),
        "t.toml:5:7: error: `alert[0].url`: \"ftp://x/\" is not an http:// or https:// URL",
    );
    assert_error(
        &with_alert("name = \"a\"\nurl = \"http://x/\"\nca_file = \"/ca.pem\"\n"),
        "t.toml:6:11: error: `alert[0].ca_file` is for https URLs only",
    );
    assert_error(
        &with_alert(
            "name = \"a\"\nurl = \"https://x/\"\nbearer_token_file = \"/t\"\nbasic_auth = { username = \"u\", password_file = \"/p\" }\n",
        ),
        "t.toml:3:1: error: `alert[0]` has both `bearer_token_file` and `basic_auth`",
    );
    assert_error(
        &with_alert(
            "name = \"a\"\nurl = \"https://x/\"\nbasic_auth = { username = \"a:b\", password_file = \"/p\" }\n",
        ),
        "t.toml:6:27: error: `alert[0].basic_auth.username` must be non-empty, without ':' or control characters",
    );
    assert_error(
        &format!(
            "{HEAD}[[alert]]\nname = \"a\"\nurl = \"http://x/\"\n[[alert]]\nname = \"a\"\nurl = \"http://y/\"\n"
        ),
        "t.toml:7:8: error: alert name \"a\" is used twice",
    );
    assert_error(
        &format!("alert = 3\n{HEAD}"),
        "t.toml:1:9: error: `alert` must be an array, found an integer",
    );
}

#[test]
fn turning_tls_verification_off_is_warned_about() {
    let src = with_alert("name = \"a\"\nurl = \"https://x/\"\ntls_verify = false\n");
    assert!(!ok(&src).config.alerts[0].tls_verify);
    assert_eq!(
        warnings(&src),
        [
            "t.toml:6:14: warning: `alert[0].tls_verify` = false: any certificate is accepted, so anyone on the path can read or forge alerts"
        ]
    );
}

/// Knows one readable secret file.
struct Files;

impl System for Files {
    fn check_user(&self, _: &str) -> Result<(), String> {
        Ok(())
    }

    fn check_file(&self, path: &Path, what: FileUse) -> Result<(), String> {
        match (path.to_str(), what) {
            (Some("/etc/vigil/token"), FileUse::Secret) => Ok(()),
            _ => Err("cannot read: No such file or directory (os error 2)".into()),
        }
    }
}

#[test]
fn unreadable_files_are_errors_at_the_field_that_names_them() {
    let src = with_alert(
        "name = \"a\"\nurl = \"https://x/\"\nbasic_auth = { username = \"u\", password_file = \"/etc/vigil/pw\" }\nca_file = \"/etc/vigil/ca.pem\"\n[[alert]]\nname = \"b\"\nurl = \"https://x/\"\nbearer_token_file = \"/etc/vigil/token\"\n",
    );
    let d = parse_on(Path::new(FILE), &src, &Files).expect_err("invalid");
    let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
    assert_eq!(
        lines,
        [
            "t.toml:6:48: error: `alert[0].basic_auth.password_file`: /etc/vigil/pw: cannot read: No such file or directory (os error 2)",
            "t.toml:7:11: error: `alert[0].ca_file`: /etc/vigil/ca.pem: cannot read: No such file or directory (os error 2)",
        ]
    );
    // Without a system to ask, nothing is read.
    assert!(parse(Path::new(FILE), &src).is_ok());
}
