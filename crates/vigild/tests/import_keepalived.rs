//! `vigild import-keepalived` as operators run it: the real binary on real files, and its
//! output through the real `vigild check-config`.

use std::path::Path;
use std::process::{Command, Output};

fn vigild(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigild"))
        .args(args)
        .output()
        .expect("run vigild")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const MAIN: &str = "\
global_defs {
@lb-a router_id lb-a
@lb-b router_id lb-b
}
include conf.d/*.conf
";

const INSTANCE: &str = "\
vrrp_script chk {
    script \"../scripts/ok.sh now\"
}
vrrp_instance VI_1 {
    state MASTER
    interface eth0
    track_script {
        chk
    }
    virtual_router_id 51
@lb-a priority 150
@lb-b priority 100
    virtual_ipaddress {
        192.0.2.100/24
    }
}
virtual_server 192.0.2.100 80 {
    delay_loop 5
    lb_algo wrr
    lb_kind DR
    real_server 192.0.2.11 80 {
        weight 2
        TCP_CHECK {
            connect_timeout 2
        }
    }
}
";

fn write(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, body).expect("write");
}

#[test]
fn imports_a_keepalived_conf_that_check_config_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "keepalived.conf", MAIN);
    write(dir.path(), "conf.d/vi1.conf", INSTANCE);
    let conf = dir.path().join("keepalived.conf");
    let out = dir.path().join("cluster.toml");

    let run = vigild(&[
        "import-keepalived",
        conf.to_str().expect("utf-8 path"),
        "--config-id",
        "lb-b",
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "import failed: {stderr}");
    assert!(run.stdout.is_empty(), "with -o nothing goes to stdout");
    assert!(
        stderr.contains("conf.d/vi1.conf:2: warning: script: \"../scripts/ok.sh\" written as"),
        "{stderr}"
    );
    let toml = std::fs::read_to_string(&out).expect("cluster file written");
    assert!(toml.contains("name = \"lb-b\""), "{toml}");
    assert!(
        !toml.contains("priority = 150"),
        "@lb-a lines are skipped: {toml}"
    );
    // A relative script path is read from the including file's directory, as keepalived.
    let script = dir
        .path()
        .canonicalize()
        .expect("tempdir")
        .join("scripts/ok.sh");
    assert!(
        toml.contains(&format!("exec = [\"{}\", \"now\"]", script.display())),
        "{toml}"
    );

    let check = vigild(&["check-config", out.to_str().expect("utf-8 path")]);
    assert!(
        check.status.success(),
        "check-config refused the import: {}",
        text(&check.stderr)
    );

    // Without -o the cluster file goes to stdout.
    let run = vigild(&[
        "import-keepalived",
        conf.to_str().expect("utf-8 path"),
        "-i",
        "lb-a",
    ]);
    assert!(run.status.success(), "{}", text(&run.stderr));
    assert!(text(&run.stdout).contains("priority = 150"));
}

#[test]
fn unreadable_input_exits_1_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "keepalived.conf",
        "vrrp_instance VI_1 {\n    interface eth0\n",
    );
    let conf = dir.path().join("keepalived.conf");
    let run = vigild(&["import-keepalived", conf.to_str().expect("utf-8 path")]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = text(&run.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:1: error: this `{{` is never closed",
            conf.display()
        )),
        "{stderr}"
    );
    assert!(run.stdout.is_empty());
}
