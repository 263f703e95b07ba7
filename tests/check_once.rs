//! `vigild check-once`: every check of a file, once, against real servers on loopback.

use std::net::TcpListener;
use std::process::Command;

use serde_json::Value;
use vigil_testlab::bin_path;
use vigil_tests::output_text;

#[test]
fn check_once_prints_a_verdict_per_real_server_and_exits_0() {
    // One real server that accepts, one whose port is closed.
    let up = TcpListener::bind("127.0.0.1:0").unwrap();
    let up_port = up.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!(
            r#"[director]
name = "once"

[[virtual_server]]
name = "web"
address = "127.0.0.200:80"
check = {{ kind = "tcp", timeout = "1s" }}
real_server = [
  {{ address = "127.0.0.1:{up_port}" }},
  {{ address = "127.0.0.1:{closed_port}" }},
  {{ address = "127.0.0.1:1", check = false }},
]
"#
        ),
    )
    .unwrap();

    let out = Command::new(bin_path("vigild"))
        .arg("check-once")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    let header = text.lines().next().unwrap();
    for col in [
        "VIRTUAL SERVER",
        "REAL SERVER",
        "CHECK",
        "VERDICT",
        "LATENCY",
        "REASON",
    ] {
        assert!(header.contains(col), "{text}");
    }
    let line = |port: u16| {
        text.lines()
            .find(|l| l.contains(&format!("127.0.0.1:{port} ")))
            .unwrap_or_else(|| panic!("no line for port {port}:\n{text}"))
    };
    assert!(line(up_port).contains(" pass "), "{text}");
    let failed = line(closed_port);
    assert!(failed.contains(" fail "), "{text}");
    assert!(
        failed.contains(&format!("connect to 127.0.0.1:{closed_port} refused")),
        "{text}"
    );
    assert!(
        text.contains("2 checks: 1 pass, 1 fail (1 real servers have no check and count as up)"),
        "{text}"
    );

    let out = Command::new(bin_path("vigild"))
        .args(["check-once", "--json"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let results = v.as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["passed"], true);
    assert_eq!(results[0]["cause"], Value::Null);
    assert_eq!(results[1]["passed"], false);
    assert_eq!(results[1]["cause"], "refused");
    drop(up);
}

#[test]
fn check_once_on_an_invalid_file_exits_1_with_the_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[director]\nname = \"x\"\n[[virtual_server]]\nname = \"v\"\naddress = \"127.0.0.1:80\"\ncheck = { kind = \"tpc\" }\n").unwrap();
    let out = Command::new(bin_path("vigild"))
        .arg("check-once")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("c.toml:6:18: error: `virtual_server.v.check.kind`: unknown value \"tpc\""),
        "{err}"
    );
    assert!(err.contains("did you mean \"tcp\"?"), "{err}");
}
