//! The IPVS client against a real kernel: this binary runs inside the IPVS kernel lab VM
//! (see `vigil_testlab::kernel`), where it owns the whole IPVS table.
//!
//! The trials share that one table and several of them flush it, so they run one at a
//! time (a process-wide lock). `ipvsadm -Ln` is the independent witness: what it lists
//! must be what our dump decodes.

// A test binary, but with `harness = false` clippy can't tell (no #[test]), so the
// workspace's allow-unwrap-in-tests does not reach it.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use vigil_ipvs::codec::Request;
use vigil_ipvs::{
    Client, Destination, DestinationKey, Errno, Error, Family, ForwardMethod, Netmask, Service,
    ServiceFlags, ServiceKey, SyncDaemon, SyncState, Timeouts, Tunnel, TunnelType,
};
use vigil_testlab::{kernel, run_ok as run};

mod common;
use common::{sa, setup};

// --- the witness: ipvsadm -Ln parsed ------------------------------------------------

/// (service as ipvsadm names it, scheduler) -> set of (destination, forward, weight).
type Table = BTreeMap<(String, String), BTreeSet<(String, String, u32)>>;

fn ipvsadm_table() -> Table {
    let out = run(&["ipvsadm", "-Ln"]);
    let mut table = Table::new();
    let mut current: Option<(String, String)> = None;
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.first().copied() {
            Some("TCP" | "UDP" | "SCTP" | "FWM") => {
                // "FWM  7 IPv6 rr" names the family of an IPv6 fwmark service.
                let (name, sched) = if t[0] == "FWM" && t.get(2) == Some(&"IPv6") {
                    (format!("FWM {} IPv6", t[1]), t[3])
                } else {
                    (format!("{} {}", t[0], t[1]), t[2])
                };
                let key = (name, sched.to_owned());
                table.entry(key.clone()).or_default();
                current = Some(key);
            }
            Some("->") if t.get(1) != Some(&"RemoteAddress:Port") => {
                let key = current.clone().expect("destination before any service");
                table.get_mut(&key).unwrap().insert((
                    t[1].to_owned(),
                    t[2].to_owned(),
                    t[3].parse().unwrap(),
                ));
            }
            _ => {}
        }
    }
    table
}

fn ipvsadm_name(k: &ServiceKey) -> String {
    match k {
        ServiceKey::Addr { protocol, addr } => {
            format!("{} {addr}", protocol.to_string().to_uppercase())
        }
        ServiceKey::Fwmark {
            family: Family::Inet,
            mark,
        } => format!("FWM {mark}"),
        ServiceKey::Fwmark {
            family: Family::Inet6,
            mark,
        } => format!("FWM {mark} IPv6"),
    }
}

fn forward_name(f: ForwardMethod) -> &'static str {
    match f {
        ForwardMethod::Masquerade => "Masq",
        ForwardMethod::Local => "Local",
        ForwardMethod::Tunnel => "Tunnel",
        ForwardMethod::DirectRoute => "Route",
        ForwardMethod::Bypass => "Bypass",
    }
}

/// Our dump, rendered the way the witness is parsed.
fn our_table(c: &mut Client) -> Table {
    let mut table = Table::new();
    for s in c.services().unwrap() {
        let dests = c
            .destinations(&s.service.key)
            .unwrap()
            .into_iter()
            .map(|d| {
                let d = d.destination;
                (
                    d.addr.to_string(),
                    forward_name(d.forward).to_owned(),
                    d.weight,
                )
            })
            .collect();
        table.insert(
            (ipvsadm_name(&s.service.key), s.service.scheduler.clone()),
            dests,
        );
    }
    table
}

fn assert_witness_agrees(c: &mut Client) {
    let ours = our_table(c);
    let theirs = ipvsadm_table();
    assert_eq!(ours, theirs, "our dump vs ipvsadm -Ln");
}

fn kernel_errno(r: Result<(), Error>) -> (Errno, String) {
    match r {
        Err(e @ Error::Kernel { errno, .. }) => (errno, e.to_string()),
        other => panic!("expected a kernel error, got {other:?}"),
    }
}

// --- trials ------------------------------------------------------------------------

fn info_and_family() {
    let (_g, mut c) = setup();
    assert_ne!(c.family_id(), 0);
    let info = c.info().unwrap();
    assert_eq!(info.version_triple(), (1, 2, 1));
    assert!(info.conn_tab_size > 0);
    assert!(c.services().unwrap().is_empty());
}

fn ipv4_service_lifecycle() {
    let (_g, mut c) = setup();
    let key = ServiceKey::tcp(sa("192.0.2.100:80"));
    let svc = Service::new(key, "wlc");
    c.add_service(&svc).unwrap();
    let got = c.service(&key).unwrap();
    assert_eq!(got.service, svc);
    assert_eq!(c.services().unwrap().len(), 1);

    // Duplicate add: EEXIST, with the service named.
    let (errno, msg) = kernel_errno(c.add_service(&svc));
    assert_eq!(errno, Errno::EEXIST);
    assert_eq!(
        msg,
        "adding service tcp 192.0.2.100:80: File exists (EEXIST)"
    );
    assert!(c.add_service(&svc).unwrap_err().is_exists());

    // Edit: scheduler, persistence with a /24 granularity.
    let mut edited = svc.clone().persistent(600);
    edited.scheduler = "rr".into();
    edited.netmask = Netmask::V4("255.255.255.0".parse().unwrap());
    c.update_service(&edited).unwrap();
    assert_eq!(c.service(&key).unwrap().service, edited);
    let listing = run(&["ipvsadm", "-Ln"]);
    assert!(
        listing.contains("TCP  192.0.2.100:80 rr persistent 600 mask 255.255.255.0"),
        "{listing}"
    );

    // Back to non-persistent: flags are written whole (mask = all ones).
    c.update_service(&svc).unwrap();
    assert_eq!(c.service(&key).unwrap().service, svc);
    assert_witness_agrees(&mut c);

    c.delete_service(&key).unwrap();
    let (errno, msg) = kernel_errno(c.delete_service(&key));
    assert_eq!(errno, Errno::ESRCH);
    assert!(msg.starts_with("deleting service tcp 192.0.2.100:80: No such process (ESRCH)"));
    assert!(c.service(&key).unwrap_err().is_not_found());
    let (errno, _) = kernel_errno(c.update_service(&svc));
    assert_eq!(errno, Errno::ESRCH);
    assert!(c.services().unwrap().is_empty());
}

fn ipv6_and_udp_and_sctp_services() {
    let (_g, mut c) = setup();
    let v6 = ServiceKey::udp(sa("[2001:db8::1]:53"));
    let mut s6 = Service::new(v6, "sh").persistent(120);
    s6.netmask = Netmask::V6(64);
    s6.flags |= ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT;
    c.add_service(&s6).unwrap();
    assert_eq!(c.service(&v6).unwrap().service, s6);
    let sctp = ServiceKey::Addr {
        protocol: vigil_ipvs::Protocol::Sctp,
        addr: sa("192.0.2.7:3868"),
    };
    c.add_service(&Service::new(sctp, "rr")).unwrap();
    let d6 = Destination::new(sa("[2001:db8::10]:53"), ForwardMethod::Masquerade).weight(3);
    c.add_destination(&v6, &d6).unwrap();
    let got = c.destinations(&v6).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].destination, d6);
    assert_witness_agrees(&mut c);
    let listing = run(&["ipvsadm", "-Ln"]);
    assert!(
        listing.contains("UDP  [2001:db8::1]:53 sh (sh-fallback,sh-port) persistent 120 mask 64"),
        "{listing}"
    );
}

fn fwmark_services() {
    let (_g, mut c) = setup();
    let f4 = ServiceKey::fwmark(Family::Inet, 7);
    let f6 = ServiceKey::fwmark(Family::Inet6, 7);
    c.add_service(&Service::new(f4, "wrr")).unwrap();
    c.add_service(&Service::new(f6, "lc")).unwrap();
    assert_eq!(c.service(&f4).unwrap().service.key, f4);
    assert_eq!(c.service(&f6).unwrap().service.scheduler, "lc");
    let d = Destination::new(sa("10.0.0.1:0"), ForwardMethod::DirectRoute).weight(2);
    c.add_destination(&f4, &d).unwrap();
    let d6 = Destination::new(sa("[2001:db8::2]:0"), ForwardMethod::DirectRoute);
    c.add_destination(&f6, &d6).unwrap();
    assert_eq!(c.destinations(&f4).unwrap()[0].destination, d);
    assert_witness_agrees(&mut c);
    c.delete_service(&f6).unwrap();
    assert_eq!(c.services().unwrap().len(), 1);
}

fn every_scheduler() {
    let (_g, mut c) = setup();
    let scheds = [
        "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
    ];
    for (i, s) in scheds.iter().enumerate() {
        let key = ServiceKey::tcp(SocketAddr::new(
            IpAddr::V4([192, 0, 2, 1].into()),
            8000 + i as u16,
        ));
        let mut svc = Service::new(key, *s);
        if *s == "mh" {
            svc.flags |= ServiceFlags::SH_FALLBACK; // mh-fallback shares the bit
        }
        c.add_service(&svc).unwrap();
        c.add_destination(
            &key,
            &Destination::new(sa("10.0.0.1:80"), ForwardMethod::Masquerade),
        )
        .unwrap();
        assert_eq!(c.service(&key).unwrap().service, svc, "{s}");
    }
    assert_eq!(c.services().unwrap().len(), scheds.len());
    assert_witness_agrees(&mut c);

    // An unknown scheduler: the kernel cannot load ip_vs_nosuch, ENOENT.
    let key = ServiceKey::tcp(sa("192.0.2.1:9999"));
    let (errno, msg) = kernel_errno(c.add_service(&Service::new(key, "nosuch")));
    assert_eq!(errno, Errno::ENOENT, "{msg}");
    assert!(
        msg.starts_with("adding service tcp 192.0.2.1:9999: "),
        "{msg}"
    );
}

fn forwarding_methods_and_destinations() {
    let (_g, mut c) = setup();
    let key = ServiceKey::tcp(sa("192.0.2.100:80"));
    c.add_service(&Service::new(key, "wlc")).unwrap();
    let nat = Destination::new(sa("10.0.0.11:8080"), ForwardMethod::Masquerade).weight(10);
    let dr = Destination::new(sa("10.0.0.12:80"), ForwardMethod::DirectRoute).weight(0);
    let mut ipip = Destination::new(sa("10.0.0.13:80"), ForwardMethod::Tunnel);
    ipip.upper_threshold = 1000;
    ipip.lower_threshold = 100;
    let mut gue = Destination::new(sa("10.0.0.14:80"), ForwardMethod::Tunnel);
    gue.tunnel = Tunnel {
        kind: TunnelType::Gue,
        port: 6080,
        flags: 1,
    };
    let mut gre = Destination::new(sa("10.0.0.15:80"), ForwardMethod::Tunnel);
    gre.tunnel = Tunnel {
        kind: TunnelType::Gre,
        port: 0,
        flags: 2,
    };
    // Mixed family: an IPv6 real behind an IPv4 service, only through a tunnel.
    let mixed = Destination::new(sa("[2001:db8::20]:80"), ForwardMethod::Tunnel);
    let all = [&nat, &dr, &ipip, &gue, &gre, &mixed];
    for d in all {
        c.add_destination(&key, d).unwrap();
    }
    let got: BTreeMap<DestinationKey, Destination> = c
        .destinations(&key)
        .unwrap()
        .into_iter()
        .map(|e| (e.destination.key(), e.destination))
        .collect();
    for d in all {
        assert_eq!(got.get(&d.key()), Some(d), "{}", d.addr);
    }
    assert_witness_agrees(&mut c);

    // Duplicate: EEXIST naming both ends.
    let (errno, msg) = kernel_errno(c.add_destination(&key, &nat));
    assert_eq!(errno, Errno::EEXIST);
    assert_eq!(
        msg,
        "adding destination 10.0.0.11:8080 to tcp 192.0.2.100:80: File exists (EEXIST)"
    );
    // Mixed family without a tunnel: EINVAL.
    let bad = Destination::new(sa("[2001:db8::21]:80"), ForwardMethod::Masquerade);
    assert_eq!(kernel_errno(c.add_destination(&key, &bad)).0, Errno::EINVAL);
    // GUE without a port: EINVAL.
    let mut bad_gue = Destination::new(sa("10.0.0.16:80"), ForwardMethod::Tunnel);
    bad_gue.tunnel.kind = TunnelType::Gue;
    assert_eq!(
        kernel_errno(c.add_destination(&key, &bad_gue)).0,
        Errno::EINVAL
    );

    // Edit weight and method.
    let nat2 = Destination {
        weight: 3,
        forward: ForwardMethod::DirectRoute,
        ..nat.clone()
    };
    c.update_destination(&key, &nat2).unwrap();
    let e = c
        .destinations(&key)
        .unwrap()
        .into_iter()
        .find(|e| e.destination.key() == nat.key())
        .unwrap();
    assert_eq!(e.destination, nat2);
    assert_eq!(
        (e.active_conns, e.inactive_conns, e.persist_conns),
        (0, 0, 0)
    );

    // Missing destination: ENOENT; missing service: ESRCH.
    let missing = DestinationKey(sa("10.9.9.9:80"));
    let (errno, msg) = kernel_errno(c.delete_destination(&key, &missing));
    assert_eq!(errno, Errno::ENOENT);
    assert_eq!(
        msg,
        "deleting destination 10.9.9.9:80 from tcp 192.0.2.100:80: No such file or directory (ENOENT)"
    );
    let ghost = Destination::new(sa("10.9.9.9:80"), ForwardMethod::Masquerade);
    assert_eq!(
        kernel_errno(c.update_destination(&key, &ghost)).0,
        Errno::ENOENT
    );
    let nokey = ServiceKey::tcp(sa("192.0.2.200:80"));
    assert_eq!(
        kernel_errno(c.add_destination(&nokey, &ghost)).0,
        Errno::ESRCH
    );
    // The kernel ends a destination dump of a missing service without an error.
    assert!(c.destinations(&nokey).unwrap().is_empty());

    for d in all {
        c.delete_destination(&key, &d.key()).unwrap();
    }
    assert!(c.destinations(&key).unwrap().is_empty());
}

fn local_forwarding_is_reported() {
    let (_g, mut c) = setup();
    let key = ServiceKey::tcp(sa("192.0.2.100:80"));
    c.add_service(&Service::new(key, "rr")).unwrap();
    let local = Destination::new(sa("10.0.0.1:80"), ForwardMethod::Local);
    c.add_destination(&key, &local).unwrap();
    let got = c.destinations(&key).unwrap();
    eprintln!(
        "LOCAL forwarding written, kernel dumps {:?}",
        got[0].destination.forward
    );
    assert_witness_agrees(&mut c);
}

fn stats_and_zero() {
    let (_g, mut c) = setup();
    // A local client through a NAT service to a local listener.
    run(&["ip", "addr", "add", "192.0.2.50/32", "dev", "lo"]);
    let listener = TcpListener::bind("127.0.0.1:18080").unwrap();
    let key = ServiceKey::tcp(sa("192.0.2.50:80"));
    c.add_service(&Service::new(key, "rr")).unwrap();
    c.add_destination(
        &key,
        &Destination::new(sa("127.0.0.1:18080"), ForwardMethod::Masquerade),
    )
    .unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (mut s, _) = listener.accept().unwrap();
            let mut b = [0u8; 5];
            s.read_exact(&mut b).unwrap();
            s.write_all(b"world").unwrap();
        }
    });
    for _ in 0..3 {
        let mut s =
            TcpStream::connect_timeout(&sa("192.0.2.50:80"), Duration::from_secs(10)).unwrap();
        s.write_all(b"hello").unwrap();
        let mut b = [0u8; 5];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"world");
    }
    server.join().unwrap();
    // The kernel folds per-CPU counters into the stats every 2 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let s = c.service(&key).unwrap().stats;
        if s.conns >= 3 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!("service stats after 3 connections: {stats:?}");
    assert_eq!(stats.conns, 3);
    assert!(stats.inpkts >= 9 && stats.inbytes > 0, "{stats:?}");
    let d = &c.destinations(&key).unwrap()[0];
    assert_eq!(d.stats.conns, 3);
    assert_eq!(d.active_conns + d.inactive_conns, 3, "{d:?}");

    c.zero(Some(&key)).unwrap();
    assert_eq!(c.service(&key).unwrap().stats.conns, 0);
    c.zero(None).unwrap();
    assert_eq!(c.destinations(&key).unwrap()[0].stats.conns, 0);
    let (errno, _) = kernel_errno(c.zero(Some(&ServiceKey::tcp(sa("192.0.2.51:80")))));
    assert_eq!(errno, Errno::ESRCH);
    run(&["ip", "addr", "del", "192.0.2.50/32", "dev", "lo"]);
}

fn sync_daemons() {
    let (_g, mut c) = setup();
    assert!(c.sync_daemons().unwrap().is_empty());
    let master = SyncDaemon::new(SyncState::Master, "lo", 7);
    c.start_sync_daemon(&master).unwrap();
    let (errno, msg) = kernel_errno(c.start_sync_daemon(&master));
    assert_eq!(errno, Errno::EEXIST, "{msg}");
    let mut backup = SyncDaemon::new(SyncState::Backup, "lo", 9);
    backup.mcast_group = Some("239.5.5.5".parse().unwrap());
    backup.mcast_port = Some(8850);
    backup.mcast_ttl = Some(3);
    c.start_sync_daemon(&backup).unwrap();
    let running = c.sync_daemons().unwrap();
    eprintln!("sync daemons: {running:?}");
    assert_eq!(running.len(), 2);
    let m = running
        .iter()
        .find(|d| d.state == SyncState::Master)
        .unwrap();
    assert_eq!((m.interface.as_str(), m.sync_id), ("lo", 7));
    let b = running
        .iter()
        .find(|d| d.state == SyncState::Backup)
        .unwrap();
    assert_eq!(
        (b.sync_id, b.mcast_group, b.mcast_port, b.mcast_ttl),
        (9, backup.mcast_group, Some(8850), Some(3))
    );
    let listing = run(&["ipvsadm", "-L", "--daemon"]);
    assert!(
        listing.contains("master sync daemon (mcast=lo, syncid=7"),
        "{listing}"
    );
    assert!(
        listing.contains("backup sync daemon (mcast=lo, syncid=9"),
        "{listing}"
    );
    c.stop_sync_daemon(SyncState::Master).unwrap();
    c.stop_sync_daemon(SyncState::Backup).unwrap();
    assert!(c.sync_daemons().unwrap().is_empty());
    let (errno, msg) = kernel_errno(c.stop_sync_daemon(SyncState::Master));
    assert_eq!(errno, Errno::ESRCH, "{msg}");
    assert_eq!(
        msg,
        "stopping the master sync daemon: No such process (ESRCH)"
    );
}

fn timeouts() {
    let (_g, mut c) = setup();
    let before = c.timeouts().unwrap();
    eprintln!("default timeouts: {before:?}");
    assert!(before.tcp > 0 && before.tcp_fin > 0 && before.udp > 0);
    let t = Timeouts {
        tcp: 1800,
        tcp_fin: 60,
        udp: 30,
    };
    c.set_timeouts(&t).unwrap();
    assert_eq!(c.timeouts().unwrap(), t);
    // Zeros leave values unchanged.
    c.set_timeouts(&Timeouts {
        tcp: 0,
        tcp_fin: 0,
        udp: 45,
    })
    .unwrap();
    assert_eq!(c.timeouts().unwrap(), Timeouts { udp: 45, ..t });
    let listing = run(&["ipvsadm", "-L", "--timeout"]);
    assert!(
        listing.contains("Timeout (tcp tcpfin udp): 1800 60 45"),
        "{listing}"
    );
    c.set_timeouts(&before).unwrap();
    assert_eq!(c.timeouts().unwrap(), before);
}

fn flush_removes_everything() {
    let (_g, mut c) = setup();
    // Including what someone else (ipvsadm) added.
    run(&["ipvsadm", "-A", "-t", "192.0.2.9:80", "-s", "rr"]);
    for i in 0..5u16 {
        c.add_service(&Service::new(
            ServiceKey::udp(SocketAddr::new(IpAddr::V4([192, 0, 2, 9].into()), 1000 + i)),
            "rr",
        ))
        .unwrap();
    }
    assert_eq!(c.services().unwrap().len(), 6);
    c.flush().unwrap();
    assert!(c.services().unwrap().is_empty());
    assert!(ipvsadm_table().is_empty());
}

fn batch_services(n: u32, dests: u32) -> Vec<Request> {
    let mut reqs = Vec::new();
    for i in 0..n {
        let vip = SocketAddr::new(
            IpAddr::V4([198, 18, (i / 250) as u8, (i % 250 + 1) as u8].into()),
            80,
        );
        let key = ServiceKey::tcp(vip);
        reqs.push(Request::AddService(Service::new(key, "wrr")));
        for j in 0..dests {
            let rip = SocketAddr::new(
                IpAddr::V4([10, 1, (j / 250) as u8, (j % 250 + 1) as u8].into()),
                8080,
            );
            reqs.push(Request::AddDestination(
                key,
                Destination::new(rip, ForwardMethod::Masquerade).weight(j + 1),
            ));
        }
    }
    reqs
}

fn pipelined_batch() {
    let (_g, mut c) = setup();
    let reqs = batch_services(1000, 10);
    let t0 = Instant::now();
    let results = c.apply(&reqs).unwrap();
    let took = t0.elapsed();
    let failed: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} failed, first {:?}",
        failed.len(),
        failed[0]
    );
    eprintln!(
        "batch: {} requests in {:.3} s ({:.0}/s), window {}",
        reqs.len(),
        took.as_secs_f64(),
        reqs.len() as f64 / took.as_secs_f64(),
        c.window()
    );

    let t0 = Instant::now();
    let services = c.services().unwrap();
    let mut ndest = 0;
    for s in &services {
        ndest += c.destinations(&s.service.key).unwrap().len();
    }
    eprintln!(
        "dump: {} services, {ndest} destinations in {:.3} s",
        services.len(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!((services.len(), ndest), (1000, 10_000));
    let witness = ipvsadm_table();
    assert_eq!(witness.len(), 1000);
    assert_eq!(witness.values().map(BTreeSet::len).sum::<usize>(), 10_000);
    assert_eq!(our_table(&mut c), witness);

    // Acks are matched per request: re-adding everything fails everywhere with EEXIST,
    // interleaved with deletes that succeed.
    let mut mixed = Vec::new();
    for (i, r) in reqs.iter().take(2200).enumerate() {
        mixed.push(r.clone());
        if i % 11 == 10
            && let Request::AddDestination(k, d) = r
        {
            mixed.push(Request::DeleteDestination(*k, d.key()));
        }
    }
    mixed.push(Request::ListServices); // not batchable
    let results = c.apply(&mixed).unwrap();
    for (r, req) in results.iter().zip(&mixed) {
        match req {
            Request::DeleteDestination(..) => assert!(r.is_ok(), "{r:?}"),
            Request::ListServices => assert!(matches!(r, Err(Error::Encode { .. }))),
            _ => assert!(r.as_ref().unwrap_err().is_exists(), "{req:?}: {r:?}"),
        }
    }

    // Delete it all in one batch, plus one service that is not there.
    let mut dels: Vec<Request> = services
        .iter()
        .map(|s| Request::DeleteService(s.service.key))
        .collect();
    dels.insert(
        500,
        Request::DeleteService(ServiceKey::tcp(sa("203.0.113.1:1"))),
    );
    let t0 = Instant::now();
    let results = c.apply(&dels).unwrap();
    eprintln!(
        "batch delete of 1000 services: {:.3} s",
        t0.elapsed().as_secs_f64()
    );
    for (i, r) in results.iter().enumerate() {
        if i == 500 {
            let e = r.as_ref().unwrap_err();
            assert_eq!(e.errno(), Some(Errno::ESRCH));
            assert!(
                e.to_string()
                    .starts_with("deleting service tcp 203.0.113.1:1:")
            );
        } else {
            assert!(r.is_ok(), "{i}: {r:?}");
        }
    }
    assert!(c.services().unwrap().is_empty());
}

fn tiny_window_still_matches_acks() {
    let (_g, c) = setup();
    drop(c);
    let mut c = Client::connect_with(vigil_ipvs::ClientOptions {
        window: Some(3),
        ..Default::default()
    })
    .unwrap();
    let reqs = batch_services(20, 4);
    let results = c.apply(&reqs).unwrap();
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(c.services().unwrap().len(), 20);
    assert_witness_agrees(&mut c);
}

fn receive_buffer_overflow_reports_lost_acks() {
    let (_g, c) = setup();
    drop(c);
    // The smallest buffers the kernel allows, and a window far past what they hold.
    let mut c = Client::connect_with(vigil_ipvs::ClientOptions {
        socket_buffer: 0,
        window: Some(4096),
        ..Default::default()
    })
    .unwrap();
    let reqs = batch_services(300, 0);
    let results = c.apply(&reqs).unwrap();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let lost = results
        .iter()
        .filter(|r| matches!(r, Err(Error::AckLost { .. })))
        .count();
    eprintln!(
        "tiny buffers: {ok} acked, {lost} acks lost of {}",
        reqs.len()
    );
    assert_eq!(ok + lost, reqs.len(), "{results:?}");
    assert!(lost > 0, "expected the receive buffer to overflow");
    // Lost acks, not lost requests: the kernel processed every one of them.
    assert_eq!(c.services().unwrap().len(), 300);
    // And the socket still works for matched acks afterwards.
    let key = ServiceKey::tcp(sa("192.0.2.1:1"));
    c.add_service(&Service::new(key, "rr")).unwrap();
    assert!(
        c.add_service(&Service::new(key, "rr"))
            .unwrap_err()
            .is_exists()
    );
}

fn main() {
    kernel::main(vec![
        kernel::trial("info_and_family", info_and_family),
        kernel::trial("ipv4_service_lifecycle", ipv4_service_lifecycle),
        kernel::trial(
            "ipv6_and_udp_and_sctp_services",
            ipv6_and_udp_and_sctp_services,
        ),
        kernel::trial("fwmark_services", fwmark_services),
        kernel::trial("every_scheduler", every_scheduler),
        kernel::trial(
            "forwarding_methods_and_destinations",
            forwarding_methods_and_destinations,
        ),
        kernel::trial("local_forwarding_is_reported", local_forwarding_is_reported),
        kernel::trial("stats_and_zero", stats_and_zero),
        kernel::trial("sync_daemons", sync_daemons),
        kernel::trial("timeouts", timeouts),
        kernel::trial("flush_removes_everything", flush_removes_everything),
        kernel::trial("pipelined_batch", pipelined_batch),
        kernel::trial(
            "tiny_window_still_matches_acks",
            tiny_window_still_matches_acks,
        ),
        kernel::trial(
            "receive_buffer_overflow_reports_lost_acks",
            receive_buffer_overflow_reports_lost_acks,
        ),
    ]);
}
