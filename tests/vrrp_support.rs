//! Helpers shared by the VRRP lab tests (`vrrp_netns`, `vrrp_keepalived`): a real
//! `vigild` in a lab namespace with its own cluster file, log and status socket in the
//! test's temporary directory; address checks; a ping gap meter.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use vigil_testlab::{LabChild, NetnsLab, bin_path, wait_for};

/// Generous: two cores are shared with parallel tests.
pub const SETTLE: Duration = Duration::from_secs(10);

/// A `[director]` section whose socket and state live in `dir`, named after `host`.
pub fn director(dir: &Path, host: &str) -> String {
    format!(
        "[director]\nname = \"{host}\"\nstatus_socket = \"{}\"\nstate_file = \"{}\"\n\n",
        dir.join(format!("{host}.sock")).display(),
        dir.join(format!("{host}-state.json")).display()
    )
}

/// One VRRP instance section.
pub fn instance(
    name: &str,
    vrid: u8,
    priority: u8,
    advert: &str,
    vips: &[String],
    extra: &str,
) -> String {
    let vips: Vec<String> = vips.iter().map(|v| format!("\"{v}\"")).collect();
    format!(
        "[vrrp.{name}]\ninterface = \"eth0\"\nvrid = {vrid}\npriority = {priority}\nadvert_interval = \"{advert}\"\nvips = [{}]\n{extra}\n",
        vips.join(", ")
    )
}

/// A real vigild in a lab host.
pub struct Vigild {
    pub host: String,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub child: Option<LabChild>,
}

impl Vigild {
    /// Writes `DIR/HOST.toml` (the director section plus `instances`) and starts vigild.
    pub fn start(lab: &NetnsLab, dir: &Path, host: &str, instances: &str) -> Vigild {
        let config = dir.join(format!("{host}.toml"));
        std::fs::write(&config, format!("{}{instances}", director(dir, host))).unwrap();
        let mut v = Vigild {
            host: host.to_string(),
            config,
            socket: dir.join(format!("{host}.sock")),
            log: dir.join(format!("{host}.log")),
            child: None,
        };
        v.restart(lab);
        v
    }

    /// (Re)starts the daemon on its cluster file; the log is appended to.
    pub fn restart(&mut self, lab: &NetnsLab) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = lab.cmd(
            &self.host,
            [
                bin_path("vigild").as_os_str(),
                "--config".as_ref(),
                self.config.as_os_str(),
            ],
        );
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        self.child = Some(LabChild::spawn(&mut cmd).unwrap());
        assert!(
            wait_for(SETTLE, || self.vrrp().is_some()),
            "vigild on {} never answered on its socket:\n{}",
            self.host,
            self.log_text()
        );
    }

    pub fn rewrite(&self, instances: &str) {
        let dir = self.config.parent().unwrap();
        std::fs::write(
            &self.config,
            format!("{}{instances}", director(dir, &self.host)),
        )
        .unwrap();
    }

    pub fn request(&self, body: &str) -> Option<Value> {
        let mut s = UnixStream::connect(&self.socket).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        s.write_all(format!("{body}\n").as_bytes()).ok()?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line).ok()?;
        serde_json::from_str(&line).ok()
    }

    /// The `vrrp` reply's result.
    pub fn vrrp(&self) -> Option<Value> {
        self.request(r#"{"command":"vrrp"}"#)
            .and_then(|r| r.get("result").cloned())
    }

    pub fn instance(&self, name: &str) -> Option<Value> {
        self.vrrp()?
            .get("instances")?
            .as_array()?
            .iter()
            .find(|i| i["name"] == name)
            .cloned()
    }

    pub fn state(&self, name: &str) -> String {
        self.instance(name)
            .and_then(|i| i["state"].as_str().map(str::to_string))
            .unwrap_or_else(|| "unreachable".into())
    }

    /// Waits for `name` to be in `state`; panics with the log if it never is.
    pub fn expect_state(&self, name: &str, state: &str, within: Duration) {
        if !wait_for(within, || self.state(name) == state) {
            panic!(
                "{}: instance {name} is {} (wanted {state}):\n{}\n{}",
                self.host,
                self.state(name),
                serde_json::to_string_pretty(&self.instance(name)).unwrap_or_default(),
                self.log_text()
            );
        }
    }

    pub fn kill(&mut self) {
        if let Some(c) = &mut self.child {
            c.signal(libc::SIGKILL).unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let c = self.child.as_mut().expect("running");
        c.terminate(Duration::from_secs(15)).unwrap()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Whether `host`'s eth0 carries `addr` (without prefix).
pub fn has_addr(lab: &NetnsLab, host: &str, addr: &str) -> bool {
    lab.run(host, ["ip", "-o", "addr", "show", "dev", "eth0"])
        .map(|out| out.contains(&format!(" {addr}/")))
        .unwrap_or(false)
}

/// Asserts `addr` ends up on exactly `owner` among `hosts`.
pub fn expect_addr_only_on(lab: &NetnsLab, addr: &str, owner: &str, hosts: &[&str]) {
    let ok = wait_for(SETTLE, || {
        hosts
            .iter()
            .all(|h| has_addr(lab, h, addr) == (*h == owner))
    });
    let where_: Vec<&&str> = hosts.iter().filter(|h| has_addr(lab, h, addr)).collect();
    assert!(ok, "{addr} should be on {owner} only, is on {where_:?}");
}

/// `ping -D -i 0.01` from a host; gaps are measured between reply timestamps (a missing
/// reply makes ping itself drift, see tests/lab/README.md).
pub struct Pinger {
    child: LabChild,
    out: PathBuf,
}

#[derive(Debug, Clone, Copy)]
pub struct PingResult {
    pub replies: usize,
    pub lost: u64,
    pub max_gap: Duration,
}

impl Pinger {
    pub fn start(lab: &NetnsLab, host: &str, target: &str, out: PathBuf) -> Pinger {
        let file = File::create(&out).unwrap();
        let mut cmd = lab.cmd(
            host,
            ["ping", "-n", "-D", "-i", "0.01", "-W", "0.2", target],
        );
        cmd.stdin(Stdio::null()).stdout(file).stderr(Stdio::null());
        let child = LabChild::spawn(&mut cmd).unwrap();
        Pinger { child, out }
    }

    pub fn stop(mut self) -> PingResult {
        let _ = self.child.signal(libc::SIGINT);
        let _ = self.child.wait_timeout(Duration::from_secs(5));
        parse_ping(&std::fs::read_to_string(&self.out).unwrap_or_default())
    }
}

/// Replies `[TIME] N bytes from ...: icmp_seq=SEQ ...` → count, lost in between, gap.
pub fn parse_ping(out: &str) -> PingResult {
    let replies: Vec<(f64, u64)> = out
        .lines()
        .filter_map(|l| {
            let time = l.strip_prefix('[')?.split(']').next()?.parse().ok()?;
            let seq = l
                .split("icmp_seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()?;
            Some((time, seq))
        })
        .collect();
    let lost = replies
        .windows(2)
        .map(|w| w[1].1.saturating_sub(w[0].1 + 1))
        .sum();
    let max_gap = replies
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .fold(0.0, f64::max);
    PingResult {
        replies: replies.len(),
        lost,
        max_gap: Duration::from_secs_f64(max_gap.max(0.0)),
    }
}
