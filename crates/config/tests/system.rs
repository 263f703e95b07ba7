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

/// Refuses what the daemon's vigil-nft would (stand-in reasons), and says `auto` is
/// nftables here.
struct NoIpvs;

impl System for NoIpvs {
    fn check_user(&self, _name: &str) -> Result<(), String> {
        Ok(())
    }

    fn effective_datapath(
        &self,
        configured: vigil_config::Datapath,
    ) -> Option<(vigil_config::Datapath, String)> {
        Some(match configured {
            vigil_config::Datapath::Ipvs => (configured, "datapath = \"ipvs\"".into()),
            _ => (vigil_config::Datapath::Nftables, "no IPVS here".into()),
        })
    }

    fn nftables_unsupported(
        &self,
        vs: &vigil_config::VirtualServer,
    ) -> Vec<(vigil_config::DatapathField, String)> {
        let mut out = Vec::new();
        if vs.scheduler != "wrr" {
            out.push((
                vigil_config::DatapathField::Scheduler,
                "no such scheduler".into(),
            ));
        }
        if vs.persistence.is_some() {
            out.push((
                vigil_config::DatapathField::Persistence,
                "no persistence".into(),
            ));
        }
        for rs in &vs.real_servers {
            if rs.forwarding != vigil_config::Forwarding::Nat {
                out.push((
                    vigil_config::DatapathField::RealServer(rs.address),
                    "NAT only".into(),
                ));
            }
        }
        out
    }
}

fn datapath_file(datapath: &str) -> String {
    format!(
        r#"[director]
name = "lb"
datapath = "{datapath}"
[ipvs_timeouts]
tcp = "2h"
[[virtual_server]]
name = "web"
address = "192.0.2.100:80"
persistence = "5m"
real_server = [{{ address = "10.0.0.1" }}, {{ address = "10.0.0.2", forwarding = "dr" }}]
[[virtual_server]]
name = "ok"
address = "192.0.2.100:81"
scheduler = "wrr"
real_server = [{{ address = "10.0.0.1" }}]
"#
    )
}

#[test]
fn what_the_nftables_datapath_cannot_serve_is_an_error_at_its_field() {
    for datapath in ["nftables", "auto"] {
        let src = datapath_file(datapath);
        let d = vigil_config::parse_on(Path::new("c.toml"), &src, &NoIpvs).expect_err("invalid");
        let why = "no IPVS here";
        let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
        assert_eq!(
            lines,
            [
                format!(
                    "c.toml:6:1: error: `virtual_server.web.scheduler` is not given and defaults to \"wlc\": no such scheduler ({why})"
                ),
                format!(
                    "c.toml:9:15: error: `virtual_server.web.persistence`: no persistence ({why})"
                ),
                format!(
                    "c.toml:10:54: error: `virtual_server.web.real_server[1]`: NAT only ({why})"
                ),
            ],
            "{d}"
        );
        let warnings: Vec<String> = d.warnings().map(|e| d.one_line(e)).collect();
        assert_eq!(
            warnings,
            [format!(
                "c.toml:4:1: warning: `[ipvs_timeouts]` is for IPVS and is ignored by the nftables datapath ({why})"
            )]
        );
    }
    // IPVS serves it all; without a system to ask nothing is checked.
    assert!(vigil_config::parse_on(Path::new("c.toml"), &datapath_file("ipvs"), &NoIpvs).is_ok());
    assert!(vigil_config::parse(Path::new("c.toml"), &datapath_file("nftables")).is_ok());
    let l = vigil_config::parse(Path::new("c.toml"), &datapath_file("ipvs")).unwrap();
    assert_eq!(l.config.director.datapath, vigil_config::Datapath::Ipvs);
}

#[test]
fn datapath_defaults_to_ipvs_and_takes_only_its_names() {
    let l = vigil_config::parse(Path::new("c.toml"), "[director]\nname = \"lb\"\n").unwrap();
    assert_eq!(l.config.director.datapath, vigil_config::Datapath::Ipvs);
    let d = vigil_config::parse(
        Path::new("c.toml"),
        "[director]\nname = \"lb\"\ndatapath = \"nft\"\n",
    )
    .expect_err("invalid");
    let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
    assert_eq!(
        lines,
        ["c.toml:3:12: error: `director.datapath`: unknown value \"nft\""],
        "{d}"
    );
}

#[test]
fn nftables_options_default_off_take_booleans_and_are_warned_under_ipvs() {
    let l = vigil_config::parse(Path::new("c.toml"), "[director]\nname = \"lb\"\n").unwrap();
    assert!(!l.config.director.nftables_masquerade);
    assert!(!l.config.director.nftables_flush_on_failure);
    let on = "[director]\nname = \"lb\"\ndatapath = \"nftables\"\nnftables_masquerade = true\nnftables_flush_on_failure = true\n";
    let l = vigil_config::parse_on(Path::new("c.toml"), on, &NoIpvs).unwrap();
    assert!(l.config.director.nftables_masquerade);
    assert!(l.config.director.nftables_flush_on_failure);
    assert_eq!(l.warnings.warnings().count(), 0);
    let d = vigil_config::parse(
        Path::new("c.toml"),
        "[director]\nname = \"lb\"\nnftables_masquerade = \"yes\"\n",
    )
    .expect_err("invalid");
    let lines: Vec<String> = d.errors().map(|e| d.one_line(e)).collect();
    assert_eq!(
        lines,
        [
            "c.toml:3:23: error: `director.nftables_masquerade` must be true or false, found a string"
        ],
        "{d}"
    );
    // Set while the datapath is IPVS: ignored, with a warning at the key.
    let ipvs = on.replace("\"nftables\"", "\"ipvs\"");
    let l = vigil_config::parse_on(Path::new("c.toml"), &ipvs, &NoIpvs).unwrap();
    let warnings: Vec<String> = l
        .warnings
        .warnings()
        .map(|w| l.warnings.one_line(w))
        .collect();
    assert_eq!(
        warnings,
        [
            "c.toml:4:23: warning: `director.nftables_masquerade` is for nftables and is ignored by the IPVS datapath (datapath = \"ipvs\")",
            "c.toml:5:29: warning: `director.nftables_flush_on_failure` is for nftables and is ignored by the IPVS datapath (datapath = \"ipvs\")",
        ]
    );
}
