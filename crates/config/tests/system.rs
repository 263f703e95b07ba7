//! What only the running system can tell, asked through an injected `System`: unknown
//! users are errors at the field that names them (or the table whose default applies).

use std::path::Path;

use vigil_config::System;

/// Knows `nobody` and `vigil-check` only.
struct Fake;

impl System for Fake {
    fn check_user(&self, name: &str) -> Result<(), String> {
        match name {
            "nobody" | "vigil-check" => Ok(()),
            _ => Err(format!("user \"{name}\" does not exist on this system")),
        }
    }
}

const FILE: &str = r#"[director]
name = "lb"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
check = { kind = "exec", command = ["/c"], user = "nbody" }
real_server = [{ address = "10.0.0.1" }, { address = "10.0.0.2", check = { kind = "exec", command = ["/c"] } }]
[vrrp.v1]
interface = "eth0"
vrid = 1
priority = 100
vips = ["192.0.2.100/24"]
track = [{ exec = ["/t"], user = "vigil-chek" }, { exec = ["/t"], user = "vigil-check" }]
"#;

#[test]
fn unknown_users_are_errors_at_their_field() {
    let d = vigil_config::parse_on(Path::new("c.toml"), FILE, &Fake).expect_err("invalid");
    let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
    assert_eq!(
        lines,
        [
            "c.toml:6:51: error: `virtual_server.web.check.user`: user \"nbody\" does not exist on this system",
            "c.toml:13:34: error: `vrrp.v1.track[0].user`: user \"vigil-chek\" does not exist on this system",
        ],
        "{d}"
    );
    // Without a system to ask, the file is valid: vigil-config never looks itself.
    assert!(vigil_config::parse(Path::new("c.toml"), FILE).is_ok());
}

#[test]
fn a_default_user_that_does_not_exist_points_at_its_table() {
    struct NoNobody;
    impl System for NoNobody {
        fn check_user(&self, name: &str) -> Result<(), String> {
            Err(format!("user \"{name}\" does not exist on this system"))
        }
    }
    let src = "[director]\nname = \"lb\"\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.100:80\"\ncheck = { kind = \"exec\", command = [\"/c\"] }\nreal_server = [{ address = \"10.0.0.1\" }]\n";
    let d = vigil_config::parse_on(Path::new("c.toml"), src, &NoNobody).expect_err("invalid");
    let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
    assert_eq!(
        lines,
        [
            "c.toml:6:9: error: `virtual_server.web.check.user` is not given and defaults to \"nobody\": user \"nobody\" does not exist on this system"
        ],
        "{d}"
    );
}
