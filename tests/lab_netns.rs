//! Proves the netns lab guard: hosts on one lab reach each other, labs are isolated
//! from each other and from the host, and a lab disappears with its processes when
//! the guard drops, also when the test panics.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;
use vigil_testlab::{NetnsLab, have_tools, require_or_skip, require_root_or_skip, wait_for};

const SHORT: Duration = Duration::from_secs(2);

/// Names under /run/netns that belong to lab `prefix`.
fn lab_namespaces(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return Vec::new();
    };
    let mine = format!("{prefix}-");
    dir.filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&mine))
        .collect()
}

fn assert_lab_gone(prefix: &str) {
    assert_eq!(
        lab_namespaces(prefix),
        Vec::<String>::new(),
        "namespaces of lab {prefix} left behind"
    );
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        !listed.contains(&format!("{prefix}-")),
        "ip netns list still shows lab {prefix}:\n{listed}"
    );
    assert!(
        !Path::new("/run/netns-lab").join(prefix).exists(),
        "state dir of lab {prefix} left behind"
    );
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, SHORT)
}

#[test]
fn hosts_talk_tcp_across_the_bridge() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["lb1", "lb2", "client"]).unwrap();
    let (lb1, client) = (lab.ip("lb1"), lab.ip("client"));
    assert_eq!(lab.hosts().collect::<Vec<_>>(), ["lb1", "lb2", "client"]);
    assert_eq!(
        lb1.octets()[..3],
        client.octets()[..3],
        "one /24 for the whole lab"
    );
    assert_ne!(lb1, client);

    // A listener created in lb1's namespace stays there, though accept() runs here.
    let listener = lab
        .run_in("lb1", || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7000)))
        .unwrap()
        .unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, peer) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(peer.ip().to_string().as_bytes()).unwrap();
        buf
    });
    let seen_as = lab
        .run_in("client", || {
            let mut c = connect(SocketAddr::from((lb1, 7000))).unwrap();
            c.write_all(b"hello").unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            reply
        })
        .unwrap();
    assert_eq!(&server.join().unwrap(), b"hello");
    assert_eq!(
        seen_as,
        client.to_string(),
        "lb1 sees the client's own lab address"
    );

    // The same through a process in lb2 (bash's /dev/tcp): cmd() runs in the namespace.
    let listener = lab
        .run_in("lb1", || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7001)))
        .unwrap()
        .unwrap();
    let server = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer.ip()));
    let script = format!("exec 3<>/dev/tcp/{lb1}/7001");
    let status = lab.cmd("lb2", ["bash", "-c", &script]).status().unwrap();
    assert!(status.success());
    assert_eq!(server.join().unwrap().unwrap(), lab.ip("lb2"));
}

#[test]
fn hosts_ping_each_other() {
    require_root_or_skip!();
    require_or_skip!(have_tools(&["ping"]));
    let lab = NetnsLab::up(&["a", "b"]).unwrap();
    for (from, to) in [("a", "b"), ("b", "a")] {
        let out = lab
            .cmd(
                from,
                [
                    "ping",
                    "-c",
                    "2",
                    "-i",
                    "0.2",
                    "-W",
                    "2",
                    &lab.ip(to).to_string(),
                ],
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ping {from} -> {to}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn labs_are_isolated_from_each_other_and_from_the_host() {
    require_root_or_skip!();
    let a = NetnsLab::up(&["srv", "cli"]).unwrap();
    let b = NetnsLab::up(&["srv", "cli"]).unwrap();
    assert_ne!(a.prefix(), b.prefix());
    assert_eq!(a.ip("srv"), b.ip("srv"), "same subnet in both labs");

    let listener = a
        .run_in("srv", || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7002)))
        .unwrap()
        .unwrap();
    let target = SocketAddr::from((a.ip("srv"), 7002));
    assert!(
        a.run_in("cli", || connect(target).is_ok()).unwrap(),
        "lab a reaches its own server"
    );
    // In lab b the same address is b's srv, which listens on nothing: refused.
    assert!(
        b.run_in("cli", || connect(target).is_err()).unwrap(),
        "lab b reached lab a"
    );
    drop(listener);

    // A listener on the host's loopback is not the lab hosts' loopback.
    let host = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = host.local_addr().unwrap().port();
    let reached = a
        .run_in("cli", || {
            connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
        })
        .unwrap();
    assert!(!reached, "a lab host reached the host's loopback");
}

#[test]
fn hosts_can_be_added_and_keep_addresses() {
    require_root_or_skip!();
    let mut lab = NetnsLab::up(&["lb1", "lb2"]).unwrap();
    let before = (lab.ip("lb1"), lab.ip("lb2"));
    lab.add_hosts(&["rs1"]).unwrap();
    assert_eq!((lab.ip("lb1"), lab.ip("lb2")), before);
    assert_eq!(lab.ip("rs1").octets()[3], 3);
    assert_eq!(lab.subnet_addr(100).octets()[..3], before.0.octets()[..3]);
    // The output helper, and the bridge namespace by its reserved name.
    let addrs = lab
        .run("rs1", ["ip", "-4", "-br", "addr", "show", "eth0"])
        .unwrap();
    assert!(addrs.contains(&lab.ip("rs1").to_string()), "{addrs}");
    let ports = lab
        .run("br", ["ip", "-br", "link", "show", "master", "br0"])
        .unwrap();
    assert!(ports.contains("v-rs1"), "{ports}");
}

#[test]
fn unplugging_a_host_cuts_it_off() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["a", "b"]).unwrap();
    let listener = lab
        .run_in("a", || TcpListener::bind((Ipv4Addr::UNSPECIFIED, 7003)))
        .unwrap()
        .unwrap();
    let target = SocketAddr::from((lab.ip("a"), 7003));
    let reach = || {
        lab.run_in("b", || {
            TcpStream::connect_timeout(&target, Duration::from_millis(300)).is_ok()
        })
        .unwrap()
    };
    assert!(reach());
    lab.set_link("a", false).unwrap();
    assert!(!reach(), "connected through an unplugged cable");
    lab.set_link("a", true).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), reach),
        "no connection after plugging back in"
    );
    drop(listener);
}

#[test]
fn lab_child_is_killed_on_drop() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["a"]).unwrap();
    let child = lab.spawn("a", ["sleep", "300"]).unwrap();
    let proc_dir = Path::new("/proc").join(child.id().to_string());
    // `ip netns exec` execs the program: the child's PID is sleep's, in a's namespace.
    assert!(wait_for(SHORT, || std::fs::read_to_string(
        proc_dir.join("comm")
    )
    .is_ok_and(|c| c.trim() == "sleep")));
    // A namespace's identity is its nsfs inode, the same via /proc and the bind mount.
    let inode = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(inode(&proc_dir.join("ns/net")), inode(&lab.netns_path("a")));
    drop(child);
    assert!(!proc_dir.exists(), "the child survived its guard");
}

#[test]
fn lab_child_terminate_is_graceful_first() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["a"]).unwrap();
    let mut cmd = lab.cmd("a", ["sleep", "300"]);
    cmd.stdout(Stdio::null());
    let mut child = vigil_testlab::LabChild::spawn(&mut cmd).unwrap();
    let status = child.terminate(SHORT).unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
}

#[test]
fn drop_removes_the_lab_and_kills_its_processes() {
    require_root_or_skip!();
    let lab = NetnsLab::up(&["a", "b"]).unwrap();
    let prefix = lab.prefix().to_owned();
    assert_eq!(lab_namespaces(&prefix).len(), 3, "a, b and the bridge");
    // A process the guard does not know about: `netns-lab down` must find it.
    let mut stray = lab.cmd("b", ["sleep", "300"]).spawn().unwrap();
    drop(lab);
    assert_lab_gone(&prefix);
    assert!(
        stray.try_wait().unwrap().is_some(),
        "a process inside the lab survived its teardown"
    );
}

#[test]
fn a_panicking_test_still_removes_its_lab() {
    require_root_or_skip!();
    let prefix = Mutex::new(String::new());
    let stray = Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let lab = NetnsLab::up(&["lb1", "client"]).unwrap();
        *prefix.lock().unwrap() = lab.prefix().to_owned();
        *stray.lock().unwrap() = Some(lab.cmd("lb1", ["sleep", "300"]).spawn().unwrap());
        panic!("deliberate panic with a lab up (expected by this test)");
    });
    assert!(result.is_err());
    let prefix = prefix.into_inner().unwrap();
    assert!(!prefix.is_empty());
    assert_lab_gone(&prefix);
    let mut stray = stray.into_inner().unwrap().unwrap();
    assert!(
        stray.try_wait().unwrap().is_some(),
        "the lab's process survived the panic"
    );
}
