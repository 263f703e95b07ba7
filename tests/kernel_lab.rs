//! Proves the kernel lab harness: this whole binary runs inside the IPVS VM (once),
//! where IPVS is there to be programmed, also from inside a netns lab.
//!
//! The trials run in parallel in one VM and share its IPVS table: each uses its own
//! virtual addresses and removes only what it added (never `ipvsadm -C`).

// A test binary, but with `harness = false` clippy can't tell (no #[test]), so the
// workspace's allow-unwrap-in-tests does not reach it.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use vigil_testlab::{NetnsLab, kernel, run_ok as run, wait_for};

fn main() {
    kernel::main(vec![
        kernel::trial("harness_runs_inside_the_vm", harness_runs_inside_the_vm),
        kernel::trial("ipvsadm_lists_the_table", ipvsadm_lists_the_table),
        kernel::trial("genl_family_ipvs_exists", genl_family_ipvs_exists),
        kernel::trial(
            "service_added_with_ipvsadm_reads_back",
            service_added_with_ipvsadm_reads_back,
        ),
        kernel::trial("ipvs_nat_between_lab_hosts", ipvs_nat_between_lab_hosts),
    ]);
}

fn harness_runs_inside_the_vm() {
    assert!(kernel::inside(), "kernel::main ran a trial outside the VM");
    assert_eq!(run(&["hostname"]).trim(), "ipvs-lab");
}

fn ipvsadm_lists_the_table() {
    let out = run(&["ipvsadm", "-Ln"]);
    assert!(out.starts_with("IP Virtual Server version"), "{out}");
    assert!(std::path::Path::new("/proc/net/ip_vs").exists());
}

fn genl_family_ipvs_exists() {
    let out = run(&["genl", "ctrl", "get", "name", "IPVS"]);
    assert!(out.contains("Name: IPVS"), "{out}");
}

fn service_added_with_ipvsadm_reads_back() {
    let vs = "192.0.2.10:80";
    run(&["ipvsadm", "-A", "-t", vs, "-s", "wlc"]);
    run(&[
        "ipvsadm",
        "-a",
        "-t",
        vs,
        "-r",
        "10.1.0.1:8080",
        "-m",
        "-w",
        "3",
    ]);
    let saved = run(&["ipvsadm", "-Sn"]);
    let ours: Vec<&str> = saved.lines().filter(|l| l.contains(vs)).collect();
    assert_eq!(
        ours,
        [
            format!("-A -t {vs} -s wlc"),
            format!("-a -t {vs} -r 10.1.0.1:8080 -m -w 3"),
        ],
        "ipvsadm -Sn:\n{saved}"
    );
    run(&["ipvsadm", "-D", "-t", vs]);
    assert!(
        !run(&["ipvsadm", "-Sn"]).contains(vs),
        "service still there after -D"
    );
}

/// A client reaches a real server through an IPVS NAT service on a director, all three
/// in one netns lab inside the VM: the setup later VRRP + IPVS tests build on.
fn ipvs_nat_between_lab_hosts() {
    let lab = NetnsLab::up(&["lb", "rs1", "client"]).unwrap();
    let (lb, rs1, client) = (lab.ip("lb"), lab.ip("rs1"), lab.ip("client"));
    let vip = lab.subnet_addr(100);
    let sh = |host: &str, script: &str| {
        lab.run(host, ["sh", "-ec", script]).unwrap();
    };
    // Director: VIP, forwarding, and no ICMP redirects (which would teach rs1 to answer
    // the client directly, bypassing the NAT).
    sh(
        "lb",
        &format!(
            "ip addr add {vip}/32 dev eth0
             sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 \
               net.ipv4.conf.eth0.send_redirects=0
             ipvsadm -A -t {vip}:80 -s rr
             ipvsadm -a -t {vip}:80 -r {rs1}:8080 -m"
        ),
    );
    // NAT's return path: rs1 answers the client through the director.
    sh("rs1", &format!("ip route add {client}/32 via {lb}"));

    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("id"), "rs1\n").unwrap();
    let docroot = root.path().to_str().unwrap();
    let _httpd = lab
        .spawn(
            "rs1",
            ["busybox", "httpd", "-f", "-p", "8080", "-h", docroot],
        )
        .unwrap();
    let rs_addr = SocketAddr::from((rs1, 8080));
    let up = wait_for(Duration::from_secs(20), || {
        lab.run_in("lb", || {
            TcpStream::connect_timeout(&rs_addr, Duration::from_secs(1)).is_ok()
        })
        .unwrap()
    });
    assert!(up, "busybox httpd in rs1 never listened");

    let body = lab
        .run_in("client", || {
            let mut c =
                TcpStream::connect_timeout(&SocketAddr::from((vip, 80)), Duration::from_secs(5))
                    .unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(b"GET /id HTTP/1.0\r\n\r\n").unwrap();
            let mut reply = String::new();
            c.read_to_string(&mut reply).unwrap();
            reply
        })
        .unwrap();
    assert!(
        body.starts_with("HTTP/1.") && body.ends_with("\r\n\r\nrs1\n"),
        "reply via VIP: {body:?}"
    );
    let conns = lab.run("lb", ["ipvsadm", "-Lnc"]).unwrap();
    assert!(
        conns.contains(&format!("{client}:")),
        "no IPVS connection entry for the client:\n{conns}"
    );
}
