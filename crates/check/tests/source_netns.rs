//! A probe's fwmark and interface steer its packets: checked in a netns lab (a director
//! and a server namespace on a bridge), where the director routes marked packets to an
//! `unreachable` route. Needs root; prints SKIPPED otherwise.

mod common;

use std::net::SocketAddr;

use common::{check, target};
use vigil_check::OnceResult;
use vigil_config::{Check, CheckKind};
use vigil_testlab::NetnsLab;

fn tcp() -> Check {
    let mut c = check(CheckKind::Tcp {
        send: None,
        expect: None,
    });
    c.timeout = std::time::Duration::from_secs(1);
    c
}

#[test]
fn fwmark_and_bind_interface_steer_probes() {
    if let Err(why) = NetnsLab::available() {
        println!("SKIPPED: {why}");
        return;
    }
    // Dropped (namespaces removed) also when an assertion fails.
    let lab = NetnsLab::up(&["dir", "srv"]).expect("lab");
    let server = SocketAddr::from((lab.ip("srv"), 8080));
    let passing = 3;
    let listener = lab
        .run_in("srv", || std::net::TcpListener::bind(server))
        .expect("enter srv")
        .expect("bind in srv");
    std::thread::spawn(move || {
        for _ in 0..passing {
            let _ = listener.accept();
        }
    });
    lab.run(
        "dir",
        ["ip", "rule", "add", "fwmark", "0x5a", "lookup", "77"],
    )
    .expect("rule");
    lab.run(
        "dir",
        [
            "ip",
            "route",
            "add",
            "unreachable",
            "default",
            "table",
            "77",
        ],
    )
    .expect("route");
    let run = |c: Check| -> OnceResult {
        lab.run_in("dir", move || {
            // Built on this thread, so the probe's sockets are in the director's netns.
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(vigil_check::run_once(&[target(server, c)], 1))
                .pop()
                .expect("one result")
        })
        .expect("enter dir")
    };

    let r = run(tcp());
    assert!(r.passed, "no mark: {r:?}");
    let mut marked = tcp();
    marked.fwmark = Some(0x5a);
    let r = run(marked.clone());
    assert!(!r.passed, "mark 0x5a is routed to unreachable: {r:?}");
    assert!(
        r.reason.starts_with(&format!("connect to {server}")),
        "{}",
        r.reason
    );
    marked.fwmark = Some(0x5b);
    let r = run(marked);
    assert!(r.passed, "another mark: {r:?}");

    let mut bound = tcp();
    bound.bind_interface = Some("eth0".into());
    let r = run(bound.clone());
    assert!(r.passed, "by eth0: {r:?}");
    bound.bind_interface = Some("lo".into());
    let r = run(bound);
    assert!(!r.passed, "by lo, the server is not reachable: {r:?}");
    lab.down().expect("lab down");
}
