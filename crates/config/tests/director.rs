//! `[director]`: identity and operator endpoints.

mod common;
use common::*;

#[test]
fn defaults_apply_to_a_minimal_file() {
    let l = ok("[director]\nname = \"lb-a\"\n");
    let d = &l.config.director;
    assert_eq!(d.name, "lb-a");
    assert_eq!(d.status_socket.to_str(), Some(DEFAULT_STATUS_SOCKET));
    assert_eq!(d.status_socket.to_str(), Some("/run/vigil/vigil.sock"));
    assert_eq!(d.state_file.to_str(), Some(DEFAULT_STATE_FILE));
    assert_eq!(d.state_file.to_str(), Some("/var/lib/vigil/state.json"));
    assert_eq!(d.status_socket_group, None);
    assert_eq!(d.status_socket_admin_group, None);
    assert_eq!(d.metrics_listen, None);
    assert!(l.config.vrrp.is_empty());
    assert!(l.config.virtual_servers.is_empty());
    assert_eq!(l.config.ipvs_sync, None);
    assert!(l.warnings.is_empty());
}

#[test]
fn every_field_is_read() {
    let l = ok(r#"[director]
name = "lb-a"
status_socket = "/run/vigil/a.sock"
status_socket_group = "vigil"
status_socket_admin_group = "vigil-admin"
metrics_listen = "[::1]:9333"
state_file = "/var/lib/vigil/a.json"
"#);
    let d = &l.config.director;
    assert_eq!(d.status_socket.to_str(), Some("/run/vigil/a.sock"));
    assert_eq!(d.status_socket_group.as_deref(), Some("vigil"));
    assert_eq!(d.status_socket_admin_group.as_deref(), Some("vigil-admin"));
    assert_eq!(d.metrics_listen, Some(sa("[::1]:9333")));
    assert_eq!(d.state_file.to_str(), Some("/var/lib/vigil/a.json"));
}

#[test]
fn director_section_is_required() {
    let help = assert_error(
        "[vrrp]\n",
        "t.toml:1:1: error: missing required field `director`",
    );
    assert_eq!(help, None);
}

#[test]
fn director_must_be_a_table() {
    assert_error(
        "director = \"lb\"\n",
        "t.toml:1:12: error: `director` must be a table, found a string",
    );
}

#[test]
fn name_is_required_and_reported_at_the_table_header() {
    assert_error(
        "# cluster\n[director]\nstate_file = \"/x\"\n",
        "t.toml:2:1: error: missing required field `director.name`",
    );
}

#[test]
fn name_must_be_a_string() {
    assert_error(
        "[director]\nname = 12\n",
        "t.toml:2:8: error: `director.name` must be a string, found an integer",
    );
}

#[test]
fn names_are_plain() {
    for (name, col) in [("\"lb a\"", 8), ("\"\"", 8), ("\"lb/a\"", 8), ("\"é\"", 8)] {
        let src = format!("[director]\nname = {name}\n");
        let inner = name.trim_matches('"');
        let help = assert_error(
            &src,
            &format!("t.toml:2:{col}: error: director name \"{inner}\" is not a valid name"),
        );
        assert_eq!(
            help.as_deref(),
            Some("use 1 to 64 letters, digits, '-', '_' or '.'")
        );
    }
    // 64 characters are fine, 65 are not.
    ok(&format!("[director]\nname = \"{}\"\n", "a".repeat(64)));
    let long = "a".repeat(65);
    assert_error(
        &format!("[director]\nname = \"{long}\"\n"),
        &format!("t.toml:2:8: error: director name \"{long}\" is not a valid name"),
    );
    ok("[director]\nname = \"Lb-1_a.example\"\n");
}

#[test]
fn status_socket_must_be_absolute() {
    assert_error(
        "[director]\nname = \"lb\"\nstatus_socket = \"run/vigil.sock\"\n",
        "t.toml:3:17: error: `director.status_socket`: \"run/vigil.sock\" must be an absolute path",
    );
}

#[test]
fn status_socket_fits_sun_path() {
    let fits = format!("/{}", "s".repeat(106));
    ok(&format!(
        "[director]\nname = \"lb\"\nstatus_socket = \"{fits}\"\n"
    ));
    let long = format!("/{}", "s".repeat(107));
    assert_error(
        &format!("[director]\nname = \"lb\"\nstatus_socket = \"{long}\"\n"),
        "t.toml:3:17: error: `director.status_socket` is longer than the 107 bytes a Unix socket path may have",
    );
}

#[test]
fn state_file_must_be_absolute() {
    assert_error(
        "[director]\nname = \"lb\"\nstate_file = \"state.json\"\n",
        "t.toml:3:14: error: `director.state_file`: \"state.json\" must be an absolute path",
    );
}

#[test]
fn metrics_listen_needs_ip_and_port() {
    let src = "[director]\nname = \"lb\"\nmetrics_listen = \"127.0.0.1\"\n";
    let help = assert_error(
        src,
        "t.toml:3:18: error: `director.metrics_listen`: \"127.0.0.1\" has no port",
    );
    assert_eq!(
        help.as_deref(),
        Some("write IP:PORT, e.g. \"192.0.2.100:80\" or \"[2001:db8::100]:80\"")
    );
    assert_error(
        "[director]\nname = \"lb\"\nmetrics_listen = \"localhost:9333\"\n",
        "t.toml:3:18: error: `director.metrics_listen`: \"localhost:9333\" is not an address with a port",
    );
    assert_error(
        "[director]\nname = \"lb\"\nmetrics_listen = \"127.0.0.1:0\"\n",
        "t.toml:3:18: error: `director.metrics_listen`: port 0 is not a valid port",
    );
    assert_error(
        "[director]\nname = \"lb\"\nmetrics_listen = 9333\n",
        "t.toml:3:18: error: `director.metrics_listen` must be a string, found an integer",
    );
}

#[test]
fn unknown_fields_are_named_with_a_suggestion() {
    let src = "[director]\nname = \"lb\"\nstatus_sock = \"/run/x\"\n";
    let help = assert_error(
        src,
        "t.toml:3:1: error: unknown field `director.status_sock`",
    );
    assert_eq!(help.as_deref(), Some("did you mean `status_socket`?"));

    let src = "[director]\nname = \"lb\"\ncolour = \"blue\"\n";
    let help = assert_error(src, "t.toml:3:1: error: unknown field `director.colour`");
    assert_eq!(
        help.as_deref(),
        Some(
            "known fields here: name, status_socket, status_socket_group, status_socket_admin_group, metrics_listen, state_file, notify_fifo, vrrp_notify_fifo, lvs_notify_fifo, datapath, nftables_masquerade, nftables_flush_on_failure"
        )
    );
}

#[test]
fn unknown_top_level_sections_are_named_with_a_suggestion() {
    let src = "[director]\nname = \"lb\"\n[[virtual_servers]]\nname = \"x\"\n";
    let help = assert_error(src, "t.toml:3:3: error: unknown field `virtual_servers`");
    assert_eq!(help.as_deref(), Some("did you mean `virtual_server`?"));

    let src = "[director]\nname = \"lb\"\n[keepalived]\n";
    let help = assert_error(src, "t.toml:3:2: error: unknown field `keepalived`");
    assert_eq!(
        help.as_deref(),
        Some(
            "known fields here: director, vrrp, ipvs_sync, sync_group, ipvs_timeouts, virtual_server, alert, announce"
        )
    );
}

#[test]
fn all_director_errors_are_reported_together() {
    assert_errors(
        r#"[director]
name = "a b"
status_socket = "x.sock"
metrics_listen = "1.2.3.4"
state_file = "s.json"
"#,
        &[
            "t.toml:2:8: error: director name \"a b\" is not a valid name",
            "t.toml:3:17: error: `director.status_socket`: \"x.sock\" must be an absolute path",
            "t.toml:4:18: error: `director.metrics_listen`: \"1.2.3.4\" has no port",
            "t.toml:5:14: error: `director.state_file`: \"s.json\" must be an absolute path",
        ],
    );
}
