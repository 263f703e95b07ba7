//! The BGP announcer on this kernel, without IPVS (issue 16): a real vigild in a lab
//! namespace with `announce = true`. Without IPVS nothing may be announced; the VIP is
//! still made local, routes of vigil's protocol left in the table (a crash's) are
//! removed at start, other protocols' routes are left alone, and a stop removes what
//! vigild wrote. With IPVS, the announcements themselves are tested in `kernel_bgp`.

use std::process::Stdio;
use std::time::Duration;

use vigil_testlab::{LabChild, NetnsLab, bin_path, require_root_or_skip, wait_for};
use vigil_tests::vigilctl;

#[test]
fn leftovers_go_and_nothing_is_announced_without_a_datapath() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["d1"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (vip, leftover, theirs) = ("198.18.90.1", "198.18.90.9", "198.18.90.8");
    lab.run(
        "d1",
        [
            "sh",
            "-ec",
            &format!(
                "ip route add {leftover}/32 dev lo table 100 proto 252
                 ip route add {theirs}/32 dev lo table 100 proto static"
            ),
        ],
    )
    .unwrap();
    let socket = dir.path().join("d1.sock");
    let conf = dir.path().join("d1.toml");
    std::fs::write(
        &conf,
        format!(
            r#"[director]
name = "d1"
status_socket = "{}"
state_file = "{}"

[announce]
table = 100
withdraw_delay = "1s"

[[virtual_server]]
name = "web"
address = "{vip}:80"
forwarding = "dr"
announce = true
real_server = [{{ address = "10.0.0.11:80" }}]
"#,
            socket.display(),
            dir.path().join("state.json").display()
        ),
    )
    .unwrap();
    let mut cmd = lab.cmd(
        "d1",
        [
            bin_path("vigild").to_str().unwrap(),
            "--config",
            conf.to_str().unwrap(),
        ],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut vigild = LabChild::spawn(&mut cmd).unwrap();
    let route = |table: &str| {
        lab.run("d1", ["ip", "route", "show", "table", table])
            .unwrap()
    };
    assert!(
        wait_for(Duration::from_secs(30), || !route("100").contains(leftover)),
        "the leftover route stayed: {}",
        route("100")
    );
    assert!(route("100").contains(theirs), "{}", route("100"));
    assert!(
        wait_for(Duration::from_secs(10), || route("local").contains(vip)),
        "no local route for the VIP: {}",
        route("local")
    );
    let out = vigilctl(&socket, &["services", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let a = &v["virtual_servers"][0]["announce"];
    if v["ipvs"]["available"] == false {
        assert_eq!(a["announced"], false, "{a}");
        assert!(
            a["reason"]
                .as_str()
                .unwrap()
                .starts_with("datapath not programmed"),
            "{a}"
        );
        assert!(!route("100").contains(vip), "{}", route("100"));
        let text = vigilctl(&socket, &["services"]);
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(
            text.contains("WITHDRAWN: datapath not programmed"),
            "{text}"
        );
    }
    vigild.signal(libc::SIGTERM).unwrap();
    assert!(
        vigild
            .wait_timeout(Duration::from_secs(20))
            .unwrap()
            .is_some()
    );
    assert!(!route("local").contains(vip), "{}", route("local"));
    assert!(!route("100").contains(vip), "{}", route("100"));
    assert!(route("100").contains(theirs), "{}", route("100"));
}
