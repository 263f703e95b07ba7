//! The reconciler and the policy against a real kernel: this binary runs inside the IPVS
//! kernel lab VM (see `vigil_testlab::kernel`).
//!
//! Witnesses independent of our own code: `ipvsadm -Ln` for what the table holds, and an
//! `nlmon` tap (the kernel's netlink monitor device) for what was written: every netlink
//! message sent to the kernel is copied to it, so "zero writes" is counted by the kernel
//! and not by the reconciler's own report. Real TCP traffic runs between network
//! namespaces inside the VM, which has no network card.

// A test binary, but with `harness = false` clippy can't tell (no #[test]), so the
// workspace's allow-unwrap-in-tests does not reach it.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use vigil_ipvs::codec::{Request, cmd};
use vigil_ipvs::policy::{Health, RealServer, ServicePolicy, SorryServer, evaluate};
use vigil_ipvs::reconcile::{Backoff, DesiredService, DesiredTable, Reconciler, dump};
use vigil_ipvs::{
    Client, Destination, Errno, Family, ForwardMethod, Netmask, Protocol, Service, ServiceFlags,
    ServiceKey, Tunnel, TunnelType,
};
use vigil_testlab::{kernel, run_ok as run};

mod common;
use common::{sa, setup};

fn table(services: impl IntoIterator<Item = DesiredService>) -> DesiredTable {
    services.into_iter().map(|d| (d.service.key, d)).collect()
}

fn nat(addr: &str, weight: u32) -> Destination {
    Destination::new(sa(addr), ForwardMethod::Masquerade).weight(weight)
}

// --- witness 1: ipvsadm -Ln ---------------------------------------------------------

/// Service line (as ipvsadm prints it, e.g. "TCP  192.0.2.1:80 wrr") -> destination
/// lines ("10.0.0.1:80 Masq 1").
type Listing = BTreeMap<String, BTreeSet<String>>;

fn ipvsadm() -> Listing {
    let out = run(&["ipvsadm", "-Ln"]);
    let mut t = Listing::new();
    let mut current = None;
    for line in out.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first().copied() {
            Some("TCP" | "UDP" | "SCTP" | "FWM") => {
                let s = w.join(" ");
                t.entry(s.clone()).or_default();
                current = Some(s);
            }
            Some("->") if w.get(1) != Some(&"RemoteAddress:Port") => {
                let s = current.clone().unwrap();
                t.get_mut(&s).unwrap().insert(w[1..4].join(" "));
            }
            _ => {}
        }
    }
    t
}

/// The services whose line starts with `prefix` ("TCP  192.0.2.1:80").
fn witness(prefix: &str) -> Option<(String, BTreeSet<String>)> {
    let prefix = prefix.split_whitespace().collect::<Vec<_>>().join(" ");
    ipvsadm()
        .into_iter()
        .find(|(s, _)| *s == prefix || s.starts_with(&format!("{prefix} ")))
}

fn dests(prefix: &str) -> BTreeSet<String> {
    witness(prefix)
        .unwrap_or_else(|| panic!("{prefix} not in ipvsadm -Ln:\n{}", run(&["ipvsadm", "-Ln"])))
        .1
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// --- witness 2: the nlmon tap -------------------------------------------------------

/// A netlink monitor: counts the IPVS requests user space sent to the kernel.
struct NetlinkTap {
    fd: OwnedFd,
    name: &'static str,
}

impl NetlinkTap {
    fn start() -> NetlinkTap {
        let name = "vrnlmon0";
        run(&["modprobe", "nlmon"]);
        let _ = Command::new("ip").args(["link", "del", name]).output();
        run(&["ip", "link", "add", name, "type", "nlmon"]);
        run(&["ip", "link", "set", name, "up"]);
        let cname = std::ffi::CString::new(name).unwrap();
        // SAFETY: plain libc calls with valid arguments; results checked.
        unsafe {
            let index = libc::if_nametoindex(cname.as_ptr());
            assert_ne!(index, 0);
            let proto = (libc::ETH_P_ALL as u16).to_be();
            let fd = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                i32::from(proto),
            );
            assert!(fd >= 0, "{}", std::io::Error::last_os_error());
            let fd = OwnedFd::from_raw_fd(fd);
            let size: libc::c_int = 64 << 20;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
            let mut ll: libc::sockaddr_ll = std::mem::zeroed();
            ll.sll_family = libc::AF_PACKET as u16;
            ll.sll_protocol = proto;
            ll.sll_ifindex = index as i32;
            let rc = libc::bind(
                fd.as_raw_fd(),
                (&ll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
            NetlinkTap { fd, name }
        }
    }

    /// (IPVS write requests, all IPVS requests) seen since the last call.
    fn take(&self, family: u16) -> (usize, usize) {
        let writes = [
            cmd::NEW_SERVICE,
            cmd::SET_SERVICE,
            cmd::DEL_SERVICE,
            cmd::NEW_DEST,
            cmd::SET_DEST,
            cmd::DEL_DEST,
            cmd::NEW_DAEMON,
            cmd::DEL_DAEMON,
            cmd::SET_CONFIG,
            cmd::ZERO,
            cmd::FLUSH,
        ];
        let (mut w, mut all) = (0, 0);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            // SAFETY: buf is valid for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                break;
            }
            let mut p = &buf[..n as usize];
            while p.len() >= 20 {
                let len = u32::from_ne_bytes(p[0..4].try_into().unwrap()) as usize;
                let ty = u16::from_ne_bytes(p[4..6].try_into().unwrap());
                let flags = u16::from_ne_bytes(p[6..8].try_into().unwrap());
                if ty == family && flags & 1 != 0 {
                    all += 1;
                    if writes.contains(&p[16]) {
                        w += 1;
                    }
                }
                let step = (len + 3) & !3;
                if len < 16 || step > p.len() {
                    break;
                }
                p = &p[step..];
            }
        }
        (w, all)
    }
}

impl Drop for NetlinkTap {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.name]).output();
    }
}

// --- trials -------------------------------------------------------------------------

/// Add, edit (weight, thresholds, forwarding, scheduler, flags, persistence), delete:
/// each change is the one expected write, and ipvsadm agrees.
fn every_operation() {
    let (_g, mut c) = setup();
    let k = ServiceKey::tcp(sa("192.0.2.10:80"));
    let mut r = Reconciler::new([], Backoff::default());
    let now = Instant::now();
    let base = DesiredService::new(Service::new(k, "wrr"))
        .with(nat("10.0.0.1:80", 1))
        .with(nat("10.0.0.2:80", 2));
    let rep = r.sync(&mut c, &table([base.clone()]), now).unwrap();
    assert_eq!(
        (rep.applied.add_service, rep.applied.add_destination),
        (1, 2)
    );
    assert_eq!(
        dests("TCP  192.0.2.10:80"),
        set(&["10.0.0.1:80 Masq 1", "10.0.0.2:80 Masq 2"])
    );

    // Weight.
    let d = base.clone().with(nat("10.0.0.2:80", 7));
    let rep = r.sync(&mut c, &table([d.clone()]), now).unwrap();
    assert_eq!(
        (rep.applied.update_destination, rep.applied.total()),
        (1, 1)
    );
    assert!(dests("TCP  192.0.2.10:80").contains("10.0.0.2:80 Masq 7"));

    // Forwarding method, in place: the kernel's SET_DEST changes it (no delete + add).
    let mut dr = nat("10.0.0.2:80", 7);
    dr.forward = ForwardMethod::DirectRoute;
    dr.upper_threshold = 500;
    dr.lower_threshold = 50;
    let d = d.with(dr.clone());
    let rep = r.sync(&mut c, &table([d.clone()]), now).unwrap();
    assert_eq!(
        (rep.applied.update_destination, rep.applied.total()),
        (1, 1)
    );
    assert!(dests("TCP  192.0.2.10:80").contains("10.0.0.2:80 Route 7"));
    let got = &dump(&mut c).unwrap()[&k].destinations[&dr.key()];
    assert_eq!(got, &dr);
    // To a GUE tunnel, in place too.
    let mut gue = dr.clone();
    gue.forward = ForwardMethod::Tunnel;
    gue.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        flags: 1,
    };
    let d = d.with(gue.clone());
    let rep = r.sync(&mut c, &table([d.clone()]), now).unwrap();
    assert_eq!(rep.applied.update_destination, 1);
    assert_eq!(dump(&mut c).unwrap()[&k].destinations[&gue.key()], gue);

    // Scheduler, flags and persistence: one SET_SERVICE.
    let mut d2 = d.clone();
    d2.service = Service::new(k, "sh").persistent(300);
    d2.service.flags |= ServiceFlags::SH_FALLBACK;
    d2.service.netmask = Netmask::V4("255.255.255.0".parse().unwrap());
    let rep = r.sync(&mut c, &table([d2.clone()]), now).unwrap();
    assert_eq!((rep.applied.update_service, rep.applied.total()), (1, 1));
    let (line, _) = witness("TCP  192.0.2.10:80").unwrap();
    assert_eq!(
        line,
        "TCP 192.0.2.10:80 sh (sh-fallback) persistent 300 mask 255.255.255.0"
    );

    // Delete one destination.
    let mut d3 = d2.clone();
    d3.destinations.remove(&gue.key());
    let rep = r.sync(&mut c, &table([d3.clone()]), now).unwrap();
    assert_eq!(
        (rep.applied.delete_destination, rep.applied.total()),
        (1, 1)
    );
    assert_eq!(dests("TCP  192.0.2.10:80"), set(&["10.0.0.1:80 Masq 1"]));

    // Nothing more to do.
    assert!(r.sync(&mut c, &table([d3]), now).unwrap().is_noop());

    // Service gone from the desired table: deleted, since it is ours.
    let rep = r.sync(&mut c, &DesiredTable::new(), now).unwrap();
    assert_eq!((rep.applied.delete_service, rep.applied.total()), (1, 1));
    assert!(ipvsadm().is_empty());
    assert!(r.owned().is_empty());
}

/// The schedulers this kernel ships: its `ip_vs_*.ko` modules, less the core, the
/// application helpers and the persistence engines.
fn kernel_schedulers() -> Vec<String> {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let dir = format!("/lib/modules/{}/kernel/net/netfilter/ipvs", release.trim());
    let mut out: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let stem = name.strip_prefix("ip_vs_")?.split('.').next()?.to_owned();
            (!matches!(stem.as_str(), "ftp" | "pe_sip")).then_some(stem)
        })
        .collect();
    out.sort();
    out
}

/// A service per scheduler the kernel offers, then every service switched to the next
/// scheduler: one SET_SERVICE each.
fn every_scheduler() {
    let (_g, mut c) = setup();
    let found = kernel_schedulers();
    eprintln!("schedulers in this kernel: {found:?}");
    // Debian 6.1 ships 13; a newer kernel adds twos. Never fewer.
    assert!(found.len() >= 13, "{found:?}");
    let scheds: Vec<&str> = found.iter().map(String::as_str).collect();
    let svc = |i: usize, s: &str| {
        let k = ServiceKey::tcp(SocketAddr::new([192, 0, 2, 20].into(), 8000 + i as u16));
        DesiredService::new(Service::new(k, s))
            .with(nat("10.0.0.1:80", 1))
            .with(nat("10.0.0.2:80", 3))
    };
    let mut r = Reconciler::new([], Backoff::default());
    let now = Instant::now();
    let want = table(scheds.iter().enumerate().map(|(i, s)| svc(i, s)));
    let rep = r.sync(&mut c, &want, now).unwrap();
    assert!(rep.errors.is_empty(), "{rep:?}");
    assert_eq!(rep.applied.add_service, scheds.len());
    let listing = ipvsadm();
    for (i, s) in scheds.iter().enumerate() {
        let line = format!("TCP 192.0.2.20:{} {s}", 8000 + i);
        assert!(listing.contains_key(&line), "{line} in {listing:?}");
    }
    let rotated = table(
        scheds
            .iter()
            .enumerate()
            .map(|(i, _)| svc(i, scheds[(i + 1) % scheds.len()])),
    );
    let rep = r.sync(&mut c, &rotated, now).unwrap();
    assert!(rep.errors.is_empty(), "{rep:?}");
    assert_eq!(
        (rep.applied.update_service, rep.applied.total()),
        (scheds.len(), scheds.len())
    );
    let listing = ipvsadm();
    for i in 0..scheds.len() {
        let line = format!(
            "TCP 192.0.2.20:{} {}",
            8000 + i,
            scheds[(i + 1) % scheds.len()]
        );
        assert!(listing.contains_key(&line), "{line} in {listing:?}");
    }
    assert!(
        Reconciler::new([], Backoff::default())
            .sync(&mut c, &rotated, now)
            .unwrap()
            .is_noop()
    );
}

/// IPv6, UDP, SCTP and fwmark services with every forwarding method, read back equal and
/// adopted without writes.
fn families_fwmark_and_forwarding() {
    let (_g, mut c) = setup();
    let v6 = ServiceKey::Addr {
        protocol: Protocol::Tcp,
        addr: sa("[2001:db8::1]:443"),
    };
    let mut s6 = Service::new(v6, "wlc").persistent(60);
    s6.netmask = Netmask::V6(64);
    let mut gre = Destination::new(sa("[2001:db8::13]:443"), ForwardMethod::Tunnel);
    gre.tunnel.kind = TunnelType::Gre;
    let d6 = DesiredService::new(s6)
        .with(Destination::new(sa("[2001:db8::10]:443"), ForwardMethod::Masquerade).weight(2))
        .with(Destination::new(
            sa("[2001:db8::11]:443"),
            ForwardMethod::DirectRoute,
        ))
        .with(Destination::new(
            sa("[2001:db8::12]:443"),
            ForwardMethod::Tunnel,
        ))
        .with(gre);
    let f4 = DesiredService::new(Service::new(ServiceKey::fwmark(Family::Inet, 42), "rr"))
        .with(Destination::new(sa("10.0.0.1:0"), ForwardMethod::DirectRoute).weight(5))
        // A mixed-family destination, allowed through a tunnel.
        .with(Destination::new(
            sa("[2001:db8::20]:0"),
            ForwardMethod::Tunnel,
        ));
    let f6 = DesiredService::new(Service::new(ServiceKey::fwmark(Family::Inet6, 42), "lc")).with(
        Destination::new(sa("[2001:db8::21]:0"), ForwardMethod::DirectRoute),
    );
    let udp = DesiredService::new(Service::new(ServiceKey::udp(sa("192.0.2.30:53")), "rr"))
        .with(nat("10.0.0.53:53", 1));
    let sctp = DesiredService::new(Service::new(
        ServiceKey::Addr {
            protocol: Protocol::Sctp,
            addr: sa("192.0.2.30:3868"),
        },
        "rr",
    ))
    .with(nat("10.0.0.54:3868", 1));
    let want = table([d6, f4, f6, udp, sctp]);
    let mut r = Reconciler::new([], Backoff::default());
    let rep = r.sync(&mut c, &want, Instant::now()).unwrap();
    assert!(rep.errors.is_empty(), "{rep:?}");
    assert_eq!(rep.applied.total(), 5 + 4 + 2 + 1 + 1 + 1);
    // What the kernel holds is exactly what was desired.
    let got = dump(&mut c).unwrap();
    for (k, d) in &want {
        assert_eq!(got[k].service, d.service, "{k}");
        assert_eq!(got[k].destinations, d.destinations, "{k}");
    }
    let listing = ipvsadm();
    assert_eq!(listing.len(), 5, "{listing:?}");
    assert_eq!(dests("FWM 42 IPv6"), set(&["[2001:db8::21]:0 Route 1"]));
    assert!(dests("TCP [2001:db8::1]:443").contains("[2001:db8::13]:443 Tunnel 1"));
    assert!(dests("FWM 42 rr").contains("[2001:db8::20]:0 Tunnel 1"));
    // A fresh reconciler adopts it all: zero writes.
    let rep = Reconciler::new([], Backoff::default())
        .sync(&mut c, &want, Instant::now())
        .unwrap();
    assert!(rep.is_noop() && rep.planned.total() == 0, "{rep:?}");
}

/// Destinations on local addresses: older kernels turned their forwarding into
/// "local" behind our back, which would make every sync rewrite them. This one keeps
/// what was written, so a second reconciler has nothing to do.
fn local_destinations_round_trip() {
    let (_g, mut c) = setup();
    let want =
        table([
            DesiredService::new(Service::new(ServiceKey::tcp(sa("192.0.2.70:80")), "rr"))
                .with(nat("127.0.0.1:8080", 1))
                .with(Destination::new(
                    sa("127.0.0.2:80"),
                    ForwardMethod::DirectRoute,
                ))
                .with(Destination::new(sa("127.0.0.3:80"), ForwardMethod::Local)),
        ]);
    let rep = Reconciler::new([], Backoff::default())
        .sync(&mut c, &want, Instant::now())
        .unwrap();
    assert_eq!(rep.applied.total(), 4);
    let got = dump(&mut c).unwrap();
    for (k, d) in &want {
        assert_eq!(got[k].destinations, d.destinations);
    }
    let rep = Reconciler::new([], Backoff::default())
        .sync(&mut c, &want, Instant::now())
        .unwrap();
    assert_eq!(rep.planned.total(), 0, "{rep:?}");
}

fn big_table(services: u32, reals: u32) -> DesiredTable {
    (0..services)
        .map(|i| {
            let vip = SocketAddr::new(
                IpAddr::V4(
                    [
                        10,
                        200 + (i / 65536) as u8,
                        (i / 256 % 256) as u8,
                        (i % 256) as u8,
                    ]
                    .into(),
                ),
                80,
            );
            let mut d = DesiredService::new(Service::new(ServiceKey::tcp(vip), "wrr"));
            for j in 0..reals {
                let k = i * reals + j;
                let rip = SocketAddr::new(
                    IpAddr::V4(
                        [
                            172,
                            16 + (k / 65536) as u8,
                            (k / 256 % 256) as u8,
                            (k % 256) as u8,
                        ]
                        .into(),
                    ),
                    80,
                );
                d = d.with(nat(&rip.to_string(), 1 + j % 3));
            }
            (d.service.key, d)
        })
        .collect()
}

/// The restart rule: a new reconciler with the same desired table writes nothing, counted
/// by the kernel's netlink monitor. A change after the restart is exactly one write.
fn adopt_on_restart_writes_nothing() {
    let (_g, mut c) = setup();
    let tap = NetlinkTap::start();
    let family = c.family_id();
    let want = big_table(300, 5);
    let mut first = Reconciler::new([], Backoff::default());
    let rep = first.sync(&mut c, &want, Instant::now()).unwrap();
    assert_eq!(rep.applied.total(), 300 * 6);
    let (w, _) = tap.take(family);
    assert_eq!(w, 300 * 6, "the tap sees every write");
    let before = run(&["ipvsadm", "-Ln"]);
    drop(first);

    // "Restart": a new client and reconciler, same config, same health.
    let mut c = Client::connect().unwrap();
    let mut second = Reconciler::new([], Backoff::default());
    let t0 = Instant::now();
    let rep = second.sync(&mut c, &want, Instant::now()).unwrap();
    let took = t0.elapsed();
    let (w, all) = tap.take(family);
    eprintln!(
        "adopt: {} services read in {:.3} s; tap: {w} writes among {all} IPVS requests",
        want.len(),
        took.as_secs_f64()
    );
    assert!(rep.full_dump && rep.is_noop(), "{rep:?}");
    assert_eq!(rep.planned.total(), 0);
    assert_eq!(w, 0, "the kernel saw writes on restart");
    assert!(all > 300, "the tap saw the dump ({all} requests)");
    assert_eq!(run(&["ipvsadm", "-Ln"]), before);

    // One real server toggled after the restart: exactly one write.
    let key = *want.keys().nth(150).unwrap();
    let mut d = want[&key].clone();
    let first_dest = *d.destinations.keys().next().unwrap();
    d.destinations.get_mut(&first_dest).unwrap().weight = 0;
    let rep = second
        .sync_service(&mut c, key, Some(&d), Instant::now())
        .unwrap();
    assert_eq!(rep.applied.total(), 1);
    assert_eq!(tap.take(family).0, 1);
}

/// The restart rule with the policy in the loop: right after a restart every check is
/// unknown. Whether the service was on its real servers or on its sorry server, the
/// first sync writes nothing; the first verdicts then write only what changed.
fn restart_with_unknown_health_writes_nothing() {
    let (_g, mut c) = setup();
    let tap = NetlinkTap::start();
    let family = c.family_id();
    let key = ServiceKey::tcp(sa("192.0.2.80:80"));
    let mut p = ServicePolicy::new(
        Service::new(key, "wrr"),
        (1..=3)
            .map(|i| RealServer::new(sa(&format!("10.0.8.{i}:80")), 5, ForwardMethod::Masquerade))
            .collect(),
    );
    p.quorum = 2;
    p.sorry_server = Some(SorryServer {
        addr: sa("10.0.8.99:80"),
        forward: ForwardMethod::Masquerade,
    });
    let sync = |p: &ServicePolicy, prev: Option<bool>, r: &mut Reconciler, c: &mut Client| {
        let e = evaluate(p, prev);
        let rep = r
            .sync(c, &table([e.desired.clone()]), Instant::now())
            .unwrap();
        assert!(rep.errors.is_empty(), "{rep:?}");
        (e.quorum, rep.applied.total())
    };
    for (label, before, expect) in [
        (
            "on the real servers",
            Health::Up,
            vec![
                "10.0.8.1:80 Masq 5",
                "10.0.8.2:80 Masq 5",
                "10.0.8.3:80 Masq 5",
            ],
        ),
        (
            "on the sorry server",
            Health::Down,
            vec!["10.0.8.99:80 Masq 1"],
        ),
    ] {
        c.flush().unwrap();
        for r in &mut p.reals {
            r.health = before;
        }
        let mut first = Reconciler::new([], Backoff::default());
        sync(&p, None, &mut first, &mut c);
        assert_eq!(dests("TCP 192.0.2.80:80"), set(&expect), "{label}");
        let listing = run(&["ipvsadm", "-Ln"]);
        tap.take(family);

        // Restart: new reconciler, every check unknown, either initial guess.
        for assume_up in [true, false] {
            for r in &mut p.reals {
                r.health = Health::Unknown { assume_up };
            }
            let mut second = Reconciler::new([], Backoff::default());
            let (q, writes) = sync(&p, None, &mut second, &mut c);
            assert_eq!(writes, 0, "{label}, assume_up={assume_up}");
            assert_eq!(tap.take(family).0, 0, "{label}: the kernel saw writes");
            assert_eq!(run(&["ipvsadm", "-Ln"]), listing, "{label}");
            // The verdicts come in, the same as before the restart: still nothing.
            for r in &mut p.reals {
                r.health = before;
            }
            let (_, writes) = sync(&p, q, &mut second, &mut c);
            assert_eq!(writes, 0, "{label}: verdicts equal to the kernel's state");
            assert_eq!(tap.take(family).0, 0);
        }
    }
    // And a real change after all that: the reals return, the sorry server goes.
    for r in &mut p.reals {
        r.health = Health::Up;
    }
    let mut r = Reconciler::new([], Backoff::default());
    let (q, writes) = sync(&p, Some(false), &mut r, &mut c);
    assert_eq!((q, writes), (Some(true), 4));
    assert_eq!(dests("TCP 192.0.2.80:80").len(), 3);
}

/// Services created by someone else are never touched, not even when the director
/// deletes all of its own.
fn foreign_services_are_left_alone() {
    let (_g, mut c) = setup();
    run(&["ipvsadm", "-A", "-t", "192.0.2.40:80", "-s", "rr"]);
    run(&[
        "ipvsadm",
        "-a",
        "-t",
        "192.0.2.40:80",
        "-r",
        "10.0.0.1:80",
        "-m",
        "-w",
        "3",
    ]);
    run(&["ipvsadm", "-A", "-u", "192.0.2.40:53", "-s", "wlc"]);
    run(&["ipvsadm", "-A", "-f", "77", "-s", "sh"]);
    let foreign_before: Listing = ipvsadm();
    let tap = NetlinkTap::start();
    let family = c.family_id();

    // Ours: one service; a previous config also had 192.0.2.41:80 (owned, gone now).
    run(&["ipvsadm", "-A", "-t", "192.0.2.41:80", "-s", "rr"]);
    tap.take(family);
    let ours = ServiceKey::tcp(sa("192.0.2.42:80"));
    let old = ServiceKey::tcp(sa("192.0.2.41:80"));
    let mut r = Reconciler::new([old], Backoff::default());
    let want = table([DesiredService::new(Service::new(ours, "rr")).with(nat("10.0.0.9:80", 1))]);
    let rep = r.sync(&mut c, &want, Instant::now()).unwrap();
    assert_eq!(
        (
            rep.applied.add_service,
            rep.applied.add_destination,
            rep.applied.delete_service
        ),
        (1, 1, 1)
    );
    assert_eq!(tap.take(family).0, 3);
    let mut now = ipvsadm();
    assert!(now.remove("TCP 192.0.2.42:80 rr").is_some());
    assert_eq!(now, foreign_before, "foreign services changed");

    // Drop everything of ours.
    let rep = r
        .sync(&mut c, &DesiredTable::new(), Instant::now())
        .unwrap();
    assert_eq!(rep.applied.delete_service, 1);
    assert_eq!(ipvsadm(), foreign_before);
    assert_eq!(tap.take(family).0, 1);
}

/// Errors of single writes: the others go through, the failed ones are retried after
/// their back-off, and succeed once the cause is gone.
fn errors_are_isolated_and_retried() {
    let (_g, mut c) = setup();
    let good = ServiceKey::tcp(sa("192.0.2.50:80"));
    let bad_sched = ServiceKey::tcp(sa("192.0.2.51:80"));
    let mut d_good = DesiredService::new(Service::new(good, "rr"))
        .with(nat("10.0.0.1:80", 1))
        .with(nat("10.0.0.2:80", 1));
    // A mixed-family destination without a tunnel: the kernel refuses it (EINVAL).
    let mixed = Destination::new(sa("[2001:db8::9]:80"), ForwardMethod::Masquerade);
    d_good = d_good.with(mixed.clone());
    let d_bad = DesiredService::new(Service::new(bad_sched, "nosuch")).with(nat("10.0.0.3:80", 1));
    let want = table([d_good.clone(), d_bad.clone()]);
    let backoff = Backoff {
        initial: Duration::from_secs(10),
        factor: 2,
        max: Duration::from_secs(60),
    };
    let mut r = Reconciler::new([], backoff);
    let t0 = Instant::now();
    let rep = r.sync(&mut c, &want, t0).unwrap();
    let texts: Vec<String> = rep.errors.iter().map(|e| e.error.to_string()).collect();
    eprintln!("errors: {texts:#?}");
    assert_eq!(rep.errors.len(), 3, "{texts:?}");
    assert_eq!(
        texts[0],
        "adding destination [2001:db8::9]:80 to tcp 192.0.2.50:80: Invalid argument (EINVAL)"
    );
    assert!(
        texts[1].starts_with("adding service tcp 192.0.2.51:80: "),
        "{}",
        texts[1]
    );
    assert_eq!(rep.errors[1].error.errno(), Some(Errno::ENOENT));
    assert_eq!(rep.errors[2].error.errno(), Some(Errno::ESRCH));
    assert_eq!(rep.applied.total(), 3, "the good service and its two reals");
    assert_eq!(
        dests("TCP  192.0.2.50:80"),
        set(&["10.0.0.1:80 Masq 1", "10.0.0.2:80 Masq 1"])
    );
    assert_eq!(r.next_retry(), Some(t0 + Duration::from_secs(10)));
    assert_eq!(r.counters().write_errors, 3);

    // Before the back-off: nothing is sent.
    let rep = r.sync(&mut c, &want, t0 + Duration::from_secs(5)).unwrap();
    assert_eq!(
        (rep.deferred, rep.applied.total(), rep.errors.len()),
        (3, 0, 0)
    );
    // After: retried, fails again, twice the wait.
    let t1 = t0 + Duration::from_secs(10);
    let rep = r.sync(&mut c, &want, t1).unwrap();
    assert_eq!(rep.errors.len(), 3);
    assert_eq!(rep.errors[0].failures, 2);
    assert_eq!(r.next_retry(), Some(t1 + Duration::from_secs(20)));

    // The config is fixed (tunnel; a real scheduler): the next sync gets everything in.
    let mut tunnelled = mixed.clone();
    tunnelled.forward = ForwardMethod::Tunnel;
    let mut d_fixed = d_bad.clone();
    d_fixed.service.scheduler = "wrr".into();
    let want = table([d_good.with(tunnelled), d_fixed]);
    let rep = r.sync(&mut c, &want, t1).unwrap();
    assert!(rep.errors.is_empty(), "{rep:?}");
    assert_eq!(rep.applied.total(), 3);
    assert_eq!(r.next_retry(), None);
    assert!(dests("TCP  192.0.2.50:80").contains("[2001:db8::9]:80 Tunnel 1"));
    assert_eq!(dests("TCP  192.0.2.51:80"), set(&["10.0.0.3:80 Masq 1"]));

    // Drift: someone deletes one of our destinations; a stale mark repairs it.
    run(&["ipvsadm", "-d", "-t", "192.0.2.51:80", "-r", "10.0.0.3:80"]);
    r.mark_stale();
    let rep = r.sync(&mut c, &want, t1).unwrap();
    assert_eq!((rep.full_dump, rep.applied.add_destination), (true, 1));
}

// --- traffic: namespaces inside the VM ------------------------------------------------

struct Net {
    names: Vec<String>,
    servers: Vec<Child>,
}

impl Drop for Net {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for n in &self.names {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
            let _ = Command::new("ip")
                .args(["link", "del", &format!("v{n}")])
                .output();
        }
    }
}

/// Namespace `name` wired to the root namespace (the director) on 10.77.`net`.0/24: the
/// director is .1, the namespace .2 with its default route through the director.
fn wire(net: &mut Net, name: &str, subnet: u8) {
    let _ = Command::new("ip").args(["netns", "del", name]).output();
    run(&["ip", "netns", "add", name]);
    net.names.push(name.to_owned());
    let host = format!("v{name}");
    run(&[
        "ip", "link", "add", &host, "type", "veth", "peer", "name", "eth0", "netns", name,
    ]);
    run(&[
        "ip",
        "addr",
        "add",
        &format!("10.77.{subnet}.1/24"),
        "dev",
        &host,
    ]);
    run(&["ip", "link", "set", &host, "up"]);
    let ns = |args: &[&str]| {
        let mut v = vec!["ip", "netns", "exec", name];
        v.extend_from_slice(args);
        run(&v);
    };
    ns(&[
        "ip",
        "addr",
        "add",
        &format!("10.77.{subnet}.2/24"),
        "dev",
        "eth0",
    ]);
    ns(&["ip", "link", "set", "eth0", "up"]);
    ns(&["ip", "link", "set", "lo", "up"]);
    ns(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &format!("10.77.{subnet}.1"),
    ]);
}

fn serve(net: &mut Net, name: &str, id: &str) {
    let dir = format!("/tmp/vigil-reconcile-{name}");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(format!("{dir}/id"), format!("{id}\n")).unwrap();
    let child = Command::new("ip")
        .args([
            "netns", "exec", name, "busybox", "httpd", "-f", "-p", "8080", "-h", &dir,
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    net.servers.push(child);
}

/// `n` HTTP requests to `vip` from inside namespace `ns`, on a thread that entered it:
/// the body of each answer, counted.
fn requests(ns: &str, vip: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    vigil_testlab::run_in_netns(format!("/run/netns/{ns}"), || {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let mut s = TcpStream::connect_timeout(&vip, Duration::from_secs(5)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /id HTTP/1.0\r\n\r\n").unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).unwrap();
            let body = reply.rsplit("\r\n\r\n").next().unwrap().trim().to_owned();
            *seen.entry(body).or_insert(0) += 1;
        }
        seen
    })
    .unwrap()
}

fn wait_http(addr: &str) {
    let ok = vigil_testlab::wait_for(Duration::from_secs(30), || {
        TcpStream::connect_timeout(&sa(addr), Duration::from_millis(200)).is_ok()
    });
    assert!(ok, "{addr} never listened");
}

/// Real TCP through a NAT virtual service: the policy marks a server down, the
/// reconciler applies it, and requests reach only the healthy ones; back up, it serves
/// again; below quorum the sorry server answers alone.
fn traffic_reaches_only_healthy_servers() {
    let (_g, mut c) = setup();
    let mut net = Net {
        names: vec![],
        servers: vec![],
    };
    wire(&mut net, "vrc", 1);
    for (i, name) in ["vrrs1", "vrrs2", "vrrs3", "vrsorry"].iter().enumerate() {
        wire(&mut net, name, 2 + i as u8);
        serve(&mut net, name, name.trim_start_matches("vr"));
    }
    run(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    let vip = sa("10.77.1.100:80");
    run(&["ip", "addr", "add", "10.77.1.100/32", "dev", "vvrc"]);
    for i in 2..=5 {
        wait_http(&format!("10.77.{i}.2:8080"));
    }

    let key = ServiceKey::tcp(vip);
    let mut policy = ServicePolicy::new(
        Service::new(key, "rr"),
        (2..=4)
            .map(|i| {
                RealServer::new(
                    SocketAddr::new([10, 77, i, 2].into(), 8080),
                    1,
                    ForwardMethod::Masquerade,
                )
            })
            .collect(),
    );
    policy.quorum = 2;
    policy.sorry_server = Some(SorryServer {
        addr: sa("10.77.5.2:8080"),
        forward: ForwardMethod::Masquerade,
    });
    let mut r = Reconciler::new([], Backoff::default());
    let mut quorum = None;
    let mut step = |policy: &ServicePolicy, c: &mut Client| {
        let e = evaluate(policy, quorum);
        quorum = e.quorum;
        let rep = r
            .sync_service(c, key, Some(&e.desired), Instant::now())
            .unwrap();
        assert!(rep.errors.is_empty(), "{rep:?}");
        (rep, e.quorum)
    };
    let counts = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };

    let (_, q) = step(&policy, &mut c);
    assert_eq!(q, Some(true));
    let seen = requests("vrc", vip, 30);
    eprintln!("all up: {seen:?}");
    assert_eq!(seen, counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]));

    // rs2 fails: removed.
    policy.reals[1].health = Health::Down;
    let (rep, _) = step(&policy, &mut c);
    assert_eq!(
        (rep.applied.delete_destination, rep.applied.total()),
        (1, 1)
    );
    let seen = requests("vrc", vip, 30);
    eprintln!("rs2 down: {seen:?}");
    assert_eq!(seen, counts(&[("rs1", 15), ("rs3", 15)]));
    assert_eq!(
        dests("TCP  10.77.1.100:80"),
        set(&["10.77.2.2:8080 Masq 1", "10.77.4.2:8080 Masq 1"])
    );

    // Back up: serves again.
    policy.reals[1].health = Health::Up;
    let (rep, _) = step(&policy, &mut c);
    assert_eq!((rep.applied.add_destination, rep.applied.total()), (1, 1));
    let seen = requests("vrc", vip, 30);
    eprintln!("rs2 back: {seen:?}");
    assert_eq!(seen, counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]));

    // Inhibit: rs3 fails but stays with weight 0, and gets nothing new.
    policy.inhibit_on_failure = true;
    policy.reals[2].health = Health::Down;
    let (rep, _) = step(&policy, &mut c);
    assert_eq!(
        (rep.applied.update_destination, rep.applied.total()),
        (1, 1)
    );
    assert!(dests("TCP  10.77.1.100:80").contains("10.77.4.2:8080 Masq 0"));
    let seen = requests("vrc", vip, 20);
    eprintln!("rs3 inhibited: {seen:?}");
    assert_eq!(seen, counts(&[("rs1", 10), ("rs2", 10)]));

    // rs2 fails too: 1 healthy < quorum 2, the sorry server answers alone.
    policy.reals[1].health = Health::Down;
    let (_, q) = step(&policy, &mut c);
    assert_eq!(q, Some(false));
    let seen = requests("vrc", vip, 10);
    eprintln!("quorum lost: {seen:?}");
    assert_eq!(seen, counts(&[("sorry", 10)]));
    assert!(dests("TCP  10.77.1.100:80").contains("10.77.5.2:8080 Masq 1"));

    // Both return: the reals serve, the sorry server is gone.
    policy.reals[1].health = Health::Up;
    policy.reals[2].health = Health::Up;
    let (_, q) = step(&policy, &mut c);
    assert_eq!(q, Some(true));
    let seen = requests("vrc", vip, 30);
    eprintln!("quorum back: {seen:?}");
    assert_eq!(seen, counts(&[("rs1", 10), ("rs2", 10), ("rs3", 10)]));
    assert_eq!(dests("TCP  10.77.1.100:80").len(), 3);
    drop(net);
    let _ = Command::new("ip")
        .args(["addr", "del", "10.77.1.100/32", "dev", "vvrc"])
        .output();
}

/// The pure layer alone: a plan is plain requests, applied with `Client::apply`.
fn plans_are_plain_requests() {
    let (_g, mut c) = setup();
    let k = ServiceKey::tcp(sa("192.0.2.60:80"));
    let want = table([DesiredService::new(Service::new(k, "rr")).with(nat("10.0.0.1:80", 1))]);
    let plan = vigil_ipvs::reconcile::diff(&want, &dump(&mut c).unwrap(), &BTreeSet::new());
    assert_eq!(plan.requests[0], Request::AddService(Service::new(k, "rr")));
    let results = c.apply(&plan.requests).unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert!(
        vigil_ipvs::reconcile::diff(&want, &dump(&mut c).unwrap(), &BTreeSet::new()).is_empty()
    );
}

/// The kernel's destination list of `key`, in its order (the order mh builds its table
/// from).
fn list_order(c: &mut Client, key: &ServiceKey) -> Vec<SocketAddr> {
    let got = c.destinations(key).unwrap();
    got.into_iter().map(|d| d.destination.addr).collect()
}

/// mh keeps every real server in its configured place: a server that fails and recovers
/// leaves the kernel's destination list (which `ip_vs_mh.c` builds its table from) as a
/// fresh start builds it, and so does a reload inserting a server mid-list.
fn mh_list_order_survives_failures_and_inserts() {
    let (_g, mut c) = setup();
    let pol = |port: u16, reals: &[(&str, Health)]| {
        let k = ServiceKey::tcp(SocketAddr::new([192, 0, 2, 30].into(), port));
        let reals = reals
            .iter()
            .map(|(a, h)| RealServer::new(sa(a), 1, ForwardMethod::DirectRoute).with_health(*h))
            .collect();
        ServicePolicy::new(Service::new(k, "mh"), reals)
    };
    let up = |a: &'static str| (a, Health::Up);
    let now = Instant::now();
    // Configured C, A, B (not address order).
    let cab = [up("10.0.0.3:80"), up("10.0.0.1:80"), up("10.0.0.2:80")];
    let mut r = Reconciler::new([], Backoff::default());
    let one = pol(80, &cab);
    let key = one.service.key;
    let want = table([evaluate(&one, None).desired]);
    assert!(r.sync(&mut c, &want, now).unwrap().errors.is_empty());
    let fresh = list_order(&mut c, &key);
    // The kernel adds at the head of its list: the reverse of the configured order.
    assert_eq!(
        fresh,
        [sa("10.0.0.2:80"), sa("10.0.0.1:80"), sa("10.0.0.3:80")]
    );
    // C fails then recovers: kept at weight 0 meanwhile, so its place stays.
    let mut down = cab;
    down[0].1 = Health::Down;
    let e = evaluate(&pol(80, &down), Some(true));
    r.sync_service(&mut c, key, Some(&e.desired), now).unwrap();
    let w: Vec<u32> = c
        .destinations(&key)
        .unwrap()
        .iter()
        .map(|d| d.destination.weight)
        .collect();
    assert_eq!(w, [1, 1, 0]);
    let e = evaluate(&pol(80, &cab), Some(true));
    r.sync_service(&mut c, key, Some(&e.desired), now).unwrap();
    assert_eq!(list_order(&mut c, &key), fresh);
    // A reload inserts D after C: the list is the one a fresh start of the new config
    // builds (on another port, compared).
    let cdab = [
        up("10.0.0.3:80"),
        up("10.0.0.4:80"),
        up("10.0.0.1:80"),
        up("10.0.0.2:80"),
    ];
    let rep = r
        .sync(
            &mut c,
            &table([evaluate(&pol(80, &cdab), Some(true)).desired]),
            now,
        )
        .unwrap();
    assert!(rep.errors.is_empty(), "{rep:?}");
    let mut r2 = Reconciler::new([], Backoff::default());
    let other = pol(81, &cdab);
    let both = table([
        evaluate(&pol(80, &cdab), Some(true)).desired,
        evaluate(&other, None).desired,
    ]);
    r2.sync(&mut c, &both, now).unwrap();
    let reloaded = list_order(&mut c, &key);
    eprintln!("mh list after a mid-list insert: {reloaded:?}");
    assert_eq!(reloaded, list_order(&mut c, &other.service.key));
    assert_eq!(reloaded.len(), 4);
}

fn main() {
    kernel::main(vec![
        kernel::trial("every_operation", every_operation),
        kernel::trial("every_scheduler", every_scheduler),
        kernel::trial(
            "families_fwmark_and_forwarding",
            families_fwmark_and_forwarding,
        ),
        kernel::trial(
            "local_destinations_round_trip",
            local_destinations_round_trip,
        ),
        kernel::trial(
            "adopt_on_restart_writes_nothing",
            adopt_on_restart_writes_nothing,
        ),
        kernel::trial(
            "restart_with_unknown_health_writes_nothing",
            restart_with_unknown_health_writes_nothing,
        ),
        kernel::trial(
            "foreign_services_are_left_alone",
            foreign_services_are_left_alone,
        ),
        kernel::trial(
            "errors_are_isolated_and_retried",
            errors_are_isolated_and_retried,
        ),
        kernel::trial(
            "traffic_reaches_only_healthy_servers",
            traffic_reaches_only_healthy_servers,
        ),
        kernel::trial("plans_are_plain_requests", plans_are_plain_requests),
        kernel::trial(
            "mh_list_order_survives_failures_and_inserts",
            mh_list_order_survives_failures_and_inserts,
        ),
    ]);
}
