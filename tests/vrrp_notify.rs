//! keepalived's notify conventions, compared with keepalived itself in a netns lab: the
//! same keepalived.conf (a sync group of one instance, every notify program of the
//! instance and of the group, a `vrrp_notify_fifo`) runs once under a keepalived pair and
//! once under a vigild pair (the file imported by `vigild import-keepalived`), through the
//! same transitions: start (lb1 master, lb2 backup), lb1's link down (fault) and up
//! (preemption back), lb1 stopped, lb2 stopped. What the programs were called with, and
//! the FIFO lines each director wrote, must be the same.
//!
//! keepalived starts its programs without waiting for each other, so within one step the
//! programs' lines are compared as sets; the FIFO lines are compared in order.

// Helpers outside #[test] functions unwrap too; this is test code.
#![allow(clippy::unwrap_used)]

#[path = "vrrp_support.rs"]
mod vrrp_support;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use vigil_testlab::{NetnsLab, require_root_or_skip, wait_for};
use vrrp_support::*;

/// Gives the programs of a step time to run before the next step.
const HOOKS_SETTLE: Duration = Duration::from_millis(1500);

/// The keepalived.conf of `host`: the recorder for every notify program, and the FIFO.
fn conf(dir: &Path, host: &str, priority: u8, fifo: &Path, vip: &str) -> String {
    let rec = dir.join("rec.sh");
    let rec = rec.display();
    let hooks = |name: &str| {
        [
            "notify_master",
            "notify_backup",
            "notify_fault",
            "notify_stop",
            "notify",
        ]
        .iter()
        .map(|k| format!("  {k} \"{rec} {host} {name} {k}\"\n"))
        .collect::<String>()
    };
    format!(
        "global_defs {{\n  router_id {host}\n  vrrp_notify_fifo {fifo}\n}}\n\
         vrrp_sync_group G1 {{\n  group {{\n    VI_1\n  }}\n{}}}\n\
         vrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {vip}/24\n  }}\n{}}}\n",
        hooks("G1"),
        hooks("VI_1"),
        fifo = fifo.display()
    )
}

/// `cat FIFO > LOG` once the daemon has made the FIFO: it ends when the daemon exits.
fn read_fifo(fifo: &Path, log: &Path) -> Child {
    assert!(
        wait_for(SETTLE, || std::fs::symlink_metadata(fifo)
            .is_ok_and(|m| m.file_type().is_fifo())),
        "no FIFO at {}",
        fifo.display()
    );
    Command::new("cat")
        .arg(fifo)
        .stdout(std::fs::File::create(log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// What one run recorded: per step, the programs' lines of each host (sorted), and each
/// host's FIFO lines.
#[derive(Debug, Default, PartialEq)]
struct Recorded {
    steps: Vec<(String, Vec<String>)>,
    fifo: Vec<(String, Vec<String>)>,
}

/// The daemons of one run: start, stop.
trait Pair {
    fn start(&mut self, lab: &NetnsLab, host: &str);
    fn stop(&mut self, host: &str);
}

struct KeepalivedPair {
    dir: PathBuf,
    confs: Vec<(String, String)>,
    running: Vec<(String, Keepalived)>,
}

impl Pair for KeepalivedPair {
    fn start(&mut self, lab: &NetnsLab, host: &str) {
        let conf = &self.confs.iter().find(|(h, _)| h == host).unwrap().1;
        let k = Keepalived::start(lab, &self.dir, host, conf);
        self.running.push((host.to_string(), k));
    }

    fn stop(&mut self, host: &str) {
        if let Some((_, k)) = self.running.iter_mut().find(|(h, _)| h == host) {
            k.stop();
        }
    }
}

struct VigildPair {
    dir: PathBuf,
    running: Vec<(String, Vigild)>,
}

impl Pair for VigildPair {
    fn start(&mut self, lab: &NetnsLab, host: &str) {
        let conf = import(&self.dir, host, &self.dir.join(format!("vg-{host}.conf")));
        let v = Vigild::start_file(lab, &self.dir, host, conf);
        self.running.push((host.to_string(), v));
    }

    fn stop(&mut self, host: &str) {
        if let Some((_, v)) = self.running.iter_mut().find(|(h, _)| h == host) {
            v.stop();
        }
    }
}

/// The scenario, on `pair`; `run` names its files.
fn scenario(lab: &NetnsLab, dir: &Path, run: &str, pair: &mut dyn Pair) -> Recorded {
    let fifo = |h: &str| dir.join(format!("{run}-{h}.fifo"));
    let fifo_log = |h: &str| dir.join(format!("{run}-{h}.fifo.log"));
    let args_log = |h: &str| dir.join(format!("args-{h}.log"));
    let mut recorded = Recorded::default();
    let mut seen = [0usize; 2];
    let mut step = |name: &str, recorded: &mut Recorded| {
        std::thread::sleep(HOOKS_SETTLE);
        for (i, h) in HOSTS.iter().enumerate() {
            let all = lines(&args_log(h));
            let mut new: Vec<String> = all[seen[i]..].to_vec();
            seen[i] = all.len();
            new.sort();
            recorded.steps.push((format!("{name} {h}"), new));
        }
    };
    let fifo_has = |h: &str, line: &str| lines(&fifo_log(h)).iter().filter(|l| *l == line).count();

    pair.start(lab, "lb1");
    let mut cat1 = read_fifo(&fifo("lb1"), &fifo_log("lb1"));
    pair.start(lab, "lb2");
    let mut cat2 = read_fifo(&fifo("lb2"), &fifo_log("lb2"));
    assert!(wait_for(SLOW, || fifo_has(
        "lb1",
        "INSTANCE \"VI_1\" MASTER 150"
    ) == 1
        && fifo_has("lb2", "INSTANCE \"VI_1\" BACKUP 100") == 1));
    step("start", &mut recorded);

    lab.run("lb1", ["ip", "link", "set", "eth0", "down"])
        .unwrap();
    assert!(wait_for(SLOW, || fifo_has(
        "lb1",
        "INSTANCE \"VI_1\" FAULT 150"
    ) == 1
        && fifo_has("lb2", "INSTANCE \"VI_1\" MASTER 100") == 1));
    step("link down", &mut recorded);

    lab.run("lb1", ["ip", "link", "set", "eth0", "up"]).unwrap();
    assert!(wait_for(SLOW, || fifo_has(
        "lb1",
        "INSTANCE \"VI_1\" MASTER 150"
    ) == 2
        && fifo_has("lb2", "INSTANCE \"VI_1\" BACKUP 100") == 2));
    step("link up", &mut recorded);

    pair.stop("lb1");
    assert!(wait_for(SLOW, || fifo_has(
        "lb2",
        "INSTANCE \"VI_1\" MASTER 100"
    ) == 2));
    step("stop lb1", &mut recorded);

    pair.stop("lb2");
    step("stop lb2", &mut recorded);

    for cat in [&mut cat1, &mut cat2] {
        let ended = wait_for(SETTLE, || cat.try_wait().is_ok_and(|s| s.is_some()));
        if !ended {
            let _ = cat.kill();
            let _ = cat.wait();
        }
    }
    for h in HOSTS {
        recorded.fifo.push((h.to_string(), lines(&fifo_log(h))));
        // The next run's programs write afresh.
        let _ = std::fs::rename(args_log(h), dir.join(format!("{run}-args-{h}.log")));
    }
    recorded
}

#[test]
fn notify_programs_and_fifo_lines_match_keepalived() {
    require_root_or_skip!();
    if !require_keepalived() {
        return;
    }
    let lab = NetnsLab::up(&["lb1", "lb2"]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let rec = dir.join("rec.sh");
    std::fs::write(
        &rec,
        format!("#!/bin/sh\necho \"$*\" >> {}/args-$1.log\n", dir.display()),
    )
    .unwrap();
    std::fs::set_permissions(&rec, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (run, host, priority) in [
        ("ka", "lb1", 150),
        ("ka", "lb2", 100),
        ("vg", "lb1", 150),
        ("vg", "lb2", 100),
    ] {
        let fifo = dir.join(format!("{run}-{host}.fifo"));
        std::fs::write(
            dir.join(format!("{run}-{host}.conf")),
            conf(
                dir,
                host,
                priority,
                &fifo,
                &lab.subnet_addr(100).to_string(),
            ),
        )
        .unwrap();
    }

    let confs = HOSTS
        .iter()
        .map(|h| {
            let text = std::fs::read_to_string(dir.join(format!("ka-{h}.conf"))).unwrap();
            (h.to_string(), text)
        })
        .collect();
    let mut keepalived = KeepalivedPair {
        dir: dir.to_path_buf(),
        confs,
        running: Vec::new(),
    };
    let theirs = scenario(&lab, dir, "ka", &mut keepalived);
    drop(keepalived);

    let mut vigil = VigildPair {
        dir: dir.to_path_buf(),
        running: Vec::new(),
    };
    let ours = scenario(&lab, dir, "vg", &mut vigil);

    for ((step, k), (_, v)) in theirs.steps.iter().zip(&ours.steps) {
        println!("{step}:\n  keepalived: {k:?}\n  vigil:      {v:?}");
    }
    for ((host, k), (_, v)) in theirs.fifo.iter().zip(&ours.fifo) {
        println!("FIFO {host}:\n  keepalived: {k:?}\n  vigil:      {v:?}");
    }
    assert!(
        !theirs.fifo[0].1.is_empty(),
        "keepalived wrote no FIFO lines"
    );
    assert_eq!(
        ours, theirs,
        "vigil's notify calls and FIFO lines differ from keepalived's"
    );
}
