//! keepalived's tracking in a netns lab, with real files, processes and scripts: a tracked
//! file's number times its weight moves the priority seen in adverts (and is compared with
//! keepalived's own track_file on the same contents), a process quorum with its delays,
//! and a program's rise/fall with `reverse` (keepalived.conf(5): "Track files", "VRRP
//! track processes", "VRRP script(s)").

// Helpers outside #[test] functions unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

#[path = "vrrp_support.rs"]
mod vrrp_support;

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use vigil_testlab::{NetnsLab, require_root_or_skip, wait_for};
use vrrp_support::*;

fn lab(hosts: &[&str]) -> (NetnsLab, tempfile::TempDir) {
    (NetnsLab::up(hosts).unwrap(), tempfile::tempdir().unwrap())
}

fn web(vrid: u8, priority: u8, vip: &str, extra: &str) -> String {
    instance(
        "web",
        vrid,
        priority,
        "100ms",
        &[format!("{vip}/24")],
        extra,
    )
}

fn priority(v: &Vigild) -> u64 {
    v.instance("web").unwrap()["effective_priority"]
        .as_u64()
        .unwrap_or(0)
}

fn expect_priority(v: &Vigild, want: u64) {
    assert!(
        wait_for(SETTLE, || priority(v) == want),
        "effective priority {} (wanted {want}):\n{}",
        priority(v),
        v.log_text()
    );
}

/// Replaces `path` by a rename, as tools that update such files do.
fn write_atomic(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The priority `src` advertises for `vrid` once it is `want`, or the last one seen.
fn advertised(lab: &NetnsLab, src: Ipv4Addr, vrid: u8, want: u8) -> Option<u8> {
    let mut last = None;
    wait_for(SETTLE, || {
        let seen = lab
            .run_in("client", move || {
                capture_adverts(vrid, Duration::from_millis(400))
            })
            .unwrap();
        last = seen
            .iter()
            .rev()
            .find(|a| a.source == src)
            .map(|a| a.priority);
        last == Some(want)
    });
    last
}

/// The comparison tests run vigil on lb1 as master of VRID 61 and keepalived on lb2 as
/// master of VRID 62, both at priority 100 and tracking alike: vigil's `web` instance
/// with `track`.
fn start_vigil(lab: &NetnsLab, dir: &Path, track: &str) -> Vigild {
    Vigild::start(
        lab,
        dir,
        "lb1",
        &web(61, 100, &lab.subnet_addr(101).to_string(), track),
    )
}

/// keepalived's side of the comparison: `globals` in global_defs, `defs` (the tracked
/// thing) before the instance and `track` (what the instance tracks) in it.
fn keepalived_conf(lab: &NetnsLab, globals: &str, defs: &str, track: &str) -> String {
    format!(
        "global_defs {{\n  router_id lb2\n  vrrp_version 3\n{globals}}}\n{defs}\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 62\n  priority 100\n  advert_int 0.1\n  \
         {track}  virtual_ipaddress {{\n    {}/24 dev eth0\n  }}\n}}\n",
        lab.subnet_addr(102)
    )
}

/// The priorities keepalived and vigil advertise once they are `want`, or their last.
fn both_advertise(lab: &NetnsLab, want: u8) -> (Option<u8>, Option<u8>) {
    (
        advertised(lab, lab.ip("lb2"), 62, want),
        advertised(lab, lab.ip("lb1"), 61, want),
    )
}

/// A tracked file's number times the weight lowers the master below its backup, which
/// preempts (RFC 5798 §6.4.2); the number is read again on every change (written in place
/// or replaced by a rename), a removed file reads 0, and below -253 is a fault.
#[test]
fn a_tracked_file_moves_the_priority_and_the_vip() {
    require_root_or_skip!();
    let (lab, dir) = lab(&["lb1", "lb2", "client"]);
    let vip = lab.subnet_addr(100).to_string();
    let file = dir.path().join("prio");
    let track = format!(
        "track = [{{ file = \"{}\", weight = -10 }}]",
        file.display()
    );
    let lb2 = Vigild::start(&lab, dir.path(), "lb2", &web(51, 100, &vip, ""));
    let lb1 = Vigild::start(&lab, dir.path(), "lb1", &web(51, 150, &vip, &track));
    lb1.expect_state("web", "master", SETTLE);
    lb2.expect_state("web", "backup", SETTLE);
    assert_eq!(priority(&lb1), 150, "a missing file reads 0");

    std::fs::write(&file, "6\n").unwrap();
    lb2.expect_state("web", "master", SETTLE);
    expect_priority(&lb1, 90);
    assert_eq!(advertised(&lab, lab.ip("lb2"), 51, 100), Some(100));
    expect_addr_only_on(&lab, &vip, "lb2", &["lb1", "lb2"]);

    write_atomic(&file, "2");
    lb1.expect_state("web", "master", SETTLE);
    expect_priority(&lb1, 130);
    assert_eq!(advertised(&lab, lab.ip("lb1"), 51, 130), Some(130));

    std::fs::remove_file(&file).unwrap();
    expect_priority(&lb1, 150);

    // 30 × -10 = -300, below -253: a fault (keepalived.conf(5), "Track files").
    std::fs::write(&file, "30").unwrap();
    lb1.expect_state("web", "fault", SETTLE);
    lb2.expect_state("web", "master", SETTLE);
    std::fs::write(&file, "0").unwrap();
    lb1.expect_state("web", "master", SETTLE);
}

/// vigil and keepalived 2.2 (each master of its own VRID) track files with the same
/// weight; for the same contents (decimal, hex, trailing text, negative, empty, missing)
/// both advertise the same priority.
#[test]
fn keepalived_and_vigil_read_a_tracked_file_alike() {
    require_root_or_skip!();
    if !require_keepalived() {
        return;
    }
    let (lab, dir) = lab(&["lb1", "lb2", "client"]);
    let ka_file = dir.path().join("ka-prio");
    let vigil_file = dir.path().join("vigil-prio");
    let track = format!(
        "track = [{{ file = \"{}\", weight = 5 }}]",
        vigil_file.display()
    );
    let vigil = start_vigil(&lab, dir.path(), &track);
    let ka_conf = keepalived_conf(
        &lab,
        "",
        &format!(
            "track_file prio {{\n  file \"{}\"\n  weight 5\n}}\n",
            ka_file.display()
        ),
        "track_file {\n    prio\n  }\n",
    );
    // keepalived reads a file that exists at start; so does vigil.
    std::fs::write(&ka_file, "0").unwrap();
    std::fs::write(&vigil_file, "0").unwrap();
    let ka = Keepalived::start(&lab, dir.path(), "lb2", &ka_conf);
    vigil.expect_state("web", "master", SETTLE);
    assert!(
        wait_for(SETTLE, || ka.entered("MASTER") >= 1),
        "keepalived never became master:\n{}",
        ka.log_text()
    );
    let mut table = Vec::new();
    for (content, want) in [
        (Some("4\n"), 120),
        (Some("0x3"), 115),
        (Some("7 apples"), 135),
        (Some("-6"), 70),
        (Some(""), 100),
        (Some("010"), 140),
        (None, 100),
    ] {
        for file in [&ka_file, &vigil_file] {
            match content {
                Some(c) => std::fs::write(file, c).unwrap(),
                None => {
                    let _ = std::fs::remove_file(file);
                }
            }
        }
        let (ka_prio, vigil_prio) = both_advertise(&lab, want);
        table.push(format!(
            "{content:?}: keepalived {ka_prio:?}, vigil {vigil_prio:?}"
        ));
        assert_eq!(
            (ka_prio, vigil_prio),
            (Some(want), Some(want)),
            "{content:?}\n{}\n{}",
            table.join("\n"),
            ka.log_text()
        );
    }
    println!("file content: advertised priority\n{}", table.join("\n"));
}

/// A process of ours, killed and reaped when dropped (also when the test fails).
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A copy of `sleep` named `name` (its comm), started with `arg`.
fn sleeper(dir: &Path, name: &str, arg: &str) -> Sleeper {
    let exe = dir.join(name);
    if !exe.exists() {
        std::fs::copy("/bin/sleep", &exe).unwrap();
    }
    Sleeper(Command::new(&exe).arg(arg).spawn().unwrap())
}

fn stop(s: Sleeper) {
    drop(s);
}

/// A process quorum (keepalived's vrrp_track_process): below `quorum` matching processes
/// the weight applies; a loss counts only after `terminate_delay`; matching by command
/// line and arguments counts only the processes with those arguments.
#[test]
fn a_process_quorum_moves_the_priority() {
    require_root_or_skip!();
    let (lab, dir) = lab(&["lb1"]);
    // A name no other process has (a test running in parallel uses its own directory).
    let name = format!("vt{}", std::process::id());
    let exe = dir.path().join(&name);
    let track = format!(
        "track = [{{ process = [\"{name}\"], quorum = 2, weight = -50, interval = \"100ms\", terminate_delay = \"2s\" }}, \
         {{ process = [\"{}\", \"1000\"], weight = 20, interval = \"100ms\" }}]",
        exe.display()
    );
    let a = sleeper(dir.path(), &name, "1001");
    let v = Vigild::start(
        &lab,
        dir.path(),
        "lb1",
        &web(71, 150, &lab.subnet_addr(100).to_string(), &track),
    );
    expect_priority(&v, 100);

    let b = sleeper(dir.path(), &name, "1000");
    expect_priority(&v, 170);

    // The loss is held back by terminate_delay, then counts.
    stop(a);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(priority(&v), 170, "{}", v.log_text());
    expect_priority(&v, 120);

    stop(b);
    expect_priority(&v, 100);
    assert!(v.log_text().contains("track process"), "{}", v.log_text());
}

/// A program's rise and fall (keepalived's vrrp_script): `fall` failures in a row bring
/// it down, `rise` successes up; with `reverse` its weight applies while it is down;
/// `init_fail` holds it down until it has risen.
#[test]
fn a_tracked_program_rises_and_falls() {
    require_root_or_skip!();
    let (lab, dir) = lab(&["lb1"]);
    let flag = dir.path().join("ok");
    std::fs::write(&flag, "").unwrap();
    let test = |extra: &str| {
        format!(
            "{{ exec = [\"/usr/bin/test\", \"-e\", \"{}\"], interval = \"200ms\", timeout = \"150ms\", user = \"root\", {extra} }}",
            flag.display()
        )
    };
    let track = format!(
        "track = [{}, {}]",
        test("rise = 3, fall = 3, weight = -40"),
        test("init_fail = true, rise = 10, weight = -10, reverse = true")
    );
    let v = Vigild::start(
        &lab,
        dir.path(),
        "lb1",
        &web(81, 150, &lab.subnet_addr(100).to_string(), &track),
    );
    // The first program's first success decides; the second is down until it has risen
    // ten times, and reversed, its negative weight is given back while down.
    expect_priority(&v, 160);
    expect_priority(&v, 150);

    std::fs::remove_file(&flag).unwrap();
    // Three failures in a row for the first (weight -40), one for the second (+10).
    expect_priority(&v, 120);
    std::fs::write(&flag, "").unwrap();
    expect_priority(&v, 150);
}

/// A reload that adds file and process tracks applies them in place: the file's number
/// and the missing process pull the master below its backup, which preempts.
#[test]
fn a_reload_adds_file_and_process_tracks_in_place() {
    require_root_or_skip!();
    let (lab, dir) = lab(&["lb1", "lb2", "client"]);
    let vip = lab.subnet_addr(100).to_string();
    let lb2 = Vigild::start(&lab, dir.path(), "lb2", &web(51, 100, &vip, ""));
    let lb1 = Vigild::start(&lab, dir.path(), "lb1", &web(51, 150, &vip, ""));
    lb1.expect_state("web", "master", SETTLE);
    lb2.expect_state("web", "backup", SETTLE);

    let file = dir.path().join("prio");
    std::fs::write(&file, "3").unwrap();
    let track = format!(
        "track = [{{ file = \"{}\", weight = -10 }}, {{ process = [\"vt-none{}\"], weight = -30 }}]",
        file.display(),
        std::process::id()
    );
    lb1.rewrite(&web(51, 150, &vip, &track));
    let reply = lb1.request(r#"{"command":"reload"}"#).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    lb2.expect_state("web", "master", SETTLE);
    lb1.expect_state("web", "backup", SETTLE);
    expect_priority(&lb1, 90);
    let tracks = &lb1.instance("web").unwrap()["track"];
    assert_eq!(tracks[0]["file"], file.display().to_string(), "{tracks}");
    assert!(tracks[1]["process"].is_array(), "{tracks}");
    assert!(!lb1.log_text().contains("restarting"), "{}", lb1.log_text());
}

/// vigil and keepalived 2.2 (each master of its own VRID) track the same program with the
/// same vrrp_script options (weight 20 reverse, rise 2, fall 2, init_fail): both start
/// without the weight, take it off once the program has risen, and give it back once it
/// has fallen.
#[test]
fn keepalived_and_vigil_apply_a_script_alike() {
    require_root_or_skip!();
    if !require_keepalived() {
        return;
    }
    let (lab, dir) = lab(&["lb1", "lb2", "client"]);
    let flag = dir.path().join("ok");
    std::fs::write(&flag, "").unwrap();
    let track = format!(
        "track = [{{ exec = [\"/usr/bin/test\", \"-e\", \"{}\"], interval = \"1s\", timeout = \"900ms\", user = \"root\", rise = 2, fall = 2, init_fail = true, weight = 20, reverse = true }}]",
        flag.display()
    );
    let vigil = start_vigil(&lab, dir.path(), &track);
    let ka_conf = keepalived_conf(
        &lab,
        "  script_user root\n  enable_script_security\n",
        &format!(
            "vrrp_script ok {{\n  script \"/usr/bin/test -e {}\"\n  interval 1\n  timeout 1\n  weight 20 reverse\n  rise 2\n  fall 2\n  init_fail\n}}\n",
            flag.display()
        ),
        "track_script {\n    ok\n  }\n",
    );
    let ka = Keepalived::start(&lab, dir.path(), "lb2", &ka_conf);
    vigil.expect_state("web", "master", SETTLE);
    let both = |want: u8| both_advertise(&lab, want);
    assert_eq!(both(80), (Some(80), Some(80)), "{}", ka.log_text());
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(both(100), (Some(100), Some(100)), "{}", ka.log_text());
    std::fs::write(&flag, "").unwrap();
    assert_eq!(both(80), (Some(80), Some(80)), "{}", ka.log_text());
}
