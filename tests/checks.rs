//! keepalived's checker semantics through the real vigild and vigilctl: several checks
//! per real server (all must pass), a file check (FILE_CHECK) following its file, and an
//! exec check whose exit status sets the weight (`misc_dynamic`). The checks run real
//! programs and read real files; the daemon runs in a network namespace of its own.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vigil_testlab::wait_for;
use vigil_tests::{Daemon, minimal_config, output_text};

/// The `services --json` view of real server 0 of virtual server 0, through vigilctl.
fn real_server(d: &Daemon) -> Value {
    let out = d.ctl(&["services", "--json"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    v["virtual_servers"][0]["real_servers"][0].clone()
}

/// Waits until `want` holds of the real server, failing with the last view.
fn wait_until(d: &Daemon, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let ok = wait_for(Duration::from_secs(20), || {
        last = real_server(d);
        want(&last)
    });
    assert!(ok, "{what}: never; last seen:\n{last:#}");
    last
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn several_checks_a_file_check_and_a_dynamic_exec_weight() {
    let d = Daemon::start_with(|dir| {
        let status = dir.join("status");
        write(&status, "0");
        format!(
            r#"{}
[[virtual_server]]
name = "web"
address = "192.0.2.7:80"
scheduler = "wrr"
real_server = [{{ address = "10.0.0.1", weight = 5, check = [
  {{ kind = "exec", command = ["/bin/sh", "-c", "exit $(cat {})"], user = "root", dynamic_weight = true, interval = "1s", timeout = "900ms", rise = 1, fall = 1, start_spread = "0s" }},
  {{ kind = "file", path = "{}", interval = "30s" }},
] }}]
"#,
            minimal_config(dir, "checks"),
            status.display(),
            dir.join("down").display(),
        )
    });
    let status = d.dir.path().join("status");
    let down = d.dir.path().join("down");

    // Exit 0 and no file (reads 0): up at the configured weight.
    let rs = wait_until(&d, "up", |rs| rs["health"] == "up");
    assert_eq!(rs["dynamic_weight"], 5, "{rs:#}");
    let checks = rs["checks"].as_array().expect("checks").clone();
    assert_eq!(checks.len(), 2, "{rs:#}");
    assert_eq!(checks[0]["kind"], "exec");
    assert_eq!(checks[1]["kind"], "file");
    assert_eq!(checks[1]["health"], "up", "{rs:#}");
    assert_eq!(
        checks[1]["reason"],
        format!("{} reads 0", down.display()),
        "{rs:#}"
    );

    // keepalived's misc_dynamic: exit status 2-255 sets the weight to the status - 2.
    write(&status, "22");
    let rs = wait_until(&d, "weight 20", |rs| rs["dynamic_weight"] == 20);
    assert_eq!(rs["health"], "up");

    // The file check goes down on its own (a 30 s poll: inotify saw the write), and with
    // it the real server, whatever the other check says.
    write(&down, "1\n");
    let rs = wait_until(&d, "down by the file", |rs| rs["health"] == "down");
    assert_eq!(rs["checks"][1]["health"], "down", "{rs:#}");
    assert_eq!(rs["checks"][0]["health"], "up", "{rs:#}");
    assert_eq!(
        rs["reason"],
        format!("{} reads 1 (non-zero means down)", down.display()),
        "{rs:#}"
    );
    // The failure's cause, on the check that failed and on the server; the exec check
    // has not failed.
    assert_eq!(rs["checks"][1]["last_failure"], "file_value", "{rs:#}");
    assert_eq!(rs["checks"][0]["last_failure"], Value::Null, "{rs:#}");
    assert_eq!(rs["last_failure"], "file_value", "{rs:#}");
    // vigilctl's table names both checks.
    let text = String::from_utf8_lossy(&d.ctl(&["services"]).stdout).to_string();
    assert!(text.contains("exec /bin/sh"), "{text}");
    assert!(text.contains(&format!("file {}", down.display())), "{text}");

    // Removed: reads 0 again, up with the weight the exec check last set.
    std::fs::remove_file(&down).expect("rm");
    let rs = wait_until(&d, "up again", |rs| rs["health"] == "up");
    assert_eq!(rs["dynamic_weight"], 20, "{rs:#}");
    // The last failure stays after the check passes again.
    assert_eq!(rs["checks"][1]["last_failure"], "file_value", "{rs:#}");

    // Exit 1 fails; exit 0 afterwards passes and keeps the weight.
    write(&status, "1");
    wait_until(&d, "down by exit 1", |rs| rs["health"] == "down");
    write(&status, "0");
    let rs = wait_until(&d, "up by exit 0", |rs| rs["health"] == "up");
    assert_eq!(rs["dynamic_weight"], 20, "{rs:#}");
}

/// A reload that gives an up real server a second check (a file check): it keeps its
/// health meanwhile, and the new file is watched from then on.
#[test]
fn a_reload_adds_a_file_check_to_an_up_server() {
    let file_check = |dir: &Path| {
        format!(
            ", {{ kind = \"file\", path = \"{}\", interval = \"30s\" }}",
            dir.join("down").display()
        )
    };
    let config = |dir: &Path, extra: &str| {
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.7:80\"\nreal_server = [{{ address = \"10.0.0.1\", check = [{{ kind = \"exec\", command = [\"/bin/true\"], user = \"root\", interval = \"1s\", timeout = \"900ms\", rise = 1, start_spread = \"0s\" }}{extra}] }}]\n",
            minimal_config(dir, "checks-reload"),
        )
    };
    let d = Daemon::start_with(|dir| config(dir, ""));
    wait_until(&d, "up", |rs| rs["health"] == "up");
    let dir = d.dir.path().to_path_buf();
    d.write_config(&config(&dir, &file_check(&dir)));
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let rs = real_server(&d);
    assert_eq!(rs["health"], "up", "kept through the reload: {rs:#}");
    assert_eq!(rs["checks"].as_array().map(Vec::len), Some(2), "{rs:#}");
    // The new check reads no file (0): still up; then its file says down.
    wait_until(&d, "the file check has a verdict", |rs| {
        rs["checks"][1]["health"] == "up"
    });
    write(&dir.join("down"), "1");
    let rs = wait_until(&d, "down by the new file check", |rs| {
        rs["health"] == "down"
    });
    assert_eq!(rs["checks"][1]["health"], "down", "{rs:#}");
}
