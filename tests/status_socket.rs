//! The status socket protocol against a real daemon, including every kind of bad client:
//! none of them may stall or crash the daemon, or keep others from being served.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vigil_tests::{Daemon, StatusClient, vigilctl};

fn code(reply: &Value) -> &str {
    reply["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn requests_on_one_connection_are_answered_in_order_with_ids() {
    let d = Daemon::start("proto");
    let mut c = StatusClient::connect(&d.socket);
    c.send_line(r#"{"command":"ping","id":1}"#);
    c.send_line("");
    c.send_line(r#"{"command":"status","id":"two"}"#);
    let first = c.read_reply().unwrap();
    assert_eq!(first, json!({"ok": true, "result": "pong", "id": 1}));
    let second = c.read_reply().unwrap();
    assert_eq!(second["id"], "two");
    assert_eq!(second["result"]["director"], "proto");
    let config = d.result("config");
    assert_eq!(config["generation"], 1);
    assert_eq!(config["config"]["director"]["name"], "proto");
}

#[test]
fn bad_requests_get_error_replies_and_the_connection_goes_on() {
    let d = Daemon::start("bad-requests");
    let mut c = StatusClient::connect(&d.socket);
    for (line, want) in [
        ("this is not json", "invalid_json"),
        ("[1, 2, 3]", "invalid_request"),
        (r#"{"cmd": "status"}"#, "invalid_request"),
        (r#"{"command": 42}"#, "invalid_request"),
        (r#"{"command": "shutdown"}"#, "unknown_command"),
        (r#"{"command": "drain"}"#, "invalid_request"),
        // Without real_server: the whole virtual server, here one that does not exist.
        (
            r#"{"command": "drain", "virtual_server": "web"}"#,
            "no_such_virtual_server",
        ),
        (
            r#"{"command": "enable", "real_server": 5}"#,
            "invalid_request",
        ),
        (r#"{"command": "vrrp-handover"}"#, "invalid_request"),
    ] {
        c.send_line(line);
        let reply = c.read_reply().expect("a reply, not a closed connection");
        assert_eq!(reply["ok"], false, "{line}");
        assert_eq!(code(&reply), want, "{line}: {reply}");
    }
    c.send_line(r#"{"command":"shutdown"}"#);
    let reply = c.read_reply().unwrap();
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("commands: status, config, services, vrrp, reload, ping, vrrp-handover, vrrp-reclaim, vrrp-watch, drain, enable, events"),
        "{reply}"
    );
    c.send_line(r#"{"command":"ping"}"#);
    assert_eq!(c.read_reply().unwrap()["result"], "pong");
}

#[test]
fn an_overlong_line_is_refused_and_the_connection_closed() {
    let d = Daemon::start("long-line");
    let mut c = StatusClient::connect(&d.socket);
    // 100 KiB without a newline.
    let blob = vec![b'x'; 100 * 1024];
    let _ = c.stream.write_all(&blob);
    let reply = c.read_reply().expect("an error reply before the close");
    assert_eq!(code(&reply), "line_too_long");
    assert!(c.read_reply().is_none(), "the connection must be closed");
    assert_eq!(d.result("ping"), "pong");
}

#[test]
fn a_client_that_never_reads_does_not_stall_anyone() {
    let d = Daemon::start("no-reader");
    // Pipeline thousands of requests and never read a reply: the daemon's writes block
    // on a full socket buffer.
    let mut hog = UnixStream::connect(&d.socket).unwrap();
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let line = b"{\"command\":\"status\"}\n".repeat(512);
    for _ in 0..40 {
        if hog.write_all(&line).is_err() {
            break;
        }
    }
    // Meanwhile everyone else is served at once.
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(d.result("ping"), "pong");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "other clients were stalled"
    );
    // The hog is disconnected once a reply has waited longer than the daemon's write
    // timeout (5 s), not served forever: only what was already queued can still be read.
    std::thread::sleep(Duration::from_secs(7));
    hog.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed = false;
    while Instant::now() < deadline {
        match hog.read(&mut sink) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "a client that does not read must be disconnected");
}

#[test]
fn many_clients_at_once_are_all_served() {
    let d = Daemon::start("many");
    let socket = d.socket.clone();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = StatusClient::connect(&socket);
                for j in 0..10 {
                    c.send_line(&format!(r#"{{"command":"status","id":[{i},{j}]}}"#));
                    let r = c.read_reply().expect("reply");
                    assert_eq!(r["id"], json!([i, j]));
                    assert_eq!(r["result"]["director"], "many");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
}

#[test]
fn clients_that_connect_and_vanish_do_no_harm() {
    let d = Daemon::start("vanish");
    for _ in 0..200 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        let _ = s.write_all(b"{\"command\":\"sta");
        drop(s);
    }
    // Half a request, then the client goes away mid-reply.
    for _ in 0..50 {
        let mut s = UnixStream::connect(&d.socket).unwrap();
        let _ = s.write_all(b"{\"command\":\"config\"}\n");
        drop(s);
    }
    assert_eq!(d.result("ping"), "pong");
    assert_eq!(d.result("status")["director"], "vanish");
}

// --- Who may do what, and fairness between clients (docs/status-socket.md) ---

/// Readers: in the socket's group (`daemon`, gid 1) and nothing else.
const READER: (u32, u32) = (65534, 1);
/// In the socket's group and the admin group (`adm`, gid 4).
const GROUP_ADMIN: (u32, u32, u32) = (65533, 1, 4);

/// A daemon whose socket group is `daemon` and admin group `adm`, with one virtual
/// server to drain; its directory is opened up so that other uids reach the socket.
fn daemon_with_groups(name: &str) -> Daemon {
    let d = Daemon::start_with(|dir| {
        format!(
            "{}status_socket_group = \"daemon\"\nstatus_socket_admin_group = \"adm\"\n\n[[virtual_server]]\nname = \"web\"\naddress = \"127.0.0.200:80\"\nreal_server = [{{ address = \"127.0.0.1:8080\" }}]\n",
            vigil_tests::minimal_config(dir, name),
        )
    });
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the test directory");
    d
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs `f` on a thread of its own whose credentials are `uid`, `gid` and `groups`: the
/// raw system calls change only the calling thread (glibc's wrappers would change the
/// whole test process). The kernel records the connecting thread's credentials, so
/// sockets opened in `f` are that user's, as if another program had opened them.
fn as_user<T: Send>(uid: u32, gid: u32, groups: &[u32], f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: plain system calls on this thread's own credentials; `groups`
            // outlives the call.
            unsafe {
                assert_eq!(
                    libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()),
                    0
                );
                assert_eq!(libc::syscall(libc::SYS_setresgid, gid, gid, gid), 0);
                assert_eq!(libc::syscall(libc::SYS_setresuid, uid, uid, uid), 0);
            }
            f()
        })
        .join()
        .expect("the thread running as another user")
    })
}

/// `vigilctl ARGS` run by `setpriv` as another user.
fn vigilctl_as(d: &Daemon, setpriv: &[&str], args: &[&str]) -> (std::process::Output, u32) {
    let child = std::process::Command::new("setpriv")
        .args(setpriv)
        .arg(vigil_testlab::bin_path("vigilctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run setpriv vigilctl");
    // setpriv execs vigilctl: the pid the daemon sees is this one.
    let pid = child.id();
    (child.wait_with_output().expect("vigilctl output"), pid)
}

fn reader_setpriv() -> Vec<String> {
    vec![
        format!("--reuid={}", READER.0),
        format!("--regid={}", READER.1),
        "--clear-groups".into(),
    ]
}

fn status_socket_counters(d: &Daemon) -> Value {
    d.result("status")["status_socket"].clone()
}

#[test]
fn a_reader_can_read_but_a_drain_is_forbidden_and_admin_writes_are_logged() {
    if !is_root() {
        println!("SKIPPED: switching users needs root");
        return;
    }
    vigil_testlab::require_or_skip!(vigil_testlab::have_tools(&["setpriv"]));
    let mut d = daemon_with_groups("auth");
    let reader = reader_setpriv();
    let reader: Vec<&str> = reader.iter().map(String::as_str).collect();

    // vigilctl as a reader: status works, a drain is refused naming what is needed.
    let (out, _) = vigilctl_as(&d, &reader, &["status"]);
    assert!(out.status.success(), "{}", vigil_tests::output_text(&out));
    let (out, _) = vigilctl_as(&d, &reader, &["drain", "web", "127.0.0.1:8080"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        vigil_tests::output_text(&out)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("forbidden") && err.contains("group adm") && err.contains("uid 65534"),
        "{err}"
    );

    // The raw protocol: the error shape, and the connection goes on.
    let socket = d.socket.clone();
    let (refused, pong) = as_user(READER.0, READER.1, &[], || {
        let mut c = StatusClient::connect(&socket);
        c.send_line(
            r#"{"command":"drain","virtual_server":"web","real_server":"127.0.0.1:8080","id":3}"#,
        );
        let refused = c.read_reply().expect("a reply");
        c.send_line(r#"{"command":"reload"}"#);
        assert_eq!(code(&c.read_reply().expect("a reply")), "forbidden");
        // A name that tries to forge a log line.
        c.send_line(
            r#"{"command":"drain","virtual_server":"web\nFORGED uid=0","real_server":"1.2.3.4"}"#,
        );
        assert_eq!(code(&c.read_reply().expect("a reply")), "forbidden");
        c.send_line(r#"{"command":"ping"}"#);
        (refused, c.read_reply().expect("a reply"))
    });
    assert_eq!(refused["ok"], false);
    assert_eq!(refused["id"], 3);
    assert_eq!(code(&refused), "forbidden", "{refused}");
    assert_eq!(pong["result"], "pong");
    assert_eq!(
        d.result("services")["virtual_servers"][0]["real_servers"][0]["drained"],
        false
    );

    // A member of the admin group (a supplementary group) may drain.
    let admin = [
        format!("--reuid={}", GROUP_ADMIN.0),
        format!("--regid={}", GROUP_ADMIN.1),
        format!("--groups={}", GROUP_ADMIN.2),
    ];
    let admin: Vec<&str> = admin.iter().map(String::as_str).collect();
    let (out, admin_pid) = vigilctl_as(&d, &admin, &["drain", "web", "127.0.0.1:8080"]);
    assert!(out.status.success(), "{}", vigil_tests::output_text(&out));
    assert_eq!(
        d.result("services")["virtual_servers"][0]["real_servers"][0]["drained"],
        true
    );
    // And root.
    let out = d.ctl(&["enable", "web", "127.0.0.1:8080"]);
    assert!(out.status.success(), "{}", vigil_tests::output_text(&out));

    let counters = status_socket_counters(&d);
    assert!(
        counters["refused"]["forbidden"].as_u64() >= Some(4),
        "{counters}"
    );
    let log = d.stderr_now();
    assert!(
        !log.lines().any(|l| l.starts_with("FORGED")) && log.contains("web\\nFORGED"),
        "{log}"
    );
    let drain_line = log
        .lines()
        .find(|l| l.contains("status socket: drain web 127.0.0.1:8080"))
        .unwrap_or_else(|| panic!("no log of the admin's drain in:\n{log}"));
    assert!(
        drain_line.contains(&format!("uid={}", GROUP_ADMIN.0))
            && drain_line.contains(&format!("pid={admin_pid}")),
        "{drain_line}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("status socket: enable web 127.0.0.1:8080") && l.contains("uid=0")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("refused drain web 127.0.0.1:8080") && l.contains("uid=65534")),
        "{log}"
    );
}

#[test]
fn a_flood_of_connections_does_not_lock_out_an_admin() {
    if !is_root() {
        println!("SKIPPED: switching users needs root");
        return;
    }
    let d = daemon_with_groups("flood");
    let socket = d.socket.clone();
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let fds_before = fds();
    // 1,000 connections from one reader, held open.
    let flood = as_user(READER.0, READER.1, &[], || {
        (0..1_000)
            .map(|_| UnixStream::connect(&socket).expect("connect"))
            .collect::<Vec<_>>()
    });
    let counters = status_socket_counters(&d);
    println!("after 1,000 connections from one uid: {counters}");
    assert!(
        counters["refused"]["per_uid"].as_u64() >= Some(968),
        "{counters}"
    );
    let fds_flooded = fds();
    println!("daemon fds: {fds_before} before, {fds_flooded} with 1,000 connections from one uid");
    assert!(
        fds_flooded <= fds_before + 40,
        "{fds_flooded} fds (was {fds_before})"
    );
    // The refused see why.
    let mut last = flood.last().expect("a connection");
    last.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    let _ = last.read_to_string(&mut reply);
    assert!(
        reply.contains("\"busy\"") && reply.contains("uid 65534"),
        "{reply}"
    );
    // Another reader is still served, and so is an admin.
    let pong = as_user(65532, 1, &[], || {
        let mut c = StatusClient::connect(&socket);
        c.send_line(r#"{"command":"ping"}"#);
        c.read_reply()
    });
    assert_eq!(pong.expect("a reply")["result"], "pong");
    let out = d.ctl(&["status"]);
    assert!(out.status.success(), "{}", vigil_tests::output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("socket ") && l.contains(" per uid")),
        "{text}"
    );

    // Many readers together can take every shared slot, but not the admins' ones.
    let crowd: Vec<UnixStream> = (0..9)
        .flat_map(|i| {
            let socket = socket.clone();
            as_user(60000 + i, 1, &[], move || {
                (0..32)
                    .map(|_| UnixStream::connect(&socket).expect("connect"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let counters = status_socket_counters(&d);
    assert!(
        counters["refused"]["clients"].as_u64() >= Some(1),
        "{counters}"
    );
    let started = Instant::now();
    let out = d.ctl(&["status"]);
    assert!(out.status.success(), "{}", vigil_tests::output_text(&out));
    println!(
        "admin vigilctl status with every shared slot taken: {:?}",
        started.elapsed()
    );
    drop((flood, crowd));
}

#[test]
fn an_idle_connection_is_closed_at_the_deadline() {
    let d = Daemon::start("idle");
    let mut silent = StatusClient::connect(&d.socket);
    silent
        .stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Bytes trickling in without a newline do not extend the deadline.
    let mut trickle = UnixStream::connect(&d.socket).unwrap();
    let started = Instant::now();
    let dripper = std::thread::spawn(move || {
        for _ in 0..30 {
            if trickle.write_all(b" ").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
    let reply = silent.read_reply().expect("a reply before the close");
    let after = started.elapsed();
    assert_eq!(code(&reply), "idle", "{reply}");
    assert!(silent.read_reply().is_none(), "closed after the reply");
    println!("silent connection closed after {after:?}");
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(13),
        "closed after {after:?}, not at the 10 s deadline"
    );
    dripper.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(14),
        "the trickling client was not closed at the deadline"
    );
    assert!(status_socket_counters(&d)["refused"]["idle"].as_u64() >= Some(2));
}

#[test]
fn events_subscribers_are_capped_with_room_for_admins() {
    if !is_root() {
        println!("SKIPPED: switching users needs root");
        return;
    }
    let d = daemon_with_groups("subscribers");
    let socket = d.socket.clone();
    let subscribe = |c: &mut StatusClient| {
        c.send_line(r#"{"command":"events"}"#);
        c.read_reply().expect("a reply")
    };
    // 64 streams from two readers (32 connections each, the per-uid limit).
    let streams: Vec<StatusClient> = [READER.0, 65532]
        .into_iter()
        .flat_map(|uid| {
            as_user(uid, 1, &[], || {
                (0..32)
                    .map(|_| {
                        let mut c = StatusClient::connect(&socket);
                        let r = subscribe(&mut c);
                        assert_eq!(r["result"]["event"], "subscribed", "{r}");
                        c
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // The next reader is refused, and may go on with other requests.
    let (refused, pong) = as_user(65531, 1, &[], || {
        let mut c = StatusClient::connect(&socket);
        let refused = subscribe(&mut c);
        c.send_line(r#"{"command":"ping"}"#);
        (refused, c.read_reply().expect("a reply"))
    });
    assert_eq!(code(&refused), "busy", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("follow events"),
        "{refused}"
    );
    assert_eq!(pong["result"], "pong");
    // An admin still may follow.
    let mut admin = StatusClient::connect(&socket);
    assert_eq!(subscribe(&mut admin)["result"]["event"], "subscribed");
    let counters = status_socket_counters(&d);
    assert_eq!(counters["subscribers"], 65, "{counters}");
    assert!(
        counters["refused"]["subscribers"].as_u64() >= Some(1),
        "{counters}"
    );
    drop(streams);
}

#[test]
fn an_admin_group_that_does_not_exist_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "{}status_socket_admin_group = \"no-such-admins-xyz\"\n",
            vigil_tests::minimal_config(dir.path(), "admins")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(vigil_testlab::bin_path("vigild"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        vigil_tests::output_text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("status_socket_admin_group \"no-such-admins-xyz\" does not exist"),
        "{}",
        vigil_tests::output_text(&out)
    );
}

/// `value` decoded as vigil-proto's `T` and encoded again: the same JSON, so nothing the
/// daemon sent is unknown to the protocol crate (or lost by it).
fn typed<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> T {
    let t: T = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("not a {}: {e}: {value}", std::any::type_name::<T>()));
    assert_eq!(
        serde_json::to_value(&t).expect("encodes"),
        *value,
        "{} does not carry all of it",
        std::any::type_name::<T>()
    );
    t
}

/// Every reply and event a real daemon sends is a vigil-proto type (vigilctl decodes them
/// as such); requests are built from vigil-proto too.
#[test]
fn every_reply_and_event_is_a_vigil_proto_type() {
    use vigil_proto::*;
    // The VRRP instance names an interface that does not exist: its runner reports it
    // and waits. The check's target is closed: a `down` verdict, hence a health event.
    let d = Daemon::start_with(|dir| {
        format!(
            "{}\n[vrrp.web]\ninterface = \"vigil-none0\"\nvrid = 7\nvips = [\"192.0.2.7/32\"]\n\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.7:80\"\ncheck = {{ kind = \"tcp\", interval = \"300ms\", timeout = \"100ms\", start_spread = \"0s\" }}\nreal_server = [{{ address = \"127.0.0.1:9\" }}]\n",
            vigil_tests::minimal_config(dir, "typed")
        )
    });
    let send = |c: &mut StatusClient, r: &Request| {
        c.send_line(std::str::from_utf8(&r.to_line()).unwrap().trim_end());
        c.read_reply().expect("a reply")
    };
    let mut events = StatusClient::connect(&d.socket);
    let subscribed = send(&mut events, &Request::Events);
    assert_eq!(typed::<Event>(&subscribed["result"]), Event::Subscribed);

    let mut c = StatusClient::connect(&d.socket);
    let status: StatusReply = typed(&send(&mut c, &Request::Status)["result"]);
    assert_eq!(status.director, "typed");
    let config: ConfigReply = typed(&send(&mut c, &Request::Config)["result"]);
    assert_eq!(config.generation, 1);
    let services: ServicesReply = typed(&send(&mut c, &Request::Services)["result"]);
    assert_eq!(services.virtual_servers[0].name, "web");
    let vrrp: VrrpReply = typed(&send(&mut c, &Request::Vrrp)["result"]);
    assert_eq!(vrrp.instances[0].name, "web");
    assert_eq!(
        typed::<String>(&send(&mut c, &Request::Ping)["result"]),
        PONG
    );
    for drain in [true, false] {
        let (virtual_server, real_server) = ("web".to_string(), "127.0.0.1:9".to_string());
        let request = if drain {
            Request::Drain {
                virtual_server,
                real_server: Some(real_server),
            }
        } else {
            Request::Enable {
                virtual_server,
                real_server: Some(real_server),
            }
        };
        let reply: DrainReply = typed(&send(&mut c, &request)["result"]);
        assert_eq!(reply.drained, drain);
    }
    let reload: ReloadRecord = typed(&send(&mut c, &Request::Reload)["result"]);
    assert!(reload.ok);
    assert_eq!(reload.trigger, Trigger::Socket);
    let reclaim = send(
        &mut c,
        &Request::VrrpReclaim {
            instance: "web".into(),
        },
    );
    let reclaim: VrrpControlReply = typed(&reclaim["result"]);
    assert_eq!(reclaim.action, VrrpAction::Reclaim);
    let refused = send(
        &mut c,
        &Request::VrrpHandover {
            instance: "nope".into(),
        },
    );
    let refused: Reply<VrrpControlReply> = typed(&refused);
    assert_eq!(
        refused.into_result().unwrap_err().code,
        ErrorCode::UnknownInstance
    );

    // The events those caused: each one a known kind, every time in milliseconds.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !["drain", "reload", "health"]
        .iter()
        .all(|k| seen.contains(*k))
    {
        assert!(Instant::now() < deadline, "events seen: {seen:?}");
        let line = events.read_reply().expect("an event");
        let kind = line["event"].as_str().unwrap_or("").to_string();
        assert_ne!(typed::<Event>(&line), Event::Other, "{line}");
        if kind != "lagged" {
            assert!(line["at_unix_ms"].as_u64().unwrap() > 0, "{line}");
        }
        seen.insert(kind);
    }
}

/// `vigilctl drain VS` with no real server drains every real server of VS in one
/// command, `vigilctl enable VS` undoes it; an unknown name is refused with the list.
#[test]
fn a_whole_virtual_server_drains_and_enables_in_one_command() {
    let d = Daemon::start_with(|dir| {
        format!(
            "{}\n[[virtual_server]]\nname = \"web\"\naddress = \"192.0.2.8:80\"\nreal_server = [{{ address = \"127.0.0.1:9\" }}, {{ address = \"127.0.0.2:9\" }}]\n\n[[virtual_server]]\nname = \"other\"\naddress = \"192.0.2.9:80\"\nreal_server = [{{ address = \"127.0.0.3:9\" }}]\n",
            vigil_tests::minimal_config(dir, "whole")
        )
    });
    let drained = |vs: &str| -> Vec<bool> {
        let out = vigilctl(&d.socket, &["--json", "services"]);
        assert!(out.status.success(), "{out:?}");
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let vs = v["virtual_servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == vs)
            .unwrap()
            .clone();
        vs["real_servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["drained"].as_bool().unwrap())
            .collect()
    };
    let out = vigilctl(&d.socket, &["drain", "web"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text,
        "drained all 2 real servers (127.0.0.1:9, 127.0.0.2:9) of web\n"
    );
    assert_eq!(drained("web"), [true, true]);
    assert_eq!(drained("other"), [false], "only the named virtual server");
    let state = std::fs::read_to_string(d.dir.path().join("state.json")).unwrap();
    assert!(state.contains("127.0.0.2"), "drains are kept: {state}");
    // Again: nothing changes, and the JSON reply lists every real server.
    let out = vigilctl(&d.socket, &["--json", "drain", "web"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changed"], false, "{v}");
    assert_eq!(
        v["real_servers"],
        serde_json::json!(["127.0.0.1:9", "127.0.0.2:9"])
    );
    assert!(v.get("real_server").is_none(), "{v}");
    // One real server enabled the old way, then the rest in one command.
    let out = vigilctl(&d.socket, &["enable", "web", "127.0.0.2:9"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(drained("web"), [true, false]);
    let out = vigilctl(&d.socket, &["enable", "web"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(drained("web"), [false, false]);
    // The drains reached the state file and were taken back out of it.
    let state = std::fs::read_to_string(d.dir.path().join("state.json")).unwrap_or_default();
    assert!(!state.contains("127.0.0.1:9"), "{state}");
    // An unknown virtual server.
    let out = vigilctl(&d.socket, &["drain", "nope"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no virtual server \"nope\"") && err.contains("web, other"),
        "{err}"
    );
}
