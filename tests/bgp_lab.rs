//! The BGP scale-out lab of issue 16, shared by `kernel_bgp` (behaviour, asserted) and
//! the `scale_out` bench (figures, printed): a router running BIRD 2 with ECMP, two
//! directors each with a speaker that exports kernel table 100 and a real `vigild` with
//! `announce = true`, two DR real servers and a client, in a netns lab (inside the
//! kernel lab VM). Only for tests: a failed step panics.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use vigil_testlab::{LabChild, NetnsLab, bin_path, wait_for};

use crate::vigilctl;

/// Generous: the VM is emulated and several namespaces share two virtual CPUs.
pub const SETTLE: Duration = Duration::from_secs(60);
pub const FRR: &str = "/usr/lib/frr";

/// The command line of FRR daemon `name` (`zebra`, `bgpd`) from `frr` (its program
/// directory) with configuration `conf`, keeping its pid file, zebra's API socket
/// (`zserv.api`) and vty sockets in `run`, as FRR's user `frr` (root is not in its vty
/// group), logging to stdout.
pub fn frr_daemon_argv(frr: &Path, name: &str, conf: &Path, run: &Path) -> Vec<String> {
    let run_s = run.display().to_string();
    vec![
        frr.join(name).display().to_string(),
        "-f".into(),
        conf.display().to_string(),
        "-i".into(),
        format!("{run_s}/{name}.pid"),
        "-z".into(),
        run.join("zserv.api").display().to_string(),
        "--vty_socket".into(),
        run_s,
        "-u".into(),
        "frr".into(),
        "-g".into(),
        "frr".into(),
        "--log".into(),
        "stdout".into(),
    ]
}

pub struct Lab {
    pub lab: NetnsLab,
    pub dir: tempfile::TempDir,
    pub vip: Ipv4Addr,
    pub children: Vec<(String, LabChild)>,
    /// The checks' `fall`.
    pub fall: u32,
    /// `inhibit_on_failure`: failed real servers stay in IPVS with weight 0.
    pub inhibit: bool,
    /// The virtual server "web"'s `quorum` (real servers needed up).
    pub quorum: u32,
    /// BFD between the router and the directors: (interval in ms, multiplier), set
    /// before the speakers start; `None`: the BGP hold time alone.
    pub bfd: Option<(u32, u32)>,
    /// A second virtual server on the VIP's port 81 (tcp check) over [`ECHO`] servers on
    /// the real servers, for long-lived connections; set before `Lab::new`'s servers run.
    pub long_lived: bool,
}

pub fn unix_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

impl Lab {
    pub fn new(vip_octet: u8) -> Lab {
        let lab = NetnsLab::up(&["r", "d1", "d2", "rs1", "rs2", "client"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Outside the lab's subnet: reachable only through the directors' routes.
        let vip = Ipv4Addr::new(198, 18, vip_octet, 1);
        let mut l = Lab {
            lab,
            dir,
            vip,
            children: Vec::new(),
            fall: 2,
            inhibit: false,
            quorum: 1,
            bfd: None,
            long_lived: false,
        };
        l.lab
            .run(
                "r",
                ["sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1"],
            )
            .unwrap();
        for rs in ["rs1", "rs2"] {
            // DR: the real servers hold the VIP without answering ARP for it.
            l.lab
                .run(
                    rs,
                    [
                        "sh",
                        "-ec",
                        &format!(
                            "ip addr add {vip}/32 dev lo
                             sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2"
                        ),
                    ],
                )
                .unwrap();
            let root = l.dir.path().join(rs);
            std::fs::create_dir_all(&root).unwrap();
            for f in ["ok-d1", "ok-d2", "id"] {
                std::fs::write(root.join(f), format!("{rs}\n")).unwrap();
            }
            let root = root.to_str().unwrap().to_string();
            l.spawn(rs, rs, &["busybox", "httpd", "-f", "-p", "80", "-h", &root]);
        }
        l
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn spawn(&mut self, tag: &str, host: &str, argv: &[&str]) {
        let log = std::fs::File::create(self.path(&format!("{tag}.log"))).unwrap();
        let mut cmd = self.lab.cmd(host, argv);
        cmd.stdout(log.try_clone().unwrap()).stderr(log);
        self.children
            .push((tag.to_string(), LabChild::spawn(&mut cmd).unwrap()));
    }

    pub fn kill(&mut self, tag: &str) {
        let i = self.children.iter().position(|(t, _)| t == tag).unwrap();
        let (_, mut child) = self.children.remove(i);
        child.signal(libc::SIGKILL).unwrap();
        let _ = child.wait_timeout(Duration::from_secs(10));
    }

    pub fn bird_router(&mut self) {
        let r = self.lab.ip("r");
        let mut conf = format!(
            "router id {r};
log stderr all;
debug protocols {{ states }};
protocol device {{}}
protocol kernel {{ ipv4 {{ export all; }}; merge paths on; }}
{}",
            self.bfd_protocol()
        );
        for d in ["d1", "d2"] {
            conf.push_str(&format!(
                "protocol bgp {d} {{ local {r} as 65000; neighbor {} as 65001; hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;{} ipv4 {{ import all; export none; }}; }}\n",
                self.lab.ip(d),
                self.bfd_on()
            ));
        }
        self.bird("r", &conf);
    }

    pub fn bird_director(&mut self, d: &str) {
        let (me, r) = (self.lab.ip(d), self.lab.ip("r"));
        let conf = format!(
            "router id {me};
log stderr all;
protocol device {{}}
protocol kernel {{ kernel table 100; learn; ipv4 {{ import all; export none; }}; }}
{}
protocol bgp up {{ local {me} as 65001; neighbor {r} as 65000; hold time 3; keepalive time 1; connect retry time 1; error wait time 1, 5;{} ipv4 {{ import none; export all; }}; }}
",
            self.bfd_protocol(),
            self.bfd_on()
        );
        self.bird(d, &conf);
    }

    /// BIRD's `protocol bfd` for [`Lab::bfd`] (empty without): one session per BGP
    /// neighbour on the lab's link, asked for by `bfd on` in the BGP protocol.
    fn bfd_protocol(&self) -> String {
        match self.bfd {
            Some((ms, mult)) => format!(
                "protocol bfd {{ interface \"eth0\" {{ min rx interval {ms} ms; min tx interval {ms} ms; multiplier {mult}; }}; }}"
            ),
            None => String::new(),
        }
    }

    fn bfd_on(&self) -> &'static str {
        if self.bfd.is_some() { " bfd on;" } else { "" }
    }

    pub fn bird(&mut self, host: &str, conf: &str) {
        let path = self.path(&format!("bird-{host}.conf"));
        std::fs::write(&path, conf).unwrap();
        let ctl = self.path(&format!("bird-{host}.ctl"));
        let (path, ctl) = (path.to_str().unwrap(), ctl.to_str().unwrap());
        self.spawn(
            &format!("bird-{host}"),
            host,
            &["bird", "-f", "-c", path, "-s", ctl],
        );
    }

    /// FRR's zebra and bgpd for director `d`: `redistribute table 100`.
    pub fn frr_director(&mut self, d: &str) {
        let (me, r) = (self.lab.ip(d), self.lab.ip("r"));
        let bgpd = format!(
            "router bgp 65001
 bgp router-id {me}
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor {r} remote-as 65000
 neighbor {r} timers 1 3
 address-family ipv4 unicast
  redistribute table 100
 exit-address-family
"
        );
        self.frr(d, "ip import-table 100\n", &bgpd);
    }

    /// FRR as the router: both directors' paths merged into one ECMP route
    /// (`maximum-paths`), installed by zebra in the main table.
    pub fn frr_router(&mut self) {
        let r = self.lab.ip("r");
        let mut bgpd =
            format!("router bgp 65000\n bgp router-id {r}\n no bgp ebgp-requires-policy\n");
        for d in ["d1", "d2"] {
            let ip = self.lab.ip(d);
            bgpd.push_str(&format!(
                " neighbor {ip} remote-as 65001\n neighbor {ip} timers 1 3\n"
            ));
        }
        bgpd.push_str(" address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n");
        self.frr("r", "", &bgpd);
    }

    /// FRR's zebra and bgpd on `host` with these configurations.
    fn frr(&mut self, host: &str, zebra_conf: &str, bgpd_conf: &str) {
        let d = host;
        let run = self.path(&format!("frr-{d}"));
        std::fs::create_dir_all(&run).unwrap();
        // FRR's daemons run as its user `frr` (root is not in its vty group).
        use std::os::unix::fs::PermissionsExt;
        let open = std::fs::Permissions::from_mode(0o777);
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&run, open).unwrap();
        let zebra = run.join("zebra.conf");
        std::fs::write(&zebra, zebra_conf).unwrap();
        let bgpd = run.join("bgpd.conf");
        std::fs::write(&bgpd, bgpd_conf).unwrap();
        let zapi = run.join("zserv.api");
        let argv = frr_daemon_argv(Path::new(FRR), "zebra", &zebra, &run);
        self.spawn(
            &format!("zebra-{d}"),
            d,
            &argv.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        assert!(
            wait_for(SETTLE, || zapi.exists()),
            "zebra did not start: {}",
            self.log(&format!("zebra-{d}"))
        );
        let argv = frr_daemon_argv(Path::new(FRR), "bgpd", &bgpd, &run);
        self.spawn(
            &format!("bgpd-{d}"),
            d,
            &argv.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    pub fn log(&self, tag: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{tag}.log"))).unwrap_or_default()
    }

    pub fn socket(&self, d: &str) -> PathBuf {
        self.path(&format!("{d}.sock"))
    }

    pub fn vigild(&mut self, d: &str) {
        let conf = self.path(&format!("{d}.toml"));
        std::fs::write(
            &conf,
            format!(
                r#"[director]
name = "{d}"
status_socket = "{}"
state_file = "{}"

[announce]
table = 100
withdraw_delay = "5s"

[[virtual_server]]
name = "web"
address = "{}:80"
scheduler = "mh"
scheduler_flags = ["port", "fallback"]
forwarding = "dr"
announce = true
quorum = {}
inhibit_on_failure = {}
check = {{ kind = "http", path = "/ok-{d}", interval = "500ms", timeout = "450ms", rise = 1, fall = {} }}
real_server = [{{ address = "{}:80" }}, {{ address = "{}:80" }}]
"#,
                self.socket(d).display(),
                self.path(&format!("{d}.json")).display(),
                self.vip,
                self.quorum,
                self.inhibit,
                self.fall,
                self.lab.ip("rs1"),
                self.lab.ip("rs2"),
            ),
        )
        .unwrap();
        if self.long_lived {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&conf)
                .unwrap();
            write!(
                f,
                r#"
[[virtual_server]]
name = "long"
address = "{}:81"
scheduler = "mh"
scheduler_flags = ["port", "fallback"]
forwarding = "dr"
announce = true
inhibit_on_failure = {}
check = {{ kind = "tcp", interval = "500ms", timeout = "450ms", rise = 1, fall = {} }}
real_server = [{{ address = "{}:81" }}, {{ address = "{}:81" }}]
"#,
                self.vip,
                self.inhibit,
                self.fall,
                self.lab.ip("rs1"),
                self.lab.ip("rs2"),
            )
            .unwrap();
        }
        let vigild = bin_path("vigild");
        let (vigild, conf) = (vigild.to_str().unwrap(), conf.to_str().unwrap());
        self.spawn(&format!("vigild-{d}"), d, &[vigild, "--config", conf]);
        let socket = self.socket(d);
        assert!(
            wait_for(SETTLE, || vigilctl(&socket, &["status"]).status.success()),
            "vigild on {d} did not come up: {}",
            self.log(&format!("vigild-{d}"))
        );
    }

    /// The directors the router's route to the VIP goes through.
    pub fn next_hops(&self) -> Vec<String> {
        let out = self
            .lab
            .run("r", ["ip", "route", "show", &format!("{}/32", self.vip)])
            .unwrap_or_default();
        let mut hops: Vec<String> = ["d1", "d2"]
            .iter()
            .filter(|d| out.contains(&format!("via {} ", self.lab.ip(d))))
            .map(|d| d.to_string())
            .collect();
        hops.sort();
        hops
    }

    /// Waits until the router's next hops are `want`; the time it took.
    pub fn wait_hops(&self, want: &[&str], what: &str) -> Duration {
        let start = Instant::now();
        let ok = wait_for(SETTLE, || self.next_hops() == want);
        assert!(
            ok,
            "{what}: the router's next hops are {:?}, not {want:?}\nrouter's BIRD:\n{}\n{}\nd1's table 100: {}\nd1 BIRD:\n{}\nd2 speaker:\n{}{}",
            self.next_hops(),
            self.lab
                .run(
                    "r",
                    [
                        "birdc",
                        "-s",
                        self.path("bird-r.ctl").to_str().unwrap(),
                        "show",
                        "protocols",
                        "all"
                    ]
                )
                .unwrap_or_default(),
            self.log("bird-r"),
            self.lab
                .run("d1", ["ip", "route", "show", "table", "100"])
                .unwrap_or_default(),
            self.log("bird-d1"),
            self.log("bird-d2"),
            self.log("bgpd-d2"),
        );
        start.elapsed()
    }

    pub fn announce_view(&self, d: &str) -> Value {
        let out = vigilctl(&self.socket(d), &["services", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["virtual_servers"][0]["announce"].clone()
    }

    /// Real server weights in `d`'s IPVS table (`ipvsadm -Ln`, the witness).
    pub fn weights(&self, d: &str) -> Vec<u32> {
        let out = self.lab.run(d, ["ipvsadm", "-Ln"]).unwrap();
        out.lines()
            .filter(|l| l.trim_start().starts_with("->") && !l.contains("RemoteAddress"))
            .filter_map(|l| l.split_whitespace().nth(3)?.parse().ok())
            .collect()
    }

    pub fn set_check_file(&self, d: &str, present: bool) {
        for rs in ["rs1", "rs2"] {
            let f = self.path(rs).join(format!("ok-{d}"));
            if present {
                std::fs::write(&f, format!("{rs}\n")).unwrap();
            } else {
                std::fs::remove_file(&f).unwrap();
            }
        }
    }

    /// Removes child `tag` from the lab's list and hands it over.
    pub fn take(&mut self, tag: &str) -> LabChild {
        let i = self.children.iter().position(|(t, _)| t == tag).unwrap();
        self.children.remove(i).1
    }

    /// A host crash of director `d`: its cable pulled, then vigild and its speaker
    /// killed. In this order: a speaker killed with the link up closes its BGP session
    /// (the kernel sends the FIN), which tells the router at once, unlike a crash.
    pub fn crash(&mut self, d: &str) {
        self.lab.set_link(d, false).unwrap();
        self.kill(&format!("vigild-{d}"));
        self.kill(&format!("bird-{d}"));
    }

    /// `net.ipv4.vs.sloppy_tcp=1` on director `d`: a mid-connection packet of a flow the
    /// router moved here creates an IPVS entry (`mh` picks the same real server).
    pub fn sloppy_tcp(&self, d: &str) {
        self.lab
            .run(d, ["sysctl", "-qw", "net.ipv4.vs.sloppy_tcp=1"])
            .unwrap();
    }

    /// The client reaches the VIP through the router, which forwards without redirects
    /// (a redirect would teach the client to bypass the router's ECMP route).
    pub fn client_via_router(&self) {
        let (r, vip) = (self.lab.ip("r"), self.vip);
        self.lab
            .run(
                "r",
                [
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.send_redirects=0",
                    "net.ipv4.conf.eth0.send_redirects=0",
                ],
            )
            .unwrap();
        self.lab
            .run(
                "client",
                [
                    "sh",
                    "-ec",
                    &format!(
                        "sysctl -qw net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.eth0.accept_redirects=0
                         ip route add {vip}/32 via {r}"
                    ),
                ],
            )
            .unwrap();
    }

    /// [`ECHO`] on port 81 of both real servers and, in the directors started after
    /// this, the virtual server "long" on VIP:81 (tcp check) over them.
    pub fn start_echo(&mut self) {
        let script = self.path("echo.py");
        std::fs::write(&script, ECHO).unwrap();
        let script = script.to_str().unwrap().to_string();
        for rs in ["rs1", "rs2"] {
            self.spawn(&format!("echo-{rs}"), rs, &["python3", &script, rs]);
        }
        self.long_lived = true;
    }

    /// Starts [`REQUESTS`] in the client: a fresh connection to VIP:80 every `every_ms`,
    /// each given `timeout_s`, until [`Lab::finish_requests`].
    pub fn start_requests(&mut self, tag: &str, every_ms: u32, timeout_s: u32) {
        let script = self.path("requests.py");
        std::fs::write(&script, REQUESTS).unwrap();
        let stop = self.path(&format!("{tag}.stop"));
        let _ = std::fs::remove_file(&stop);
        let (script, stop) = (
            script.to_str().unwrap().to_string(),
            stop.to_str().unwrap().to_string(),
        );
        let vip = self.vip.to_string();
        let (every, timeout) = (every_ms.to_string(), timeout_s.to_string());
        self.spawn(
            tag,
            "client",
            &["python3", &script, &vip, "80", &every, &timeout, &stop],
        );
        // The first answer: the client runs (python starts slowly in the emulated VM).
        let log = self.path(&format!("{tag}.log"));
        assert!(
            wait_for(SETTLE, || std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("started"))),
            "the request client did not start: {}",
            self.log(tag)
        );
    }

    /// Stops the client of [`Lab::start_requests`] and returns what it saw.
    pub fn finish_requests(&mut self, tag: &str) -> Requests {
        std::fs::write(self.path(&format!("{tag}.stop")), "").unwrap();
        let mut child = self.take(tag);
        assert!(
            child.wait_timeout(SETTLE).unwrap().is_some(),
            "the request client did not stop"
        );
        Requests::parse(&self.log(tag))
    }
}

/// What [`REQUESTS`] saw: one entry per request, in the order they were sent.
#[derive(Debug, Default)]
pub struct Requests {
    /// (sent, unix ms; answered or given up, unix ms; the real server, or `None`: failed)
    pub all: Vec<(u64, u64, Option<String>)>,
    /// The failure lines as printed, for messages.
    pub failures: Vec<String>,
}

impl Requests {
    fn parse(log: &str) -> Requests {
        let mut r = Requests::default();
        for line in log.lines() {
            let mut f = line.splitn(3, ' ');
            let (Some(t0), Some(t1), Some(what)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let (Ok(t0), Ok(t1)) = (t0.parse(), t1.parse()) else {
                continue;
            };
            if what.starts_with("FAILED") {
                r.failures.push(line.to_string());
                r.all.push((t0, t1, None));
            } else {
                r.all.push((t0, t1, Some(what.to_string())));
            }
        }
        r
    }

    pub fn failed(&self) -> usize {
        self.failures.len()
    }

    /// Requests sent in `[from, to)` (unix ms).
    pub fn sent_between(&self, from: u64, to: u64) -> usize {
        self.all
            .iter()
            .filter(|(t0, _, _)| (from..to).contains(t0))
            .count()
    }

    /// Requests sent in `[from, to)` (unix ms) that failed.
    pub fn failed_between(&self, from: u64, to: u64) -> usize {
        self.all
            .iter()
            .filter(|(t0, _, what)| what.is_none() && (from..to).contains(t0))
            .count()
    }

    /// The window in which new requests failed: from the first failed request's send
    /// to the send of the first request after the last failure that was answered
    /// (`None`: nothing failed).
    pub fn outage_ms(&self) -> Option<u64> {
        let first = self.all.iter().position(|x| x.2.is_none())?;
        let last = self.all.iter().rposition(|x| x.2.is_none())?;
        let end = self.all[last + 1..]
            .iter()
            .find(|x| x.2.is_some())
            .map_or(self.all[last].0, |x| x.0);
        Some(end.saturating_sub(self.all[first].0))
    }
}

/// A line echo server for long-lived connections: answers every line with its name.
pub const ECHO: &str = r#"
import socket, sys, threading
name = sys.argv[1]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", 81))
srv.listen(512)
def serve(c):
    with c:
        for _ in c.makefile("rb"):
            c.sendall((name + "\n").encode())
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

/// Client traffic: a GET of /id over a fresh connection (a new source port) every
/// EVERY ms, each in its own thread with TIMEOUT s, until the STOP file exists; then one
/// line per request: `SENT_MS DONE_MS REAL_SERVER` or `SENT_MS DONE_MS FAILED why`.
pub const REQUESTS: &str = r#"
import os, socket, sys, threading, time
vip, port, every, timeout, stop = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) / 1000, float(sys.argv[4]), sys.argv[5]
results, lock = [], threading.Lock()
def one(t0):
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.connect((vip, port))
        s.sendall(b"GET /id HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        body = data.split(b"\r\n\r\n", 1)[-1].decode().strip()
        what = body if data.startswith(b"HTTP/1.") and body else "FAILED bad answer %r" % data[:40]
    except OSError as e:
        what = "FAILED %s %s" % (type(e).__name__, e)
    finally:
        s.close()
    with lock:
        results.append((t0, int(time.time() * 1000), what))
print("started", flush=True)
threads = []
while not os.path.exists(stop):
    t = threading.Thread(target=one, args=(int(time.time() * 1000),))
    t.start()
    threads.append(t)
    time.sleep(every)
for t in threads:
    t.join()
for t0, t1, what in sorted(results):
    print(t0, t1, what)
"#;

/// Long-lived connections: N connections to VIP:PORT from source ports FIRST.., each
/// sends a line and reads the real server's name; then READY is created; once GO
/// exists each sends another line; prints `PORT FIRST_ANSWER SECOND_ANSWER` (FAILED for
/// none within 30 s).
pub const LONG_LIVED: &str = r#"
import os, socket, sys, time
vip, port, first, n, ready, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
def line(s):
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(100)
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data.decode().strip()
conns = []
for p in range(first, first + n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p))
    s.settimeout(20)
    try:
        s.connect((vip, port))
        s.sendall(b"1\n")
        conns.append((p, s, line(s)))
    except OSError:
        conns.append((p, None, "FAILED"))
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.05)
for p, s, _ in conns:
    if s:
        try:
            s.sendall(b"2\n")
        except OSError:
            pass
deadline = time.time() + 30
for p, s, a in conns:
    b = "FAILED"
    if s:
        try:
            s.settimeout(max(0.1, deadline - time.time()))
            b = line(s)
        except OSError:
            pass
    print(p, a, b, flush=True)
"#;
