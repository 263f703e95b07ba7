//! Helpers shared by the VRRP lab tests (`vrrp_netns`, `vrrp_keepalived`,
//! `vrrp_migrate`, `vrrp_notify`): a real `vigild` in a lab namespace with its own cluster file, log and
//! status socket in the test's temporary directory; address checks; a ping gap meter; a
//! capture of the packets on the wire (VRRP adverts); a real keepalived and its
//! configuration for the interop tests; `vigild import-keepalived`.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use vigil_testlab::{LabChild, NetnsLab, bin_path, have_tools, require_or_skip, wait_for};
use vigil_vrrp::IP_PROTOCOL_VRRP;

/// Generous: two cores are shared with parallel tests.
pub const SETTLE: Duration = Duration::from_secs(10);

/// A `[director]` section whose socket and state live in `dir`, named after `host`.
pub fn director(dir: &Path, host: &str) -> String {
    format!(
        "[director]\nname = \"{host}\"\n{}\n",
        director_paths(dir, host)
    )
}

/// The `status_socket` and `state_file` lines of [`director`], for a `[director]` section
/// written by someone else (`vigild import-keepalived`).
pub fn director_paths(dir: &Path, host: &str) -> String {
    format!(
        "status_socket = \"{}\"\nstate_file = \"{}\"\n",
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
        Vigild::start_file(lab, dir, host, config)
    }

    /// Starts vigild on a cluster file written elsewhere, whose `[director]` section has
    /// the [`director_paths`] of `dir` and `host`.
    pub fn start_file(lab: &NetnsLab, dir: &Path, host: &str, config: PathBuf) -> Vigild {
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
        let vigild = bin_path("vigild");
        let argv = [
            vigild.as_os_str(),
            "--config".as_ref(),
            self.config.as_os_str(),
        ];
        let child = spawn_logged(lab, &self.host, &argv, &self.log, || self.vrrp().is_some())
            .unwrap_or_else(|log| {
                panic!(
                    "vigild on {} never answered on its socket:
{log}",
                    self.host
                )
            });
        self.child = Some(child);
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

/// Starts `argv` in lab host `host`, its output appended to `log`, and waits (up to
/// [`SETTLE`]) until `ready`: the child, or what is in the log if it never is ready
/// (the child is then killed).
fn spawn_logged(
    lab: &NetnsLab,
    host: &str,
    argv: &[&OsStr],
    log: &Path,
    ready: impl FnMut() -> bool,
) -> Result<LabChild, String> {
    let file = File::options().create(true).append(true).open(log).unwrap();
    let mut cmd = lab.cmd(host, argv);
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let child = LabChild::spawn(&mut cmd).unwrap();
    if wait_for(SETTLE, ready) {
        Ok(child)
    } else {
        Err(std::fs::read_to_string(log).unwrap_or_default())
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

/// What `keep` makes of each packet of `ethertype` (from its network header on) received
/// in this thread's namespace for `window`, given with its offset from the start; AF_PACKET,
/// so nothing need be joined or bound.
pub fn capture<T>(
    ethertype: u16,
    window: Duration,
    mut keep: impl FnMut(&[u8], Duration) -> Option<T>,
) -> Vec<T> {
    let start = Instant::now();
    let mut seen = Vec::new();
    // SAFETY: plain libc socket calls on a descriptor we own, closed at the end.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            i32::from(ethertype.to_be()),
        );
        assert!(fd >= 0, "{}", std::io::Error::last_os_error());
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 50_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as u32,
        );
        let mut buf = [0u8; 2048];
        while start.elapsed() < window {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            let Ok(n) = usize::try_from(n) else { continue };
            seen.extend(keep(&buf[..n], start.elapsed()));
        }
        libc::close(fd);
    }
    seen
}

/// A VRRP advert over IPv4 as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenAdvert {
    /// The IP source address.
    pub source: Ipv4Addr,
    pub priority: u8,
    pub addresses: Vec<Ipv4Addr>,
}

/// The VRRP adverts over IPv4 for `vrid` seen on the wire for `window`, in arrival order
/// (224.0.0.18 need not be joined).
pub fn capture_adverts(vrid: u8, window: Duration) -> Vec<SeenAdvert> {
    capture(0x0800, window, |ip, _| {
        let ihl = usize::from(*ip.first()? & 0x0f) * 4;
        if ihl < 20 || ip.len() < ihl + 8 || ip[9] != IP_PROTOCOL_VRRP || ip[ihl + 1] != vrid {
            return None;
        }
        let vrrp = &ip[ihl..];
        // RFC 5798 §5.2.4: the priority is the third byte; §5.2.5: the count of
        // addresses, which follow the 8 fixed bytes.
        let count = usize::from(vrrp[3]);
        let addresses = vrrp[8..]
            .chunks_exact(4)
            .take(count)
            .map(|o| Ipv4Addr::new(o[0], o[1], o[2], o[3]))
            .collect::<Vec<_>>();
        assert_eq!(addresses.len(), count, "truncated advert");
        Some(SeenAdvert {
            source: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            priority: vrrp[2],
            addresses,
        })
    })
}

pub const HOSTS: [&str; 2] = ["lb1", "lb2"];
/// keepalived at advert 1 s needs 3 x 1 s + skew to take over, and more to preempt.
pub const SLOW: Duration = Duration::from_secs(15);

#[derive(Clone, Copy)]
pub struct Setup {
    pub version: u8,
    pub unicast: bool,
    pub ipv6: bool,
}

impl Setup {
    pub fn advert_secs(self) -> f64 {
        if self.version == 2 { 1.0 } else { 0.1 }
    }

    pub fn vip(self, lab: &NetnsLab) -> String {
        if self.ipv6 {
            "fd00:99::100".into()
        } else {
            lab.subnet_addr(100).to_string()
        }
    }

    pub fn prefix_len(self) -> u8 {
        if self.ipv6 { 64 } else { 24 }
    }

    /// IPv6: gives the client an address in the VIP's prefix, and waits until the
    /// directors' link-local addresses have finished duplicate detection (keepalived
    /// started before that fails its first sends with EINVAL).
    pub fn prepare(self, lab: &NetnsLab) {
        if !self.ipv6 {
            return;
        }
        lab.run(
            "client",
            ["ip", "addr", "add", "fd00:99::3/64", "dev", "eth0", "nodad"],
        )
        .unwrap();
        for host in HOSTS {
            assert!(wait_for(SETTLE, || lab
                .run(
                    host,
                    ["ip", "-6", "addr", "show", "dev", "eth0", "tentative"]
                )
                .is_ok_and(|out| out.trim().is_empty())));
        }
    }
}

/// A keepalived (`--vrrp` only) in a lab host: the parent and its VRRP child.
pub struct Keepalived {
    pub host: String,
    pub conf: PathBuf,
    pub log: PathBuf,
    pub vrrp_pid: PathBuf,
    pub parent: Option<LabChild>,
}

impl Keepalived {
    pub fn start(lab: &NetnsLab, dir: &Path, host: &str, conf_text: &str) -> Keepalived {
        let conf = dir.join(format!("ka-{host}.conf"));
        std::fs::write(&conf, conf_text).unwrap();
        let mut k = Keepalived {
            host: host.into(),
            conf,
            log: dir.join(format!("ka-{host}.log")),
            vrrp_pid: dir.join(format!("ka-{host}-vrrp.pid")),
            parent: None,
        };
        k.restart(lab, dir);
        k
    }

    pub fn restart(&mut self, lab: &NetnsLab, dir: &Path) {
        let _ = std::fs::remove_file(&self.vrrp_pid);
        let pid = dir.join(format!("ka-{}.pid", self.host));
        let argv = [
            "keepalived".as_ref(),
            "--vrrp".as_ref(),
            "-n".as_ref(),
            "-l".as_ref(),
            "-D".as_ref(),
            "-f".as_ref(),
            self.conf.as_os_str(),
            "--pid".as_ref(),
            pid.as_os_str(),
            "--vrrp_pid".as_ref(),
            self.vrrp_pid.as_os_str(),
        ];
        let parent = spawn_logged(lab, &self.host, &argv, &self.log, || {
            self.child_pid().is_some()
        })
        .unwrap_or_else(|log| panic!("keepalived on {} did not start:\n{log}", self.host));
        self.parent = Some(parent);
    }

    pub fn child_pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.vrrp_pid)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// A crash: SIGKILL the VRRP child first (else the parent makes it resign), then the
    /// parent (tests/lab/README.md).
    pub fn crash(&mut self) {
        if let Some(pid) = self.child_pid() {
            // SAFETY: plain kill(2) of keepalived's VRRP child, which we started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some(p) = &mut self.parent {
            let _ = p.signal(libc::SIGKILL);
            let _ = p.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(p) = &mut self.parent {
            let _ = p.terminate(Duration::from_secs(10));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn entered(&self, state: &str) -> usize {
        self.log_text()
            .matches(&format!("Entering {state} STATE"))
            .count()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        // The lab's teardown kills what is left too; the child is not ours to reap.
        self.crash();
    }
}

pub fn keepalived_conf(
    s: Setup,
    lab: &NetnsLab,
    host: &str,
    peer: &str,
    priority: u8,
    vip: &str,
) -> String {
    let auth = if s.version == 2 {
        "  authentication {\n    auth_type PASS\n    auth_pass vigil42\n  }\n"
    } else {
        ""
    };
    let unicast = if s.unicast {
        format!(
            "  unicast_src_ip {}\n  unicast_peer {{\n    {}\n  }}\n",
            lab.ip(host),
            lab.ip(peer)
        )
    } else {
        String::new()
    };
    format!(
        "global_defs {{\n  router_id {host}\n  vrrp_version {}\n}}\nvrrp_instance VI_1 {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  priority {priority}\n  advert_int {}\n{auth}{unicast}  virtual_ipaddress {{\n    {vip}/{} dev eth0\n  }}\n}}\n",
        s.version,
        s.advert_secs(),
        s.prefix_len()
    )
}

pub fn require_keepalived() -> bool {
    require_or_skip!(have_tools(&["keepalived"]), false);
    true
}

/// keepalived complained about none of vigil's adverts (checksum, auth, address list,
/// interval, TTL).
pub fn assert_clean_log(ka: &Keepalived) {
    let log = ka.log_text().to_lowercase();
    // A restarted higher-priority keepalived discards the lower-priority master's adverts
    // until its own timer fires (its normal preemption; tests/lab/README.md).
    let log: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("received lower priority"))
        .collect();
    for complaint in [
        "invalid",
        "bad ",
        "mismatch",
        "not present",
        "discard",
        "error",
    ] {
        let hits: Vec<&&str> = log.iter().filter(|l| l.contains(complaint)).collect();
        assert!(
            hits.is_empty(),
            "keepalived logged {complaint:?}: {hits:#?}"
        );
    }
}

/// `vigild import-keepalived CONF -o OUT`, then the lab's socket and state paths added to
/// its `[director]` section (two directors share this machine's file system here).
pub fn import(dir: &Path, host: &str, conf: &Path) -> PathBuf {
    let out = dir.join(format!("{host}-imported.toml"));
    let run = Command::new(bin_path("vigild"))
        .arg("import-keepalived")
        .arg(conf)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "import of {} failed:\n{stderr}",
        conf.display()
    );
    for line in stderr.lines() {
        println!("    import: {line}");
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let paths = director_paths(dir, host);
    let text = match text.split_once("[director]\n") {
        Some((before, after)) => format!("{before}[director]\n{paths}{after}"),
        None => format!("[director]\n{paths}\n{text}"),
    };
    let config = dir.join(format!("{host}.toml"));
    std::fs::write(&config, text).unwrap();
    let check = Command::new(bin_path("vigild"))
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    config
}
