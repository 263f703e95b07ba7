//! The BGP announcer on this kernel, without IPVS (issue 16): a real vigild in a lab
//! namespace with `announce = true`. Without IPVS nothing may be announced; the VIP is
//! still made local, routes of vigil's protocol left in the table (a crash's) are
//! removed at start, other protocols' routes are left alone, and a stop removes what
//! vigild wrote. With IPVS, the announcements themselves are tested in `kernel_bgp`.

use std::process::Stdio;
use std::time::Duration;

use vigil_testlab::{LabChild, NetnsLab, bin_path, require_root_or_skip, wait_for};
use vigil_tests::bgp_lab::frr_daemon_argv;
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

/// The example speaker configurations of conf/ (only their addresses replaced): a BIRD
/// router in front of a BIRD director and an FRR director merges their paths into one
/// ECMP route. Without the export settings they share (ORIGIN IGP, MED 0) the router
/// kept the two apart, as ORIGIN differed (docs/scale-out.md). No vigild and no IPVS:
/// each director's table 100 holds the VIP as vigild would write it.
#[test]
fn example_bird_and_frr_directors_merge_into_one_ecmp_route() {
    require_root_or_skip!();
    vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&["bird", "birdc"]));
    let frr = std::path::Path::new("/usr/lib/frr");
    if !frr.join("bgpd").exists() {
        vigil_testlab::skip_or_fail("FRR is not installed (/usr/lib/frr/bgpd)");
        return;
    }
    let lab = NetnsLab::up(&["r", "d1", "d2"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (r, d1, d2) = (lab.ip("r"), lab.ip("d1"), lab.ip("d2"));
    let vip = "198.18.91.1";
    for d in ["d1", "d2"] {
        lab.run(
            d,
            [
                "ip",
                "route",
                "add",
                &format!("{vip}/32"),
                "dev",
                "lo",
                "table",
                "100",
                "proto",
                "252",
            ],
        )
        .unwrap();
    }
    let example = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../conf")
            .join(name);
        std::fs::read_to_string(&path).unwrap()
    };
    // The examples' addresses: router 10.0.0.1, BIRD director 10.0.0.2, FRR 10.0.0.3.
    let readdress = |text: String| {
        text.replace("10.0.0.1", &r.to_string())
            .replace("10.0.0.2", &d1.to_string())
            .replace("10.0.0.3", &d2.to_string())
    };
    let mut children = Vec::new();
    let mut start = |host: &str, tag: &str, argv: &[&str]| {
        let log = std::fs::File::create(dir.path().join(format!("{tag}.log"))).unwrap();
        let mut cmd = lab.cmd(host, argv);
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        children.push(LabChild::spawn(&mut cmd).unwrap());
    };
    let bird = |host: &str, conf: &str| {
        let path = dir.path().join(format!("bird-{host}.conf"));
        std::fs::write(&path, conf).unwrap();
        let ctl = dir.path().join(format!("bird-{host}.ctl"));
        (path, ctl)
    };
    let (d1_conf, d1_ctl) = bird("d1", &readdress(example("bird-director.conf")));
    start(
        "d1",
        "bird-d1",
        &[
            "bird",
            "-f",
            "-c",
            d1_conf.to_str().unwrap(),
            "-s",
            d1_ctl.to_str().unwrap(),
        ],
    );
    // FRR: zebra takes `ip import-table`, bgpd the rest. Its daemons run as `frr`.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dir.path().join("frr");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
    let text = readdress(example("frr-director.conf"));
    let (zebra_lines, bgpd_lines): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|l| l.starts_with("ip import-table"));
    let (zebra, bgpd) = (run.join("zebra.conf"), run.join("bgpd.conf"));
    std::fs::write(&zebra, zebra_lines.join("\n") + "\n").unwrap();
    std::fs::write(&bgpd, bgpd_lines.join("\n") + "\n").unwrap();
    let zapi = run.join("zserv.api");
    let argv = frr_daemon_argv(frr, "zebra", &zebra, &run);
    start(
        "d2",
        "zebra",
        &argv.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        wait_for(Duration::from_secs(30), || zapi.exists()),
        "zebra did not start"
    );
    let argv = frr_daemon_argv(frr, "bgpd", &bgpd, &run);
    start(
        "d2",
        "bgpd",
        &argv.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    // The router last: it connects to both at once (its retry timer is the default).
    let (r_conf, r_ctl) = bird("r", &readdress(example("bird-router.conf")));
    start(
        "r",
        "bird-r",
        &[
            "bird",
            "-f",
            "-c",
            r_conf.to_str().unwrap(),
            "-s",
            r_ctl.to_str().unwrap(),
        ],
    );
    let route = || lab.run("r", ["ip", "route", "show", vip]).unwrap();
    let merged = wait_for(Duration::from_secs(60), || {
        let rt = route();
        rt.contains(&format!("via {d1}")) && rt.contains(&format!("via {d2}"))
    });
    let bird_view = || {
        lab.run(
            "r",
            [
                "birdc",
                "-s",
                r_ctl.to_str().unwrap(),
                "show",
                "route",
                "for",
                vip,
                "all",
            ],
        )
        .unwrap_or_default()
    };
    assert!(
        merged,
        "no ECMP route over both directors: {}\n{}\nbgpd: {}",
        route(),
        bird_view(),
        std::fs::read_to_string(dir.path().join("bgpd.log")).unwrap_or_default()
    );
    println!("router's route to the VIP:\n{}", route());
    drop(children);
}
